package web

import (
	"bufio"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/accounts"
	"github.com/pocketmolt/pocketmolt/internal/billing"
	"github.com/pocketmolt/pocketmolt/internal/ratelimit"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// The journey in test billing mode: landing → sign-up → onboarding → subscribe → live status
// → restart → cancel → resume → log out → log in.
func TestJourney(t *testing.T) {
	s := newSite(t, siteOptions{})
	b := s.browser()

	home := b.get("/")
	home.want(t, http.StatusOK, "")
	home.has(t, `<html lang="en">`, `name="viewport"`, "Test billing — no card is charged", "How it works",
		"Starter", "€19.00", "$5.00", "Pro", "€49.00", "$20.00", "A server of your own", `href="/signup?plan=pro"`)

	// Sign up from the Pro card: the plan follows to onboarding.
	p := b.get("/signup?plan=pro")
	p.has(t, `name="plan" value="pro"`, "<strong>Pro</strong>")
	p = b.submit(p, "/signup", url.Values{"email": {"Ada@Example.com"}, "password": {goodPassword}, "plan": {"pro"}})
	p.want(t, http.StatusSeeOther, "/app/setup?plan=pro")
	sc := b.cookie("pm_session")
	if sc == nil {
		t.Fatal("no session cookie after sign-up")
	}
	u, err := s.acc.Get(t.Context(), "ada@example.com")
	if err != nil {
		t.Fatal(err)
	}

	setup := b.get("/app/setup?plan=pro")
	setup.want(t, http.StatusOK, "")
	setup.has(t, `id="plan-pro" name="plan" value="pro" checked`, `<option value="anthropic/claude-sonnet-4-5" data-plans="pro" selected>`)
	const tgToken = "123456789:AAE-abcdefghijklmnopqrstuvwxyz01234"
	const apiKey = "sk-ant-api03-secretsecretsecret-WXYZ"
	fields := url.Values{
		"name": {"Molt"}, "plan": {"pro"}, "model": {"anthropic/claude-sonnet-4-5"},
		"telegram": {"on"}, "telegram_token": {tgToken}, "whatsapp": {"+49 151 2345-6789"},
		"web_chat": {"on"}, "key_mode": {"byok"}, "api_key": {apiKey},
	}
	b.submit(setup, "/app/setup", fields).want(t, http.StatusSeeOther, "/app?notice=saved")
	got := s.bill.snapshot(u.ID)
	want := billing.AssistantInput{Name: "Molt", PlanID: "pro", Model: "anthropic/claude-sonnet-4-5", Telegram: true,
		TelegramToken: tgToken, WhatsApp: "+4915123456789", WebChat: true, KeyMode: "byok", APIKey: apiKey}
	if got.in != want {
		t.Fatalf("billing got %+v\nwant %+v", got.in, want)
	}

	// Secrets are never shown again: only the key's last four characters.
	again := b.get("/app/setup")
	again.has(t, "A key ending in …WXYZ is saved", "A token is saved")
	if wa := again.inputValue(t, "whatsapp"); wa != "+4915123456789" {
		t.Errorf("the saved WhatsApp number shows as %q", wa)
	}
	again.lacks(t, apiKey, tgToken, "secretsecret")

	// Saving again without the secrets keeps them.
	fields.Del("telegram_token")
	fields.Del("api_key")
	b.submit(again, "/app/setup", fields).want(t, http.StatusSeeOther, "/app?notice=saved")
	if got := s.bill.snapshot(u.ID); got.in.APIKey != apiKey || got.in.TelegramToken != tgToken {
		t.Errorf("saving without secrets lost them: %+v", got.in)
	}

	dash := b.get("/app?notice=saved")
	dash.want(t, http.StatusOK, "")
	dash.has(t, "Your settings are saved.", `data-stage="waiting_payment"`, `name="subscribe"`, "Your own key …WXYZ",
		"Telegram, WhatsApp +4915123456789, Web chat", "€49.00")
	dash.lacks(t, `name="restart"`, `name="cancel"`, apiKey)

	p = b.submit(dash, "/app/subscribe", nil)
	p.want(t, http.StatusSeeOther, "/app")
	dash = b.get("/app")
	dash.has(t, `data-stage="pending"`, `name="restart"`, `name="cancel"`, "Renews on", "(test billing)")
	dash.lacks(t, `name="subscribe"`, `name="portal"`) // no Stripe in test mode

	// The live status, as JSON and as events.
	var st status
	js := b.get("/app/status.json")
	if err := json.Unmarshal([]byte(js.body), &st); err != nil || st.Stage != "pending" || st.Label != "Queued" || !strings.Contains(st.Actions, "restart") {
		t.Fatalf("status.json = %s (%v)", js.body, err)
	}
	if ct := js.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("status.json Content-Type %q", ct)
	}
	events := b.events(t)
	if e := events.next(t); e.Stage != "pending" {
		t.Fatalf("first event %+v, want pending", e)
	}
	s.bill.setStage(u.ID, billing.StageRunning)
	if e := events.next(t); e.Stage != "running" || e.Label != "Running" || e.Text != "Your assistant is running." {
		t.Fatalf("next event %+v, want running", e)
	}
	events.close()

	b.submit(b.get("/app"), "/app/restart", nil).want(t, http.StatusSeeOther, "/app?notice=restarted")
	if got := s.bill.snapshot(u.ID); got.restarts != 1 {
		t.Errorf("%d restarts, want 1", got.restarts)
	}
	b.submit(b.get("/app"), "/app/cancel", nil).want(t, http.StatusSeeOther, "/app?notice=cancelled")
	dash = b.get("/app?notice=cancelled")
	dash.has(t, "will end at the end of this period", `name="resume"`, "Ends on")
	dash.lacks(t, `name="cancel"`)
	b.submit(dash, "/app/resume", nil).want(t, http.StatusSeeOther, "/app?notice=resumed")

	// Log out: the session is gone, /app sends to /login.
	b.submit(b.get("/app"), "/logout", nil).want(t, http.StatusSeeOther, "/?notice=loggedout")
	b.get("/app").want(t, http.StatusSeeOther, "/login")
	if _, err := s.acc.Authenticate(t.Context(), sc.Value); !errors.Is(err, accounts.ErrNoSession) {
		t.Errorf("the old session after logout: %v", err)
	}
	b.get("/?notice=loggedout").has(t, "You are logged out.")

	p = b.fill("/login", "/login", url.Values{"email": {"ada@example.com"}, "password": {goodPassword}})
	p.want(t, http.StatusSeeOther, "/app")
	b.get("/app").has(t, "<h1>Molt</h1>", `data-stage="running"`)
	b.get("/login").want(t, http.StatusSeeOther, "/app")
	b.get("/signup").want(t, http.StatusSeeOther, "/app")

	// No secret reached the log: not the password, the key, the token or the session cookie.
	logs := s.logs.String()
	for _, secret := range []string{goodPassword, apiKey, tgToken, sc.Value} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log holds a secret (%d characters)", len(secret))
		}
	}
}

