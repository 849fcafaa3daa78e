package web

import (
	"bytes"
	"context"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/accounts"
	"github.com/pocketmolt/pocketmolt/internal/billing"
	"github.com/pocketmolt/pocketmolt/internal/store"
)

// testParams are real argon2id at its smallest accepted cost, so the many sign-ups and logins
// stay quick under the race detector.
var testParams = accounts.Params{Memory: 8 * 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

const goodPassword = "violet-harbour-lantern"

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// syncBuffer is a log destination safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// outbox is a Mailer that keeps what it is given.
type outbox struct {
	mu   sync.Mutex
	sent []string // bodies
}

func (o *outbox) Send(_ context.Context, to, subject, body string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.sent = append(o.sent, body)
	return nil
}

func (o *outbox) last() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.sent) == 0 {
		return ""
	}
	return o.sent[len(o.sent)-1]
}

// site is a real Server on loopback with a real accounts.Service on SQLite and a fake Billing.
type site struct {
	t     testing.TB
	url   string
	srv   *Server
	acc   *accounts.Service
	bill  *fakeBilling
	st    *store.Store
	clock *clock
	logs  *syncBuffer
	out   *outbox
}

type siteOptions struct {
	stripe bool // billing with Stripe, not test mode
	acc    func(*accounts.Config)
	web    func(*Config)
	server func(*http.Server)
	// billing, when set, makes the Billing the pages use (a real one); site.bill is then the
	// fake, unused.
	billing func(t testing.TB, st *store.Store, now func() time.Time, log *slog.Logger) Billing
}

