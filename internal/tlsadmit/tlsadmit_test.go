package tlsadmit_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/apiclient/apitest"
	"github.com/pocketmolt/pocketmolt/internal/tlsadmit"
)

const guard = 10 * time.Second

var discard = slog.New(slog.DiscardHandler)

// rig is a Listener on loopback with a real server certificate, and what it shed.
type rig struct {
	t    *testing.T
	l    *tlsadmit.Listener
	pool *x509.CertPool

	mu   sync.Mutex
	shed []string
	// started receives a value when a handshake reaches the server's configuration; while
	// hold is set, that handshake then waits for release.
	started chan struct{}
	release chan struct{}
	hold    bool
}

func newRig(t *testing.T, cfg tlsadmit.Config, hold bool) *rig {
	t.Helper()
	cert, pool := apitest.ServerTLS(t)
	r := &rig{t: t, pool: pool, started: make(chan struct{}, 100), release: make(chan struct{}), hold: hold}
	base := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13, NextProtos: []string{"test/1"}}
	cfg.TLS = &tls.Config{GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
		r.started <- struct{}{}
		if r.hold {
			<-r.release
		}
		return base, nil
	}}
	cfg.Shed = func(reason string) {
		r.mu.Lock()
		r.shed = append(r.shed, reason)
		r.mu.Unlock()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.l = tlsadmit.New(ln, cfg, discard)
	t.Cleanup(func() {
		r.unhold()
		r.l.Close()
	})
	return r
}

func (r *rig) unhold() {
	select {
	case <-r.release:
	default:
		close(r.release)
	}
}

func (r *rig) shedReasons() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.shed...)
}

// dial starts a TLS client; its handshake's result arrives on the channel.
func (r *rig) dial() <-chan error {
	r.t.Helper()
	raw, err := net.Dial("tcp", r.l.Addr().String())
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { raw.Close() })
	c := tls.Client(raw, &tls.Config{RootCAs: r.pool, ServerName: "localhost", MinVersion: tls.VersionTLS13, NextProtos: []string{"test/1"}})
	done := make(chan error, 1)
	go func() {
		c.SetDeadline(time.Now().Add(guard))
		err := c.Handshake()
		if err == nil {
			// The server writes first once accepted; a shed connection reads its end.
			_, err = io.ReadFull(c, make([]byte, 2))
		}
		done <- err
	}()
	return done
}

// serveOne accepts one connection and greets it.
func (r *rig) serveOne() <-chan *tls.Conn {
	ch := make(chan *tls.Conn, 1)
	go func() {
		c, err := r.l.Accept()
		if err != nil {
			close(ch)
			return
		}
		tc := c.(*tls.Conn)
		tc.Write([]byte("hi"))
		ch <- tc
	}()
	return ch
}

func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(guard):
		t.Fatalf("%s: nothing after %v", what, guard)
	}
	var zero T
	return zero
}

func TestAdmitsHandshakenConnections(t *testing.T) {
	const n = 30
	r := newRig(t, tlsadmit.Config{Workers: 3}, false)
	var clients []<-chan error
	for range n {
		clients = append(clients, r.dial())
	}
	for i := range n {
		tc := recv(t, r.serveOne(), "Accept")
		if tc == nil {
			t.Fatalf("Accept %d failed", i)
		}
		cs := tc.ConnectionState()
		if !cs.HandshakeComplete || cs.NegotiatedProtocol != "test/1" {
			t.Errorf("accepted connection: handshake complete %v, protocol %q", cs.HandshakeComplete, cs.NegotiatedProtocol)
		}
		defer tc.Close()
	}
	for _, c := range clients {
		if err := recv(t, c, "a client"); err != nil {
			t.Errorf("client: %v", err)
		}
	}
	if s := r.shedReasons(); len(s) > 0 {
		t.Errorf("shed %v with room for everyone", s)
	}
}

// TestShedsWhenTheQueueIsFull: with its one worker busy and its queue full, the listener
// closes a new connection at once, and serves the queued ones once the worker is free.
func TestShedsWhenTheQueueIsFull(t *testing.T) {
	r := newRig(t, tlsadmit.Config{Workers: 1, Queue: 2}, true)
	first := r.dial()
	recv(t, r.started, "the first handshake to start")
	queued := []<-chan error{r.dial(), r.dial()}
	over := r.dial() // accepted after the two, in the order they connected

	if err := recv(t, over, "the connection over the queue"); err == nil {
		t.Fatalf("a connection beyond the queue was served")
	}
	if got := r.shedReasons(); len(got) != 1 || got[0] != tlsadmit.ShedQueueFull {
		t.Errorf("shed %v, want [%s]", got, tlsadmit.ShedQueueFull)
	}
	r.unhold()
	for i, c := range append([]<-chan error{first}, queued...) {
		tc := recv(t, r.serveOne(), "Accept")
		if tc == nil {
			t.Fatalf("Accept %d failed", i)
		}
		defer tc.Close()
		if err := recv(t, c, "a queued client"); err != nil {
			t.Errorf("queued client %d: %v", i, err)
		}
	}
}

