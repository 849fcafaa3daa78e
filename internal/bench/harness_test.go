package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/pocketmolt/pocketmolt/internal/agent"
	"github.com/pocketmolt/pocketmolt/internal/apiclient"
	"github.com/pocketmolt/pocketmolt/internal/ctlconfig"
	"github.com/pocketmolt/pocketmolt/internal/pmd"
)

// The child process: TestAgentsChild runs agents only when these are set.
const (
	envManifest = "PMBENCH_AGENTS" // a file with one enrolled state dir per line
	envServer   = "PMBENCH_SERVER" // pmd's agent address, which changes between pmd runs
	// envFixture names a directory that keeps pmd's data dir and the enrolled hosts between
	// runs, so that repeated runs skip enrollment. Unset, everything is in a temporary dir.
	envFixture = "PMBENCH_FIXTURE"
	// envMode "floor" makes the child hold bare TLS connections instead of running agents
	// (see floor_test.go), heartbeating every envInterval.
	envMode     = "PMBENCH_MODE"
	envInterval = "PMBENCH_INTERVAL"
	readyLine   = "pmbench: starting agents"
	summaryPfx  = "pmbench: "
)

// scenario is one measurement: how many agents and how long each phase lasts.
type scenario struct {
	Agents    int
	Heartbeat time.Duration
	// CPUBeats is the length of the idle CPU window in heartbeat intervals.
	CPUBeats int
	// SeqCalls sequential GET /v1/info, then ConcCalls more from Workers callers at once.
	SeqCalls, ConcCalls, Workers int
	// OnlineTimeout bounds the wait for every agent to come online.
	OnlineTimeout time.Duration
	// ProfileDir, if set, receives CPU profiles of pmd's idle window and of the calls.
	ProfileDir string
}

// result is what one scenario measured.
type result struct {
	Agents int
	// Online is from the child starting its agents to every host having a session and a
	// heartbeat recorded since.
	Online time.Duration
	// RSS and Heap are pmd's growth with all agents online, after a GC: the process's resident
	// set, and live heap objects plus goroutine stacks.
	RSS, Heap  int64
	Goroutines int
	// IdleRSS is the resident set's growth again after the idle window, once the runtime has
	// had time to return the connection storm's garbage to the OS.
	IdleRSS int64
	// HeartbeatCPU is pmd's CPU time (user+system) over the idle window divided by the
	// heartbeats in it; IdleCPU is that CPU time as a share of one core.
	HeartbeatCPU time.Duration
	IdleCPU      float64
	// Seq and Conc are sorted round trips of GET /v1/info; ConcRate is calls/s in the
	// concurrent phase.
	Seq, Conc []time.Duration
	ConcRate  float64
	// CallErrors is how many calls failed; FirstCallError says why the first did.
	CallErrors     int
	FirstCallError string
	// PMDWarnings summarises what pmd logged at warn and above; AgentSummary is the agents'
	// process's last line, with the same for the agents.
	PMDWarnings  string
	AgentSummary string
	// Stable is whether every agent kept its first session through the measurement.
	Stable bool
	// List and Scrape are sorted durations of the operator's views of the whole fleet:
	// GET /v1/hosts on the admin API (mTLS, as pmctl hosts list) and GET /metrics.
	List, Scrape []time.Duration
	// Floor is the same hosts holding bare TLS connections (floor_test.go).
	Floor floorResult
}

// fleetViews is how many times the fleet-wide views are timed.
const fleetViews = 20

