package firewall

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"strings"
)

// Where the Engine reads the nameservers it gives containers: resolv.conf, or systemd-resolved's
// list of upstream servers when resolv.conf names only its local stub.
const (
	resolvConf         = "/etc/resolv.conf"
	resolvedResolvConf = "/run/systemd/resolve/resolv.conf"
)

// maxResolvConf bounds what is read of a resolv.conf; real ones are a few hundred bytes.
const maxResolvConf = 64 << 10

// Nameservers are the nameserver addresses of a resolv.conf, in order, without zones (a
// link-local server with a zone is skipped: the Engine does not give those to containers).
func Nameservers(conf []byte) []netip.Addr {
	var out []netip.Addr
	sc := bufio.NewScanner(bytes.NewReader(conf))
	sc.Buffer(make([]byte, 0, 1024), maxResolvConf)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || f[0] != "nameserver" {
			continue
		}
		a, err := netip.ParseAddr(f[1])
		if err != nil || a.Zone() != "" {
			continue
		}
		out = append(out, a.Unmap())
	}
	return out
}

// HostResolvers are the DNS servers the Engine gives containers on this host, as it finds
// them: /etc/resolv.conf's, or systemd-resolved's upstream servers when resolv.conf names only
// loopback addresses. Loopback servers are left out (the Engine does not forward to them
// from a container). A missing file is not an error: there are none.
func HostResolvers() ([]netip.Addr, error) {
	addrs, err := readNameservers(resolvConf)
	if err != nil {
		return nil, err
	}
	if len(addrs) > 0 && allLoopback(addrs) {
		if addrs, err = readNameservers(resolvedResolvConf); err != nil {
			return nil, err
		}
	}
	var out []netip.Addr
	for _, a := range addrs {
		if !a.IsLoopback() {
			out = append(out, a)
		}
	}
	return out, nil
}

func readNameservers(path string) ([]netip.Addr, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read nameservers: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxResolvConf))
	if err != nil {
		return nil, fmt.Errorf("read nameservers from %s: %w", path, err)
	}
	return Nameservers(b), nil
}

func allLoopback(addrs []netip.Addr) bool {
	for _, a := range addrs {
		if !a.IsLoopback() {
			return false
		}
	}
	return true
}

// DNS are the rules that let bots' DNS queries (UDP and TCP port 53) reach servers: the
// Engine's resolver inside each container forwards to the host's nameservers from the
// container's own network, so a nameserver on a private or link-local address (a cloud's
// 169.254.169.253, a LAN router) would otherwise be refused.
func DNS(servers []netip.Addr) []Rule {
	var out []Rule
	for _, a := range servers {
		out = append(out, Rule{Prefix: netip.PrefixFrom(a, a.BitLen()), FromPort: 53, ToPort: 53})
	}
	return out
}
