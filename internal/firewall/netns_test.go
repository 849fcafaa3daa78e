package firewall

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// These tests run the real iptables commands on the real kernel, but in network namespaces of
// their own: a "host" whose rules are installed, two "bots" whose links to the host are named
// like bot bridges, and an "outside" with an internet address, a private one and the metadata
// address behind it. Nothing of the machine's own firewall or routes is touched.

// port is what every listener of the topology serves on (each namespace has its own ports).
const port = "4711"

// needRoot skips a test that needs root, ip and iptables, or fails it on CI.
func needRoot(t *testing.T) {
	t.Helper()
	var missing string
	if os.Geteuid() != 0 {
		missing = "root"
	}
	for _, c := range []string{"ip", "iptables-save", "iptables-restore", "ip6tables-save", "ip6tables-restore"} {
		if _, err := exec.LookPath(c); err != nil {
			missing = c
		}
	}
	if missing == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI needs %s for the firewall tests", missing)
	}
	t.Skipf("no %s", missing)
}

var (
	hostileOnce sync.Once
	hostileBin  string
	hostileErr  error
)

// hostile builds internal/hostile once per run.
func hostile(t *testing.T) string {
	t.Helper()
	hostileOnce.Do(func() {
		dir, err := os.MkdirTemp("", "pm-firewall-test-")
		if err != nil {
			hostileErr = err
			return
		}
		hostileBin = filepath.Join(dir, "hostile")
		out, err := exec.Command("go", "build", "-o", hostileBin, "github.com/pocketmolt/pocketmolt/internal/hostile").CombinedOutput()
		if err != nil {
			hostileErr = fmt.Errorf("build hostile: %v: %s", err, out)
		}
	})
	if hostileErr != nil {
		t.Fatal(hostileErr)
	}
	return hostileBin
}

