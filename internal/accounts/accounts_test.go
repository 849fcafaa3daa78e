package accounts

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/mail"
	"github.com/pocketmolt/pocketmolt/internal/ratelimit"
	"github.com/pocketmolt/pocketmolt/internal/store"
	"github.com/pocketmolt/pocketmolt/internal/store/storetest"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// testParams are real argon2id at its smallest accepted cost, so that the suite's many
// sign-ups and logins stay quick under the race detector.
var testParams = Params{Memory: 8 * 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

const goodPassword = "violet-harbour-lantern"

type backend struct {
	name string
	url  func(t *testing.T) string
}

func backends() []backend {
	return []backend{
		{"sqlite", func(t *testing.T) string { return "sqlite:" + filepath.Join(t.TempDir(), "pm.db") }},
		{"postgres", func(t *testing.T) string { return storetest.PostgresURL(t) }},
	}
}

// clock is a settable clock.
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

// outbox is a Mailer that keeps what it is given.
type outbox struct {
	mu   sync.Mutex
	sent []sentMail
	fail error
}

type sentMail struct{ to, subject, body string }

func (o *outbox) Send(_ context.Context, to, subject, body string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.fail != nil {
		return o.fail
	}
	o.sent = append(o.sent, sentMail{to, subject, body})
	return nil
}

func (o *outbox) all() []sentMail {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]sentMail(nil), o.sent...)
}

var linkRE = regexp.MustCompile(`https?://\S+/reset\?token=\S+`)

// tokenOf returns the token of the reset link in body.
func tokenOf(t *testing.T, body string) string {
	t.Helper()
	link := linkRE.FindString(body)
	if link == "" {
		t.Fatalf("no reset link in %q", body)
	}
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query().Get("token")
}

type harness struct {
	svc   *Service
	st    *store.Store
	clock *clock
	out   *outbox
	logs  *bytes.Buffer
}

func newHarness(t *testing.T, dbURL string, configure func(*Config)) *harness {
	t.Helper()
	return newHarnessTB(t, dbURL, configure)
}

