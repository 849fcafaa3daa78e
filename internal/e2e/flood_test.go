package e2e_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/pocketmolt/pocketmolt/internal/agent"
	"github.com/pocketmolt/pocketmolt/internal/pmd"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// callBound is how long one admin or /healthz call may take while a host floods pmd: far
// beyond a normal answer (milliseconds), so only a stalled pmd misses it.
const callBound = 5 * time.Second

// TestStreamFloodFromOneHost is issue 6's item 6: a compromised host, with its own enrolled
// certificate, opens thousands of yamux streams, each a heartbeat announcing a 1 MB body of
// which it sends a little, then drops its connection and reconnects at once to flood again.
// Meanwhile other hosts heartbeat. None of them may go offline, the admin API and the public
// /healthz must keep answering, and pmd must cut the flooder's session and refuse its
// immediate reconnects.
func TestStreamFloodFromOneHost(t *testing.T) {
	const streams = 6000
	p := startPMD(t, func(c *pmd.Config) { c.MetricsAddr = "127.0.0.1:0" })
	hosts := []string{"edge-1", "edge-2", "edge-3"}
	for _, h := range hosts {
		p.enroll(h)
	}
	for _, h := range hosts {
		p.waitStatus(h, wire.HostOnline)
	}
	st, err := agent.Enroll(t.Context(), agent.EnrollOptions{
		Server: p.D.AgentAddr, Token: p.token("flood"), StateDir: filepath.Join(t.TempDir(), "flood"),
	})
	if err != nil {
		t.Fatal(err)
	}

	mon := watchFleet(t, p, hosts)

	// The flood: as many half-sent heartbeats as pmd takes, on one session.
	fl, err := dialFlooder(t.Context(), st)
	if err != nil {
		t.Fatalf("flooder connects: %v", err)
	}
	// It heartbeats as it floods, so that pmd does not see it as quiet.
	if err := fl.heartbeat(); err != nil {
		t.Fatalf("the flooding host's first heartbeat: %v", err)
	}
	stopBeats := fl.keepBeating(beat)
	opened := fl.flood(streams)
	t.Logf("the flooder opened %d of %d streams before its session ended", opened, streams)
	select {
	case <-fl.sess.CloseChan():
	case <-time.After(10 * time.Second):
		t.Errorf("pmd did not cut the flooding host's session: %d streams open, each with a half-sent body", opened)
	}
	if opened >= streams {
		t.Errorf("the flooder opened all %d streams", streams)
	}
	stopBeats()
	fl.drop()

	// At once, again: pmd refuses the host's new sessions for a while.
	for i := range 3 {
		again, err := dialFlooder(t.Context(), st)
		if err != nil {
			continue // refused at the handshake: also a refusal
		}
		if err := again.heartbeat(); err == nil {
			t.Errorf("reconnect %d right after the cut: pmd accepted a heartbeat from the flooding host", i+1)
		}
		again.drop()
	}

	// Long enough after the drop for a stalled pmd to show it (15 heartbeats).
	time.Sleep(15 * beat)
	for _, problem := range mon.stop() {
		t.Error(problem)
	}

	m := scrape(t, p)
	if m[`pocketmolt_tunnel_sessions_cut_total{reason="streams"}`]+m[`pocketmolt_tunnel_sessions_cut_total{reason="stream_rate"}`] < 1 {
		t.Errorf("no cut session counted in /metrics")
	}
	if m[`pocketmolt_tunnel_sessions_refused_total{reason="penalty"}`] < 1 {
		t.Errorf("no refused reconnect counted in /metrics")
	}
	if !contains(p.Logs.String(), `"msg":"session cut","host_id":"`+st.Identity.HostID) {
		t.Errorf("pmd logged no line naming the flooding host's cut session")
	}
}

// flooder is a host's raw tunnel: TLS and yamux with no agent behind them.
type flooder struct {
	conn *tls.Conn
	sess *yamux.Session
}

