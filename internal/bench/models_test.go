package bench

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/agent"
	"github.com/pocketmolt/pocketmolt/internal/credits"
	"github.com/pocketmolt/pocketmolt/internal/modelgate"
	"github.com/pocketmolt/pocketmolt/internal/pmd"
	"github.com/pocketmolt/pocketmolt/internal/runtime"
	"github.com/pocketmolt/pocketmolt/internal/spool"
	"github.com/pocketmolt/pocketmolt/internal/standinprovider"
	"github.com/pocketmolt/pocketmolt/internal/store"
	"github.com/pocketmolt/pocketmolt/internal/store/storetest"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

var (
	modelsSamples  = flag.Int("models.samples", 2000, "BenchmarkModels/latency: calls timed on each path of each API")
	modelsBots     = flag.Int("models.bots", 8, "BenchmarkModels/throughput: bots on the agent")
	modelsCallers  = flag.Int("models.callers", 64, "BenchmarkModels/throughput: concurrent callers, spread over the bots")
	modelsDuration = flag.Duration("models.duration", 10*time.Second, "BenchmarkModels/throughput: how long each path is driven")
	modelsRecords  = flag.Int("models.records", 100_000, "BenchmarkModels/records: usage records shipped from the agent's spool into pmd")
	modelsStores   = flag.String("models.stores", "sqlite,postgres", "BenchmarkModels/records: pmd's stores to run on (postgres only when PM_TEST_POSTGRES_URL is set)")
)

// BenchmarkModels measures the model gateway with real parts and prints markdown tables for
// the README:
//
//	latency     the latency an agent's model endpoint adds to a call against calling the
//	            stand-in provider directly: p50/p99 of a whole (non-streaming) answer, and of a
//	            stream's first byte and its end, for the Anthropic and OpenAI APIs
//	throughput  model calls a second one agent's endpoint sustains: many callers at once over
//	            several bots, beside the provider called directly by the same callers
//	records     usage records a second pmd commits: records an agent spooled are shipped by
//	            the real agent over the real tunnel into a real pmd (SQLite, and PostgreSQL
//	            when PM_TEST_POSTGRES_URL is set), each committed once and debited
//
// The endpoint is the agent's own (agent.NewModels, modelgate.New, a spool.Spool in a
// directory on the machine's disk, fsync and all), each bot on its own listener at a
// 127.x.y.1 "gateway" address, called from its 127.x.y.2 "container" address; the provider
// is internal/standinprovider on loopback, with the platform's keys, so a call only succeeds
// when the endpoint swapped the bot's token for the key.
//
//	go test -run '^$' -bench BenchmarkModels -benchtime 1x -timeout 30m ./internal/bench/
func BenchmarkModels(b *testing.B) {
	var tables []string
	load0 := loadAverage()
	b.Run("latency", func(b *testing.B) {
		r := newModelsRig(b, 1)
		res := measureModelLatency(b, r, *modelsSamples)
		b.ReportMetric(0, "ns/op")
		for _, l := range res {
			if l.api == wire.ProviderAnthropic {
				b.ReportMetric(ms(l.added(l.whole, 0.5)), "whole-p50-added-ms")
				b.ReportMetric(ms(l.added(l.first, 0.5)), "first-byte-p50-added-ms")
			}
		}
		var w strings.Builder
		writeModelLatencyTable(&w, res)
		tables = append(tables, w.String())
	})
	b.Run("throughput", func(b *testing.B) {
		r := newModelsRig(b, *modelsBots)
		res := measureModelThroughput(b, r, *modelsCallers, *modelsDuration)
		b.ReportMetric(0, "ns/op")
		b.ReportMetric(res[1].perSecond(), "calls/s")
		var w strings.Builder
		writeModelThroughputTable(&w, res, *modelsBots, *modelsCallers)
		tables = append(tables, w.String())
	})
	b.Run("records", func(b *testing.B) {
		var rows []recordsResult
		for _, db := range strings.Split(*modelsStores, ",") {
			if db == "postgres" && os.Getenv("PM_TEST_POSTGRES_URL") == "" {
				continue
			}
			res, err := measureRecords(b, db, *modelsRecords)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(res.shippingPerSecond(), db+"-records/s")
			rows = append(rows, res)
		}
		b.ReportMetric(0, "ns/op")
		var w strings.Builder
		writeRecordsTable(&w, rows)
		tables = append(tables, w.String())
	})
	fmt.Fprintf(os.Stdout, "\nload average (1 min) %s at the start, %s at the end\n", load0, loadAverage())
	for _, t := range tables {
		fmt.Fprintln(os.Stdout)
		fmt.Fprint(os.Stdout, t)
	}
}

