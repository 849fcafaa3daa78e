package accounts

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/mail"
	"github.com/pocketmolt/pocketmolt/internal/ratelimit"
	"github.com/pocketmolt/pocketmolt/internal/store"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// Errors callers branch on with errors.Is. Each is a *wire.Error whose message may be shown
// to the person as it is.
var (
	// ErrBadCredentials is Login's one answer for an unknown email, a wrong password and a
	// disabled account whose password was wrong, so that it tells nobody which emails exist.
	ErrBadCredentials error = &wire.Error{Code: wire.CodeUnauthenticated, Message: "email or password is wrong"}
	// ErrDisabled is Login's answer for a disabled account, given only after a correct password.
	ErrDisabled error = &wire.Error{Code: wire.CodePermissionDenied, Message: "this account is disabled"}
	// ErrNoSession means a session cookie is missing, malformed, unknown or expired.
	ErrNoSession error = &wire.Error{Code: wire.CodeUnauthenticated, Message: "you are not logged in"}
	// ErrResetInvalid, ErrResetExpired and ErrResetUsed are Reset's answers for a reset token
	// that does not exist, is past its hour, or was used.
	ErrResetInvalid error = &wire.Error{Code: wire.CodeTokenInvalid, Message: "this reset link is not valid; ask for a new one"}
	ErrResetExpired error = &wire.Error{Code: wire.CodeTokenExpired, Message: "this reset link has expired; ask for a new one"}
	ErrResetUsed    error = &wire.Error{Code: wire.CodeTokenUsed, Message: "this reset link was already used; ask for a new one"}
)

// FieldErrors says, per form field, what to fix: "email", "password".
type FieldErrors map[string]string

func (e FieldErrors) Error() string {
	fields := make([]string, 0, len(e))
	for f := range e {
		fields = append(fields, f)
	}
	sort.Strings(fields)
	parts := make([]string, 0, len(fields))
	for _, f := range fields {
		parts = append(parts, f+": "+e[f])
	}
	return strings.Join(parts, "; ")
}

// User is a customer's account as the rest of pmd sees it: never its password hash.
type User struct {
	ID               string    `json:"id"`
	Email            string    `json:"email"`
	Disabled         bool      `json:"disabled"`
	StripeCustomerID string    `json:"stripe_customer_id,omitempty"`
	CreatedAt        time.Time `json:"created_at"`
	UpdatedAt        time.Time `json:"updated_at"`
}

func userOf(u store.User) User {
	return User{ID: u.ID, Email: u.Email, Disabled: u.Disabled, StripeCustomerID: u.StripeCustomerID,
		CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt}
}

// Limits bound how often the expensive or abusable operations may run. Each is a token
// bucket (see ratelimit.Limit): Burst at once, then one per Every.
type Limits struct {
	LoginPerAccount ratelimit.Limit // login attempts naming one email
	LoginPerIP      ratelimit.Limit // login attempts from one address
	SignupPerIP     ratelimit.Limit // sign-ups from one address
	ResetPerIP      ratelimit.Limit // reset requests and reset submissions from one address
	// ResetMailsPerAccount bounds reset emails to one address; over it, requests are
	// answered as usual and nothing is sent, so nobody can flood a mailbox.
	ResetMailsPerAccount ratelimit.Limit
}

// DefaultLimits: 10 logins per 15 minutes per account and 30 per IP; 10 sign-ups and 10
// reset requests per hour per IP; 3 reset emails per hour per account.
func DefaultLimits() Limits {
	return Limits{
		LoginPerAccount:      ratelimit.Limit{Burst: 10, Every: 90 * time.Second},
		LoginPerIP:           ratelimit.Limit{Burst: 30, Every: 30 * time.Second},
		SignupPerIP:          ratelimit.Limit{Burst: 10, Every: 6 * time.Minute},
		ResetPerIP:           ratelimit.Limit{Burst: 10, Every: 6 * time.Minute},
		ResetMailsPerAccount: ratelimit.Limit{Burst: 3, Every: 20 * time.Minute},
	}
}

// Lifetimes.
const (
	DefaultSessionTTL = 30 * 24 * time.Hour
	DefaultResetTTL   = time.Hour
)

// maxLimiterKeys bounds each limiter's memory: keys are addresses and emails that callers
// choose, so they must not grow without end.
const maxLimiterKeys = 100_000

// Config is what a Service is made of.
type Config struct {
	Store  *store.Store
	Mailer mail.Mailer
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// PublicURL is the address customers use ("https://pm.example.com"); reset links start
	// with it.
	PublicURL string
	// Params are the cost of new password hashes; zero means DefaultParams. Hashes are
	// upgraded to DefaultParams at login only when Params are DefaultParams.
	Params Params
	// Limits' zero fields take DefaultLimits'.
	Limits     Limits
	SessionTTL time.Duration // 0 means DefaultSessionTTL
	ResetTTL   time.Duration // 0 means DefaultResetTTL
}

// Service is customers' accounts: sign-up, login and sessions, password resets, and the
// operators' view. It is safe for concurrent use.
type Service struct {
	store      *store.Store
	mailer     mail.Mailer
	log        *slog.Logger
	now        func() time.Time
	publicURL  string
	params     Params
	sessionTTL time.Duration
	resetTTL   time.Duration

	loginAcct, loginIP, signupIP, resetIP, resetMail *ratelimit.Keyed

	// hashSlots bounds the password hashes computed at once: each holds Params.Memory, and a
	// burst of logins must not take the machine's memory with it.
	hashSlots chan struct{}
}

