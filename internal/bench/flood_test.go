package bench

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/pocketmolt/pocketmolt/internal/agent"
	"github.com/pocketmolt/pocketmolt/internal/hostfacts"
	"github.com/pocketmolt/pocketmolt/internal/tunnel"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// The child floods when these are set (see floodOnSignal).
const (
	envFlood        = "PMBENCH_FLOOD"         // the flooding host's state dir
	envFloodFor     = "PMBENCH_FLOOD_FOR"     // how long the flood lasts once signalled
	envFloodStreams = "PMBENCH_FLOOD_STREAMS" // streams per session, at most
	floodPfx        = "pmbench-flood: "
)

// floodScenario is BenchmarkFlood's setting.
type floodScenario struct {
	// Agents run in the child, heartbeating every Heartbeat, as the fleet pmd serves.
	Agents    int
	Heartbeat time.Duration
	// Probes are hosts in this process that heartbeat every ProbeEvery and time each one.
	Probes     int
	ProbeEvery time.Duration
	// Quiet is the window before the flood; Flood is the flood's.
	Quiet, Flood time.Duration
	// Streams is how many half-sent heartbeats the flooder opens on one session at most.
	Streams       int
	OnlineTimeout time.Duration
}

// floodResult is what BenchmarkFlood measured.
type floodResult struct {
	sc floodScenario
	// Quiet and Flood are the probes' heartbeat round trips in each window, sorted.
	Quiet, Flood []time.Duration
	ProbeErrors  int
	FirstError   string
	// Tally is the flooder's own count; Metrics are pmd's counters after the flood.
	Tally   floodTally
	Metrics map[string]float64
	// Stable is whether every probe kept its session and every agent was connected at the
	// end.
	Stable bool
}

// floodTally is what the flooder did, as it saw it.
type floodTally struct {
	Dials      int `json:"dials"`      // connections attempted
	Handshakes int `json:"handshakes"` // TLS handshakes completed
	Streams    int `json:"streams"`    // half-sent heartbeats written (locally: yamux buffers)
	Seconds    float64
}

// BenchmarkFlood is issue 6's item 6 measured: 1,000 agents online, 8 probe hosts in the
// benchmark's process heartbeating every 200 ms; after a quiet window one more host, from the
// agents' process, opens as many streams as pmd takes, each a heartbeat announcing 1 MB and
// sending 1 KB, drops the connection when cut and reconnects at once, for 20 s. It reports the
// probes' heartbeat round trips before and during the flood, the flooder's tally and what pmd
// counted (sessions cut, reconnects refused, handshakes shed).
//
//	go test -run '^$' -bench BenchmarkFlood -benchtime 1x -timeout 30m ./internal/bench/
func BenchmarkFlood(b *testing.B) {
	fx := newFixture(b)
	res := runFlood(b, fx, floodScenario{
		Agents: 1000, Heartbeat: 10 * time.Second,
		Probes: 8, ProbeEvery: 200 * time.Millisecond,
		Quiet: 10 * time.Second, Flood: 20 * time.Second,
		Streams: 6000, OnlineTimeout: 2 * time.Minute,
	})
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(ms(percentile(res.Quiet, 0.50)), "quiet-p50-ms")
	b.ReportMetric(ms(percentile(res.Quiet, 0.99)), "quiet-p99-ms")
	b.ReportMetric(ms(percentile(res.Flood, 0.50)), "flood-p50-ms")
	b.ReportMetric(ms(percentile(res.Flood, 0.99)), "flood-p99-ms")
	b.ReportMetric(ms(percentile(res.Flood, 1)), "flood-max-ms")
	b.ReportMetric(float64(res.ProbeErrors), "probe-errors")
	if res.ProbeErrors > 0 || !res.Stable {
		b.Errorf("%d probe heartbeats failed (first: %s); stable: %v", res.ProbeErrors, res.FirstError, res.Stable)
	}
	writeFloodTable(os.Stdout, res)
}

// TestFlood runs BenchmarkFlood's machinery small, so every go test run exercises it.
func TestFlood(t *testing.T) {
	fx := newFixture(t)
	res := runFlood(t, fx, floodScenario{
		Agents: 5, Heartbeat: 200 * time.Millisecond,
		Probes: 2, ProbeEvery: 100 * time.Millisecond,
		Quiet: time.Second, Flood: 2 * time.Second,
		Streams: 500, OnlineTimeout: 30 * time.Second,
	})
	if len(res.Quiet) == 0 || len(res.Flood) == 0 {
		t.Errorf("probes not timed: %d quiet, %d during the flood", len(res.Quiet), len(res.Flood))
	}
	if res.ProbeErrors > 0 || !res.Stable {
		t.Errorf("%d probe heartbeats failed (first: %s); stable: %v", res.ProbeErrors, res.FirstError, res.Stable)
	}
	if res.Tally.Handshakes == 0 || res.Metrics[`pocketmolt_tunnel_sessions_cut_total{reason="streams"}`] == 0 {
		t.Errorf("no flood cut: tally %+v, metrics %v", res.Tally, res.Metrics)
	}
	writeFloodTable(t.Output(), res)
}