// TestModels runs BenchmarkModels' scenarios small and checks outcomes: every call answered,
// every call spooled once, every record committed once.
func TestModels(t *testing.T) {
	t.Run("latency", func(t *testing.T) {
		r := newModelsRig(t, 1)
		res := measureModelLatency(t, r, 20)
		for _, l := range res {
			if len(l.whole[0]) != 20 || len(l.whole[1]) != 20 || len(l.first[1]) != 20 {
				t.Errorf("%s: %d/%d whole, %d streams timed; want 20 each", l.api, len(l.whole[0]), len(l.whole[1]), len(l.first[1]))
			}
		}
		// Every call through the endpoint was metered once: 20 whole answers and 20 streams
		// per API, and as many warming up.
		if n, want := r.spool.Len(), 2*len(modelAPIs)*(20+20); n != want {
			t.Errorf("spool holds %d records after %d calls through the endpoint", n, want)
		}
		writeModelLatencyTable(t.Output(), res)
	})
	t.Run("throughput", func(t *testing.T) {
		r := newModelsRig(t, 3)
		res := measureModelThroughput(t, r, 6, time.Second)
		if res[1].calls == 0 || res[1].errors > 0 {
			t.Fatalf("through the endpoint: %d calls, %d errors (%s)", res[1].calls, res[1].errors, res[1].firstError)
		}
		if r.shipped.Load() != res[1].calls {
			t.Errorf("%d calls through the endpoint, %d records shipped", res[1].calls, r.shipped.Load())
		}
		writeModelThroughputTable(t.Output(), res, 3, 6)
	})
	t.Run("records", func(t *testing.T) {
		var rows []recordsResult
		for _, db := range []string{"sqlite", "postgres"} {
			if db == "postgres" && os.Getenv("PM_TEST_POSTGRES_URL") == "" {
				continue
			}
			res, err := measureRecords(t, db, 2000)
			if err != nil {
				t.Fatal(err)
			}
			rows = append(rows, res)
		}
		writeRecordsTable(t.Output(), rows)
	})
}

// modelsRig is one agent's model endpoint for some bots, in front of the stand-in provider.
type modelsRig struct {
	tb       testing.TB
	provider *standinprovider.Server
	spool    *spool.Spool
	models   *agent.Models
	bots     []modelsBot
	// shipped counts the records the agent's shipping loop took from the spool (to a pmd
	// that commits at once), when ship runs.
	shipped atomic.Int64
}

// modelsBot is one bot: its token, its endpoint and its container's address.
type modelsBot struct {
	id, token string
	endpoint  netip.AddrPort
	from      netip.Addr
}

// modelsNet is the 127.0.0.0/8 second octet this process's bot networks use, apart from other
// runs'.
var modelsNet = byte(100 + mrand.N(100))