// fakeClock is the listener's clock, moved by the test.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// TestShedsWhatWaitedTooLong: a connection that waited for a worker longer than MaxWait is
// closed unfinished, since its client has about given up; the next one is served.
func TestShedsWhatWaitedTooLong(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_000_000, 0)}
	r := newRig(t, tlsadmit.Config{Workers: 1, Queue: 1, MaxWait: time.Second, Now: clock.Now}, true)
	first := r.dial()
	recv(t, r.started, "the first handshake to start")
	stale := r.dial()
	// A probe that finds the queue full proves the stale one is queued, with its time taken.
	if err := recv(t, r.dial(), "the probe"); err == nil {
		t.Fatal("the probe was served")
	} else if got := r.shedReasons(); len(got) != 1 || got[0] != tlsadmit.ShedQueueFull {
		t.Fatalf("the probe ended with %v, shed %v; want it shed for a full queue", err, got)
	}
	clock.advance(2 * time.Second)
	r.unhold()
	tc := recv(t, r.serveOne(), "Accept")
	if tc == nil {
		t.Fatal("Accept failed")
	}
	defer tc.Close()
	if err := recv(t, first, "the first client"); err != nil {
		t.Errorf("first client: %v", err)
	}
	if err := recv(t, stale, "the client that waited"); err == nil {
		t.Errorf("a connection that waited past MaxWait was served")
	}
	if got := r.shedReasons(); len(got) != 2 || got[1] != tlsadmit.ShedWaited {
		t.Errorf("shed %v, want [%s %s]", got, tlsadmit.ShedQueueFull, tlsadmit.ShedWaited)
	}
	fresh := r.dial()
	tc = recv(t, r.serveOne(), "Accept after the shed")
	if tc == nil {
		t.Fatal("Accept failed")
	}
	defer tc.Close()
	if err := recv(t, fresh, "a fresh client"); err != nil {
		t.Errorf("fresh client: %v", err)
	}
}

// TestFailedHandshakeFreesItsWorker: a client that is not speaking TLS costs its worker one
// failed handshake, and the next client is served.
func TestFailedHandshakeFreesItsWorker(t *testing.T) {
	r := newRig(t, tlsadmit.Config{Workers: 1}, false)
	raw, err := net.Dial("tcp", r.l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.Write([]byte("GET / HTTP/1.1\r\nHost: pmd\r\n\r\n"))
	good := r.dial()
	tc := recv(t, r.serveOne(), "Accept")
	if tc == nil {
		t.Fatal("Accept failed")
	}
	defer tc.Close()
	if err := recv(t, good, "the good client"); err != nil {
		t.Errorf("good client: %v", err)
	}
	raw.SetReadDeadline(time.Now().Add(guard))
	if _, err := io.ReadAll(raw); err != nil {
		t.Errorf("the plain-text client's connection was not closed: %v", err)
	}
}

func TestClose(t *testing.T) {
	r := newRig(t, tlsadmit.Config{Workers: 1}, true)
	first := r.dial()
	recv(t, r.started, "the first handshake to start")
	queued := r.dial()
	accepting := make(chan error, 1)
	go func() { _, err := r.l.Accept(); accepting <- err }()

	closed := make(chan error, 1)
	go func() { closed <- r.l.Close() }()
	// Close has begun once the address refuses connections; only then may the held handshake
	// go on, to find its connection closed.
	for deadline := time.Now().Add(guard); ; time.Sleep(5 * time.Millisecond) {
		c, err := net.Dial("tcp", r.l.Addr().String())
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("the address still accepts connections while closing")
		}
	}
	r.unhold()
	if err := recv(t, closed, "Close"); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := recv(t, accepting, "Accept"); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close = %v, want net.ErrClosed", err)
	}
	for _, c := range []<-chan error{first, queued} {
		if err := recv(t, c, "a client"); err == nil {
			t.Errorf("a client was served after Close")
		}
	}
}
