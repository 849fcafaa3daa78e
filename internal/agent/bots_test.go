package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
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

	"github.com/pocketmolt/pocketmolt/internal/runtime"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

const testAgent = "host-1"

type botsFixture struct {
	m     *Bots
	rt    *fakeRuntime
	clock *fakeClock
	dir   string // the agent's state dir
}

func newBotsFixture(t *testing.T) *botsFixture {
	t.Helper()
	clock := &fakeClock{t: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}
	rt := newFakeRuntime(t, clock.Now)
	dir := t.TempDir()
	m := NewBots(rt, dir, testAgent, slog.New(slog.NewTextHandler(t.Output(), nil)))
	m.now = clock.Now
	f := &botsFixture{m: m, rt: rt, clock: clock, dir: dir}
	rt.userOf = func(id string) string { return f.owner(t, id).user() }
	return f
}

// owner is the uid:gid bot id runs as, allocated now if it has none yet.
func (f *botsFixture) owner(t *testing.T, id string) owner {
	t.Helper()
	root, bot, err := f.m.openBot(id)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	defer bot.Close()
	o, err := f.m.uids.owner(root, bot, id)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func testSpec(id string, version int64, running bool) wire.BotSpec {
	return wire.BotSpec{
		ID: id, Name: id, Version: version, Image: "ghcr.io/openclaw/openclaw:2025.6", Running: running,
		Config:    json.RawMessage(`{"gateway":{"mode":"local"},"agents":{"defaults":{"model":"m"}}}`),
		Env:       map[string]string{"OPENAI_API_KEY": "sk-" + id, "TZ": "UTC"},
		Resources: wire.Resources{MemoryBytes: 1 << 30, CPUs: 1.5, PIDs: 512},
	}
}

func (f *botsFixture) want(specs ...wire.BotSpec) {
	f.m.SetDesired(wire.DesiredBots{Bots: specs})
}

// state returns a bot's reported state, failing the test when it is not reported.
func (f *botsFixture) state(t *testing.T, id string) wire.BotState {
	t.Helper()
	states, _ := f.m.Snapshot()
	for _, s := range states {
		if s.ID == id {
			return s
		}
	}
	t.Fatalf("bot %s not in snapshot %+v", id, states)
	return wire.BotState{}
}

func (f *botsFixture) ids() []string {
	states, _ := f.m.Snapshot()
	var out []string
	for _, s := range states {
		out = append(out, s.ID)
	}
	return out
}

func assertStatus(t *testing.T, s wire.BotState, status, health string) {
	t.Helper()
	if s.Status != status || s.Health != health {
		t.Fatalf("bot %s: status %q health %q, want %q %q (last error %q)", s.ID, s.Status, s.Health, status, health, s.LastError)
	}
}

func assertCalls(t *testing.T, rt *fakeRuntime, want ...string) {
	t.Helper()
	if got := rt.actions(); !slices.Equal(got, want) {
		t.Fatalf("runtime calls %q, want %q", got, want)
	}
}

func TestBotsNoDesiredSetChangesNothing(t *testing.T) {
	f := newBotsFixture(t)
	f.rt.add(testAgent, "alpha", 3, "running")
	f.rt.add(testAgent, "beta", 1, "exited")
	f.rt.add("other-host", "gamma", 1, "running")

	if _, observed := f.m.Snapshot(); observed {
		t.Fatal("snapshot says observed before the engine was read")
	}
	f.m.step(t.Context())

	assertCalls(t, f.rt)
	if got, want := f.ids(), []string{"alpha", "beta"}; !slices.Equal(got, want) {
		t.Fatalf("reported bots %v, want %v", got, want)
	}
	alpha := f.state(t, "alpha")
	assertStatus(t, alpha, wire.BotRunning, wire.HealthHealthy)
	c, _ := f.rt.container("alpha")
	if alpha.ContainerID != c.ID || alpha.HostPort != c.HostPort || alpha.StartedAt == nil {
		t.Fatalf("alpha reported as %+v, container %+v", alpha, c)
	}
	assertStatus(t, f.state(t, "beta"), wire.BotStopped, "")
	if _, observed := f.m.Snapshot(); !observed {
		t.Fatal("snapshot not observed after a successful step")
	}
}

func TestBotsCreate(t *testing.T) {
	f := newBotsFixture(t)
	spec := testSpec("alpha", 7, true)
	spec.StopTimeout = wire.Duration(12 * time.Second)
	f.want(spec)
	f.m.step(t.Context())

	assertCalls(t, f.rt, "EnsureImage "+spec.Image, "Create alpha", "Start alpha")
	specs := f.rt.specs()
	if len(specs) != 1 {
		t.Fatalf("created %d containers, want 1", len(specs))
	}
	cs := specs[0]
	root := filepath.Join(f.dir, "bots", "alpha")
	o := f.owner(t, "alpha")
	if os.Getuid() == 0 && (o.uid != DefaultBotUIDBase || o.gid != o.uid) {
		t.Errorf("first bot's owner = %+v, want %d, the first uid of the range", o, DefaultBotUIDBase)
	}
	want := runtime.ContainerSpec{
		BotID: "alpha", Agent: testAgent, SpecVersion: 7, Image: spec.Image, Env: spec.Env,
		ConfigDir: filepath.Join(root, "config"), StateDir: filepath.Join(root, "state"), WorkspaceDir: filepath.Join(root, "workspace"),
		MemoryBytes: 1 << 30, NanoCPUs: 1_500_000_000, PIDs: 512,
		User: fmt.Sprintf("%d:%d", o.uid, o.gid), StopTimeout: 12 * time.Second,
	}
	if fmt.Sprint(cs) != fmt.Sprint(want) {
		t.Fatalf("container spec\n got %+v\nwant %+v", cs, want)
	}
	if strings.HasPrefix(cs.User, "0:") {
		t.Fatalf("gateway runs as root: %s", cs.User)
	}

	agentUID := os.Getuid()
	for _, tc := range []struct {
		path     string
		uid, gid int
		mode     os.FileMode
	}{
		{root, agentUID, os.Getgid(), 0o700 | os.ModeDir},
		{cs.StateDir, o.uid, o.gid, 0o700 | os.ModeDir},
		{cs.WorkspaceDir, o.uid, o.gid, 0o700 | os.ModeDir},
		{cs.ConfigDir, agentUID, o.gid, 0o750 | os.ModeDir},
		{filepath.Join(cs.ConfigDir, "openclaw.json"), agentUID, o.gid, 0o640},
	} {
		fi, err := os.Lstat(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode() != tc.mode || int(st.Uid) != tc.uid || int(st.Gid) != tc.gid {
			t.Errorf("%s: %v %d:%d, want %v %d:%d", tc.path, fi.Mode(), st.Uid, st.Gid, tc.mode, tc.uid, tc.gid)
		}
	}
	cfg := filepath.Join(cs.ConfigDir, "openclaw.json")
	if b, _ := os.ReadFile(cfg); string(b) != string(spec.Config) {
		t.Errorf("openclaw.json holds %s, want %s", b, spec.Config)
	}

	st := f.state(t, "alpha")
	assertStatus(t, st, wire.BotRunning, wire.HealthHealthy)
	c, _ := f.rt.container("alpha")
	if st.ContainerID != c.ID || st.Version != 7 || st.HostPort != c.HostPort || st.LastError != "" || st.Progress != "" {
		t.Fatalf("state %+v, container %+v", st, c)
	}

	// A changed config is rewritten in place, without recreating the container.
	f.rt.reset()
	spec.Config = json.RawMessage(`{"changed":true}`)
	f.want(spec)
	f.m.step(t.Context())
	assertCalls(t, f.rt)
	if b, _ := os.ReadFile(cfg); string(b) != `{"changed":true}` {
		t.Errorf("openclaw.json holds %s after a config change", b)
	}
}

func TestBotsProbes(t *testing.T) {
	tests := []struct {
		name           string
		probes         probeCodes
		status, health string
	}{
		{"startupz failing", probeCodes{503, 503, 503}, wire.BotStarting, ""},
		{"all passing", allOK, wire.BotRunning, wire.HealthHealthy},
		{"readyz failing", probeCodes{200, 200, 503}, wire.BotRunning, wire.HealthDegraded},
		{"healthz failing", probeCodes{200, 500, 200}, wire.BotRunning, wire.HealthUnhealthy},
		{"healthz and readyz failing", probeCodes{200, 500, 503}, wire.BotRunning, wire.HealthUnhealthy},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newBotsFixture(t)
			f.rt.probes = tt.probes
			f.want(testSpec("alpha", 1, true))
			f.m.step(t.Context())
			assertStatus(t, f.state(t, "alpha"), tt.status, tt.health)
		})
	}

	t.Run("starting until startupz passes", func(t *testing.T) {
		f := newBotsFixture(t)
		f.rt.probes = probeCodes{503, 200, 200}
		f.want(testSpec("alpha", 1, true))
		f.m.step(t.Context())
		assertStatus(t, f.state(t, "alpha"), wire.BotStarting, "")
		f.m.step(t.Context())
		assertStatus(t, f.state(t, "alpha"), wire.BotStarting, "")

		f.rt.gateway("alpha").set("/startupz", 200)
		f.rt.reset()
		f.m.step(t.Context())
		assertStatus(t, f.state(t, "alpha"), wire.BotRunning, wire.HealthHealthy)
		assertCalls(t, f.rt) // waiting for the gateway is not a reason to touch the container

		f.rt.gateway("alpha").set("/readyz", 503)
		f.m.step(t.Context())
		assertStatus(t, f.state(t, "alpha"), wire.BotRunning, wire.HealthDegraded)
		f.rt.gateway("alpha").set("/healthz", 500)
		f.m.step(t.Context())
		assertStatus(t, f.state(t, "alpha"), wire.BotRunning, wire.HealthUnhealthy)
	})
}

