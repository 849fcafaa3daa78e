package bench

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/agent"
	"github.com/pocketmolt/pocketmolt/internal/apiclient"
	"github.com/pocketmolt/pocketmolt/internal/ctlconfig"
	"github.com/pocketmolt/pocketmolt/internal/fleet"
	"github.com/pocketmolt/pocketmolt/internal/pmd"
	"github.com/pocketmolt/pocketmolt/internal/runtime"
	"github.com/pocketmolt/pocketmolt/internal/runtime/docker"
	"github.com/pocketmolt/pocketmolt/internal/standin"
	"github.com/pocketmolt/pocketmolt/internal/standinprovider"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// benchImage is the stand-in gateway image BenchmarkBots and TestBots run. It is built once
// per process, tagged for it alone, and removed by TestMain when the run ends.
var benchImage = "pocketmolt/standin-gateway:bench-" + strings.ToLower(rand.Text()[:10])

var (
	imageOnce  sync.Once
	imageErr   error
	imageBuilt atomic.Bool
)

// benchUIDBase is where this process's agents take their bots' uids from, apart from other
// runs' on this machine (bases 1024 apart: no run here makes more bots).
var benchUIDBase = agent.DefaultBotUIDBase + agent.BotUIDRange + mrand.N(200_000)*1024

// engine returns the local Docker Engine with the stand-in image built, skipping without an
// Engine (failing when CI=true).
func engine(tb testing.TB) *docker.Docker {
	tb.Helper()
	d, err := docker.New("")
	if err == nil {
		ctx, cancel := context.WithTimeout(tb.Context(), 5*time.Second)
		_, err = d.Version(ctx)
		cancel()
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("CI needs a Docker Engine: %v", err)
		}
		tb.Skipf("no Docker Engine: %v", err)
	}
	imageOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		imageErr = standin.Build(ctx, d, benchImage)
		imageBuilt.Store(imageErr == nil)
	})
	if imageErr != nil {
		tb.Fatalf("build stand-in image: %v", imageErr)
	}
	tb.Cleanup(func() { d.Close() })
	return d
}

// botsRig is pmd in this process with one enrolled host whose agent runs bots on the local
// Docker Engine through a timing runtime.
type botsRig struct {
	tb       testing.TB
	eng      *docker.Docker
	pm       *runningPMD
	admin    *apiclient.Client
	syncs    *syncLog
	obs      *observer
	hostID   string
	stateDir string
	agent    *runningAgent
	opts     rigOptions
	// provider is the stand-in model provider pmd's upstreams point at.
	provider *standinprovider.Server

	mu   sync.Mutex
	bots []string // every bot id created, for the clean-up
}

type rigOptions struct {
	// Interval is the agent's bot interval (converge and probe).
	Interval time.Duration
	// Capacity is what the host declares.
	Capacity wire.Capacity
	// Subnets makes each bot's network in the benchmark's own address range first (see
	// subnetPool), for more bots than Docker's default address pools allow.
	Subnets bool
	// Configure, when not nil, changes pmd's configuration before pmd is initialised.
	Configure func(*pmd.Config)
}

