package web

import (
	"log/slog"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/billing"
	"github.com/pocketmolt/pocketmolt/internal/bots"
	"github.com/pocketmolt/pocketmolt/internal/credits"
	"github.com/pocketmolt/pocketmolt/internal/fleet"
	"github.com/pocketmolt/pocketmolt/internal/pki"
	"github.com/pocketmolt/pocketmolt/internal/secret"
	"github.com/pocketmolt/pocketmolt/internal/store"
)

// realBilling is the real billing service in test billing mode, on the site's store, with
// the real bots service and fleet (no hosts: a paid bot waits for room).
func realBilling(t testing.TB, st *store.Store, now func() time.Time, log *slog.Logger) Billing {
	key, err := secret.NewKey("k1")
	if err != nil {
		t.Fatal(err)
	}
	kr, err := secret.NewKeyring(key)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.NewCA("test", now())
	if err != nil {
		t.Fatal(err)
	}
	fl := fleet.New(st, ca, fleet.Config{Now: now}, log)
	bs := bots.New(st, fl, kr, bots.Config{Now: now}, log)
	cfg := billing.Config{Plans: testPlans(), PublicURL: "https://pm.test", Now: now, TestMode: true,
		PlatformProviders: map[string]bool{"anthropic": true}}
	return billing.New(st, bs, &credits.Ledger{Store: st, Now: now}, kr, cfg, log)
}

// The pages with the real billing service: its answers, errors and stages come through as
// the customer should read them.
func TestWithRealBilling(t *testing.T) {
	s := newSite(t, siteOptions{billing: realBilling})
	b, uid := s.signup("ada@example.com")

	dash := b.get("/app")
	dash.want(t, http.StatusOK, "")
	dash.has(t, `data-stage="onboarding"`, "Set up your assistant: give it a name", `id="setup-link"`)

	// What only billing knows: an OpenAI model wants an OpenAI key.
	f := setupFields()
	f.Set("model", "openai/gpt-5-mini")
	f.Set("key_mode", "byok")
	f.Set("api_key", "sk-ant-api03-0123456789abcdef")
	p := b.submit(b.get("/app/setup"), "/app/setup", f)
	p.want(t, http.StatusBadRequest, "")
	if msg := p.fieldError(t, "api_key"); msg != "An OpenAI key starts with sk-." {
		t.Errorf("error next to the key: %q", msg)
	}
	p.lacks(t, "sk-ant-api03-0123456789abcdef")
	// Included credits for a provider without a platform key: billing says so.
	f.Set("key_mode", "credits")
	f.Del("api_key")
	p = b.submit(p, "/app/setup", f)
	p.want(t, http.StatusBadRequest, "")
	if msg := p.fieldError(t, "key_mode"); msg == "" {
		t.Error("no error next to the key mode")
	}

	b.submit(b.get("/app/setup"), "/app/setup", setupFields()).want(t, http.StatusSeeOther, "/app?notice=saved")
	dash = b.get("/app")
	dash.has(t, `data-stage="waiting_payment"`, "Subscribe to start your assistant.", `name="subscribe"`, "Claude Haiku 4.5 · Anthropic", "Web chat")
	stale := dash // a second tab, or a double click after the first answer

	b.submit(dash, "/app/subscribe", nil).want(t, http.StatusSeeOther, "/app")
	dash = b.get("/app")
	// No host has room: the customer reads that we are preparing, not a silent hang.
	dash.has(t, `data-stage="preparing"`, "We are preparing your assistant", "(test billing)", `name="cancel"`, "$5.00")
	dash.lacks(t, `name="subscribe"`)

	p = b.submit(stale, "/app/subscribe", nil)
	p.want(t, http.StatusConflict, "")
	p.has(t, "You already have a subscription.")

	b.submit(b.get("/app"), "/app/cancel", nil).want(t, http.StatusSeeOther, "/app?notice=cancelled")
	b.get("/app").has(t, `name="resume"`, "Ends on")
	b.submit(b.get("/app"), "/app/resume", nil).want(t, http.StatusSeeOther, "/app?notice=resumed")
	b.get("/app").has(t, `name="cancel"`, "Renews on")

	b.submit(b.get("/app/delete"), "/app/delete", url.Values{"email": {"ada@example.com"}}).want(t, http.StatusSeeOther, "/?notice=deleted")
	if _, err := s.acc.Get(t.Context(), uid); err == nil {
		t.Error("the account is still there")
	}
}