func newHarnessTB(t testing.TB, dbURL string, configure func(*Config)) *harness {
	t.Helper()
	st, err := store.Open(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	h := &harness{st: st, clock: &clock{t: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)}, out: &outbox{}, logs: &bytes.Buffer{}}
	cfg := Config{
		Store: st, Mailer: h.out, Now: h.clock.Now, PublicURL: "https://pm.example.com/",
		Logger: slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Params: testParams,
	}
	if configure != nil {
		configure(&cfg)
	}
	h.svc, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func fieldErrors(t *testing.T, err error) FieldErrors {
	t.Helper()
	var fe FieldErrors
	if !errors.As(err, &fe) {
		t.Fatalf("err = %v (%T), want FieldErrors", err, err)
	}
	return fe
}

func TestService(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, b.url(t), nil)
			ctx := t.Context()
			svc := h.svc

			u, err := svc.Signup(ctx, "  Ada@Example.COM ", goodPassword, "192.0.2.1")
			if err != nil {
				t.Fatal(err)
			}
			if u.Email != "ada@example.com" || !strings.HasPrefix(u.ID, "u-") {
				t.Fatalf("Signup = %+v", u)
			}
			row, err := h.st.GetUser(ctx, u.ID)
			if err != nil || !strings.HasPrefix(row.PasswordHash, "$argon2id$") || strings.Contains(row.PasswordHash, goodPassword) {
				t.Fatalf("stored hash %q, %v", row.PasswordHash, err)
			}

			t.Run("bad sign-ups", func(t *testing.T) {
				for _, tc := range []struct {
					name, email, password string
					fields                []string
				}{
					{"malformed email", "ada.example.com", goodPassword, []string{"email"}},
					{"a name and an address", "Ada <bob@example.com>", goodPassword, []string{"email"}},
					{"two addresses", "a@example.com, b@example.com", goodPassword, []string{"email"}},
					{"short password", "bob@example.com", "short", []string{"password"}},
					{"common password", "bob@example.com", "password123", []string{"password"}},
					{"password is the email's local part", "sebastian.vogel@example.com", "sebastian.vogel", []string{"password"}},
					{"both", "", "", []string{"email", "password"}},
					{"duplicate, in another case", "ADA@example.com", goodPassword, []string{"email"}},
				} {
					t.Run(tc.name, func(t *testing.T) {
						_, err := svc.Signup(ctx, tc.email, tc.password, "192.0.2.2")
						fe := fieldErrors(t, err)
						if len(fe) != len(tc.fields) {
							t.Fatalf("errors %v, want fields %v", fe, tc.fields)
						}
						for _, f := range tc.fields {
							if fe[f] == "" {
								t.Errorf("no error for %s: %v", f, fe)
							}
						}
						if tc.password != "" && strings.Contains(err.Error(), tc.password) {
							t.Errorf("the error repeats the password: %v", err)
						}
					})
				}
				if us, _ := svc.List(ctx); len(us) != 1 {
					t.Errorf("%d users after refused sign-ups, want 1", len(us))
				}
			})

			t.Run("login and sessions", func(t *testing.T) {
				sess, err := svc.Login(ctx, "ADA@example.com ", goodPassword, "192.0.2.3")
				if err != nil {
					t.Fatal(err)
				}
				if _, err := ParseToken(sess.Token); err != nil || len(sess.CSRFKey) != 32 || sess.User.ID != u.ID {
					t.Fatalf("Login = %+v, %v", sess, err)
				}
				if !sess.ExpiresAt.Equal(h.clock.Now().Add(DefaultSessionTTL)) {
					t.Errorf("session expires %v, want in 30 days", sess.ExpiresAt)
				}
				got, err := svc.Authenticate(ctx, sess.Token)
				if err != nil || got.User.ID != u.ID || !bytes.Equal(got.CSRFKey, sess.CSRFKey) || got.Token != "" {
					t.Fatalf("Authenticate = %+v, %v", got, err)
				}
				// The database holds only the token's hash.
				if raw, _ := ParseToken(sess.Token); true {
					if _, err := h.st.GetWebSession(ctx, hashToken(raw)); err != nil {
						t.Errorf("no session stored under the token's hash: %v", err)
					}
				}

				wrong := []struct{ name, email, pw string }{
					{"wrong password", "ada@example.com", "not-the-password-1"},
					{"unknown email", "nobody@example.com", goodPassword},
					{"malformed email", "nobody", goodPassword},
				}
				for _, w := range wrong {
					_, err := svc.Login(ctx, w.email, w.pw, "192.0.2.3")
					if !errors.Is(err, ErrBadCredentials) || err.Error() != "email or password is wrong" {
						t.Errorf("%s: %v, want the one bad-credentials answer", w.name, err)
					}
				}

				forged, _ := newToken()
				for name, tok := range map[string]string{"forged": forged, "malformed": "not-a-token", "empty": "", "padded": sess.Token + "="} {
					if _, err := svc.Authenticate(ctx, tok); !errors.Is(err, ErrNoSession) {
						t.Errorf("%s session cookie: %v, want ErrNoSession", name, err)
					}
				}

				if err := svc.Logout(ctx, sess.Token); err != nil {
					t.Fatal(err)
				}
				if _, err := svc.Authenticate(ctx, sess.Token); !errors.Is(err, ErrNoSession) {
					t.Errorf("after logout: %v", err)
				}
				if err := svc.Logout(ctx, "garbage"); err != nil {
					t.Errorf("logout of a malformed token: %v", err)
				}

				// Expiry: a session is gone at its expiry, and its row with it.
				sess2, err := svc.StartSession(ctx, u.ID)
				if err != nil {
					t.Fatal(err)
				}
				h.clock.Add(DefaultSessionTTL - time.Second)
				if _, err := svc.Authenticate(ctx, sess2.Token); err != nil {
					t.Fatalf("a second before expiry: %v", err)
				}
				h.clock.Add(time.Second)
				if _, err := svc.Authenticate(ctx, sess2.Token); !errors.Is(err, ErrNoSession) {
					t.Fatalf("at expiry: %v", err)
				}
				raw, _ := ParseToken(sess2.Token)
				if _, err := h.st.GetWebSession(ctx, hashToken(raw)); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("the expired session's row: %v, want deleted", err)
				}
			})

			t.Run("disable and enable", func(t *testing.T) {
				sess, err := svc.Login(ctx, "ada@example.com", goodPassword, "192.0.2.4")
				if err != nil {
					t.Fatal(err)
				}
				du, err := svc.Disable(ctx, "admin:test", "ada@example.com")
				if err != nil || !du.Disabled {
					t.Fatalf("Disable = %+v, %v", du, err)
				}
				if _, err := svc.Authenticate(ctx, sess.Token); !errors.Is(err, ErrNoSession) {
					t.Errorf("a disabled user's session: %v", err)
				}
				if _, err := svc.Login(ctx, "ada@example.com", "not-the-password-1", "192.0.2.4"); !errors.Is(err, ErrBadCredentials) {
					t.Errorf("disabled, wrong password: %v, want ErrBadCredentials", err)
				}
				if _, err := svc.Login(ctx, "ada@example.com", goodPassword, "192.0.2.4"); !errors.Is(err, ErrDisabled) {
					t.Errorf("disabled, right password: %v, want ErrDisabled", err)
				}
				if _, err := svc.StartSession(ctx, u.ID); !errors.Is(err, ErrDisabled) {
					t.Errorf("StartSession of a disabled user: %v", err)
				}
				if eu, err := svc.Enable(ctx, "admin:test", u.ID); err != nil || eu.Disabled {
					t.Fatalf("Enable = %+v, %v", eu, err)
				}
				if _, err := svc.Login(ctx, "ada@example.com", goodPassword, "192.0.2.4"); err != nil {
					t.Errorf("login after enable: %v", err)
				}
				if _, err := svc.Disable(ctx, "admin:test", "nobody@example.com"); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("disable an unknown user: %v", err)
				}
			})

			t.Run("password reset", func(t *testing.T) {
				sess, err := svc.Login(ctx, "ada@example.com", goodPassword, "192.0.2.5")
				if err != nil {
					t.Fatal(err)
				}
				if err := svc.RequestReset(ctx, "nobody@example.com", "192.0.2.5"); err != nil {
					t.Fatalf("reset for an unknown email: %v, want the same answer (nil)", err)
				}
				if n := len(h.out.all()); n != 0 {
					t.Fatalf("%d emails sent for an unknown address", n)
				}
				fieldErrors(t, svc.RequestReset(ctx, "not an email", "192.0.2.5"))

				if err := svc.RequestReset(ctx, "Ada@example.com", "192.0.2.5"); err != nil {
					t.Fatal(err)
				}
				sent := h.out.all()
				if len(sent) != 1 || sent[0].to != "ada@example.com" || !strings.Contains(sent[0].body, "https://pm.example.com/reset?token=") {
					t.Fatalf("sent %+v", sent)
				}
				token := tokenOf(t, sent[0].body)

				// Refused passwords leave the token usable.
				fe := fieldErrors(t, svc.Reset(ctx, token, "short", "192.0.2.5"))
				if fe["password"] == "" {
					t.Errorf("short password: %v", fe)
				}
				fe = fieldErrors(t, svc.Reset(ctx, token, "ada@example.com", "192.0.2.5"))
				if fe["password"] != ErrPasswordHasEmail.Error() {
					t.Errorf("the email as password: %v", fe)
				}

				const newPassword = "copper-meadow-whistle"
				if err := svc.Reset(ctx, token, newPassword, "192.0.2.5"); err != nil {
					t.Fatal(err)
				}
				if _, err := svc.Authenticate(ctx, sess.Token); !errors.Is(err, ErrNoSession) {
					t.Errorf("a session from before the reset: %v, want logged out", err)
				}
				if _, err := svc.Login(ctx, "ada@example.com", goodPassword, "192.0.2.5"); !errors.Is(err, ErrBadCredentials) {
					t.Errorf("the old password: %v", err)
				}
				if _, err := svc.Login(ctx, "ada@example.com", newPassword, "192.0.2.5"); err != nil {
					t.Errorf("the new password: %v", err)
				}
				if err := svc.Reset(ctx, token, "another-fine-passphrase", "192.0.2.5"); !errors.Is(err, ErrResetUsed) {
					t.Errorf("the token twice: %v, want ErrResetUsed", err)
				}
				forged, _ := newToken()
				if err := svc.Reset(ctx, forged, "another-fine-passphrase", "192.0.2.5"); !errors.Is(err, ErrResetInvalid) {
					t.Errorf("a made-up token: %v", err)
				}
				if err := svc.Reset(ctx, "short", "another-fine-passphrase", "192.0.2.5"); !errors.Is(err, ErrResetInvalid) {
					t.Errorf("a malformed token: %v", err)
				}

				// An operator's link; it expires after an hour.
				link, _, err := svc.ResetLink(ctx, "admin:test", u.ID)
				if err != nil || !strings.HasPrefix(link, "https://pm.example.com/reset?token=") {
					t.Fatalf("ResetLink = %q, %v", link, err)
				}
				h.clock.Add(DefaultResetTTL)
				if err := svc.Reset(ctx, tokenOf(t, link), "another-fine-passphrase", "192.0.2.5"); !errors.Is(err, ErrResetExpired) {
					t.Errorf("a token an hour old: %v, want ErrResetExpired", err)
				}
				if _, _, err := svc.ResetLink(ctx, "admin:test", "nobody@example.com"); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("ResetLink of an unknown email: %v", err)
				}
				if strings.Contains(h.logs.String(), token) || strings.Contains(h.logs.String(), newPassword) {
					t.Error("the service logged a reset token or a password")
				}
			})

			t.Run("get and list", func(t *testing.T) {
				byEmail, err := svc.Get(ctx, "ADA@example.com")
				if err != nil || byEmail.ID != u.ID {
					t.Fatalf("Get by email = %+v, %v", byEmail, err)
				}
				if byID, err := svc.Get(ctx, u.ID); err != nil || byID.Email != "ada@example.com" {
					t.Fatalf("Get by id = %+v, %v", byID, err)
				}
				if _, err := svc.Get(ctx, "u-missing"); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("Get of a missing id: %v", err)
				}
				if _, err := svc.Get(ctx, "@@"); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("Get of a malformed email: %v", err)
				}
				us, err := svc.List(ctx)
				if err != nil || len(us) != 1 || us[0].ID != u.ID {
					t.Fatalf("List = %+v, %v", us, err)
				}
			})
		})
	}
}