// newBotsRig starts pmd, enrolls a host and starts its agent. Cleanup stops both and removes
// every container and network the host's bots had.
func newBotsRig(tb testing.TB, eng *docker.Docker, opts rigOptions) *botsRig {
	tb.Helper()
	ctx := tb.Context()
	cfg := pmd.Config{
		DataDir:    filepath.Join(tb.TempDir(), "pm"),
		PublicAddr: "127.0.0.1:0", AgentAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0",
		LogLevel: "info", BotImage: benchImage, BotStartTimeout: time.Minute,
	}
	// Every bot's chat turns go through its host's model endpoint to pmd's upstreams: a
	// stand-in provider on loopback, with the platform's keys in files as an operator keeps them.
	prov := withStandinProvider(tb, &cfg)
	if opts.Configure != nil {
		opts.Configure(&cfg)
	}
	if err := pmd.Init(ctx, cfg, io.Discard); err != nil {
		tb.Fatalf("pmd init: %v", err)
	}
	r := &botsRig{tb: tb, eng: eng, opts: opts, syncs: &syncLog{}, provider: prov}
	r.pm, r.obs = startObservedPMD(tb, cfg, r.syncs)
	tb.Cleanup(r.close)

	ccfg, err := ctlconfig.Load(filepath.Join(cfg.DataDir, pmd.CtlConfigFile))
	if err != nil {
		tb.Fatal(err)
	}
	cc, err := ccfg.Current()
	if err != nil {
		tb.Fatal(err)
	}
	cc.Server = r.pm.d.AdminAddr
	if r.admin, err = apiclient.New(cc); err != nil {
		tb.Fatal(err)
	}
	tok, err := r.pm.d.Fleet.CreateToken(ctx, "bench", "docker-1", 0)
	if err != nil {
		tb.Fatal(err)
	}
	r.stateDir = filepath.Join(tb.TempDir(), "agent")
	st, err := agent.Enroll(ctx, agent.EnrollOptions{Server: r.pm.d.AgentAddr, Token: tok.Token, StateDir: r.stateDir})
	if err != nil {
		tb.Fatalf("enroll: %v", err)
	}
	r.hostID = st.Identity.HostID
	// pmd holds a host to the memory it enrolled with (a bot per GiB) unless an operator sets
	// its limit: this host offers what the benchmark declares, as an operator would set it.
	if _, err := r.admin.SetHost(ctx, r.hostID, wire.HostUpdate{CapacityBots: &opts.Capacity.Bots, CapacityMemoryBytes: &opts.Capacity.MemoryBytes}); err != nil {
		tb.Fatalf("set the host's capacity: %v", err)
	}
	r.agent = r.startAgent(st)
	r.waitOnline()
	return r
}

// The platform's own model keys in every bench pmd.
const (
	platformAnthropicKey = "sk-ant-platform-bench-0123456789abcdef"
	platformOpenAIKey    = "sk-platform-bench-openai-0123456789abcdef"
)

// withStandinProvider starts a stand-in model provider on loopback and points cfg's upstreams
// at it (Anthropic at its URL, OpenAI at URL+"/v1"), with the platform's keys in files. The
// provider stops when tb ends.
func withStandinProvider(tb testing.TB, cfg *pmd.Config) *standinprovider.Server {
	tb.Helper()
	prov, err := standinprovider.Start(context.Background(), "127.0.0.1:0", standinprovider.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { prov.Close() })
	keys := tb.TempDir()
	cfg.AnthropicAPIKeyFile, cfg.OpenAIAPIKeyFile = filepath.Join(keys, "anthropic"), filepath.Join(keys, "openai")
	for file, key := range map[string]string{cfg.AnthropicAPIKeyFile: platformAnthropicKey, cfg.OpenAIAPIKeyFile: platformOpenAIKey} {
		if err := os.WriteFile(file, []byte(key+"\n"), 0o600); err != nil {
			tb.Fatal(err)
		}
	}
	cfg.AnthropicBaseURL, cfg.OpenAIBaseURL = prov.URL(), prov.URL()+"/v1"
	return prov
}

// startObservedPMD is startPMD with pmd's "host synced" debug lines kept and its bot
// observer wrapped, so that the benchmark sees when a host got its set and when pmd recorded
// a state.
func startObservedPMD(tb testing.TB, cfg pmd.Config, syncs *syncLog) (*runningPMD, *observer) {
	tb.Helper()
	warns := &warnCounter{}
	inner := countingHandler{Handler: slog.NewJSONHandler(io.Discard, nil), c: warns}
	log := slog.New(syncHandler{Handler: inner, syncs: syncs})
	d, err := pmd.Open(tb.Context(), cfg, log)
	if err != nil {
		tb.Fatalf("open pmd: %v", err)
	}
	obs := &observer{inner: d.Bots, healthy: map[string]time.Time{}}
	d.Fleet.SetObserver(obs)
	ctx, cancel := context.WithCancel(context.Background())
	p := &runningPMD{d: d, warns: warns, cancel: cancel, done: make(chan error, 1)}
	go func() { p.done <- d.Run(ctx) }()
	return p, obs
}

