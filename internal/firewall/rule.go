package firewall

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Rule is one allowance: traffic from bots to Prefix (on the ports FromPort..ToPort of Proto,
// when they are set) is accepted before anything is refused, whether Prefix holds host
// addresses or addresses beyond the host.
type Rule struct {
	Prefix netip.Prefix
	// Proto is "tcp", "udp", or "" for both (with ports) or any protocol (without).
	Proto string
	// FromPort and ToPort bound the destination ports; both 0 means every port.
	FromPort, ToPort uint16
}

// maxEntry bounds an allow-list entry: the longest sensible one is a bracketed IPv6 network
// with a port range and a protocol, under 70 bytes.
const maxEntry = 128

// ParseRule parses one allow-list entry, as an operator writes it:
//
//	10.0.0.5                      one address, every port and protocol
//	10.0.0.0/24                   a network
//	10.0.0.5:5432                 one port, TCP and UDP
//	10.0.0.0/24:8000-8099/tcp     a port range of one protocol
//	10.0.0.5/udp                  every port of one protocol
//	fd00::/8, [fd00::5]:443/tcp   IPv6: in brackets when a port follows
//
// A network must be written at its start (10.0.0.0/8, not 10.0.0.1/8).
func ParseRule(s string) (Rule, error) {
	if len(s) > maxEntry {
		return Rule{}, fmt.Errorf("longer than %d bytes", maxEntry)
	}
	if s == "" {
		return Rule{}, errors.New("empty")
	}
	var r Rule
	rest := s
	if i := strings.LastIndexByte(rest, '/'); i >= 0 {
		// A suffix of letters is a protocol; digits are a network's length.
		if p := rest[i+1:]; p != "" && strings.Trim(strings.ToLower(p), "abcdefghijklmnopqrstuvwxyz") == "" {
			if p != "tcp" && p != "udp" {
				return Rule{}, fmt.Errorf("protocol %q: use tcp or udp", p)
			}
			r.Proto, rest = p, rest[:i]
		}
	}
	addr, ports := rest, ""
	switch {
	case strings.HasPrefix(rest, "["):
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return Rule{}, errors.New("no ] after the IPv6 address")
		}
		addr, ports = rest[1:end], rest[end+1:]
		if ports != "" {
			if ports[0] != ':' {
				return Rule{}, fmt.Errorf("%q after ]: want :PORT", ports)
			}
			ports = ports[1:]
			if ports == "" {
				return Rule{}, errors.New("no port after the colon")
			}
		}
		if !strings.Contains(addr, ":") {
			return Rule{}, errors.New("brackets are for IPv6 addresses only")
		}
	case strings.Count(rest, ":") == 1:
		addr, ports, _ = strings.Cut(rest, ":")
		if ports == "" {
			return Rule{}, errors.New("no port after the colon")
		}
	}
	p, err := parsePrefix(addr)
	if err != nil {
		return Rule{}, err
	}
	r.Prefix = p
	if ports != "" {
		if r.FromPort, r.ToPort, err = parsePorts(ports); err != nil {
			return Rule{}, err
		}
	}
	return r, nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	if s == "" {
		return netip.Prefix{}, errors.New("no address")
	}
	var p netip.Prefix
	if strings.Contains(s, "/") {
		var err error
		if p, err = netip.ParsePrefix(s); err != nil {
			return netip.Prefix{}, fmt.Errorf("network %q: want an address or network such as 10.0.0.0/24", s)
		}
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("address %q: want an address or network such as 10.0.0.0/24", s)
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if p.Addr().Is4In6() {
		return netip.Prefix{}, fmt.Errorf("%s: write IPv4 addresses as IPv4", s)
	}
	if p != p.Masked() {
		return netip.Prefix{}, fmt.Errorf("network %s has host bits set: did you mean %s?", p, p.Masked())
	}
	return p, nil
}

func parsePorts(s string) (from, to uint16, err error) {
	lo, hi, isRange := strings.Cut(s, "-")
	if from, err = parsePort(lo); err != nil {
		return 0, 0, err
	}
	to = from
	if isRange {
		if to, err = parsePort(hi); err != nil {
			return 0, 0, err
		}
		if to < from {
			return 0, 0, fmt.Errorf("port range %s: the first port is above the last", s)
		}
	}
	return from, to, nil
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("port %q: want 1-65535", s)
	}
	return uint16(n), nil
}

// ParseRules parses an allow list; the error names the first bad entry.
func ParseRules(entries []string) ([]Rule, error) {
	out := make([]Rule, 0, len(entries))
	for _, e := range entries {
		r, err := ParseRule(strings.TrimSpace(e))
		if err != nil {
			return nil, fmt.Errorf("entry %q: %w", e, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// String writes r as ParseRule reads it.
func (r Rule) String() string {
	var b strings.Builder
	hasPorts := r.FromPort != 0
	if r.Prefix.Addr().Is6() && hasPorts {
		b.WriteString("[")
	}
	if r.Prefix.IsSingleIP() {
		b.WriteString(r.Prefix.Addr().String())
	} else {
		b.WriteString(r.Prefix.String())
	}
	if r.Prefix.Addr().Is6() && hasPorts {
		b.WriteString("]")
	}
	if hasPorts {
		b.WriteString(":" + strconv.Itoa(int(r.FromPort)))
		if r.ToPort != r.FromPort {
			b.WriteString("-" + strconv.Itoa(int(r.ToPort)))
		}
	}
	if r.Proto != "" {
		b.WriteString("/" + r.Proto)
	}
	return b.String()
}

// valid reports whether r can be rendered: a network written at its start, both ports or neither, in order, and
// a protocol iptables matches ports of.
func (r Rule) valid() bool {
	return r.Prefix.IsValid() && r.Prefix == r.Prefix.Masked() && (r.FromPort == 0) == (r.ToPort == 0) && r.ToPort >= r.FromPort &&
		(r.Proto == "" || r.Proto == "tcp" || r.Proto == "udp")
}

// matches are r as iptables match arguments, one set per protocol it covers.
func (r Rule) matches() [][]string {
	dst := []string{"-d", r.Prefix.String()}
	if r.FromPort == 0 {
		if r.Proto == "" {
			return [][]string{dst}
		}
		return [][]string{append(dst, "-p", r.Proto)}
	}
	port := strconv.Itoa(int(r.FromPort))
	if r.ToPort != r.FromPort {
		port += ":" + strconv.Itoa(int(r.ToPort))
	}
	protos := []string{r.Proto}
	if r.Proto == "" {
		protos = []string{"tcp", "udp"}
	}
	var out [][]string
	for _, p := range protos {
		out = append(out, append(append([]string(nil), dst...), "-p", p, "-m", p, "--dport", port))
	}
	return out
}
