package e2e_test

import (
	"context"
	"errors"
	"io"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/agent"
	"github.com/pocketmolt/pocketmolt/internal/runtime"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

func TestPlacementByFreeCapacity(t *testing.T) {
	d := engine(t)
	p := dockerPMD(t)
	p.enrollDocker("edge-1", d, wire.Capacity{Bots: 2, MemoryBytes: 4 << 30})
	a2 := p.enrollDocker("edge-2", d, wire.Capacity{Bots: 5, MemoryBytes: 8 << 30})
	p.waitStatus("edge-1", wire.HostOnline)
	p.waitStatus("edge-2", wire.HostOnline)
	admin := p.admin()
	create := func(name, host string) (*wire.Bot, error) {
		return admin.CreateBot(t.Context(), botRequest(name, host))
	}

	b1, err := create("b1", "")
	if err != nil || b1.HostName != "edge-2" {
		t.Fatalf("b1 went to %v (%v), want edge-2, the freer host", b1, err)
	}
	if _, err := admin.DrainHost(t.Context(), "edge-2"); err != nil {
		t.Fatal(err)
	}
	b2, err := create("b2", "")
	if err != nil || b2.HostName != "edge-1" {
		t.Fatalf("b2 went to %v (%v), want edge-1 while edge-2 drains", b2, err)
	}
	if _, err := create("b3", "edge-2"); wire.CodeOf(err) != wire.CodeConflict || !strings.Contains(err.Error(), "draining") {
		t.Fatalf("--host on a draining host: %v", err)
	}
	if _, err := admin.UndrainHost(t.Context(), "edge-2"); err != nil {
		t.Fatal(err)
	}
	if _, err := create("b3", "edge-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := create("b4", "edge-1"); wire.CodeOf(err) != wire.CodeConflict || !strings.Contains(err.Error(), "full") {
		t.Fatalf("--host on a full host: %v", err)
	}
	h, err := admin.GetHost(t.Context(), "edge-1")
	if err != nil || h.Bots != 2 || h.MemoryAllocated != 2<<30 || h.Capacity.Bots != 2 {
		t.Fatalf("edge-1 usage = %+v (%v)", h, err)
	}
	for _, name := range []string{"b1", "b2", "b3"} {
		p.waitBot(name, 90*time.Second, "running", running)
	}
	// Different hosts on one engine never touch each other's containers.
	if got := countContainers(t, a2.hostID()); got != 1 {
		t.Fatalf("edge-2 has %d containers, want 1", got)
	}

	a2.stop()
	p.waitStatus("edge-2", wire.HostOffline)
	if _, err := create("b5", "edge-2"); wire.CodeOf(err) != wire.CodeConflict || !strings.Contains(err.Error(), "offline") {
		t.Fatalf("--host on an offline host: %v", err)
	}
	p.waitBot("b1", 10*time.Second, "unknown while its host is offline", func(b wire.Bot) bool { return b.Status == wire.BotUnknown })
}

func countContainers(t *testing.T, agentID string) int {
	out, err := exec.Command("docker", "ps", "-aq", "--filter", "label=pocketmolt.agent="+agentID).Output()
	if err != nil {
		t.Fatal(err)
	}
	return len(strings.Fields(string(out)))
}

func TestDeleteWhileHostOfflineIsDoneOnReconnect(t *testing.T) {
	d := engine(t)
	p := dockerPMD(t)
	a := p.enrollDocker("edge-1", d, wire.Capacity{})
	p.waitStatus("edge-1", wire.HostOnline)
	if _, err := p.admin().CreateBot(t.Context(), botRequest("alice", "")); err != nil {
		t.Fatal(err)
	}
	b := p.waitBot("alice", 90*time.Second, "running", running)

	a.stop()
	p.waitStatus("edge-1", wire.HostOffline)
	del, err := p.admin().DeleteBot(t.Context(), "alice", false)
	if err != nil || del.Status != wire.BotDeleting {
		t.Fatalf("delete while offline = %+v, %v", del, err)
	}
	if r, _ := dig(dockerInspect(t, b.ContainerID), "State", "Running").(bool); !r {
		t.Fatal("the container stopped while its host was offline")
	}
	runDockerAgent(t, a.A.State, d, wire.Capacity{})
	eventually(t, 60*time.Second, "alice gone after reconnect", func() bool {
		_, err := p.admin().GetBot(t.Context(), "alice")
		return wire.CodeOf(err) == wire.CodeNotFound
	})
	eventually(t, 30*time.Second, "the container removed", func() bool {
		return exec.Command("docker", "inspect", b.ContainerID).Run() != nil
	})
}

// switchable is the real engine behind a switch, to take the engine down without stopping
// the machine's Docker daemon.
type switchable struct {
	agent.Runtime
	down atomic.Bool
}

//lint:ignore ST1005 the Docker client's own words, capital and all
var errEngineDown = errors.New("Cannot connect to the Docker daemon at unix:///var/run/docker.sock")

func (s *switchable) Version(ctx context.Context) (string, error) {
	if s.down.Load() {
		return "", errEngineDown
	}
	return s.Runtime.Version(ctx)
}

func (s *switchable) List(ctx context.Context, agentID string) ([]runtime.Container, error) {
	if s.down.Load() {
		return nil, errEngineDown
	}
	return s.Runtime.List(ctx, agentID)
}

func (s *switchable) Logs(ctx context.Context, id string, follow bool, tail int) (io.ReadCloser, error) {
	if s.down.Load() {
		return nil, errEngineDown
	}
	return s.Runtime.Logs(ctx, id, follow, tail)
}

func TestEngineDownMarksBotsUnknownAndDeletesNothing(t *testing.T) {
	d := engine(t)
	p := dockerPMD(t)
	sw := &switchable{Runtime: d}
	dir := t.TempDir()
	st, err := agent.Enroll(t.Context(), agent.EnrollOptions{Server: p.D.AgentAddr, Token: p.token("edge-1"), StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeContainers(d, st.Identity.HostID) })
	ta := &testAgent{t: t, Logs: &syncBuf{}, done: make(chan struct{})}
	ta.A = agent.New(st, sw, "test", discardLog())
	ta.A.Bots.SetInterval(200 * time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	ta.cancel = cancel
	go func() { defer close(ta.done); ta.A.Run(ctx) }()
	t.Cleanup(ta.stop)
	p.waitStatus("edge-1", wire.HostOnline)
	if _, err := p.admin().CreateBot(t.Context(), botRequest("alice", "")); err != nil {
		t.Fatal(err)
	}
	b := p.waitBot("alice", 90*time.Second, "running", running)

	sw.down.Store(true)
	p.waitBot("alice", 10*time.Second, "unknown", func(x wire.Bot) bool {
		return x.Status == wire.BotUnknown && strings.Contains(x.LastError, "Cannot connect to the Docker daemon")
	})
	eventually(t, 30*time.Second, "the host to show why", func() bool {
		h, err := p.admin().GetHost(t.Context(), "edge-1")
		return err == nil && h.Facts != nil && h.Facts.DockerVersion == wire.DockerUnavailable && strings.Contains(h.Facts.DockerError, "Cannot connect")
	})
	if _, err := p.admin().GetBot(t.Context(), "alice"); err != nil {
		t.Fatalf("the bot's record is gone: %v", err)
	}
	if r, _ := dig(dockerInspect(t, b.ContainerID), "State", "Running").(bool); !r {
		t.Fatal("the container stopped")
	}
	sw.down.Store(false)
	after := p.waitBot("alice", 30*time.Second, "running again", running)
	if after.ContainerID != b.ContainerID {
		t.Fatalf("container replaced: %s → %s", b.ContainerID, after.ContainerID)
	}
}

func TestBadBotRequests(t *testing.T) {
	p := startPMD(t, nil)
	p.enroll("edge-1") // no engine: bots stay pending, which is all validation needs
	p.waitStatus("edge-1", wire.HostOnline)
	if _, err := p.admin().CreateBot(t.Context(), botRequest("taken", "")); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		mut  func(*wire.CreateBotRequest)
		code string
		want string
	}{
		{"model without provider", func(r *wire.CreateBotRequest) { r.Model = "claude" }, wire.CodeInvalidArgument, "provider"},
		{"unknown provider", func(r *wire.CreateBotRequest) { r.Model = "acme/x-1" }, wire.CodeInvalidArgument, "acme"},
		{"telegram token of the wrong shape", func(r *wire.CreateBotRequest) { r.TelegramToken = "not-a-token" }, wire.CodeInvalidArgument, "telegram"},
		{"empty api key", func(r *wire.CreateBotRequest) { r.APIKey = "   " }, wire.CodeInvalidArgument, "api key"},
		{"name taken", func(r *wire.CreateBotRequest) { r.Name = "taken" }, wire.CodeConflict, "taken"},
		{"name not DNS-safe", func(r *wire.CreateBotRequest) { r.Name = "Alice_1" }, wire.CodeInvalidArgument, "lower-case"},
		{"memory below the minimum", func(r *wire.CreateBotRequest) { r.Resources.MemoryBytes = 512 << 20 }, wire.CodeInvalidArgument, "minimum"},
		{"bad digest", func(r *wire.CreateBotRequest) { r.Image = "pocketmolt/standin-gateway@sha256:zzz" }, wire.CodeInvalidArgument, "digest"},
		{"host unknown", func(r *wire.CreateBotRequest) { r.Host = "nowhere" }, wire.CodeNotFound, "nowhere"},
		{"placement unknown", func(r *wire.CreateBotRequest) { r.Placement = "anywhere" }, wire.CodeInvalidArgument, "placement"},
		{"dedicated naming a host", func(r *wire.CreateBotRequest) { r.Placement, r.Host = wire.PlacementDedicated, "edge-1" }, wire.CodeInvalidArgument, "dedicated"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := botRequest("alice", "")
			c.mut(&req)
			_, err := p.admin().CreateBot(t.Context(), req)
			if wire.CodeOf(err) != c.code || !strings.Contains(strings.ToLower(err.Error()), c.want) {
				t.Fatalf("got %v (%s), want %s mentioning %q", err, wire.CodeOf(err), c.code, c.want)
			}
			for _, secret := range []string{testAPIKey, testTelegram} {
				if strings.Contains(err.Error(), secret) || strings.Contains(p.Logs.String(), secret) {
					t.Fatal("a secret leaked into an error or the log")
				}
			}
		})
	}
	bs, err := p.admin().ListBots(t.Context())
	if err != nil || len(bs) != 1 {
		t.Fatalf("bots after bad requests = %d (%v), want only the first", len(bs), err)
	}
	t.Run("forced memory below the minimum is allowed", func(t *testing.T) {
		req := botRequest("small", "")
		req.Resources.MemoryBytes, req.Force = 512<<20, true
		if _, err := p.admin().CreateBot(t.Context(), req); err != nil {
			t.Fatal(err)
		}
	})
}
