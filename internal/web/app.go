package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/accounts"
	"github.com/pocketmolt/pocketmolt/internal/billing"
)

// appFunc is a handler of a logged-in page.
type appFunc func(w http.ResponseWriter, r *http.Request, sess accounts.Session) error

// app adapts fn for /app/*: without a valid session the request goes to /login and nothing
// is done; a POST must carry the form token for its path under the session's key.
func (s *Server) app(fn appFunc) http.Handler {
	return s.page(func(w http.ResponseWriter, r *http.Request) error {
		sess, err := s.session(r)
		if errors.Is(err, accounts.ErrNoSession) {
			if _, err := r.Cookie(s.sessionCookie); err == nil {
				s.clearSession(w) // a forged, expired or logged-out cookie: drop it
			}
			http.Redirect(w, r, "/login", http.StatusSeeOther)
			return nil
		}
		if err != nil {
			return err
		}
		if r.Method == http.MethodPost {
			if err := parseForm(r); err != nil {
				return err
			}
			if err := verifyForm(sess.CSRFKey, r.URL.Path, r.PostFormValue("csrf"), s.now(), s.formTTL); err != nil {
				s.log.InfoContext(r.Context(), "form token refused", "user_id", sess.User.ID, "path", r.URL.Path)
				return errForm
			}
		}
		return fn(w, r, sess)
	})
}

func (s *Server) appView(r *http.Request, sess accounts.Session, title, page string) *view {
	v := s.newView(title, page, sess.CSRFKey)
	v.User = &sess.User
	v.Notice = notice(r)
	return v
}

// stageLabels name the stages in a word or two; the longer text is billing's.
var stageLabels = map[string]string{
	billing.StageOnboarding:     "Not set up",
	billing.StageWaitingPayment: "Waiting for payment",
	billing.StagePreparing:      "Preparing",
	billing.StagePending:        "Queued",
	billing.StagePulling:        "Downloading",
	billing.StageStarting:       "Starting",
	billing.StageRunning:        "Running",
	billing.StageStopped:        "Stopped",
	billing.StageFailed:         "Needs attention",
	billing.StageUnknown:        "Out of touch",
}

func stageLabel(stage string) string {
	if l, ok := stageLabels[stage]; ok {
		return l
	}
	return "Unknown"
}

// status is the live part of the dashboard, sent over SSE and as /app/status.json. Actions
// names the buttons the dashboard shows: when it changes, the script reloads the page.
type status struct {
	Stage   string `json:"stage"`
	Label   string `json:"label"`
	Text    string `json:"text"`
	Actions string `json:"actions"`
}

// actions are the dashboard's buttons for an overview.
type actions struct {
	Setup, Subscribe, Restart, Portal, Cancel, Resume bool
}

func actionsOf(ov billing.Overview) actions {
	var a actions
	a.Setup = ov.Assistant == nil
	sub := ov.Subscription
	paid := sub != nil && billing.LiveStatus(sub.Status)
	a.Subscribe = ov.Assistant != nil && !paid
	a.Restart = ov.Bot != nil && paid
	a.Portal = sub != nil && sub.Source == "stripe"
	a.Cancel = paid && !sub.CancelAtPeriodEnd
	a.Resume = paid && sub.CancelAtPeriodEnd
	return a
}

func (a actions) String() string {
	var names []string
	for _, x := range []struct {
		on   bool
		name string
	}{{a.Setup, "setup"}, {a.Subscribe, "subscribe"}, {a.Restart, "restart"}, {a.Portal, "portal"}, {a.Cancel, "cancel"}, {a.Resume, "resume"}} {
		if x.on {
			names = append(names, x.name)
		}
	}
	return strings.Join(names, ",")
}

func statusOf(ov billing.Overview) status {
	return status{Stage: ov.Stage, Label: stageLabel(ov.Stage), Text: ov.StageText, Actions: actionsOf(ov).String()}
}

// dashData is what the dashboard shows.
type dashData struct {
	Ov        billing.Overview
	Status    status
	Do        actions
	PlanName  string
	Price     string
	Channels  []string
	KeyText   string
	PeriodEnd string
	Model     string // the model as people read it
	Usage     *usageView
}

