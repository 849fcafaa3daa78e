package web

import (
	"errors"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/pocketmolt/pocketmolt/internal/accounts"
	"github.com/pocketmolt/pocketmolt/internal/billing"
	"github.com/pocketmolt/pocketmolt/internal/openclaw"
)

// maxNameChars bounds an assistant's name (billing's bound): it is shown in a heading.
const maxNameChars = 40

// e164RE is an E.164 number: +, a country code that does not start with 0, at most 15 digits.
var e164RE = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)

// setupData is what the onboarding form shows besides the typed values.
type setupData struct {
	Plans  []planCard
	Models []modelOption
	// First is true before the assistant was ever saved.
	First bool
	// TelegramSaved and KeyLast4 say a secret is stored, without showing it.
	TelegramSaved bool
	KeyLast4      string
}

func (s *Server) setupView(r *http.Request, sess accounts.Session, ov billing.Overview) *view {
	title := "Set up your assistant"
	if ov.Assistant != nil {
		title = "Change your assistant"
	}
	v := s.appView(r, sess, title, "setup")
	plans := s.bill.Plans()
	d := setupData{Plans: planCards(plans), First: ov.Assistant == nil}
	// One option per model, naming the plans that offer it: the script hides the models the
	// chosen plan lacks; without script the server says so.
	seen := map[string]bool{}
	for _, p := range plans {
		for _, m := range p.Models {
			if seen[m] {
				continue
			}
			seen[m] = true
			var ids []string
			for _, q := range plans {
				if q.OffersModel(m) {
					ids = append(ids, q.ID)
				}
			}
			d.Models = append(d.Models, modelOption{Value: m, Label: modelLabel(m), Plans: strings.Join(ids, " ")})
		}
	}
	if a := ov.Assistant; a != nil {
		d.TelegramSaved = a.Telegram
		if a.KeyMode == billing.KeyBYOK {
			d.KeyLast4 = a.KeyLast4
		}
	}
	v.Data = d
	return v
}

// fillFromOverview puts the saved choices, or sensible defaults, into the form.
func (s *Server) fillFromOverview(v *view, ov billing.Overview, wantPlan string) {
	if a := ov.Assistant; a != nil {
		v.Values["name"], v.Values["plan"], v.Values["model"] = a.Name, a.PlanID, a.Model
		v.Values["whatsapp"], v.Values["key_mode"] = a.WhatsApp, a.KeyMode
		if a.Telegram {
			v.Values["telegram"] = "on"
		}
		if a.WebChat {
			v.Values["web_chat"] = "on"
		}
		return
	}
	plans := s.bill.Plans()
	if len(plans) == 0 {
		return
	}
	p := plans[0]
	if wp, ok := s.planByID(wantPlan); ok {
		p = wp
	}
	v.Values["plan"], v.Values["model"] = p.ID, p.Models[0]
	v.Values["web_chat"], v.Values["key_mode"] = "on", billing.KeyCredits
}

func (s *Server) setupForm(w http.ResponseWriter, r *http.Request, sess accounts.Session) error {
	ov, err := s.bill.Overview(r.Context(), sess.User.ID)
	if err != nil {
		return err
	}
	v := s.setupView(r, sess, ov)
	s.fillFromOverview(v, ov, r.URL.Query().Get("plan"))
	return s.render(w, http.StatusOK, "setup", v)
}

func (s *Server) setup(w http.ResponseWriter, r *http.Request, sess accounts.Session) error {
	ov, err := s.bill.Overview(r.Context(), sess.User.ID)
	if err != nil {
		return err
	}
	in, typed, errs := s.readSetup(r, ov)
	v := s.setupView(r, sess, ov)
	v.Values = typed
	if len(errs) > 0 {
		v.Errors = errs
		v.Error = "Please fix what is marked below."
		return s.render(w, http.StatusBadRequest, "setup", v)
	}
	if err := s.bill.SaveAssistant(r.Context(), sess.User.ID, in); err != nil {
		var fe billing.FieldErrors
		if !errors.As(err, &fe) {
			v.Notice = ""
		}
		return s.formFailed(w, r, "setup", v, err)
	}
	http.Redirect(w, r, "/app?notice=saved", http.StatusSeeOther)
	return nil
}