func rateLimited(t *testing.T, err error) time.Duration {
	t.Helper()
	var we *wire.Error
	if !errors.As(err, &we) || we.Code != wire.CodeRateLimited || we.RetryAfter <= 0 {
		t.Fatalf("err = %v, want rate_limited with a retry-after", err)
	}
	return we.RetryAfter
}

func TestLoginRateLimits(t *testing.T) {
	h := newHarness(t, "sqlite:"+filepath.Join(t.TempDir(), "pm.db"), func(c *Config) {
		c.Limits.LoginPerAccount = ratelimit.Limit{Burst: 3, Every: time.Minute}
		c.Limits.LoginPerIP = ratelimit.Limit{Burst: 5, Every: time.Minute}
	})
	ctx := t.Context()
	if _, err := h.svc.Signup(ctx, "ada@example.com", goodPassword, "192.0.2.1"); err != nil {
		t.Fatal(err)
	}

	// Per account: three tries from three addresses, then the fourth waits — even with the
	// right password, and even from a fresh address.
	for i, ip := range []string{"198.51.100.1", "198.51.100.2", "198.51.100.3"} {
		if _, err := h.svc.Login(ctx, "ada@example.com", "wrong-password-"+ip, ip); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("try %d: %v", i+1, err)
		}
	}
	wait := rateLimited(t, loginErr(h, "ada@example.com", goodPassword, "198.51.100.4"))
	if wait > time.Minute {
		t.Errorf("retry after %v, want at most a minute", wait)
	}
	var we *wire.Error
	_ = errors.As(loginErr(h, "ada@example.com", goodPassword, "198.51.100.5"), &we)
	if !strings.Contains(we.Message, "try again in") {
		t.Errorf("message %q does not say when to try again", we.Message)
	}
	h.clock.Add(time.Minute)
	if err := loginErr(h, "ada@example.com", goodPassword, "198.51.100.6"); err != nil {
		t.Errorf("a minute later: %v", err)
	}

	// Per IP: five tries naming five different accounts from one /64, then the sixth waits.
	for i := range 5 {
		ip := "2001:db8:1:2::" + string(rune('a'+i))
		if err := loginErr(h, "user"+string(rune('a'+i))+"@example.com", goodPassword, ip); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("try %d from %s: %v", i+1, ip, err)
		}
	}
	rateLimited(t, loginErr(h, "other@example.com", goodPassword, "[2001:db8:1:2:ffff::1]:443"))
	if err := loginErr(h, "other@example.com", goodPassword, "2001:db8:1:3::1"); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("another /64: %v, want an ordinary answer", err)
	}
}