// With Stripe: Subscribe goes to Checkout, the return page confirms, Manage billing goes to
// the portal.
func TestStripeRedirects(t *testing.T) {
	s := newSite(t, siteOptions{stripe: true})
	b, uid := s.signup("bob@example.com")
	b.submit(b.get("/app/setup"), "/app/setup", setupFields()).want(t, http.StatusSeeOther, "/app?notice=saved")
	dash := b.get("/app")
	dash.lacks(t, "Test billing")
	b.submit(dash, "/app/subscribe", nil).want(t, http.StatusSeeOther, "https://checkout.stripe.com/c/pay/cs_test_fake")

	p := b.get("/app/checkout/return?session_id=cs_test_a1B2c3")
	p.want(t, http.StatusSeeOther, "/app?notice=paid")
	if got := s.bill.snapshot(uid); len(got.checkouts) != 1 || got.checkouts[0] != "cs_test_a1B2c3" {
		t.Errorf("checkouts %v", got.checkouts)
	}
	for _, bad := range []string{"", "pi_123", "cs_", "cs_x%22%3E%3Cscript%3E"} {
		p := b.get("/app/checkout/return?session_id=" + bad)
		p.want(t, http.StatusBadRequest, "")
		p.has(t, "This payment link is not complete")
		p.lacks(t, "<script>")
	}
	if n := s.bill.called("CheckoutReturned"); n != 1 {
		t.Errorf("CheckoutReturned called %d times, want 1 (malformed ids never reach billing)", n)
	}
	dash = b.get("/app?notice=paid")
	dash.has(t, "Thank you! Your payment went through", `name="portal"`)
	p = b.submit(dash, "/app/portal", nil)
	p.want(t, http.StatusSeeOther, "")
	if !strings.HasPrefix(p.location(), "https://billing.stripe.com/") || !strings.HasSuffix(p.location(), "return="+s.url+"/app") {
		t.Errorf("portal redirect %q, want Stripe's portal returning to %s/app", p.location(), s.url)
	}
}

// Billing's errors: a customer-facing message is shown; an internal error is not, and is
// logged.
func TestBillingErrors(t *testing.T) {
	s := newSite(t, siteOptions{})
	b, _ := s.signup("cy@example.com")

	dash := b.get("/app")
	dash.has(t, "Set up your assistant", `id="setup-link"`)
	dash.lacks(t, `name="subscribe"`)

	b.submit(b.get("/app/setup"), "/app/setup", setupFields()).want(t, http.StatusSeeOther, "/app?notice=saved")
	dash = b.get("/app")
	s.bill.failNext("Subscribe", wire.Errorf(wire.CodeConflict, "a checkout is already open for you"))
	p := b.submit(dash, "/app/subscribe", nil)
	p.want(t, http.StatusConflict, "")
	p.has(t, `role="alert"`, "A checkout is already open for you.")

	s.bill.failNext("Subscribe", errors.New("stripe: connection reset by peer at 10.0.0.7:443"))
	p = b.submit(b.get("/app"), "/app/subscribe", nil)
	p.want(t, http.StatusInternalServerError, "")
	p.has(t, "Something went wrong on our side")
	p.lacks(t, "connection reset", "10.0.0.7")
	if !strings.Contains(s.logs.String(), "connection reset by peer") {
		t.Error("the internal error was not logged")
	}

	// Billing refuses a restart: its message, above the dashboard.
	b.submit(b.get("/app"), "/app/subscribe", nil).want(t, http.StatusSeeOther, "/app")
	s.bill.failNext("Restart", wire.Errorf(wire.CodeConflict, "your assistant is busy; try again in a minute"))
	p = b.submit(b.get("/app"), "/app/restart", nil)
	p.want(t, http.StatusConflict, "")
	p.has(t, "Your assistant is busy; try again in a minute.", `data-stage="pending"`)

	// The overview itself failing: an error page, not a blank.
	s.bill.failNext("Overview", errors.New("database is locked"))
	p = b.get("/app")
	p.want(t, http.StatusInternalServerError, "")
	p.has(t, "Something went wrong", "Reference: ")
	p.lacks(t, "database is locked")
}