func TestBotsConvergeIsIdempotent(t *testing.T) {
	f := newBotsFixture(t)
	f.rt.add(testAgent, "gamma", 2, "exited")
	f.want(testSpec("alpha", 1, true), testSpec("beta", 4, false), testSpec("gamma", 2, false))
	f.m.step(t.Context())
	assertCalls(t, f.rt, "EnsureImage ghcr.io/openclaw/openclaw:2025.6", "Create alpha", "Start alpha")
	before, _ := f.m.Snapshot()

	for range 2 {
		f.rt.reset()
		f.m.step(t.Context())
		assertCalls(t, f.rt)
	}
	after, _ := f.m.Snapshot()
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Fatalf("states changed with nothing changed:\n%+v\n%+v", before, after)
	}
	assertStatus(t, f.state(t, "alpha"), wire.BotRunning, wire.HealthHealthy)
	assertStatus(t, f.state(t, "beta"), wire.BotStopped, "")
	assertStatus(t, f.state(t, "gamma"), wire.BotStopped, "")
}

func TestBotsSpecVersion(t *testing.T) {
	tests := []struct {
		name      string
		container int64 // the version the container is labelled with
		desired   int64
		calls     []string
	}{
		{"same version keeps the container", 3, 3, nil},
		{"newer version recreates", 3, 4, []string{"Remove alpha", "EnsureImage ghcr.io/openclaw/openclaw:2025.6", "Create alpha", "Start alpha"}},
		{"older version recreates", 5, 4, []string{"Remove alpha", "EnsureImage ghcr.io/openclaw/openclaw:2025.6", "Create alpha", "Start alpha"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newBotsFixture(t)
			old := f.rt.add(testAgent, "alpha", tt.container, "running")
			f.want(testSpec("alpha", tt.desired, true))
			f.m.step(t.Context())
			assertCalls(t, f.rt, tt.calls...)
			c, _ := f.rt.container("alpha")
			if c.SpecVersion != tt.desired {
				t.Fatalf("container labelled %d, want %d", c.SpecVersion, tt.desired)
			}
			if recreated := c.ID != old.ID; recreated != (tt.calls != nil) {
				t.Fatalf("container %s, was %s", c.ID, old.ID)
			}
			st := f.state(t, "alpha")
			assertStatus(t, st, wire.BotRunning, wire.HealthHealthy)
			if st.Version != tt.desired || st.ContainerID != c.ID {
				t.Fatalf("state %+v, container %s", st, c.ID)
			}
		})
	}

	t.Run("label changed behind the agent's back", func(t *testing.T) {
		f := newBotsFixture(t)
		f.want(testSpec("alpha", 2, true))
		f.m.step(t.Context())
		f.rt.relabel("alpha", 1)
		f.rt.reset()
		f.m.step(t.Context())
		assertCalls(t, f.rt, "Remove alpha", "EnsureImage ghcr.io/openclaw/openclaw:2025.6", "Create alpha", "Start alpha")
	})

	t.Run("recreating a stopped bot only removes", func(t *testing.T) {
		f := newBotsFixture(t)
		f.rt.add(testAgent, "alpha", 1, "exited")
		f.want(testSpec("alpha", 2, false))
		f.m.step(t.Context())
		assertCalls(t, f.rt, "Remove alpha")
		st := f.state(t, "alpha")
		assertStatus(t, st, wire.BotStopped, "")
		if st.ContainerID != "" {
			t.Fatalf("stopped bot without a container reports container %s", st.ContainerID)
		}
	})
}