// timeFleetViews times GET /v1/hosts through the admin API and a /metrics scrape, each
// fleetViews times, and checks that each saw every host.
func timeFleetViews(ctx context.Context, fx *fixture, d *pmd.Daemon, agents int) (list, scrape []time.Duration, err error) {
	cfg, err := ctlconfig.Load(filepath.Join(fx.dataDir, pmd.CtlConfigFile))
	if err != nil {
		return nil, nil, err
	}
	cc, err := cfg.Current()
	if err != nil {
		return nil, nil, err
	}
	cc.Server = d.AdminAddr
	admin, err := apiclient.New(cc)
	if err != nil {
		return nil, nil, err
	}
	for range fleetViews {
		began := time.Now()
		hs, err := admin.ListHosts(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("list hosts: %w", err)
		}
		list = append(list, time.Since(began))
		if len(hs) < agents {
			return nil, nil, fmt.Errorf("list hosts: %d hosts, want at least %d", len(hs), agents)
		}

		began = time.Now()
		resp, err := http.Get("http://" + d.MetricsAddr + "/metrics")
		if err != nil {
			return nil, nil, fmt.Errorf("scrape: %w", err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			return nil, nil, fmt.Errorf("scrape: %s %v", resp.Status, err)
		}
		scrape = append(scrape, time.Since(began))
		if want := fmt.Sprintf("pocketmolt_tunnel_sessions %d\n", agents); !bytes.Contains(body, []byte(want)) {
			return nil, nil, fmt.Errorf("scrape lacks %q", strings.TrimSpace(want))
		}
	}
	slices.Sort(list)
	slices.Sort(scrape)
	return list, scrape, nil
}

// host is one enrolled host of the fixture.
type host struct{ ID, Dir string }

// fixture is a pmd data dir and the hosts enrolled in it so far, reused by every scenario of
// one benchmark so that only the first enrollment of each host is paid.
type fixture struct {
	dataDir, stateRoot string
	hosts              []host
}

func newFixture(tb testing.TB) *fixture {
	tb.Helper()
	root := os.Getenv(envFixture)
	if root == "" {
		root = tb.TempDir()
	}
	fx := &fixture{dataDir: filepath.Join(root, "pm"), stateRoot: filepath.Join(root, "agents")}
	if ok, _ := pmd.Initialised(fx.dataDir); ok {
		if err := fx.load(); err != nil {
			tb.Fatalf("reuse %s=%s: %v", envFixture, root, err)
		}
		return fx
	}
	if err := pmd.Init(tb.Context(), fx.config(0), io.Discard); err != nil {
		tb.Fatalf("pmd init: %v", err)
	}
	return fx
}

// hostsFile lists the enrolled hosts, one "id dir" a line.
func (fx *fixture) hostsFile() string { return filepath.Join(fx.stateRoot, "hosts") }

func (fx *fixture) load() error {
	b, err := os.ReadFile(fx.hostsFile())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for line := range strings.Lines(string(b)) {
		id, dir, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok {
			return fmt.Errorf("%s: bad line %q", fx.hostsFile(), line)
		}
		fx.hosts = append(fx.hosts, host{ID: id, Dir: dir})
	}
	return nil
}

func (fx *fixture) save() error {
	var b strings.Builder
	for _, h := range fx.hosts {
		fmt.Fprintf(&b, "%s %s\n", h.ID, h.Dir)
	}
	return os.WriteFile(fx.hostsFile(), []byte(b.String()), 0o600)
}

func (fx *fixture) config(heartbeat time.Duration) pmd.Config {
	return pmd.Config{
		DataDir:           fx.dataDir,
		PublicAddr:        "127.0.0.1:0",
		AgentAddr:         "127.0.0.1:0",
		AdminAddr:         "127.0.0.1:0",
		MetricsAddr:       "127.0.0.1:0", // as in production: every request is counted
		HeartbeatInterval: heartbeat,
		LogLevel:          "info",
		// Every simulated host enrolls from loopback, thousands of them at once.
		EnrollRate:           1 << 20,
		EnrollRatePerAddress: 1 << 20,
	}
}

// enroll enrolls hosts until there are n, a few at a time as a fleet rollout would.
func (fx *fixture) enroll(ctx context.Context, d *pmd.Daemon, n int) error {
	have := len(fx.hosts)
	if have >= n {
		return nil
	}
	fresh := make([]host, n-have)
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(2 * runtime.GOMAXPROCS(0))
	for i := range fresh {
		name := fmt.Sprintf("bench-%05d", have+i)
		g.Go(func() error {
			tok, err := d.Fleet.CreateToken(ctx, "bench", name, 0)
			if err != nil {
				return err
			}
			dir := filepath.Join(fx.stateRoot, name)
			st, err := agent.Enroll(ctx, agent.EnrollOptions{Server: d.AgentAddr, Token: tok.Token, StateDir: dir})
			if err != nil {
				return fmt.Errorf("enroll %s: %w", name, err)
			}
			fresh[i] = host{ID: st.Identity.HostID, Dir: dir}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	fx.hosts = append(fx.hosts, fresh...)
	return fx.save()
}

// ensureEnrolled enrolls hosts until the fixture has n. It runs a pmd of its own:
// agent.Enroll leaves its HTTP connection idle, and pmd keeps the other end until its idle
// timeout, so enrollment's connections would still be in a measurement. Stopping this pmd
// closes them.
func (fx *fixture) ensureEnrolled(tb testing.TB, n int) {
	tb.Helper()
	if len(fx.hosts) >= n {
		return
	}
	began := time.Now()
	pm := startPMD(tb, fx.config(0))
	err := fx.enroll(tb.Context(), pm.d, n)
	pm.stop(tb)
	if err != nil {
		tb.Fatalf("enroll: %v", err)
	}
	tb.Logf("%d hosts enrolled (%s)", n, time.Since(began).Round(time.Millisecond))
}

// manifest writes the state dirs of the first n hosts for the child.
func (fx *fixture) manifest(n int) (string, error) {
	var b strings.Builder
	for _, h := range fx.hosts[:n] {
		b.WriteString(h.Dir + "\n")
	}
	p := filepath.Join(fx.stateRoot, "manifest-"+strconv.Itoa(n))
	return p, os.WriteFile(p, []byte(b.String()), 0o600)
}

// runScenario starts pmd, connects sc.Agents agents to it from a child process and measures.
// Everything it started is stopped when it returns.
func runScenario(tb testing.TB, fx *fixture, sc scenario) (res result) {
	tb.Helper()
	ctx := tb.Context()
	fx.ensureEnrolled(tb, sc.Agents)
	pm := startPMD(tb, fx.config(sc.Heartbeat))
	defer pm.stop(tb)
	manifest, err := fx.manifest(sc.Agents)
	if err != nil {
		tb.Fatal(err)
	}
	hosts := fx.hosts[:sc.Agents]
	res.Agents = sc.Agents

	// Enrollment garbage goes back to the OS first, so the baseline is pmd idle.
	base := sampleMemory(true)
	defer func() {
		if tb.Failed() {
			tb.Logf("pmd: %s", pm.warns.summary())
			tb.Logf("agents' process: %s", res.AgentSummary)
		}
	}()
	var childProfile string
	if sc.ProfileDir != "" {
		childProfile = filepath.Join(sc.ProfileDir, fmt.Sprintf("agents-%d.pprof", sc.Agents))
	}
	ch, err := startChild(manifest, pm.d.AgentAddr, childProfile)
	if err != nil {
		tb.Fatalf("start agents: %v", err)
	}
	defer func() { res.AgentSummary = ch.stop() }()
	select {
	case <-ch.ready:
	case <-ch.exited:
		tb.Fatalf("agents' process exited before starting: %s", ch.stderr.String())
	case <-time.After(time.Minute):
		tb.Fatalf("agents' process did not start: %s", ch.stderr.String())
	}
	t0 := time.Now()
	stopProfile := startProfile(tb, sc.ProfileDir, fmt.Sprintf("connect-%d.pprof", sc.Agents))
	err = waitOnline(ctx, pm.d, ch, len(hosts), t0, sc.OnlineTimeout)
	stopProfile()
	if err != nil {
		tb.Fatalf("%v (agents' stderr: %s)", err, tail(ch.stderr.String(), 2000))
	}
	res.Online = time.Since(t0)
	sessions, err := sessionIDs(ctx, pm.d)
	if err != nil {
		tb.Fatal(err)
	}

	up := sampleMemory(false)
	res.RSS = up.rss - base.rss
	res.Heap = up.heap - base.heap
	res.Goroutines = up.goroutines - base.goroutines
	writeHeapProfile(tb, sc.ProfileDir, fmt.Sprintf("heap-%d.pprof", sc.Agents))

	// Idle window: the agents only heartbeat (and yamux keeps alive). Each agent beats once per
	// interval, so a window of k intervals holds k beats per agent.
	stopProfile = startProfile(tb, sc.ProfileDir, fmt.Sprintf("idle-%d.pprof", sc.Agents))
	cpu0, wall0 := cpuTime(), time.Now()
	time.Sleep(time.Duration(sc.CPUBeats) * sc.Heartbeat)
	cpu, wall := cpuTime()-cpu0, time.Since(wall0)
	stopProfile()
	res.HeartbeatCPU = cpu / time.Duration(sc.CPUBeats*sc.Agents)
	res.IdleCPU = cpu.Seconds() / wall.Seconds()
	res.IdleRSS = sampleMemory(false).rss - base.rss
	if got := pm.d.Fleet.Connected(); got != sc.Agents {
		tb.Fatalf("after the idle window %d of %d agents are connected", got, sc.Agents)
	}

	stopProfile = startProfile(tb, sc.ProfileDir, fmt.Sprintf("calls-%d.pprof", sc.Agents))
	var seqErrs, concErrs []error
	res.Seq, seqErrs = callAgents(ctx, pm.d, hosts, sc.SeqCalls, 1)
	if sc.ConcCalls > 0 {
		began := time.Now()
		res.Conc, concErrs = callAgents(ctx, pm.d, hosts, sc.ConcCalls, sc.Workers)
		res.ConcRate = float64(sc.ConcCalls) / time.Since(began).Seconds()
	}
	stopProfile()
	errs := append(seqErrs, concErrs...)
	res.CallErrors = len(errs)
	if len(errs) > 0 {
		res.FirstCallError = errs[0].Error()
	}
	if res.List, res.Scrape, err = timeFleetViews(ctx, fx, pm.d, sc.Agents); err != nil {
		tb.Fatal(err)
	}
	after, err := sessionIDs(ctx, pm.d)
	if err != nil {
		tb.Fatal(err)
	}
	res.Stable = maps.Equal(sessions, after)
	// Taken before the agents stop: heartbeats cut short by that are no finding.
	res.PMDWarnings = pm.warns.summary()
	return res
}

// sessionIDs maps each connected host to its session id, as pmd recorded them.
func sessionIDs(ctx context.Context, d *pmd.Daemon) (map[string]string, error) {
	hs, err := d.Store.ListHosts(ctx)
	if err != nil {
		return nil, fmt.Errorf("list hosts: %w", err)
	}
	m := map[string]string{}
	for _, h := range hs {
		if h.SessionID != "" {
			m[h.ID] = h.SessionID
		}
	}
	return m, nil
}

// writeHeapProfile writes pmd's heap profile to dir/name; with no dir it does nothing.
func writeHeapProfile(tb testing.TB, dir, name string) {
	if dir == "" {
		return
	}
	f, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		tb.Fatal(err)
	}
}

// startProfile writes a CPU profile of this process to dir/name until the returned func is
// called; with no dir it does nothing.
func startProfile(tb testing.TB, dir, name string) (stop func()) {
	if dir == "" {
		return func() {}
	}
	f, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		tb.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		tb.Logf("no profile %s: %v", name, err)
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

// waitOnline waits until n hosts have a session and a heartbeat recorded at or after since.
// It reads the store only once every agent has a session, so that polling does not slow pmd
// while agents connect.
func waitOnline(ctx context.Context, d *pmd.Daemon, ch *child, n int, since time.Time, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	connected, beating := 0, 0
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch.exited:
			return fmt.Errorf("agents' process exited with %d of %d connected", connected, n)
		case <-tick.C:
		}
		if connected = d.Fleet.Connected(); connected >= n {
			hs, err := d.Store.ListHosts(ctx)
			if err != nil {
				return fmt.Errorf("list hosts: %w", err)
			}
			beating = 0
			for _, h := range hs {
				if h.SessionID != "" && h.LastSeenAt != nil && !h.LastSeenAt.Before(since.Truncate(time.Millisecond)) {
					beating++
				}
			}
			if beating >= n {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %s: %d of %d agents connected, %d of them heartbeating", timeout, connected, n, beating)
		}
	}
}

// callAgents makes calls GET /v1/info requests to random hosts from workers callers. It
// returns the sorted round trips of the calls that succeeded and the errors of the others.
func callAgents(ctx context.Context, d *pmd.Daemon, hosts []host, calls, workers int) ([]time.Duration, []error) {
	rtts := make([]time.Duration, calls)
	errs := make([]error, calls)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= calls {
					return
				}
				h := hosts[rand.IntN(len(hosts))]
				began := time.Now()
				if errs[i] = getInfo(ctx, d, h.ID); errs[i] == nil {
					rtts[i] = time.Since(began)
				}
			}
		})
	}
	wg.Wait()
	var ok []time.Duration
	var failed []error
	for i := range calls {
		if errs[i] != nil {
			failed = append(failed, errs[i])
		} else {
			ok = append(ok, rtts[i])
		}
	}
	slices.Sort(ok)
	return ok, failed
}