func TestSignupBadInput(t *testing.T) {
	s := newSite(t, siteOptions{})
	s.signup("taken@example.com")
	for _, tc := range []struct {
		name, email, password, field, want string
	}{
		{"malformed email", "ada.example.com", goodPassword, "email", "not an email address"},
		{"an address with a name", "Ada <ada@example.com>", goodPassword, "email", "enter one address"},
		{"empty email", "", goodPassword, "email", "enter your email"},
		{"short password", "ada@example.com", "short", "password", "at least 10 characters"},
		{"common password", "ada@example.com", "password1234", "password", "most common"},
		{"duplicate", "Taken@Example.com", goodPassword, "email", "already exists"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := s.browser()
			p := b.fill("/signup", "/signup", url.Values{"email": {tc.email}, "password": {tc.password}})
			p.want(t, http.StatusBadRequest, "")
			if msg := p.fieldError(t, tc.field); !strings.Contains(strings.ToLower(msg), tc.want) {
				t.Errorf("error next to %s: %q, want %q", tc.field, msg, tc.want)
			}
			p.has(t, `aria-invalid="true"`, tc.field+`-error"`)
			if got := p.inputValue(t, "email"); got != tc.email {
				t.Errorf("the email field holds %q, want what was typed, %q", got, tc.email)
			}
			if p.inputValue(t, "password") != "" {
				t.Error("the password was echoed back")
			}
			p.lacks(t, "value=\""+tc.password+"\"")
			if b.cookie("pm_session") != nil {
				t.Error("a refused sign-up logged in")
			}
		})
	}
	if us, _ := s.acc.List(t.Context()); len(us) != 1 {
		t.Errorf("%d users, want 1", len(us))
	}
}

// A wrong password and an unknown email get the same page.
func TestLoginBadInput(t *testing.T) {
	s := newSite(t, siteOptions{})
	s.signup("ada@example.com")
	b := s.browser()
	wrong := b.fill("/login", "/login", url.Values{"email": {"ada@example.com"}, "password": {"not-my-password-9"}})
	unknown := b.fill("/login", "/login", url.Values{"email": {"nobody@example.com"}, "password": {goodPassword}})
	for _, p := range []*page{wrong, unknown} {
		p.want(t, http.StatusUnauthorized, "")
		p.has(t, `id="form-error" role="alert"`, "Email or password is wrong.", `aria-describedby="form-error"`)
		p.lacks(t, "not-my-password-9", goodPassword)
	}
	// Same page apart from the typed email and the form token.
	norm := func(p *page, email string) string {
		return csrfRE.ReplaceAllString(strings.ReplaceAll(p.body, email, "EMAIL"), "")
	}
	if norm(wrong, "ada@example.com") != norm(unknown, "nobody@example.com") {
		t.Error("a wrong password and an unknown email get different pages")
	}
	if b.cookie("pm_session") != nil {
		t.Error("a failed login set a session")
	}

	// A disabled account says so, but only after the right password.
	if _, err := s.acc.Disable(t.Context(), "admin:test", "ada@example.com"); err != nil {
		t.Fatal(err)
	}
	b.fill("/login", "/login", url.Values{"email": {"ada@example.com"}, "password": {"not-my-password-9"}}).has(t, "Email or password is wrong.")
	p := b.fill("/login", "/login", url.Values{"email": {"ada@example.com"}, "password": {goodPassword}})
	p.want(t, http.StatusForbidden, "")
	p.has(t, "This account is disabled.")
}

func TestLoginRateLimit(t *testing.T) {
	s := newSite(t, siteOptions{acc: func(c *accounts.Config) {
		c.Limits.LoginPerAccount = ratelimit.Limit{Burst: 3, Every: 5 * time.Minute}
	}})
	s.signup("ada@example.com")
	b := s.browser()
	for range 3 {
		b.fill("/login", "/login", url.Values{"email": {"ada@example.com"}, "password": {"guess-guess-guess"}}).want(t, http.StatusUnauthorized, "")
	}
	p := b.fill("/login", "/login", url.Values{"email": {"ada@example.com"}, "password": {goodPassword}})
	p.want(t, http.StatusTooManyRequests, "")
	p.has(t, "Too many login attempts", "try again in 5 minutes")
	if ra := p.header.Get("Retry-After"); ra != "300" {
		t.Errorf("Retry-After %q, want 300", ra)
	}
	s.clock.Add(5 * time.Minute)
	b.fill("/login", "/login", url.Values{"email": {"ada@example.com"}, "password": {goodPassword}}).want(t, http.StatusSeeOther, "/app")
}