func TestBotsDesiredState(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(f *botsFixture) // the engine before the step
		running bool
		calls   []string
		status  string
		health  string
		same    bool // the container is the one setup made
	}{
		{
			name:    "stopped with a running container stops it",
			setup:   func(f *botsFixture) { f.rt.add(testAgent, "alpha", 1, "running") },
			running: false, calls: []string{"Stop alpha"}, status: wire.BotStopped, same: true,
		},
		{
			name:    "running with an exited container starts it",
			setup:   func(f *botsFixture) { f.rt.add(testAgent, "alpha", 1, "exited") },
			running: true, calls: []string{"Start alpha"}, status: wire.BotRunning, health: wire.HealthHealthy, same: true,
		},
		{
			name:    "running with a created container starts it",
			setup:   func(f *botsFixture) { f.rt.add(testAgent, "alpha", 1, "created") },
			running: true, calls: []string{"Start alpha"}, status: wire.BotRunning, health: wire.HealthHealthy, same: true,
		},
		{
			name:    "stopped with an exited container does nothing",
			setup:   func(f *botsFixture) { f.rt.add(testAgent, "alpha", 1, "exited") },
			running: false, status: wire.BotStopped, same: true,
		},
		{
			name:    "stopped without a container creates nothing",
			setup:   func(f *botsFixture) {},
			running: false, status: wire.BotStopped,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newBotsFixture(t)
			tt.setup(f)
			before, existed := f.rt.container("alpha")
			f.want(testSpec("alpha", 1, tt.running))
			f.m.step(t.Context())
			assertCalls(t, f.rt, tt.calls...)
			st := f.state(t, "alpha")
			assertStatus(t, st, tt.status, tt.health)
			after, exists := f.rt.container("alpha")
			if tt.same && (!existed || !exists || after.ID != before.ID) {
				t.Fatalf("container %+v, was %+v", after, before)
			}
			if exists && st.ContainerID != after.ID {
				t.Fatalf("state reports container %q, engine has %q", st.ContainerID, after.ID)
			}
		})
	}

	t.Run("stop uses the spec's stop timeout", func(t *testing.T) {
		f := newBotsFixture(t)
		f.rt.add(testAgent, "alpha", 1, "running")
		spec := testSpec("alpha", 1, false)
		spec.StopTimeout = wire.Duration(7 * time.Second)
		f.want(spec)
		f.m.step(t.Context())
		if !slices.Equal(f.rt.stops, []time.Duration{7 * time.Second}) {
			t.Fatalf("stop timeouts %v", f.rt.stops)
		}
	})

	t.Run("a container that exits is started again", func(t *testing.T) {
		f := newBotsFixture(t)
		f.want(testSpec("alpha", 1, true))
		f.m.step(t.Context())
		f.rt.exit("alpha", 1)
		f.rt.reset()
		f.m.step(t.Context())
		assertCalls(t, f.rt, "Start alpha")
		assertStatus(t, f.state(t, "alpha"), wire.BotRunning, wire.HealthHealthy)
	})

	t.Run("a container removed behind the agent's back is recreated", func(t *testing.T) {
		f := newBotsFixture(t)
		f.want(testSpec("alpha", 1, true))
		f.m.step(t.Context())
		old, _ := f.rt.container("alpha")
		f.rt.vanish("alpha")
		f.rt.reset()
		f.m.step(t.Context())
		assertCalls(t, f.rt, "EnsureImage ghcr.io/openclaw/openclaw:2025.6", "Create alpha", "Start alpha")
		st := f.state(t, "alpha")
		assertStatus(t, st, wire.BotRunning, wire.HealthHealthy)
		if st.ContainerID == old.ID {
			t.Fatalf("state still reports the vanished container %s", old.ID)
		}
	})

	t.Run("a stop that fails is reported", func(t *testing.T) {
		f := newBotsFixture(t)
		f.rt.add(testAgent, "alpha", 1, "running")
		f.rt.failOn("Stop", errors.New("engine said no"))
		f.want(testSpec("alpha", 1, false))
		f.m.step(t.Context())
		st := f.state(t, "alpha")
		assertStatus(t, st, wire.BotFailed, "")
		if st.LastError != "engine said no" {
			t.Fatalf("last error %q", st.LastError)
		}
	})
}