func loginErr(h *harness, email, pw, ip string) error {
	_, err := h.svc.Login(context.Background(), email, pw, ip)
	return err
}

func TestSignupAndResetRateLimits(t *testing.T) {
	h := newHarness(t, "sqlite:"+filepath.Join(t.TempDir(), "pm.db"), func(c *Config) {
		c.Limits.SignupPerIP = ratelimit.Limit{Burst: 2, Every: time.Hour}
		c.Limits.ResetPerIP = ratelimit.Limit{Burst: 4, Every: time.Hour}
		c.Limits.ResetMailsPerAccount = ratelimit.Limit{Burst: 2, Every: time.Hour}
	})
	ctx := t.Context()
	// Refused input does not count against the address: only sign-ups that get to work do.
	for range 3 {
		fieldErrors(t, func() error { _, err := h.svc.Signup(ctx, "bad", goodPassword, "192.0.2.9"); return err }())
	}
	for _, e := range []string{"a@example.com", "b@example.com"} {
		if _, err := h.svc.Signup(ctx, e, goodPassword, "192.0.2.9"); err != nil {
			t.Fatal(err)
		}
	}
	_, err := h.svc.Signup(ctx, "c@example.com", goodPassword, "192.0.2.9")
	rateLimited(t, err)
	if _, err := h.svc.Get(ctx, "c@example.com"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a refused sign-up made a user: %v", err)
	}

	// Reset mails: two to a@, then silence, with the same answer.
	for range 3 {
		if err := h.svc.RequestReset(ctx, "a@example.com", "192.0.2.10"); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(h.out.all()); n != 2 {
		t.Errorf("%d reset emails, want 2", n)
	}
	if err := h.svc.RequestReset(ctx, "b@example.com", "192.0.2.10"); err != nil {
		t.Fatal(err)
	}
	rateLimited(t, h.svc.RequestReset(ctx, "b@example.com", "192.0.2.10"))
	rateLimited(t, h.svc.Reset(ctx, "x", "another-fine-passphrase", "192.0.2.10"))
}

func TestRehashAtLogin(t *testing.T) {
	h := newHarness(t, "sqlite:"+filepath.Join(t.TempDir(), "pm.db"), func(c *Config) { c.Params = DefaultParams })
	ctx := t.Context()
	old, err := HashPassword(goodPassword, testParams)
	if err != nil {
		t.Fatal(err)
	}
	now := h.clock.Now()
	if err := h.st.CreateUser(ctx, store.User{ID: "u-old", Email: "old@example.com", PasswordHash: old, CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.svc.Login(ctx, "old@example.com", goodPassword, "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	u, _ := h.st.GetUser(ctx, "u-old")
	want := fmt.Sprintf("$m=%d,t=%d,p=%d$", DefaultParams.Memory, DefaultParams.Time, DefaultParams.Threads)
	if u.PasswordHash == old || !strings.Contains(u.PasswordHash, want) {
		t.Fatalf("hash after login %q, want it remade with DefaultParams", u.PasswordHash)
	}
	if ok, rehash, err := VerifyPassword(goodPassword, u.PasswordHash); !ok || rehash || err != nil {
		t.Errorf("the new hash: ok=%v rehash=%v err=%v", ok, rehash, err)
	}

	// A damaged hash: the person gets the usual answer, the operators a log line.
	if err := h.st.SetUserPassword(ctx, "u-old", "$argon2id$garbage", now); err != nil {
		t.Fatal(err)
	}
	if _, err := h.svc.Login(ctx, "old@example.com", goodPassword, "192.0.2.1"); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("a damaged hash: %v", err)
	}
	if !strings.Contains(h.logs.String(), "password hash unreadable") {
		t.Error("a damaged hash was not logged")
	}
}

// Without SMTP the reset link is in pmd's log at info level: that is how operators and
// tests read it.
func TestResetLinkInTheLog(t *testing.T) {
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	h := newHarness(t, "sqlite:"+filepath.Join(t.TempDir(), "pm.db"), func(c *Config) { c.Mailer = &mail.Log{Logger: logger} })
	ctx := t.Context()
	if _, err := h.svc.Signup(ctx, "ada@example.com", goodPassword, "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	if err := h.svc.RequestReset(ctx, "ada@example.com", "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	// The log line is JSON: the email's body is its "body" attribute.
	var line struct{ Msg, To, Body string }
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		if strings.Contains(l, `"body"`) {
			if err := json.Unmarshal([]byte(l), &line); err != nil {
				t.Fatal(err)
			}
		}
	}
	if line.To != "ada@example.com" || !strings.Contains(line.Msg, "not sent") {
		t.Fatalf("log line %+v", line)
	}
	token := tokenOf(t, line.Body)
	if err := h.svc.Reset(ctx, token, "copper-meadow-whistle", "192.0.2.1"); err != nil {
		t.Fatalf("the logged link does not work: %v", err)
	}
}

// A mail server that fails changes nothing in the answer; it is logged.
func TestResetMailFailure(t *testing.T) {
	h := newHarness(t, "sqlite:"+filepath.Join(t.TempDir(), "pm.db"), nil)
	h.out.fail = errors.New("connection refused")
	if _, err := h.svc.Signup(t.Context(), "ada@example.com", goodPassword, "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	if err := h.svc.RequestReset(t.Context(), "ada@example.com", "192.0.2.1"); err != nil {
		t.Fatalf("RequestReset = %v, want the same answer as always", err)
	}
	if !strings.Contains(h.logs.String(), "send password reset email failed") {
		t.Error("the failure was not logged")
	}
}

func TestNewConfig(t *testing.T) {
	st, err := store.Open(t.Context(), "sqlite:"+filepath.Join(t.TempDir(), "pm.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	log := slog.New(slog.DiscardHandler)
	for name, cfg := range map[string]Config{
		"no store":       {Mailer: &outbox{}, Logger: log, PublicURL: "https://x"},
		"no public url":  {Store: st, Mailer: &outbox{}, Logger: log},
		"ftp public url": {Store: st, Mailer: &outbox{}, Logger: log, PublicURL: "ftp://x"},
		"weak params":    {Store: st, Mailer: &outbox{}, Logger: log, PublicURL: "https://x", Params: Params{Memory: 1, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
}
