package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/openclaw"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

var (
	botsInterval   = flag.Duration("bots.interval", 100*time.Millisecond, "BenchmarkBots: the agent's bot interval (converge and probe); the product's default is 2s")
	botsCreate     = flag.Int("bots.create", 20, "BenchmarkBots/create: bots created one after another")
	botsConverge   = flag.Int("bots.converge", 50, "BenchmarkBots/converge: bots on the host the restarted agent converges")
	botsChats      = flag.Int("bots.chats", 1000, "BenchmarkBots/chat: round trips on each path")
	botsProfileDir = flag.String("bots.profiledir", "", "BenchmarkBots writes CPU profiles of the create and chat phases into this directory")
)

// BenchmarkBots runs bots of the stand-in gateway image on the local Docker Engine through pmd
// and one agent, both in this process, and prints markdown tables for the README:
//
//	create      bots created one after another with the admin API, each waited for until pmd
//	            records it running and healthy; the time split into pmd, agent, Docker, the
//	            gateway's own start and detection (see createSample)
//	converge-N  N bots running; the agent is stopped and a new one started on the same state
//	            dir; the time until pmd has the set delivered and every bot reported healthy
//	            again, and how many engine calls changed a container (must be none)
//	chat        chat round trips to one bot: straight to the gateway's port, through pmd's
//	            bots service (pmd → tunnel → agent → gateway) and through the admin API
//
//	go test -run '^$' -bench BenchmarkBots -benchtime 1x -timeout 30m ./internal/bench/
//
// Each sub-benchmark sets up its own pmd, host and bots and removes the containers and
// networks it made. -benchtime 1x is enough: a run is one measurement.
func BenchmarkBots(b *testing.B) {
	eng := engine(b)
	var tables []string
	b.Run("create", func(b *testing.B) {
		r := newBotsRig(b, eng, rigOptions{Interval: *botsInterval, Capacity: wire.Capacity{Bots: *botsCreate + 1, MemoryBytes: int64(*botsCreate+1) << 30}})
		stop := startProfile(b, *botsProfileDir, "bots-create.pprof")
		samples, err := measureCreate(b.Context(), r, *botsCreate)
		stop()
		if err != nil {
			b.Fatal(err)
		}
		s := summarizeCreate(samples)
		b.ReportMetric(0, "ns/op")
		b.ReportMetric(ms(s.p50.total), "total-p50-ms")
		b.ReportMetric(ms(s.p50.platform), "platform-p50-ms")
		b.ReportMetric(ms(s.p50.detection), "detection-p50-ms")
		b.Logf("pmd: %s; agent: %s", r.pm.warns.summary(), r.agent.warns.summary())
		b.Logf("engine calls, p50 (n): %s", engineCallSummary(r.agent.rt.snapshot()))
		for i, s := range samples {
			b.Logf("bot %2d: total %4.0f pmd %5.1f agent %5.1f docker %5.1f (list %4.1f) gateway %4.0f detection %3.0f ms",
				i, ms(s.total), ms(s.pmd), ms(s.agent), ms(s.docker), ms(s.list), ms(s.gateway), ms(s.detection))
		}
		var w strings.Builder
		writeCreateTable(&w, s, *botsInterval)
		tables = append(tables, w.String())
	})
	b.Run("converge-"+strconv.Itoa(*botsConverge), func(b *testing.B) {
		n := *botsConverge
		r := newBotsRig(b, eng, rigOptions{Interval: *botsInterval, Subnets: true,
			Capacity: wire.Capacity{Bots: n, MemoryBytes: int64(n) << 30}})
		res, err := measureConverge(b.Context(), r, n)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(0, "ns/op")
		b.ReportMetric(res.converged.Seconds(), "converge-s")
		b.ReportMetric(float64(res.mutations), "mutations")
		b.Logf("pmd: %s; agent: %s", r.pm.warns.summary(), r.agent.warns.summary())
		if res.mutations > 0 || res.changed > 0 {
			b.Errorf("the restarted agent touched containers: %d mutating calls (%s), %d containers changed", res.mutations, res.mutationOps, res.changed)
		}
		var w strings.Builder
		writeConvergeTable(&w, res, *botsInterval)
		tables = append(tables, w.String())
	})
	b.Run("chat", func(b *testing.B) {
		r := newBotsRig(b, eng, rigOptions{Interval: *botsInterval, Capacity: wire.Capacity{Bots: 1, MemoryBytes: 1 << 30}})
		res, err := measureChat(b.Context(), b, r, *botsChats)
		b.Logf("pmd: %s; agent: %s", r.pm.warns.summary(), r.agent.warns.summary())
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(0, "ns/op")
		b.ReportMetric(ms(percentile(res.direct, 0.5)), "direct-p50-ms")
		b.ReportMetric(ms(percentile(res.service, 0.5)), "tunnel-p50-ms")
		b.ReportMetric(ms(percentile(res.api, 0.5)), "api-p50-ms")
		var w strings.Builder
		writeChatTable(&w, res)
		tables = append(tables, w.String())
	})
	for _, t := range tables {
		fmt.Fprintln(os.Stdout)
		fmt.Fprint(os.Stdout, t)
	}
}

