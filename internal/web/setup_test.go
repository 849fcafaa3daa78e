package web

import (
	"math"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/billing"
)

func TestModelLabel(t *testing.T) {
	for in, want := range map[string]string{
		"anthropic/claude-sonnet-4-5": "Claude Sonnet 4.5 · Anthropic",
		"anthropic/claude-haiku-4-5":  "Claude Haiku 4.5 · Anthropic",
		"openai/gpt-5-mini":           "GPT-5 Mini · OpenAI",
		"openai/gpt-4.1":              "GPT 4.1 · OpenAI",
		"google/gemini-2-5-pro":       "Gemini 2.5 Pro · Google",
		"acme/x":                      "X · Acme",
		"no-provider":                 "no-provider",
	} {
		if got := modelLabel(in); got != want {
			t.Errorf("modelLabel(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzSetupForm: the onboarding form is outside bytes. Whatever is posted, readSetup does not
// panic, never hands a secret back to be shown, and what it accepts is what billing expects.
func FuzzSetupForm(f *testing.F) {
	f.Add("Molt", "starter", "anthropic/claude-haiku-4-5", "on", "123456789:AAE-abcdefghijklmnopqrstuvwxyz01234", "+49 151 2345678", "on", "byok", "sk-ant-0123456789")
	f.Add("", "pro", "openai/gpt-5-mini", "", "", "0049151", "", "credits", "")
	f.Add("\x00", "gold", "", "on", "1:2", "++1", "on", "x", " ")
	f.Add(strings.Repeat("é", 61), "starter", "anthropic/claude-haiku-4-5", "", "", "", "", "credits", "k")
	s := &Server{bill: newFakeBilling(nil, true, time.Now)}
	e164 := regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)
	f.Fuzz(func(t *testing.T, name, plan, model, tg, token, wa, web, mode, key string) {
		form := url.Values{"name": {name}, "plan": {plan}, "model": {model}, "telegram": {tg}, "telegram_token": {token},
			"whatsapp": {wa}, "web_chat": {web}, "key_mode": {mode}, "api_key": {key}}
		r, _ := http.NewRequest(http.MethodPost, "/app/setup", strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		in, typed, errs := s.readSetup(r, billing.Overview{})
		if _, ok := typed["telegram_token"]; ok {
			t.Fatal("the token is among the values shown again")
		}
		if _, ok := typed["api_key"]; ok {
			t.Fatal("the key is among the values shown again")
		}
		if len(errs) > 0 {
			return
		}
		p, ok := s.planByID(in.PlanID)
		switch {
		case !ok || !p.OffersModel(in.Model):
			t.Fatalf("accepted plan %q with model %q", in.PlanID, in.Model)
		case in.WhatsApp != "" && !e164.MatchString(in.WhatsApp):
			t.Fatalf("accepted WhatsApp number %q", in.WhatsApp)
		case !in.Telegram && in.WhatsApp == "" && !in.WebChat:
			t.Fatal("accepted no channel")
		case in.Telegram && in.TelegramToken == "":
			t.Fatal("accepted Telegram without a token (none saved)")
		case in.KeyMode == billing.KeyBYOK && in.APIKey == "", in.KeyMode == billing.KeyCredits && in.APIKey != "":
			t.Fatalf("key mode %q with a key of %d bytes", in.KeyMode, len(in.APIKey))
		case in.KeyMode != billing.KeyBYOK && in.KeyMode != billing.KeyCredits:
			t.Fatalf("accepted key mode %q", in.KeyMode)
		case in.Name == "" || len([]rune(in.Name)) > maxNameChars:
			t.Fatalf("accepted name %q", in.Name)
		}
	})
}

// TestContrast checks the stylesheet's colour pairs against WCAG 2's contrast ratio: 4.5:1
// for text, 3:1 for input borders and the focus ring.
func TestContrast(t *testing.T) {
	css, err := assets.ReadFile("static/style.css")
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{"white": "#ffffff"}
	for _, m := range regexp.MustCompile(`--([a-z-]+):\s*(#[0-9a-f]{6})`).FindAllStringSubmatch(string(css), -1) {
		vars[m[1]] = m[2]
	}
	for _, tc := range []struct {
		fg, bg string
		min    float64
	}{
		{"ink", "white", 4.5}, {"muted", "white", 4.5}, {"muted", "soft", 4.5}, {"muted", "brand-soft", 4.5},
		{"white", "brand", 4.5}, {"white", "brand-dark", 4.5}, {"link", "white", 4.5}, {"brand", "brand-soft", 4.5},
		{"ok-ink", "ok-bg", 4.5}, {"warn-ink", "warn-bg", 4.5}, {"err-ink", "err-bg", 4.5}, {"info-ink", "info-bg", 4.5},
		{"err-ink", "white", 4.5},
		{"field", "white", 3}, {"focus", "white", 3},
	} {
		fg, bg := vars[tc.fg], vars[tc.bg]
		if fg == "" || bg == "" {
			t.Errorf("no colour --%s or --%s in the stylesheet", tc.fg, tc.bg)
			continue
		}
		if r := contrast(fg, bg); r < tc.min {
			t.Errorf("--%s on --%s: %.2f:1, want at least %.1f:1", tc.fg, tc.bg, r, tc.min)
		}
	}
}

func contrast(a, b string) float64 {
	lum := func(hex string) float64 {
		var c [3]float64
		for i := range c {
			v, _ := strconv.ParseUint(hex[1+2*i:3+2*i], 16, 8)
			x := float64(v) / 255
			if x <= 0.03928 {
				c[i] = x / 12.92
			} else {
				c[i] = math.Pow((x+0.055)/1.055, 2.4)
			}
		}
		return 0.2126*c[0] + 0.7152*c[1] + 0.0722*c[2]
	}
	la, lb := lum(a), lum(b)
	return (math.Max(la, lb) + 0.05) / (math.Min(la, lb) + 0.05)
}
