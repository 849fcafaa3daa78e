package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/pocketmolt/pocketmolt/internal/agent"
	"github.com/pocketmolt/pocketmolt/internal/runtime/docker"
	"github.com/pocketmolt/pocketmolt/internal/standin"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// testImage is the stand-in gateway (with the hostile program) tests build, tagged for this
// run alone: TestMain removes it when the run ends, pass or fail, and never another run's.
var testImage = "pocketmolt/standin-gateway:e2e-" + randText(10)

var (
	imageOnce  sync.Once
	imageErr   error
	imageBuilt atomic.Bool
)

func TestMain(m *testing.M) {
	code := m.Run()
	if imageBuilt.Load() {
		if sdk, err := client.New(client.FromEnv); err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			if _, err := sdk.ImageRemove(ctx, testImage, client.ImageRemoveOptions{PruneChildren: true}); err != nil {
				fmt.Fprintf(os.Stderr, "remove test image %s: %v\n", testImage, err)
			}
			cancel()
			sdk.Close()
		}
	}
	os.Exit(code)
}

// testUIDBase is a bot uid base for one test agent: agents of concurrent tests (and runs) on
// this machine must not give two bots one uid. Bases are 1024 apart, more than a test runs
// bots.
func testUIDBase() int {
	return agent.DefaultBotUIDBase + agent.BotUIDRange + mrand.N(200_000)*1024
}