// readSetup reads and checks the onboarding form. typed is what to show again (never the
// token or key); errs is keyed like billing.FieldErrors.
func (s *Server) readSetup(r *http.Request, ov billing.Overview) (billing.AssistantInput, map[string]string, map[string]string) {
	f := func(k string) string { return strings.TrimSpace(r.PostFormValue(k)) }
	in := billing.AssistantInput{
		Name: f("name"), PlanID: f("plan"), Model: f("model"),
		Telegram: r.PostFormValue("telegram") != "", TelegramToken: f("telegram_token"),
		WebChat: r.PostFormValue("web_chat") != "", KeyMode: f("key_mode"), APIKey: f("api_key"),
	}
	typed := map[string]string{"name": in.Name, "plan": in.PlanID, "model": in.Model, "whatsapp": f("whatsapp"), "key_mode": in.KeyMode}
	if in.Telegram {
		typed["telegram"] = "on"
	}
	if in.WebChat {
		typed["web_chat"] = "on"
	}
	errs := map[string]string{}
	saved := ov.Assistant

	switch n := utf8.RuneCountInString(in.Name); {
	case n == 0:
		errs["name"] = "Give your assistant a name."
	case n > maxNameChars:
		errs["name"] = "Use at most " + strconv.Itoa(maxNameChars) + " characters."
	case strings.IndexFunc(in.Name, unicode.IsControl) >= 0 || !utf8.ValidString(in.Name):
		errs["name"] = "Use letters, digits, spaces and punctuation only."
	}
	plan, ok := s.planByID(in.PlanID)
	if !ok {
		errs["plan"] = "Choose one of the plans."
	} else if !plan.OffersModel(in.Model) {
		errs["model"] = "The " + plan.Name + " plan does not offer this model; choose one of: " + labels(plan.Models) + "."
	}

	if in.Telegram {
		switch {
		case in.TelegramToken == "" && (saved == nil || !saved.Telegram):
			errs["telegram_token"] = "Paste the token @BotFather gave you when you made your bot."
		case in.TelegramToken != "":
			if err := openclaw.ValidateTelegramToken(in.TelegramToken); err != nil {
				errs["telegram_token"] = "This is not a bot token from @BotFather (" + reason(err) +
					"). A token is the bot's number, a colon, and 35 letters, digits, - or _, such as 123456789:AAE…"
			}
		}
	} else {
		in.TelegramToken = ""
	}
	if wa := typed["whatsapp"]; wa != "" {
		// People write numbers with spaces, dashes, dots and brackets; E.164 has none.
		n := strings.Map(func(r rune) rune {
			if strings.ContainsRune(" -.()/\u00a0", r) {
				return -1
			}
			return r
		}, wa)
		if strings.HasPrefix(n, "00") {
			n = "+" + n[2:]
		}
		if !e164RE.MatchString(n) {
			errs["whatsapp"] = "Write the number in international form with its country code, such as +49 151 23456789."
		}
		in.WhatsApp = n
	}
	if !in.Telegram && in.WhatsApp == "" && !in.WebChat {
		errs["channels"] = "Choose at least one way to talk to your assistant."
	}

	switch in.KeyMode {
	case billing.KeyCredits:
		in.APIKey = ""
	case billing.KeyBYOK:
		hasKey := saved != nil && saved.KeyMode == billing.KeyBYOK && saved.KeyLast4 != ""
		switch {
		case in.APIKey == "" && !hasKey:
			errs["api_key"] = "Paste your API key, or choose the included credits."
		case in.APIKey != "":
			if err := openclaw.ValidateAPIKey(in.APIKey); err != nil {
				errs["api_key"] = "This does not look like an API key (" + reason(err) + "). Copy it again from your provider's console."
			}
		}
	default:
		errs["key_mode"] = "Choose who pays for the model: the included credits or your own key."
	}
	return in, typed, errs
}

// reason is a validation error's reason without its field name or the form it wants (the
// page says that its own way); it never holds the value.
func reason(err error) string {
	var ve *openclaw.ValidationError
	if errors.As(err, &ve) {
		r, _, _ := strings.Cut(ve.Reason, "; want")
		return strings.TrimSuffix(r, ";")
	}
	return "it has the wrong shape"
}

func labels(models []string) string {
	out := make([]string, len(models))
	for i, m := range models {
		out[i] = modelLabel(m)
	}
	return strings.Join(out, ", ")
}