func TestSetupBadInput(t *testing.T) {
	s := newSite(t, siteOptions{})
	b, uid := s.signup("ada@example.com")
	const badToken = "12345:short-secret-value"
	const badKey = "sk ant with spaces"
	for _, tc := range []struct {
		name   string
		change url.Values
		field  string
		want   string
	}{
		{"no name", url.Values{"name": {"  "}}, "name", "Give your assistant a name"},
		{"long name", url.Values{"name": {strings.Repeat("n", 41)}}, "name", "at most 40"},
		{"unknown plan", url.Values{"plan": {"gold"}}, "plan", "Choose one of the plans"},
		{"model not in the plan", url.Values{"model": {"anthropic/claude-sonnet-4-5"}}, "model", "does not offer this model"},
		{"telegram without a token", url.Values{"telegram": {"on"}}, "telegram_token", "Paste the token"},
		{"telegram token of the wrong shape", url.Values{"telegram": {"on"}, "telegram_token": {badToken}}, "telegram_token", "not a bot token from @BotFather (secret after ':' has 18 characters, not 35)"},
		{"phone number of the wrong shape", url.Values{"whatsapp": {"0151 2345"}}, "whatsapp", "international form"},
		{"phone number with letters", url.Values{"whatsapp": {"+49 CALL ME"}}, "whatsapp", "international form"},
		{"no channel", url.Values{"web_chat": {""}}, "channels", "at least one way"},
		{"empty key", url.Values{"key_mode": {"byok"}}, "api_key", "Paste your API key"},
		{"key of the wrong shape", url.Values{"key_mode": {"byok"}, "api_key": {badKey}}, "api_key", "does not look like an API key"},
		{"no key mode", url.Values{"key_mode": {""}}, "key_mode", "who pays"},
		{"a number billing refuses", url.Values{"whatsapp": {takenNumber}}, "whatsapp", "Another account uses this number."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := setupFields()
			f.Set("name", "My helper <3")
			for k, v := range tc.change {
				f[k] = v
			}
			p := b.submit(b.get("/app/setup"), "/app/setup", f)
			p.want(t, http.StatusBadRequest, "")
			if msg := p.fieldError(t, tc.field); !strings.Contains(msg, tc.want) {
				t.Errorf("error next to %s: %q, want %q", tc.field, msg, tc.want)
			}
			p.has(t, "Please fix what is marked below.")
			if tc.field != "name" && p.inputValue(t, "name") != "My helper <3" {
				t.Errorf("the name field holds %q, want what was typed", p.inputValue(t, "name"))
			}
			if wa := f.Get("whatsapp"); wa != "" && p.inputValue(t, "whatsapp") != wa {
				t.Errorf("the WhatsApp field holds %q, want %q", p.inputValue(t, "whatsapp"), wa)
			}
			if p.inputValue(t, "telegram_token") != "" || p.inputValue(t, "api_key") != "" {
				t.Error("a secret was echoed back into its field")
			}
			p.lacks(t, badToken, badKey, "short-secret-value")
		})
	}
	if got := s.bill.snapshot(uid); got.saved {
		t.Errorf("billing saved an assistant from a refused form: %+v", got.in)
	}
}

