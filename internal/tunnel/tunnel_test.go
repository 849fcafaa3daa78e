package tunnel_test

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/apiclient/apitest"
	"github.com/pocketmolt/pocketmolt/internal/tunnel"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// guard turns a hang into a failure. It is below tunnel.KeepAlive, so a test that passes saw
// the session end itself rather than time out.
const guard = 10 * time.Second

var discard = slog.New(slog.DiscardHandler)

// transport makes a connected pair of connections: the agent's (dialling) end and pmd's.
type transport struct {
	name string
	pair func(t *testing.T) (agent, pmd net.Conn)
}

var transports = []transport{
	{"pipe", pipePair},
	{"tcp", tcpPair},
	{"tls", tlsPair},
}

func pipePair(t *testing.T) (net.Conn, net.Conn) {
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

func tcpPair(t *testing.T) (net.Conn, net.Conn) { return tcpPairTB(t) }

func tcpPairTB(t testing.TB) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b, ok := <-accepted
	if !ok {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// tlsHandshake runs TLS 1.3 over raw, as pmd's agent listener does, and returns both ends.
func tlsHandshake(t *testing.T, agentRaw, pmdRaw net.Conn) (*tls.Conn, *tls.Conn) {
	t.Helper()
	cert, pool := apitest.ServerTLS(t)
	server := tls.Server(pmdRaw, &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS13,
		NextProtos:   []string{wire.ProtoTunnel},
	})
	client := tls.Client(agentRaw, &tls.Config{
		RootCAs:    pool,
		ServerName: "localhost",
		MinVersion: tls.VersionTLS13,
		NextProtos: []string{wire.ProtoTunnel},
	})
	ctx, cancel := context.WithTimeout(t.Context(), guard)
	defer cancel()
	errs := make(chan error, 1)
	go func() { errs <- server.HandshakeContext(ctx) }()
	if err := client.HandshakeContext(ctx); err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	if err := <-errs; err != nil {
		t.Fatalf("server handshake: %v", err)
	}
	if p := client.ConnectionState().NegotiatedProtocol; p != wire.ProtoTunnel {
		t.Fatalf("negotiated %q, want %q", p, wire.ProtoTunnel)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

func tlsPair(t *testing.T) (net.Conn, net.Conn) {
	a, b := tcpPair(t)
	return tlsHandshake(t, a, b)
}

// sessions starts both ends of a tunnel over tr; both are closed when the test ends.
func sessions(t *testing.T, tr transport) (agent, pmd *tunnel.Session) {
	t.Helper()
	ac, pc := tr.pair(t)
	agent, err := tunnel.Client(ac, discard)
	if err != nil {
		t.Fatal(err)
	}
	pmd, err = tunnel.Server(pc, discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { agent.Close(); pmd.Close() })
	return agent, pmd
}

// serve runs s.Serve(h) and hands back its result.
func serve(s *tunnel.Session, h http.Handler) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- s.Serve(h, discard) }()
	return ch
}

// recv waits for ch; guard turns a hang into a failure.
func recv[T any](t testing.TB, ch <-chan T, what string) T {
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

// echo answers with its side's name, the request's method and path, and its body.
func echo(side string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("X-Side", side)
		fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.Path, body)
	})
}

// call sends one request over s and returns the response's status, body and header.
func call(s *tunnel.Session, method, target, body string) (int, string, http.Header, error) {
	req, err := http.NewRequest(method, target, strings.NewReader(body))
	if err != nil {
		return 0, "", nil, err
	}
	resp, err := s.HTTPClient().Do(req)
	if err != nil {
		return 0, "", nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header, err
}

func TestHTTPBothWays(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			agent, pmd := sessions(t, tr)
			serve(agent, echo("agent"))
			serve(pmd, echo("pmd"))

			tests := []struct {
				from     *tunnel.Session
				wantSide string
				method   string
				url      string
				body     string
			}{
				{agent, "pmd", http.MethodPost, "http://peer/v1/heartbeat", `{"observed":true}`},
				{pmd, "agent", http.MethodPut, "http://peer/v1/bots", `{"bots":[]}`},
				// The URL's host does not matter: there is only one peer.
				{agent, "pmd", http.MethodGet, "http://pmd.example.com:8443/v1/info", ""},
				{pmd, "agent", http.MethodGet, "http://10.0.0.1/v1/info", ""},
			}
			for _, tt := range tests {
				status, body, h, err := call(tt.from, tt.method, tt.url, tt.body)
				if err != nil {
					t.Fatalf("%s %s to %s: %v", tt.method, tt.url, tt.wantSide, err)
				}
				u, _ := url.Parse(tt.url)
				want := fmt.Sprintf("%s %s %s", tt.method, u.Path, tt.body)
				if status != http.StatusOK || body != want || h.Get("X-Side") != tt.wantSide {
					t.Errorf("%s %s = %d %q from %q, want 200 %q from %q",
						tt.method, tt.url, status, body, h.Get("X-Side"), want, tt.wantSide)
				}
			}
			for _, s := range []*tunnel.Session{agent, pmd} {
				if _, err := s.Ping(); err != nil {
					t.Errorf("Ping on an open session: %v", err)
				}
			}
		})
	}
}

