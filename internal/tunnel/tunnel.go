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

// fastClose closes the TCP connection under a TLS connection before the TLS one. tls.Conn's
// Close first sends close_notify, which waits for any write in progress — to a peer that is
// gone, for up to its deadline — and yamux v0.1.2's streams spin on their CPU while their
// session waits for that Close.
type fastClose struct {
	net.Conn
	raw net.Conn
}

func (c fastClose) Close() error {
	c.raw.Close()
	return c.Conn.Close()
}

// withFastClose wraps conn when it can reach the connection under its TLS.
func withFastClose(conn net.Conn) net.Conn {
	if nc, ok := conn.(interface{ NetConn() net.Conn }); ok {
		return fastClose{Conn: conn, raw: nc.NetConn()}
	}
	return conn
}

// Client starts the dialling side's (the agent's) end of a tunnel over conn.
func Client(conn net.Conn, log *slog.Logger) (*Session, error) {
	m, err := yamux.Client(withFastClose(conn), config(log))
	if err != nil {
		return nil, fmt.Errorf("start tunnel: %w", err)
	}
	return newSession(m), nil
}

// Server starts the accepting side's (pmd's) end of a tunnel over conn.
func Server(conn net.Conn, log *slog.Logger) (*Session, error) {
	m, err := yamux.Server(withFastClose(conn), config(log))
	if err != nil {
		return nil, fmt.Errorf("start tunnel: %w", err)
	}
	return newSession(m), nil
}

func newSession(m *yamux.Session) *Session {
	s := &Session{ID: newID(), mux: m}
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
	return s
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
	return c, nil
}

// HTTPClient sends requests to the peer's HTTP server over this session. The URL's host is
// ignored; use "http://peer/…".
func (s *Session) HTTPClient() *http.Client { return s.client }

// Serve answers the peer's requests with h until the session closes. It returns nil when the
// session ended because either side closed it, and an error when the peer sent bytes that are
// not yamux frames.
func (s *Session) Serve(h http.Handler, log *slog.Logger) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	err := srv.Serve(s.mux)
	// A peer that sends something other than yamux frames did not close the session.
	if errors.Is(err, yamux.ErrInvalidVersion) || errors.Is(err, yamux.ErrInvalidMsgType) {
		return fmt.Errorf("tunnel protocol: %w", err)
	}
	if s.mux.IsClosed() || errors.Is(err, io.EOF) || errors.Is(err, yamux.ErrSessionShutdown) {
		return nil
	}
	return err
}

// Close ends the session and its connection; in-flight streams fail.
func (s *Session) Close() error { return s.mux.Close() }

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
