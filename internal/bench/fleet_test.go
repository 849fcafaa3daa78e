package bench

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"testing"
	"time"
)

var profileDir = flag.String("fleet.profiledir", "", "BenchmarkFleet writes CPU profiles of pmd's idle window and calls phase for each size into this directory")

// BenchmarkFleet connects 100, 1,000 and 5,000 agents to one pmd. Each size runs once
// (-benchtime 1x is enough; more iterations repeat the same scenario) and reports:
//
//	online-s        from starting every agent to every host online (session and a heartbeat)
//	pmd-KB/agent    growth of pmd's resident set per agent, all online, after a GC
//	heap-KB/agent   growth of pmd's live heap and goroutine stacks per agent
//	hb-µs-cpu       pmd's CPU time per heartbeat over 3 idle intervals (keep-alives, the
//	                stale-session sweep and GC included)
//	rtt-p50-ms …    pmd→agent GET /v1/info, sequential, to random agents
//	rtt-c16-p99-ms  the same from 16 callers at once; calls/s is their throughput
//	list-p50-ms     GET /v1/hosts on the admin API over mTLS (pmctl hosts list), whole fleet
//	scrape-p50-ms   GET /metrics with metrics-addr on, whole fleet
//	floor-KB/agent, floor-hb-µs-cpu
//	                the same hosts holding bare TLS 1.3 connections with the same heartbeat
//	                bytes and no yamux or HTTP (floor_test.go), measured the same way after
//	                pmd has stopped; rss-x-floor and cpu-x-floor are pmd's over the floor's
//
// The agents run in a child process so that pmd's memory and CPU are its own; both share the
// machine's cores. A markdown table of all sizes is printed at the end.
func BenchmarkFleet(b *testing.B) {
	fx := newFixture(b)
	var results []result
	for _, n := range []int{100, 1000, 5000} {
		b.Run("agents="+strconv.Itoa(n), func(b *testing.B) {
			sc := scenario{
				Agents:        n,
				Heartbeat:     10 * time.Second, // the product's default
				CPUBeats:      3,
				SeqCalls:      2000,
				ConcCalls:     4000,
				Workers:       16,
				OnlineTimeout: 2*time.Minute + time.Duration(n)*20*time.Millisecond,
				ProfileDir:    *profileDir,
			}
			// One scenario is minutes long; b.N beyond 1 would only repeat it.
			res := runScenario(b, fx, sc)
			res.Floor = runFloor(b, fx, sc)
			report(b, res)
			results = append(results, res)
		})
	}
	if len(results) > 0 {
		writeTable(os.Stdout, results)
	}
}

// TestFleet runs BenchmarkFleet's scenario with five agents and a fast heartbeat, so that the
// benchmark's machinery is exercised by every go test run.
func TestFleet(t *testing.T) {
	fx := newFixture(t)
	res := runScenario(t, fx, scenario{
		Agents:        5,
		Heartbeat:     200 * time.Millisecond,
		CPUBeats:      2,
		SeqCalls:      50,
		ConcCalls:     50,
		Workers:       4,
		OnlineTimeout: 30 * time.Second,
	})
	if len(res.Seq) != 50 || len(res.Conc) != 50 {
		t.Fatalf("got %d sequential and %d concurrent round trips, want 50 each", len(res.Seq), len(res.Conc))
	}
	if res.Seq[0] <= 0 || res.Conc[0] <= 0 {
		t.Errorf("round trips not measured: sequential %v, concurrent %v", res.Seq[:1], res.Conc[:1])
	}
	if res.CallErrors > 0 || !res.Stable {
		t.Errorf("%d calls failed (first: %s); every session kept: %v", res.CallErrors, res.FirstCallError, res.Stable)
	}
	if len(res.List) != fleetViews || len(res.Scrape) != fleetViews || res.List[0] <= 0 || res.Scrape[0] <= 0 {
		t.Errorf("fleet views not timed: %v %v", res.List, res.Scrape)
	}
	if res.AgentSummary == "" {
		t.Errorf("the agents' process printed no summary")
	}
	res.Floor = runFloor(t, fx, scenario{Agents: 5, Heartbeat: 200 * time.Millisecond, CPUBeats: 2, OnlineTimeout: 30 * time.Second})
	if res.Floor.RSS == 0 || res.Floor.HeartbeatCPU <= 0 {
		t.Errorf("floor not measured: %+v", res.Floor)
	}
	t.Logf("pmd: %s", res.PMDWarnings)
	t.Logf("agents' process: %s", res.AgentSummary)
	writeTable(t.Output(), []result{res})
}

