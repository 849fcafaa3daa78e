// Package firewall fences bots in: it installs and keeps the host firewall rules that let a
// bot's container reach the internet but not its host, the host's networks, link-local
// addresses (the cloud metadata service), private ranges or other bots.
//
// Rules go where the Docker Engine's own go, through the same iptables commands (so the same
// backend: iptables over nf_tables or legacy iptables, whichever the host's iptables is). Bot
// traffic is recognised by the bridge interface its network has (-i PREFIX+; see
// runtime/docker.BridgePrefix), so each agent's rules touch only its own bots. Its chains,
// per address family:
//
//   - POCKETMOLT-<prefix>-INPUT, jumped to from INPUT: traffic from bots to the host itself.
//     Replies (conntrack ESTABLISHED,RELATED) are left to the host's own rules; what the
//     operator allows is accepted, and so are the agent's own endpoints (Config.Endpoints)
//     at the bot's own bridge gateway; everything else is rejected. This covers every host
//     address: the bridge gateways, docker0, the primary address, any other.
//   - POCKETMOLT-<prefix>-FORWARD, jumped to from DOCKER-USER (from FORWARD when the Engine
//     has not made DOCKER-USER): traffic from bots through the host. Replies are left alone,
//     what the operator allows is accepted, and then traffic to other bots' bridges, the bot
//     subnet pool, and loopback, link-local, private (RFC 1918, 100.64.0.0/10, fc00::/7),
//     multicast and reserved ranges is rejected. The rest — the internet — is left to the
//     Engine's rules, which accept it.
//   - POCKETMOLT-<prefix>-GUARD, jumped to from INPUT for all traffic, only while there are
//     Config.Endpoints: an endpoint's port at a host address of another interface than the
//     one the traffic came in on is rejected — from outside the host, from other containers,
//     from other agents' bots — so each endpoint answers only its own bot (and the host).
//
// Everything refused goes to a chain of its own, POCKETMOLT-<prefix>-REJECT, which REJECTs it (a
// TCP reset, or ICMP port unreachable), never drops it, so a bot fails fast.
// Chains are replaced atomically (iptables-restore --noflush declaring only our chains) and
// jumps are added only where absent. Ensure checks the rules with one iptables-save per
// family and restores them when they went missing (a reboot, an Engine restart, a flush).
package firewall

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/runtime"
)

// refused4 and refused6 are the destinations beyond the host that bots may not reach
// (unless allowed): loopback, link-local (the metadata service at 169.254.169.254),
// private, shared, multicast and reserved ranges. The documentation ranges (192.0.2.0/24,
// 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32) are not here: no network routes them, and
// the tests use them as "the internet".
var (
	refused4 = prefixes(
		"0.0.0.0/8",      // "this network"
		"10.0.0.0/8",     // RFC 1918
		"100.64.0.0/10",  // shared address space (carrier-grade NAT, some clouds' internals)
		"127.0.0.0/8",    // loopback
		"169.254.0.0/16", // link-local: cloud metadata services
		"172.16.0.0/12",  // RFC 1918
		"192.0.0.0/24",   // IETF protocol assignments
		"192.168.0.0/16", // RFC 1918
		"198.18.0.0/15",  // benchmarking
		"224.0.0.0/4",    // multicast
		"240.0.0.0/4",    // reserved, and the limited broadcast address
	)
	refused6 = prefixes(
		"::/128",         // unspecified
		"::1/128",        // loopback
		"::ffff:0:0/96",  // IPv4-mapped
		"64:ff9b::/96",   // NAT64: it reaches IPv4 addresses, private ones too
		"64:ff9b:1::/48", // local-use NAT64
		"100::/64",       // discard
		"fc00::/7",       // unique local
		"fe80::/10",      // link-local
		"fec0::/10",      // deprecated site-local
		"ff00::/8",       // multicast
	)
)

// Refused are the ranges, IPv4 and IPv6, that bots may not reach beyond the host unless
// allowed.
func Refused() []netip.Prefix { return append(slices.Clone(refused4), refused6...) }

func prefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

// Config says which bots to fence and what they may reach anyway.
type Config struct {
	// Bridges is the name prefix of the bridge interfaces of the bots to fence: 1-9 letters
	// and digits (runtime/docker.BridgePrefix of the agent's id). It also names the chains.
	Bridges string
	// Allow are accepted before anything is refused: the operator's allowances and the
	// host's DNS servers (DNS).
	Allow []Rule
	// Endpoints are the agent's own endpoints on the bots' bridge gateways (the model
	// endpoint): accepted in the input chain only, and only when the destination is an
	// address of the very bridge the traffic came in on — a bot's own gateway, never another
	// bot's. They are never accepted in the forward chain, so a bot cannot reach another
	// bot's container on those ports either; and the guard chain refuses them to traffic
	// from any other interface but loopback.
	Endpoints []Rule
	// Refuse are more destinations refused beyond Refused(): the bot subnet pool.
	Refuse []netip.Prefix
	// Dir is the directory holding iptables-save and iptables-restore and their ip6 twins;
	// empty means they are looked up in PATH.
	Dir string
	// Log receives one line when rules are installed, restored or removed; nil discards.
	Log *slog.Logger
}

// Firewall installs and keeps one agent's rules. It is safe for concurrent use.
type Firewall struct {
	cfg          Config
	in, fwd, rej string // our chains
	// guard is the chain, jumped to from INPUT for all traffic, that keeps Endpoints to the
	// bots: it exists only while there are endpoints.
	guard    string
	families []family
	log      *slog.Logger

	mu   sync.Mutex
	snap map[string]map[string][]string // by family name: our chains' rules as last installed
}

// family is one address family's commands and ranges.
type family struct {
	name, save, restore string
	reject              string // the REJECT target's ICMP type
	refused             []netip.Prefix
	is4                 bool
}

var (
	ipv4 = family{name: "ipv4", save: "iptables-save", restore: "iptables-restore", reject: "icmp-port-unreachable", refused: refused4, is4: true}
	ipv6 = family{name: "ipv6", save: "ip6tables-save", restore: "ip6tables-restore", reject: "icmp6-port-unreachable", refused: refused6}
)

// dockerUser is the Engine's chain for users' forwarding rules, consulted before its own.
const dockerUser = "DOCKER-USER"

// chainPrefix starts the name of every chain of ours, whichever agent made it.
const chainPrefix = "POCKETMOLT-"

var bridgesPattern = regexp.MustCompile(`^[a-zA-Z0-9]{1,9}$`)

