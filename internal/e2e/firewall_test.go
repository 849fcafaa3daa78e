package e2e_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/agent"
	"github.com/pocketmolt/pocketmolt/internal/firewall"
	"github.com/pocketmolt/pocketmolt/internal/pmagent"
	"github.com/pocketmolt/pocketmolt/internal/runtime"
	"github.com/pocketmolt/pocketmolt/internal/runtime/docker"
	"github.com/pocketmolt/pocketmolt/internal/standin"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// hostileImage is the stand-in gateway with /hostile beside it, built by the firewall test
// and removed after it.
const hostileImage = "pocketmolt/standin-gateway:e2e-firewall"

// needNetAdmin skips a test that changes the machine's firewall and routes without root and
// the ip and iptables commands, and fails it on CI.
func needNetAdmin(t *testing.T) {
	t.Helper()
	var missing string
	if os.Geteuid() != 0 {
		missing = "root"
	}
	for _, c := range []string{"ip", "iptables", "iptables-save", "iptables-restore"} {
		if _, err := exec.LookPath(c); err != nil {
			missing = c
		}
	}
	if missing == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI needs %s for the firewall test", missing)
	}
	t.Skipf("no %s", missing)
}

func must(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func randN(n int64) int64 {
	v, _ := rand.Int(rand.Reader, big.NewInt(n))
	return v.Int64()
}

// runFirewalledAgent runs a Docker agent as pmagent run does, with fw fencing its bots.
func runFirewalledAgent(t *testing.T, st *agent.State, d *docker.Docker, fw agent.Firewall, logs *syncBuf) *testAgent {
	ta := &testAgent{t: t, Logs: logs, done: make(chan struct{})}
	log := slog.New(slog.NewJSONHandler(ta.Logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ta.A = agent.New(st, d, "test", log)
	ta.A.Bots.SetInterval(200 * time.Millisecond)
	ta.A.Bots.SetFirewall(fw, 300*time.Millisecond)
	ta.A.MaxBackoff = 300 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	ta.cancel = cancel
	go func() { defer close(ta.done); ta.A.Run(ctx) }()
	t.Cleanup(ta.stop)
	return ta
}

// outside is a host of the test's own beyond this machine: a network namespace behind a veth
// pair at a documentation address, with the metadata address and a private address of its
// own that only the given bot's traffic is routed to.
type outside struct {
	ns, addr, metadata, private, port string
}

func newOutside(t *testing.T, hostileBin string, botSubnet netip.Prefix) outside {
	t.Helper()
	id := randHex(3)
	o := outside{ns: "pmfwe" + id, metadata: "169.254.169.254", port: "4712"}
	// A /29 of 203.0.113.0/24 that nothing on this machine uses.
	used := usedPrefixes(t)
	var sub netip.Prefix
	for i, start := 0, randN(32); i < 32 && !sub.IsValid(); i++ {
		cand := netip.PrefixFrom(netip.AddrFrom4([4]byte{203, 0, 113, byte(8 * ((start + int64(i)) % 32))}), 29)
		if !slices.ContainsFunc(used, cand.Overlaps) {
			sub = cand
		}
	}
	if !sub.IsValid() {
		t.Fatal("no free /29 in 203.0.113.0/24")
	}
	hostSide, nsSide := sub.Addr().Next(), sub.Addr().Next().Next()
	o.addr = nsSide.String()
	o.private = fmt.Sprintf("172.31.%d.%d", 1+randN(250), 1+randN(250))
	veth := "vpmfw" + id

	must(t, "ip", "netns", "add", o.ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", o.ns).Run() })
	must(t, "ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", o.ns)
	t.Cleanup(func() { exec.Command("ip", "link", "del", veth).Run() })
	must(t, "ip", "addr", "add", hostSide.String()+"/29", "dev", veth)
	must(t, "ip", "link", "set", veth, "up")
	must(t, "ip", "-n", o.ns, "addr", "add", o.addr+"/29", "dev", "eth0")
	must(t, "ip", "-n", o.ns, "link", "set", "eth0", "up")
	must(t, "ip", "-n", o.ns, "link", "set", "lo", "up")
	must(t, "ip", "-n", o.ns, "route", "add", "default", "via", hostSide.String())
	for _, a := range []string{o.metadata, o.private} {
		must(t, "ip", "-n", o.ns, "addr", "add", a+"/32", "dev", "lo")
	}
	// The metadata and private addresses are routed to the namespace only for the bot's
	// traffic, through a table and a rule of the test's own: the machine's routes stay as
	// they were.
	var table string
	for {
		table = fmt.Sprint(20000 + randN(40000))
		if b, err := exec.Command("ip", "-4", "route", "show", "table", table).CombinedOutput(); err != nil || strings.TrimSpace(string(b)) == "" {
			break // "FIB table does not exist": free
		}
	}
	pref := fmt.Sprint(10000 + randN(20000))
	for _, a := range []string{o.metadata, o.private} {
		must(t, "ip", "route", "add", a+"/32", "via", o.addr, "dev", veth, "table", table)
	}
	t.Cleanup(func() { exec.Command("ip", "-4", "route", "flush", "table", table).Run() })
	must(t, "ip", "rule", "add", "from", botSubnet.String(), "lookup", table, "pref", pref)
	t.Cleanup(func() {
		exec.Command("ip", "rule", "del", "from", botSubnet.String(), "lookup", table, "pref", pref).Run()
	})

	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", o.ns, hostileBin, "serve", ":"+o.port, "outside")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); cmd.Wait() })
	if line, _ := bufio.NewReader(out).ReadString('\n'); !strings.HasPrefix(line, "listening on") {
		t.Fatalf("hostile serve in %s: %q", o.ns, line)
	}
	return o
}

// usedPrefixes are the IPv4 networks and addresses this machine's routes and interfaces name,
// but for default routes.
func usedPrefixes(t *testing.T) []netip.Prefix {
	var out []netip.Prefix
	text := must(t, "ip", "-4", "route", "show", "table", "all") + must(t, "ip", "-4", "-o", "addr", "show")
	for _, line := range strings.Split(text, "\n") {
		for _, f := range strings.Fields(line) {
			if p, err := netip.ParsePrefix(f); err == nil && p.Bits() > 0 {
				out = append(out, p.Masked())
			} else if a, err := netip.ParseAddr(f); err == nil && a.Is4() {
				out = append(out, netip.PrefixFrom(a, 32))
			}
		}
	}
	return out
}

// botNet is a bot container's address and gateway on its own network.
func botNet(t *testing.T, containerID string) (ip, gateway netip.Addr, subnet netip.Prefix) {
	t.Helper()
	nets, _ := dig(dockerInspect(t, containerID), "NetworkSettings", "Networks").(map[string]any)
	for _, n := range nets {
		m := n.(map[string]any)
		ip, _ = netip.ParseAddr(fmt.Sprint(m["IPAddress"]))
		gateway, _ = netip.ParseAddr(fmt.Sprint(m["Gateway"]))
		bits, _ := m["IPPrefixLen"].(float64)
		subnet = netip.PrefixFrom(ip, int(bits)).Masked()
	}
	if !ip.IsValid() || !gateway.IsValid() {
		t.Fatalf("container %s has no network address: %v", containerID, nets)
	}
	return ip, gateway, subnet
}

// connectFrom runs hostile connect inside the container: "" when addr answered, else why not.
func connectFrom(containerID, addr string) string {
	out, err := exec.Command("docker", "exec", containerID, "/hostile", "connect", addr, "3s").CombinedOutput()
	if err == nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

func reaches(t *testing.T, containerID string, addrs ...string) {
	t.Helper()
	for _, a := range addrs {
		if why := connectFrom(containerID, a); why != "" {
			t.Errorf("the bot cannot reach %s: %s", a, why)
		}
	}
}

// refused checks that the bot's connections to addrs are refused at once (rejected, not
// dropped).
func refused(t *testing.T, containerID string, addrs ...string) {
	t.Helper()
	for _, a := range addrs {
		switch why := connectFrom(containerID, a); {
		case why == "":
			t.Errorf("the bot reached %s", a)
		case !strings.Contains(why, "connection refused"):
			t.Errorf("%s: %s, want connection refused", a, why)
		}
	}
}

// hostAddrs are this machine's own addresses a bot could try: docker0's and the primary one
// (the source of the default route), when it has them.
func hostAddrs(t *testing.T) []string {
	var out []string
	if ifc, err := net.InterfaceByName("docker0"); err == nil {
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Is4() {
				out = append(out, p.Addr().String())
			}
		}
	}
	if b, err := exec.Command("ip", "-4", "route", "get", "1.1.1.1").Output(); err == nil {
		f := strings.Fields(string(b))
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "src" {
				out = append(out, f[i+1])
			}
		}
	}
	if len(out) == 0 {
		t.Log("this machine has neither docker0 nor a default route: only the bridges' and the veth's addresses are tried")
	}
	return out
}

// listenOn serves reply to every connection on addr until the test ends. It reports false
// when something else (the agent's own model endpoint) already listens there.
func listenOn(t *testing.T, addr, reply string) bool {
	t.Helper()
	ln, err := net.Listen("tcp4", addr)
	if errors.Is(err, syscall.EADDRINUSE) {
		t.Logf("%s is taken (the agent's endpoint?): trying it as it is", addr)
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, reply+"\n")
			c.Close()
		}
	}()
	return true
}

func chainRules(t *testing.T, chain string) int {
	out, err := exec.Command("iptables", "-w", "-S", chain).Output()
	if err != nil {
		return -1
	}
	return strings.Count(string(out), "\n-A ")
}

// TestBotFirewallOnDocker attacks from inside a live bot container on the real Engine: with
// the agent's firewall, the host (at every address), other bots, the metadata address and a
// private address are refused while an outside host stays reachable; without it (as on main)
// every one of them answers.
func TestBotFirewallOnDocker(t *testing.T) {
	d := engine(t)
	needNetAdmin(t)
	ctx := t.Context()
	if err := standin.Build(ctx, d, hostileImage, standin.HostilePackage); err != nil {
		t.Fatalf("build %s: %v", hostileImage, err)
	}
	t.Cleanup(func() { exec.Command("docker", "rmi", "-f", hostileImage).Run() })
	hostileBin := filepath.Join(t.TempDir(), "hostile")
	if out, err := exec.Command("go", "build", "-o", hostileBin, standin.HostilePackage).CombinedOutput(); err != nil {
		t.Fatalf("build hostile: %v: %s", err, out)
	}

	p := startPMD(t, func(c *pmdConfig) {
		c.BotImage = hostileImage
		c.BotStartTimeout = time.Minute
	})
	st, err := agent.Enroll(ctx, agent.EnrollOptions{Server: p.D.AgentAddr, Token: p.token("edge-fw"), StateDir: filepath.Join(t.TempDir(), "edge-fw")})
	if err != nil {
		t.Fatal(err)
	}
	bridges := docker.BridgePrefix(st.Identity.HostID)
	agentLogs := &syncBuf{}
	newFW := func(allow ...string) *firewall.Firewall {
		rules, err := firewall.ParseRules(allow)
		if err != nil {
			t.Fatal(err)
		}
		fw, err := firewall.ForBots(bridges, rules, docker.DefaultSubnetPool, slog.New(slog.NewJSONHandler(agentLogs, nil)))
		if err != nil {
			t.Fatal(err)
		}
		return fw
	}
	fw := newFW()
	t.Cleanup(func() { fw.Remove(context.Background()) })
	t.Cleanup(func() { removeContainers(d, st.Identity.HostID) })
	a := runFirewalledAgent(t, st, d, fw, agentLogs)
	p.waitStatus("edge-fw", wire.HostOnline)

	for _, name := range []string{"fw-a", "fw-b"} {
		if _, err := p.admin().CreateBot(ctx, botRequest(name, "edge-fw")); err != nil {
			t.Fatal(err)
		}
	}
	botA := p.waitBot("fw-a", 90*time.Second, "running and healthy behind the firewall", running)
	botB := p.waitBot("fw-b", 90*time.Second, "running and healthy behind the firewall", running)
	_, gwA, subnetA := botNet(t, botA.ContainerID)
	ipB, gwB, _ := botNet(t, botB.ContainerID)
	netOpts, _ := dig(dockerNetworkInspect(t, "pm-"+botA.ID), "Options").(map[string]any)
	if name, _ := netOpts["com.docker.network.bridge.name"].(string); !strings.HasPrefix(name, bridges) {
		t.Fatalf("bot network's bridge is %q, want a name starting %q", name, bridges)
	}

	// A listener of the host on every address, as pmd's agent listener is by default.
	ln, err := net.Listen("tcp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, "host\n")
			c.Close()
		}
	}()
	hostPort := fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
	out := newOutside(t, hostileBin, subnetA)
	vethHost := netip.MustParseAddr(out.addr).Prev().String()

	hostTargets := []string{gwA.String(), gwB.String(), vethHost}
	hostTargets = append(hostTargets, hostAddrs(t)...)
	var hostAddrsPorts []string
	for _, h := range hostTargets {
		hostAddrsPorts = append(hostAddrsPorts, net.JoinHostPort(h, hostPort))
	}
	otherBot := net.JoinHostPort(ipB.String(), "18789")
	metadata := net.JoinHostPort(out.metadata, out.port)
	private := net.JoinHostPort(out.private, out.port)
	internet := net.JoinHostPort(out.addr, out.port)
	attacks := append(append([]string(nil), hostAddrsPorts...), metadata, private)
	t.Logf("from bot %s: attacks %v, another bot %s, the outside %s", botA.ID, attacks, otherBot, internet)

	t.Run("refused: the host at every address, another bot, metadata, a private address", func(t *testing.T) {
		refused(t, botA.ContainerID, attacks...)
		refused(t, botA.ContainerID, otherBot)
		reaches(t, botA.ContainerID, internet)
	})

	t.Run("the model endpoint: each bot reaches it at its own gateway only", func(t *testing.T) {
		port := strconv.Itoa(runtime.ModelPort)
		ipA, _, _ := botNet(t, botA.ContainerID)
		for _, want := range []struct {
			id     string
			ip, gw netip.Addr
		}{{botA.ContainerID, ipA, gwA}, {botB.ContainerID, ipB, gwB}} {
			if c, err := d.Inspect(ctx, want.id); err != nil || c.Gateway != want.gw || c.IP != want.ip {
				t.Errorf("Inspect(%s) = gateway %s, address %s, %v; want %s, %s", want.id, c.Gateway, c.IP, err, want.gw, want.ip)
			}
		}
		// Listeners where the agent serves each bot's model endpoint, and one in bot B's
		// container on the same port.
		mineA := listenOn(t, net.JoinHostPort(gwA.String(), port), "endpoint-of-A")
		listenOn(t, net.JoinHostPort(gwB.String(), port), "endpoint-of-B")
		if out, err := exec.Command("docker", "exec", "-d", botB.ContainerID, "/hostile", "serve", ":"+port, "bot-B").CombinedOutput(); err != nil {
			t.Fatalf("listen in bot B: %v: %s", err, out)
		}
		eventually(t, 10*time.Second, "bot B listening on "+port, func() bool {
			return exec.Command("docker", "exec", botB.ContainerID, "/hostile", "connect", "127.0.0.1:"+port, "1s").Run() == nil
		})

		// By name, as the bot's openclaw.json has it: its own gateway, through the firewall.
		model := net.JoinHostPort(runtime.ModelHost, port)
		got, err := exec.Command("docker", "exec", botA.ContainerID, "/hostile", "connect", model, "3s").CombinedOutput()
		if err != nil || (mineA && !strings.Contains(string(got), "endpoint-of-A")) {
			t.Errorf("bot A → %s: %v: %s", model, err, got)
		}
		reaches(t, botA.ContainerID, net.JoinHostPort(gwA.String(), port))
		reaches(t, botB.ContainerID, net.JoinHostPort(gwB.String(), port))
		refused(t, botA.ContainerID,
			net.JoinHostPort(gwB.String(), port),     // another bot's endpoint
			net.JoinHostPort(ipB.String(), port),     // another bot's container on that port
			net.JoinHostPort(vethHost, port),         // the host's other addresses
			net.JoinHostPort(gwA.String(), hostPort), // another port of its own gateway
		)
		refused(t, botB.ContainerID, net.JoinHostPort(gwA.String(), port))
		// From outside the host (the outside namespace routes everything through it).
		for _, gw := range []netip.Addr{gwA, gwB} {
			addr := net.JoinHostPort(gw.String(), port)
			got, err := exec.Command("ip", "netns", "exec", out.ns, hostileBin, "connect", addr, "3s").CombinedOutput()
			if err == nil || !strings.Contains(string(got), "connection refused") {
				t.Errorf("outside → %s: %v: %s, want connection refused", addr, err, got)
			}
		}
	})

	t.Run("the host's DNS servers answer the bot on port 53", func(t *testing.T) {
		servers, err := firewall.HostResolvers()
		if err != nil {
			t.Fatal(err)
		}
		tried := 0
		for _, s := range servers {
			addr := net.JoinHostPort(s.String(), "53")
			c, err := net.DialTimeout("tcp", addr, 2*time.Second)
			if err != nil {
				continue // the host itself cannot reach it over TCP: nothing to compare
			}
			c.Close()
			tried++
			reaches(t, botA.ContainerID, addr)
			if slices.ContainsFunc(firewall.Refused(), func(p netip.Prefix) bool { return p.Contains(s) }) {
				refused(t, botA.ContainerID, net.JoinHostPort(s.String(), "54")) // port 53 only
			}
		}
		if tried == 0 {
			t.Skipf("no DNS server of this host (%v) answers TCP on port 53", servers)
		}
	})

	t.Run("rules flushed and jumps removed, as a restart or an operator would, come back", func(t *testing.T) {
		in, fwd, rej := fw.Chains()
		const parent = "DOCKER-USER"
		// In one transaction: the agent checks every 300 ms, and a check between two separate
		// commands would put back what the next one expects gone.
		restore := exec.Command("iptables-restore", "-w", "--noflush")
		restore.Stdin = strings.NewReader(fmt.Sprintf("*filter\n-D INPUT -i %[1]s+ -j %[2]s\n-D %[3]s -i %[1]s+ -j %[4]s\n-F %[2]s\n-F %[4]s\n-F %[5]s\n-X %[4]s\nCOMMIT\n",
			bridges, in, parent, fwd, rej))
		if out, err := restore.CombinedOutput(); err != nil {
			t.Fatalf("iptables-restore: %v: %s", err, out)
		}
		eventually(t, 30*time.Second, "the rules restored", func() bool {
			return chainRules(t, in) > 1 && chainRules(t, fwd) > 10 && chainRules(t, rej) == 2 &&
				strings.Contains(must(t, "iptables", "-w", "-S", "INPUT"), "-i "+bridges+"+ -j "+in) &&
				strings.Contains(must(t, "iptables", "-w", "-S", parent), "-i "+bridges+"+ -j "+fwd)
		})
		refused(t, botA.ContainerID, attacks...)
		reaches(t, botA.ContainerID, internet)
		if !strings.Contains(agentLogs.String(), "bot firewall rules were missing or changed; restored") {
			t.Errorf("the agent did not log the restoration:\n%s", agentLogs.String())
		}
	})

	t.Run("the bots stay fenced when the agent stops", func(t *testing.T) {
		a.stop()
		refused(t, botA.ContainerID, attacks...)
	})

	t.Run("without the rules, as on main, every attack answers", func(t *testing.T) {
		if err := fw.Remove(ctx); err != nil {
			t.Fatal(err)
		}
		reaches(t, botA.ContainerID, attacks...)
		reaches(t, botA.ContainerID, internet)
		// Another bot's container is out of reach even so: the Engine's isolation drops
		// traffic between its bridges (slowly: a timeout, not a refusal).
		if why := connectFrom(botA.ContainerID, otherBot); why == "" {
			t.Errorf("the bot reached another bot's gateway at %s", otherBot)
		}
	})

	t.Run("what the operator allows becomes reachable, nothing else", func(t *testing.T) {
		fw = newFW(out.private + "/32:" + out.port + "/tcp")
		runFirewalledAgent(t, st, d, fw, agentLogs)
		eventually(t, 30*time.Second, "the rules installed again", func() bool {
			return connectFrom(botA.ContainerID, hostAddrsPorts[0]) != ""
		})
		reaches(t, botA.ContainerID, private, internet)
		refused(t, botA.ContainerID, append(hostAddrsPorts, metadata)...)
	})
}