func newModelsRig(tb testing.TB, bots int) *modelsRig {
	tb.Helper()
	prov, err := standinprovider.Start(context.Background(), "127.0.0.1:0", standinprovider.Options{
		Keys: map[string]string{wire.ProviderAnthropic: platformAnthropicKey, wire.ProviderOpenAI: platformOpenAIKey}})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { prov.Close() })
	// The spool on the machine's disk (not a tmpfs): the endpoint answers only once a call's
	// record is fsynced.
	dir, err := os.MkdirTemp(diskTempDir(), "pm-bench-spool-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	log := slog.New(slog.DiscardHandler)
	sp, err := spool.Open(dir, log)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { sp.Close() })
	g := modelgate.New(modelgate.Config{Sink: sp, Log: log})
	r := &modelsRig{tb: tb, provider: prov, spool: sp, models: agent.NewModels(g, sp, log)}
	tb.Cleanup(r.models.Close)
	var mbs []agent.ModelBot
	for i := range bots {
		gw := netip.AddrFrom4([4]byte{127, modelsNet, byte(i + 1), 1})
		ip := netip.AddrFrom4([4]byte{127, modelsNet, byte(i + 1), 2})
		id := fmt.Sprintf("bench-model-%02d", i)
		tok := "pmm-bench-" + rand.Text()
		mbs = append(mbs, agent.ModelBot{ID: id, Access: &wire.ModelAccess{
			Token: tok,
			Providers: map[string]wire.ProviderAccess{
				wire.ProviderAnthropic: {BaseURL: prov.URL(), Key: platformAnthropicKey},
				wire.ProviderOpenAI:    {BaseURL: prov.URL() + "/v1", Key: platformOpenAIKey},
			},
			// On credits, so the allowance is checked on every call, with more than enough.
			Credits:   true,
			Allowance: wire.Allowance{Remaining: math.MaxInt64 / 4, AsOf: time.Now(), Message: "used up"},
			Prices: map[string]wire.Price{
				"anthropic/claude-sonnet-4-6": {Input: 3_000_000, Output: 15_000_000, CacheRead: 300_000, CacheWrite: 3_750_000},
				"openai/gpt-5":                {Input: 1_250_000, Output: 10_000_000, CacheRead: 125_000},
			},
		}, Gateway: gw, IP: ip})
		r.bots = append(r.bots, modelsBot{id: id, token: tok, endpoint: netip.AddrPortFrom(gw, runtime.ModelPort), from: ip})
	}
	r.models.Sync(mbs)
	for _, b := range r.bots {
		if _, ok := r.models.Addr(b.id); !ok {
			tb.Fatalf("bot %s's model endpoint does not listen", b.id)
		}
	}
	return r
}

// diskTempDir is a directory on a disk for the spool: /var/tmp, unless TMPDIR says otherwise.
func diskTempDir() string {
	if d := os.Getenv("TMPDIR"); d != "" {
		return d
	}
	return "/var/tmp"
}

// ship runs the agent's shipping loop against a pmd that commits every batch at once, until
// the test ends, counting the records it takes.
func (r *modelsRig) ship() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.models.Ship(ctx, func(_ context.Context, b wire.UsageBatch) (wire.UsageReply, error) {
			r.shipped.Add(int64(len(b.Records)))
			return wire.UsageReply{Committed: len(b.Records)}, nil
		})
	}()
	r.tb.Cleanup(func() { cancel(); <-done })
}

// modelClient is a bot's HTTP client: kept-alive connections from its container address.
func modelClient(from netip.Addr, conns int) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: from.AsSlice()}, Timeout: 5 * time.Second}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: d.DialContext, MaxIdleConns: conns, MaxIdleConnsPerHost: conns, DisableCompression: true}}
}

// modelCall is one API call shape.
type modelCall struct {
	api              string // wire.ProviderAnthropic or wire.ProviderOpenAI
	direct, endpoint string // paths at the provider and at the endpoint
}

var modelAPIs = []modelCall{
	{wire.ProviderAnthropic, "/v1/messages", "/anthropic/v1/messages"},
	{wire.ProviderOpenAI, "/v1/chat/completions", "/openai/v1/chat/completions"},
}

func (c modelCall) body(stream bool) string {
	if c.api == wire.ProviderAnthropic {
		return fmt.Sprintf(`{"model":"claude-sonnet-4-6","max_tokens":256,"stream":%t,"messages":[{"role":"user","content":"What is the capital of France? Answer in one short sentence."}]}`, stream)
	}
	return fmt.Sprintf(`{"model":"gpt-5","stream":%t,"messages":[{"role":"user","content":"What is the capital of France? Answer in one short sentence."}]}`, stream)
}

