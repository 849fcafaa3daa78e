package firewall

import (
	"bufio"
	"bytes"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// table is the filter table as iptables-save prints it: its chains, and each chain's rules
// as the lines that append them ("-A CHAIN …"), in order.
type table struct {
	chains map[string]bool
	rules  map[string][]string
}

// maxSaveLine bounds one line of iptables-save output; real rules are well under 4 KiB.
const maxSaveLine = 64 << 10

// parseSave reads the filter table from iptables-save output (of `iptables-save -t filter`).
// Lines of other tables, comments and counters are skipped; a rule line for a chain that
// was not declared, or a table that is never committed, is an error.
func parseSave(out []byte) (table, error) {
	t := table{chains: map[string]bool{}, rules: map[string][]string{}}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 4096), maxSaveLine)
	inFilter, seen := false, false
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "*"):
			if inFilter {
				return table{}, fmt.Errorf("iptables-save line %d: table %s begins before filter is committed", n, line[1:])
			}
			inFilter = line == "*filter"
			seen = seen || inFilter
		case line == "COMMIT":
			inFilter = false
		case !inFilter:
		case strings.HasPrefix(line, ":"):
			name, _, _ := strings.Cut(line[1:], " ")
			if name == "" {
				return table{}, fmt.Errorf("iptables-save line %d: chain without a name", n)
			}
			t.chains[name] = true
		case strings.HasPrefix(line, "-A "):
			fields := strings.Fields(line)
			if len(fields) < 2 || !t.chains[fields[1]] {
				return table{}, fmt.Errorf("iptables-save line %d: rule for an undeclared chain", n)
			}
			t.rules[fields[1]] = append(t.rules[fields[1]], strings.Join(fields, " "))
		default:
			return table{}, fmt.Errorf("iptables-save line %d: unexpected %.40q", n, line)
		}
	}
	if err := sc.Err(); err != nil {
		return table{}, fmt.Errorf("read iptables-save output: %w", err)
	}
	if inFilter {
		return table{}, fmt.Errorf("iptables-save output ends inside the filter table")
	}
	if !seen {
		// iptables-nft prints nothing for a table that does not exist yet; the built-in
		// chains exist as soon as a rule is added to them.
		for _, c := range []string{"INPUT", "FORWARD", "OUTPUT"} {
			t.chains[c] = true
		}
	}
	return t, nil
}

// jumps are the rules of chain that jump to target for traffic in on the interfaces
// matching iface (e.g. "pmab12c+"), or for any traffic when iface is "".
func (t table) jumps(chain, iface, target string) []string {
	var out []string
	for _, r := range t.rules[chain] {
		f := strings.Fields(r)
		if hasPair(f, "-j", target) && (iface == "" && len(f) == 4 || iface != "" && hasPair(f, "-i", iface)) {
			out = append(out, r)
		}
	}
	return out
}

// leadsTo reports whether chain's first rule jumps to target for all traffic.
func (t table) leadsTo(chain, target string) bool {
	rs := t.rules[chain]
	return len(rs) > 0 && rs[0] == "-A "+chain+" -j "+target
}

// jumpFirst reports whether chain jumps to target for traffic in on iface (all traffic when
// iface is "") before any rule that could decide on that traffic first: only jumps to chains
// of ours or other agents' (POCKETMOLT-…) may come before it. An ACCEPT, or a jump to someone
// else's chain, above it would let bot traffic through unfenced.
func (t table) jumpFirst(chain, iface, target string) bool {
	for _, r := range t.rules[chain] {
		f := strings.Fields(r)
		if hasPair(f, "-j", target) && (iface == "" && len(f) == 4 || iface != "" && hasPair(f, "-i", iface)) {
			return true
		}
		if j := value(f, "-j"); !strings.HasPrefix(j, chainPrefix) {
			return false
		}
	}
	return false
}

// value is the argument of flag in fields, or "".
func value(fields []string, flag string) string {
	for i := 0; i+1 < len(fields); i++ {
		if fields[i] == flag {
			return fields[i+1]
		}
	}
	return ""
}

// jumpsTo are all the rules, in any chain, that jump to target.
func (t table) jumpsTo(target string) []string {
	var out []string
	for _, c := range slices.Sorted(maps.Keys(t.rules)) {
		for _, r := range t.rules[c] {
			if hasPair(strings.Fields(r), "-j", target) {
				out = append(out, r)
			}
		}
	}
	return out
}

func hasPair(fields []string, flag, value string) bool {
	for i := 0; i+1 < len(fields); i++ {
		if fields[i] == flag && fields[i+1] == value {
			return true
		}
	}
	return false
}