// While the rules cannot be installed, the agent creates and starts no bot container, the
// bot says why and one log line says what to fix; once they can, the bot starts.
func TestBotFirewallFailsClosedOnDocker(t *testing.T) {
	d := engine(t)
	needNetAdmin(t)
	ctx := t.Context()
	p := dockerPMD(t)
	st, err := agent.Enroll(ctx, agent.EnrollOptions{Server: p.D.AgentAddr, Token: p.token("edge-closed"), StateDir: filepath.Join(t.TempDir(), "edge-closed")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeContainers(d, st.Identity.HostID) })

	// A PATH whose iptables commands fail as they do without CAP_NET_ADMIN.
	bin := t.TempDir()
	cmds := []string{"iptables-save", "iptables-restore", "ip6tables-save", "ip6tables-restore"}
	for _, c := range cmds {
		script := "#!/bin/sh\necho 'iptables v1.8.9 (nf_tables): Could not fetch rule set generation id: Permission denied (you must be root)' >&2\nexit 4\n"
		if err := os.WriteFile(filepath.Join(bin, c), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	fw, err := firewall.New(firewall.Config{Bridges: docker.BridgePrefix(st.Identity.HostID), Dir: bin})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fw.Remove(context.Background()) })
	logs := &syncBuf{}
	runFirewalledAgent(t, st, d, fw, logs)
	p.waitStatus("edge-closed", wire.HostOnline)

	if _, err := p.admin().CreateBot(ctx, botRequest("closed", "edge-closed")); err != nil {
		t.Fatal(err)
	}
	b := p.waitBot("closed", 60*time.Second, "failed for want of a firewall", func(b wire.Bot) bool {
		return b.Status == wire.BotFailed && strings.Contains(b.LastError, "bot firewall not in place") && strings.Contains(b.LastError, "Permission denied")
	})
	if b.ContainerID != "" {
		t.Errorf("bot reports container %s", b.ContainerID)
	}
	if cs, err := d.List(ctx, st.Identity.HostID); err != nil || len(cs) != 0 {
		t.Fatalf("containers of the host without a firewall: %+v %v", cs, err)
	}
	if n := strings.Count(logs.String(), "bot firewall rules cannot be installed"); n != 1 || !strings.Contains(logs.String(), "CAP_NET_ADMIN") {
		t.Fatalf("%d log lines about the firewall, want 1 naming the fix:\n%s", n, logs.String())
	}

	// Fixed: the real commands. The bot starts behind the rules.
	for _, c := range cmds {
		real, err := exec.LookPath(c)
		if err != nil {
			t.Fatal(err)
		}
		os.Remove(filepath.Join(bin, c))
		if err := os.Symlink(real, filepath.Join(bin, c)); err != nil {
			t.Fatal(err)
		}
	}
	b = p.waitBot("closed", 90*time.Second, "running once the rules are in place", running)
	in, _, _ := fw.Chains()
	if chainRules(t, in) < 2 {
		t.Fatalf("the bot runs but %s is not installed", in)
	}
}