// Form tokens: missing, for another form, from another browser, expired, or a post from
// another site — each a 403 page saying to reload, and nothing done.
func TestFormTokens(t *testing.T) {
	s := newSite(t, siteOptions{})
	b, uid := s.signup("ada@example.com")
	b.submit(b.get("/app/setup"), "/app/setup", setupFields()).want(t, http.StatusSeeOther, "/app?notice=saved")
	dash := b.get("/app")
	good := dash.token(t, "/app/subscribe")

	other, _ := s.signup("eve@example.com")
	other.submit(other.get("/app/setup"), "/app/setup", setupFields()).want(t, http.StatusSeeOther, "/app?notice=saved")
	otherTok := other.get("/app").token(t, "/app/subscribe")

	for _, tc := range []struct {
		name string
		tok  string
		hdr  map[string]string
	}{
		{"missing", "", nil},
		{"malformed", "not-a-token", nil},
		{"for another form", dash.token(t, "/logout"), nil},
		{"from another session", otherTok, nil},
		{"cross-site fetch", good, map[string]string{"Sec-Fetch-Site": "cross-site"}},
		{"another origin", good, map[string]string{"Origin": "https://evil.example"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.hdr {
				b.hdr.Set(k, v)
			}
			defer func() { b.hdr = http.Header{} }()
			p := b.post("/app/subscribe", url.Values{"csrf": {tc.tok}})
			p.want(t, http.StatusForbidden, "")
			p.has(t, "This form has expired", "Reload the page and try again", "nothing was changed")
		})
	}
	if n := s.bill.called("Subscribe"); n != 0 {
		t.Fatalf("Subscribe was called %d times by refused posts", n)
	}
	// The refusal page keeps a logged-in customer's way back.
	b.post("/app/subscribe", url.Values{}).has(t, `href="/app">Back to your dashboard`, `name="logout"`)

	// An expired token: 12 hours is the limit.
	s.clock.Add(12*time.Hour + time.Minute)
	b.post("/app/subscribe", url.Values{"csrf": {good}}).want(t, http.StatusForbidden, "")
	if n := s.bill.called("Subscribe"); n != 0 {
		t.Fatalf("Subscribe was called by an expired token")
	}
	if got := s.bill.snapshot(uid); got.sub != nil {
		t.Fatal("a refused post subscribed")
	}

	// Logged-out forms: the token is bound to this browser's pre-session cookie.
	x, y := s.browser(), s.browser()
	xTok := x.get("/login").token(t, "/login")
	y.get("/login") // y has its own pre-session cookie
	y.post("/login", url.Values{"csrf": {xTok}, "email": {"ada@example.com"}, "password": {goodPassword}}).want(t, http.StatusForbidden, "")
	z := s.browser() // no pre-session cookie at all
	z.post("/login", url.Values{"csrf": {xTok}, "email": {"ada@example.com"}, "password": {goodPassword}}).want(t, http.StatusForbidden, "")
	x.post("/signup", url.Values{"csrf": {xTok}, "email": {"new@example.com"}, "password": {goodPassword}}).want(t, http.StatusForbidden, "")
	x.post("/login", url.Values{"csrf": {xTok}, "email": {"ada@example.com"}, "password": {goodPassword}}).want(t, http.StatusSeeOther, "/app")
	if _, err := s.acc.Get(t.Context(), "new@example.com"); err == nil {
		t.Error("a sign-up with another form's token made a user")
	}
}

// A forged, expired or logged-out session cookie sends /app/* to /login and is dropped.
func TestSessionCookies(t *testing.T) {
	s := newSite(t, siteOptions{})
	b, _ := s.signup("ada@example.com")
	c := b.cookie("pm_session")
	if c == nil {
		t.Fatal("no session cookie")
	}

	// The cookie's attributes, as the server sent them at a sign-up.
	b2 := s.browser()
	p := b2.fill("/signup", "/signup", url.Values{"email": {"attrs@example.com"}, "password": {goodPassword}})
	set := strings.Join(p.header.Values("Set-Cookie"), "\n")
	if !regexp.MustCompile(`pm_session=[A-Za-z0-9_-]{43}; Path=/; Max-Age=2592000; HttpOnly; SameSite=Lax`).MatchString(set) {
		t.Errorf("session cookie %q: want HttpOnly, SameSite=Lax, 30 days (no Secure on a loopback http URL)", set)
	}

	forger := s.browser()
	for _, v := range []string{"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "garbage", c.Value[:42] + "x"} {
		u, _ := url.Parse(s.url)
		forger.jar.SetCookies(u, []*http.Cookie{{Name: "pm_session", Value: v, Path: "/"}})
		p := forger.get("/app")
		p.want(t, http.StatusSeeOther, "/login")
		if !strings.Contains(strings.Join(p.header.Values("Set-Cookie"), ";"), "pm_session=; Path=/; Max-Age=0") {
			t.Errorf("a forged cookie %q was not dropped: %q", v, p.header.Values("Set-Cookie"))
		}
		forger.post("/app/subscribe", url.Values{}).want(t, http.StatusSeeOther, "/login")
		forger.get("/app/status.json").want(t, http.StatusSeeOther, "/login")
	}
	if n := s.bill.called("Subscribe"); n != 0 {
		t.Errorf("Subscribe called %d times without a session", n)
	}

	// Thirty days on, the session has expired.
	b.get("/app").want(t, http.StatusOK, "")
	s.clock.Add(accounts.DefaultSessionTTL)
	b.get("/app").want(t, http.StatusSeeOther, "/login")
}