func sh(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// topology is the namespaces of one test.
type topology struct {
	t                      *testing.T
	host, bot, bot2, out   string // namespace names
	dir                    string // wrappers running the iptables commands in host
	calls                  string // file the wrappers log their names to
	bridges                string // the bots' interface prefix in host
	hostile                string
	refused, reachable     []string // addresses tried from bot
	allowedTCP, notAllowed string
	allowedTCP6            string
}

func newTopology(t *testing.T) *topology {
	t.Helper()
	needRoot(t)
	var b [3]byte
	_, _ = rand.Read(b[:])
	id := "pmfwt" + hex.EncodeToString(b[:])
	tp := &topology{
		t: t, host: id + "-host", bot: id + "-bot", bot2: id + "-bot2", out: id + "-out",
		dir: t.TempDir(), bridges: "pmtest1", hostile: hostile(t),
	}
	tp.calls = filepath.Join(tp.dir, "calls")
	for _, ns := range []string{tp.host, tp.bot, tp.bot2, tp.out} {
		sh(t, "ip", "netns", "add", ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
		sh(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	link := func(hostIf, peer, peerNS string, hostAddrs, peerAddrs []string) {
		sh(t, "ip", "-n", tp.host, "link", "add", hostIf, "type", "veth", "peer", "name", peer, "netns", peerNS)
		for _, a := range hostAddrs {
			sh(t, "ip", "-n", tp.host, "addr", "add", a, "dev", hostIf, "nodad")
		}
		for _, a := range peerAddrs {
			sh(t, "ip", "-n", peerNS, "addr", "add", a, "dev", peer, "nodad")
		}
		sh(t, "ip", "-n", tp.host, "link", "set", hostIf, "up")
		sh(t, "ip", "-n", peerNS, "link", "set", peer, "up")
	}
	link(tp.bridges+"a", "eth0", tp.bot, []string{"10.213.77.1/28", "fd00:77::1/64"}, []string{"10.213.77.2/28", "fd00:77::2/64"})
	link(tp.bridges+"b", "eth0", tp.bot2, []string{"10.213.77.17/28", "fd00:78::1/64"}, []string{"10.213.77.18/28", "fd00:78::2/64"})
	link("outside0", "eth0", tp.out, []string{"203.0.113.1/24", "2001:db8:1::1/64"}, []string{"203.0.113.10/24", "2001:db8:1::10/64"})
	for ns, gw := range map[string][2]string{
		tp.bot:  {"10.213.77.1", "fd00:77::1"},
		tp.bot2: {"10.213.77.17", "fd00:78::1"},
		tp.out:  {"203.0.113.1", "2001:db8:1::1"},
	} {
		sh(t, "ip", "-n", ns, "route", "add", "default", "via", gw[0])
		sh(t, "ip", "-n", ns, "-6", "route", "add", "default", "via", gw[1])
	}
	// Behind the outside: the metadata address, two private ones, a unique-local one.
	for _, a := range []string{"169.254.169.254/32", "172.31.213.10/32", "192.168.213.10/32", "fd00:99::10/128"} {
		sh(t, "ip", "-n", tp.out, "addr", "add", a, "dev", "lo", "nodad")
		via := "203.0.113.10"
		if strings.Contains(a, ":") {
			via = "2001:db8:1::10"
		}
		sh(t, "ip", "-n", tp.host, "route", "add", a, "via", via)
	}
	sh(t, "ip", "netns", "exec", tp.host, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")

	tp.serve(tp.host, "host")
	tp.serve(tp.bot2, "bot2")
	tp.serve(tp.out, "outside")

	// The firewall's commands run in the host namespace, through wrappers that log each call.
	for _, c := range []string{"iptables-save", "iptables-restore", "ip6tables-save", "ip6tables-restore"} {
		real, _ := exec.LookPath(c)
		script := fmt.Sprintf("#!/bin/sh\necho %s >> %s\nexec ip netns exec %s %s \"$@\"\n", c, tp.calls, tp.host, real)
		if err := os.WriteFile(filepath.Join(tp.dir, c), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}

	tp.refused = []string{
		"10.213.77.1:" + port,     // the host, at the bot's own gateway
		"10.213.77.17:" + port,    // the host, at another bot's gateway
		"203.0.113.1:" + port,     // the host, at its outside address
		"[fd00:77::1]:" + port,    // the host over IPv6
		"[2001:db8:1::1]:" + port, // the host's outside address over IPv6
		"10.213.77.18:" + port,    // another bot
		"[fd00:78::2]:" + port,    // another bot over IPv6
		"169.254.169.254:" + port, // the metadata service
		"172.31.213.10:" + port,   // RFC 1918
		"192.168.213.10:" + port,  // RFC 1918
		"[fd00:99::10]:" + port,   // unique local
	}
	tp.reachable = []string{"203.0.113.10:" + port, "[2001:db8:1::10]:" + port}
	tp.allowedTCP, tp.notAllowed, tp.allowedTCP6 = "172.31.213.10:"+port, "192.168.213.10:"+port, "[fd00:99::10]:"+port
	return tp
}

// serve runs hostile serve on port in ns until the test ends, and waits until it listens.
func (tp *topology) serve(ns, reply string) { tp.serveOn(ns, ":"+port, reply) }

// serveOn runs hostile serve on addr in ns until the test ends, and waits until it listens.
func (tp *topology) serveOn(ns, addr, reply string) {
	t := tp.t
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns, tp.hostile, "serve", addr, reply)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); cmd.Wait() })
	line, _ := bufio.NewReader(out).ReadString('\n')
	if !strings.HasPrefix(line, "listening on") {
		t.Fatalf("hostile serve in %s: %q", ns, line)
	}
}

// connectFrom tries addr from the namespace ns: "" when it answered, else why not.
func (tp *topology) connectFrom(ns, addr string) string {
	out, err := exec.Command("ip", "netns", "exec", ns, tp.hostile, "connect", addr, "3s").CombinedOutput()
	if err == nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

func (tp *topology) mustReach(t *testing.T, addrs ...string) {
	t.Helper()
	tp.mustReachFrom(t, tp.bot, addrs...)
}

func (tp *topology) mustReachFrom(t *testing.T, ns string, addrs ...string) {
	t.Helper()
	for _, a := range addrs {
		if why := tp.connectFrom(ns, a); why != "" {
			t.Errorf("%s not reachable from %s: %s", a, ns, why)
		}
	}
}

// mustBeRefused checks that addrs are refused, at once (REJECT), not dropped.
func (tp *topology) mustBeRefused(t *testing.T, addrs ...string) {
	t.Helper()
	tp.mustBeRefusedFrom(t, tp.bot, addrs...)
}

func (tp *topology) mustBeRefusedFrom(t *testing.T, ns string, addrs ...string) {
	t.Helper()
	for _, a := range addrs {
		switch why := tp.connectFrom(ns, a); {
		case why == "":
			t.Errorf("%s reached %s", ns, a)
		case !strings.Contains(why, "connection refused"):
			t.Errorf("%s: %s, want connection refused (rejected, not dropped)", a, why)
		}
	}
}

func (tp *topology) firewall(t *testing.T, bridges string, allow ...string) *Firewall {
	t.Helper()
	rules, err := ParseRules(allow)
	if err != nil {
		t.Fatal(err)
	}
	return tp.firewallWith(t, Config{Bridges: bridges, Allow: rules})
}

// firewallWith is cfg's firewall in the host namespace, refusing the bot subnet pool, and
// removed when the test ends.
func (tp *topology) firewallWith(t *testing.T, cfg Config) *Firewall {
	t.Helper()
	cfg.Refuse, cfg.Dir = []netip.Prefix{netip.MustParsePrefix("10.213.0.0/16")}, tp.dir
	f, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Remove(context.Background()) })
	return f
}

func (tp *topology) ipt(t *testing.T, cmd string, args ...string) {
	t.Helper()
	sh(t, append([]string{"ip", "netns", "exec", tp.host, cmd}, args...)...)
}

func (tp *topology) save(t *testing.T, cmd string) string {
	return sh(t, "ip", "netns", "exec", tp.host, cmd, "-t", "filter")
}

func (tp *topology) takeCalls() []string {
	b, _ := os.ReadFile(tp.calls)
	os.Remove(tp.calls)
	return strings.Fields(string(b))
}

func TestFirewallFencesBots(t *testing.T) {
	tp := newTopology(t)
	ctx := t.Context()

	// Without rules, a bot reaches everything its host can: the attack works.
	tp.mustReach(t, tp.refused...)
	tp.mustReach(t, tp.reachable...)
	if t.Failed() {
		t.Fatal("the topology does not work without a firewall")
	}

	fw := tp.firewall(t, tp.bridges)
	if err := fw.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	t.Run("refused: the host, other bots, metadata, private ranges; the internet reachable", func(t *testing.T) {
		tp.mustBeRefused(t, tp.refused...)
		tp.mustReach(t, tp.reachable...)
	})
	t.Run("the host still reaches the bot, and gets its replies", func(t *testing.T) {
		out, err := exec.Command("ip", "netns", "exec", tp.host, tp.hostile, "connect", "10.213.77.18:"+port, "3s").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "bot2") {
			t.Fatalf("host → bot: %v %s", err, out)
		}
	})

	t.Run("a check that finds the rules in place reads and changes nothing", func(t *testing.T) {
		tp.takeCalls()
		for range 3 {
			if err := fw.Ensure(ctx); err != nil {
				t.Fatal(err)
			}
		}
		var want []string
		for range 3 {
			want = append(want, "iptables-save", "ip6tables-save")
		}
		if calls := tp.takeCalls(); !slices.Equal(calls, want) {
			t.Fatalf("three checks ran %q, want %q", calls, want)
		}
	})

	t.Run("flushed chains and removed jumps are restored", func(t *testing.T) {
		in, fwd, _ := fw.Chains()
		tp.ipt(t, "iptables", "-w", "-D", "INPUT", "-i", tp.bridges+"+", "-j", in)
		tp.ipt(t, "iptables", "-w", "-D", "DOCKER-USER", "-i", tp.bridges+"+", "-j", fwd)
		tp.ipt(t, "iptables", "-w", "-D", "FORWARD", "-j", "DOCKER-USER")
		tp.ipt(t, "iptables", "-w", "-F", in)
		tp.ipt(t, "iptables", "-w", "-F", fwd)
		tp.ipt(t, "iptables", "-w", "-X", fwd)
		tp.ipt(t, "ip6tables", "-w", "-F", fwd)
		tp.mustReach(t, "10.213.77.1:"+port, "169.254.169.254:"+port, "[fd00:99::10]:"+port)
		if err := fw.Ensure(ctx); err != nil {
			t.Fatal(err)
		}
		tp.mustBeRefused(t, tp.refused...)
		tp.mustReach(t, tp.reachable...)
	})

	t.Run("rules appended to our chains by someone else are replaced", func(t *testing.T) {
		in, _, _ := fw.Chains()
		tp.ipt(t, "iptables", "-w", "-I", in, "1", "-j", "ACCEPT")
		tp.mustReach(t, "10.213.77.1:"+port)
		if err := fw.Ensure(ctx); err != nil {
			t.Fatal(err)
		}
		tp.mustBeRefused(t, "10.213.77.1:"+port)
	})

	t.Run("a rule inserted above our jump is overtaken", func(t *testing.T) {
		tp.ipt(t, "iptables", "-w", "-I", "INPUT", "1", "-j", "ACCEPT")
		tp.mustReach(t, "10.213.77.1:"+port)
		if err := fw.Ensure(ctx); err != nil {
			t.Fatal(err)
		}
		tp.mustBeRefused(t, tp.refused...)
		tp.ipt(t, "iptables", "-w", "-D", "INPUT", "-j", "ACCEPT")
	})

	t.Run("rules installed before the Engine hold once it starts", func(t *testing.T) {
		// This namespace has no Engine: Ensure made DOCKER-USER and FORWARD's jump to it, as
		// pmagent does at boot before the Engine restarts its containers. Now what the Engine
		// does when it starts: its bridges' accepts at the top of FORWARD, then its jump to
		// DOCKER-USER moved back above them, and a RETURN at DOCKER-USER's end.
		tp.ipt(t, "iptables", "-w", "-I", "FORWARD", "1", "-i", tp.bridges+"+", "-j", "ACCEPT")
		tp.ipt(t, "iptables", "-w", "-D", "FORWARD", "-j", "DOCKER-USER")
		tp.ipt(t, "iptables", "-w", "-I", "FORWARD", "1", "-j", "DOCKER-USER")
		tp.ipt(t, "iptables", "-w", "-A", "DOCKER-USER", "-j", "RETURN")
		tp.mustBeRefused(t, tp.refused...)
		tp.mustReach(t, tp.reachable...)
		tp.takeCalls()
		if err := fw.Ensure(ctx); err != nil {
			t.Fatal(err)
		}
		if calls := tp.takeCalls(); !slices.Equal(calls, []string{"iptables-save", "ip6tables-save"}) {
			t.Fatalf("after the Engine started, a check ran %q: it found something to change", calls)
		}
		tp.ipt(t, "iptables", "-w", "-D", "FORWARD", "-i", tp.bridges+"+", "-j", "ACCEPT")
	})

	t.Run("another agent's rules leave these bots alone", func(t *testing.T) {
		other := tp.firewall(t, "pmother", tp.allowedTCP)
		if err := other.Ensure(ctx); err != nil {
			t.Fatal(err)
		}
		tp.mustBeRefused(t, tp.allowedTCP)
		if err := other.Remove(ctx); err != nil {
			t.Fatal(err)
		}
		tp.mustBeRefused(t, tp.refused...)
	})

	t.Run("what the operator allows is reachable, the rest still refused", func(t *testing.T) {
		allowing := tp.firewall(t, tp.bridges, tp.allowedTCP+"/tcp", tp.allowedTCP6+"/tcp")
		if err := allowing.Ensure(ctx); err != nil {
			t.Fatal(err)
		}
		tp.mustReach(t, tp.allowedTCP, tp.allowedTCP6)
		tp.mustReach(t, tp.reachable...)
		tp.mustBeRefused(t, tp.notAllowed, "169.254.169.254:"+port, "10.213.77.1:"+port)
		if err := fw.Ensure(ctx); err != nil { // fw restores its own rules
			t.Fatal(err)
		}
		tp.mustBeRefused(t, tp.allowedTCP)
	})

	t.Run("remove takes everything away", func(t *testing.T) {
		if err := fw.Remove(ctx); err != nil {
			t.Fatal(err)
		}
		for _, c := range []string{"iptables-save", "ip6tables-save"} {
			if s := tp.save(t, c); strings.Contains(s, "POCKETMOLT") {
				t.Errorf("%s after remove:\n%s", c, s)
			}
		}
		tp.mustReach(t, tp.refused...)
		if err := fw.Remove(ctx); err != nil {
			t.Errorf("a second remove: %v", err)
		}
	})
}

