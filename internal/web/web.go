// Package web is the customers' web pages on pmd's public listener: the landing page, sign-up,
// login and password reset, onboarding, and the dashboard with the assistant's live status.
// Pages are server-rendered html/template with embedded templates and one stylesheet; forms
// work without JavaScript, and a few lines of script (a static file, so the CSP forbids inline
// script) follow the status over server-sent events.
//
// Every POST passes stdlib CrossOriginProtection and a per-form token: an HMAC of the form's
// action under the session's CSRF key, or, for the forms of logged-out visitors, under the
// random value of a pre-session cookie.
package web

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/accounts"
	"github.com/pocketmolt/pocketmolt/internal/billing"
	"github.com/pocketmolt/pocketmolt/internal/httpapi"
)

// Billing is what the pages need of billing; *billing.Service provides it. Errors are
// *wire.Error (their message is shown), billing.FieldErrors (shown next to their fields), or
// anything else (logged; the customer reads "something went wrong").
type Billing interface {
	Plans() []billing.Plan
	TestMode() bool
	SaveAssistant(ctx context.Context, userID string, in billing.AssistantInput) error
	Overview(ctx context.Context, userID string) (billing.Overview, error)
	// Subscribe returns where to send the customer: Stripe Checkout, or "/app" in test mode.
	Subscribe(ctx context.Context, userID string) (redirectURL string, err error)
	CheckoutReturned(ctx context.Context, userID, sessionID string) error
	Portal(ctx context.Context, userID, returnURL string) (string, error)
	Cancel(ctx context.Context, userID string) error
	Resume(ctx context.Context, userID string) error
	Restart(ctx context.Context, userID string) error
	// DeleteCustomer removes the bot and data, cancels the Stripe subscription and deletes
	// the user.
	DeleteCustomer(ctx context.Context, userID string) error
}

var _ Billing = (*billing.Service)(nil)

// Config is what a Server is made of.
type Config struct {
	Accounts *accounts.Service
	Billing  Billing
	// Usage gives the dashboard the customer's model usage; nil leaves it off.
	Usage Usage
	// PublicURL is the address customers use ("https://pm.example.com"). Cookies are Secure
	// unless it is plain http on a loopback host (pmd dev).
	PublicURL string
	Logger    *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// ClientIP is the address a request's rate limits count against; nil means the
	// connection's remote address. Behind a proxy, set it to read the proxy's header.
	ClientIP func(*http.Request) string
	// StatusInterval is how often the live status checks for a change; 0 means a second.
	StatusInterval time.Duration
	// FormTokenTTL is how long a form's token is accepted; 0 means 12 hours.
	FormTokenTTL time.Duration
	// StreamFor bounds one status stream; the browser reconnects after it. 0 means 5 minutes.
	StreamFor time.Duration
}

// Limits of what a request may send.
const (
	maxFormBytes = 64 << 10
)

// Server serves the pages. It is safe for concurrent use.
type Server struct {
	acc       *accounts.Service
	bill      Billing
	usage     Usage
	log       *slog.Logger
	now       func() time.Time
	clientIP  func(*http.Request) string
	publicURL string
	secure    bool
	// Cookie names: with the __Host- prefix when Secure, so no other host (a subdomain)
	// can set them.
	sessionCookie, preCookie string
	interval, streamFor      time.Duration
	formTTL                  time.Duration
	pages                    *pages
	handler                  http.Handler
}