func TestPasswordReset(t *testing.T) {
	s := newSite(t, siteOptions{})
	old, _ := s.signup("ada@example.com")

	b := s.browser()
	unknown := b.fill("/forgot", "/forgot", url.Values{"email": {"nobody@example.com"}})
	known := b.fill("/forgot", "/forgot", url.Values{"email": {"ada@example.com"}})
	for _, p := range []*page{unknown, known} {
		p.want(t, http.StatusOK, "")
		p.has(t, "If an account exists for", "works for one hour")
	}
	if strings.ReplaceAll(unknown.body, "nobody@example.com", "X") != strings.ReplaceAll(known.body, "ada@example.com", "X") {
		t.Error("the answer differs for a known and an unknown email")
	}
	bad := b.fill("/forgot", "/forgot", url.Values{"email": {"not an email"}})
	bad.want(t, http.StatusBadRequest, "")
	bad.fieldError(t, "email")

	link := regexp.MustCompile(`https?://\S+/reset\?token=[A-Za-z0-9_-]+`).FindString(s.out.last())
	if link == "" || !strings.HasPrefix(link, s.url+"/reset?token=") {
		t.Fatalf("no reset link in the email %q", s.out.last())
	}
	token := strings.TrimPrefix(link, s.url+"/reset?token=")

	// The link moves its token into a cookie and out of the address bar.
	p := b.get(strings.TrimPrefix(link, s.url))
	p.want(t, http.StatusSeeOther, "/reset")
	form := b.get("/reset")
	form.want(t, http.StatusOK, "")
	form.lacks(t, token)

	weak := b.submit(form, "/reset", url.Values{"password": {"short"}})
	weak.want(t, http.StatusBadRequest, "")
	if msg := weak.fieldError(t, "password"); !strings.Contains(msg, "at least 10") {
		t.Errorf("weak password: %q", msg)
	}
	weak.lacks(t, token)
	p = b.submit(weak, "/reset", url.Values{"password": {"copper-meadow-whistle"}})
	p.want(t, http.StatusSeeOther, "/login?notice=password")
	b.get("/login?notice=password").has(t, "Your password is changed")

	old.get("/app").want(t, http.StatusSeeOther, "/login") // logged out everywhere
	b.fill("/login", "/login", url.Values{"email": {"ada@example.com"}, "password": {"copper-meadow-whistle"}}).want(t, http.StatusSeeOther, "/app")

	// The link again: used.
	c := s.browser()
	c.get(strings.TrimPrefix(link, s.url))
	used := c.submit(c.get("/reset"), "/reset", url.Values{"password": {"another-fine-passphrase"}})
	used.want(t, http.StatusUnauthorized, "")
	used.has(t, "This reset link was already used; ask for a new one.", `href="/forgot"`)
	// A malformed link, and /reset without one.
	c.get("/reset?token=abc").want(t, http.StatusBadRequest, "")
	s.browser().get("/reset").has(t, "Open the link from your email")
	if strings.Contains(s.logs.String(), token) {
		t.Error("the reset token is in the log")
	}
}

func TestDeleteAccount(t *testing.T) {
	s := newSite(t, siteOptions{})
	b, uid := s.signup("ada@example.com")
	form := b.get("/app/delete")
	form.has(t, "cannot be undone", `name="delete"`)
	p := b.submit(form, "/app/delete", url.Values{"email": {"someone@example.com"}})
	p.want(t, http.StatusBadRequest, "")
	if msg := p.fieldError(t, "email"); !strings.Contains(msg, "ada@example.com") {
		t.Errorf("error %q", msg)
	}
	if p.inputValue(t, "email") != "someone@example.com" {
		t.Error("what was typed is not kept")
	}
	if n := s.bill.called("DeleteCustomer"); n != 0 {
		t.Fatal("deleted without the right confirmation")
	}
	p = b.submit(p, "/app/delete", url.Values{"email": {" ADA@example.com "}})
	p.want(t, http.StatusSeeOther, "/?notice=deleted")
	if _, err := s.acc.Get(t.Context(), uid); err == nil {
		t.Error("the user still exists")
	}
	b.get("/app").want(t, http.StatusSeeOther, "/login")
	b.get("/?notice=deleted").has(t, "Your account, your assistant and its data are deleted.")
}

func TestSecurityHeaders(t *testing.T) {
	s := newSite(t, siteOptions{})
	b, _ := s.signup("ada@example.com")
	b.submit(b.get("/app/setup"), "/app/setup", setupFields())
	anon := s.browser()
	pages := map[string]*page{
		"landing":   anon.get("/"),
		"signup":    anon.get("/signup"),
		"login":     anon.get("/login"),
		"forgot":    anon.get("/forgot"),
		"not found": anon.get("/no/such/page"),
		"403":       anon.post("/login", url.Values{}),
		"dashboard": b.get("/app"),
		"setup":     b.get("/app/setup"),
		"delete":    b.get("/app/delete"),
		"static":    anon.get("/static/style.css"),
	}
	for name, p := range pages {
		t.Run(name, func(t *testing.T) {
			h := p.header
			csp := h.Get("Content-Security-Policy")
			for _, want := range []string{"default-src 'none'", "script-src 'self'", "frame-ancestors 'none'", "base-uri 'none'", "form-action 'self'"} {
				if !strings.Contains(csp, want) {
					t.Errorf("CSP %q lacks %q", csp, want)
				}
			}
			if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
				t.Errorf("CSP allows inline code: %q", csp)
			}
			for k, v := range map[string]string{"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"} {
				if h.Get(k) != v {
					t.Errorf("%s = %q, want %q", k, h.Get(k), v)
				}
			}
			if name == "static" {
				return
			}
			if h.Get("Cache-Control") != "no-store" {
				t.Errorf("Cache-Control %q on a page", h.Get("Cache-Control"))
			}
			// Nothing inline that the CSP would block: no inline script, handlers or styles.
			for _, bad := range []*regexp.Regexp{regexp.MustCompile(`<script[^>]*>[^<]`), regexp.MustCompile(`\son[a-z]+=`), regexp.MustCompile(`\sstyle=`), regexp.MustCompile(`<style`)} {
				if m := bad.FindString(p.body); m != "" {
					t.Errorf("inline code %q on the page", m)
				}
			}
			for _, tag := range regexp.MustCompile(`<script[^>]*>`).FindAllString(p.body, -1) {
				if !strings.Contains(tag, ` src="/static/`) {
					t.Errorf("a script that is not a static file: %s", tag)
				}
			}
		})
	}
	if pages["not found"].status != http.StatusNotFound {
		t.Errorf("unknown page: %d", pages["not found"].status)
	}
}