func runFlood(tb testing.TB, fx *fixture, sc floodScenario) (res floodResult) {
	tb.Helper()
	ctx := tb.Context()
	res.sc = sc
	fx.ensureEnrolled(tb, sc.Agents+sc.Probes+1)
	pm := startPMD(tb, fx.config(sc.Heartbeat))
	defer pm.stop(tb)
	manifest, err := fx.manifest(sc.Agents)
	if err != nil {
		tb.Fatal(err)
	}
	probeHosts := fx.hosts[sc.Agents : sc.Agents+sc.Probes]
	flooder := fx.hosts[sc.Agents+sc.Probes]

	ch, err := startChild(manifest, pm.d.AgentAddr, "", envFlood+"="+flooder.Dir,
		envFloodFor+"="+sc.Flood.String(), envFloodStreams+"="+strconv.Itoa(sc.Streams))
	if err != nil {
		tb.Fatalf("start agents: %v", err)
	}
	defer ch.stop()
	select {
	case <-ch.ready:
	case <-ch.exited:
		tb.Fatalf("agents' process exited before starting: %s", ch.stderr.String())
	case <-time.After(time.Minute):
		tb.Fatalf("agents' process did not start: %s", ch.stderr.String())
	}
	if err := waitOnline(ctx, pm.d, ch, sc.Agents, time.Now(), sc.OnlineTimeout); err != nil {
		tb.Fatal(err)
	}

	var probes []*probe
	for _, h := range probeHosts {
		p, err := startProbe(ctx, h.Dir, pm.d.AgentAddr)
		if err != nil {
			tb.Fatalf("probe %s: %v", h.ID, err)
		}
		defer p.sess.Close()
		probes = append(probes, p)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, p := range probes {
		wg.Go(func() { p.run(stop, sc.ProbeEvery) })
	}
	quietFrom := time.Now()
	time.Sleep(sc.Quiet)
	floodFrom := time.Now()
	if err := ch.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		tb.Fatal(err)
	}
	time.Sleep(sc.Flood)
	floodTo := time.Now()
	close(stop)
	wg.Wait()

	select {
	case line := <-ch.flood:
		if err := json.Unmarshal([]byte(line), &res.Tally); err != nil {
			tb.Fatalf("flooder's tally %q: %v", line, err)
		}
	case <-time.After(time.Minute):
		tb.Fatalf("the flooder did not report (agents' stderr: %s)", tail(ch.stderr.String(), 2000))
	}
	res.Stable = pm.d.Fleet.Connected() == sc.Agents+sc.Probes
	for _, p := range probes {
		select {
		case <-p.sess.Done():
			res.Stable = false
		default:
		}
		for _, s := range p.samples {
			switch {
			case s.err != nil:
				res.ProbeErrors++
				if res.FirstError == "" {
					res.FirstError = s.err.Error()
				}
			case !s.at.Before(floodFrom) && s.at.Before(floodTo):
				res.Flood = append(res.Flood, s.rtt)
			case !s.at.Before(quietFrom) && s.at.Before(floodFrom):
				res.Quiet = append(res.Quiet, s.rtt)
			}
		}
	}
	slices.Sort(res.Quiet)
	slices.Sort(res.Flood)
	res.Metrics, err = scrapeCounters(pm.d.MetricsAddr, "pocketmolt_tunnel_", "pocketmolt_tls_")
	if err != nil {
		tb.Fatal(err)
	}
	return res
}

// probe is a host in the benchmark's process that heartbeats over a real tunnel and times
// each heartbeat.
type probe struct {
	sess    *tunnel.Session
	body    []byte
	samples []sample
}

type sample struct {
	at  time.Time
	rtt time.Duration
	err error
}

func startProbe(ctx context.Context, dir, server string) (*probe, error) {
	st, err := agent.LoadState(dir)
	if err != nil {
		return nil, err
	}
	conn, err := dialTunnel(ctx, st, server)
	if err != nil {
		return nil, err
	}
	sess, err := tunnel.Client(conn, slog.New(slog.DiscardHandler))
	if err != nil {
		conn.Close()
		return nil, err
	}
	// pmd sends a host its bots when it connects; a probe runs none.
	go sess.Serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}), slog.New(slog.DiscardHandler))
	f := hostfacts.Collector{DiskPath: dir, AgentVersion: "bench"}
	body, err := json.Marshal(wire.Heartbeat{Facts: f.Collect(ctx), Sent: time.Now(), Bots: []wire.BotState{}})
	if err != nil {
		return nil, err
	}
	p := &probe{sess: sess, body: body}
	if err := p.beat(); err != nil {
		sess.Close()
		return nil, fmt.Errorf("first heartbeat: %w", err)
	}
	return p, nil
}