func (s *Server) dashData(ov billing.Overview) dashData {
	d := dashData{Ov: ov, Status: statusOf(ov), Do: actionsOf(ov)}
	if a := ov.Assistant; a != nil {
		d.PlanName, d.Model = a.PlanName, modelLabel(a.Model)
		if p, ok := s.planByID(a.PlanID); ok {
			d.Price = p.PriceText()
			if d.PlanName == "" {
				d.PlanName = p.Name
			}
		}
		if a.Telegram {
			d.Channels = append(d.Channels, "Telegram")
		}
		if a.WhatsApp != "" {
			d.Channels = append(d.Channels, "WhatsApp "+a.WhatsApp)
		}
		if a.WebChat {
			d.Channels = append(d.Channels, "Web chat")
		}
		d.KeyText = "Included credits"
		if a.KeyMode == billing.KeyBYOK {
			d.KeyText = "Your own key"
			if a.KeyLast4 != "" {
				d.KeyText += " …" + a.KeyLast4
			}
		}
	}
	if sub := ov.Subscription; sub != nil && sub.PeriodEnd != nil {
		d.PeriodEnd = sub.PeriodEnd.UTC().Format("2 January 2006")
	}
	return d
}

func (s *Server) dashboard(w http.ResponseWriter, r *http.Request, sess accounts.Session) error {
	return s.showDashboard(w, r, sess, http.StatusOK, "")
}

// showDashboard renders the dashboard with an optional error above it.
func (s *Server) showDashboard(w http.ResponseWriter, r *http.Request, sess accounts.Session, status int, errText string) error {
	ov, err := s.bill.Overview(r.Context(), sess.User.ID)
	if err != nil {
		return err
	}
	v := s.appView(r, sess, "Your assistant", "dashboard")
	v.Error = errText
	if errText != "" {
		v.Notice = ""
	}
	d := s.dashData(ov)
	d.Usage = s.usageView(r.Context(), sess.User.ID, ov)
	v.Data = d
	return s.render(w, status, "dashboard", v)
}

// actionFailed shows the dashboard with what went wrong with an action: billing's message,
// or "something went wrong" for an internal error (logged).
func (s *Server) actionFailed(w http.ResponseWriter, r *http.Request, sess accounts.Session, err error) error {
	var fe billing.FieldErrors
	if errors.As(err, &fe) {
		msgs := make([]string, 0, len(fe))
		for _, m := range fe {
			msgs = append(msgs, sentence(m))
		}
		sort.Strings(msgs)
		return s.showDashboard(w, r, sess, http.StatusBadRequest, strings.Join(msgs, " "))
	}
	st, msg := s.userMessage(r, err)
	return s.showDashboard(w, r, sess, st, msg)
}

func (s *Server) statusJSON(w http.ResponseWriter, r *http.Request, sess accounts.Session) error {
	ov, err := s.bill.Overview(r.Context(), sess.User.ID)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	return json.NewEncoder(w).Encode(statusOf(ov))
}

// events streams the status as server-sent events: one "status" event at once and one each
// time it changes (checked every StatusInterval), a comment every 15 s so proxies keep the
// stream open, and the end after StreamFor or when the session ends (the browser reconnects).
func (s *Server) events(w http.ResponseWriter, r *http.Request, sess accounts.Session) error {
	ctx := r.Context()
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	var last []byte
	lastWrite := time.Now()
	write := func(b []byte) error {
		// The server's WriteTimeout is for ordinary pages; each write of a stream gets its own.
		_ = rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if _, err := w.Write(b); err != nil {
			return err
		}
		lastWrite = time.Now()
		return rc.Flush()
	}
	send := func() error {
		ov, err := s.bill.Overview(ctx, sess.User.ID)
		if err != nil {
			return err
		}
		b, _ := json.Marshal(statusOf(ov))
		if string(b) == string(last) {
			if time.Since(lastWrite) >= 15*time.Second {
				return write([]byte(": keep-alive\n\n"))
			}
			return nil
		}
		last = b
		return write(fmt.Appendf(nil, "event: status\ndata: %s\n\n", b))
	}
	w.WriteHeader(http.StatusOK)
	if err := write([]byte("retry: 3000\n\n")); err != nil {
		return nil // the browser went away
	}
	if err := send(); err != nil {
		return s.streamEnded(r, err)
	}
	tick := time.NewTicker(s.interval)
	defer tick.Stop()
	end := time.NewTimer(s.streamFor)
	defer end.Stop()
	recheck := time.Now()
	c, _ := r.Cookie(s.sessionCookie)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-end.C:
			return nil
		case <-tick.C:
		}
		if time.Since(recheck) >= 30*time.Second {
			recheck = time.Now()
			if _, err := s.acc.Authenticate(ctx, c.Value); err != nil {
				return nil // logged out (here or everywhere) or expired: the stream ends
			}
		}
		if err := send(); err != nil {
			return s.streamEnded(r, err)
		}
	}
}