// With an https public URL every cookie is Secure and __Host- prefixed, and HSTS is on.
func TestSecureCookies(t *testing.T) {
	s := newSite(t, siteOptions{web: func(c *Config) { c.PublicURL = "https://pm.example.com" }})
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "https://pm.example.com/login", nil)
	s.srv.ServeHTTP(rec, req)
	set := rec.Header().Get("Set-Cookie")
	if !strings.HasPrefix(set, "__Host-pm_pre=") || !strings.Contains(set, "; Secure") || !strings.Contains(set, "HttpOnly") || !strings.Contains(set, "SameSite=Lax") {
		t.Errorf("pre-session cookie %q", set)
	}
	if rec.Header().Get("Strict-Transport-Security") == "" {
		t.Error("no HSTS on an https site")
	}

	// Log in through the handler and look at the session cookie.
	if _, err := s.acc.Signup(t.Context(), "ada@example.com", goodPassword, "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	pre := rec.Result().Cookies()[0]
	tok := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(rec.Body.String())[1]
	form := url.Values{"csrf": {tok}, "email": {"ada@example.com"}, "password": {goodPassword}}
	req = httptest.NewRequest(http.MethodPost, "https://pm.example.com/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(pre)
	rec = httptest.NewRecorder()
	s.srv.ServeHTTP(rec, req)
	if rec.Code != http.StatusSeeOther {
		t.Fatalf("login: %d %s", rec.Code, rec.Body.String())
	}
	var session string
	for _, c := range rec.Header().Values("Set-Cookie") {
		if strings.HasPrefix(c, "__Host-pm_session=") {
			session = c
		}
	}
	if !strings.Contains(session, "; Secure") || !strings.Contains(session, "HttpOnly") || !strings.Contains(session, "SameSite=Lax") || !strings.Contains(session, "Path=/") {
		t.Errorf("session cookie %q: want __Host-, Secure, HttpOnly, SameSite=Lax, Path=/", session)
	}

	for _, tc := range []struct {
		url    string
		secure bool
	}{
		{"http://127.0.0.1:8080", false}, {"http://localhost:8080", false}, {"http://[::1]:8080", false},
		{"https://127.0.0.1:8443", true}, {"http://pm.example.com", true}, {"http://10.0.0.5:8080", true},
	} {
		srv, err := New(Config{Accounts: s.acc, Billing: s.bill, PublicURL: tc.url, Logger: s.srv.log})
		if err != nil {
			t.Fatal(err)
		}
		if srv.secure != tc.secure {
			t.Errorf("public url %s: secure=%v, want %v", tc.url, srv.secure, tc.secure)
		}
	}
	for _, bad := range []string{"", "pm.example.com", "ftp://pm.example.com", "https://pm.example.com/app"} {
		if _, err := New(Config{Accounts: s.acc, Billing: s.bill, PublicURL: bad, Logger: s.srv.log}); err == nil {
			t.Errorf("public url %q accepted", bad)
		}
	}
}

func TestBodyLimit(t *testing.T) {
	s := newSite(t, siteOptions{})
	b := s.browser()
	login := b.get("/login")
	p := b.post("/login", url.Values{"csrf": {login.token(t, "/login")}, "email": {strings.Repeat("a", 100<<10)}})
	p.want(t, http.StatusRequestEntityTooLarge, "")
	p.has(t, "more than we accept")
}

func TestStaticFiles(t *testing.T) {
	s := newSite(t, siteOptions{})
	b := s.browser()
	home := b.get("/")
	css := regexp.MustCompile(`href="(/static/style\.css\?v=[0-9a-f]+)"`).FindStringSubmatch(home.body)
	js := regexp.MustCompile(`src="(/static/app\.js\?v=[0-9a-f]+)"`).FindStringSubmatch(home.body)
	if css == nil || js == nil {
		t.Fatalf("the page does not link the stylesheet and script with their hashes:\n%s", home.body)
	}
	p := b.get(css[1])
	p.want(t, http.StatusOK, "")
	if ct := p.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/css") {
		t.Errorf("style.css Content-Type %q", ct)
	}
	if cc := p.header.Get("Cache-Control"); !strings.Contains(cc, "immutable") {
		t.Errorf("a hashed URL's Cache-Control %q", cc)
	}
	if cc := b.get("/static/style.css").header.Get("Cache-Control"); strings.Contains(cc, "immutable") {
		t.Errorf("an unhashed URL is cached for good: %q", cc)
	}
	p = b.get(js[1])
	if ct := p.header.Get("Content-Type"); !strings.Contains(ct, "javascript") {
		t.Errorf("app.js Content-Type %q", ct)
	}
	p.has(t, "EventSource", "data-poll")
	b.get("/static/nope.js").want(t, http.StatusNotFound, "")
}