// dockerNetworkInspect runs `docker network inspect` as an operator would.
func dockerNetworkInspect(t *testing.T, name string) map[string]any {
	t.Helper()
	out, err := exec.Command("docker", "network", "inspect", name).Output()
	if err != nil {
		t.Fatalf("docker network inspect %s: %v", name, err)
	}
	var v []map[string]any
	if err := json.Unmarshal(out, &v); err != nil || len(v) != 1 {
		t.Fatalf("docker network inspect %s: %v", name, err)
	}
	return v[0]
}

// pmagent run with bot-firewall false says at every start that bots are unfenced, and
// installs nothing.
func TestPMAgentWarnsWithoutFirewall(t *testing.T) {
	clearEnv(t)
	p := startPMD(t, nil)
	state := filepath.Join(t.TempDir(), "edge-open")
	st, err := agent.Enroll(t.Context(), agent.EnrollOptions{Server: p.D.AgentAddr, Token: p.token("edge-open"), StateDir: state})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		var stderr syncBuf
		cmd := pmagent.NewCommand(&syncBuf{}, &stderr)
		cmd.SetArgs([]string{"run", "--config", "/dev/null", "--state-dir", state, "--bot-firewall=false", "--docker-host", "unix:///nonexistent.sock"})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- cmd.ExecuteContext(ctx) }()
		eventually(t, 10*time.Second, "the warning", func() bool { return strings.Contains(stderr.String(), firewall.OffWarning) })
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("pmagent run: %v", err)
		}
		if strings.Count(stderr.String(), "bot firewall is off") != 1 || !strings.Contains(stderr.String(), `"level":"WARN"`) {
			t.Fatalf("stderr:\n%s", stderr.String())
		}
	}
	if out, _ := exec.Command("iptables-save", "-t", "filter").Output(); strings.Contains(string(out), docker.BridgePrefix(st.Identity.HostID)) {
		t.Fatalf("rules installed with bot-firewall false:\n%s", out)
	}
}