func TestConcurrentRequests(t *testing.T) {
	const n = 100 // per direction, more than yamux's accept backlog
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			agent, pmd := sessions(t, tr)
			serve(agent, echo("agent"))
			serve(pmd, echo("pmd"))

			var wg sync.WaitGroup
			for i := range n {
				for _, d := range []struct {
					from *tunnel.Session
					to   string
				}{{agent, "pmd"}, {pmd, "agent"}} {
					wg.Go(func() {
						// Every tenth body is larger than a yamux stream's window, so flow control
						// is exercised too.
						size := 1 << 10
						if i%10 == 0 {
							size = 300 << 10
						}
						payload := fmt.Sprintf("%s-%d-", d.to, i) + strings.Repeat("x", size)
						status, body, h, err := call(d.from, http.MethodPost, fmt.Sprintf("http://peer/r/%d", i), payload)
						if err != nil {
							t.Errorf("request %d to %s: %v", i, d.to, err)
							return
						}
						want := fmt.Sprintf("POST /r/%d %s", i, payload)
						if status != http.StatusOK || body != want || h.Get("X-Side") != d.to {
							t.Errorf("request %d to %s: got %d from %q with a %d-byte body, want 200 from %q echoing %d bytes",
								i, d.to, status, h.Get("X-Side"), len(body), d.to, len(want))
						}
					})
				}
			}
			wg.Wait()

			// One request, one stream: none outlives its request.
			deadline := time.Now().Add(guard)
			for agent.NumStreams()+pmd.NumStreams() > 0 {
				if time.Now().After(deadline) {
					t.Fatalf("streams left open after every request finished: agent %d, pmd %d", agent.NumStreams(), pmd.NumStreams())
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}

// blocker is a handler that holds each request until the request's context ends.
type blocker struct {
	entered   chan struct{}
	cancelled chan error
}

func newBlocker() *blocker {
	return &blocker{entered: make(chan struct{}, 1), cancelled: make(chan error, 1)}
}

func (b *blocker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.entered <- struct{}{}
	<-r.Context().Done()
	b.cancelled <- r.Context().Err()
}

func TestCloseEndsBothSides(t *testing.T) {
	for _, tr := range transports {
		for _, closer := range []string{"agent", "pmd"} {
			t.Run(tr.name+"/"+closer+" closes", func(t *testing.T) {
				agent, pmd := sessions(t, tr)
				agentH, pmdH := newBlocker(), newBlocker()
				agentServed, pmdServed := serve(agent, agentH), serve(pmd, pmdH)

				// One request in flight each way.
				agentCall, pmdCall := make(chan error, 1), make(chan error, 1)
				go func() { _, _, _, err := call(agent, http.MethodGet, "http://peer/hold", ""); agentCall <- err }()
				go func() { _, _, _, err := call(pmd, http.MethodGet, "http://peer/hold", ""); pmdCall <- err }()
				recv(t, agentH.entered, "pmd's request reaching the agent")
				recv(t, pmdH.entered, "the agent's request reaching pmd")
				if a, p := agent.NumStreams(), pmd.NumStreams(); a != 2 || p != 2 {
					t.Errorf("NumStreams with one request each way = agent %d, pmd %d; want 2 and 2", a, p)
				}

				closing, other := agent, pmd
				if closer == "pmd" {
					closing, other = pmd, agent
				}
				if err := closing.Close(); err != nil {
					t.Fatalf("Close: %v", err)
				}

				for _, s := range []struct {
					name   string
					sess   *tunnel.Session
					served <-chan error
					call   <-chan error
					h      *blocker
				}{
					{"agent", agent, agentServed, agentCall, agentH},
					{"pmd", pmd, pmdServed, pmdCall, pmdH},
				} {
					recv(t, s.sess.Done(), s.name+"'s Done")
					if err := recv(t, s.served, s.name+"'s Serve"); err != nil {
						t.Errorf("%s's Serve = %v, want nil after a close", s.name, err)
					}
					if err := recv(t, s.call, s.name+"'s in-flight request"); err == nil {
						t.Errorf("%s's in-flight request succeeded after the session closed", s.name)
					}
					if err := recv(t, s.h.cancelled, s.name+"'s handler"); err == nil {
						t.Errorf("%s's handler's context was not cancelled", s.name)
					}
					if _, _, _, err := call(s.sess, http.MethodGet, "http://peer/after", ""); err == nil {
						t.Errorf("%s: a new request succeeded after the session closed", s.name)
					}
					if _, err := s.sess.Ping(); err == nil {
						t.Errorf("%s: Ping succeeded after the session closed", s.name)
					}
				}
				if err := other.Close(); err != nil {
					t.Errorf("Close on a session the peer already closed: %v", err)
				}
				if err := closing.Close(); err != nil {
					t.Errorf("second Close: %v", err)
				}
			})
		}
	}
}

// TestCloseClosesTheConnection: the peer sees the end of the connection, not just of yamux.
func TestCloseClosesTheConnection(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			ac, pc := tr.pair(t)
			agent, err := tunnel.Client(ac, discard)
			if err != nil {
				t.Fatal(err)
			}
			read := make(chan error, 1)
			go func() { _, err := io.Copy(io.Discard, pc); read <- err }()
			if err := agent.Close(); err != nil {
				t.Fatal(err)
			}
			// io.Copy returns nil at EOF; a reset or a TLS error also means the end.
			recv(t, read, "the peer's read")
		})
	}
}