// Accessibility the markup can promise: every visible input has a label tied to it, errors
// are tied to their fields, the page has a language, a viewport and one h1.
func TestAccessibleMarkup(t *testing.T) {
	s := newSite(t, siteOptions{})
	b, _ := s.signup("ada@example.com")
	anon := s.browser()
	inputRE := regexp.MustCompile(`<(input|select)\s[^>]*>`)
	for name, p := range map[string]*page{
		"landing":      anon.get("/"),
		"signup":       anon.get("/signup"),
		"signup error": anon.fill("/signup", "/signup", url.Values{"email": {"x"}, "password": {"y"}}),
		"login":        anon.get("/login"),
		"forgot":       anon.get("/forgot"),
		"setup":        b.get("/app/setup"),
		"setup error":  b.fill("/app/setup", "/app/setup", url.Values{"plan": {"starter"}}),
		"dashboard":    b.get("/app"),
		"delete":       b.get("/app/delete"),
	} {
		t.Run(name, func(t *testing.T) {
			p.has(t, `<html lang="en">`, `<meta name="viewport" content="width=device-width, initial-scale=1">`, `<main id="main"`, `class="skip" href="#main"`)
			if n := strings.Count(p.body, "<h1"); n != 1 {
				t.Errorf("%d h1 elements, want 1", n)
			}
			for _, in := range inputRE.FindAllString(p.body, -1) {
				if strings.Contains(in, `type="hidden"`) {
					continue
				}
				id := regexp.MustCompile(`id="([^"]+)"`).FindStringSubmatch(in)
				if id == nil {
					t.Errorf("an input without an id: %s", in)
					continue
				}
				if !strings.Contains(p.body, `<label for="`+id[1]+`"`) && !strings.Contains(p.body, `<label class="choice" for="`+id[1]+`"`) {
					t.Errorf("no label for #%s", id[1])
				}
				if strings.Contains(in, `aria-invalid="true"`) {
					d := regexp.MustCompile(`aria-describedby="([^"]+)"`).FindStringSubmatch(in)
					if d == nil {
						t.Errorf("#%s is invalid but describes no error", id[1])
						continue
					}
					for _, ref := range strings.Fields(d[1]) {
						if !strings.Contains(p.body, `id="`+ref+`"`) {
							t.Errorf("#%s is described by #%s, which is not on the page", id[1], ref)
						}
					}
				}
			}
		})
	}
}

// eventStream reads server-sent events.
type eventStream struct {
	resp *http.Response
	sc   *bufio.Scanner
}

func (b *browser) events(t *testing.T) *eventStream {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, b.site.url+"/app/events", nil)
	resp, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return &eventStream{resp: resp, sc: bufio.NewScanner(resp.Body)}
}

func (e *eventStream) next(t *testing.T) status {
	t.Helper()
	done := make(chan status, 1)
	go func() {
		var typ string
		for e.sc.Scan() {
			line := e.sc.Text()
			if v, ok := strings.CutPrefix(line, "event: "); ok {
				typ = v
			}
			if v, ok := strings.CutPrefix(line, "data: "); ok && typ == "status" {
				var s status
				_ = json.Unmarshal([]byte(v), &s)
				done <- s
				return
			}
		}
		close(done)
	}()
	select {
	case s, ok := <-done:
		if !ok {
			t.Fatal("the event stream ended")
		}
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10 s")
	}
	return status{}
}

func (e *eventStream) close() { e.resp.Body.Close() }

// The stream ends when the session does: a logout elsewhere ends it within its recheck.
func TestEventsEndWithStreamFor(t *testing.T) {
	s := newSite(t, siteOptions{web: func(c *Config) { c.StreamFor = 200 * time.Millisecond }})
	b, _ := s.signup("ada@example.com")
	ev := b.events(t)
	if st := ev.next(t); st.Stage != billing.StageOnboarding {
		t.Fatalf("first event %+v", st)
	}
	done := make(chan struct{})
	go func() {
		for ev.sc.Scan() {
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the stream outlived StreamFor")
	}
	ev.close()
}

// pmd's public server has read and write timeouts for ordinary pages; a status stream lives
// past them.
func TestEventsOutliveServerTimeouts(t *testing.T) {
	s := newSite(t, siteOptions{server: func(h *http.Server) {
		h.ReadTimeout, h.WriteTimeout = 300*time.Millisecond, 300*time.Millisecond
	}})
	b, uid := s.signup("ada@example.com")
	b.submit(b.get("/app/setup"), "/app/setup", setupFields())
	b.submit(b.get("/app"), "/app/subscribe", nil)
	ev := b.events(t)
	defer ev.close()
	if st := ev.next(t); st.Stage != billing.StagePending {
		t.Fatalf("first event %+v", st)
	}
	time.Sleep(time.Second) // past both timeouts
	s.bill.setStage(uid, billing.StageRunning)
	if st := ev.next(t); st.Stage != billing.StageRunning {
		t.Fatalf("event after the timeouts %+v, want running", st)
	}
}