func (r *botsRig) close() {
	if r.agent != nil {
		r.agent.stop()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if r.hostID != "" {
		cs, err := r.eng.List(ctx, r.hostID)
		if err != nil {
			r.tb.Errorf("list containers to remove: %v", err)
		}
		r.mu.Lock()
		ids := append([]string(nil), r.bots...)
		r.mu.Unlock()
		for _, c := range cs {
			ids = append(ids, c.BotID)
		}
		// Remove removes the bot's network too, also one made by subnetPool for a bot
		// whose container never came.
		for _, id := range ids {
			if err := r.eng.Remove(ctx, id); err != nil {
				r.tb.Errorf("remove bot %s: %v", id, err)
			}
		}
	}
	r.pm.stop(r.tb)
}

// waitOnline waits for the host's session and a heartbeat with its facts (placement needs
// the capacity).
func (r *botsRig) waitOnline() {
	r.tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		h, err := r.admin.GetHost(r.tb.Context(), r.hostID)
		if err == nil && h.Status == wire.HostOnline {
			return
		}
		if time.Now().After(deadline) {
			r.tb.Fatalf("host not online after 30 s: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// runningAgent is one run of the host's agent.
type runningAgent struct {
	a       *agent.Agent
	rt      *timedRuntime
	warns   *warnCounter
	started time.Time
	cancel  context.CancelFunc
	done    chan struct{}
}

func (r *botsRig) startAgent(st *agent.State) *runningAgent {
	warns := &warnCounter{}
	log := slog.New(countingHandler{Handler: slog.NewJSONHandler(io.Discard, nil), c: warns})
	rt := &timedRuntime{rt: r.eng, containers: map[string]string{}}
	if r.opts.Subnets {
		rt.subnets = &subnetPool{agentID: st.Identity.HostID}
	}
	ra := &runningAgent{rt: rt, warns: warns, done: make(chan struct{})}
	ra.a = agent.New(st, rt, "bench", log)
	ra.a.Facts.Capacity = r.opts.Capacity
	ra.a.Bots.SetInterval(r.opts.Interval)
	if err := ra.a.Bots.SetUIDBase(benchUIDBase); err != nil {
		r.tb.Fatal(err)
	}
	ra.a.MaxBackoff = 300 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	ra.cancel = cancel
	ra.started = time.Now()
	go func() { defer close(ra.done); ra.a.Run(ctx) }()
	return ra
}

// restartAgent stops the agent, waits for its engine calls to end, and runs a new one on the
// same state dir.
func (r *botsRig) restartAgent() *runningAgent {
	r.tb.Helper()
	r.agent.stop()
	st, err := agent.LoadState(r.stateDir)
	if err != nil {
		r.tb.Fatal(err)
	}
	r.agent = r.startAgent(st)
	return r.agent
}

// stop cancels the agent and waits until Run has returned and no engine call is under way:
// Run does not wait for its bot manager's goroutine.
func (ra *runningAgent) stop() {
	ra.cancel()
	<-ra.done
	for quiet := 0; quiet < 5; {
		if ra.rt.inflight.Load() == 0 {
			quiet++
		} else {
			quiet = 0
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// createBot creates a bot through the admin API as pmctl would.
func (r *botsRig) createBot(ctx context.Context, name string) (wire.Bot, error) {
	b, err := r.admin.CreateBot(ctx, wire.CreateBotRequest{
		Name: name, Host: r.hostID, Model: "anthropic/claude-sonnet-4-6", APIKey: "sk-ant-bench-0123456789abcdef",
		Resources: wire.Resources{MemoryBytes: 1 << 30, CPUs: 0.5, PIDs: 128},
	})
	if err != nil {
		return wire.Bot{}, err
	}
	r.mu.Lock()
	r.bots = append(r.bots, b.ID)
	r.mu.Unlock()
	return *b, nil
}

// waitAllHealthy waits until pmd's API shows every bot in ids running and healthy.
func (r *botsRig) waitAllHealthy(ctx context.Context, ids []string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		bs, err := r.admin.ListBots(ctx)
		ok := 0
		var last wire.Bot
		if err == nil {
			want := map[string]bool{}
			for _, id := range ids {
				want[id] = true
			}
			for _, b := range bs {
				if want[b.ID] {
					if b.Status == wire.BotRunning && b.Health == wire.HealthHealthy {
						ok++
					} else {
						last = b
					}
				}
			}
			if ok == len(ids) {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %s %d of %d bots running and healthy (list error %v; e.g. %s %s/%s %q)",
				timeout, ok, len(ids), err, last.Name, last.Status, last.Health, last.LastError)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// syncLog keeps the times pmd logged "host synced": the host has just acknowledged a set.
type syncLog struct {
	mu    sync.Mutex
	syncs []syncRecord
}

type syncRecord struct {
	at   time.Time
	bots int
}

// first is the first sync at or after since with at least bots bots.
func (l *syncLog) first(since time.Time, bots int) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.syncs {
		if !s.at.Before(since) && s.bots >= bots {
			return s.at, true
		}
	}
	return time.Time{}, false
}

// syncHandler records "host synced" and passes info and above on: pmd is measured logging at
// its production level, while its one debug line of interest is kept.
type syncHandler struct {
	slog.Handler
	syncs *syncLog
}

func (h syncHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelDebug
}

func (h syncHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelInfo {
		if r.Message == "host synced" {
			rec := syncRecord{at: r.Time}
			r.Attrs(func(a slog.Attr) bool {
				if a.Key == "bots" {
					rec.bots = int(a.Value.Int64())
				}
				return true
			})
			h.syncs.mu.Lock()
			h.syncs.syncs = append(h.syncs.syncs, rec)
			h.syncs.mu.Unlock()
		}
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h syncHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return syncHandler{Handler: h.Handler.WithAttrs(as), syncs: h.syncs}
}

func (h syncHandler) WithGroup(name string) slog.Handler {
	return syncHandler{Handler: h.Handler.WithGroup(name), syncs: h.syncs}
}

// observer is pmd's bot observer with the moment each report was recorded kept: after the
// inner Observe returns, pmd's API shows what the host reported.
type observer struct {
	inner fleet.Observer

	mu        sync.Mutex
	connected []time.Time
	// healthy is when each bot was first recorded running and healthy since the last reset.
	healthy map[string]time.Time
}

var _ fleet.Observer = (*observer)(nil)

func (o *observer) Connected(hostID string) {
	o.mu.Lock()
	o.connected = append(o.connected, time.Now())
	o.mu.Unlock()
	o.inner.Connected(hostID)
}

func (o *observer) Observe(ctx context.Context, hostID string, states []wire.BotState, complete bool) error {
	err := o.inner.Observe(ctx, hostID, states, complete)
	now := time.Now()
	if err != nil {
		return err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, s := range states {
		if s.Status == wire.BotRunning && s.Health == wire.HealthHealthy {
			if _, ok := o.healthy[s.ID]; !ok {
				o.healthy[s.ID] = now
			}
		}
	}
	return nil
}

func (o *observer) Owners(ctx context.Context, hostID string, ids []string) ([]string, []string, error) {
	return o.inner.Owners(ctx, hostID, ids)
}

// reset forgets what was reported so far.
func (o *observer) reset() {
	o.mu.Lock()
	o.healthy = map[string]time.Time{}
	o.connected = nil
	o.mu.Unlock()
}

func (o *observer) healthyAt(id string) (time.Time, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	t, ok := o.healthy[id]
	return t, ok
}

// allHealthy is when the last of ids was reported healthy, once all have been.
func (o *observer) allHealthy(ids []string) (time.Time, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	var last time.Time
	for _, id := range ids {
		t, ok := o.healthy[id]
		if !ok {
			return time.Time{}, false
		}
		if t.After(last) {
			last = t
		}
	}
	return last, true
}

func (o *observer) firstConnected() (time.Time, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.connected) == 0 {
		return time.Time{}, false
	}
	return o.connected[0], true
}

// engineCall is one call the agent made to the engine.
type engineCall struct {
	op         string
	bot        string // for Create
	container  string // for Start, Stop, Restart, Inspect; Create's result
	start, end time.Time
	err        error
}

// mutates says whether op changes a container.
func mutates(op string) bool {
	switch op {
	case "Create", "Start", "Stop", "Restart", "Remove":
		return true
	}
	return false
}

// timedRuntime is the real engine with every call the bot manager makes recorded. Version
// (heartbeats' facts) and Events (a long-lived stream) are passed through unrecorded.
type timedRuntime struct {
	rt *docker.Docker
	// subnets, if set, makes each bot's network before Create does.
	subnets  *subnetPool
	inflight atomic.Int64

	mu         sync.Mutex
	calls      []engineCall
	containers map[string]string // container id → bot id
	// onStart, if set, is called (in its own goroutine) when Start returns without error.
	onStart func(botID, containerID string, at time.Time)
}

func (t *timedRuntime) setOnStart(f func(botID, containerID string, at time.Time)) {
	t.mu.Lock()
	t.onStart = f
	t.mu.Unlock()
}

var _ agent.Runtime = (*timedRuntime)(nil)

func (t *timedRuntime) record(c engineCall) {
	t.mu.Lock()
	t.calls = append(t.calls, c)
	t.mu.Unlock()
}

// time runs f as one recorded call.
func (t *timedRuntime) time(op, bot, container string, f func() error) error {
	t.inflight.Add(1)
	defer t.inflight.Add(-1)
	c := engineCall{op: op, bot: bot, container: container, start: time.Now()}
	c.err = f()
	c.end = time.Now()
	t.record(c)
	return c.err
}

// snapshot returns the calls so far.
func (t *timedRuntime) snapshot() []engineCall {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]engineCall(nil), t.calls...)
}

func (t *timedRuntime) botOf(container string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.containers[container]
}

func (t *timedRuntime) Version(ctx context.Context) (string, error) { return t.rt.Version(ctx) }

func (t *timedRuntime) Memory(ctx context.Context, id string) (int64, error) {
	return t.rt.Memory(ctx, id)
}

func (t *timedRuntime) List(ctx context.Context, agentID string) (cs []runtime.Container, err error) {
	err = t.time("List", "", "", func() error { cs, err = t.rt.List(ctx, agentID); return err })
	return cs, err
}

func (t *timedRuntime) EnsureImage(ctx context.Context, ref string, progress func(string)) error {
	return t.time("EnsureImage", "", "", func() error { return t.rt.EnsureImage(ctx, ref, progress) })
}

func (t *timedRuntime) Create(ctx context.Context, spec runtime.ContainerSpec) (c runtime.Container, err error) {
	if t.subnets != nil {
		if err := t.subnets.ensure(ctx, spec.BotID); err != nil {
			return c, err
		}
	}
	err = t.time("Create", spec.BotID, "", func() error { c, err = t.rt.Create(ctx, spec); return err })
	if err == nil {
		t.mu.Lock()
		t.containers[c.ID] = spec.BotID
		t.calls[len(t.calls)-1].container = c.ID
		t.mu.Unlock()
	}
	return c, err
}

func (t *timedRuntime) Start(ctx context.Context, id string) error {
	err := t.time("Start", t.botOf(id), id, func() error { return t.rt.Start(ctx, id) })
	at := time.Now()
	t.mu.Lock()
	f := t.onStart
	t.mu.Unlock()
	if err == nil && f != nil {
		go f(t.botOf(id), id, at)
	}
	return err
}

func (t *timedRuntime) Stop(ctx context.Context, id string, timeout time.Duration) error {
	return t.time("Stop", t.botOf(id), id, func() error { return t.rt.Stop(ctx, id, timeout) })
}

func (t *timedRuntime) Restart(ctx context.Context, id string, timeout time.Duration) error {
	return t.time("Restart", t.botOf(id), id, func() error { return t.rt.Restart(ctx, id, timeout) })
}

func (t *timedRuntime) Remove(ctx context.Context, botID string) error {
	return t.time("Remove", botID, "", func() error { return t.rt.Remove(ctx, botID) })
}

func (t *timedRuntime) Inspect(ctx context.Context, id string) (c runtime.Container, err error) {
	err = t.time("Inspect", t.botOf(id), id, func() error { c, err = t.rt.Inspect(ctx, id); return err })
	return c, err
}

func (t *timedRuntime) Logs(ctx context.Context, id string, follow bool, tail int) (rc io.ReadCloser, err error) {
	err = t.time("Logs", t.botOf(id), id, func() error { rc, err = t.rt.Logs(ctx, id, follow, tail); return err })
	return rc, err
}

func (t *timedRuntime) Events(ctx context.Context, agentID string) (<-chan runtime.Event, <-chan error) {
	return t.rt.Events(ctx, agentID)
}

// subnetPool makes each bot's bridge network, named and labelled as runtime/docker names and
// labels it, in a /24 of 10.213.0.0/16, so that Create finds it and uses it. Docker's default
// address pools hold 31 bridge networks in all, fewer than BenchmarkBots' 50 bots on one
// host: see the README's note on it.
type subnetPool struct {
	agentID string
	mu      sync.Mutex
	next    int
}

func (p *subnetPool) ensure(ctx context.Context, botID string) error {
	name := docker.Name(botID)
	if out, err := exec.CommandContext(ctx, "docker", "network", "inspect", name).CombinedOutput(); err == nil {
		return nil
	} else if !strings.Contains(strings.ToLower(string(out)), "no such network") && !strings.Contains(strings.ToLower(string(out)), "not found") {
		return fmt.Errorf("inspect network %s: %v: %s", name, err, out)
	}
	var last error
	for range 256 {
		p.mu.Lock()
		k := p.next
		p.next = (p.next + 1) % 256
		p.mu.Unlock()
		out, err := exec.CommandContext(ctx, "docker", "network", "create", "--driver", "bridge",
			"--subnet", "10.213."+strconv.Itoa(k)+".0/24",
			"--label", runtime.LabelBot+"="+botID, "--label", runtime.LabelAgent+"="+p.agentID, name).CombinedOutput()
		if err == nil {
			return nil
		}
		last = fmt.Errorf("create network %s: %v: %s", name, err, strings.TrimSpace(string(out)))
		if !strings.Contains(string(out), "overlap") {
			return last
		}
	}
	return last
}

// gatewayWatch probes a started container's /startupz from the benchmark in a tight loop,
// independent of the agent's interval: when the gateway first answered at all, and first
// answered 200.
type gatewayWatch struct {
	eng    *docker.Docker
	client *http.Client

	mu      sync.Mutex
	started map[string]gatewayTimes // bot id →
}

type gatewayTimes struct {
	startReturned, listening, ready time.Time
	err                             error
}

func newGatewayWatch(eng *docker.Docker) *gatewayWatch {
	return &gatewayWatch{
		eng:     eng,
		client:  &http.Client{Timeout: 500 * time.Millisecond, Transport: &http.Transport{DisableKeepAlives: true}},
		started: map[string]gatewayTimes{},
	}
}

// watch is a timedRuntime.onStart.
func (g *gatewayWatch) watch(botID, containerID string, at time.Time) {
	gt := gatewayTimes{startReturned: at}
	defer func() {
		g.mu.Lock()
		g.started[botID] = gt
		g.mu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := g.eng.Inspect(ctx, containerID)
	if err != nil || c.HostPort == 0 {
		gt.err = fmt.Errorf("no port for %s: %v", containerID, err)
		return
	}
	url := "http://127.0.0.1:" + strconv.Itoa(c.HostPort) + "/startupz"
	for ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := g.client.Do(req)
		if err == nil {
			now := time.Now()
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if gt.listening.IsZero() {
				gt.listening = now
			}
			if resp.StatusCode == http.StatusOK {
				gt.ready = now
				return
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	gt.err = errors.New("gateway never passed /startupz")
}

func (g *gatewayWatch) get(botID string) (gatewayTimes, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	gt, ok := g.started[botID]
	return gt, ok
}