func getInfo(ctx context.Context, d *pmd.Daemon, hostID string) error {
	hc, err := d.Fleet.Client(hostID)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://agent/v1/info", nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("get info from %s: %w", hostID, err)
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return fmt.Errorf("get info from %s: %w", hostID, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("get info from %s: %s", hostID, resp.Status)
	}
	return nil
}

// runningPMD is pmd serving in this process.
type runningPMD struct {
	d      *pmd.Daemon
	warns  *warnCounter
	cancel context.CancelFunc
	done   chan error
}

// startPMD opens and runs pmd, logging JSON at info level to nowhere: the formatting is paid
// as in production, the bytes are not kept.
func startPMD(tb testing.TB, cfg pmd.Config) *runningPMD {
	tb.Helper()
	warns := &warnCounter{}
	log := slog.New(countingHandler{Handler: slog.NewJSONHandler(io.Discard, nil), c: warns})
	d, err := pmd.Open(tb.Context(), cfg, log)
	if err != nil {
		tb.Fatalf("open pmd: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &runningPMD{d: d, warns: warns, cancel: cancel, done: make(chan error, 1)}
	go func() { p.done <- d.Run(ctx) }()
	return p
}

func (p *runningPMD) stop(tb testing.TB) {
	p.cancel()
	if err := <-p.done; err != nil {
		tb.Errorf("pmd run: %v", err)
	}
}

// child is the process that runs the agents: this test binary re-executed as TestAgentsChild.
type child struct {
	cmd    *exec.Cmd
	stdin  io.Closer
	stderr *syncBuffer
	ready  chan struct{} // closed when the agents are about to start
	exited chan struct{} // closed when the process has ended
	flood  chan string   // the flooder's tally, once it has flooded (flood_test.go)
	mu     sync.Mutex
	last   string // the child's last summary line
}

// startChild starts the agents' process; with a profile path it writes a CPU profile of its
// whole run there. env adds variables (envMode, envInterval) to its environment.
func startChild(manifest, server, profile string, env ...string) (*child, error) {
	args := []string{"-test.run=^TestAgentsChild$", "-test.bench=^$", "-test.count=1", "-test.timeout=0"}
	if profile != "" {
		args = append(args, "-test.cpuprofile="+profile)
	}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(append(os.Environ(), envManifest+"="+manifest, envServer+"="+server), env...)
	ch := &child{cmd: cmd, stderr: &syncBuffer{}, ready: make(chan struct{}), exited: make(chan struct{}), flood: make(chan string, 1)}
	cmd.Stderr = ch.stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	ch.stdin = stdin
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == readyLine:
				close(ch.ready)
			case strings.HasPrefix(line, floodPfx):
				ch.flood <- strings.TrimPrefix(line, floodPfx)
			case strings.HasPrefix(line, summaryPfx):
				ch.mu.Lock()
				ch.last = strings.TrimPrefix(line, summaryPfx)
				ch.mu.Unlock()
			}
		}
		cmd.Wait()
		close(ch.exited)
	}()
	return ch, nil
}

