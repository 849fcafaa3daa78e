package e2e_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/agent"
	"github.com/pocketmolt/pocketmolt/internal/runtime/docker"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// enrollDockerWith enrolls a host with a token made for it elsewhere (pmctl hosts token
// create --for-bot) and runs its agent on the local engine.
func (p *testPMD) enrollDockerWith(token, name string, d *docker.Docker, capacity wire.Capacity) *testAgent {
	p.t.Helper()
	st, err := agent.Enroll(p.t.Context(), agent.EnrollOptions{Server: p.D.AgentAddr, Token: token, StateDir: filepath.Join(p.t.TempDir(), name)})
	if err != nil {
		p.t.Fatalf("enroll %s: %v", name, err)
	}
	p.t.Cleanup(func() { removeContainers(d, st.Identity.HostID) })
	return runDockerAgent(p.t, st, d, capacity)
}

func (p *testPMD) audited(action, target string) bool {
	p.t.Helper()
	es, err := p.admin().ListAudit(p.t.Context(), 1000)
	if err != nil {
		p.t.Fatal(err)
	}
	return slices.ContainsFunc(es, func(e wire.AuditEntry) bool { return e.Action == action && e.Target == target })
}

// TestBotWaitsForRoomThenRuns: a bot created when no host has room waits, visibly, in
// pmctl; a host enrolls, and the bot is placed there and runs. Reconfigured, its host
// re-creates its container with the new key.
func TestBotWaitsForRoomThenRuns(t *testing.T) {
	d := engine(t)
	p := dockerPMD(t)
	ctl := p.pmctlConfig()
	key := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(key, []byte(testAPIKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := ctlRun(t.Context(), ctl, false, nil, "bots", "create", "--name", "alice", "--model", "anthropic/claude-sonnet-4-6",
		"--api-key-file", key, "--memory", "1GiB", "--cpus", "1", "--pids", "256")
	const why = "no host has room for a bot with 1GiB of memory"
	if r.code != 0 || !strings.Contains(r.errOut, "but it waits: "+why) {
		t.Fatalf("pmctl bots create with no host: code %d\n%s%s", r.code, r.out, r.errOut)
	}
	if b := p.bot("alice"); b.Status != wire.BotWaiting || b.Waiting != why || b.HostID != "" || b.Owner != "operator:admin" {
		t.Fatalf("alice with no host: %+v", b)
	}
	r = ctlRun(t.Context(), ctl, false, nil, "hosts", "list")
	if r.code != 0 || r.errOut != "warning: 1 bot waits for a host with room: alice ("+why+")\n" {
		t.Fatalf("pmctl hosts list: code %d\n%s%s", r.code, r.out, r.errOut)
	}

	p.enrollDocker("edge-1", d, wire.Capacity{Bots: 2, MemoryBytes: 4 << 30})
	b := p.waitBot("alice", 90*time.Second, "placed and running", running)
	if b.HostName != "edge-1" || b.Waiting != "" || !p.audited("bot.place", "alice") {
		t.Fatalf("alice once edge-1 enrolled: %+v", b)
	}
	if r := ctlRun(t.Context(), ctl, false, nil, "hosts", "list"); r.code != 0 || r.errOut != "" {
		t.Fatalf("pmctl hosts list once placed: code %d\n%s%s", r.code, r.out, r.errOut)
	}

	// A new key alone is applied in place: the container holds no provider key, so it stays,
	// and the next model call carries the new key.
	const newKey = "sk-ant-test-fedcba9876543210"
	nk := newKey
	got, err := p.admin().EditBot(t.Context(), "alice", wire.EditBotRequest{APIKey: &nk})
	if err != nil || got.SpecVersion != 1 {
		t.Fatalf("a new key: %+v %v", got, err)
	}
	// The desired set with the key reaches the host in the background: a chat made once it
	// has goes upstream with the new key.
	eventually(t, 30*time.Second, "a chat upstream with the new key", func() bool {
		if _, err := p.admin().ChatBot(t.Context(), "alice", wire.ChatRequest{Message: "new key?"}); err != nil {
			return false
		}
		calls := p.Provider.Calls()
		return len(calls) > 0 && calls[len(calls)-1].APIKey == newKey
	})
	if x := p.bot("alice"); x.ContainerID != b.ContainerID {
		t.Fatalf("a key change re-created the container: %s, was %s", x.ContainerID, b.ContainerID)
	}

	// A new model: the host re-creates the container with it.
	model := "anthropic/claude-haiku-4-5"
	got, err = p.admin().EditBot(t.Context(), "alice", wire.EditBotRequest{Model: &model})
	if err != nil || got.SpecVersion != 2 {
		t.Fatalf("reconfigure: %+v %v", got, err)
	}
	// The agent reports the new version as soon as it works on it, so the new container is
	// what says it applied it.
	after := p.waitBot("alice", 90*time.Second, "running in a new container", func(x wire.Bot) bool {
		return running(x) && x.ObservedVersion == 2 && x.ContainerID != b.ContainerID
	})
	raw, _ := json.Marshal(dockerInspect(t, after.ContainerID))
	if strings.Contains(string(raw), newKey) || strings.Contains(string(raw), testAPIKey) {
		t.Fatal("a provider key is in the new container")
	}
	if strings.Contains(p.Logs.String(), newKey) {
		t.Fatal("the new key is in pmd's log")
	}
}

// TestDedicatedBotRunsOnItsOwnHost: a bot placed dedicated waits until a host enrolled for it
// exists — a shared host with room does not take it — and then runs there; no shared bot
// goes on that host.
func TestDedicatedBotRunsOnItsOwnHost(t *testing.T) {
	d := engine(t)
	p := dockerPMD(t)
	ctl := p.pmctlConfig()
	admin := p.admin()
	req := botRequest("vip", "")
	req.Placement = wire.PlacementDedicated
	vip, err := admin.CreateBot(t.Context(), req)
	if err != nil || vip.Status != wire.BotWaiting || vip.Waiting != "waiting for a dedicated host" {
		t.Fatalf("dedicated bot: %+v %v", vip, err)
	}
	// A shared bot waiting too: once it is placed on the shared host, the placer has looked
	// at vip with that host online.
	if _, err := admin.CreateBot(t.Context(), botRequest("shared-1", "")); err != nil {
		t.Fatal(err)
	}
	p.enrollDocker("edge-1", d, wire.Capacity{Bots: 4, MemoryBytes: 8 << 30})
	if s := p.waitBot("shared-1", 30*time.Second, "placed", func(b wire.Bot) bool { return b.HostID != "" }); s.HostName != "edge-1" {
		t.Fatalf("shared-1 on %s", s.HostName)
	}
	if b := p.bot("vip"); b.HostID != "" || b.Status != wire.BotWaiting {
		t.Fatalf("the dedicated bot went on a shared host: %+v", b)
	}

	for _, tc := range []struct {
		bot, code string
	}{{"shared-1", wire.CodeConflict}, {"nobody", wire.CodeNotFound}} {
		if _, err := admin.CreateHostToken(t.Context(), wire.TokenRequest{Name: "x-" + tc.bot, ForBot: tc.bot}); wire.CodeOf(err) != tc.code {
			t.Fatalf("token for %s: %v, want %s", tc.bot, err, tc.code)
		}
	}
	r := ctlRun(t.Context(), ctl, false, nil, "hosts", "token", "create", "vip-host", "--for-bot", "vip")
	if r.code != 0 || !strings.Contains(r.errOut, "The host will run bot vip ("+vip.ID+") and no other.") {
		t.Fatalf("pmctl hosts token create --for-bot: code %d\n%s%s", r.code, r.out, r.errOut)
	}
	p.enrollDockerWith(strings.TrimSpace(r.out), "vip-host", d, wire.Capacity{Bots: 2, MemoryBytes: 4 << 30})
	b := p.waitBot("vip", 90*time.Second, "placed on its host and running", running)
	if b.HostName != "vip-host" {
		t.Fatalf("vip runs on %s", b.HostName)
	}
	h, err := admin.GetHost(t.Context(), "vip-host")
	if err != nil || h.DedicatedBot != vip.ID || h.Bots != 1 {
		t.Fatalf("vip-host: %+v %v", h, err)
	}
	if r := ctlRun(t.Context(), ctl, true, nil, "hosts", "get", "vip-host"); !regexp.MustCompile(`\ndedicated to: +bot ` + vip.ID + `: it runs no other\n`).MatchString(r.out) {
		t.Fatalf("pmctl hosts get:\n%s%s", r.out, r.errOut)
	}

	// The shared host drains: a shared bot waits rather than go on vip-host, which has room.
	if _, err := admin.DrainHost(t.Context(), "edge-1"); err != nil {
		t.Fatal(err)
	}
	s2, err := admin.CreateBot(t.Context(), botRequest("shared-2", ""))
	if err != nil || s2.Status != wire.BotWaiting {
		t.Fatalf("shared-2 with only a dedicated host free: %+v %v", s2, err)
	}
	if _, err := admin.CreateBot(t.Context(), botRequest("shared-3", "vip-host")); wire.CodeOf(err) != wire.CodeConflict || !strings.Contains(err.Error(), "dedicated") {
		t.Fatalf("a shared bot pinned to the dedicated host: %v", err)
	}
	r = ctlRun(t.Context(), ctl, false, nil, "hosts", "list")
	if !strings.Contains(r.out, "vip-host\tonline\t1/2\t") || !strings.Contains(r.out, "dedicated to "+vip.ID) ||
		r.errOut != "warning: 1 bot waits for a host with room: shared-2 (no host has room for a bot with 1GiB of memory)\n" {
		t.Fatalf("pmctl hosts list:\n%s%s", r.out, r.errOut)
	}
	// Undrained, the shared host takes it.
	if _, err := admin.UndrainHost(t.Context(), "edge-1"); err != nil {
		t.Fatal(err)
	}
	if s := p.waitBot("shared-2", 30*time.Second, "placed", func(b wire.Bot) bool { return b.HostID != "" }); s.HostName != "edge-1" {
		t.Fatalf("shared-2 on %s", s.HostName)
	}
	// vip deleted, its host stays dedicated to it: it takes no other bot.
	if _, err := admin.DeleteBot(t.Context(), "vip", true); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "vip gone", func() bool {
		_, err := admin.GetBot(t.Context(), "vip")
		return wire.CodeOf(err) == wire.CodeNotFound
	})
	if _, err := admin.CreateBot(t.Context(), botRequest("shared-4", "vip-host")); wire.CodeOf(err) != wire.CodeConflict {
		t.Fatalf("a shared bot on the host of a deleted dedicated bot: %v", err)
	}
}
