// Package fleet is pmd's side of the hosts: enrollment, the tunnel sessions agents open, their
// heartbeats and certificate renewals, host status, and revocation.
//
// pmd holds at most one session per host, keyed by host id; a new session from a host
// replaces the old one. Calls to an agent go over its session (see Call).
package fleet

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/metrics"
	"github.com/pocketmolt/pocketmolt/internal/mtls"
	"github.com/pocketmolt/pocketmolt/internal/pki"
	"github.com/pocketmolt/pocketmolt/internal/store"
	"github.com/pocketmolt/pocketmolt/internal/tlsadmit"
	"github.com/pocketmolt/pocketmolt/internal/tunnel"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// Defaults for Config fields left zero.
const (
	DefaultHeartbeat    = 10 * time.Second
	DefaultAgentCertTTL = 24 * time.Hour
	DefaultTokenTTL     = time.Hour
	// missedBeats is how many heartbeat intervals may pass before a host is offline.
	missedBeats = 3
)

// Config tunes a Fleet.
type Config struct {
	HeartbeatInterval time.Duration
	AgentCertTTL      time.Duration
	TokenTTL          time.Duration
	// AgentAddress is the agent listener's address as hosts dial it, shown with tokens.
	AgentAddress string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Metrics counts requests, sessions and bot events; nil counts nothing.
	Metrics *metrics.Metrics
	// CertOverlap is how long an agent certificate replaced by a renewal is still accepted
	// at new handshakes (default DefaultCertOverlap). A live session on it is never cut.
	CertOverlap time.Duration
	// EnrollRate and EnrollRatePerAddress bound enrollment requests per minute, from all
	// sources and from one source address (defaults DefaultEnrollRate and
	// DefaultEnrollRatePerAddress); beyond them pmd answers 429 with Retry-After.
	EnrollRate, EnrollRatePerAddress int
	// ServerCertificate, when set, picks the server certificate at each handshake, so that a
	// renewed or rotated one is served without a restart; otherwise Serve's cert is used.
	ServerCertificate func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	// Tunnel is what every agent's session is held to; zero fields take
	// tunnel.DefaultLimits'.
	Tunnel tunnel.Limits
	// Admission bounds the TLS handshakes the agent listener runs at once; zero fields take
	// tlsadmit's defaults. Its TLS and Shed are set by Serve.
	Admission tlsadmit.Config
}

// Observer is told when a host connects and what it reports about its bots. The bots
// service implements it.
type Observer interface {
	// Connected is called when a host's session opens.
	Connected(hostID string)
	// Observe records bot states a host reported; complete means the host listed every bot
	// it runs.
	Observe(ctx context.Context, hostID string, states []wire.BotState, complete bool) error
	// Owners sorts the bot ids a host reported: foreign are other hosts' bots, unknown are
	// ids of no bot; the rest are the host's own.
	Owners(ctx context.Context, hostID string, ids []string) (foreign, unknown []string, err error)
}

// RoomObserver is an Observer that also hears when a host may have gained room for bots: its
// first heartbeat of a session (it is online from then), a change in the capacity it
// declares, an operator's new capacity limit, and the end of a drain. The bots service
// implements it to place the bots that wait for a host. It must not block.
type RoomObserver interface {
	HostChanged(hostID string)
}

// hostChanged tells the observer, if it listens, that the host may have room now.
func (f *Fleet) hostChanged(hostID string) {
	if o, ok := f.observer.(RoomObserver); ok {
		o.HostChanged(hostID)
	}
}

// Fleet tracks hosts and their sessions. It is safe for concurrent use.
type Fleet struct {
	store *store.Store
	ca    *pki.CA
	cfg   Config
	log   *slog.Logger

	mu    sync.Mutex
	conns map[string]*conn // by host id
	// penalties are the hosts whose sessions were cut for going past the tunnel's limits.
	penalties map[string]*penalty
	// sessions counts running session goroutines, so Serve returns after they have
	// recorded their end.
	sessions sync.WaitGroup
	closed   bool
	observer Observer
	// routes are extra agent-API routes other components registered (HandleAgent).
	routes []agentRoute

	limits         limiters
	revokedServers []string          // guarded by mu
	retired        map[string]string // host id → serial its older certificates were retired for; guarded by mu
	// refused is, per host id, why its declared capacity was last found refused ("" when
	// accepted), so a change is logged once.
	refused map[string]string
}

// SetObserver sets who hears about connections and bot reports; call it before Serve.
func (f *Fleet) SetObserver(o Observer) { f.observer = o }

// conn is one live agent session.
type conn struct {
	hostID   string
	sess     *tunnel.Session
	serial   string
	notAfter time.Time
	since    time.Time

	mu        sync.Mutex
	lastBeat  time.Time
	facts     []byte    // as last written to the store
	persisted time.Time // when last_seen_at was last written
	// owned is the sorted bot ids of the last report whose bots were checked as the host's.
	owned string
	// declared is the capacity of the last heartbeat; capChecked is set once it was checked.
	declared   wire.Capacity
	capChecked bool
}

// persistEvery is how stale a connected host's stored last_seen_at may get; its liveness is
// judged from memory.
const persistEvery = time.Minute

// New returns a Fleet over a store and a CA.
func New(st *store.Store, ca *pki.CA, cfg Config, log *slog.Logger) *Fleet {
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = DefaultHeartbeat
	}
	if cfg.AgentCertTTL <= 0 {
		cfg.AgentCertTTL = DefaultAgentCertTTL
	}
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = DefaultTokenTTL
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.CertOverlap <= 0 {
		cfg.CertOverlap = DefaultCertOverlap
	}
	if cfg.EnrollRate <= 0 {
		cfg.EnrollRate = DefaultEnrollRate
	}
	if cfg.EnrollRatePerAddress <= 0 {
		cfg.EnrollRatePerAddress = DefaultEnrollRatePerAddress
	}
	return &Fleet{store: st, ca: ca, cfg: cfg, log: log, conns: map[string]*conn{}, limits: newLimiters(cfg), retired: map[string]string{}, refused: map[string]string{}, penalties: map[string]*penalty{}}
}

