// Package agent is pmagent's work: it enrolls a host, keeps a tunnel to pmd open, answers
// pmd's requests over it, and reports the host's facts in heartbeats.
package agent

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/hostfacts"
	"github.com/pocketmolt/pocketmolt/internal/modelgate"
	"github.com/pocketmolt/pocketmolt/internal/pki"
	"github.com/pocketmolt/pocketmolt/internal/spool"
	"github.com/pocketmolt/pocketmolt/internal/tunnel"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// Defaults for Agent fields left zero.
const (
	DefaultHeartbeat  = 10 * time.Second
	DefaultMaxBackoff = 30 * time.Second
	minBackoff        = 500 * time.Millisecond
	// renewAt is the part of a certificate's life after which the agent renews it.
	renewAt = 2.0 / 3.0
)

// Agent keeps one host connected to pmd. Run it once.
type Agent struct {
	State   *State
	Facts   hostfacts.Collector
	Log     *slog.Logger
	Version string
	// MaxBackoff caps the wait between reconnects (default 30 s).
	MaxBackoff time.Duration
	// Bots runs the host's bots; nil when the agent has no container engine.
	Bots *Bots
	// Dialer dials pmd; nil means a net.Dialer with a 10 s timeout.
	Dialer func(ctx context.Context, network, addr string) (net.Conn, error)

	started time.Time
	mu      sync.Mutex
	facts   wire.HostFacts
	// models serves the bots' model endpoints and ships their usage; made by Run.
	models *Models

	// renewAfter is when pmd said to try a refused renewal again. Guarded by mu, like
	// revoked: a session's heartbeat loop may still be finishing as the next one starts.
	renewAfter time.Time
	// revoked is the sorted list of revoked server serials as last stored; nil until read.
	revoked []string
}

// Run connects to pmd and stays connected until ctx ends, reconnecting with jittered
// exponential backoff. It returns nil when ctx is cancelled: stopping is not an error.
func (a *Agent) Run(ctx context.Context) error {
	a.started = time.Now()
	if a.Bots != nil {
		closeModels, err := a.openModels()
		if err != nil {
			return err
		}
		defer closeModels()
		go a.Bots.Run(ctx)
	}
	maxB := a.MaxBackoff
	if maxB <= 0 {
		maxB = DefaultMaxBackoff
	}
	backoff := minBackoff
	for attempt := 1; ; attempt++ {
		began := time.Now()
		connected, err := a.connect(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if connected && time.Since(began) > maxB {
			backoff = minBackoff // a session that lasted starts the count again
		}
		if connected {
			attempt = 1
		}
		wait := jitter(backoff)
		a.Log.Warn("pmd connection failed", "attempt", attempt, "error", describe(err), "retry_in", wait.Round(time.Millisecond).String())
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		backoff = min(backoff*2, maxB)
	}
}

// openModels opens the usage spool in the state dir and the model endpoints the bots reach
// their models through. What the spool holds from before (pmd away, the agent killed)
// counts against the bots' allowances until pmd has it, and is shipped first.
func (a *Agent) openModels() (func(), error) {
	sp, err := spool.Open(filepath.Join(a.State.Dir, "usage"), a.Log.With("component", "spool"))
	if err != nil {
		return nil, fmt.Errorf("usage spool: %w", err)
	}
	g := modelgate.New(modelgate.Config{Sink: sp, Log: a.Log.With("component", "models")})
	g.Pending(sp.Batch(sp.Len()))
	a.models = NewModels(g, sp, a.Log.With("component", "models"))
	a.Bots.SetModels(a.models)
	return func() {
		a.models.Close()
		if err := sp.Close(); err != nil {
			a.Log.Error("close usage spool", "error", err.Error())
		}
	}, nil
}

// jitter spreads reconnects over [d/2, d) so a restarted pmd is not hit by every agent at once.
func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d/2+1)
}

// connect runs one session. It reports whether the TLS handshake succeeded, and why the
// session ended.
func (a *Agent) connect(ctx context.Context) (bool, error) {
	conn, err := a.dial(ctx)
	if err != nil {
		return false, err
	}
	sess, err := tunnel.Client(conn, a.Log)
	if err != nil {
		conn.Close()
		return false, err
	}
	defer sess.Close()
	log := a.Log.With("session_id", sess.ID)
	log.Info("connected to pmd", "server", a.State.Identity.Server)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if a.Bots != nil {
		a.Bots.SetNotify(func(ev wire.Events) {
			if err := call(ctx, sess, http.MethodPost, "/v1/events", ev, nil); err != nil && ctx.Err() == nil {
				log.Warn("send bot events", "error", err.Error())
			}
		})
		defer a.Bots.SetNotify(nil)
	}
	if a.models != nil {
		go a.models.Ship(ctx, func(ctx context.Context, b wire.UsageBatch) (wire.UsageReply, error) {
			var reply wire.UsageReply
			err := call(ctx, sess, http.MethodPost, "/v1/usage", b, &reply)
			return reply, err
		})
	}
	served := make(chan error, 1)
	go func() { served <- sess.Serve(a.handler(), log) }()
	hb := make(chan error, 1)
	var up atomic.Bool // set once pmd has answered a heartbeat
	go func() { hb <- a.heartbeats(ctx, sess, log, &up) }()

	select {
	case <-ctx.Done():
		return up.Load(), ctx.Err()
	case <-sess.Done():
		if err := conn.(*readErrConn).readErr(); err != nil && !up.Load() {
			return false, err
		}
		return up.Load(), errors.New("session closed by pmd")
	case err := <-served:
		return up.Load(), fmt.Errorf("serve pmd requests: %w", err)
	case err := <-hb:
		if rerr := conn.(*readErrConn).readErr(); rerr != nil && !up.Load() {
			return false, rerr
		}
		return up.Load(), err
	}
}