// TestBots runs BenchmarkBots' scenarios small — two bots created, three converged after an
// agent restart, a few chats — and checks outcomes only.
func TestBots(t *testing.T) {
	eng := engine(t)
	t.Run("create", func(t *testing.T) {
		r := newBotsRig(t, eng, rigOptions{Interval: 100 * time.Millisecond, Capacity: wire.Capacity{Bots: 2, MemoryBytes: 2 << 30}})
		samples, err := measureCreate(t.Context(), r, 2)
		if err != nil {
			t.Fatal(err)
		}
		for i, s := range samples {
			if s.total <= 0 || s.pmd <= 0 || s.docker <= 0 || s.gateway <= 0 {
				t.Errorf("bot %d: a part was not measured: %+v", i, s)
			}
		}
		writeCreateTable(t.Output(), summarizeCreate(samples), 100*time.Millisecond)
	})
	t.Run("converge", func(t *testing.T) {
		r := newBotsRig(t, eng, rigOptions{Interval: 100 * time.Millisecond, Capacity: wire.Capacity{Bots: 3, MemoryBytes: 3 << 30}})
		res, err := measureConverge(t.Context(), r, 3)
		if err != nil {
			t.Fatal(err)
		}
		if res.mutations > 0 || res.changed > 0 {
			t.Errorf("the restarted agent touched containers: %d mutating calls (%s), %d containers changed", res.mutations, res.mutationOps, res.changed)
		}
		writeConvergeTable(t.Output(), res, 100*time.Millisecond)
	})
	t.Run("chat", func(t *testing.T) {
		r := newBotsRig(t, eng, rigOptions{Interval: 100 * time.Millisecond, Capacity: wire.Capacity{Bots: 1, MemoryBytes: 1 << 30}})
		res, err := measureChat(t.Context(), t, r, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.direct) != 10 || len(res.service) != 10 || len(res.api) != 10 {
			t.Fatalf("round trips: %d direct, %d service, %d api; want 10 each", len(res.direct), len(res.service), len(res.api))
		}
		if res.modelCalls != 40 {
			t.Errorf("the provider answered %d model calls over 40 chat turns", res.modelCalls)
		}
		writeChatTable(t.Output(), res)
	})
}

// createSample is one bot's way from the create call to pmd recording it running and
// healthy. The parts cover that span without overlap:
//
//	pmd        the create call until pmd has the host's acknowledgement of the set with the bot
//	           (pmd's "host synced": the API call, the store, the set built and sent)
//	agent      then until Start returns, less the engine calls (queueing behind a pass in
//	           progress, files, probing the bots before it in the set)
//	docker     the engine calls in that span: List (which inspects every container), then
//	           EnsureImage, Create (network and container), Start; list is List's share
//	gateway    Start returned until /startupz first answers 200 to the benchmark's own
//	           probe loop (2 ms apart); listen is until it first answers at all
//	detection  then until pmd has recorded running+healthy: the agent's next probe pass
//	           (quantised by its interval), the report over the tunnel, the store write
type createSample struct {
	total, api, pmd, agent, docker, list, gateway, listen, detection time.Duration
	// platform is pmd + agent: everything but Docker, the gateway's own start and the
	// wait for the agent's next probe.
	platform time.Duration
}