// HeartbeatInterval is the interval agents are told to use.
func (f *Fleet) HeartbeatInterval() time.Duration { return f.cfg.HeartbeatInterval }

// Refusals of CheckSerial.
var (
	ErrCertUnknown = errors.New("certificate unknown to pmd")
	ErrCertRevoked = errors.New("certificate revoked")
	// ErrCertSuperseded refuses an agent certificate that a renewal replaced more than the
	// overlap ago.
	ErrCertSuperseded = errors.New("certificate superseded by a renewal")
)

// CheckSerial is the revocation check for agent and admin certificates at every handshake
// and again where they are used: the certificate must be one pmd issued, not revoked, and not
// superseded by a renewal longer than the overlap ago. When the store is out of reach it
// cannot tell, and says so with an error wrapping both mtls.ErrUnchecked and
// store.ErrUnavailable.
func (f *Fleet) CheckSerial(serial string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := f.store.GetCert(ctx, serial)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return ErrCertUnknown
	case errors.Is(err, store.ErrUnavailable):
		return fmt.Errorf("%w: %w", mtls.ErrUnchecked, err)
	case err != nil:
		return fmt.Errorf("check certificate: %w", err)
	case c.RevokedAt != nil:
		return ErrCertRevoked
	case c.SupersededAt != nil && !f.cfg.Now().Before(c.SupersededAt.Add(f.cfg.CertOverlap)):
		return ErrCertSuperseded
	}
	return nil
}

// Run closes sessions that stopped sending heartbeats or whose certificate expired, until
// ctx ends.
func (f *Fleet) Run(ctx context.Context) {
	t := time.NewTicker(f.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f.sweep()
		}
	}
}

func (f *Fleet) sweep() {
	now := f.cfg.Now()
	f.mu.Lock()
	type cut struct {
		c      *conn
		reason string
	}
	var stale []cut
	for _, c := range f.conns {
		c.mu.Lock()
		last := c.lastBeat
		c.mu.Unlock()
		if last.IsZero() {
			last = c.since
		}
		switch {
		case now.After(c.notAfter):
			stale = append(stale, cut{c, cutCertExpired})
		case now.Sub(last) > missedBeats*f.cfg.HeartbeatInterval:
			stale = append(stale, cut{c, cutStale})
		}
	}
	f.forgetPenalties(now)
	f.mu.Unlock()
	for _, s := range stale {
		f.cut(s.c, s.reason)
	}
}

// Why pmd ended a session, for the log line and the sessions_cut metric. The tunnel's own
// reasons (tunnel.LimitError.Reason) are the others.
const (
	cutStale       = "stale"
	cutCertExpired = "cert_expired"
	cutReplaced    = "replaced"
	cutRevoked     = "revoked"
)

// cut ends a session for reason, without waiting: tunnel.Session.Close never blocks, so no
// caller — the sweep, a replacing session, an operator's revocation — waits on a host.
// A replaced session is the normal end of a host's old connection and is logged at info
// level; every other cut at warn.
func (f *Fleet) cut(c *conn, reason string, attrs ...any) {
	level := slog.LevelWarn
	if reason == cutReplaced {
		level = slog.LevelInfo
	}
	f.log.Log(context.Background(), level, "session cut",
		append([]any{"host_id", c.hostID, "session_id", c.sess.ID, "reason", reason}, attrs...)...)
	f.cfg.Metrics.SessionCut(reason)
	c.sess.Close()
}

// Close ends every session and refuses new ones.
func (f *Fleet) Close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	for _, c := range f.conns {
		c.sess.Close()
	}
}

// track counts a session goroutine in; false once the fleet is closed.
func (f *Fleet) track() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	f.sessions.Add(1)
	return true
}

// register makes c the host's session, closing the one it replaces.
func (f *Fleet) register(c *conn) {
	f.mu.Lock()
	old := f.conns[c.hostID]
	f.conns[c.hostID] = c
	f.mu.Unlock()
	if old != nil {
		f.cut(old, cutReplaced, "new_session_id", c.sess.ID)
	}
}

// unregister forgets c if it is still the host's session.
func (f *Fleet) unregister(c *conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.conns[c.hostID] == c {
		delete(f.conns, c.hostID)
		return true
	}
	return false
}

func (f *Fleet) session(hostID string) *conn {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.conns[hostID]
}

// closeWhere ends every session for which match is true: the host or its certificate was
// revoked.
func (f *Fleet) closeWhere(match func(*conn) bool) int {
	f.mu.Lock()
	var hit []*conn
	for _, c := range f.conns {
		if match(c) {
			hit = append(hit, c)
		}
	}
	f.mu.Unlock()
	for _, c := range hit {
		f.cut(c, cutRevoked)
	}
	return len(hit)
}

// Connected is the number of live sessions.
func (f *Fleet) Connected() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.conns)
}

// Client returns an HTTP client that reaches the host's agent over its session, or an
// unavailable error when the host is not connected.
func (f *Fleet) Client(hostID string) (*http.Client, error) {
	c := f.session(hostID)
	if c == nil {
		return nil, wire.Errorf(wire.CodeUnavailable, "host %s is not connected", hostID)
	}
	return c.sess.HTTPClient(), nil
}

func newID(prefix string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}
