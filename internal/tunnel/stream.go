package tunnel

import (
	"net"
	"sync"
	"time"

	"github.com/hashicorp/yamux"
)

// expired is a deadline long past: a stream given it fails every Read and Write at once.
var expired = time.Unix(1, 0)

// stream is a yamux stream this package handed out, tracked by its session so that the
// session's end can expire its deadlines (see endingConn).
type stream struct {
	*yamux.Stream
	s *Session
	// mu orders deadline changes against expiry: a deadline set after the session began
	// ending is replaced by an expired one, whichever goroutine got there first.
	mu        sync.Mutex
	closeOnce sync.Once
	onClose   func()
}

// track registers c with the session; onClose, if not nil, runs once when c is closed.
func (s *Session) track(c *yamux.Stream, onClose func()) *stream {
	st := &stream{Stream: c, s: s, onClose: onClose}
	s.mu.Lock()
	s.streams[st] = struct{}{}
	s.mu.Unlock()
	// A stream accepted or opened as the session ended is expired like the others.
	if s.ending.Load() {
		st.expireDeadlines()
	}
	return st
}

// expire marks the session as ending and expires the deadlines of every stream it tracks.
// It is safe to call more than once and from any goroutine; it never blocks on the network.
func (s *Session) expire() {
	s.ending.Store(true)
	s.mu.Lock()
	all := make([]*stream, 0, len(s.streams))
	for st := range s.streams {
		all = append(all, st)
	}
	s.mu.Unlock()
	for _, st := range all {
		st.expireDeadlines()
	}
}

func (c *stream) expireDeadlines() {
	c.mu.Lock()
	defer c.mu.Unlock()
	_ = c.Stream.SetDeadline(expired)
}

// setDeadline sets one of the stream's deadlines unless the session is ending.
func (c *stream) setDeadline(set func(time.Time) error, t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.s.ending.Load() {
		t = expired
	}
	return set(t)
}

// SetDeadline implements net.Conn; net/http moves deadlines as it serves a stream, and must
// not revive one the session's end expired.
func (c *stream) SetDeadline(t time.Time) error {
	return c.setDeadline(c.Stream.SetDeadline, t)
}

// SetReadDeadline implements net.Conn.
func (c *stream) SetReadDeadline(t time.Time) error {
	return c.setDeadline(c.Stream.SetReadDeadline, t)
}

// SetWriteDeadline implements net.Conn.
func (c *stream) SetWriteDeadline(t time.Time) error {
	return c.setDeadline(c.Stream.SetWriteDeadline, t)
}

// Read implements net.Conn; once the session is ending it fails at once, even with bytes
// buffered: nothing read now can be answered.
func (c *stream) Read(p []byte) (int, error) {
	if c.s.ending.Load() {
		return 0, yamux.ErrSessionShutdown
	}
	return c.Stream.Read(p)
}

// Write implements net.Conn; once the session is ending it fails at once. yamux checks a
// write deadline only when the peer's window is full, and sends until its Close has run.
func (c *stream) Write(p []byte) (int, error) {
	if c.s.ending.Load() {
		return 0, yamux.ErrSessionShutdown
	}
	return c.Stream.Write(p)
}

// Close stops tracking the stream and closes it. The stream leaves its limits before yamux
// forgets it, so a peer that saw it closed may open the next at once.
func (c *stream) Close() error {
	c.closeOnce.Do(func() {
		c.s.mu.Lock()
		delete(c.s.streams, c)
		c.s.mu.Unlock()
		if c.onClose != nil {
			c.onClose()
		}
	})
	return c.Stream.Close()
}

// listener hands the peer's streams to an http.Server, holding the peer to limits when it
// has any.
type listener struct {
	s   *Session
	lim *limiter // nil: no limits
}

// Accept implements net.Listener. Past a limit it cuts the session and returns a
// *LimitError, which ends http.Server.Serve.
func (l *listener) Accept() (net.Conn, error) {
	c, err := l.s.mux.AcceptStream()
	if err != nil {
		return nil, err
	}
	if l.lim == nil {
		return l.s.track(c, nil), nil
	}
	if err := l.lim.admit(); err != nil {
		c.Close()
		l.s.Close()
		return nil, err
	}
	return l.s.track(c, l.lim.release), nil
}

// Close implements net.Listener. The session, not the listener, owns the streams: closing
// the listener leaves them be.
func (l *listener) Close() error { return nil }

// Addr implements net.Listener.
func (l *listener) Addr() net.Addr { return l.s.mux.Addr() }