func measureCreate(ctx context.Context, r *botsRig, n int) ([]createSample, error) {
	gw := newGatewayWatch(r.eng)
	r.agent.rt.setOnStart(gw.watch)
	defer r.agent.rt.setOnStart(nil)
	var out []createSample
	for i := range n {
		t0 := time.Now()
		b, err := r.createBot(ctx, fmt.Sprintf("c%02d", i))
		if err != nil {
			return out, fmt.Errorf("create bot %d: %w", i, err)
		}
		tAPI := time.Now()
		var tEnd time.Time
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(time.Millisecond) {
			if t, ok := r.obs.healthyAt(b.ID); ok {
				tEnd = t
				break
			}
			if time.Now().After(deadline) {
				return out, fmt.Errorf("bot %s not reported healthy within a minute", b.Name)
			}
		}
		if err := r.waitAllHealthy(ctx, []string{b.ID}, 10*time.Second); err != nil {
			return out, err
		}
		t1, ok := r.syncs.first(t0, i+1)
		if !ok {
			return out, fmt.Errorf("bot %s: pmd logged no sync with %d bots", b.Name, i+1)
		}
		var startEnd time.Time
		calls := r.agent.rt.snapshot()
		for _, c := range calls {
			if c.op == "Start" && c.bot == b.ID && c.err == nil {
				startEnd = c.end
				break
			}
		}
		if startEnd.IsZero() {
			return out, fmt.Errorf("bot %s: no Start call recorded", b.Name)
		}
		gt, ok := gw.get(b.ID)
		for deadline := time.Now().Add(5 * time.Second); !ok && time.Now().Before(deadline); gt, ok = gw.get(b.ID) {
			time.Sleep(time.Millisecond)
		}
		if !ok || gt.err != nil {
			return out, fmt.Errorf("bot %s: gateway not watched: %v", b.Name, gt.err)
		}
		s := createSample{total: tEnd.Sub(t0), api: tAPI.Sub(t0), pmd: t1.Sub(t0)}
		for _, c := range calls {
			d := overlap(c.start, c.end, t1, startEnd)
			s.docker += d
			if c.op == "List" {
				s.list += d
			}
		}
		s.agent = startEnd.Sub(t1) - s.docker
		s.gateway = gt.ready.Sub(startEnd)
		s.listen = gt.listening.Sub(startEnd)
		s.detection = tEnd.Sub(gt.ready)
		s.platform = s.pmd + s.agent
		out = append(out, s)
	}
	return out, nil
}

// engineCallSummary is each kind of engine call's median duration and count.
func engineCallSummary(calls []engineCall) string {
	by := map[string][]time.Duration{}
	for _, c := range calls {
		by[c.op] = append(by[c.op], c.end.Sub(c.start))
	}
	var parts []string
	for _, op := range slices.Sorted(maps.Keys(by)) {
		ds := by[op]
		slices.Sort(ds)
		parts = append(parts, fmt.Sprintf("%s %.1f ms (%d)", op, ms(percentile(ds, 0.5)), len(ds)))
	}
	return strings.Join(parts, ", ")
}

// overlap is how much of [s, e] lies in [from, to].
func overlap(s, e, from, to time.Time) time.Duration {
	if s.Before(from) {
		s = from
	}
	if e.After(to) {
		e = to
	}
	if e.Before(s) {
		return 0
	}
	return e.Sub(s)
}

type createSummary struct {
	n             int
	p50, p90, max createSample
}