// engine returns the local Docker Engine, skipping the test without one (failing on CI), and
// builds the stand-in image once per run.
func engine(t *testing.T) *docker.Docker {
	t.Helper()
	d, err := docker.New("")
	if err == nil {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		_, err = d.Version(ctx)
		cancel()
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI needs a Docker Engine: %v", err)
		}
		t.Skipf("no Docker Engine: %v", err)
	}
	imageOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		imageErr = standin.Build(ctx, d, testImage, standin.HostilePackage)
		imageBuilt.Store(imageErr == nil)
	})
	if imageErr != nil {
		t.Fatalf("build stand-in image: %v", imageErr)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// enrollDocker enrolls a host that runs bots on the local engine, and removes its
// containers when the test ends.
func (p *testPMD) enrollDocker(name string, d *docker.Docker, capacity wire.Capacity) *testAgent {
	p.t.Helper()
	dir := filepath.Join(p.t.TempDir(), name)
	st, err := agent.Enroll(p.t.Context(), agent.EnrollOptions{Server: p.D.AgentAddr, Token: p.token(name), StateDir: dir})
	if err != nil {
		p.t.Fatalf("enroll %s: %v", name, err)
	}
	p.t.Cleanup(func() { removeContainers(d, st.Identity.HostID) })
	return runDockerAgent(p.t, st, d, capacity)
}

func runDockerAgent(t *testing.T, st *agent.State, d *docker.Docker, capacity wire.Capacity) *testAgent {
	ta := &testAgent{t: t, Logs: &syncBuf{}, done: make(chan struct{})}
	log := slog.New(slog.NewJSONHandler(ta.Logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ta.A = agent.New(st, d, "test", log)
	ta.A.Facts.Capacity = capacity
	ta.A.Bots.SetInterval(200 * time.Millisecond)
	if err := ta.A.Bots.SetUIDBase(testUIDBase()); err != nil {
		t.Fatal(err)
	}
	ta.A.MaxBackoff = 300 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	ta.cancel = cancel
	go func() { defer close(ta.done); ta.A.Run(ctx) }()
	t.Cleanup(ta.stop)
	return ta
}

func removeContainers(d *docker.Docker, agentID string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cs, _ := d.List(ctx, agentID)
	for _, c := range cs {
		_ = d.Remove(ctx, c.BotID)
	}
}

// dockerInspect runs `docker inspect` as an operator would.
func dockerInspect(t *testing.T, id string) map[string]any {
	t.Helper()
	out, err := exec.Command("docker", "inspect", id).Output()
	if err != nil {
		t.Fatalf("docker inspect %s: %v", id, err)
	}
	var v []map[string]any
	if err := json.Unmarshal(out, &v); err != nil || len(v) != 1 {
		t.Fatalf("docker inspect %s: %v", id, err)
	}
	return v[0]
}

func dig(m map[string]any, path ...string) any {
	var v any = m
	for _, p := range path {
		mm, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = mm[p]
	}
	return v
}

const (
	testAPIKey   = "sk-ant-test-0123456789abcdef"
	testTelegram = "123456789:AAbbCCddEEffGGhhIIjjKKllMMnnOOppQQr"
)

func botRequest(name, host string) wire.CreateBotRequest {
	return wire.CreateBotRequest{
		Name: name, Host: host, Model: "anthropic/claude-sonnet-4-6", APIKey: testAPIKey,
		TelegramToken: testTelegram, Resources: wire.Resources{MemoryBytes: 1 << 30, CPUs: 1, PIDs: 256},
	}
}

func (p *testPMD) bot(ref string) wire.Bot {
	p.t.Helper()
	b, err := p.admin().GetBot(p.t.Context(), ref)
	if err != nil {
		p.t.Fatalf("get bot %s: %v", ref, err)
	}
	return *b
}

func (p *testPMD) waitBot(ref string, timeout time.Duration, what string, cond func(wire.Bot) bool) wire.Bot {
	p.t.Helper()
	var last wire.Bot
	deadline := time.Now().Add(timeout)
	for {
		b, err := p.admin().GetBot(p.t.Context(), ref)
		if err == nil {
			last = *b
			if cond(last) {
				return last
			}
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("bot %s: timed out after %s waiting for %s; last: status=%s health=%s error=%q", ref, timeout, what, last.Status, last.Health, last.LastError)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func running(b wire.Bot) bool { return b.Status == wire.BotRunning && b.Health == wire.HealthHealthy }

func dockerPMD(t *testing.T) *testPMD {
	return startPMD(t, func(c *pmdConfig) {
		c.BotImage = testImage
		c.BotStartTimeout = time.Minute
	})
}

func TestBotLifecycleOnDocker(t *testing.T) {
	d := engine(t)
	p := dockerPMD(t)
	a := p.enrollDocker("edge-1", d, wire.Capacity{})
	p.waitStatus("edge-1", wire.HostOnline)

	created, err := p.admin().CreateBot(t.Context(), botRequest("alice", "edge-1"))
	if err != nil {
		t.Fatal(err)
	}
	if created.Status != wire.BotPending || created.HostName != "edge-1" || created.Image != testImage {
		t.Fatalf("created = %+v", created)
	}
	b := p.waitBot("alice", 90*time.Second, "running and healthy", running)
	p.waitBot("alice", 30*time.Second, "its memory use", func(b wire.Bot) bool { return b.MemoryUsage > 0 && b.MemoryUsage < 1<<30 })

	t.Run("the container is locked down", func(t *testing.T) {
		c := dockerInspect(t, b.ContainerID)
		if u, _ := dig(c, "Config", "User").(string); u == "" || u == "0" || strings.HasPrefix(u, "0:") || u == "root" {
			t.Errorf("user = %q, want non-root", u)
		}
		if got := dig(c, "HostConfig", "CapDrop"); !containsAll(got, "ALL") {
			t.Errorf("CapDrop = %v", got)
		}
		if got := dig(c, "HostConfig", "SecurityOpt"); !containsPrefix(got, "no-new-privileges") {
			t.Errorf("SecurityOpt = %v", got)
		}
		if got, _ := dig(c, "HostConfig", "Init").(bool); !got {
			t.Error("Init is off")
		}
		if got, _ := dig(c, "HostConfig", "Memory").(float64); int64(got) != 1<<30 {
			t.Errorf("Memory = %v", got)
		}
		if got, _ := dig(c, "HostConfig", "NanoCpus").(float64); int64(got) != 1e9 {
			t.Errorf("NanoCpus = %v", got)
		}
		if got, _ := dig(c, "HostConfig", "PidsLimit").(float64); int64(got) != 256 {
			t.Errorf("PidsLimit = %v", got)
		}
		if got, _ := dig(c, "HostConfig", "RestartPolicy", "Name").(string); got != "unless-stopped" {
			t.Errorf("RestartPolicy = %v", got)
		}
		if got, _ := dig(c, "Config", "StopTimeout").(float64); got != 30 {
			t.Errorf("StopTimeout = %v", got)
		}
		ports, _ := dig(c, "HostConfig", "PortBindings", "18789/tcp").([]any)
		if len(ports) == 0 {
			t.Fatal("gateway port not published")
		}
		for _, pb := range ports {
			if ip := dig(pb.(map[string]any), "HostIp"); ip != "127.0.0.1" {
				t.Errorf("port bound to %v, want 127.0.0.1 only", ip)
			}
		}
		for _, nb := range dig(c, "NetworkSettings", "Ports", "18789/tcp").([]any) {
			if ip := dig(nb.(map[string]any), "HostIp"); ip != "127.0.0.1" {
				t.Errorf("port bound to %v, want 127.0.0.1 only", ip)
			}
		}
		labels, _ := dig(c, "Config", "Labels").(map[string]any)
		if labels["pocketmolt.bot"] != b.ID || labels["pocketmolt.spec"] != "1" {
			t.Errorf("labels = %v", labels)
		}
		raw, _ := json.Marshal(labels)
		for _, secret := range []string{testAPIKey, testTelegram} {
			if strings.Contains(string(raw), secret) {
				t.Error("a secret is in the labels")
			}
		}
		nets, _ := dig(c, "NetworkSettings", "Networks").(map[string]any)
		if len(nets) != 1 || nets["pm-"+b.ID] == nil {
			t.Errorf("networks = %v, want only the bot's own", keys(nets))
		}
		dir := filepath.Join(a.A.State.Dir, "bots", b.ID)
		for sub, perm := range map[string]os.FileMode{"state": 0o700, "workspace": 0o700, "config": 0o750} {
			fi, err := os.Stat(filepath.Join(dir, sub))
			if err != nil || fi.Mode().Perm() != perm {
				t.Errorf("%s: %v %v, want %v", sub, fi.Mode(), err, perm)
			}
		}
		cfg, err := os.ReadFile(filepath.Join(dir, "config", "openclaw.json"))
		if err != nil || strings.Contains(string(cfg), testAPIKey) || strings.Contains(string(cfg), testTelegram) || !strings.Contains(string(cfg), "${TELEGRAM_BOT_TOKEN}") {
			t.Errorf("openclaw.json holds a secret or lacks the telegram reference: %v", err)
		}
	})

	t.Run("chat goes pmd → tunnel → agent → gateway", func(t *testing.T) {
		r, err := p.admin().ChatBot(t.Context(), "alice", wire.ChatRequest{Message: "hello there"})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(r.Reply, "hello there") || r.Usage.TotalTokens == 0 || r.Usage.TotalTokens != r.Usage.PromptTokens+r.Usage.CompletionTokens {
			t.Fatalf("reply = %+v", r)
		}
	})

	t.Run("a streamed chat arrives as server-sent events through the tunnel", func(t *testing.T) {
		body := strings.NewReader(`{"model":"openclaw","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"one two three"}]}`)
		resp, err := p.D.Bots.Gateway(t.Context(), "alice", http.MethodPost, "/v1/chat/completions",
			http.Header{"Content-Type": {"application/json"}, "X-Openclaw-Session-Key": {"e2e-sse"}}, body)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || !strings.HasPrefix(ct, "text/event-stream") {
			t.Fatalf("status %d, content type %q", resp.StatusCode, ct)
		}
		lines := make(chan string, 100)
		go scanLines(resp.Body, lines)
		waitLine(t, lines, `"usage"`)
		waitLine(t, lines, "data: [DONE]")
	})

	t.Run("the gateway refuses a request without pmd's token", func(t *testing.T) {
		hc, err := p.D.Fleet.Client(a.hostID())
		if err != nil {
			t.Fatal(err)
		}
		resp, err := hc.Post("http://agent/v1/bots/"+b.ID+"/gateway/v1/chat/completions", "application/json",
			strings.NewReader(`{"model":"openclaw","messages":[{"role":"user","content":"hi"}]}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("status %d, want 401", resp.StatusCode)
		}
	})

	t.Run("health", func(t *testing.T) {
		pr, err := p.admin().BotHealth(t.Context(), "alice")
		if err != nil {
			t.Fatal(err)
		}
		if pr.Startupz.Status != 200 || pr.Healthz.Status != 200 || pr.Readyz.Status != 200 {
			t.Fatalf("probes = %+v", pr)
		}
	})

	t.Run("logs", func(t *testing.T) {
		rc, err := p.admin().BotLogs(t.Context(), "alice", logsOptions(false, 100))
		if err != nil {
			t.Fatal(err)
		}
		out := readAll(rc)
		if !strings.Contains(out, "listening") {
			t.Fatalf("logs = %q", out)
		}
		for _, secret := range []string{testAPIKey, testTelegram} {
			if strings.Contains(out, secret) {
				t.Fatal("a secret is in the logs")
			}
		}
		// Follow: a chat adds a line that arrives on the open stream.
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		rc, err = p.admin().BotLogs(ctx, "alice", logsOptions(true, 0))
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		lines := make(chan string, 100)
		go scanLines(rc, lines)
		if _, err := p.admin().ChatBot(t.Context(), "alice", wire.ChatRequest{Message: "ping"}); err != nil {
			t.Fatal(err)
		}
		waitLine(t, lines, "/v1/chat/completions")
	})

	t.Run("stop, start, restart", func(t *testing.T) {
		if _, err := p.admin().StopBot(t.Context(), "alice"); err != nil {
			t.Fatal(err)
		}
		p.waitBot("alice", 60*time.Second, "stopped", func(b wire.Bot) bool { return b.Status == wire.BotStopped })
		if st, _ := dig(dockerInspect(t, b.ContainerID), "State", "Running").(bool); st {
			t.Fatal("container still running after stop")
		}
		if _, err := p.admin().StartBot(t.Context(), "alice"); err != nil {
			t.Fatal(err)
		}
		b2 := p.waitBot("alice", 60*time.Second, "running again", running)
		if b2.ContainerID != b.ContainerID {
			t.Fatalf("start recreated the container: %s → %s", b.ContainerID, b2.ContainerID)
		}
		before := dig(dockerInspect(t, b.ContainerID), "State", "StartedAt")
		if _, err := p.admin().RestartBot(t.Context(), "alice"); err != nil {
			t.Fatal(err)
		}
		p.waitBot("alice", 60*time.Second, "running after restart", running)
		if after := dig(dockerInspect(t, b.ContainerID), "State", "StartedAt"); after == before {
			t.Fatal("restart did not restart the container")
		}
	})

	t.Run("a container removed by hand comes back", func(t *testing.T) {
		if out, err := exec.Command("docker", "rm", "-f", b.ContainerID).CombinedOutput(); err != nil {
			t.Fatalf("docker rm: %v %s", err, out)
		}
		b3 := p.waitBot("alice", 60*time.Second, "a new container", func(x wire.Bot) bool { return running(x) && x.ContainerID != b.ContainerID })
		b = b3
	})

	t.Run("a container stopped by hand is started again", func(t *testing.T) {
		if out, err := exec.Command("docker", "stop", "-t", "1", b.ContainerID).CombinedOutput(); err != nil {
			t.Fatalf("docker stop: %v %s", err, out)
		}
		eventually(t, 30*time.Second, "running again", func() bool {
			r, _ := dig(dockerInspect(t, b.ContainerID), "State", "Running").(bool)
			return r
		})
		p.waitBot("alice", 60*time.Second, "healthy", func(x wire.Bot) bool { return running(x) && x.ContainerID == b.ContainerID })
	})

	t.Run("delete keeps the workspace, purge removes it", func(t *testing.T) {
		dir := filepath.Join(a.A.State.Dir, "bots", b.ID)
		if _, err := p.admin().DeleteBot(t.Context(), "alice", false); err != nil {
			t.Fatal(err)
		}
		eventually(t, 60*time.Second, "alice gone", func() bool {
			_, err := p.admin().GetBot(t.Context(), "alice")
			return wire.CodeOf(err) == wire.CodeNotFound
		})
		if err := exec.Command("docker", "inspect", b.ContainerID).Run(); err == nil {
			t.Fatal("container still exists after delete")
		}
		if _, err := os.Stat(filepath.Join(dir, "workspace")); err != nil {
			t.Fatalf("workspace gone without purge: %v", err)
		}

		bob, err := p.admin().CreateBot(t.Context(), botRequest("bob", ""))
		if err != nil {
			t.Fatal(err)
		}
		p.waitBot("bob", 90*time.Second, "running", running)
		if _, err := p.admin().DeleteBot(t.Context(), "bob", true); err != nil {
			t.Fatal(err)
		}
		eventually(t, 60*time.Second, "bob gone with its workspace", func() bool {
			_, err := p.admin().GetBot(t.Context(), "bob")
			_, serr := os.Stat(filepath.Join(a.A.State.Dir, "bots", bob.ID))
			return wire.CodeOf(err) == wire.CodeNotFound && os.IsNotExist(serr)
		})
	})
}