// TestAgentsChild is the agents' process of BenchmarkFleet and TestFleet; run directly it is
// skipped.
func TestAgentsChild(t *testing.T) {
	manifest := os.Getenv(envManifest)
	if manifest == "" {
		t.Skip("runs only as the agents' process of BenchmarkFleet and TestFleet")
	}
	run := runAgentsFromEnv
	if os.Getenv(envMode) == "floor" {
		run = runFloorFromEnv
	}
	if err := run(manifest, os.Getenv(envServer)); err != nil {
		t.Fatal(err)
	}
}

func report(b *testing.B, r result) {
	b.ReportMetric(0, "ns/op") // the scenario's wall time says nothing
	b.ReportMetric(r.Online.Seconds(), "online-s")
	b.ReportMetric(float64(r.RSS)/float64(r.Agents)/1024, "pmd-KB/agent")
	b.ReportMetric(float64(r.IdleRSS)/float64(r.Agents)/1024, "pmd-idle-KB/agent")
	b.ReportMetric(float64(r.Heap)/float64(r.Agents)/1024, "heap-KB/agent")
	b.ReportMetric(float64(r.Goroutines)/float64(r.Agents), "goroutines/agent")
	b.ReportMetric(float64(r.HeartbeatCPU)/float64(time.Microsecond), "hb-µs-cpu")
	b.ReportMetric(ms(percentile(r.Seq, 0.50)), "rtt-p50-ms")
	b.ReportMetric(ms(percentile(r.Seq, 0.99)), "rtt-p99-ms")
	b.ReportMetric(ms(percentile(r.Conc, 0.50)), "rtt-c16-p50-ms")
	b.ReportMetric(ms(percentile(r.Conc, 0.99)), "rtt-c16-p99-ms")
	b.ReportMetric(r.ConcRate, "calls/s")
	b.ReportMetric(float64(r.CallErrors), "call-errors")
	b.ReportMetric(ms(percentile(r.List, 0.50)), "list-p50-ms")
	b.ReportMetric(ms(percentile(r.Scrape, 0.50)), "scrape-p50-ms")
	if f := r.Floor; f.Agents > 0 {
		b.ReportMetric(float64(f.RSS)/float64(f.Agents)/1024, "floor-KB/agent")
		b.ReportMetric(float64(f.HeartbeatCPU)/float64(time.Microsecond), "floor-hb-µs-cpu")
		b.ReportMetric(ratio(r.RSS, f.RSS), "rss-x-floor")
		b.ReportMetric(ratio(int64(r.HeartbeatCPU), int64(f.HeartbeatCPU)), "cpu-x-floor")
	}
	b.Logf("pmd: %s", r.PMDWarnings)
	b.Logf("agents' process: %s", r.AgentSummary)
	if r.CallErrors > 0 {
		b.Errorf("%d of %d calls failed; first: %s", r.CallErrors, len(r.Seq)+len(r.Conc)+r.CallErrors, r.FirstCallError)
	}
	if !r.Stable {
		b.Errorf("some agents lost their session during the measurement")
	}
}

// writeTable prints results as markdown rows for the README.
func writeTable(w io.Writer, rs []result) {
	fmt.Fprintln(w, "| agents | online | pmd RSS/agent | after idle | heap/agent | heartbeat CPU | idle CPU | GET /v1/info p50 | p99 | 16 callers p99 | calls/s | hosts list p50 | /metrics p50 | floor RSS/agent | pmd ÷ floor | floor heartbeat CPU | pmd ÷ floor |")
	fmt.Fprintln(w, "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, r := range rs {
		kb := func(n int64) float64 { return float64(n) / float64(r.Agents) / 1024 }
		f := r.Floor
		fkb := 0.0
		if f.Agents > 0 {
			fkb = float64(f.RSS) / float64(f.Agents) / 1024
		}
		fmt.Fprintf(w, "| %d | %.2f s | %.1f KB | %.1f KB | %.1f KB | %.0f µs | %.1f %% | %.2f ms | %.2f ms | %.2f ms | %.0f | %.1f ms | %.1f ms | %.1f KB | %.1f× | %.0f µs | %.1f× |\n",
			r.Agents, r.Online.Seconds(), kb(r.RSS), kb(r.IdleRSS), kb(r.Heap),
			float64(r.HeartbeatCPU)/float64(time.Microsecond), 100*r.IdleCPU,
			ms(percentile(r.Seq, 0.50)), ms(percentile(r.Seq, 0.99)),
			ms(percentile(r.Conc, 0.99)), r.ConcRate,
			ms(percentile(r.List, 0.50)), ms(percentile(r.Scrape, 0.50)),
			fkb, ratio(r.RSS, f.RSS), float64(f.HeartbeatCPU)/float64(time.Microsecond),
			ratio(int64(r.HeartbeatCPU), int64(f.HeartbeatCPU)))
	}
}

// ratio is a/b, or 0 when b is not positive.
func ratio(a, b int64) float64 {
	if b <= 0 {
		return 0
	}
	return float64(a) / float64(b)
}