// summarizeCreate takes each column's quantile on its own: the p50 row is not one bot, and
// its parts need not add up to its total.
func summarizeCreate(ss []createSample) createSummary {
	q := func(f func(createSample) time.Duration, p float64) time.Duration {
		ds := make([]time.Duration, len(ss))
		for i, s := range ss {
			ds[i] = f(s)
		}
		slices.Sort(ds)
		return percentile(ds, p)
	}
	row := func(p float64) createSample {
		return createSample{
			total: q(func(s createSample) time.Duration { return s.total }, p), api: q(func(s createSample) time.Duration { return s.api }, p),
			pmd: q(func(s createSample) time.Duration { return s.pmd }, p), agent: q(func(s createSample) time.Duration { return s.agent }, p),
			docker: q(func(s createSample) time.Duration { return s.docker }, p), list: q(func(s createSample) time.Duration { return s.list }, p),
			gateway: q(func(s createSample) time.Duration { return s.gateway }, p), listen: q(func(s createSample) time.Duration { return s.listen }, p),
			detection: q(func(s createSample) time.Duration { return s.detection }, p),
			platform:  q(func(s createSample) time.Duration { return s.platform }, p),
		}
	}
	return createSummary{n: len(ss), p50: row(0.5), p90: row(0.9), max: row(1)}
}

func writeCreateTable(w io.Writer, s createSummary, interval time.Duration) {
	fmt.Fprintf(w, "`bots create` → running+healthy, %d bots one after another, agent interval %s (ms):\n\n", s.n, interval)
	fmt.Fprintln(w, "| | total | API call | pmd | agent | Docker | (of it List) | gateway listening | gateway ready | detection | platform (pmd+agent) |")
	fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, r := range []struct {
		name string
		s    createSample
	}{{"p50", s.p50}, {"p90", s.p90}, {"max", s.max}} {
		fmt.Fprintf(w, "| %s | %.0f | %.1f | %.1f | %.1f | %.1f | %.1f | %.0f | %.0f | %.0f | %.1f |\n", r.name,
			ms(r.s.total), ms(r.s.api), ms(r.s.pmd), ms(r.s.agent), ms(r.s.docker), ms(r.s.list),
			ms(r.s.listen), ms(r.s.gateway), ms(r.s.detection), ms(r.s.platform))
	}
}

// convergeResult is what an agent restart with bots running cost.
type convergeResult struct {
	bots int
	// coldStart is from creating every bot at once to all running and healthy.
	coldStart time.Duration
	// From the new agent's start: pmd has its session; pmd has the host's acknowledgement of
	// the full set; pmd has recorded every bot healthy from the new agent's reports; the later
	// of the last two.
	online, synced, reported, converged time.Duration
	// firstList is the new agent's first List; pass is the median gap between the starts of
	// its Lists after convergence: a pass over every bot, or the interval if that is longer.
	firstList, pass time.Duration
	mutations       int
	mutationOps     string
	changed         int // containers whose id or start time differ after the restart
}

func measureConverge(ctx context.Context, r *botsRig, n int) (res convergeResult, err error) {
	res.bots = n
	ids := make([]string, n)
	began := time.Now()
	for i := range n {
		b, err := r.createBot(ctx, fmt.Sprintf("v%02d", i))
		if err != nil {
			return res, fmt.Errorf("create bot %d: %w", i, err)
		}
		ids[i] = b.ID
	}
	if err := r.waitAllHealthy(ctx, ids, time.Duration(n)*5*time.Second+time.Minute); err != nil {
		return res, err
	}
	res.coldStart = time.Since(began)
	before, err := r.eng.List(ctx, r.hostID)
	if err != nil {
		return res, err
	}
	if len(before) != n {
		return res, fmt.Errorf("%d containers before the restart, want %d", len(before), n)
	}

	r.obs.reset()
	ra := r.restartAgent()
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(time.Millisecond) {
		tSync, synced := r.syncs.first(ra.started, n)
		tRep, reported := r.obs.allHealthy(ids)
		if synced && reported {
			res.synced, res.reported = tSync.Sub(ra.started), tRep.Sub(ra.started)
			res.converged = max(res.synced, res.reported)
			break
		}
		if time.Now().After(deadline) {
			return res, fmt.Errorf("restarted agent did not converge in 2 minutes (set delivered: %v, all reported healthy: %v)", synced, reported)
		}
	}
	if t, ok := r.obs.firstConnected(); ok {
		res.online = t.Sub(ra.started)
	}
	// Several more passes, for any late change to show.
	time.Sleep(max(time.Second, 10*r.opts.Interval))
	if err := r.waitAllHealthy(ctx, ids, 10*time.Second); err != nil {
		return res, err
	}
	var ops []string
	var listStarts []time.Time
	for _, c := range ra.rt.snapshot() {
		if mutates(c.op) {
			res.mutations++
			ops = append(ops, c.op+" "+c.bot)
		}
		if c.op == "List" {
			if res.firstList == 0 {
				res.firstList = c.end.Sub(c.start)
			}
			if c.start.After(ra.started.Add(res.converged)) {
				listStarts = append(listStarts, c.start)
			}
		}
	}
	res.mutationOps = strings.Join(ops, ", ")
	var gaps []time.Duration
	for i := 1; i < len(listStarts); i++ {
		gaps = append(gaps, listStarts[i].Sub(listStarts[i-1]))
	}
	slices.Sort(gaps)
	res.pass = percentile(gaps, 0.5)

	after, err := r.eng.List(ctx, r.hostID)
	if err != nil {
		return res, err
	}
	was := map[string]string{}
	for _, c := range before {
		was[c.BotID] = c.ID + " " + c.StartedAt.String()
	}
	for _, c := range after {
		if was[c.BotID] != c.ID+" "+c.StartedAt.String() {
			res.changed++
		}
	}
	res.changed += max(0, len(before)-len(after))
	return res, nil
}