// TestBotsMemoryOnlyWhileRunning: a running bot reports its memory use; once it stops, or its
// engine goes away, the last reading is not shown as if current.
func TestBotsMemoryOnlyWhileRunning(t *testing.T) {
	f := newBotsFixture(t)
	f.want(testSpec("alpha", 1, true))
	f.m.step(t.Context())
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); f.m.memory(ctx) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(10 * time.Second)
	for f.state(t, "alpha").MemoryUsage != 300<<20 {
		if time.Now().After(deadline) {
			t.Fatalf("memory never read: %+v", f.state(t, "alpha"))
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done

	f.want(testSpec("alpha", 1, false))
	f.m.step(t.Context())
	if st := f.state(t, "alpha"); st.Status != wire.BotStopped || st.MemoryUsage != 0 {
		t.Fatalf("stopped bot: status %s, memory %d; want stopped and no reading", st.Status, st.MemoryUsage)
	}
}

func TestBotsRemoveUnwanted(t *testing.T) {
	tests := []struct {
		name      string
		purge     []string
		workspace bool // alpha's files survive
	}{
		{"without purge the workspace is kept", nil, true},
		{"purge removes the workspace", []string{"alpha"}, false},
		{"purge of another bot keeps it", []string{"zeta"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newBotsFixture(t)
			f.want(testSpec("alpha", 1, true), testSpec("beta", 1, true))
			f.m.step(t.Context())
			note := filepath.Join(f.dir, "bots", "alpha", "workspace", "MEMORY.md")
			if err := os.WriteFile(note, []byte("remember"), 0o600); err != nil {
				t.Fatal(err)
			}

			f.rt.reset()
			f.m.SetDesired(wire.DesiredBots{Bots: []wire.BotSpec{testSpec("beta", 1, true)}, Purge: tt.purge})
			f.m.step(t.Context())
			assertCalls(t, f.rt, "Remove alpha")
			if _, ok := f.rt.container("alpha"); ok {
				t.Fatal("alpha's container still exists")
			}
			if got := f.ids(); !slices.Equal(got, []string{"beta"}) {
				t.Fatalf("reported bots %v, want [beta]", got)
			}
			_, err := os.Stat(note)
			if kept := err == nil; kept != tt.workspace {
				t.Fatalf("alpha's workspace kept %v, want %v (%v)", kept, tt.workspace, err)
			}
			if _, err := os.Stat(filepath.Join(f.dir, "bots", "beta", "config", "openclaw.json")); err != nil {
				t.Fatalf("beta's files: %v", err)
			}
		})
	}

	t.Run("purge never leaves the bots directory or touches a wanted bot", func(t *testing.T) {
		f := newBotsFixture(t)
		f.want(testSpec("alpha", 1, true))
		f.m.step(t.Context())
		outside := filepath.Join(f.dir, "keep")
		if err := os.Mkdir(outside, 0o700); err != nil {
			t.Fatal(err)
		}
		f.m.SetDesired(wire.DesiredBots{Bots: []wire.BotSpec{testSpec("alpha", 1, true)}, Purge: []string{"alpha", "../keep", "..", ""}})
		f.m.step(t.Context())
		for _, p := range []string{outside, filepath.Join(f.dir, "bots", "alpha", "workspace")} {
			if _, err := os.Stat(p); err != nil {
				t.Errorf("purge removed %s: %v", p, err)
			}
		}
	})

	t.Run("an empty set removes everything", func(t *testing.T) {
		f := newBotsFixture(t)
		f.rt.add(testAgent, "alpha", 1, "running")
		f.rt.add(testAgent, "beta", 1, "exited")
		f.m.step(t.Context()) // no set yet: reported, kept
		f.m.SetDesired(wire.DesiredBots{})
		f.m.step(t.Context())
		got := f.rt.actions()
		slices.Sort(got) // removals come in no particular order
		if want := []string{"Remove alpha", "Remove beta"}; !slices.Equal(got, want) {
			t.Fatalf("runtime calls %q, want %q", got, want)
		}
		if got := f.ids(); len(got) != 0 {
			t.Fatalf("reported bots %v", got)
		}
	})
}

func TestBotsImageUnavailable(t *testing.T) {
	f := newBotsFixture(t)
	f.rt.failOn("EnsureImage", runtime.ErrImageUnavailable)
	f.want(testSpec("alpha", 1, true))
	f.m.step(t.Context())

	assertCalls(t, f.rt, "EnsureImage ghcr.io/openclaw/openclaw:2025.6")
	st := f.state(t, "alpha")
	assertStatus(t, st, wire.BotFailed, "")
	if !strings.Contains(st.LastError, runtime.ErrImageUnavailable.Error()) {
		t.Fatalf("last error %q", st.LastError)
	}

	// No pull again before pullRetry has passed, even with the engine healed.
	f.rt.failOn("EnsureImage", nil)
	f.rt.reset()
	f.clock.Advance(pullRetry - time.Second)
	f.m.step(t.Context())
	assertCalls(t, f.rt)
	assertStatus(t, f.state(t, "alpha"), wire.BotFailed, "")

	f.clock.Advance(2 * time.Second)
	f.m.step(t.Context())
	assertCalls(t, f.rt, "EnsureImage ghcr.io/openclaw/openclaw:2025.6", "Create alpha", "Start alpha")
	st = f.state(t, "alpha")
	assertStatus(t, st, wire.BotRunning, wire.HealthHealthy)
	if st.LastError != "" {
		t.Fatalf("last error %q after recovering", st.LastError)
	}
}

func TestBotsCreateOrStartFails(t *testing.T) {
	tests := []struct {
		op    string
		retry []string // the calls of the step after the failure
	}{
		{"Create", []string{"EnsureImage ghcr.io/openclaw/openclaw:2025.6", "Create alpha", "Start alpha"}},
		{"Start", []string{"Start alpha"}}, // the container exists: only started
	}
	for _, tt := range tests {
		t.Run(tt.op, func(t *testing.T) {
			f := newBotsFixture(t)
			f.rt.failOn(tt.op, errors.New("no space left on device"))
			f.want(testSpec("alpha", 1, true))
			f.m.step(t.Context())
			st := f.state(t, "alpha")
			assertStatus(t, st, wire.BotFailed, "")
			if st.LastError != "no space left on device" {
				t.Fatalf("last error %q", st.LastError)
			}

			f.rt.failOn(tt.op, nil)
			f.rt.reset()
			f.m.step(t.Context())
			assertCalls(t, f.rt, tt.retry...)
			st = f.state(t, "alpha")
			assertStatus(t, st, wire.BotRunning, wire.HealthHealthy)
			if st.LastError != "" {
				t.Fatalf("last error %q after recovering", st.LastError)
			}
		})
	}
}

func TestBotsEngineDown(t *testing.T) {
	tests := []struct {
		name           string
		startupz       int // alpha's gateway when the engine comes back
		status, health string
	}{
		{"gateway up", 200, wire.BotRunning, wire.HealthHealthy},
		{"gateway still starting", 503, wire.BotStarting, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newBotsFixture(t)
			f.want(testSpec("alpha", 1, true), testSpec("beta", 1, false), testSpec("gone", 1, true))
			f.m.step(t.Context())
			assertStatus(t, f.state(t, "alpha"), wire.BotRunning, wire.HealthHealthy)
			events := collectEvents(f.m)

			f.rt.failOn("List", errors.New("dial unix /var/run/docker.sock: connection refused"))
			f.rt.reset()
			f.want(testSpec("alpha", 1, true), testSpec("beta", 1, false)) // gone is not removed while blind
			f.m.step(t.Context())
			f.m.step(t.Context())
			assertCalls(t, f.rt)
			states, observed := f.m.Snapshot()
			if observed {
				t.Fatal("snapshot says observed while the engine is down")
			}
			if len(states) != 3 {
				t.Fatalf("states %+v", states)
			}
			for _, s := range states {
				assertStatus(t, s, wire.BotUnknown, "")
				if !strings.Contains(s.LastError, "connection refused") {
					t.Fatalf("bot %s: last error %q", s.ID, s.LastError)
				}
			}
			ev := nextEvents(t, events)
			if len(ev.Bots) != 3 || ev.Bots[0].Status != wire.BotUnknown {
				t.Fatalf("engine down reported as %+v", ev)
			}

			f.rt.failOn("List", nil)
			f.rt.gateway("alpha").set("/startupz", tt.startupz)
			f.want(testSpec("alpha", 1, true), testSpec("beta", 1, false))
			f.m.step(t.Context())
			assertCalls(t, f.rt, "Remove gone")
			st := f.state(t, "alpha")
			assertStatus(t, st, tt.status, tt.health)
			if st.LastError != "" {
				t.Fatalf("alpha: stale last error %q after the engine came back", st.LastError)
			}
			st = f.state(t, "beta")
			assertStatus(t, st, wire.BotStopped, "")
			if st.LastError != "" {
				t.Fatalf("beta: stale last error %q after the engine came back", st.LastError)
			}
			if _, observed := f.m.Snapshot(); !observed {
				t.Fatal("snapshot not observed after the engine came back")
			}
		})
	}

	t.Run("no set yet", func(t *testing.T) {
		f := newBotsFixture(t)
		f.rt.add(testAgent, "alpha", 1, "exited")
		f.m.step(t.Context())
		f.rt.failOn("List", errors.New("engine down"))
		f.m.step(t.Context())
		assertStatus(t, f.state(t, "alpha"), wire.BotUnknown, "")
		f.rt.failOn("List", nil)
		f.m.step(t.Context())
		assertCalls(t, f.rt)
		st := f.state(t, "alpha")
		assertStatus(t, st, wire.BotStopped, "")
		if st.LastError != "" {
			t.Fatalf("stale last error %q after the engine came back", st.LastError)
		}
	})

	t.Run("down from the start", func(t *testing.T) {
		f := newBotsFixture(t)
		f.rt.failOn("List", errors.New("engine down"))
		f.want(testSpec("alpha", 1, true))
		f.m.step(t.Context())
		assertCalls(t, f.rt)
		if states, observed := f.m.Snapshot(); observed || len(states) != 0 {
			t.Fatalf("states %+v observed %v", states, observed)
		}
	})
}