// stop asks the child to stop its agents (by closing its stdin), kills it if it does not
// within a minute, and returns its summary line.
func (ch *child) stop() string {
	ch.stdin.Close()
	select {
	case <-ch.exited:
	case <-time.After(time.Minute):
		ch.cmd.Process.Kill()
		<-ch.exited
	}
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.last
}

// runAgentsFromEnv is TestAgentsChild's work: run the agents in the manifest until stdin
// closes, then print how many warnings they logged.
func runAgentsFromEnv(manifest, server string) error {
	b, err := os.ReadFile(manifest)
	if err != nil {
		return err
	}
	warns := &warnCounter{}
	log := slog.New(countingHandler{Handler: slog.NewJSONHandler(io.Discard, nil), c: warns})
	var agents []*agent.Agent
	for _, dir := range strings.Fields(string(b)) {
		st, err := agent.LoadState(dir)
		if err != nil {
			return err
		}
		// The host was enrolled with an earlier pmd run's port.
		st.Identity.Server = server
		agents = append(agents, agent.New(st, idleEngine{}, "bench", log))
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	fmt.Println(readyLine)
	for _, a := range agents {
		wg.Go(func() { a.Run(ctx) })
	}
	if dir := os.Getenv(envFlood); dir != "" {
		wg.Go(func() { floodOnSignal(ctx, dir, server) })
	}
	io.Copy(io.Discard, os.Stdin)
	cancel()
	wg.Wait()
	fmt.Printf("%s%d agents; %s\n", summaryPfx, len(agents), warns.summary())
	return nil
}

// memSample is this process's memory at one moment.
type memSample struct {
	rss, heap  int64
	goroutines int
}

// sampleMemory collects garbage and reads the resident set, live heap and stacks. With release
// it first returns free memory to the OS, for a baseline.
func sampleMemory(release bool) memSample {
	runtime.GC()
	if release {
		debug.FreeOSMemory()
	}
	ms := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/heap/stacks:bytes"}}
	metrics.Read(ms)
	var heap int64
	for _, m := range ms {
		if m.Value.Kind() == metrics.KindUint64 {
			heap += int64(m.Value.Uint64())
		}
	}
	return memSample{rss: rss(), heap: heap, goroutines: runtime.NumGoroutine()}
}

// rss is the resident set size from /proc/self/status, or 0 where there is none.
func rss() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// cpuTime is the user and system CPU this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// percentile is the q-quantile (0..1) of sorted durations, nearest rank.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// warnCounter counts log records at warn and above by message and keeps an example of each.
type warnCounter struct {
	mu      sync.Mutex
	count   map[string]int
	example map[string]string
}

func (c *warnCounter) add(r slog.Record) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.count == nil {
		c.count, c.example = map[string]int{}, map[string]string{}
	}
	// net/http's messages carry the peer's address; one line per peer says nothing. An
	// error attribute's gist (up to its first colon) tells failures apart.
	msg := addrRE.ReplaceAllString(r.Message, "ADDR")
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "error" {
			gist, _, _ := strings.Cut(a.Value.String(), ": ")
			msg += " (" + addrRE.ReplaceAllString(gist, "ADDR") + ")"
			return false
		}
		return true
	})
	c.count[msg]++
	if c.count[msg] == 1 {
		var b strings.Builder
		r.Attrs(func(a slog.Attr) bool { fmt.Fprintf(&b, " %s=%v", a.Key, a.Value); return true })
		c.example[msg] = b.String()
	}
}

var addrRE = regexp.MustCompile(`\b\d+\.\d+\.\d+\.\d+:\d+\b`)

// summary is one line: each message with its count and first example, most frequent first.
func (c *warnCounter) summary() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.count) == 0 {
		return "no warnings"
	}
	msgs := slices.SortedFunc(maps.Keys(c.count), func(a, b string) int { return c.count[b] - c.count[a] })
	var parts []string
	if len(msgs) > 6 {
		msgs = msgs[:6]
	}
	for _, m := range msgs {
		parts = append(parts, fmt.Sprintf("%d× %q (e.g.%s)", c.count[m], m, tail(c.example[m], 300)))
	}
	return "warnings: " + strings.Join(parts, "; ")
}

// countingHandler passes records on and counts warnings into c.
type countingHandler struct {
	slog.Handler
	c *warnCounter
}

func (h countingHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		h.c.add(r)
	}
	return h.Handler.Handle(ctx, r)
}

func (h countingHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return countingHandler{Handler: h.Handler.WithAttrs(as), c: h.c}
}

func (h countingHandler) WithGroup(name string) slog.Handler {
	return countingHandler{Handler: h.Handler.WithGroup(name), c: h.c}
}

// syncBuffer is a buffer a process can write while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