func writeConvergeTable(w io.Writer, r convergeResult, interval time.Duration) {
	fmt.Fprintf(w, "Agent restart with %d bots running on its host, agent interval %s (times from the new agent's start):\n\n", r.bots, interval)
	fmt.Fprintln(w, "| bots | cold start of all | session up | set delivered | all reported healthy | converged | first List | pass over all bots | mutating engine calls | containers changed |")
	fmt.Fprintln(w, "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	fmt.Fprintf(w, "| %d | %.1f s | %.0f ms | %.0f ms | %.0f ms | %.0f ms | %.0f ms | %.0f ms | %d | %d |\n",
		r.bots, r.coldStart.Seconds(), ms(r.online), ms(r.synced), ms(r.reported), ms(r.converged),
		ms(r.firstList), ms(r.pass), r.mutations, r.changed)
}

// chatResult holds sorted round trips of each path.
type chatResult struct {
	// direct: POST to the gateway's published port with its token, one kept-alive
	// connection; fresh: the same with a new connection each time; service: pmd's
	// bots.Service.Chat (pmd → tunnel → agent → gateway); api: the admin API's chat (pmctl's
	// path: HTTPS to pmd, then as service).
	direct, fresh, service, api []time.Duration
	errors                      int
	firstError                  string
	// goroutines and fds are this process's (pmd, agent and benchmark) growth over the
	// tunnel round trips, measured straight after them.
	goroutines, fds int
	// modelCalls is how many calls the stand-in provider answered over the measured round
	// trips: each chat turn is one model call through the host's model endpoint.
	modelCalls int
}