func TestBotsStartTimeout(t *testing.T) {
	f := newBotsFixture(t)
	f.rt.probes = probeCodes{503, 503, 503}
	f.rt.setLogs("booting\nloading plugins\nerror: invalid config key \"agents.x\"\n")
	spec := testSpec("alpha", 1, true)
	spec.StartTimeout = wire.Duration(30 * time.Second)
	f.want(spec)
	f.m.step(t.Context())
	assertStatus(t, f.state(t, "alpha"), wire.BotStarting, "")

	f.clock.Advance(30 * time.Second) // not more than the timeout yet
	f.m.step(t.Context())
	assertStatus(t, f.state(t, "alpha"), wire.BotStarting, "")
	if n := f.rt.count("Logs"); n != 0 {
		t.Fatalf("logs read %d times before the timeout", n)
	}

	f.clock.Advance(time.Second)
	f.m.step(t.Context())
	st := f.state(t, "alpha")
	assertStatus(t, st, wire.BotFailed, "")
	for _, want := range []string{"/startupz", "30s", "last log lines", `error: invalid config key "agents.x"`} {
		if !strings.Contains(st.LastError, want) {
			t.Errorf("last error %q lacks %q", st.LastError, want)
		}
	}
	c, _ := f.rt.container("alpha")
	if got := f.rt.logCalls; len(got) != 1 || got[0] != (logCall{ContainerID: c.ID, Tail: 20}) {
		t.Fatalf("logs calls %+v", got)
	}
	assertCalls(t, f.rt, "EnsureImage ghcr.io/openclaw/openclaw:2025.6", "Create alpha", "Start alpha")

	// Still failing: the logs already read are kept, not read again.
	f.clock.Advance(time.Minute)
	f.m.step(t.Context())
	if n := f.rt.count("Logs"); n != 1 {
		t.Fatalf("logs read %d times, want 1", n)
	}
	if got := f.state(t, "alpha").LastError; got != st.LastError {
		t.Fatalf("last error changed to %q", got)
	}

	// The gateway comes up late after all.
	f.rt.gateway("alpha").set("/startupz", 200)
	f.rt.gateway("alpha").set("/healthz", 200)
	f.rt.gateway("alpha").set("/readyz", 200)
	f.m.step(t.Context())
	st = f.state(t, "alpha")
	assertStatus(t, st, wire.BotRunning, wire.HealthHealthy)
	if st.LastError != "" {
		t.Fatalf("last error %q", st.LastError)
	}
}