func dialFlooder(ctx context.Context, st *agent.State) (*flooder, error) {
	tlsCfg, err := st.TunnelTLS()
	if err != nil {
		return nil, err
	}
	d := tls.Dialer{Config: tlsCfg}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", st.Identity.Server)
	if err != nil {
		return nil, err
	}
	cfg := yamux.DefaultConfig()
	cfg.EnableKeepAlive = false
	cfg.StreamOpenTimeout = 0 // a slow acknowledgement is pmd's business, not a reason to stop
	cfg.LogOutput = io.Discard
	s, err := yamux.Client(c, cfg)
	if err != nil {
		c.Close()
		return nil, err
	}
	return &flooder{conn: c.(*tls.Conn), sess: s}, nil
}

// flood opens up to n streams, each a heartbeat whose body is announced as 1 MB and sent in
// part, and leaves them all open. It returns how many it opened before the session ended.
func (f *flooder) flood(n int) int {
	head := "POST /v1/heartbeat HTTP/1.1\r\nHost: pmd\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n" +
		`{"facts":{"hostname":"` + strings.Repeat("a", 1000)
	for i := range n {
		s, err := f.sess.OpenStream()
		if err != nil {
			return i
		}
		if _, err := io.WriteString(s, head); err != nil {
			return i
		}
	}
	return n
}

// keepBeating sends a heartbeat every interval until the returned func is called.
func (f *flooder) keepBeating(interval time.Duration) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			_ = f.heartbeat()
			select {
			case <-done:
				return
			case <-time.After(interval):
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// heartbeat sends one whole heartbeat and reads the answer.
func (f *flooder) heartbeat() error {
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext:       func(context.Context, string, string) (net.Conn, error) { return f.sess.Open() },
		DisableKeepAlives: true,
	}}
	resp, err := hc.Post("http://pmd/v1/heartbeat", "application/json", strings.NewReader(`{"facts":{"hostname":"flood"},"bots":[]}`))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("heartbeat: %s", resp.Status)
	}
	return nil
}

// drop closes the TCP connection without a word, as a host that goes away does.
func (f *flooder) drop() {
	f.conn.NetConn().Close()
	f.sess.Close()
}

// fleetWatch polls the fleet as an operator and a load balancer would, and notes every
// moment a host was not online or a call failed or took longer than callBound.
type fleetWatch struct {
	stopc chan struct{}
	done  chan struct{}
	mu    sync.Mutex
	notes []string
	polls int
}

func watchFleet(t *testing.T, p *testPMD, hosts []string) *fleetWatch {
	w := &fleetWatch{stopc: make(chan struct{}), done: make(chan struct{})}
	admin := p.admin()
	public := &http.Client{Timeout: callBound}
	began := time.Now()
	note := func(format string, args ...any) {
		w.mu.Lock()
		defer w.mu.Unlock()
		if len(w.notes) < 20 {
			w.notes = append(w.notes, fmt.Sprintf("at %s: ", time.Since(began).Round(time.Millisecond))+fmt.Sprintf(format, args...))
		}
	}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-w.stopc:
				return
			case <-tick.C:
			}
			w.mu.Lock()
			w.polls++
			w.mu.Unlock()

			ctx, cancel := context.WithTimeout(t.Context(), callBound)
			start := time.Now()
			hs, err := admin.ListHosts(ctx)
			cancel()
			if took := time.Since(start); err != nil || took > callBound {
				note("admin list hosts: %v after %s", err, took.Round(time.Millisecond))
			} else {
				for _, h := range hs {
					for _, name := range hosts {
						if h.Name == name && h.Status != wire.HostOnline {
							note("%s is %s", name, h.Status)
						}
					}
				}
			}

			start = time.Now()
			resp, err := public.Get("http://" + p.D.PublicAddr + "/healthz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					err = fmt.Errorf("status %s", resp.Status)
				}
			}
			if took := time.Since(start); err != nil || took > callBound {
				note("/healthz: %v after %s", err, took.Round(time.Millisecond))
			}
		}
	}()
	return w
}

// stop ends the watch and returns what it saw go wrong.
func (w *fleetWatch) stop() []string {
	close(w.stopc)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.polls == 0 {
		return []string{"the fleet was never polled"}
	}
	return w.notes
}
