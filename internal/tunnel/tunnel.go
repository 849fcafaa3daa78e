// Package tunnel carries HTTP both ways over one yamux session on one TLS connection.
//
// The agent dials pmd; both ends run yamux over that connection and both ends serve HTTP on
// it: every request is one yamux stream, opened by whichever side asks. A *yamux.Session is a
// net.Listener for the serving side, and Open is the dialer of an http.Transport for the
// asking side.
package tunnel

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/yamux"
)

// KeepAlive is how often yamux pings the peer; a peer that stops answering is gone after
// ConnectionWriteTimeout.
const KeepAlive = 15 * time.Second

// Session is one end of a tunnel. It is safe for concurrent use.
type Session struct {
	// ID names this session in logs and in the store; a new connection gets a new ID.
	ID     string
	mux    *yamux.Session
	client *http.Client
	// raw is the TCP connection under a TLS one, or nil: closing it first ends the session
	// without waiting on a write to a peer that stopped reading.
	raw net.Conn

	mu      sync.Mutex
	streams map[*stream]struct{} // open streams either side opened, through this package
	ending  atomic.Bool          // set once the session shuts down, whoever shut it
}

func config(log *slog.Logger) *yamux.Config {
	c := yamux.DefaultConfig()
	c.KeepAliveInterval = KeepAlive
	c.ConnectionWriteTimeout = 10 * time.Second
	c.StreamOpenTimeout = 10 * time.Second
	c.StreamCloseTimeout = 30 * time.Second
	c.AcceptBacklog = 64
	c.LogOutput = nil // DefaultConfig sets it; yamux refuses both
	c.Logger = slog.NewLogLogger(log.Handler(), slog.LevelDebug)
	return c
}

// endingConn is the connection yamux runs on. yamux v0.1.2's Session.Close closes its
// shutdown channel, then this connection, waits for its receive loop, and only then marks
// its streams closed; meanwhile every Stream.Read or Write blocked on a stream loops
// "shutdown → start again" on a CPU, and with thousands of streams the closing goroutine
// barely runs. Close is the first thing yamux does after that channel closes on every path
// (a Close by either side, a broken connection, a protocol error), so it expires every
// stream's deadlines there, and the loops end with a timeout.
//
// It also closes the TCP connection under a TLS one before the TLS one: tls.Conn's Close
// first sends close_notify, which waits for any write in progress — to a peer that is gone,
// for up to its deadline.
type endingConn struct {
	net.Conn
	s *Session
}

func (c endingConn) Close() error {
	c.s.expire()
	if c.s.raw != nil {
		c.s.raw.Close()
	}
	return c.Conn.Close()
}

// Client starts the dialling side's (the agent's) end of a tunnel over conn.
func Client(conn net.Conn, log *slog.Logger) (*Session, error) {
	return start(conn, log, yamux.Client)
}

// Server starts the accepting side's (pmd's) end of a tunnel over conn.
func Server(conn net.Conn, log *slog.Logger) (*Session, error) {
	return start(conn, log, yamux.Server)
}

func start(conn net.Conn, log *slog.Logger, run func(io.ReadWriteCloser, *yamux.Config) (*yamux.Session, error)) (*Session, error) {
	s := &Session{ID: newID(), streams: map[*stream]struct{}{}}
	if nc, ok := conn.(interface{ NetConn() net.Conn }); ok {
		s.raw = nc.NetConn()
	}
	m, err := run(endingConn{Conn: conn, s: s}, config(log))
	if err != nil {
		return nil, fmt.Errorf("start tunnel: %w", err)
	}
	s.mux = m
	s.client = &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return s.open(ctx)
		},
		// One request per stream: streams are cheap, and a stream left idle in a pool
		// would outlive the request that opened it.
		DisableKeepAlives:      true,
		ResponseHeaderTimeout:  0,
		MaxResponseHeaderBytes: 64 << 10,
	}}
	return s, nil
}

// open opens a stream for one request. yamux's OpenStream takes no context; it blocks only
// while the peer has not acknowledged too many streams, bounded by StreamOpenTimeout.
func (s *Session) open(ctx context.Context) (net.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c, err := s.mux.OpenStream()
	if err != nil {
		return nil, fmt.Errorf("open stream: %w", err)
	}
	return s.track(c, nil), nil
}

// HTTPClient sends requests to the peer's HTTP server over this session. The URL's host is
// ignored; use "http://peer/…".
func (s *Session) HTTPClient() *http.Client { return s.client }

// Serve answers the peer's requests with h until the session closes. It returns nil when the
// session ended because either side closed it, and an error when the peer sent bytes that are
// not yamux frames.
//
// Serve trusts its peer (the agent serves pmd with it): it bounds only the wait for a
// request's header and an idle stream, and puts no deadline on a response, since followed
// logs, event streams and proxied WebSockets last as long as the caller wants. A side that
// must hold its peer to limits uses ServeLimited.
func (s *Session) Serve(h http.Handler, log *slog.Logger) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return s.serve(srv, &listener{s: s})
}

func (s *Session) serve(srv *http.Server, ln *listener) error {
	err := srv.Serve(ln)
	// The session is ending: whatever is still being served fails now rather than when each
	// handler notices.
	srv.Close()
	var le *LimitError
	switch {
	case errors.As(err, &le):
		return err
	// A peer that sends something other than yamux frames did not close the session.
	case errors.Is(err, yamux.ErrInvalidVersion) || errors.Is(err, yamux.ErrInvalidMsgType):
		return fmt.Errorf("tunnel protocol: %w", err)
	case s.mux.IsClosed() || errors.Is(err, io.EOF) || errors.Is(err, yamux.ErrSessionShutdown):
		return nil
	}
	return err
}

// Close ends the session and its connection without waiting: streams in flight fail at
// once, the connection closes at once, and yamux finishes shutting down in the background.
// Done is closed once it has begun. Close never blocks, so a caller holding a lock or serving
// an operator can close any number of sessions.
func (s *Session) Close() error {
	s.expire()
	if s.raw != nil {
		s.raw.Close()
	}
	go s.mux.Close()
	return nil
}

// Done is closed when the session has ended.
func (s *Session) Done() <-chan struct{} { return s.mux.CloseChan() }

// Ping measures a round trip at the yamux layer.
func (s *Session) Ping() (time.Duration, error) { return s.mux.Ping() }

// NumStreams is the number of open streams.
func (s *Session) NumStreams() int { return s.mux.NumStreams() }

func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