func TestBotsStartTimeoutLogsUnavailable(t *testing.T) {
	f := newBotsFixture(t)
	f.rt.probes = probeCodes{503, 503, 503}
	f.rt.failOn("Logs", errors.New("logs are off"))
	spec := testSpec("alpha", 1, true)
	spec.StartTimeout = wire.Duration(time.Second)
	f.want(spec)
	f.m.step(t.Context())
	f.clock.Advance(2 * time.Second)
	f.m.step(t.Context())
	st := f.state(t, "alpha")
	assertStatus(t, st, wire.BotFailed, "")
	if !strings.Contains(st.LastError, "(logs unavailable: logs are off)") {
		t.Fatalf("last error %q", st.LastError)
	}
}

// collectEvents sends what the manager reports to a channel.
func collectEvents(m *Bots) <-chan wire.Events {
	ch := make(chan wire.Events, 64)
	m.SetNotify(func(e wire.Events) { ch <- e })
	return ch
}

func nextEvents(t *testing.T, ch <-chan wire.Events) wire.Events {
	t.Helper()
	select {
	case e := <-ch:
		return e
	case <-time.After(5 * time.Second):
		t.Fatal("no events reported")
		return wire.Events{}
	}
}

func TestBotsStatusEvents(t *testing.T) {
	f := newBotsFixture(t)
	events := collectEvents(f.m)
	f.rt.probes = probeCodes{503, 200, 200}
	f.want(testSpec("alpha", 1, true))
	f.m.step(t.Context())

	type change struct{ status, health, detail string }
	expect := func(want change) {
		t.Helper()
		ev := nextEvents(t, events)
		if len(ev.Events) != 1 || len(ev.Bots) != 1 {
			t.Fatalf("reported %+v, want one event and one state", ev)
		}
		e, s := ev.Events[0], ev.Bots[0]
		if e.BotID != "alpha" || e.Action != "status" || e.Detail != want.detail || !e.Time.Equal(f.clock.Now()) {
			t.Fatalf("event %+v, want status %q at %v", e, want.detail, f.clock.Now())
		}
		if s.ID != "alpha" || s.Status != want.status || s.Health != want.health {
			t.Fatalf("state %+v, want %s/%s", s, want.status, want.health)
		}
	}
	expect(change{wire.BotStarting, "", "pending → starting"})

	f.rt.gateway("alpha").set("/startupz", 200)
	f.m.step(t.Context())
	expect(change{wire.BotRunning, wire.HealthHealthy, "starting → running (health - → healthy)"})

	// Steps that change nothing report nothing: the next report is the next change.
	f.m.step(t.Context())
	f.m.step(t.Context())
	f.rt.gateway("alpha").set("/readyz", 503)
	f.m.step(t.Context())
	expect(change{wire.BotRunning, wire.HealthDegraded, "running → running (health healthy → degraded)"})

	f.want(testSpec("alpha", 1, false))
	f.m.step(t.Context())
	expect(change{wire.BotStopped, "", "running → stopped (health degraded → -)"})

	// Without a notify function reports are dropped, not queued.
	f.m.SetNotify(nil)
	f.want(testSpec("alpha", 1, true))
	f.m.step(t.Context())
	select {
	case ev := <-events:
		t.Fatalf("reported %+v with no notify set", ev)
	default:
	}
}

func TestBotsEngineEvents(t *testing.T) {
	tests := []struct {
		action, want, detail string
	}{
		{"die", "died", "exit code 137"},
		{"oom", "oom-killed", ""},
		{"destroy", "removed", ""},
	}
	for _, tt := range tests {
		t.Run(tt.action, func(t *testing.T) {
			f := newBotsFixture(t)
			events := collectEvents(f.m)
			at := f.clock.Now().Add(-time.Second)
			f.m.event(runtime.Event{BotID: "alpha", ContainerID: "ctr-1", Action: tt.action, ExitCode: 137, Time: at})
			ev := nextEvents(t, events)
			want := wire.BotEvent{BotID: "alpha", Action: tt.want, Detail: tt.detail, Time: at}
			if len(ev.Events) != 1 || ev.Events[0] != want || len(ev.Bots) != 0 {
				t.Fatalf("reported %+v, want %+v", ev, want)
			}
			select {
			case <-f.m.kick:
			default:
				t.Fatal("an engine event did not ask for a convergence")
			}
		})
	}

	t.Run("watched from the engine", func(t *testing.T) {
		f := newBotsFixture(t)
		events := collectEvents(f.m)
		ctx, cancel := context.WithCancel(t.Context())
		var wg sync.WaitGroup
		wg.Go(func() { f.m.watch(ctx) })
		defer func() { cancel(); wg.Wait() }()

		at := f.clock.Now()
		// An action the manager does not report comes first: the first report is the die.
		f.rt.events <- runtime.Event{BotID: "alpha", Action: "start", Time: at}
		f.rt.events <- runtime.Event{BotID: "alpha", Action: "die", ExitCode: 1, Time: at}
		ev := nextEvents(t, events)
		want := wire.BotEvent{BotID: "alpha", Action: "died", Detail: "exit code 1", Time: at}
		if len(ev.Events) != 1 || ev.Events[0] != want {
			t.Fatalf("reported %+v, want %+v", ev, want)
		}
		if n := f.rt.count("Events"); n != 1 {
			t.Fatalf("subscribed %d times", n)
		}
	})
}

// --- the HTTP API pmd calls ---

func newBotsServer(t *testing.T, f *botsFixture) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	f.m.routes(mux, slog.New(slog.NewTextHandler(t.Output(), nil)))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func do(t *testing.T, method, url string, body io.Reader, header http.Header) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func assertAPIError(t *testing.T, resp *http.Response, status int, code string) {
	t.Helper()
	var e wire.Error
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
		t.Fatalf("status %d, body not an error: %v", resp.StatusCode, err)
	}
	if resp.StatusCode != status || e.Code != code {
		t.Fatalf("status %d code %q (%s), want %d %q", resp.StatusCode, e.Code, e.Message, status, code)
	}
}

