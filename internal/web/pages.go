package web

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/pocketmolt/pocketmolt/internal/accounts"
	"github.com/pocketmolt/pocketmolt/internal/billing"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// notices are the confirmations a redirect may ask a page to show, by a short name in
// ?notice=: the page never shows text from the URL.
var notices = map[string]string{
	"loggedout": "You are logged out. See you soon.",
	"deleted":   "Your account, your assistant and its data are deleted. Thank you for trying PocketMolt.",
	"password":  "Your password is changed, and every other session is logged out. Log in with your new password.",
	"saved":     "Your settings are saved.",
	"paid":      "Thank you! Your payment went through, and your assistant is being set up.",
	"cancelled": "Your subscription will end at the end of this period. You can resume it until then.",
	"resumed":   "Your subscription continues.",
	"restarted": "Your assistant is restarting; it is back in a few seconds.",
}

func notice(r *http.Request) string { return notices[r.URL.Query().Get("notice")] }

// session returns the request's session, or accounts.ErrNoSession.
func (s *Server) session(r *http.Request) (accounts.Session, error) {
	c, err := r.Cookie(s.sessionCookie)
	if err != nil {
		return accounts.Session{}, accounts.ErrNoSession
	}
	return s.acc.Authenticate(r.Context(), c.Value)
}

func (s *Server) setSession(w http.ResponseWriter, sess accounts.Session) {
	http.SetCookie(w, s.cookie(s.sessionCookie, sess.Token, int(sess.ExpiresAt.Sub(s.now()).Seconds())))
	// The pre-session key has done its work; a fresh one is made when a form needs it.
	http.SetCookie(w, s.cookie(s.preCookie, "", -1))
}

func (s *Server) clearSession(w http.ResponseWriter) {
	http.SetCookie(w, s.cookie(s.sessionCookie, "", -1))
}

// loggedIn reports whether the request has a valid session; a database error counts as not.
func (s *Server) loggedIn(r *http.Request) (accounts.Session, bool) {
	sess, err := s.session(r)
	return sess, err == nil
}

// publicView is the view of a logged-out page: its forms are signed with the pre-session key.
func (s *Server) publicView(w http.ResponseWriter, r *http.Request, title, page string) *view {
	v := s.newView(title, page, s.preKey(w, r))
	v.Notice = notice(r)
	return v
}

// planCard is a plan as the pages show it.
type planCard struct {
	ID, Name, Description string
	Price, Credits        string
	Models                []modelOption
	Dedicated             bool
}

func planCards(ps []billing.Plan) []planCard {
	out := make([]planCard, 0, len(ps))
	for _, p := range ps {
		c := planCard{ID: p.ID, Name: p.Name, Description: p.Description, Price: p.PriceText(),
			Credits: p.Credits().Dollars(), Dedicated: p.Placement == billing.PlacementDedicated}
		for _, m := range p.Models {
			c.Models = append(c.Models, modelOption{Value: m, Label: modelLabel(m)})
		}
		out = append(out, c)
	}
	return out
}

// modelOption is a model in a select: its id, a readable label, and the plans offering it.
type modelOption struct {
	Value, Label, Plans string
}

// modelLabel reads "anthropic/claude-sonnet-4-5" as "Claude Sonnet 4.5 · Anthropic" and
// "openai/gpt-5-mini" as "GPT-5 Mini · OpenAI".
func modelLabel(m string) string {
	provider, name, ok := strings.Cut(m, "/")
	if !ok || name == "" {
		return m
	}
	providers := map[string]string{"anthropic": "Anthropic", "openai": "OpenAI", "google": "Google", "openrouter": "OpenRouter", "xai": "xAI", "groq": "Groq", "mistral": "Mistral"}
	p, ok := providers[provider]
	if !ok {
		p = upperFirst(provider)
	}
	return prettyModel(name) + " · " + p
}

