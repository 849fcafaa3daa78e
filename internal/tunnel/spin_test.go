package tunnel_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/tunnel"
)

// stickyConn is a connection whose Close does not return until released, as a TLS close
// waiting on a peer that stopped reading does: yamux is then stuck between announcing its
// shutdown and closing its streams, the window in which v0.1.2's blocked readers spin.
type stickyConn struct {
	net.Conn
	release chan struct{}
	once    sync.Once
	closed  chan struct{} // closed once Close has closed the connection
}

func (c *stickyConn) Close() error {
	<-c.release
	err := c.Conn.Close()
	select {
	case <-c.closed:
	default:
		close(c.closed)
	}
	return err
}

// unstick lets Close through; it may be called more than once.
func (c *stickyConn) unstick() { c.once.Do(func() { close(c.release) }) }

// blockedSession is a pmd session with readers blocked on both kinds of stream: handlers
// reading request bodies the agent never finishes, and pmd's own calls reading responses
// the agent never finishes.
type blockedSession struct {
	agentConn net.Conn
	agent     *tunnel.Session
	pmd       *tunnel.Session
	sticky    *stickyConn
	// returned receives one value per blocked reader once its Read has returned: an error,
	// or nil where the agent's handler saw the end coming and finished its answer.
	returned chan error
}

func newBlockedSession(t testing.TB, handlerReads, callReads int) *blockedSession {
	t.Helper()
	ac, pc := tcpPairTB(t)
	b := &blockedSession{
		agentConn: ac,
		sticky:    &stickyConn{Conn: pc, release: make(chan struct{}), closed: make(chan struct{})},
		returned:  make(chan error, handlerReads+callReads),
	}
	var err error
	if b.agent, err = tunnel.Client(ac, discard); err != nil {
		t.Fatal(err)
	}
	if b.pmd, err = tunnel.Server(b.sticky, discard); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		b.sticky.unstick()
		b.agent.Close()
		b.pmd.Close()
	})

	entered := make(chan struct{}, handlerReads+callReads)
	serve(b.pmd, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		_, err := io.Copy(io.Discard, r.Body)
		b.returned <- err
	}))
	serve(b.agent, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		fmt.Fprint(w, "the start of a long answer")
		http.NewResponseController(w).Flush()
		<-r.Context().Done()
	}))

	// The agent's heartbeats: a 1 MB body announced, 1 KB sent.
	for range handlerReads {
		pr, pw := io.Pipe()
		t.Cleanup(func() { pw.Close() })
		go pw.Write([]byte(strings.Repeat("x", 1024)))
		req, _ := http.NewRequest(http.MethodPost, "http://pmd/v1/heartbeat", pr)
		req.ContentLength = 1_000_000
		go func() {
			if resp, err := b.agent.HTTPClient().Do(req); err == nil {
				resp.Body.Close()
			}
		}()
	}
	// pmd's calls: each reads its answer's body, which never ends.
	for range callReads {
		go func() {
			resp, err := b.pmd.HTTPClient().Get("http://agent/v1/logs?follow=1")
			if err != nil {
				b.returned <- err
				entered <- struct{}{}
				return
			}
			defer resp.Body.Close()
			buf := make([]byte, 26)
			_, err = io.ReadFull(resp.Body, buf)
			entered <- struct{}{}
			if err == nil {
				_, err = io.Copy(io.Discard, resp.Body)
			}
			b.returned <- err
		}()
	}
	for range handlerReads + callReads {
		recv(t, entered, "a reader to block")
	}
	return b
}

// TestEndedSessionFreesBlockedReaders: whoever ends a session, every Read blocked on one of
// its streams returns while yamux is still shutting down — not once it has finished, which
// a connection slow to close can put off indefinitely while those readers spin.
func TestEndedSessionFreesBlockedReaders(t *testing.T) {
	const handlerReads, callReads = 50, 10
	for _, tc := range []struct {
		name string
		end  func(b *blockedSession)
	}{
		{"pmd closes", func(b *blockedSession) { go b.pmd.Close() }},
		{"the agent drops the connection", func(b *blockedSession) { b.agentConn.Close() }},
		{"the agent closes", func(b *blockedSession) { b.agent.Close() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBlockedSession(t, handlerReads, callReads)
			tc.end(b)
			for i := range handlerReads + callReads {
				select {
				case <-b.returned:
				case <-time.After(guard):
					t.Fatalf("%d of %d blocked reads still blocked %v after the session began to end", handlerReads+callReads-i, handlerReads+callReads, guard)
				}
			}
		})
	}
}

// BenchmarkSessionEnd measures the CPU a pmd session's end costs with many readers blocked
// on its streams (half-sent heartbeats) when the agent drops the connection, and the
// connection's own Close takes a moment (0, or 200 ms as a TLS close waiting on a write
// does): yamux v0.1.2 alone spins every blocked reader on a CPU until its Close reaches the
// streams.
//
//	go test -run '^$' -bench SessionEnd -benchtime 3x ./internal/tunnel/
func BenchmarkSessionEnd(b *testing.B) {
	for _, delay := range []time.Duration{0, 200 * time.Millisecond} {
		for _, n := range []int{1000, 4000} {
			b.Run(fmt.Sprintf("close=%s/readers=%d", delay, n), func(b *testing.B) {
				var cpu, wall time.Duration
				for range b.N {
					bs := newBlockedSession(b, n, 0)
					cpu0, wall0 := cpuTime(), time.Now()
					time.AfterFunc(delay, bs.sticky.unstick)
					bs.agentConn.Close()
					for range n {
						<-bs.returned
					}
					<-bs.sticky.closed
					cpu += cpuTime() - cpu0
					wall += time.Since(wall0)
				}
				b.ReportMetric(0, "ns/op")
				b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "cpu-ms/end")
				b.ReportMetric(float64(wall.Milliseconds())/float64(b.N), "wall-ms/end")
			})
		}
	}
}

// cpuTime is the user and system CPU this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