func (p *probe) beat() error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://pmd/v1/heartbeat", bytes.NewReader(p.body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.sess.HTTPClient().Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("heartbeat: %s", resp.Status)
	}
	return nil
}

// run heartbeats every interval until stop, recording each round trip.
func (p *probe) run(stop <-chan struct{}, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		at := time.Now()
		err := p.beat()
		p.samples = append(p.samples, sample{at: at, rtt: time.Since(at), err: err})
	}
}

// dialTunnel makes a host's TLS connection to pmd's agent listener, as the agent does.
func dialTunnel(ctx context.Context, st *agent.State, server string) (*tls.Conn, error) {
	tlsCfg, err := st.TunnelTLS()
	if err != nil {
		return nil, err
	}
	d := tls.Dialer{Config: tlsCfg}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", server)
	if err != nil {
		return nil, err
	}
	return c.(*tls.Conn), nil
}

// floodOnSignal is the child's flooder: on SIGUSR1 it floods pmd as the host in dir for
// envFloodFor, then prints its tally.
func floodOnSignal(ctx context.Context, dir, server string) {
	dur, err := time.ParseDuration(os.Getenv(envFloodFor))
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", envFloodFor, err)
		return
	}
	streams, err := strconv.Atoi(os.Getenv(envFloodStreams))
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", envFloodStreams, err)
		return
	}
	st, err := agent.LoadState(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGUSR1)
	defer signal.Stop(sig)
	select {
	case <-ctx.Done():
		return
	case <-sig:
	}
	began := time.Now()
	tally := flood(ctx, st, server, began.Add(dur), streams)
	tally.Seconds = time.Since(began).Seconds()
	b, _ := json.Marshal(tally)
	fmt.Println(floodPfx + string(b))
}

// head is a heartbeat announcing a 1 MB body, and the first 1 KB of it.
var head = "POST /v1/heartbeat HTTP/1.1\r\nHost: pmd\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n" +
	`{"facts":{"hostname":"` + strings.Repeat("a", 1000)

// flood connects as st's host again and again until until, each time opening up to streams
// streams of half-sent heartbeats and then dropping the connection.
func flood(ctx context.Context, st *agent.State, server string, until time.Time, streams int) floodTally {
	var t floodTally
	for time.Now().Before(until) && ctx.Err() == nil {
		t.Dials++
		c, err := dialTunnel(ctx, st, server)
		if err != nil {
			continue // at once: a flooder does not back off
		}
		t.Handshakes++
		cfg := yamux.DefaultConfig()
		cfg.EnableKeepAlive = false
		cfg.StreamOpenTimeout = 0
		cfg.LogOutput = io.Discard
		s, err := yamux.Client(c, cfg)
		if err != nil {
			c.Close()
			continue
		}
		for range streams {
			if time.Now().After(until) {
				break
			}
			str, err := s.OpenStream()
			if err != nil {
				break
			}
			if _, err := io.WriteString(str, head); err != nil {
				break
			}
			t.Streams++
		}
		c.NetConn().Close()
		s.Close()
	}
	return t
}

// scrapeCounters reads pmd's /metrics and returns the series whose names start with one of
// prefixes.
func scrapeCounters(addr string, prefixes ...string) (map[string]float64, error) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for line := range strings.Lines(string(body)) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		for _, p := range prefixes {
			if strings.HasPrefix(line, p) {
				i := strings.LastIndexByte(line, ' ')
				v, err := strconv.ParseFloat(line[i+1:], 64)
				if err == nil {
					out[line[:i]] = v
				}
			}
		}
	}
	return out, nil
}

func writeFloodTable(w io.Writer, r floodResult) {
	m := r.Metrics
	fmt.Fprintln(w, "| agents | probes | quiet p50 | quiet p99 | flood p50 | flood p99 | flood max | probe errors | flooder dials | handshakes | streams sent | sessions cut (streams/rate) | refused (penalty) | handshakes shed |")
	fmt.Fprintln(w, "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	fmt.Fprintf(w, "| %d | %d | %.2f ms | %.2f ms | %.2f ms | %.2f ms | %.2f ms | %d | %d | %d | %d | %.0f/%.0f | %.0f | %.0f |\n",
		r.sc.Agents, r.sc.Probes,
		ms(percentile(r.Quiet, 0.50)), ms(percentile(r.Quiet, 0.99)),
		ms(percentile(r.Flood, 0.50)), ms(percentile(r.Flood, 0.99)), ms(percentile(r.Flood, 1)),
		r.ProbeErrors, r.Tally.Dials, r.Tally.Handshakes, r.Tally.Streams,
		m[`pocketmolt_tunnel_sessions_cut_total{reason="streams"}`], m[`pocketmolt_tunnel_sessions_cut_total{reason="stream_rate"}`],
		m[`pocketmolt_tunnel_sessions_refused_total{reason="penalty"}`],
		m[`pocketmolt_tls_handshakes_shed_total{reason="queue_full"}`]+m[`pocketmolt_tls_handshakes_shed_total{reason="waited"}`])
}