// prettyModel writes a model id as people say it: words capitalised, version numbers joined
// with dots ("4-5" is 4.5), GPT in capitals with its number ("GPT-5").
func prettyModel(name string) string {
	isNum := func(s string) bool { return s != "" && strings.Trim(s, "0123456789") == "" }
	var words []string
	for _, tok := range strings.Split(name, "-") {
		n := len(words)
		switch {
		case tok == "":
		case isNum(tok) && n > 0 && isNum(strings.ReplaceAll(words[n-1], ".", "")):
			words[n-1] += "." + tok
		case isNum(tok) && n > 0 && words[n-1] == "GPT":
			words[n-1] += "-" + tok
		case strings.EqualFold(tok, "gpt"):
			words = append(words, "GPT")
		default:
			words = append(words, upperFirst(tok))
		}
	}
	if len(words) == 0 {
		return name
	}
	return strings.Join(words, " ")
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// sentence makes an error message (lower case, as Go writes them) read as a sentence on a
// page: a capital first letter and a full stop.
func sentence(msg string) string {
	msg = strings.TrimSpace(msg)
	if msg == "" {
		return msg
	}
	r, n := utf8.DecodeRuneInString(msg)
	msg = string(unicode.ToUpper(r)) + msg[n:]
	if !strings.HasSuffix(msg, ".") && !strings.HasSuffix(msg, "?") && !strings.HasSuffix(msg, "!") {
		msg += "."
	}
	return msg
}

func (s *Server) planByID(id string) (billing.Plan, bool) {
	for _, p := range s.bill.Plans() {
		if p.ID == id {
			return p, true
		}
	}
	return billing.Plan{}, false
}

type landingData struct {
	Plans []planCard
}

func (s *Server) landing(w http.ResponseWriter, r *http.Request) error {
	v := s.publicView(w, r, "Your own AI assistant, on the apps you already use", "landing")
	v.Desc = "PocketMolt runs a private AI assistant for you on Telegram, WhatsApp and the web. Pick a plan, connect a channel, and it is live in about a minute."
	if sess, ok := s.loggedIn(r); ok {
		v.User, v.key = &sess.User, sess.CSRFKey
	}
	v.Data = landingData{Plans: planCards(s.bill.Plans())}
	return s.render(w, http.StatusOK, "landing", v)
}

// signupData carries the plan chosen on the landing page through sign-up to onboarding.
type signupData struct {
	Plan *planCard
}

func (s *Server) signupView(w http.ResponseWriter, r *http.Request, plan string) *view {
	v := s.publicView(w, r, "Create your account", "signup")
	d := signupData{}
	if p, ok := s.planByID(plan); ok {
		c := planCards([]billing.Plan{p})[0]
		d.Plan = &c
		v.Values["plan"] = p.ID
	}
	v.Data = d
	return v
}

func (s *Server) signupForm(w http.ResponseWriter, r *http.Request) error {
	if _, ok := s.loggedIn(r); ok {
		http.Redirect(w, r, "/app", http.StatusSeeOther)
		return nil
	}
	return s.render(w, http.StatusOK, "signup", s.signupView(w, r, r.URL.Query().Get("plan")))
}

func (s *Server) signup(w http.ResponseWriter, r *http.Request) error {
	if err := parseForm(r); err != nil {
		return err
	}
	if err := s.checkPublicForm(r); err != nil {
		return errForm
	}
	email, plan := r.PostFormValue("email"), r.PostFormValue("plan")
	u, err := s.acc.Signup(r.Context(), email, r.PostFormValue("password"), s.clientIP(r))
	if err != nil {
		v := s.signupView(w, r, plan)
		v.Values["email"] = email
		return s.formFailed(w, r, "signup", v, err)
	}
	sess, err := s.acc.StartSession(r.Context(), u.ID)
	if err != nil {
		return err
	}
	s.setSession(w, sess)
	next := "/app/setup"
	if _, ok := s.planByID(plan); ok {
		next += "?plan=" + url.QueryEscape(plan)
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
	return nil
}

// formFailed shows a form again after err: field errors next to their fields (400), a
// customer-facing error above the form with its status (a rate limit's Retry-After too), or
// an internal error as "something went wrong".
func (s *Server) formFailed(w http.ResponseWriter, r *http.Request, page string, v *view, err error) error {
	var fe accounts.FieldErrors
	var bfe billing.FieldErrors
	var we *wire.Error
	status := http.StatusBadRequest
	switch {
	case errors.As(err, &fe):
		for k, m := range fe {
			v.Errors[k] = sentence(m)
		}
		v.Error = "Please fix what is marked below."
	case errors.As(err, &bfe):
		for k, m := range bfe {
			v.Errors[k] = sentence(m)
		}
		v.Error = "Please fix what is marked below."
	case errors.As(err, &we) && wire.HTTPStatus(we.Code) < 500:
		status, v.Error = wire.HTTPStatus(we.Code), sentence(we.Message)
		if we.RetryAfter > 0 {
			w.Header().Set("Retry-After", retryAfter(we))
		}
	default:
		status, v.Error = s.userMessage(r, err)
	}
	return s.render(w, status, page, v)
}

// retryAfter is a Retry-After header's value: whole seconds, rounded up.
func retryAfter(we *wire.Error) string {
	return strconv.FormatInt(int64((we.RetryAfter+time.Second-1)/time.Second), 10)
}

func (s *Server) loginForm(w http.ResponseWriter, r *http.Request) error {
	if _, ok := s.loggedIn(r); ok {
		http.Redirect(w, r, "/app", http.StatusSeeOther)
		return nil
	}
	return s.render(w, http.StatusOK, "login", s.publicView(w, r, "Log in", "login"))
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) error {
	if err := parseForm(r); err != nil {
		return err
	}
	if err := s.checkPublicForm(r); err != nil {
		return errForm
	}
	email := r.PostFormValue("email")
	sess, err := s.acc.Login(r.Context(), email, r.PostFormValue("password"), s.clientIP(r))
	if err != nil {
		v := s.publicView(w, r, "Log in", "login")
		v.Notice = ""
		v.Values["email"] = email
		return s.formFailed(w, r, "login", v, err)
	}
	s.setSession(w, sess)
	http.Redirect(w, r, "/app", http.StatusSeeOther)
	return nil
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) error {
	if err := parseForm(r); err != nil {
		return err
	}
	sess, err := s.session(r)
	if errors.Is(err, accounts.ErrNoSession) {
		s.clearSession(w)
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return nil
	}
	if err != nil {
		return err
	}
	if err := verifyForm(sess.CSRFKey, r.URL.Path, r.PostFormValue("csrf"), s.now(), s.formTTL); err != nil {
		return errForm
	}
	c, _ := r.Cookie(s.sessionCookie)
	if err := s.acc.Logout(r.Context(), c.Value); err != nil {
		return err
	}
	s.clearSession(w)
	http.Redirect(w, r, "/?notice=loggedout", http.StatusSeeOther)
	return nil
}

type forgotData struct {
	Sent bool
}

func (s *Server) forgotForm(w http.ResponseWriter, r *http.Request) error {
	v := s.publicView(w, r, "Reset your password", "forgot")
	v.Data = forgotData{}
	return s.render(w, http.StatusOK, "forgot", v)
}

func (s *Server) forgot(w http.ResponseWriter, r *http.Request) error {
	if err := parseForm(r); err != nil {
		return err
	}
	if err := s.checkPublicForm(r); err != nil {
		return errForm
	}
	email := r.PostFormValue("email")
	v := s.publicView(w, r, "Reset your password", "forgot")
	v.Values["email"] = strings.TrimSpace(email)
	err := s.acc.RequestReset(r.Context(), email, s.clientIP(r))
	if err != nil {
		v.Data = forgotData{}
		return s.formFailed(w, r, "forgot", v, err)
	}
	v.Data = forgotData{Sent: true}
	return s.render(w, http.StatusOK, "forgot", v)
}

// The reset page keeps the link's token out of the page and out of the browser's history:
// GET /reset?token=… moves it into a cookie for one hour and redirects to /reset, whose form
// posts the new password; the cookie goes with it.
const resetCookieMaxAge = 3600

func (s *Server) resetCookieName() string {
	if s.secure {
		return "__Host-pm_reset"
	}
	return "pm_reset"
}

type resetData struct {
	Invalid bool // the link is unusable: offer a new one
}

func (s *Server) resetForm(w http.ResponseWriter, r *http.Request) error {
	if tok := r.URL.Query().Get("token"); tok != "" {
		if _, err := accounts.ParseToken(tok); err != nil {
			v := s.publicView(w, r, "Reset your password", "reset")
			v.Error, v.Data = accounts.ErrResetInvalid.Error(), resetData{Invalid: true}
			return s.render(w, http.StatusBadRequest, "reset", v)
		}
		http.SetCookie(w, s.cookie(s.resetCookieName(), tok, resetCookieMaxAge))
		http.Redirect(w, r, "/reset", http.StatusSeeOther)
		return nil
	}
	v := s.publicView(w, r, "Choose a new password", "reset")
	if c, err := r.Cookie(s.resetCookieName()); err != nil || c.Value == "" {
		v.Error, v.Data = "Open the link from your email to choose a new password, or ask for a new link.", resetData{Invalid: true}
		return s.render(w, http.StatusBadRequest, "reset", v)
	}
	v.Data = resetData{}
	return s.render(w, http.StatusOK, "reset", v)
}

func (s *Server) reset(w http.ResponseWriter, r *http.Request) error {
	if err := parseForm(r); err != nil {
		return err
	}
	if err := s.checkPublicForm(r); err != nil {
		return errForm
	}
	token := ""
	if c, err := r.Cookie(s.resetCookieName()); err == nil {
		token = c.Value
	}
	err := s.acc.Reset(r.Context(), token, r.PostFormValue("password"), s.clientIP(r))
	if err != nil {
		v := s.publicView(w, r, "Choose a new password", "reset")
		d := resetData{}
		if errors.Is(err, accounts.ErrResetInvalid) || errors.Is(err, accounts.ErrResetExpired) || errors.Is(err, accounts.ErrResetUsed) {
			d.Invalid = true
			http.SetCookie(w, s.cookie(s.resetCookieName(), "", -1))
		}
		v.Data = d
		return s.formFailed(w, r, "reset", v, err)
	}
	http.SetCookie(w, s.cookie(s.resetCookieName(), "", -1))
	s.clearSession(w)
	http.Redirect(w, r, "/login?notice=password", http.StatusSeeOther)
	return nil
}
