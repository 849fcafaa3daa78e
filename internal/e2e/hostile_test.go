package e2e_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/agent"
	"github.com/pocketmolt/pocketmolt/internal/openclaw"
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
		Env:          map[string]string{openclaw.EnvGatewayToken: "tok-" + id, "ANTHROPIC_API_KEY": testAPIKey},
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
	b, err := openclaw.Config(openclaw.Options{Model: model})
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