func (f *botsFixture) desired() *wire.DesiredBots {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	return f.m.desired
}

func TestBotsAPIPutDesired(t *testing.T) {
	good := testSpec("alpha", 1, true)
	noImage := testSpec("beta", 1, true)
	noImage.Image = ""
	noConfig := testSpec("beta", 1, true)
	noConfig.Config = nil
	tests := []struct {
		name string
		body string
	}{
		{"upper-case id", mustJSON(t, wire.DesiredBots{Bots: []wire.BotSpec{testSpec("Alpha", 1, true)}})},
		{"path in id", mustJSON(t, wire.DesiredBots{Bots: []wire.BotSpec{testSpec("../etc", 1, true)}})},
		{"empty id", mustJSON(t, wire.DesiredBots{Bots: []wire.BotSpec{testSpec("", 1, true)}})},
		{"duplicate id", mustJSON(t, wire.DesiredBots{Bots: []wire.BotSpec{good, good}})},
		{"missing image", mustJSON(t, wire.DesiredBots{Bots: []wire.BotSpec{good, noImage}})},
		{"null config", mustJSON(t, wire.DesiredBots{Bots: []wire.BotSpec{noConfig}})},
		{"absent config", `{"bots":[{"id":"beta","version":1,"image":"img:1","running":true}]}`},
		{"not json", `{"bots": [`},
		{"empty body", ``},
		{"two values", `{"bots":[]} {}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newBotsFixture(t)
			srv := newBotsServer(t, f)
			resp := do(t, http.MethodPut, srv.URL+"/v1/bots", strings.NewReader(tt.body), nil)
			assertAPIError(t, resp, http.StatusBadRequest, wire.CodeInvalidArgument)
			if f.desired() != nil {
				t.Fatal("a refused set was applied")
			}
		})
	}

	t.Run("good set", func(t *testing.T) {
		f := newBotsFixture(t)
		srv := newBotsServer(t, f)
		set := wire.DesiredBots{Bots: []wire.BotSpec{good, testSpec("beta", 2, false)}, Purge: []string{"gamma"}}
		resp := do(t, http.MethodPut, srv.URL+"/v1/bots", strings.NewReader(mustJSON(t, set)), nil)
		if resp.StatusCode != http.StatusNoContent {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
		got := f.desired()
		if got == nil || mustJSON(t, *got) != mustJSON(t, set) {
			t.Fatalf("desired %+v, want %+v", got, set)
		}
		select {
		case <-f.m.kick:
		default:
			t.Fatal("a new set did not ask for a convergence")
		}

		f.m.step(t.Context())
		resp = do(t, http.MethodGet, srv.URL+"/v1/bots", nil, nil)
		var states []wire.BotState
		if err := json.NewDecoder(resp.Body).Decode(&states); err != nil {
			t.Fatal(err)
		}
		if len(states) != 2 || states[0].ID != "alpha" || states[0].Status != wire.BotRunning || states[1].Status != wire.BotStopped {
			t.Fatalf("GET /v1/bots: %+v", states)
		}
	})
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestBotsAPIContainerRoutes(t *testing.T) {
	f := newBotsFixture(t)
	f.rt.setLogs("line one\nline two\n")
	f.want(testSpec("alpha", 1, true), testSpec("beta", 1, false))
	f.m.step(t.Context())
	srv := newBotsServer(t, f)
	alpha, _ := f.rt.container("alpha")

	notFound := []struct{ method, path string }{
		{http.MethodPost, "/v1/bots/nobody/restart"},
		{http.MethodGet, "/v1/bots/nobody/logs"},
		{http.MethodGet, "/v1/bots/nobody/health"},
		{http.MethodGet, "/v1/bots/nobody/gateway/"},
		{http.MethodPost, "/v1/bots/beta/restart"}, // known, but without a container
	}
	for _, tt := range notFound {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			resp := do(t, tt.method, srv.URL+tt.path, nil, nil)
			assertAPIError(t, resp, http.StatusNotFound, wire.CodeNotFound)
		})
	}

	t.Run("restart", func(t *testing.T) {
		f.rt.reset()
		resp := do(t, http.MethodPost, srv.URL+"/v1/bots/alpha/restart", nil, nil)
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("status %d", resp.StatusCode)
		}
		assertCalls(t, f.rt, "Restart alpha")
	})

	t.Run("restart of a vanished container", func(t *testing.T) {
		g := newBotsFixture(t)
		g.want(testSpec("alpha", 1, true))
		g.m.step(t.Context())
		g.rt.vanish("alpha")
		resp := do(t, http.MethodPost, newBotsServer(t, g).URL+"/v1/bots/alpha/restart", nil, nil)
		assertAPIError(t, resp, http.StatusNotFound, wire.CodeNotFound)
	})

	t.Run("logs", func(t *testing.T) {
		resp := do(t, http.MethodGet, srv.URL+"/v1/bots/alpha/logs?tail=5", nil, nil)
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || string(b) != "line one\nline two\n" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
			t.Fatalf("status %d type %q body %q", resp.StatusCode, resp.Header.Get("Content-Type"), b)
		}
		f.rt.mu.Lock()
		last := f.rt.logCalls[len(f.rt.logCalls)-1]
		f.rt.mu.Unlock()
		if last != (logCall{ContainerID: alpha.ID, Tail: 5}) {
			t.Fatalf("logs asked as %+v", last)
		}
	})

	t.Run("logs that fail", func(t *testing.T) {
		f.rt.failOn("Logs", errors.New("secret engine detail"))
		defer f.rt.failOn("Logs", nil)
		resp := do(t, http.MethodGet, srv.URL+"/v1/bots/alpha/logs", nil, nil)
		var e wire.Error
		_ = json.NewDecoder(resp.Body).Decode(&e)
		if resp.StatusCode != http.StatusInternalServerError || e.Code != wire.CodeInternal || strings.Contains(e.Message, "secret") {
			t.Fatalf("status %d error %+v", resp.StatusCode, e)
		}
	})

	t.Run("logs stream as they come", func(t *testing.T) {
		pr, pw := io.Pipe()
		f.rt.mu.Lock()
		f.rt.logsFunc = func(follow bool, tail int) (io.ReadCloser, error) { return pr, nil }
		f.rt.mu.Unlock()
		defer func() {
			f.rt.mu.Lock()
			f.rt.logsFunc = nil
			f.rt.mu.Unlock()
		}()
		// Headers go out with the first bytes (as pmd's side expects), so the first line is
		// written before the response is awaited. Each write blocks until the handler reads
		// it; each line must reach the client while the stream is still open.
		go func() { _, _ = io.WriteString(pw, "first\n") }()
		resp := do(t, http.MethodGet, srv.URL+"/v1/bots/alpha/logs?follow=true&tail=nonsense", nil, nil)
		r := bufio.NewReader(resp.Body)
		for i, line := range []string{"first\n", "second\n"} {
			if i > 0 {
				go func() { _, _ = io.WriteString(pw, line) }()
			}
			got, err := r.ReadString('\n')
			if err != nil || got != line {
				t.Fatalf("read %q, %v; want %q", got, err, line)
			}
		}
		pw.Close()
		if rest, err := io.ReadAll(r); err != nil || len(rest) != 0 {
			t.Fatalf("after the stream ended: %q, %v", rest, err)
		}
		f.rt.mu.Lock()
		last := f.rt.logCalls[len(f.rt.logCalls)-1]
		f.rt.mu.Unlock()
		if last != (logCall{ContainerID: alpha.ID, Follow: true, Tail: 100}) {
			t.Fatalf("logs asked as %+v", last)
		}
	})

	t.Run("health", func(t *testing.T) {
		f.rt.gateway("alpha").set("/readyz", 503)
		defer f.rt.gateway("alpha").set("/readyz", 200)
		resp := do(t, http.MethodGet, srv.URL+"/v1/bots/alpha/health", nil, nil)
		var p wire.Probes
		if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
			t.Fatal(err)
		}
		if p.Startupz.Status != 200 || p.Healthz.Status != 200 || p.Readyz.Status != 503 || p.Readyz.Body != "/readyz 503" {
			t.Fatalf("probes %+v", p)
		}
	})
}

func TestBotsAPIGateway(t *testing.T) {
	f := newBotsFixture(t)
	f.want(testSpec("alpha", 1, true), testSpec("beta", 1, false))
	f.m.step(t.Context())
	srv := newBotsServer(t, f)
	gw := f.rt.gateway("alpha")

	tests := []struct {
		name, method, path, body string
		wantPath, wantQuery      string
	}{
		{"post with query", http.MethodPost, "/v1/bots/alpha/gateway/v1/chat/completions?stream=false", `{"model":"m"}`, "/v1/chat/completions", "stream=false"},
		{"root", http.MethodGet, "/v1/bots/alpha/gateway/", "", "/", ""},
		{"escaped segment", http.MethodGet, "/v1/bots/alpha/gateway/tools/a%20b", "", "/tools/a b", ""},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{
				"X-Forwarded-For":   {"203.0.113.9"},
				"X-Real-Ip":         {"203.0.113.9"},
				"Forwarded":         {"for=203.0.113.9"},
				"X-Forwarded-Host":  {"evil.example"},
				"X-Forwarded-Proto": {"https"},
				"Authorization":     {"Bearer gw-token"},
			}
			resp := do(t, tt.method, srv.URL+tt.path, strings.NewReader(tt.body), h)
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Fake-Gateway") != "yes" {
				t.Fatalf("status %d body %q", resp.StatusCode, b)
			}
			reqs := gw.requests()
			if len(reqs) != i+1 {
				t.Fatalf("gateway received %d requests, want %d", len(reqs), i+1)
			}
			got := reqs[i]
			if got.Method != tt.method || got.Path != tt.wantPath || got.RawQuery != tt.wantQuery || got.Body != tt.body {
				t.Fatalf("gateway received %s %s ?%s %q", got.Method, got.Path, got.RawQuery, got.Body)
			}
			if got.Host != gw.srv.Listener.Addr().String() {
				t.Errorf("gateway received Host %q", got.Host)
			}
			for _, k := range []string{"X-Forwarded-For", "X-Real-Ip", "Forwarded", "X-Forwarded-Host", "X-Forwarded-Proto"} {
				if v, ok := got.Header[k]; ok {
					t.Errorf("gateway received %s: %q", k, v)
				}
			}
			if got.Header.Get("Authorization") != "Bearer gw-token" {
				t.Errorf("gateway received Authorization %q", got.Header.Get("Authorization"))
			}
		})
	}

	t.Run("bot without a container", func(t *testing.T) {
		resp := do(t, http.MethodGet, srv.URL+"/v1/bots/beta/gateway/", nil, nil)
		assertAPIError(t, resp, http.StatusNotFound, wire.CodeNotFound)
	})

	t.Run("stopped bot", func(t *testing.T) {
		f.rt.add(testAgent, "delta", 1, "exited")
		f.want(testSpec("alpha", 1, true), testSpec("beta", 1, false), testSpec("delta", 1, false))
		f.m.step(t.Context())
		resp := do(t, http.MethodGet, srv.URL+"/v1/bots/delta/gateway/", nil, nil)
		assertAPIError(t, resp, http.StatusServiceUnavailable, wire.CodeUnavailable)
	})

	t.Run("gateway not answering", func(t *testing.T) {
		f.rt.add(testAgent, "gamma", 1, "running")
		f.want(testSpec("alpha", 1, true), testSpec("beta", 1, false), testSpec("gamma", 1, true))
		f.m.step(t.Context())
		f.rt.gateway("gamma").srv.Close()
		resp := do(t, http.MethodGet, srv.URL+"/v1/bots/gamma/gateway/x", nil, nil)
		assertAPIError(t, resp, http.StatusServiceUnavailable, wire.CodeUnavailable)
	})
}
