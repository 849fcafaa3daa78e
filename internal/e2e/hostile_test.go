package e2e_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/agent"
	"github.com/pocketmolt/pocketmolt/internal/bots"
	"github.com/pocketmolt/pocketmolt/internal/nofollow"
	"github.com/pocketmolt/pocketmolt/internal/openclaw"
	"github.com/pocketmolt/pocketmolt/internal/runtime"
	"github.com/pocketmolt/pocketmolt/internal/runtime/docker"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// botsRig is one agent's bot manager on the real Engine without pmd: the test is pmd, and
// hands it desired sets itself.
type botsRig struct {
	t     *testing.T
	d     *docker.Docker
	M     *agent.Bots
	Dir   string // the agent's state dir
	Agent string
	Logs  *syncBuf
}

func newBotsRig(t *testing.T, d *docker.Docker) *botsRig {
	t.Helper()
	r := &botsRig{t: t, d: d, Dir: t.TempDir(), Agent: "h-" + strings.ToLower(randText(10)), Logs: &syncBuf{}}
	log := slog.New(slog.NewJSONHandler(r.Logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r.M = agent.NewBots(d, r.Dir, r.Agent, log)
	r.M.SetInterval(100 * time.Millisecond)
	if err := r.M.SetUIDBase(testUIDBase()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.M.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		removeContainers(d, r.Agent)
	})
	return r
}

// spec is a bot of the rig running the test image, with cfg as its openclaw.json.
func (r *botsRig) spec(id string, version int64, cfg []byte) wire.BotSpec {
	return wire.BotSpec{
		ID: id, Name: id, Version: version, Image: testImage, Running: true, Config: cfg,
		Env:          map[string]string{openclaw.EnvGatewayToken: "tok-" + id, openclaw.EnvModelToken: "pmm-" + id},
		Resources:    wire.Resources{MemoryBytes: 256 << 20, CPUs: 0.5, PIDs: 128},
		StartTimeout: wire.Duration(time.Minute), StopTimeout: wire.Duration(2 * time.Second),
	}
}

// state waits until cond holds for bot id's state.
func (r *botsRig) wait(id string, timeout time.Duration, what string, cond func(wire.BotState) bool) wire.BotState {
	r.t.Helper()
	var last wire.BotState
	deadline := time.Now().Add(timeout)
	for {
		states, _ := r.M.Snapshot()
		for _, s := range states {
			if s.ID == id {
				last = s
			}
		}
		if last.ID == id && cond(last) {
			return last
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("bot %s: timed out after %s waiting for %s; last: status=%s health=%s error=%q", id, timeout, what, last.Status, last.Health, last.LastError)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func stateRunning(s wire.BotState) bool { return s.Status == wire.BotRunning }

// botConfig is a valid openclaw.json that differs by model.
func botConfig(t *testing.T, model string) []byte {
	t.Helper()
	b, err := openclaw.Config(openclaw.Options{Model: model, ModelEndpoint: bots.ModelEndpoint})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// hostile runs /hostile in the container as the container's own user.
func hostile(t *testing.T, container string, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command("docker", append([]string{"exec", container, "/hostile"}, args...)...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// containerEnv is a container's environment, from docker inspect.
func containerEnv(t *testing.T, id string) map[string]string {
	t.Helper()
	env := map[string]string{}
	list, _ := dig(dockerInspect(t, id), "Config", "Env").([]any)
	for _, e := range list {
		k, v, _ := strings.Cut(e.(string), "=")
		env[k] = v
	}
	return env
}

// TestHostileBotSymlinkSwap is issue 6's first attack: from inside a live bot, keep
// replacing the agent's temporary config file with a symlink to a host file, and deleting the
// config, in every directory the container can write, while the agent is made to rewrite the
// config again and again. The host file must stay as it was, nothing must appear at a target
// that did not exist, and the config the gateway reads must be the last one asked for.
func TestHostileBotSymlinkSwap(t *testing.T) {
	d := engine(t)
	r := newBotsRig(t, d)

	outside := t.TempDir()
	canary := filepath.Join(outside, "canary")
	const precious = "root's own file\n"
	if err := os.WriteFile(canary, []byte(precious), 0o644); err != nil {
		t.Fatal(err)
	}
	absent := filepath.Join(outside, "absent")

	id := "swap-" + strings.ToLower(randText(6))
	models := []string{"anthropic/claude-sonnet-4-6", "anthropic/claude-opus-4-1", "openai/gpt-5"}
	r.M.SetDesired(wire.DesiredBots{Bots: []wire.BotSpec{r.spec(id, 1, botConfig(t, models[0]))}})
	st := r.wait(id, 90*time.Second, "running", stateRunning)

	// Every directory the container may write, and the one the config is in.
	env := containerEnv(t, st.ContainerID)
	cfgInside := env["OPENCLAW_CONFIG_PATH"]
	dirs := []string{"/home/node/.openclaw", "/home/node/.openclaw/workspace", "/tmp", "/home/node", filepath.Dir(cfgInside)}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var swapped []string
	attack := func(target string) {
		for _, dir := range dirs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				out, err := hostile(t, st.ContainerID, "swap", dir, target, "3s")
				if err == nil {
					mu.Lock()
					swapped = append(swapped, dir+": "+out)
					mu.Unlock()
				}
			}()
		}
	}
	stop := make(chan struct{})
	rewrites := make(chan int)
	go func() {
		n := 0
		for i := 0; ; i++ {
			select {
			case <-stop:
				rewrites <- n
				return
			case <-time.After(40 * time.Millisecond):
			}
			r.M.SetDesired(wire.DesiredBots{Bots: []wire.BotSpec{r.spec(id, 1, botConfig(t, models[i%2]))}})
			n++
		}
	}()
	attack(canary)
	wg.Wait()
	attack(absent)
	wg.Wait()
	close(stop)
	t.Logf("%d config rewrites asked for; swaps made in: %v", <-rewrites, swapped)
	if len(swapped) == 0 {
		t.Fatal("the container could not plant a single link: the attack did not run")
	}

	final := botConfig(t, models[2])
	r.M.SetDesired(wire.DesiredBots{Bots: []wire.BotSpec{r.spec(id, 1, final)}})
	hostCfg := filepath.Join(r.Dir, "bots", id, "config", "openclaw.json")
	eventually(t, 10*time.Second, "the final config on the host", func() bool {
		b, err := os.ReadFile(hostCfg)
		return err == nil && bytes.Equal(b, final)
	})

	if b, err := os.ReadFile(canary); err != nil || string(b) != precious {
		t.Errorf("the host file behind the link was changed: %q, %v", b, err)
	}
	if fi, err := os.Lstat(absent); err == nil {
		t.Errorf("the agent created %s (%v) through a link", absent, fi.Mode())
	}
	out, err := hostile(t, st.ContainerID, "read", cfgInside)
	if err != nil {
		t.Fatalf("the gateway cannot read its config: %v %s", err, out)
	}
	got, err := strconv.Unquote(strings.TrimPrefix(out, "ok: "))
	if err != nil {
		t.Fatalf("read %s: %q: %v", cfgInside, out, err)
	}
	if got != string(final) {
		t.Errorf("the config in force inside the container is not the last one asked for:\n got %s\nwant %s", got, final)
	}
}

// randText is n random lower-case letters and digits.
func randText(n int) string { return strings.ToLower(rand.Text()[:n]) }

// procUIDs reads the real, effective, saved and filesystem uids of a host process.
func procUIDs(t *testing.T, pid int) []string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "Uid:"); ok {
			return strings.Fields(rest)
		}
	}
	t.Fatalf("no Uid line in /proc/%d/status", pid)
	return nil
}

// readAs reads path as uid:gid, with no capabilities, as a person logged in on the host would.
func readAs(uid, gid int, path string) ([]byte, error) {
	cmd := exec.Command("/bin/cat", path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}}
	return cmd.Output()
}

// TestHostileBotsEachRunAsTheirOwnUser is issue 6's second attack: a person with a login on
// the host (uid 1000) or another bot read a bot's API key from /proc/<pid>/environ. Each bot
// must run as a uid of its own that is no host account, own its directories alone, and keep
// its environment from both.
func TestHostileBotsEachRunAsTheirOwnUser(t *testing.T) {
	d := engine(t)
	p := dockerPMD(t)
	a := p.enrollDocker("edge-1", d, wire.Capacity{})
	p.waitStatus("edge-1", wire.HostOnline)
	for _, name := range []string{"alice", "bob"} {
		if _, err := p.admin().CreateBot(t.Context(), botRequest(name, "edge-1")); err != nil {
			t.Fatal(err)
		}
	}
	type botProc struct {
		bot wire.Bot
		pid int
		uid int
	}
	var procs []botProc
	for _, name := range []string{"alice", "bob"} {
		b := p.waitBot(name, 90*time.Second, "running", running)
		c := dockerInspect(t, b.ContainerID)
		pid := int(dig(c, "State", "Pid").(float64))
		ids := procUIDs(t, pid)
		uid, err := strconv.Atoi(ids[0])
		if err != nil || slices.ContainsFunc(ids, func(s string) bool { return s != ids[0] }) {
			t.Fatalf("%s's gateway (pid %d) runs as uids %v", name, pid, ids)
		}
		if u, _ := dig(c, "Config", "User").(string); u != fmt.Sprintf("%d:%d", uid, uid) {
			t.Errorf("%s: container user %q, process uid %d", name, u, uid)
		}
		procs = append(procs, botProc{b, pid, uid})
	}
	if procs[0].uid == procs[1].uid {
		t.Fatalf("alice and bob share uid %d", procs[0].uid)
	}
	for _, bp := range procs {
		if bp.uid == 1000 || bp.uid == 0 {
			t.Errorf("%s runs as uid %d", bp.bot.Name, bp.uid)
		}
		if u, err := user.LookupId(strconv.Itoa(bp.uid)); err == nil {
			t.Errorf("%s runs as host account %s", bp.bot.Name, u.Username)
		}
		dir := filepath.Join(a.A.State.Dir, "bots", bp.bot.ID)
		for _, sub := range []string{"state", "workspace"} {
			fi, err := os.Lstat(filepath.Join(dir, sub))
			if err != nil {
				t.Fatal(err)
			}
			st := fi.Sys().(*syscall.Stat_t)
			if int(st.Uid) != bp.uid || int(st.Gid) != bp.uid || fi.Mode() != os.ModeDir|0o700 {
				t.Errorf("%s's %s: %v owned by %d:%d, want 0700 owned by %d", bp.bot.Name, sub, fi.Mode(), st.Uid, st.Gid, bp.uid)
			}
		}
	}

	// The secret is there to steal: root reads it. (Its provider key is not: only its tokens
	// are in its environment, and its model token is what spends its credits.)
	environ := fmt.Sprintf("/proc/%d/environ", procs[0].pid)
	b, err := os.ReadFile(environ)
	if err != nil || !strings.Contains(string(b), openclaw.EnvModelToken+"=pmm-") {
		t.Fatalf("root cannot read alice's model token in her environment (%v): the test proves nothing", err)
	}
	_, token, _ := strings.Cut(string(b), openclaw.EnvModelToken+"=")
	token, _, _ = strings.Cut(token, "\x00")
	if strings.Contains(string(b), testAPIKey) {
		t.Error("alice's provider key is in her container's environment")
	}
	for _, thief := range []struct {
		who      string
		uid, gid int
	}{
		{"a login, uid 1000", 1000, 1000},
		{"bob's uid", procs[1].uid, procs[1].uid},
	} {
		if b, err := readAs(thief.uid, thief.gid, environ); err == nil || strings.Contains(string(b), token) {
			t.Errorf("%s read alice's environment (%d bytes)", thief.who, len(b))
		}
		if _, err := readAs(thief.uid, thief.gid, filepath.Join(a.A.State.Dir, "bots", procs[0].bot.ID, "config", "openclaw.json")); err == nil {
			t.Errorf("%s read alice's config", thief.who)
		}
	}

	t.Run("the root filesystem is read-only, /tmp a small tmpfs", func(t *testing.T) {
		c := procs[0].bot.ContainerID
		for _, path := range []string{"/pwned", "/etc/pwned", "/home/node/pwned", "/etc/openclaw/openclaw.json", "/etc/openclaw/pwned"} {
			if out, err := hostile(t, c, "write", path); err == nil {
				t.Errorf("the bot wrote %s: %s", path, out)
			}
		}
		for _, path := range []string{"/tmp/scratch", "/home/node/.openclaw/state.db", "/home/node/.openclaw/workspace/notes.md"} {
			if out, err := hostile(t, c, "write", path, "4096"); err != nil {
				t.Errorf("the bot cannot write %s: %s", path, out)
			}
		}
		if out, err := hostile(t, c, "write", "/tmp/big", strconv.Itoa(65<<20)); err == nil || !strings.Contains(out, "no space left") {
			t.Errorf("/tmp took 65 MiB: %v %s", err, out)
		}
		ins := dockerInspect(t, c)
		if ro, _ := dig(ins, "HostConfig", "ReadonlyRootfs").(bool); !ro {
			t.Error("ReadonlyRootfs is off")
		}
		if tmp, _ := dig(ins, "HostConfig", "Tmpfs", "/tmp").(string); !strings.Contains(tmp, "size=67108864") || !strings.Contains(tmp, "nosuid") || !strings.Contains(tmp, "nodev") {
			t.Errorf("tmpfs /tmp = %q", tmp)
		}
		if lc := dig(ins, "HostConfig", "LogConfig"); dig(ins, "HostConfig", "LogConfig", "Type") != "json-file" ||
			dig(ins, "HostConfig", "LogConfig", "Config", "max-size") != "10485760" || dig(ins, "HostConfig", "LogConfig", "Config", "max-file") != "3" {
			t.Errorf("log config = %v", lc)
		}
		mounts, _ := dig(ins, "Mounts").([]any)
		rw := map[string]bool{}
		for _, m := range mounts {
			mm := m.(map[string]any)
			rw[mm["Destination"].(string)], _ = mm["RW"].(bool)
		}
		if want := map[string]bool{"/etc/openclaw": false, "/home/node/.openclaw": true, "/home/node/.openclaw/workspace": true}; !maps.Equal(rw, want) {
			t.Errorf("mounts (destination: writable) = %v, want %v", rw, want)
		}
		env := containerEnv(t, c)
		if env["OPENCLAW_CONFIG_PATH"] != "/etc/openclaw/openclaw.json" || env["OPENCLAW_CONFIG_READONLY"] != "1" || env["HOME"] != "/home/node" || env["TMPDIR"] != "/tmp" {
			t.Errorf("env = %v", env)
		}
		if out, err := hostile(t, c, "id"); err != nil || out != fmt.Sprintf("ok: uid=%d gid=%d", procs[0].uid, procs[0].uid) {
			t.Errorf("hostile id = %q, %v", out, err)
		}
	})
}

// TestHostileBotFillsItsDisk is issue 6's fourth attack: a bot writes until its host's disk
// is full. Its agent measures its state and workspace, stops it once they pass its limit and
// keeps it stopped, saying why, with an event; the operator sees it in bots get and the
// metrics; raised above what it takes, the limit lets it run again.
func TestHostileBotFillsItsDisk(t *testing.T) {
	d := engine(t)
	p := startPMD(t, func(c *pmdConfig) {
		c.BotImage = testImage
		c.BotStartTimeout = time.Minute
		c.MetricsAddr = "127.0.0.1:0"
	})
	a := p.enrollDocker("edge-1", d, wire.Capacity{})
	p.waitStatus("edge-1", wire.HostOnline)
	const limit = 16 << 20
	req := botRequest("greedy", "edge-1")
	req.Resources.DiskBytes = limit
	if _, err := p.admin().CreateBot(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	b := p.waitBot("greedy", 90*time.Second, "running", running)
	if b.Resources.DiskBytes != limit {
		t.Fatalf("disk limit %d, want %d", b.Resources.DiskBytes, limit)
	}
	// 48 MiB, three times the limit; the bot may be stopped before it is done.
	out, _ := hostile(t, b.ContainerID, "fill", "/home/node/.openclaw/workspace", strconv.Itoa(48<<20))
	t.Logf("fill: %s", out)
	b = p.waitBot("greedy", 90*time.Second, "stopped over its disk limit", func(b wire.Bot) bool {
		return b.Status == wire.BotFailed && strings.Contains(b.LastError, "disk limit")
	})
	t.Logf("found at %d bytes used, %d over its limit: %s", b.DiskUsage, b.DiskUsage-limit, b.LastError)
	if st, _ := dig(dockerInspect(t, b.ContainerID), "State", "Running").(bool); !st {
		// What it had written by the time it was stopped: how far past its limit it got.
		var u nofollow.Usage
		bot, err := nofollow.Open(filepath.Join(a.A.State.Dir, "bots", b.ID, "workspace"))
		if err == nil {
			err = u.Add(bot)
			bot.Close()
		}
		t.Logf("stopped with %d bytes in its workspace (%v), %d past its limit", u.Bytes, err, u.Bytes-limit)
	}
	if b.DiskUsage <= limit {
		t.Errorf("disk use %d, want over the %d limit", b.DiskUsage, limit)
	}
	for _, want := range []string{"limit of 16MiB", "pmctl bots edit", "--purge"} {
		if !strings.Contains(b.LastError, want) {
			t.Errorf("last error %q lacks %q", b.LastError, want)
		}
	}
	if st, _ := dig(dockerInspect(t, b.ContainerID), "State", "Running").(bool); st {
		t.Error("the container still runs")
	}
	eventually(t, 10*time.Second, "the disk-limit event at pmd", func() bool {
		return strings.Contains(p.Logs.String(), `"action":"disk-limit"`)
	})
	m := scrape(t, p)
	if m["pocketmolt_bots_over_disk_limit"] != 1 || m[`pocketmolt_host_bot_disk_bytes{host="edge-1"}`] < limit ||
		m[`pocketmolt_bot_events_total{action="disk-limit"}`] < 1 {
		t.Errorf("metrics: over %v, host disk %v, events %v", m["pocketmolt_bots_over_disk_limit"],
			m[`pocketmolt_host_bot_disk_bytes{host="edge-1"}`], m[`pocketmolt_bot_events_total{action="disk-limit"}`])
	}
	// It stays stopped.
	time.Sleep(time.Second)
	if b := p.bot("greedy"); b.Status != wire.BotFailed {
		t.Fatalf("status %s after a second, want failed", b.Status)
	}

	if _, err := p.admin().EditBot(t.Context(), "greedy", wire.EditBotRequest{DiskBytes: 128 << 20}); err != nil {
		t.Fatal(err)
	}
	b = p.waitBot("greedy", 60*time.Second, "running again under a raised limit", running)
	if b.Resources.DiskBytes != 128<<20 || b.DiskUsage <= limit {
		t.Errorf("limit %d, use %d", b.Resources.DiskBytes, b.DiskUsage)
	}
	if _, err := p.admin().EditBot(t.Context(), "greedy", wire.EditBotRequest{DiskBytes: 1 << 20}); wire.CodeOf(err) != wire.CodeInvalidArgument {
		t.Errorf("a 1 MiB limit: %v, want invalid_argument", err)
	}
}

// TestLayout1BotIsMigrated: a bot made by an agent before this layout — one writable
// directory, config and gateway state together, mounted into a container running as uid 1000
// with a writable root, and links planted in it — is recreated in the new layout by the new
// agent: the old container and network go, the state is kept and given to the bot's own uid,
// and no link is followed.
func TestLayout1BotIsMigrated(t *testing.T) {
	d := engine(t)
	r := newBotsRig(t, d)
	outside := t.TempDir()
	canary := filepath.Join(outside, "canary")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(canary, []byte("root's\n"), 0o644))

	id := "old-" + randText(6)
	dir := filepath.Join(r.Dir, "bots", id)
	cfgDir, ws := filepath.Join(dir, "config"), filepath.Join(dir, "workspace")
	// As main's writeFiles made them for an agent running as root.
	for _, p := range []string{dir, cfgDir, ws, filepath.Join(cfgDir, "workspace"), filepath.Join(cfgDir, "agents")} {
		must(os.MkdirAll(p, 0o700))
	}
	oldCfg := botConfig(t, "anthropic/claude-sonnet-4-6")
	must(os.WriteFile(filepath.Join(cfgDir, "openclaw.json"), oldCfg, 0o600))
	must(os.WriteFile(filepath.Join(cfgDir, "agents", "sessions.db"), []byte("a conversation"), 0o600))
	must(os.WriteFile(filepath.Join(ws, "MEMORY.md"), []byte("remember"), 0o600))
	must(os.Symlink(canary, filepath.Join(cfgDir, "openclaw.json.tmp")))
	must(os.Symlink(outside, filepath.Join(cfgDir, "agents", "outside")))
	must(filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, 1000, 1000)
	}))
	must(os.Chown(dir, 0, 0))
	name := "pm-" + id
	labels := []string{"--label", "pocketmolt.bot=" + id, "--label", "pocketmolt.agent=" + r.Agent}
	docker := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("docker", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	oldNet := docker(append(append([]string{"network", "create"}, labels...), name)...)
	t.Cleanup(func() { _ = exec.Command("docker", "network", "rm", oldNet).Run() })
	oldCtr := docker(append(append([]string{"run", "-d", "--name", name}, labels...),
		"--label", "pocketmolt.spec=1", "--user", "1000:1000", "--network", name, "--init",
		"--cap-drop", "ALL", "--security-opt", "no-new-privileges:true", "-p", "127.0.0.1::18789",
		"--mount", "type=bind,src="+cfgDir+",dst=/home/node/.openclaw",
		"--mount", "type=bind,src="+ws+",dst=/home/node/.openclaw/workspace",
		"-e", "OPENCLAW_STATE_DIR=/home/node/.openclaw", "-e", "OPENCLAW_CONFIG_PATH=/home/node/.openclaw/openclaw.json",
		"-e", "OPENCLAW_GATEWAY_TOKEN=tok", "-e", "HOME=/home/node", testImage)...)
	t.Cleanup(func() { _ = exec.Command("docker", "rm", "-f", oldCtr).Run() })

	r.M.SetDesired(wire.DesiredBots{Bots: []wire.BotSpec{r.spec(id, 1, oldCfg)}})
	st := r.wait(id, 90*time.Second, "running in a new container", func(s wire.BotState) bool {
		return stateRunning(s) && s.ContainerID != "" && s.ContainerID != oldCtr
	})
	if err := exec.Command("docker", "inspect", oldCtr).Run(); err == nil {
		t.Error("the layout-1 container is still there")
	}
	if err := exec.Command("docker", "network", "inspect", oldNet).Run(); err == nil {
		t.Error("the layout-1 network is still there")
	}
	c := dockerInspect(t, st.ContainerID)
	if l := dig(c, "Config", "Labels", "pocketmolt.layout"); l != runtime.Layout {
		t.Errorf("layout label %v", l)
	}
	uidStr, _, _ := strings.Cut(dig(c, "Config", "User").(string), ":")
	uid, _ := strconv.Atoi(uidStr)
	if uid == 1000 || uid == 0 {
		t.Fatalf("the new container runs as %d", uid)
	}
	for path, want := range map[string]string{
		"state/agents/sessions.db": "a conversation",
		"workspace/MEMORY.md":      "remember",
		"state/openclaw.json":      string(oldCfg),
		"config/openclaw.json":     string(oldCfg),
	} {
		b, err := os.ReadFile(filepath.Join(dir, path))
		if err != nil || string(b) != want {
			t.Errorf("%s: %q, %v", path, b, err)
		}
	}
	for _, path := range []string{"state", "state/agents", "state/agents/sessions.db", "state/openclaw.json.tmp", "state/agents/outside", "workspace", "workspace/MEMORY.md"} {
		fi, err := os.Lstat(filepath.Join(dir, path))
		if err != nil {
			t.Fatal(err)
		}
		if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != uid || int(st.Gid) != uid {
			t.Errorf("%s owned by %d:%d, want %d", path, st.Uid, st.Gid, uid)
		}
	}
	for _, p := range []string{canary, outside} {
		fi, _ := os.Lstat(p)
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != 0 || st.Gid != 0 {
			t.Errorf("%s, outside, given to %d:%d through a link", p, st.Uid, st.Gid)
		}
	}
	if b, _ := os.ReadFile(canary); string(b) != "root's\n" {
		t.Errorf("canary changed: %q", b)
	}
	// From inside, the bot reads and writes its old state as its new user.
	if out, err := hostile(t, st.ContainerID, "read", "/home/node/.openclaw/agents/sessions.db"); err != nil || !strings.Contains(out, "a conversation") {
		t.Errorf("the bot cannot read its migrated state: %v %s", err, out)
	}
	if out, err := hostile(t, st.ContainerID, "write", "/home/node/.openclaw/workspace/MEMORY.md"); err != nil {
		t.Errorf("the bot cannot write its migrated workspace: %v %s", err, out)
	}
}
