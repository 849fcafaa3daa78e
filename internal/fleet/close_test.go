package fleet

import (
	"fmt"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/tunnel"
)

const guard = 10 * time.Second

// stuckConn is a connection whose Close does not return until the test ends, as a TLS close
// waiting on a peer that stopped reading does.
type stuckConn struct {
	net.Conn
	release <-chan struct{}
}

func (c stuckConn) Close() error {
	<-c.release
	return c.Conn.Close()
}

// clock is the fleet's clock, moved by the test.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// stuckSession is pmd's end of a session whose connection will not close during the test.
func stuckSession(t *testing.T, hostID string, since time.Time) *conn {
	t.Helper()
	a, b := net.Pipe()
	release := make(chan struct{})
	t.Cleanup(func() { close(release); a.Close() })
	s, err := tunnel.Server(stuckConn{Conn: b, release: release}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return &conn{hostID: hostID, sess: s, since: since, notAfter: since.Add(24 * time.Hour)}
}

// within fails the test if f does not return within guard.
func within(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { f(); close(done) }()
	select {
	case <-done:
	case <-time.After(guard):
		t.Fatalf("%s did not return within %v: it waits for a session's connection to close", what, guard)
	}
}

// TestClosingSessionsBlocksNoOne: the sweep, a replacing session and a revocation end
// sessions whose connections will not close, and none of them waits for that.
func TestClosingSessionsBlocksNoOne(t *testing.T) {
	clk := &clock{now: time.Unix(1_000_000, 0)}
	f := New(nil, nil, Config{HeartbeatInterval: time.Second, Now: clk.Now}, slog.New(slog.DiscardHandler))

	old := stuckSession(t, "h-1", clk.Now())
	within(t, "register", func() { f.register(old) })
	replacing := stuckSession(t, "h-1", clk.Now())
	within(t, "register of a replacing session", func() { f.register(replacing) })
	<-old.sess.Done()

	var quiet []*conn
	for i := range 50 {
		c := stuckSession(t, fmt.Sprintf("h-q%d", i), clk.Now())
		within(t, "register", func() { f.register(c) })
		quiet = append(quiet, c)
	}
	revoked := stuckSession(t, "h-r", clk.Now())
	within(t, "register", func() { f.register(revoked) })
	within(t, "a revocation", func() { f.closeWhere(func(c *conn) bool { return c.hostID == "h-r" }) })
	<-revoked.sess.Done()

	clk.advance(10 * time.Second) // every session is past missedBeats heartbeats
	within(t, "the sweep", f.sweep)
	for _, c := range append(quiet, replacing) {
		select {
		case <-c.sess.Done():
		case <-time.After(guard):
			t.Fatalf("the sweep left host %s's stale session open", c.hostID)
		}
	}
}

func TestPenalty(t *testing.T) {
	start := time.Unix(1_000_000, 0)
	type step struct {
		at       time.Duration // since start
		cut      bool          // a cut at this time; else a check
		want     time.Duration // the penalty given, or the time left
		refusing bool          // for a check: whether the host is refused
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"a first cut", []step{
			{at: 0, cut: true, want: penaltyBase},
			{at: time.Second, want: penaltyBase - time.Second, refusing: true},
			{at: penaltyBase, refusing: false},
		}},
		{"repeated cuts double up to the cap", []step{
			{at: 0, cut: true, want: 10 * time.Second},
			{at: 10 * time.Second, cut: true, want: 20 * time.Second},
			{at: 30 * time.Second, cut: true, want: 40 * time.Second},
			{at: 70 * time.Second, cut: true, want: 80 * time.Second},
			{at: 150 * time.Second, cut: true, want: 160 * time.Second},
			{at: 310 * time.Second, cut: true, want: 320 * time.Second},
			{at: 630 * time.Second, cut: true, want: penaltyMax},
			{at: 1230 * time.Second, cut: true, want: penaltyMax},
			{at: 1231 * time.Second, want: penaltyMax - time.Second, refusing: true},
		}},
		{"forgotten after an hour without a cut", []step{
			{at: 0, cut: true, want: 10 * time.Second},
			{at: 10 * time.Second, cut: true, want: 20 * time.Second},
			{at: 30*time.Second + penaltyForget + time.Second, cut: true, want: penaltyBase},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := New(nil, nil, Config{}, slog.New(slog.DiscardHandler))
			for i, s := range tt.steps {
				now := start.Add(s.at)
				if s.cut {
					if got := f.penalise("h-1", now); got != s.want {
						t.Errorf("step %d: penalty %v, want %v", i, got, s.want)
					}
					continue
				}
				left, refusing := f.penalised("h-1", now)
				if refusing != s.refusing || left != s.want {
					t.Errorf("step %d: refused %v for %v, want %v for %v", i, refusing, left, s.refusing, s.want)
				}
				if _, other := f.penalised("h-2", now); other {
					t.Errorf("step %d: another host is refused", i)
				}
			}
		})
	}
}