// An agent's endpoint on the bridge gateways (the model endpoint) is reachable by each bot at
// its own gateway only: not at another bot's gateway, not at the host's other addresses, not
// in another bot's container, and no other port of the host is.
func TestFirewallEndpoints(t *testing.T) {
	tp := newTopology(t)
	ctx := t.Context()
	const otherPort = "4712"
	tp.serveOn(tp.host, ":"+otherPort, "host-other-port")
	endpoints, err := ParseRules([]string{"10.213.0.0/16:" + port + "/tcp"})
	if err != nil {
		t.Fatal(err)
	}
	fw := tp.firewallWith(t, Config{Bridges: tp.bridges, Endpoints: endpoints})
	if err := fw.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name           string
		from           string
		reach, refused []string
	}{
		{
			name:  "a bot",
			from:  tp.bot,
			reach: []string{"10.213.77.1:" + port, "203.0.113.10:" + port},
			refused: []string{
				"10.213.77.17:" + port,      // another bot's gateway
				"10.213.77.18:" + port,      // another bot's container, on the endpoint's port
				"10.213.77.1:" + otherPort,  // another port of its own gateway
				"203.0.113.1:" + port,       // the host's outside address
				"[fd00:77::1]:" + port,      // its own gateway over IPv6: no IPv6 endpoint
				"169.254.169.254:" + port,   // the metadata service
				"10.213.77.17:" + otherPort, // another bot's gateway, another port
			},
		},
		{
			name:    "another bot",
			from:    tp.bot2,
			reach:   []string{"10.213.77.17:" + port},
			refused: []string{"10.213.77.1:" + port, "10.213.77.17:" + otherPort},
		},
	}
	// Outside the host, the endpoint's port at a bridge gateway is refused (the guard); the
	// host's other ports there are no business of the bot firewall's.
	sh(t, "ip", "-n", tp.out, "route", "add", "10.213.77.0/24", "via", "203.0.113.1")
	tests = append(tests, struct {
		name           string
		from           string
		reach, refused []string
	}{
		name:    "outside the host",
		from:    tp.out,
		reach:   []string{"10.213.77.1:" + otherPort},
		refused: []string{"10.213.77.1:" + port, "10.213.77.17:" + port},
	}, struct {
		name           string
		from           string
		reach, refused []string
	}{
		name:  "the host itself",
		from:  tp.host,
		reach: []string{"10.213.77.1:" + port, "10.213.77.17:" + port},
	})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tp.mustReachFrom(t, tt.from, tt.reach...)
			tp.mustBeRefusedFrom(t, tt.from, tt.refused...)
		})
	}
	t.Run("the endpoint is in the rules as installed", func(t *testing.T) {
		in, _, _ := fw.Chains()
		if s := tp.save(t, "iptables-save"); !strings.Contains(s, "-A "+in+" -d 10.213.0.0/16") || !strings.Contains(s, "--limit-iface-in") {
			t.Fatalf("iptables-save:\n%s", s)
		}
		tp.takeCalls()
		if err := fw.Ensure(ctx); err != nil {
			t.Fatal(err)
		}
		if calls := tp.takeCalls(); !slices.Equal(calls, []string{"iptables-save", "ip6tables-save"}) {
			t.Fatalf("a check of rules in place ran %q", calls)
		}
	})
	t.Run("a rule above the guard's jump is overtaken", func(t *testing.T) {
		tp.ipt(t, "iptables", "-w", "-I", "INPUT", "1", "-i", "outside0", "-j", "ACCEPT")
		tp.mustReachFrom(t, tp.out, "10.213.77.1:"+port)
		if err := fw.Ensure(ctx); err != nil {
			t.Fatal(err)
		}
		tp.mustBeRefusedFrom(t, tp.out, "10.213.77.1:"+port)
		tp.ipt(t, "iptables", "-w", "-D", "INPUT", "-i", "outside0", "-j", "ACCEPT")
	})
	t.Run("without endpoints, the guard goes", func(t *testing.T) {
		plain := tp.firewall(t, tp.bridges)
		if err := plain.Ensure(ctx); err != nil {
			t.Fatal(err)
		}
		if s := tp.save(t, "iptables-save"); strings.Contains(s, "GUARD") || strings.Contains(s, "addrtype") {
			t.Fatalf("iptables-save:\n%s", s)
		}
		tp.mustBeRefused(t, "10.213.77.1:"+port)
		tp.mustReachFrom(t, tp.out, "10.213.77.1:"+port)
	})
}

// Without a working iptables, Ensure fails and says which command failed and why.
func TestFirewallEnsureFails(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []string{"iptables-save", "iptables-restore", "ip6tables-save", "ip6tables-restore"} {
		script := "#!/bin/sh\necho '# Warning: iptables-legacy tables present' >&2\necho 'iptables v1.8.9 (nf_tables): Could not fetch rule set generation id: Permission denied (you must be root)' >&2\nexit 4\n"
		if err := os.WriteFile(filepath.Join(dir, c), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct{ name, dir, want string }{
		{"permission denied", dir, "bot firewall (ipv4): iptables-save -t filter: exit status 4: iptables v1.8.9 (nf_tables): Could not fetch rule set generation id: Permission denied (you must be root)"},
		{"no iptables", t.TempDir(), "bot firewall (ipv4): iptables-save: "},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f, err := New(Config{Bridges: "pmab12c", Dir: tt.dir})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			err = f.Ensure(ctx)
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("Ensure: %v, want one line starting %q", err, tt.want)
			}
		})
	}
}
