package modelgate

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/wire"
)

type nopSink struct{}

func (nopSink) Append(context.Context, wire.UsageRecord) error { return nil }

// fsyncSink is a spool stand-in: each record is written to a file and fsynced, one at a
// time.
type fsyncSink struct {
	mu sync.Mutex
	f  *os.File
}

func (s *fsyncSink) Append(_ context.Context, rec wire.UsageRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.f.Write(append(b, '\n')); err != nil {
		return err
	}
	return s.f.Sync()
}

// groupSink fsyncs records as a spool with group commit would: the records that arrive
// while one fsync runs share the next.
type groupSink struct {
	mu       sync.Mutex
	f        *os.File
	buf      []byte
	waiters  []chan error
	flushing bool
}

func (s *groupSink) Append(_ context.Context, rec wire.UsageRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	ch := make(chan error, 1)
	s.mu.Lock()
	s.buf = append(append(s.buf, b...), '\n')
	s.waiters = append(s.waiters, ch)
	if !s.flushing {
		s.flushing = true
		go s.flush()
	}
	s.mu.Unlock()
	return <-ch
}

func (s *groupSink) flush() {
	for {
		s.mu.Lock()
		if len(s.waiters) == 0 {
			s.flushing = false
			s.mu.Unlock()
			return
		}
		buf, waiters := s.buf, s.waiters
		s.buf, s.waiters = nil, nil
		s.mu.Unlock()
		_, err := s.f.Write(buf)
		if err == nil {
			err = s.f.Sync()
		}
		for _, ch := range waiters {
			ch <- err
		}
	}
}

// benchRig is a fast fake Anthropic, a gate for one bot in front of it, and a bot's client.
type benchRig struct {
	upstream, gate *httptest.Server
	client         *http.Client
}

// newBenchRig is a gate with one bot in front of a fake Anthropic; credits puts the bot on
// credits, with an allowance that never runs out, so that its calls reserve.
func newBenchRig(b *testing.B, sink Sink, credits bool) *benchRig {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if strings.Contains(r.Header.Get("X-Bench"), "stream") {
			w.Header().Set("Content-Type", "text/event-stream")
			for _, e := range streamEvents(apiMessages, true) {
				_, _ = io.WriteString(w, e)
				w.(http.Flusher).Flush()
			}
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, anthropicWhole)
	}))
	b.Cleanup(up.Close)
	g := New(Config{Sink: sink})
	acc := &wire.ModelAccess{Token: tokenA, Providers: map[string]wire.ProviderAccess{
		wire.ProviderAnthropic: {BaseURL: up.URL, Key: anthropicKey}}}
	if credits {
		acc.Credits = true
		acc.DefaultPrice = wire.Price{Input: 3_000_000, Output: 15_000_000, CacheRead: 300_000}
		acc.Allowance = wire.Allowance{Remaining: 1 << 62, AsOf: time.Unix(1, 0)}
	}
	g.Set("bot", acc)
	gs := httptest.NewServer(g.Handler("bot"))
	b.Cleanup(gs.Close)
	tr := &http.Transport{MaxIdleConns: 512, MaxIdleConnsPerHost: 256, DisableCompression: true}
	b.Cleanup(tr.CloseIdleConnections)
	return &benchRig{upstream: up, gate: gs, client: &http.Client{Transport: tr}}
}

var benchBody = apiCases[0].body(false)

// do makes one call to base (the upstream itself, or the gate) and returns the time to the
// first byte of the body and to its end.
func (r *benchRig) do(b *testing.B, base string, stream bool) (first, whole time.Duration) {
	path := "/v1/messages"
	if base == r.gate.URL {
		path = "/anthropic/v1/messages"
	}
	req, _ := http.NewRequest("POST", base+path, strings.NewReader(benchBody))
	req.Header.Set("X-Api-Key", tokenA)
	if stream {
		req.Header.Set("X-Bench", "stream")
	}
	start := time.Now()
	resp, err := r.client.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var one [1]byte
	if _, err := io.ReadFull(resp.Body, one[:]); err != nil {
		b.Fatal(err)
	}
	first = time.Since(start)
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		b.Fatal(err)
	}
	if resp.StatusCode != 200 {
		b.Fatalf("status %d", resp.StatusCode)
	}
	return first, time.Since(start)
}

