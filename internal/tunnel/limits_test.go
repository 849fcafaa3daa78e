package tunnel_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/pocketmolt/pocketmolt/internal/tunnel"
)

// rawAgent is an agent's end speaking yamux directly, so a test can write any bytes on a
// stream: what a compromised host does.
func rawAgent(t *testing.T, conn net.Conn) *yamux.Session {
	t.Helper()
	cfg := yamux.DefaultConfig()
	cfg.EnableKeepAlive = false
	cfg.LogOutput = io.Discard
	s, err := yamux.Client(conn, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// limitedPMD starts pmd's end over conn, serving h within lim, and hands back ServeLimited's
// result.
func limitedPMD(t *testing.T, conn net.Conn, h http.Handler, lim tunnel.Limits) (*tunnel.Session, <-chan error) {
	t.Helper()
	s, err := tunnel.Server(conn, discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	served := make(chan error, 1)
	go func() { served <- s.ServeLimited(h, lim, discard) }()
	return s, served
}

// fakeClock is the rate limit's clock, moved by the test.
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

// holder is a handler that holds every request until released.
type holder struct {
	entered chan struct{}
	release chan struct{}
}

func newHolder() *holder {
	return &holder{entered: make(chan struct{}, 100), release: make(chan struct{})}
}

func (h *holder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.entered <- struct{}{}
	select {
	case <-h.release:
	case <-r.Context().Done():
	}
	w.WriteHeader(http.StatusNoContent)
}

// wantCut checks that ServeLimited ended with the limit reason, and that both ends of the
// session are over.
func wantCut(t *testing.T, served <-chan error, pmd *tunnel.Session, agent interface{ CloseChan() <-chan struct{} }, reason string, sentinel error) {
	t.Helper()
	err := recv(t, served, "ServeLimited")
	var le *tunnel.LimitError
	if !errors.As(err, &le) || le.Reason != reason || !errors.Is(err, sentinel) {
		t.Fatalf("ServeLimited = %v, want a *LimitError for %q wrapping %v", err, reason, sentinel)
	}
	recv(t, pmd.Done(), "pmd's end of the cut session")
	recv(t, agent.CloseChan(), "the agent's end of the cut session")
}

func TestStreamCap(t *testing.T) {
	const max = 4
	ac, pc := tcpPair(t)
	agent := rawAgent(t, ac)
	h := newHolder()
	pmd, served := limitedPMD(t, pc, h, tunnel.Limits{MaxStreams: max, StreamRate: 1000, StreamBurst: 1000})

	// One round: max requests held at once are served, and let go.
	hold := func() *sync.WaitGroup {
		var wg sync.WaitGroup
		for i := range max {
			s, err := agent.OpenStream()
			if err != nil {
				t.Fatalf("stream %d: %v", i, err)
			}
			fmt.Fprint(s, "GET /hold HTTP/1.1\r\nHost: pmd\r\nConnection: close\r\n\r\n")
			wg.Go(func() {
				// Answered, or failed when the session is cut: either way it ends.
				defer s.Close()
				if resp, err := http.ReadResponse(bufio.NewReader(s), nil); err == nil {
					resp.Body.Close()
				}
			})
			recv(t, h.entered, fmt.Sprintf("held request %d", i))
		}
		return &wg
	}

	wg := hold()
	h.release <- struct{}{} // one finishes…
	deadline := time.Now().Add(guard)
	for pmd.NumStreams() > max-1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	// …and its place is free again: the cap counts streams open now, not ever opened.
	s, err := agent.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(s, "GET /hold HTTP/1.1\r\nHost: pmd\r\nConnection: close\r\n\r\n")
	recv(t, h.entered, "the request that took the freed place")

	// One more than the cap: the session is cut. The cut can come before yamux has told
	// OpenStream its SYN went out, so OpenStream may fail with the session shut down.
	if over, err := agent.OpenStream(); err == nil {
		fmt.Fprint(over, "GET /hold HTTP/1.1\r\nHost: pmd\r\n\r\n")
	}
	wantCut(t, served, pmd, agent, "streams", tunnel.ErrTooManyStreams)
	select {
	case <-h.entered:
		t.Errorf("the request over the cap reached the handler")
	default:
	}
	close(h.release)
	wg.Wait()
}

func TestStreamRate(t *testing.T) {
	tests := []struct {
		name     string
		burst    int
		rate     float64
		gap      time.Duration // between requests, on the limiter's clock
		requests int
		wantCut  bool
	}{
		{name: "a burst within the bucket", burst: 5, rate: 10, requests: 5},
		{name: "one past the burst", burst: 5, rate: 10, requests: 6, wantCut: true},
		{name: "at the sustained rate", burst: 2, rate: 10, gap: 100 * time.Millisecond, requests: 30},
		{name: "above the sustained rate", burst: 2, rate: 10, gap: 50 * time.Millisecond, requests: 30, wantCut: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ac, pc := tcpPair(t)
			agent := rawAgent(t, ac)
			clock := &fakeClock{now: time.Unix(1_000_000, 0)}
			pmd, served := limitedPMD(t, pc, echo("pmd"), tunnel.Limits{
				MaxStreams: 100, StreamRate: tt.rate, StreamBurst: tt.burst, Now: clock.Now,
			})
			answered := 0
			for range tt.requests {
				s, err := agent.OpenStream()
				if err != nil {
					break
				}
				fmt.Fprint(s, "GET /r HTTP/1.1\r\nHost: pmd\r\nConnection: close\r\n\r\n")
				resp, err := http.ReadResponse(bufio.NewReader(s), nil)
				s.Close()
				if err != nil {
					break
				}
				resp.Body.Close()
				answered++
				clock.advance(tt.gap)
			}
			if !tt.wantCut {
				if answered != tt.requests {
					t.Fatalf("%d of %d requests answered within the rate", answered, tt.requests)
				}
				select {
				case err := <-served:
					t.Fatalf("ServeLimited ended within the rate: %v", err)
				default:
				}
				return
			}
			if answered == tt.requests {
				t.Fatalf("all %d requests answered above the rate", answered)
			}
			wantCut(t, served, pmd, agent, "stream_rate", tunnel.ErrStreamRate)
		})
	}
}

// TestDeadlines: every way of holding a request open past its deadline ends that request,
// and only that request: the session and its other streams go on.
func TestDeadlines(t *testing.T) {
	const d = 200 * time.Millisecond
	big := strings.Repeat("x", 2<<20) // more than a stream's window: a writer blocks on the reader
	writeErr := make(chan error, 1)
	mux := http.NewServeMux()
	mux.Handle("/", echo("pmd"))
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		_, err := io.WriteString(w, big)
		writeErr <- err
	})
	tests := []struct {
		name string
		// send writes on the stream; then the stream is left as it is
		send string
		// readAll is whether the agent reads the stream to its end
		readAll  bool
		wantErrW bool // the handler's write must fail
	}{
		{name: "header never finished", send: "POST / HTTP/1.1\r\nHost: pmd\r\nContent-Le", readAll: true},
		{name: "body never finished", send: "POST / HTTP/1.1\r\nHost: pmd\r\nContent-Length: 1000000\r\n\r\n{\"facts\":", readAll: true},
		{name: "idle after a request", send: "GET / HTTP/1.1\r\nHost: pmd\r\n\r\n", readAll: true},
		{name: "response never read", send: "GET /big HTTP/1.1\r\nHost: pmd\r\n\r\n", wantErrW: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ac, pc := tcpPair(t)
			agent := rawAgent(t, ac)
			_, served := limitedPMD(t, pc, mux, tunnel.Limits{
				ReadHeaderTimeout: d, ReadTimeout: d, WriteTimeout: d, IdleTimeout: d,
			})
			s, err := agent.OpenStream()
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if _, err := io.WriteString(s, tt.send); err != nil {
				t.Fatal(err)
			}
			if tt.readAll {
				// pmd ends the stream: the read reaches its end (after any answer).
				read := make(chan error, 1)
				go func() { _, err := io.Copy(io.Discard, s); read <- err }()
				if err := recv(t, read, "pmd to end the stream"); err != nil {
					t.Errorf("reading the stream: %v", err)
				}
			}
			if tt.wantErrW {
				if err := recv(t, writeErr, "the handler's write"); err == nil {
					t.Errorf("a response nobody read was written in full")
				}
			}
			// The session is intact: a normal request on a new stream is answered.
			s2, err := agent.OpenStream()
			if err != nil {
				t.Fatalf("after the deadline: %v", err)
			}
			defer s2.Close()
			fmt.Fprint(s2, "GET /after HTTP/1.1\r\nHost: pmd\r\nConnection: close\r\n\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(s2), nil)
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("a request after the deadline: %v %v", resp, err)
			}
			resp.Body.Close()
			select {
			case err := <-served:
				t.Fatalf("ServeLimited ended: %v", err)
			default:
			}
		})
	}
}

// TestCloseReturnsAtOnce: Close never waits for yamux or the connection, so a caller holding
// a lock or answering an operator can close any session, even one whose connection will not
// close.
func TestCloseReturnsAtOnce(t *testing.T) {
	b := newBlockedSession(t, 20, 5)
	closed := make(chan struct{})
	go func() { b.pmd.Close(); close(closed) }()
	recv(t, closed, "Close")
	recv(t, b.pmd.Done(), "Done")
	for range 25 {
		recv(t, b.returned, "a blocked read")
	}
}