// New checks cfg and makes a Service.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Mailer == nil || cfg.Logger == nil {
		return nil, errors.New("accounts: store, mailer and logger are required")
	}
	u, err := url.Parse(cfg.PublicURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("accounts: public url %q: want http(s)://host[:port]", cfg.PublicURL)
	}
	s := &Service{
		store: cfg.Store, mailer: cfg.Mailer, log: cfg.Logger, now: cfg.Now,
		publicURL: strings.TrimRight(cfg.PublicURL, "/"), params: cfg.Params,
		sessionTTL: cfg.SessionTTL, resetTTL: cfg.ResetTTL,
		hashSlots: make(chan struct{}, max(1, runtime.NumCPU())),
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.params == (Params{}) {
		s.params = DefaultParams
	}
	if err := s.params.check(); err != nil {
		return nil, fmt.Errorf("accounts: password params: %w", err)
	}
	if s.sessionTTL <= 0 {
		s.sessionTTL = DefaultSessionTTL
	}
	if s.resetTTL <= 0 {
		s.resetTTL = DefaultResetTTL
	}
	d, l := DefaultLimits(), cfg.Limits
	pick := func(l, d ratelimit.Limit) *ratelimit.Keyed {
		if l == (ratelimit.Limit{}) {
			l = d
		}
		return ratelimit.New(l, maxLimiterKeys)
	}
	s.loginAcct = pick(l.LoginPerAccount, d.LoginPerAccount)
	s.loginIP = pick(l.LoginPerIP, d.LoginPerIP)
	s.signupIP = pick(l.SignupPerIP, d.SignupPerIP)
	s.resetIP = pick(l.ResetPerIP, d.ResetPerIP)
	s.resetMail = pick(l.ResetMailsPerAccount, d.ResetMailsPerAccount)
	return s, nil
}

func (s *Service) clock() time.Time { return s.now().UTC() }

// Run deletes expired sessions and reset tokens every hour until ctx ends. Stopping is not
// an error.
func (s *Service) Run(ctx context.Context) error {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		if err := s.store.DeleteExpiredWebSessions(ctx, s.clock()); err != nil && ctx.Err() == nil {
			s.log.Warn("delete expired web sessions failed", "error", err.Error())
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Signup makes an account for email with password and returns it. Bad input is a
// FieldErrors ("email", "password"), an email that has an account too; too many sign-ups
// from clientIP a rate_limited *wire.Error.
func (s *Service) Signup(ctx context.Context, email, password, clientIP string) (User, error) {
	fe := FieldErrors{}
	norm, err := NormalizeEmail(email)
	if err != nil {
		fe["email"] = err.Error()
	}
	if err := CheckPasswordPolicy(password, norm); err != nil {
		fe["password"] = err.Error()
	}
	if len(fe) > 0 {
		return User{}, fe
	}
	if err := allow(s.signupIP, ipKey(clientIP), s.clock(), "sign-ups"); err != nil {
		return User{}, err
	}
	taken := FieldErrors{"email": "an account with this email already exists: log in, or reset your password"}
	if _, err := s.store.GetUserByEmail(ctx, norm); err == nil {
		return User{}, taken
	} else if !errors.Is(err, store.ErrNotFound) {
		return User{}, fmt.Errorf("sign up: %w", err)
	}
	hash, err := s.hash(ctx, password)
	if err != nil {
		return User{}, fmt.Errorf("sign up: %w", err)
	}
	now := s.clock()
	u := store.User{ID: newID("u-"), Email: norm, PasswordHash: hash, CreatedAt: now, UpdatedAt: now}
	if err := s.store.CreateUser(ctx, u); errors.Is(err, store.ErrConflict) {
		return User{}, taken // the same email signed up a moment ago
	} else if err != nil {
		return User{}, fmt.Errorf("sign up: %w", err)
	}
	s.log.InfoContext(ctx, "user signed up", "user_id", u.ID)
	return userOf(u), nil
}

// hash computes a password hash in one of the hash slots.
func (s *Service) hash(ctx context.Context, pw string) (string, error) {
	if err := s.acquire(ctx); err != nil {
		return "", err
	}
	defer s.release()
	return HashPassword(pw, s.params)
}

func (s *Service) acquire(ctx context.Context) error {
	select {
	case s.hashSlots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait to hash a password: %w", ctx.Err())
	}
}

func (s *Service) release() { <-s.hashSlots }

// allow takes a token from l for key, or returns a rate_limited *wire.Error saying how long
// to wait.
func allow(l *ratelimit.Keyed, key string, now time.Time, what string) error {
	ok, wait := l.Allow(key, now)
	if ok {
		return nil
	}
	return &wire.Error{Code: wire.CodeRateLimited, RetryAfter: wait,
		Message: fmt.Sprintf("too many %s; try again in %s", what, humanWait(wait))}
}

// humanWait says a wait as a person would: "1 minute", "12 minutes", "30 seconds".
func humanWait(d time.Duration) string {
	if d < time.Minute {
		n := max(1, int((d+time.Second-1)/time.Second))
		return plural(n, "second")
	}
	return plural(int((d+time.Minute-1)/time.Minute), "minute")
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}

func newID(prefix string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}