// New returns the firewall for cfg; it changes nothing until Ensure. IPv6 rules are kept too
// when the kernel has IPv6 (bot networks carry none today — the Engine disables IPv6 in the
// containers of networks made without it — so these are a second fence).
func New(cfg Config) (*Firewall, error) {
	if !bridgesPattern.MatchString(cfg.Bridges) {
		return nil, fmt.Errorf("bot firewall: bridge prefix %q: want 1-9 letters and digits", cfg.Bridges)
	}
	for _, p := range cfg.Refuse {
		if !p.IsValid() || p != p.Masked() {
			return nil, fmt.Errorf("bot firewall: refused network %s is not a network", p)
		}
	}
	for _, r := range cfg.Allow {
		if !r.valid() {
			return nil, fmt.Errorf("bot firewall: invalid allowance %+v", r)
		}
	}
	for _, r := range cfg.Endpoints {
		if !r.valid() {
			return nil, fmt.Errorf("bot firewall: invalid endpoint %+v", r)
		}
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f := &Firewall{
		cfg:      cfg,
		in:       chainPrefix + cfg.Bridges + "-INPUT",
		fwd:      chainPrefix + cfg.Bridges + "-FORWARD",
		rej:      chainPrefix + cfg.Bridges + "-REJECT",
		guard:    chainPrefix + cfg.Bridges + "-GUARD",
		families: []family{ipv4},
		log:      log,
		snap:     map[string]map[string][]string{},
	}
	if _, err := os.Stat("/proc/net/if_inet6"); err == nil {
		f.families = append(f.families, ipv6)
	}
	return f, nil
}

// Chains are the names of our chains: the one jumped to from INPUT, the one jumped to from
// DOCKER-USER (or FORWARD), and the one both jump to for what they refuse.
func (f *Firewall) Chains() (input, forward, reject string) { return f.in, f.fwd, f.rej }

// chains are the chains this configuration installs.
func (f *Firewall) chains() []string {
	if len(f.cfg.Endpoints) > 0 {
		return []string{f.in, f.fwd, f.rej, f.guard}
	}
	return []string{f.in, f.fwd, f.rej}
}

// allChains are every chain of ours, whether this configuration installs it or not.
func (f *Firewall) allChains() []string { return []string{f.in, f.fwd, f.rej, f.guard} }

// jumps are the jumps to our chains that must come first: from INPUT for traffic in on the
// bots' bridges, from DOCKER-USER for the same, and from INPUT for all traffic to the guard.
func (f *Firewall) jumpList() []jump {
	js := []jump{{"INPUT", f.iface(), f.in}, {dockerUser, f.iface(), f.fwd}}
	if len(f.cfg.Endpoints) > 0 {
		js = append(js, jump{"INPUT", "", f.guard})
	}
	return js
}

// jump is a rule of chain that jumps to target for traffic in on iface ("" for all).
type jump struct{ chain, iface, target string }

func (j jump) rule() string {
	if j.iface == "" {
		return j.chain + " -j " + j.target
	}
	return j.chain + " -i " + j.iface + " -j " + j.target
}

// Ensure installs the rules, or checks that they are still as installed and restores them
// when they are not. A pass that finds them in place runs one iptables-save per family and
// changes nothing. Its error says which command failed and why (no iptables, no
// CAP_NET_ADMIN…); bots must not be started while it fails.
func (f *Firewall) Ensure(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, fam := range f.families {
		if err := f.ensure(ctx, fam); err != nil {
			return fmt.Errorf("bot firewall (%s): %w", fam.name, err)
		}
	}
	return nil
}

func (f *Firewall) ensure(ctx context.Context, fam family) error {
	t, err := f.read(ctx, fam)
	if err != nil {
		return err
	}
	snap := f.snap[fam.name]
	why := f.drift(t, snap)
	if why == "" {
		return nil
	}
	if _, err := f.run(ctx, fam.restore, []byte(f.payload(fam, t)), "-w", "--noflush"); err != nil {
		return err
	}
	after, err := f.read(ctx, fam)
	if err != nil {
		return err
	}
	want := f.render(fam)
	got := map[string][]string{}
	for _, c := range f.chains() {
		got[c] = after.rules[c]
		if len(got[c]) != len(want[c]) {
			return fmt.Errorf("rules did not take: after %s, %s has %d of its %d rules", fam.restore, c, len(got[c]), len(want[c]))
		}
	}
	for _, j := range f.jumpList() {
		if !after.jumpFirst(j.chain, j.iface, j.target) {
			return fmt.Errorf("rules did not take: after %s, the jump from %s to %s is not first", fam.restore, j.chain, j.target)
		}
	}
	if !after.leadsTo("FORWARD", dockerUser) {
		return fmt.Errorf("rules did not take: after %s, FORWARD does not jump to %s first", fam.restore, dockerUser)
	}
	f.snap[fam.name] = got
	attrs := []any{"family", fam.name, "input_chain", f.in, "forward_chain", f.fwd, "interfaces", f.iface(), "allow", ruleStrings(f.cfg.Allow, fam), "endpoints", ruleStrings(f.cfg.Endpoints, fam)}
	if snap == nil {
		f.log.Info("bot firewall rules installed", attrs...)
	} else {
		f.log.Warn("bot firewall rules were missing or changed; restored", append(attrs, "found", why)...)
	}
	return nil
}

// drift says how the table differs from what we installed ("" when it does not).
func (f *Firewall) drift(t table, snap map[string][]string) string {
	if snap == nil {
		return "not installed by this agent yet"
	}
	for _, c := range f.chains() {
		switch {
		case !t.chains[c]:
			return c + " is missing"
		case !slices.Equal(t.rules[c], snap[c]):
			return c + " changed"
		}
	}
	if !t.chains[dockerUser] {
		return dockerUser + " is missing"
	}
	for _, j := range f.jumpList() {
		switch {
		case len(t.jumps(j.chain, j.iface, j.target)) == 0:
			return "the jump from " + j.chain + " to " + j.target + " is missing"
		case !t.jumpFirst(j.chain, j.iface, j.target):
			return "a rule above the jump from " + j.chain + " to " + j.target + " decides first"
		}
	}
	switch {
	case !t.leadsTo("FORWARD", dockerUser):
		return "FORWARD does not jump to " + dockerUser + " first"
	case len(f.cfg.Endpoints) == 0 && t.chains[f.guard]:
		return f.guard + " is left from a configuration with endpoints"
	}
	return ""
}

func (f *Firewall) iface() string { return f.cfg.Bridges + "+" }

// payload is the iptables-restore input that replaces our chains' rules and adds the jumps
// that t lacks, in one transaction.
//
// The forward chain is always jumped to from DOCKER-USER, the Engine's chain for users'
// forwarding rules, which FORWARD jumps to before the Engine's own accepts. When the Engine
// has not made it yet — pmagent installs the rules before the Engine starts at boot, so that
// no bot it restarts is ever unfenced — it is made here, with FORWARD's jump to it: the Engine
// keeps the chain and its rules when it starts, and only moves its jump to the top again.
func (f *Firewall) payload(fam family, t table) string {
	rules := f.render(fam)
	var b strings.Builder
	b.WriteString("*filter\n")
	if !t.chains[dockerUser] {
		fmt.Fprintf(&b, ":%s - [0:0]\n", dockerUser) // absent: declaring it empties nothing
	}
	// Declaring a chain with --noflush creates it or empties it; no other chain is touched.
	for _, c := range f.chains() {
		fmt.Fprintf(&b, ":%s - [0:0]\n", c)
	}
	for _, c := range f.chains() {
		for _, r := range rules[c] {
			fmt.Fprintf(&b, "-A %s %s\n", c, r)
		}
	}
	// A jump that is missing, or that a rule above it could overtake, goes (again) to the top.
	for _, j := range f.jumpList() {
		if t.jumpFirst(j.chain, j.iface, j.target) {
			continue
		}
		for _, r := range t.jumps(j.chain, j.iface, j.target) {
			b.WriteString("-D" + strings.TrimPrefix(r, "-A") + "\n")
		}
		b.WriteString("-I " + strings.Replace(j.rule(), " ", " 1 ", 1) + "\n")
	}
	// A guard left from a configuration with endpoints goes, with every jump to it.
	if len(f.cfg.Endpoints) == 0 && t.chains[f.guard] {
		for _, r := range t.jumpsTo(f.guard) {
			b.WriteString("-D" + strings.TrimPrefix(r, "-A") + "\n")
		}
		fmt.Fprintf(&b, "-F %s\n-X %s\n", f.guard, f.guard)
	}
	if !t.leadsTo("FORWARD", dockerUser) {
		for _, r := range t.jumps("FORWARD", "", dockerUser) {
			b.WriteString("-D" + strings.TrimPrefix(r, "-A") + "\n")
		}
		fmt.Fprintf(&b, "-I FORWARD 1 -j %s\n", dockerUser)
	}
	// A jump from FORWARD to our chain (an earlier agent's, made before DOCKER-USER existed)
	// is not needed.
	for _, r := range t.jumps("FORWARD", f.iface(), f.fwd) {
		b.WriteString("-D" + strings.TrimPrefix(r, "-A") + "\n")
	}
	b.WriteString("COMMIT\n")
	return b.String()
}

// render is our chains' rules for fam, as iptables arguments after "-A CHAIN".
func (f *Firewall) render(fam family) map[string][]string {
	reject := "-j " + f.rej
	replies := []string{"-m conntrack --ctstate RELATED,ESTABLISHED -j RETURN"}
	if !fam.is4 {
		// Neighbour discovery is IPv6's ARP: without it the host cannot even send a bot
		// its replies or rejections.
		replies = append(replies,
			"-p ipv6-icmp -m icmp6 --icmpv6-type 135 -j RETURN",
			"-p ipv6-icmp -m icmp6 --icmpv6-type 136 -j RETURN")
	}
	var allow []string
	for _, r := range f.cfg.Allow {
		if r.Prefix.Addr().Is4() != fam.is4 {
			continue
		}
		for _, m := range r.matches() {
			allow = append(allow, strings.Join(m, " ")+" -j ACCEPT")
		}
	}
	// An endpoint is accepted only at an address of the interface the traffic came in on:
	// the host's address on the bot's own bridge. Any host address is local to the kernel,
	// another bridge's gateway too, so the destination prefix alone would let one bot reach
	// the endpoint another bot's agent serves.
	var endpoints []string
	for _, r := range f.cfg.Endpoints {
		if r.Prefix.Addr().Is4() != fam.is4 {
			continue
		}
		for _, m := range r.matches() {
			endpoints = append(endpoints, strings.Join(m, " ")+" -m addrtype --dst-type LOCAL --limit-iface-in -j ACCEPT")
		}
	}
	in := append(append(append(slices.Clone(replies), allow...), endpoints...), reject)
	// The guard sees all traffic to the host. An endpoint's port at an address of another
	// interface than the one the traffic came in on is refused: from outside the host, from
	// other containers, from other agents' bots. The host itself (lo) is let through.
	var guard []string
	for _, r := range f.cfg.Endpoints {
		if r.Prefix.Addr().Is4() != fam.is4 {
			continue
		}
		if len(guard) == 0 {
			guard = append(guard, "-i lo -j RETURN")
		}
		for _, m := range r.matches() {
			guard = append(guard, strings.Join(m, " ")+" -m addrtype ! --dst-type LOCAL --limit-iface-in "+reject)
		}
	}
	fwd := append(append(replies[:1:1], allow...), "-o "+f.iface()+" "+reject)
	for _, p := range append(slices.Clone(f.cfg.Refuse), fam.refused...) {
		if p.Addr().Is4() == fam.is4 {
			fwd = append(fwd, "-d "+p.String()+" "+reject)
		}
	}
	// TCP gets a reset, not an ICMP error: the kernel rate-limits those (IPv6's to one a
	// second per peer), and a refusal must come at once.
	rej := []string{"-p tcp -j REJECT --reject-with tcp-reset", "-j REJECT --reject-with " + fam.reject}
	out := map[string][]string{f.in: in, f.fwd: fwd, f.rej: rej}
	if len(f.cfg.Endpoints) > 0 {
		out[f.guard] = guard
	}
	return out
}

// ruleStrings are the rules of fam, as ParseRule reads them.
func ruleStrings(rules []Rule, fam family) []string {
	out := []string{}
	for _, r := range rules {
		if r.Prefix.Addr().Is4() == fam.is4 {
			out = append(out, r.String())
		}
	}
	return out
}

// Rules is what Ensure installs, as iptables-restore input per family (jumps included), for
// operators to read.
func (f *Firewall) Rules() map[string]string {
	out := map[string]string{}
	for _, fam := range []family{ipv4, ipv6} {
		out[fam.name] = f.payload(fam, table{chains: map[string]bool{dockerUser: true}, rules: map[string][]string{"FORWARD": {"-A FORWARD -j " + dockerUser}}})
	}
	return out
}

// Remove deletes our chains and every jump to them, in one transaction per family. Stopping
// an agent does not call it: its bots keep running and must stay fenced. It is for a host
// being retired, and for tests.
func (f *Firewall) Remove(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	var removed []string
	for _, fam := range f.families {
		t, err := f.read(ctx, fam)
		if err != nil {
			return fmt.Errorf("remove bot firewall (%s): %w", fam.name, err)
		}
		ours := f.allChains()
		var b strings.Builder
		for _, target := range ours {
			for _, r := range t.jumpsTo(target) {
				if chain := strings.Fields(r)[1]; !slices.Contains(ours, chain) {
					b.WriteString("-D" + strings.TrimPrefix(r, "-A") + "\n")
				}
			}
		}
		for _, op := range []string{"-F", "-X"} { // a chain is deleted once nothing jumps to it
			for _, c := range ours {
				if t.chains[c] {
					fmt.Fprintf(&b, "%s %s\n", op, c)
				}
			}
		}
		delete(f.snap, fam.name)
		if b.Len() == 0 {
			continue
		}
		if _, err := f.run(ctx, fam.restore, []byte("*filter\n"+b.String()+"COMMIT\n"), "-w", "--noflush"); err != nil {
			return fmt.Errorf("remove bot firewall (%s): %w", fam.name, err)
		}
		removed = append(removed, fam.name)
	}
	if len(removed) > 0 {
		f.log.Info("bot firewall rules removed", "families", removed, "chains", f.allChains())
	}
	return nil
}

// read is fam's filter table.
func (f *Firewall) read(ctx context.Context, fam family) (table, error) {
	out, err := f.run(ctx, fam.save, nil, "-t", "filter")
	if err != nil {
		return table{}, err
	}
	return parseSave(out)
}

// cmdTimeout bounds one iptables command; they wait for the xtables lock (-w).
const cmdTimeout = 30 * time.Second

// run runs one of the iptables commands with stdin and returns its output. Its error names
// the command and gives the first line of what it printed that is not a warning.
func (f *Firewall) run(ctx context.Context, name string, stdin []byte, args ...string) ([]byte, error) {
	path := name
	if f.cfg.Dir != "" {
		path = filepath.Join(f.cfg.Dir, name)
	}
	ctx, cancel := context.WithTimeout(ctx, cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		msg := firstLine(stderr.String())
		if msg == "" {
			msg = firstLine(stdout.String())
		}
		return nil, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, msg)
	}
	return stdout.Bytes(), nil
}