func (a *Agent) dial(ctx context.Context) (net.Conn, error) {
	cfg, err := a.State.TunnelTLS()
	if err != nil {
		return nil, err
	}
	revoked, err := a.State.RevokedServers()
	if err != nil {
		// The list is pmd's to give; the next heartbeat writes it whole again.
		a.Log.Warn("revoked server certificates unreadable; the next heartbeat replaces them", "error", err.Error())
	}
	// After the chain is verified: a server certificate pmd has revoked (rotated out, perhaps
	// because its key leaked) is refused even though it chains to the root.
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) > 0 {
			if serial := pki.SerialString(cs.PeerCertificates[0]); slices.Contains(revoked, serial) {
				return fmt.Errorf("server certificate %s was revoked by pmd: refusing this server", serial)
			}
		}
		return nil
	}
	dial := a.Dialer
	if dial == nil {
		d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
		dial = d.DialContext
	}
	raw, err := dial(ctx, "tcp", a.State.Identity.Server)
	if err != nil {
		return nil, err
	}
	c := tls.Client(raw, cfg)
	hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := c.HandshakeContext(hctx); err != nil {
		raw.Close()
		return nil, fmt.Errorf("tls handshake: %w", err)
	}
	if c.ConnectionState().NegotiatedProtocol != wire.ProtoTunnel {
		c.Close()
		return nil, fmt.Errorf("pmd at %s does not speak %s", a.State.Identity.Server, wire.ProtoTunnel)
	}
	return &readErrConn{Conn: c}, nil
}

// readErrConn remembers the first read error. With TLS 1.3 the server checks a client
// certificate after the client's side of the handshake has ended, so a rejection arrives as an
// alert on the first read — inside yamux, which only says its session closed.
type readErrConn struct {
	net.Conn
	once sync.Once
	err  error
}

func (c *readErrConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil {
		c.once.Do(func() { c.err = err })
	}
	return n, err
}

// NetConn is the connection under the TLS one, for tunnel's fast close.
func (c *readErrConn) NetConn() net.Conn {
	if nc, ok := c.Conn.(interface{ NetConn() net.Conn }); ok {
		return nc.NetConn()
	}
	return c.Conn
}

// readErr is the first read error, or nil. Call it only after the session has ended.
func (c *readErrConn) readErr() error {
	c.once.Do(func() {})
	return c.err
}