func pct(d []time.Duration, p float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(int(float64(len(s))*p), len(s)-1)]
}

// cpuTime is the user and system CPU time of the process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// BenchmarkGate measures the gate: latency it adds to a call against calling the upstream
// directly (p50/p99; streams to the first byte and to the end), and calls a second through
// one Gate with a no-op Sink and with one that fsyncs every record.
func BenchmarkGate(b *testing.B) {
	b.Run("added-latency/whole", func(b *testing.B) {
		r := newBenchRig(b, nopSink{}, false)
		var direct, gated []time.Duration
		r.do(b, r.upstream.URL, false)
		r.do(b, r.gate.URL, false)
		b.ResetTimer()
		for b.Loop() {
			_, d := r.do(b, r.upstream.URL, false)
			_, g := r.do(b, r.gate.URL, false)
			direct, gated = append(direct, d), append(gated, g)
		}
		b.ReportMetric(micros(pct(gated, .5)-pct(direct, .5)), "p50-added-µs")
		b.ReportMetric(micros(pct(gated, .99)-pct(direct, .99)), "p99-added-µs")
		b.ReportMetric(micros(pct(direct, .5)), "p50-direct-µs")
	})
	b.Run("added-latency/stream", func(b *testing.B) {
		r := newBenchRig(b, nopSink{}, false)
		var df, dw, gf, gw []time.Duration
		r.do(b, r.upstream.URL, true)
		r.do(b, r.gate.URL, true)
		b.ResetTimer()
		for b.Loop() {
			f1, w1 := r.do(b, r.upstream.URL, true)
			f2, w2 := r.do(b, r.gate.URL, true)
			df, dw, gf, gw = append(df, f1), append(dw, w1), append(gf, f2), append(gw, w2)
		}
		b.ReportMetric(micros(pct(gf, .5)-pct(df, .5)), "first-byte-p50-added-µs")
		b.ReportMetric(micros(pct(gf, .99)-pct(df, .99)), "first-byte-p99-added-µs")
		b.ReportMetric(micros(pct(gw, .5)-pct(dw, .5)), "whole-p50-added-µs")
		b.ReportMetric(micros(pct(gw, .99)-pct(dw, .99)), "whole-p99-added-µs")
	})
	for _, c := range []struct {
		name    string
		sink    func(b *testing.B) Sink
		credits bool
	}{
		{"calls/nop-sink", func(*testing.B) Sink { return nopSink{} }, false},
		{"calls/nop-sink-credits", func(*testing.B) Sink { return nopSink{} }, true},
		{"calls/fsync-sink", func(b *testing.B) Sink {
			f, err := os.Create(filepath.Join(b.TempDir(), "spool"))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { f.Close() })
			return &fsyncSink{f: f}
		}, false},
		{"calls/fsync-group-sink", func(b *testing.B) Sink {
			f, err := os.Create(filepath.Join(b.TempDir(), "spool"))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { f.Close() })
			return &groupSink{f: f}
		}, false},
	} {
		b.Run(c.name, func(b *testing.B) {
			r := newBenchRig(b, c.sink(b), c.credits)
			b.SetParallelism(8)
			start, cpu0 := time.Now(), cpuTime()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					r.do(b, r.gate.URL, false)
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "calls/s")
			// The process's CPU for a call (the bot's client, the gate and the fake provider
			// all in it): calls/s on a machine of its own is about cores / this.
			b.ReportMetric(micros(cpuTime()-cpu0)/float64(b.N), "cpu-µs/call")
		})
	}
}