// do makes one call, straight to the provider with the platform's key (direct) or to bot's
// endpoint with its token, and returns the time to the body's first byte and to its end.
func (r *modelsRig) do(ctx context.Context, hc *http.Client, c modelCall, bot modelsBot, direct, stream bool) (first, whole time.Duration, err error) {
	url, key := "http://"+bot.endpoint.String()+c.endpoint, bot.token
	if direct {
		url = r.provider.URL() + c.direct
		key = platformAnthropicKey
		if c.api == wire.ProviderOpenAI {
			key = platformOpenAIKey
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(c.body(stream)))
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	if c.api == wire.ProviderAnthropic {
		req.Header.Set("X-Api-Key", key)
		req.Header.Set("Anthropic-Version", "2023-06-01")
	} else {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	start := time.Now()
	resp, err := hc.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	var one [1]byte
	if _, err := io.ReadFull(resp.Body, one[:]); err != nil {
		return 0, 0, fmt.Errorf("read answer: %w", err)
	}
	first = time.Since(start)
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return 0, 0, fmt.Errorf("read answer: %w", err)
	}
	whole = time.Since(start)
	if resp.StatusCode != http.StatusOK {
		return 0, 0, fmt.Errorf("%s answered %s", url, resp.Status)
	}
	return first, whole, nil
}

// latencyResult is one API's sorted samples: whole answers (non-streaming) and streams'
// first byte and end; index 0 direct to the provider, 1 through the endpoint.
type latencyResult struct {
	api                 string
	whole, first, whEnd [2][]time.Duration
}

// added is the endpoint's q-quantile less the provider's.
func (l latencyResult) added(s [2][]time.Duration, q float64) time.Duration {
	return percentile(s[1], q) - percentile(s[0], q)
}

func measureModelLatency(tb testing.TB, r *modelsRig, n int) []latencyResult {
	tb.Helper()
	ctx := tb.Context()
	bot := r.bots[0]
	hc := modelClient(bot.from, 4)
	defer hc.CloseIdleConnections()
	var out []latencyResult
	for _, c := range modelAPIs {
		res := latencyResult{api: c.api}
		call := func(direct, stream bool) (time.Duration, time.Duration) {
			first, whole, err := r.do(ctx, hc, c, bot, direct, stream)
			if err != nil {
				tb.Fatal(err)
			}
			return first, whole
		}
		// Warm up both paths (connections, the handlers) outside the measurement.
		for range min(n, 50) {
			for _, direct := range []bool{true, false} {
				call(direct, false)
				call(direct, true)
			}
		}
		// Interleaved, so that drift in the machine's load hits both paths alike.
		for range n {
			for i, direct := range []bool{true, false} {
				_, w := call(direct, false)
				res.whole[i] = append(res.whole[i], w)
				f, e := call(direct, true)
				res.first[i] = append(res.first[i], f)
				res.whEnd[i] = append(res.whEnd[i], e)
			}
		}
		for i := range 2 {
			slices.Sort(res.whole[i])
			slices.Sort(res.first[i])
			slices.Sort(res.whEnd[i])
		}
		out = append(out, res)
		r.provider.Reset()
	}
	return out
}

func writeModelLatencyTable(w io.Writer, res []latencyResult) {
	if len(res) == 0 {
		return
	}
	fmt.Fprintf(w, "Model call latency, %d calls per path and kind, interleaved, one bot, kept-alive connections (ms; added = through the endpoint less direct):\n\n", len(res[0].whole[0]))
	fmt.Fprintln(w, "| API | call | direct p50 | direct p99 | endpoint p50 | endpoint p99 | added p50 | added p99 |")
	fmt.Fprintln(w, "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, l := range res {
		for _, row := range []struct {
			name string
			s    [2][]time.Duration
		}{{"whole answer", l.whole}, {"stream, first byte", l.first}, {"stream, whole", l.whEnd}} {
			fmt.Fprintf(w, "| %s | %s | %.3f | %.3f | %.3f | %.3f | %+.3f | %+.3f |\n", l.api, row.name,
				ms(percentile(row.s[0], 0.5)), ms(percentile(row.s[0], 0.99)), ms(percentile(row.s[1], 0.5)), ms(percentile(row.s[1], 0.99)),
				ms(l.added(row.s, 0.5)), ms(l.added(row.s, 0.99)))
		}
	}
}

// throughputResult is one path driven by many callers.
type throughputResult struct {
	path          string
	calls, errors int64
	firstError    string
	elapsed       time.Duration
	cpu           time.Duration // the process's CPU time over the run
	latencies     []time.Duration
	spooled       int64
}

func (t throughputResult) perSecond() float64 { return float64(t.calls) / t.elapsed.Seconds() }

// measureModelThroughput drives callers concurrent callers (each a bot's, round robin over the
// bots, its own kept-alive connection) for d, first straight to the provider, then through
// the endpoint with the agent's shipping loop running; Anthropic whole answers.
func measureModelThroughput(tb testing.TB, r *modelsRig, callers int, d time.Duration) [2]throughputResult {
	tb.Helper()
	r.ship()
	var out [2]throughputResult
	for i, direct := range []bool{true, false} {
		res := &out[i]
		res.path = "through the endpoint"
		if direct {
			res.path = "provider directly"
		}
		// Callers stop starting calls after d; the calls under way finish, so that every
		// call counted is one the endpoint metered, and no other.
		ctx := tb.Context()
		var stop atomic.Bool
		timer := time.AfterFunc(d, func() { stop.Store(true) })
		var mu sync.Mutex
		var wg sync.WaitGroup
		shipped0 := r.shipped.Load()
		start, cpu0 := time.Now(), cpuTime()
		for c := range callers {
			bot := r.bots[c%len(r.bots)]
			wg.Go(func() {
				hc := modelClient(bot.from, 1)
				defer hc.CloseIdleConnections()
				var lat []time.Duration
				var calls, errs int64
				var first string
				for !stop.Load() && ctx.Err() == nil {
					_, whole, err := r.do(ctx, hc, modelAPIs[0], bot, direct, false)
					if err != nil {
						errs++
						if first == "" {
							first = err.Error()
						}
						continue
					}
					calls++
					lat = append(lat, whole)
				}
				mu.Lock()
				defer mu.Unlock()
				res.calls += calls
				res.errors += errs
				res.latencies = append(res.latencies, lat...)
				if res.firstError == "" {
					res.firstError = first
				}
			})
		}
		wg.Wait()
		res.elapsed, res.cpu = time.Since(start), cpuTime()-cpu0
		timer.Stop()
		slices.Sort(res.latencies)
		if !direct {
			// Wait for the shipping loop to take what the spool holds.
			deadline := time.Now().Add(10 * time.Second)
			for r.spool.Len() > 0 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			res.spooled = r.shipped.Load() - shipped0
		}
		r.provider.Reset()
	}
	if out[1].errors > 0 {
		tb.Errorf("%d calls through the endpoint failed; first: %s", out[1].errors, out[1].firstError)
	}
	return out
}

func writeModelThroughputTable(w io.Writer, res [2]throughputResult, bots, callers int) {
	fmt.Fprintf(w, "Model calls a second, %d callers over %d bots, Anthropic whole answers, for %s each (the stand-in provider, the callers and the endpoint share the machine):\n\n",
		callers, bots, res[0].elapsed.Round(100*time.Millisecond))
	fmt.Fprintln(w, "| path | calls | calls/s | p50 ms | p99 ms | CPU µs/call (whole process) | records spooled and shipped | errors |")
	fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	for i, t := range res {
		spooled := "—"
		if i == 1 {
			spooled = fmt.Sprint(t.spooled)
		}
		cpu := 0.0
		if t.calls > 0 {
			cpu = float64(t.cpu.Microseconds()) / float64(t.calls)
		}
		fmt.Fprintf(w, "| %s | %d | %.0f | %.2f | %.2f | %.0f | %s | %d |\n", t.path, t.calls, t.perSecond(),
			ms(percentile(t.latencies, 0.5)), ms(percentile(t.latencies, 0.99)), cpu, spooled, t.errors)
	}
}

// recordsResult is one run of records shipped into pmd.
type recordsResult struct {
	db               string
	records          int
	fill             time.Duration // appending them to the spool (fsynced, 64 at once)
	firstCommit, all time.Duration // from the agent's start
	debited          int64
	pmdWarnings      string // pmd's warnings over the run, summarised
}

// perSecond is the rate from the agent's start (its spool read back, the session, every batch)
// until pmd had them all.
func (r recordsResult) perSecond() float64 {
	return float64(r.records) / r.all.Seconds()
}

// shippingPerSecond is the rate once the first batch was in: the records after it over the
// time after it.
func (r recordsResult) shippingPerSecond() float64 {
	return float64(r.records-recordsBatch) / (r.all - r.firstCommit).Seconds()
}

// recordsBots and recordsCustomers are the bots the shipped records are of, spread over
// customers on credits.
const (
	recordsBots      = 20
	recordsCustomers = 2
	// recordsBatch is what the agent ships in one request (agent's shipBatch).
	recordsBatch = 500
)

// measureRecords starts a real pmd on db ("sqlite" or "postgres"), enrolls a host whose 20
// bots belong to two customers with credits, fills the host's usage spool with n records as
// the model endpoint writes them, then starts the host's real agent: it connects over the
// tunnel and ships the spool in batches (1,000 a request, one after another, as the agent
// does), and pmd commits and debits each. Timed from the agent's start until pmd's store
// holds all n.
func measureRecords(tb testing.TB, db string, n int) (recordsResult, error) {
	tb.Helper()
	ctx := tb.Context()
	res := recordsResult{db: db, records: n}
	cfg := pmd.Config{
		DataDir:    filepath.Join(tb.TempDir(), "pm"),
		PublicAddr: "127.0.0.1:0", AgentAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0",
		LogLevel: "info",
	}
	if db == "postgres" {
		cfg.Database = storetest.PostgresURL(tb)
	}
	withStandinProvider(tb, &cfg)
	if err := pmd.Init(ctx, cfg, io.Discard); err != nil {
		return res, fmt.Errorf("pmd init: %w", err)
	}
	pm := startPMD(tb, cfg)
	defer pm.stop(tb)
	d := pm.d

	tok, err := d.Fleet.CreateToken(ctx, "bench", "models-1", 0)
	if err != nil {
		return res, err
	}
	st, err := agent.Enroll(ctx, agent.EnrollOptions{Server: d.AgentAddr, Token: tok.Token, StateDir: filepath.Join(tb.TempDir(), "agent")})
	if err != nil {
		return res, fmt.Errorf("enroll: %w", err)
	}
	host := st.Identity.HostID

	// The customers and their bots, straight in pmd's store; the bots' specs are empty, so pmd
	// sends the host no containers to run (it logs that it cannot build them).
	now := time.Now().UTC()
	var users []string
	for i := range recordsCustomers {
		u := fmt.Sprintf("bench-user-%d", i)
		users = append(users, u)
		if err := d.Store.CreateUser(ctx, store.User{ID: u, Email: u + "@example.com", PasswordHash: "x", CreatedAt: now, UpdatedAt: now}); err != nil {
			return res, err
		}
		if err := d.Store.InTx(ctx, func(tx *store.Store) error {
			_, err := d.Credits.GrantPeriod(ctx, tx, u, "bench-sub-"+u, 1_000_000*credits.Micro, now.Add(-time.Hour), now.AddDate(0, 1, 0))
			return err
		}); err != nil {
			return res, fmt.Errorf("grant credits: %w", err)
		}
	}
	var bots []string
	for i := range recordsBots {
		id := fmt.Sprintf("bench-bot-%02d", i)
		bots = append(bots, id)
		if err := d.Store.CreateBot(ctx, store.Bot{ID: id, Name: id, HostID: host, Owner: store.Owner{Kind: store.OwnerCustomer, ID: users[i%len(users)]},
			Spec: []byte(`{}`), SpecVersion: 1, Desired: store.DesiredStopped, CreatedAt: now, UpdatedAt: now}); err != nil {
			return res, err
		}
	}

	// The spool as the model endpoint leaves it: n records, each appended and fsynced (64
	// callers at once share fsyncs, as the endpoint's do).
	sp, err := spool.Open(filepath.Join(st.Dir, "usage"), nil)
	if err != nil {
		return res, err
	}
	fillStart := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	var fillErr error
	var fillMu sync.Mutex
	for range 64 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := sp.Append(ctx, usageRecord(bots[i%len(bots)], now.Add(-time.Minute))); err != nil {
					fillMu.Lock()
					fillErr = err
					fillMu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	res.fill = time.Since(fillStart)
	if err := errors.Join(fillErr, sp.Close()); err != nil {
		return res, fmt.Errorf("fill the spool: %w", err)
	}

	a := agent.New(st, idleEngine{}, "bench", slog.New(slog.DiscardHandler))
	actx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	start := time.Now()
	go func() { defer close(done); a.Run(actx) }()
	defer func() { cancel(); <-done }()

	committed := func() (int64, int64, error) {
		var calls, debited int64
		for _, u := range users {
			t, err := d.Store.UsageOfOwner(ctx, store.Owner{Kind: store.OwnerCustomer, ID: u}, now.Add(-time.Hour))
			if err != nil {
				return 0, 0, err
			}
			calls, debited = calls+t.Calls, debited+t.Debited
		}
		return calls, debited, nil
	}
	// pmd's store is asked until the first batch is there (a few hundred rows to sum); after
	// that, asking it would cost pmd as much as committing, so the end is seen on the agent's
	// side instead: the spool deletes its segments once every record in them is acked, and
	// the agent acks a batch when pmd's answer says it was committed.
	deadline := start.Add(10 * time.Minute)
	for res.firstCommit == 0 {
		calls, _, err := committed()
		if err != nil {
			return res, err
		}
		if calls > 0 {
			res.firstCommit = time.Since(start)
			break
		}
		if time.Now().After(deadline) {
			return res, fmt.Errorf("no record committed after %s", time.Since(start).Round(time.Second))
		}
		time.Sleep(5 * time.Millisecond)
	}
	for {
		empty, err := spoolEmpty(filepath.Join(st.Dir, "usage"))
		if err != nil {
			return res, err
		}
		if empty {
			res.all = time.Since(start)
			break
		}
		if time.Now().After(deadline) {
			calls, _, _ := committed()
			return res, fmt.Errorf("after %s pmd holds %d of %d records", time.Since(start).Round(time.Second), calls, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// A session pmd cut as a flood (the agent shipping faster than the tunnel's stream rate)
	// would have stalled the shipping for its penalty: the number would not be pmd's.
	res.pmdWarnings = pm.warns.summary()
	if strings.Contains(res.pmdWarnings, "session cut") {
		return res, fmt.Errorf("pmd cut the agent's session while it shipped: %s", res.pmdWarnings)
	}
	calls, debited, err := committed()
	if err != nil {
		return res, err
	}
	if calls != int64(n) {
		return res, fmt.Errorf("pmd holds %d records of %d shipped", calls, n)
	}
	res.debited = debited
	if res.debited <= 0 {
		return res, fmt.Errorf("%d records committed and nothing debited", n)
	}
	return res, nil
}

// spoolEmpty reports whether the spool in dir has no segment with records left.
func spoolEmpty(dir string) (bool, error) {
	es, err := os.ReadDir(dir)
	if err != nil {
		return false, err
	}
	for _, e := range es {
		if !strings.HasSuffix(e.Name(), ".seg") {
			continue
		}
		fi, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted since the listing
		}
		if err != nil {
			return false, err
		}
		if fi.Size() > 0 {
			return false, nil
		}
	}
	return true, nil
}

// usageRecord is a record of an Anthropic call by bot, with a fresh id, as the endpoint
// writes one.
func usageRecord(bot string, at time.Time) wire.UsageRecord {
	return wire.UsageRecord{ID: modelgate.NewRecordID(time.Now()), BotID: bot, Provider: wire.ProviderAnthropic, Model: "claude-sonnet-4-6",
		API: "messages", Status: 200, Outcome: wire.OutcomeOK, Tokens: wire.Tokens{Input: 1200, Output: 300, CacheRead: 40},
		Time: at, Millis: 850}
}

func writeRecordsTable(w io.Writer, rows []recordsResult) {
	fmt.Fprintln(w, "Usage records shipped from an agent's spool over the tunnel into pmd (1,000 a request, one request at a time, paced as the agent paces them), committed once each and debited:")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| store | records | spool filled (64 writers) | first batch committed | all committed | records/s from the agent's start | records/s after the first batch |")
	fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, r := range rows {
		fmt.Fprintf(w, "| %s | %d | %.2f s (%.0f/s) | %.0f ms | %.2f s | %.0f | %.0f |\n", r.db, r.records, r.fill.Seconds(), float64(r.records)/r.fill.Seconds(),
			ms(r.firstCommit), r.all.Seconds(), r.perSecond(), r.shippingPerSecond())
	}
}