// yamuxFrame is a yamux header: version 0, then type, flags, stream id and length.
func yamuxFrame(typ byte, flags uint16, stream, length uint32) []byte {
	h := []byte{0, typ}
	h = binary.BigEndian.AppendUint16(h, flags)
	h = binary.BigEndian.AppendUint32(h, stream)
	return binary.BigEndian.AppendUint32(h, length)
}

func TestGarbageEndsSession(t *testing.T) {
	const (
		typeData, typeWindowUpdate = 0, 1
		flagSYN                    = 1
	)
	garbage := []struct {
		name  string
		bytes []byte
		// reported is whether Serve must say the peer broke the protocol. When the bad frame
		// opens a stream, yamux may hand that stream to Serve before the session ends, and
		// Serve then sees only the shutdown.
		reported bool
	}{
		// An HTTP client that found the tunnel port, e.g. after ALPN went wrong.
		{"http request", []byte("GET /v1/info HTTP/1.1\r\nHost: pmd\r\n\r\n"), true},
		{"all ones", []byte(strings.Repeat("\xff", 64)), true},
		{"unknown frame type", yamuxFrame(0x7f, 0, 1, 0), true},
		{"data beyond the window", append(yamuxFrame(typeData, flagSYN, 1, 64<<20), make([]byte, 1024)...), false},
		{"stream opened twice", append(yamuxFrame(typeWindowUpdate, flagSYN, 1, 0), yamuxFrame(typeWindowUpdate, flagSYN, 1, 0)...), false},
	}
	for _, tr := range transports {
		for _, side := range []string{"agent", "pmd"} {
			for _, g := range garbage {
				t.Run(tr.name+"/"+side+"/"+g.name, func(t *testing.T) {
					ac, pc := tr.pair(t)
					victimConn, peer := ac, pc
					start := tunnel.Client
					if side == "pmd" {
						victimConn, peer, start = pc, ac, tunnel.Server
					}
					s, err := start(victimConn, discard)
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { s.Close() })
					served := serve(s, echo(side))

					// The peer keeps the connection open: the garbage alone must end the session.
					go io.Copy(io.Discard, peer)
					go peer.Write(g.bytes)

					recv(t, s.Done(), "Done")
					if err := recv(t, served, "Serve"); err == nil && g.reported {
						t.Errorf("Serve = nil after the peer sent %q, want a protocol error", g.bytes)
					}
					if _, _, _, err := call(s, http.MethodGet, "http://peer/v1/info", ""); err == nil {
						t.Errorf("a request succeeded on a session the peer broke")
					}
					if _, err := s.Ping(); err == nil {
						t.Errorf("Ping succeeded on a session the peer broke")
					}
				})
			}
		}
	}
}

func TestSessionIDs(t *testing.T) {
	hexID := regexp.MustCompile(`^[0-9a-f]{16}$`)
	seen := map[string]bool{}
	for range 10 {
		agent, pmd := sessions(t, transports[0])
		for _, id := range []string{agent.ID, pmd.ID} {
			if !hexID.MatchString(id) {
				t.Errorf("session ID %q, want 16 hex digits", id)
			}
			if seen[id] {
				t.Errorf("session ID %s given twice", id)
			}
			seen[id] = true
		}
	}
}

// recordingConn notes what happens to the TCP connection under a TLS one once armed.
type recordingConn struct {
	net.Conn
	mu     sync.Mutex
	armed  bool
	events []string
}

func (c *recordingConn) note(e string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.armed {
		c.events = append(c.events, e)
	}
}

func (c *recordingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if n > 0 {
		c.note(fmt.Sprintf("wrote %d bytes", n))
	}
	return n, err
}

func (c *recordingConn) Close() error {
	c.note("close")
	return c.Conn.Close()
}

// TestCloseOverTLSWritesNothing: closing a session over TLS closes the TCP connection first,
// so Close never waits to send a close_notify to a peer that may have stopped reading.
func TestCloseOverTLSWritesNothing(t *testing.T) {
	a, b := tcpPair(t)
	rec := &recordingConn{Conn: a}
	client, _ := tlsHandshake(t, rec, b) // pmd's end completes the handshake and then never reads

	s, err := tunnel.Client(client, discard)
	if err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	rec.armed = true
	rec.mu.Unlock()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	recv(t, s.Done(), "Done")

	rec.mu.Lock()
	defer rec.mu.Unlock()
	wroteNothing := len(rec.events) > 0
	for _, e := range rec.events {
		wroteNothing = wroteNothing && e == "close"
	}
	if !wroteNothing {
		t.Errorf("during Close the TCP connection saw %v, want it closed with nothing written", rec.events)
	}
}