// heartbeats sends one heartbeat at once and then one per interval; pmd may change the
// interval in its reply. It renews the certificate when it is due.
func (a *Agent) heartbeats(ctx context.Context, sess *tunnel.Session, log *slog.Logger, up *atomic.Bool) error {
	interval := DefaultHeartbeat
	for {
		reply, err := a.heartbeat(ctx, sess)
		if err != nil {
			return fmt.Errorf("heartbeat: %w", err)
		}
		up.Store(true)
		if d := time.Duration(reply.Interval); d > 0 {
			interval = d
		}
		if err := a.keepRevokedServers(reply.RevokedServers); err != nil {
			log.Error("store revoked server certificates", "error", err.Error())
		}
		if err := a.renewIfDue(ctx, sess, log); err != nil {
			// A failed renewal is retried at the next heartbeat; the current certificate
			// is still valid until its end.
			log.Error("certificate renewal failed", "error", err.Error())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
	}
}

func (a *Agent) heartbeat(ctx context.Context, sess *tunnel.Session) (wire.HeartbeatReply, error) {
	f := a.Facts.Collect(ctx)
	if a.Bots != nil {
		f.SharedBotUID = a.Bots.SharedUID()
	}
	a.mu.Lock()
	a.facts = f
	a.mu.Unlock()
	hb := wire.Heartbeat{Facts: f, Sent: time.Now(), Bots: []wire.BotState{}}
	if a.Bots != nil {
		hb.Bots, hb.Observed = a.Bots.Snapshot()
	}
	var reply wire.HeartbeatReply
	err := call(ctx, sess, http.MethodPost, "/v1/heartbeat", hb, &reply)
	return reply, err
}

// keepRevokedServers stores pmd's list of revoked server serials when it differs from the
// one stored; pmd's list replaces it whole (pmd drops serials once they expire).
func (a *Agent) keepRevokedServers(serials []string) error {
	serials = slices.Clone(serials)
	slices.Sort(serials)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.revoked == nil {
		stored, err := a.State.RevokedServers()
		if err != nil {
			stored = []string{"unreadable"} // differs from anything pmd sends: rewrite it
		}
		a.revoked = append([]string{}, stored...)
		slices.Sort(a.revoked)
	}
	if slices.Equal(serials, a.revoked) {
		return nil
	}
	if err := a.State.saveRevokedServers(serials); err != nil {
		return err
	}
	a.revoked = append([]string{}, serials...)
	if len(serials) > 0 {
		a.Log.Info("revoked server certificates updated", "serials", serials)
	}
	return nil
}

func (a *Agent) renewIfDue(ctx context.Context, sess *tunnel.Session, log *slog.Logger) error {
	_, leaf, err := a.State.Certificate()
	if err != nil {
		return err
	}
	life := leaf.NotAfter.Sub(leaf.NotBefore)
	due := leaf.NotBefore.Add(time.Duration(float64(life) * renewAt))
	now := time.Now()
	a.mu.Lock()
	wait := now.Before(a.renewAfter)
	a.mu.Unlock()
	if now.Before(due) || wait {
		return nil
	}
	keyPEM, csrPEM, err := newKeyAndCSR("pmagent")
	if err != nil {
		return err
	}
	var rr wire.RenewResponse
	if err := call(ctx, sess, http.MethodPost, "/v1/renew", wire.RenewRequest{CSR: string(csrPEM)}, &rr); err != nil {
		var we *wire.Error
		if errors.As(err, &we) && we.RetryAfter > 0 {
			a.mu.Lock()
			a.renewAfter = now.Add(we.RetryAfter) // pmd said when; ask no sooner
			a.mu.Unlock()
		}
		return err
	}
	if err := a.State.saveCertificate([]byte(rr.Cert), keyPEM); err != nil {
		return err
	}
	_, nl, err := a.State.Certificate()
	if err != nil {
		return err
	}
	log.Info("certificate renewed", "serial", fmt.Sprintf("%x", nl.SerialNumber), "not_after", nl.NotAfter)
	return nil
}

// handler is the API pmd calls on this agent over the tunnel.
func (a *Agent) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/info", func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		f := a.facts
		a.mu.Unlock()
		wire.WriteJSON(w, http.StatusOK, wire.AgentInfo{
			HostID: a.State.Identity.HostID, AgentVersion: a.Version, Started: a.started, Facts: f,
		})
	})
	if a.Bots != nil {
		a.Bots.routes(mux, a.Log)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		wire.WriteError(w, wire.Errorf(wire.CodeNotFound, "no such agent endpoint: %s %s", r.Method, r.URL.Path))
	})
	return mux
}

// call sends one JSON request to pmd over the session and decodes the JSON answer.
func call(ctx context.Context, sess *tunnel.Session, method, path string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "http://pmd"+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := sess.HTTPClient().Do(req)
	if err != nil {
		return unwrapURLError(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return wire.DecodeError(resp)
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(http.MaxBytesReader(nil, resp.Body, 1<<20)).Decode(out)
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// describe turns a connection failure into one line that says what to do where it can.
func describe(err error) string {
	if err == nil {
		return "session ended"
	}
	s := err.Error()
	switch {
	case strings.Contains(s, "refusing this server"):
		return s + " (the server presents a certificate pmd rotated out: it is not pmd, or a pmd still on an old key)"
	case strings.Contains(s, "bad certificate"), strings.Contains(s, "certificate required"),
		strings.Contains(s, "revoked"), strings.Contains(s, "unknown certificate"):
		return s + " (pmd refused this host's certificate: it was revoked or is unknown; enroll again with a new token)"
	case strings.Contains(s, "certificate signed by unknown authority"), strings.Contains(s, "certificate is valid for"):
		return s + " (pmd's certificate does not match the pinned CA or name)"
	}
	return s
}

// New returns an agent for an enrolled state dir. docker reports the Engine's version for
// heartbeats; nil means no engine.
//
// rt runs the host's bots; with a nil rt the agent reports "no engine" and runs no bots.
func New(st *State, rt Runtime, agentVersion string, log *slog.Logger) *Agent {
	log = log.With("host_id", st.Identity.HostID)
	a := &Agent{
		State:   st,
		Facts:   hostfacts.Collector{DiskPath: st.Dir, AgentVersion: agentVersion},
		Log:     log,
		Version: agentVersion,
	}
	if rt != nil {
		a.Facts.Docker = rt.Version
		a.Bots = NewBots(rt, st.Dir, st.Identity.HostID, log)
	}
	return a
}