// firstLine is the first line of s that is not iptables-nft's warning about legacy tables.
func firstLine(s string) string {
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "# Warning:") {
			return l
		}
	}
	return ""
}

// OffWarning is what an agent logs at every start when its bot firewall is turned off.
const OffWarning = "bot firewall is off (bot-firewall: false): bots can reach this host's addresses, its private networks, the cloud metadata service and each other; never run customers' bots like this"

// ForBots is the firewall of an agent's bots as pmagent run and pmd dev make it: bridges is
// runtime/docker.BridgePrefix of the agent's id, allow the operator's allowances (ParseRules),
// pool the bot subnet pool. The host's DNS servers are allowed on port 53 (see DNS), so bots
// can resolve names even when the servers are on private addresses, and the agent's model
// endpoint (TCP runtime.ModelPort at each bot's own bridge gateway, all of them in pool) is
// open to its bot (see Config.Endpoints).
func ForBots(bridges string, allow []Rule, pool netip.Prefix, log *slog.Logger) (*Firewall, error) {
	dns, err := HostResolvers()
	if err != nil {
		return nil, fmt.Errorf("bot firewall: %w", err)
	}
	var refuse []netip.Prefix
	var endpoints []Rule
	if pool.IsValid() {
		refuse = append(refuse, pool)
		endpoints = append(endpoints, Rule{Prefix: pool, Proto: "tcp", FromPort: runtime.ModelPort, ToPort: runtime.ModelPort})
	}
	return New(Config{Bridges: bridges, Allow: append(slices.Clone(allow), DNS(dns)...), Endpoints: endpoints, Refuse: refuse, Log: log})
}