// New checks cfg and makes a Server.
func New(cfg Config) (*Server, error) {
	if cfg.Accounts == nil || cfg.Billing == nil || cfg.Logger == nil {
		return nil, errors.New("web: accounts, billing and logger are required")
	}
	u, err := url.Parse(cfg.PublicURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" && u.Path != "/" {
		return nil, fmt.Errorf("web: public url %q: want http(s)://host[:port] with no path", cfg.PublicURL)
	}
	s := &Server{
		acc: cfg.Accounts, bill: cfg.Billing, usage: cfg.Usage, log: cfg.Logger, now: cfg.Now, clientIP: cfg.ClientIP,
		publicURL: u.Scheme + "://" + u.Host,
		secure:    !(u.Scheme == "http" && isLoopback(u.Hostname())),
		interval:  cfg.StatusInterval, streamFor: cfg.StreamFor, formTTL: cfg.FormTokenTTL,
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.clientIP == nil {
		s.clientIP = remoteIP
	}
	if s.interval <= 0 {
		s.interval = time.Second
	}
	if s.streamFor <= 0 {
		s.streamFor = 5 * time.Minute
	}
	if s.formTTL <= 0 {
		s.formTTL = 12 * time.Hour
	}
	s.sessionCookie, s.preCookie = "pm_session", "pm_pre"
	if s.secure {
		s.sessionCookie, s.preCookie = "__Host-pm_session", "__Host-pm_pre"
	}
	if u.Scheme == "http" && s.secure {
		s.log.Warn("the public url is plain http on a host that is not loopback: browsers will not keep the Secure login cookie; serve it over https",
			"public_url", s.publicURL)
	}
	if s.pages, err = loadPages(); err != nil {
		return nil, err
	}
	s.handler, err = s.routes()
	if err != nil {
		return nil, err
	}
	return s, nil
}

// ServeHTTP serves the pages; pmd mounts the Server at "/".
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

func (s *Server) routes() (http.Handler, error) {
	mux := http.NewServeMux()
	mux.Handle("GET /{$}", s.page(s.landing))
	mux.Handle("GET /static/", s.static())
	mux.Handle("GET /signup", s.page(s.signupForm))
	mux.Handle("POST /signup", s.page(s.signup))
	mux.Handle("GET /login", s.page(s.loginForm))
	mux.Handle("POST /login", s.page(s.login))
	mux.Handle("POST /logout", s.page(s.logout))
	mux.Handle("GET /forgot", s.page(s.forgotForm))
	mux.Handle("POST /forgot", s.page(s.forgot))
	mux.Handle("GET /reset", s.page(s.resetForm))
	mux.Handle("POST /reset", s.page(s.reset))

	mux.Handle("GET /app", s.app(s.dashboard))
	mux.Handle("GET /app/setup", s.app(s.setupForm))
	mux.Handle("POST /app/setup", s.app(s.setup))
	mux.Handle("GET /app/events", s.app(s.events))
	mux.Handle("GET /app/status.json", s.app(s.statusJSON))
	mux.Handle("POST /app/subscribe", s.app(s.subscribe))
	mux.Handle("GET /app/checkout/return", s.app(s.checkoutReturn))
	mux.Handle("POST /app/portal", s.app(s.portal))
	mux.Handle("POST /app/cancel", s.app(s.cancel))
	mux.Handle("POST /app/resume", s.app(s.resume))
	mux.Handle("POST /app/restart", s.app(s.restart))
	mux.Handle("GET /app/delete", s.app(s.deleteForm))
	mux.Handle("POST /app/delete", s.app(s.deleteAccount))
	mux.Handle("/", s.page(func(w http.ResponseWriter, r *http.Request) error {
		return &pageError{status: http.StatusNotFound, title: "Page not found",
			message: "There is no page at this address. Check the link, or start from the home page."}
	}))

	cop := http.NewCrossOriginProtection()
	// Behind a proxy Host may be the proxy's; the public URL's origin is ours all the same.
	if err := cop.AddTrustedOrigin(s.publicURL); err != nil {
		return nil, fmt.Errorf("web: trust public url: %w", err)
	}
	cop.SetDenyHandler(s.page(func(w http.ResponseWriter, r *http.Request) error {
		s.log.InfoContext(r.Context(), "cross-origin form post refused", "path", r.URL.Path,
			"origin", r.Header.Get("Origin"), "sec_fetch_site", r.Header.Get("Sec-Fetch-Site"))
		return errForm
	}))
	return s.headers(limitBody(cop.Handler(mux))), nil
}

// headers sets the security headers every response carries.
func (s *Server) headers(next http.Handler) http.Handler {
	csp := strings.Join([]string{
		"default-src 'none'",
		"script-src 'self'",
		"style-src 'self'",
		"img-src 'self' data:",
		"connect-src 'self'",
		"font-src 'self'",
		"manifest-src 'self'",
		// Forms post here; Subscribe and Manage billing answer with a redirect to Stripe,
		// which form-action also governs.
		"form-action 'self' https://checkout.stripe.com https://billing.stripe.com",
		"frame-ancestors 'none'",
		"base-uri 'none'",
	}, "; ")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		// Reset links carry their token in the URL: no page sends its address anywhere.
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
		if s.secure {
			h.Set("Strict-Transport-Security", "max-age=31536000")
		}
		next.ServeHTTP(w, r)
	})
}

// limitBody bounds what a request may send: forms are small.
func limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Method != http.MethodGet && r.Method != http.MethodHead {
			r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		}
		next.ServeHTTP(w, r)
	})
}

// remoteIP is the connection's remote address without its port.
func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func newRequestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// requestID is the request's id: the one pmd's middleware or the caller set, or a new one,
// echoed in the response so a customer's report can be found in the log.
func requestID(w http.ResponseWriter, r *http.Request) string {
	id := r.Header.Get(httpapi.RequestIDHeader)
	if id == "" || len(id) > 64 || strings.ContainsFunc(id, func(c rune) bool { return c < '!' || c > '~' }) {
		id = newRequestID()
	}
	w.Header().Set(httpapi.RequestIDHeader, id)
	r.Header.Set(httpapi.RequestIDHeader, id) // for the handlers' log lines
	return id
}
