package bench

import (
	"flag"
	"fmt"
	"io"
	"os"
	"testing"
	"time"
)

var stormAgents = flag.Int("storm.agents", 5000, "BenchmarkReconnectStorm's number of agents")

// stormScenario is BenchmarkReconnectStorm's setting.
type stormScenario struct {
	Agents    int
	Heartbeat time.Duration
	// Restarts is how many times pmd restarts once every agent is online.
	Restarts int
	// Settle is how long every agent stays online before a restart. An agent starts its
	// backoff from the beginning only after a session that lasted longer than its longest
	// backoff (30 s), as a fleet's sessions have before a real restart.
	Settle        time.Duration
	OnlineTimeout time.Duration
}

// stormResult is one restart: how long until every host was online again, and what pmd's
// handshake admission shed meanwhile.
type stormResult struct {
	Agents int
	// Online is from the new pmd's start until every host has a session and a heartbeat.
	Online time.Duration
	// Shed counts connections closed before their handshake, by reason.
	ShedQueueFull, ShedWaited float64
}

// BenchmarkReconnectStorm restarts pmd under 5,000 connected agents three times, each after
// every session has lasted 31 s, and times each reconnect storm: from the new pmd's start
// (same data dir, same address, as systemd's restart) until every host is online again. The
// agents run in a child process with the product's backoff (jittered, from 0.5 s doubling
// to 30 s, back to 0.5 s after a session that lasted 30 s) and 10 s handshake timeout.
//
//	go test -run '^$' -bench BenchmarkReconnectStorm -benchtime 1x -timeout 30m ./internal/bench/
func BenchmarkReconnectStorm(b *testing.B) {
	fx := newFixture(b)
	rs := runStorm(b, fx, stormScenario{Agents: *stormAgents, Heartbeat: 10 * time.Second, Restarts: 3, Settle: 31 * time.Second, OnlineTimeout: 3 * time.Minute})
	b.ReportMetric(0, "ns/op")
	var worst time.Duration
	for i, r := range rs {
		b.ReportMetric(r.Online.Seconds(), fmt.Sprintf("online-%d-s", i+1))
		worst = max(worst, r.Online)
	}
	b.ReportMetric(worst.Seconds(), "online-max-s")
	writeStormTable(os.Stdout, rs)
}

// TestReconnectStorm runs BenchmarkReconnectStorm's machinery small.
func TestReconnectStorm(t *testing.T) {
	fx := newFixture(t)
	rs := runStorm(t, fx, stormScenario{Agents: 5, Heartbeat: 200 * time.Millisecond, Restarts: 1, OnlineTimeout: 30 * time.Second})
	if len(rs) != 1 || rs[0].Online <= 0 {
		t.Fatalf("storm not measured: %+v", rs)
	}
	writeStormTable(t.Output(), rs)
}

func runStorm(tb testing.TB, fx *fixture, sc stormScenario) []stormResult {
	tb.Helper()
	ctx := tb.Context()
	fx.ensureEnrolled(tb, sc.Agents)
	cfg := fx.config(sc.Heartbeat)
	pm := startPMD(tb, cfg)
	defer func() { pm.stop(tb) }()
	manifest, err := fx.manifest(sc.Agents)
	if err != nil {
		tb.Fatal(err)
	}
	ch, err := startChild(manifest, pm.d.AgentAddr, "")
	if err != nil {
		tb.Fatalf("start agents: %v", err)
	}
	defer func() { tb.Logf("agents' process: %s", ch.stop()) }()
	select {
	case <-ch.ready:
	case <-ch.exited:
		tb.Fatalf("agents' process exited before starting: %s", ch.stderr.String())
	case <-time.After(time.Minute):
		tb.Fatalf("agents' process did not start: %s", ch.stderr.String())
	}
	began := time.Now()
	if err := waitOnline(ctx, pm.d, ch, sc.Agents, began, sc.OnlineTimeout); err != nil {
		tb.Fatal(err)
	}
	tb.Logf("first connect: %d agents online in %s", sc.Agents, time.Since(began).Round(time.Millisecond))
	var out []stormResult
	for i := range sc.Restarts {
		time.Sleep(sc.Settle)
		cfg.AgentAddr = pm.d.AgentAddr // the agents dial this address
		tb.Logf("pmd before the restart: %s", pm.warns.summary())
		pm.stop(tb)
		t0 := time.Now()
		stopProfile := startProfile(tb, *profileDir, fmt.Sprintf("storm-%d-%d.pprof", sc.Agents, i+1))
		pm = startPMD(tb, cfg)
		err := waitOnline(ctx, pm.d, ch, sc.Agents, t0, sc.OnlineTimeout)
		stopProfile()
		if err != nil {
			tb.Fatalf("after a restart: %v (pmd: %s)", err, pm.warns.summary())
		}
		r := stormResult{Agents: sc.Agents, Online: time.Since(t0)}
		m, err := scrapeCounters(pm.d.MetricsAddr, "pocketmolt_tls_")
		if err != nil {
			tb.Fatal(err)
		}
		r.ShedQueueFull = m[`pocketmolt_tls_handshakes_shed_total{reason="queue_full"}`]
		r.ShedWaited = m[`pocketmolt_tls_handshakes_shed_total{reason="waited"}`]
		tb.Logf("restart: %d agents online in %s; pmd: %s", sc.Agents, r.Online.Round(time.Millisecond), pm.warns.summary())
		out = append(out, r)
	}
	return out
}

func writeStormTable(w io.Writer, rs []stormResult) {
	fmt.Fprintln(w, "| restart | agents | all online after | handshakes shed (queue full) | shed (waited) |")
	fmt.Fprintln(w, "| ---: | ---: | ---: | ---: | ---: |")
	for i, r := range rs {
		fmt.Fprintf(w, "| %d | %d | %.2f s | %.0f | %.0f |\n", i+1, r.Agents, r.Online.Seconds(), r.ShedQueueFull, r.ShedWaited)
	}
}