func measureChat(ctx context.Context, tb testing.TB, r *botsRig, n int) (res chatResult, err error) {
	b, err := r.createBot(ctx, "chat")
	if err != nil {
		return res, err
	}
	if err := r.waitAllHealthy(ctx, []string{b.ID}, time.Minute); err != nil {
		return res, err
	}
	set, err := r.pm.d.Bots.Desired(ctx, r.hostID)
	if err != nil {
		return res, err
	}
	var token string
	for _, s := range set.Bots {
		if s.ID == b.ID {
			token = s.Env[openclaw.EnvGatewayToken]
		}
	}
	var port int
	states, _ := r.agent.a.Bots.Snapshot()
	for _, s := range states {
		if s.ID == b.ID {
			port = s.HostPort
		}
	}
	if token == "" || port == 0 {
		return res, fmt.Errorf("bot %s: no gateway token (%v) or port (%d)", b.ID, token != "", port)
	}
	url := "http://127.0.0.1:" + strconv.Itoa(port) + "/v1/chat/completions"
	kept := &http.Client{Transport: &http.Transport{}}
	fresh := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	defer kept.CloseIdleConnections()
	direct := func(hc *http.Client) error { return chatDirect(ctx, hc, url, token, "ping") }
	service := func() error {
		_, err := r.pm.d.Bots.Chat(ctx, "bench", b.ID, wire.ChatRequest{Message: "ping"})
		return err
	}
	api := func() error {
		_, err := r.admin.ChatBot(ctx, b.ID, wire.ChatRequest{Message: "ping"})
		return err
	}
	timed := func(f func() error, into *[]time.Duration) {
		t := time.Now()
		if err := f(); err != nil {
			res.errors++
			if res.firstError == "" {
				res.firstError = err.Error()
			}
			return
		}
		*into = append(*into, time.Since(t))
	}
	// Warm up every path (connections, TLS, the gateway's handler) outside the measurement.
	var discard []time.Duration
	for range min(n, 20) {
		timed(func() error { return direct(kept) }, &discard)
		timed(func() error { return direct(fresh) }, &discard)
	}
	g0, fd0 := runtime.NumGoroutine(), openFDs()
	for range min(n, 20) {
		timed(service, &discard)
		timed(api, &discard)
	}
	stop := startProfile(tb, *botsProfileDir, "bots-chat.pprof")
	calls0 := len(r.provider.Calls())
	// Interleaved, so that drift in the machine's load hits every path alike.
	for range n {
		timed(func() error { return direct(kept) }, &res.direct)
		timed(func() error { return direct(fresh) }, &res.fresh)
		timed(service, &res.service)
		timed(api, &res.api)
	}
	stop()
	res.goroutines, res.fds = runtime.NumGoroutine()-g0, openFDs()-fd0
	res.modelCalls = len(r.provider.Calls()) - calls0
	for _, s := range [][]time.Duration{res.direct, res.fresh, res.service, res.api} {
		slices.Sort(s)
	}
	if res.errors > 0 {
		return res, fmt.Errorf("%d chat round trips failed; first: %s", res.errors, res.firstError)
	}
	return res, nil
}

// chatDirect makes the request pmd's bots.Service.Chat makes, straight to the gateway.
func chatDirect(ctx context.Context, hc *http.Client, url, token, msg string) error {
	body, _ := json.Marshal(map[string]any{
		"model":    "openclaw",
		"messages": []map[string]string{{"role": "user", "content": msg}},
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Openclaw-Session-Key", "pmctl")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("gateway answered %s", resp.Status)
	}
	var cc struct {
		Choices []struct {
			Message struct {
				Content string `json:"content"`
			} `json:"message"`
		} `json:"choices"`
	}
	if err := json.Unmarshal(raw, &cc); err != nil || len(cc.Choices) == 0 {
		return fmt.Errorf("not a chat completion: %v", err)
	}
	return nil
}

func openFDs() int {
	es, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0
	}
	return len(es)
}

func writeChatTable(w io.Writer, r chatResult) {
	d50, d99 := percentile(r.direct, 0.5), percentile(r.direct, 0.99)
	fmt.Fprintf(w, "Chat round trips with the stand-in gateway, %d per path, interleaved, each turn a model call through the host's model endpoint to the stand-in provider (%d calls; ms):\n\n", len(r.direct), r.modelCalls)
	fmt.Fprintln(w, "| path | p50 | p99 | overhead p50 | overhead p99 |")
	fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: |")
	for _, row := range []struct {
		name string
		ds   []time.Duration
	}{
		{"gateway port, kept-alive connection", r.direct},
		{"gateway port, new connection each", r.fresh},
		{"pmd bots service → tunnel → agent → gateway", r.service},
		{"admin API (pmctl's path)", r.api},
	} {
		p50, p99 := percentile(row.ds, 0.5), percentile(row.ds, 0.99)
		fmt.Fprintf(w, "| %s | %.2f | %.2f | %+.2f | %+.2f |\n", row.name, ms(p50), ms(p99), ms(p50-d50), ms(p99-d99))
	}
	fmt.Fprintf(w, "\nOver the %d tunnel and %d API round trips this process (pmd, agent, benchmark) grew by %d goroutines and %d open files.\n",
		len(r.service), len(r.api), r.goroutines, r.fds)
}
