package e2e_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/apiclient"
	"github.com/pocketmolt/pocketmolt/internal/ctlconfig"
	"github.com/pocketmolt/pocketmolt/internal/runtime/docker"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// buildBinaries compiles pmd and pmagent once per test.
func buildBinaries(t *testing.T) (pmdBin, agentBin string) {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"pmd", "pmagent"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, name), "github.com/pocketmolt/pocketmolt/cmd/"+name)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", name, err, out)
		}
	}
	return filepath.Join(dir, "pmd"), filepath.Join(dir, "pmagent")
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// proc is a daemon started as its own process.
type proc struct {
	cmd *exec.Cmd
	out *syncBuf
}

func start(t *testing.T, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(bin, args...), out: &syncBuf{}}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.kill() })
	return p
}

// kill sends SIGKILL: no shutdown code runs.
func (p *proc) kill() {
	if p.cmd.ProcessState == nil {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		_ = p.cmd.Wait()
	}
}

func run(t *testing.T, bin string, args ...string) string {
	t.Helper()
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestBotsSurviveSIGKILLOfAgentAndPMD(t *testing.T) {
	d := engine(t)
	pmdBin, agentBin := buildBinaries(t)
	data, state := filepath.Join(t.TempDir(), "pm"), filepath.Join(t.TempDir(), "agent")
	agentAddr, adminAddr, publicAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	run(t, pmdBin, "init", "--data-dir", data, "--agent-addr", agentAddr, "--admin-addr", adminAddr, "--public-addr", publicAddr,
		"--heartbeat-interval", "500ms", "--bot-image", testImage)
	serve := func() *proc { return start(t, pmdBin, "serve", "--data-dir", data) }
	pmdProc := serve()

	cfg, err := ctlconfig.Load(filepath.Join(data, "pmctl.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cc, _ := cfg.Current()
	admin, err := apiclient.New(cc)
	if err != nil {
		t.Fatal(err)
	}
	var tok *wire.TokenResponse
	eventually(t, 10*time.Second, "pmd up", func() bool {
		tok, err = admin.CreateHostToken(t.Context(), wire.TokenRequest{Name: "edge-1"})
		return err == nil
	})
	if tok.Server != agentAddr {
		t.Errorf("token names server %q, want %q", tok.Server, agentAddr)
	}
	run(t, agentBin, "enroll", "--server", tok.Server, "--token", tok.Token, "--state-dir", state, "--config", "/dev/null")
	var id struct {
		HostID string `json:"host_id"`
	}
	b, _ := os.ReadFile(filepath.Join(state, "identity.json"))
	_ = json.Unmarshal(b, &id)
	t.Cleanup(func() { removeContainers(d, id.HostID) })
	// pmagent run keeps its bot firewall (the default, when this test may change the
	// machine's firewall) and leaves it when it stops.
	firewallArgs := []string{"--bot-firewall=false"}
	if os.Geteuid() == 0 {
		firewallArgs = nil
	}
	t.Cleanup(func() {
		if firewallArgs != nil {
			return
		}
		out, err := exec.Command(agentBin, "firewall", "remove", "--state-dir", state, "--config", "/dev/null").CombinedOutput()
		if err != nil {
			t.Errorf("pmagent firewall remove: %v\n%s", err, out)
		}
	})
	// The unit installs the rules before the Engine starts at boot; a host not yet enrolled
	// has nothing to install.
	if out := run(t, agentBin, "firewall", "install", "--state-dir", t.TempDir(), "--config", "/dev/null"); !strings.Contains(out, "not enrolled yet") {
		t.Errorf("pmagent firewall install before enrollment: %s", out)
	}
	if firewallArgs == nil {
		out := run(t, agentBin, "firewall", "install", "--state-dir", state, "--config", "/dev/null")
		chain := "POCKETMOLT-" + docker.BridgePrefix(id.HostID) + "-INPUT"
		if !strings.Contains(out, "installed the bot firewall rules of host "+id.HostID) || exec.Command("iptables", "-w", "-S", chain).Run() != nil {
			t.Fatalf("pmagent firewall install: %s; %s missing", out, chain)
		}
	}
	agentRun := func() *proc {
		return start(t, agentBin, append([]string{"run", "--state-dir", state, "--config", "/dev/null", "--bot-interval", "200ms", "--max-backoff", "500ms", "--bot-uid-base", strconv.Itoa(testUIDBase())}, firewallArgs...)...)
	}
	agentProc := agentRun()

	waitBot := func(what string, cond func(wire.Bot) bool) wire.Bot {
		t.Helper()
		var last wire.Bot
		deadline := time.Now().Add(90 * time.Second)
		for time.Now().Before(deadline) {
			if b, err := admin.GetBot(t.Context(), "alice"); err == nil {
				if last = *b; cond(last) {
					return last
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("timed out waiting for %s: %+v\npmd:\n%s\nagent:\n%s", what, last, pmdProc.out, agentProc.out)
		return last
	}
	eventually(t, 20*time.Second, "host online", func() bool {
		h, err := admin.GetHost(t.Context(), "edge-1")
		return err == nil && h.Status == wire.HostOnline
	})
	if _, err := admin.CreateBot(t.Context(), botRequest("alice", "")); err != nil {
		t.Fatal(err)
	}
	bot := waitBot("running", running)
	before := dockerInspect(t, bot.ContainerID)
	if rules := run(t, agentBin, "firewall", "rules", "--state-dir", state, "--config", "/dev/null"); !strings.Contains(rules, "-I INPUT 1 -i pm") {
		t.Fatalf("pmagent firewall rules:\n%s", rules)
	}
	chain := "POCKETMOLT-" + docker.BridgePrefix(id.HostID) + "-INPUT"
	if out, err := exec.Command("iptables", "-w", "-S", chain).CombinedOutput(); err != nil && firewallArgs == nil {
		t.Fatalf("pmagent run installed no %s: %v %s", chain, err, out)
	}

	agentProc.kill()
	pmdProc.kill()
	time.Sleep(time.Second)
	if r, _ := dig(dockerInspect(t, bot.ContainerID), "State", "Running").(bool); !r {
		t.Fatal("the bot stopped when the agent and pmd were killed")
	}

	pmdProc = serve()
	agentProc = agentRun()
	eventually(t, 30*time.Second, "host online again", func() bool {
		h, err := admin.GetHost(t.Context(), "edge-1")
		return err == nil && h.Status == wire.HostOnline
	})
	after := waitBot("running after restarts", func(b wire.Bot) bool { return running(b) && b.ObservedVersion == bot.SpecVersion })
	if after.ContainerID != bot.ContainerID {
		t.Fatalf("container replaced: %s → %s", bot.ContainerID, after.ContainerID)
	}
	now := dockerInspect(t, bot.ContainerID)
	for _, path := range [][]string{{"Created"}, {"State", "StartedAt"}} {
		if a, b := fmt.Sprint(dig(before, path...)), fmt.Sprint(dig(now, path...)); a != b {
			t.Errorf("%v changed: %s → %s (the container was recreated or restarted)", path, a, b)
		}
	}
	if bytes.Contains([]byte(agentProc.out.String()), []byte("creating")) {
		t.Errorf("agent log mentions creating a container after the restart")
	}
}