// streamEnded logs why a stream stopped; a response has begun, so there is nothing to render.
func (s *Server) streamEnded(r *http.Request, err error) error {
	if r.Context().Err() == nil {
		s.log.WarnContext(r.Context(), "status stream ended", "path", r.URL.Path, "error", err.Error())
	}
	return nil
}

func (s *Server) subscribe(w http.ResponseWriter, r *http.Request, sess accounts.Session) error {
	to, err := s.bill.Subscribe(r.Context(), sess.User.ID)
	if err != nil {
		return s.actionFailed(w, r, sess, err)
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
	return nil
}

// checkoutSessionRE is the shape of a Stripe Checkout Session id.
var checkoutSessionRE = regexp.MustCompile(`^cs_[A-Za-z0-9_]{1,250}$`)

func (s *Server) checkoutReturn(w http.ResponseWriter, r *http.Request, sess accounts.Session) error {
	id := r.URL.Query().Get("session_id")
	if !checkoutSessionRE.MatchString(id) {
		return s.showDashboard(w, r, sess, http.StatusBadRequest, "This payment link is not complete. If you paid, your assistant appears here in a moment; if not, press Subscribe again.")
	}
	if err := s.bill.CheckoutReturned(r.Context(), sess.User.ID, id); err != nil {
		return s.actionFailed(w, r, sess, err)
	}
	http.Redirect(w, r, "/app?notice=paid", http.StatusSeeOther)
	return nil
}

func (s *Server) portal(w http.ResponseWriter, r *http.Request, sess accounts.Session) error {
	to, err := s.bill.Portal(r.Context(), sess.User.ID, s.publicURL+"/app")
	if err != nil {
		return s.actionFailed(w, r, sess, err)
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
	return nil
}

// simpleAction is a button that calls billing and comes back to the dashboard with a notice.
func (s *Server) simpleAction(w http.ResponseWriter, r *http.Request, sess accounts.Session, do func(userID string) error, note string) error {
	if err := do(sess.User.ID); err != nil {
		return s.actionFailed(w, r, sess, err)
	}
	http.Redirect(w, r, "/app?notice="+note, http.StatusSeeOther)
	return nil
}

func (s *Server) cancel(w http.ResponseWriter, r *http.Request, sess accounts.Session) error {
	return s.simpleAction(w, r, sess, func(id string) error { return s.bill.Cancel(r.Context(), id) }, "cancelled")
}

func (s *Server) resume(w http.ResponseWriter, r *http.Request, sess accounts.Session) error {
	return s.simpleAction(w, r, sess, func(id string) error { return s.bill.Resume(r.Context(), id) }, "resumed")
}

func (s *Server) restart(w http.ResponseWriter, r *http.Request, sess accounts.Session) error {
	return s.simpleAction(w, r, sess, func(id string) error { return s.bill.Restart(r.Context(), id) }, "restarted")
}

func (s *Server) deleteForm(w http.ResponseWriter, r *http.Request, sess accounts.Session) error {
	return s.render(w, http.StatusOK, "delete", s.appView(r, sess, "Delete your account", "delete"))
}

func (s *Server) deleteAccount(w http.ResponseWriter, r *http.Request, sess accounts.Session) error {
	typed := r.PostFormValue("email")
	if norm, err := accounts.NormalizeEmail(typed); err != nil || norm != sess.User.Email {
		v := s.appView(r, sess, "Delete your account", "delete")
		v.Values["email"] = typed
		v.Errors["email"] = "Type your account's email address, " + sess.User.Email + ", to confirm."
		return s.render(w, http.StatusBadRequest, "delete", v)
	}
	if err := s.bill.DeleteCustomer(r.Context(), sess.User.ID); err != nil {
		v := s.appView(r, sess, "Delete your account", "delete")
		st, msg := s.userMessage(r, err)
		v.Error = msg
		return s.render(w, st, "delete", v)
	}
	s.log.InfoContext(r.Context(), "customer deleted their account", "user_id", sess.User.ID)
	s.clearSession(w)
	http.Redirect(w, r, "/?notice=deleted", http.StatusSeeOther)
	return nil
}