func newSite(t testing.TB, o siteOptions) *site {
	t.Helper()
	st, err := store.Open(t.Context(), "sqlite:"+filepath.Join(t.TempDir(), "pm.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s := &site{t: t, st: st, clock: &clock{t: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)}, logs: &syncBuffer{}, out: &outbox{}}
	log := slog.New(slog.NewJSONHandler(s.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	hs := httptest.NewUnstartedServer(nil)
	s.url = "http://" + hs.Listener.Addr().String()
	acfg := accounts.Config{Store: st, Mailer: s.out, Logger: log, Now: s.clock.Now, PublicURL: s.url, Params: testParams}
	if o.acc != nil {
		o.acc(&acfg)
	}
	if s.acc, err = accounts.New(acfg); err != nil {
		t.Fatal(err)
	}
	s.bill = newFakeBilling(st, !o.stripe, s.clock.Now)
	if err := billing.ValidatePlans(s.bill.plans); err != nil {
		t.Fatalf("the test plans are invalid: %v", err)
	}
	var bill Billing = s.bill
	if o.billing != nil {
		bill = o.billing(t, st, s.clock.Now, log)
	}
	wcfg := Config{Accounts: s.acc, Billing: bill, PublicURL: s.url, Logger: log, Now: s.clock.Now, StatusInterval: 20 * time.Millisecond}
	if o.web != nil {
		o.web(&wcfg)
	}
	if s.srv, err = New(wcfg); err != nil {
		t.Fatal(err)
	}
	hs.Config.Handler = s.srv
	if o.server != nil {
		o.server(hs.Config)
	}
	hs.Start()
	t.Cleanup(hs.Close)
	return s
}

// browser is an HTTP client with its own cookies that does not follow redirects, so tests
// see each answer.
type browser struct {
	t    testing.TB
	site *site
	c    *http.Client
	jar  *cookiejar.Jar
	hdr  http.Header // sent with every request
}

func (s *site) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: s.t, site: s, jar: jar, hdr: http.Header{}, c: &http.Client{
		Jar:           jar,
		Timeout:       20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// page is one answer.
type page struct {
	status int
	header http.Header
	body   string
}

func (p *page) location() string { return p.header.Get("Location") }

func (b *browser) do(req *http.Request) *page {
	b.t.Helper()
	for k, v := range b.hdr {
		req.Header[k] = v
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return &page{status: resp.StatusCode, header: resp.Header, body: string(body)}
}

func (b *browser) get(path string) *page {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, b.site.url+path, nil)
	return b.do(req)
}

func (b *browser) post(path string, form url.Values) *page {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, b.site.url+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

var formRE = regexp.MustCompile(`(?s)<form[^>]*action="([^"]*)"[^>]*>(.*?)</form>`)
var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// token returns the form token of the form on p that posts to action.
func (p *page) token(t testing.TB, action string) string {
	t.Helper()
	for _, m := range formRE.FindAllStringSubmatch(p.body, -1) {
		if html.UnescapeString(m[1]) == action {
			if c := csrfRE.FindStringSubmatch(m[2]); c != nil {
				return html.UnescapeString(c[1])
			}
			t.Fatalf("the form to %s has no csrf field", action)
		}
	}
	t.Fatalf("no form posts to %s on this page (status %d):\n%s", action, p.status, p.body)
	return ""
}

// submit fills the form on p that posts to action with fields and its token, and sends it.
func (b *browser) submit(p *page, action string, fields url.Values) *page {
	b.t.Helper()
	f := url.Values{}
	for k, v := range fields {
		f[k] = v
	}
	f.Set("csrf", p.token(b.t, action))
	return b.post(action, f)
}

// open gets path and submits its form to action.
func (b *browser) fill(path, action string, fields url.Values) *page {
	b.t.Helper()
	return b.submit(b.get(path), action, fields)
}

func (b *browser) cookie(name string) *http.Cookie {
	u, _ := url.Parse(b.site.url)
	for _, c := range b.jar.Cookies(u) {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// signup makes an account through the pages and returns the browser, logged in, and the
// user's id.
func (s *site) signup(email string) (*browser, string) {
	s.t.Helper()
	b := s.browser()
	p := b.fill("/signup", "/signup", url.Values{"email": {email}, "password": {goodPassword}})
	if p.status != http.StatusSeeOther || !strings.HasPrefix(p.location(), "/app/setup") {
		s.t.Fatalf("sign-up answered %d %s:\n%s", p.status, p.location(), p.body)
	}
	u, err := s.acc.Get(s.t.Context(), email)
	if err != nil {
		s.t.Fatal(err)
	}
	return b, u.ID
}

// setupFields are a valid onboarding form.
func setupFields() url.Values {
	return url.Values{
		"name": {"Molt"}, "plan": {"starter"}, "model": {"anthropic/claude-haiku-4-5"},
		"web_chat": {"on"}, "key_mode": {"credits"},
	}
}

// has checks that the page holds each string, in its markup or in its text as read (entities
// decoded: html/template writes "+" as &#43;).
func (p *page) has(t *testing.T, what ...string) {
	t.Helper()
	text := html.UnescapeString(p.body)
	for _, w := range what {
		if !strings.Contains(p.body, w) && !strings.Contains(text, w) {
			t.Errorf("the page (status %d) lacks %q:\n%s", p.status, w, p.body)
		}
	}
}

func (p *page) lacks(t *testing.T, what ...string) {
	t.Helper()
	text := html.UnescapeString(p.body)
	for _, w := range what {
		if w != "" && (strings.Contains(p.body, w) || strings.Contains(text, w)) {
			t.Errorf("the page (status %d) holds %q, which it must not", p.status, w)
		}
	}
}

func (p *page) want(t *testing.T, status int, location string) {
	t.Helper()
	if p.status != status || location != "" && p.location() != location {
		t.Fatalf("answer %d %q, want %d %q:\n%s", p.status, p.location(), status, location, p.body)
	}
}

// fieldError returns the error shown next to a field: the text of #<field>-error, checking
// that the input points at it with aria-describedby and is marked invalid.
func (p *page) fieldError(t *testing.T, field string) string {
	t.Helper()
	m := regexp.MustCompile(`<p class="field-error" id="` + regexp.QuoteMeta(field) + `-error">([^<]*)</p>`).FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("no error shown next to %s (status %d):\n%s", field, p.status, p.body)
	}
	return html.UnescapeString(m[1])
}

// inputValue returns the value attribute of the input with the given id, or "".
func (p *page) inputValue(t *testing.T, id string) string {
	t.Helper()
	m := regexp.MustCompile(`<input id="` + regexp.QuoteMeta(id) + `"[^>]*>`).FindString(p.body)
	if m == "" {
		t.Fatalf("no input #%s:\n%s", id, p.body)
	}
	v := regexp.MustCompile(` value="([^"]*)"`).FindStringSubmatch(m)
	if v == nil {
		return ""
	}
	return html.UnescapeString(v[1])
}
