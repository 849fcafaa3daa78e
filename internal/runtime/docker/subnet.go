package docker

import (
	"context"
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/pocketmolt/pocketmolt/internal/runtime"
)

// DefaultSubnetPool is where bot networks take their subnets. The Engine's own default
// address pools hold about 30 bridge networks, fewer than a host's bots; a /28 from this /16
// each gives room for 4,096.
var DefaultSubnetPool = netip.MustParsePrefix("10.213.0.0/16")

// subnetBits is each bot network's size: a gateway and one container need few addresses.
const subnetBits = 28

// SetSubnetPool sets the IPv4 range bot networks take their /28 subnets from.
func (d *Docker) SetSubnetPool(p netip.Prefix) error {
	if !p.Addr().Is4() || p.Bits() > subnetBits || p != p.Masked() {
		return fmt.Errorf("bot subnet pool %s: want an IPv4 network of /%d or larger, e.g. %s", p, subnetBits, DefaultSubnetPool)
	}
	d.netMu.Lock()
	d.pool = p
	d.netMu.Unlock()
	return nil
}

// freeSubnet returns a /28 of the pool that overlaps no network the Engine has, searching
// from a random place so that agents sharing one Engine rarely pick the same one at once.
func (d *Docker) freeSubnet(ctx context.Context) (netip.Prefix, error) {
	res, err := d.c.NetworkList(ctx, client.NetworkListOptions{})
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("list networks: %w", err)
	}
	var used []netip.Prefix
	for _, n := range res.Items {
		for _, c := range n.IPAM.Config {
			if c.Subnet.IsValid() {
				used = append(used, c.Subnet)
			}
		}
	}
	pool := d.pool
	if !pool.IsValid() {
		pool = DefaultSubnetPool
	}
	step := uint32(1) << (32 - subnetBits)
	base := pool.Addr().As4()
	start := uint32(base[0])<<24 | uint32(base[1])<<16 | uint32(base[2])<<8 | uint32(base[3])
	count := uint32(1) << (subnetBits - pool.Bits())
	first := rand.Uint32N(count)
next:
	for i := uint32(0); i < count; i++ {
		a := start + ((first+i)%count)*step
		cand := netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(a >> 24), byte(a >> 16), byte(a >> 8), byte(a)}), subnetBits)
		for _, u := range used {
			if u.Overlaps(cand) {
				continue next
			}
		}
		return cand, nil
	}
	return netip.Prefix{}, fmt.Errorf("bot subnet pool %s is full (%d networks)", pool, count)
}

// bridgeNameOption is the Engine's bridge driver option naming the network's Linux bridge.
const bridgeNameOption = "com.docker.network.bridge.name"

// BridgePrefix is how the bridge interface of every bot network of the agent agentID begins:
// "pm" and five characters of a hash of agentID. Firewall rules match a bot's traffic by it
// (iptables -i PREFIX+), so agents sharing one machine never match each other's bots.
func BridgePrefix(agentID string) string { return "pm" + hashName(agentID, 5) }

// bridgeName is the bridge interface of bot botID's network: BridgePrefix and eight
// characters of a hash of the bot id, 15 characters, the kernel's limit.
func bridgeName(agentID, botID string) string { return BridgePrefix(agentID) + hashName(botID, 8) }

// hashName is the first n characters of s's SHA-256 in lower-case base32: letters and
// digits, fit for interface names.
func hashName(s string, n int) string {
	sum := sha256.Sum256([]byte(s))
	return strings.ToLower(base32.StdEncoding.EncodeToString(sum[:]))[:n]
}

// createNetwork creates the bot's bridge network on a free subnet of the pool, retrying when
// another agent on the same Engine took that subnet first, and returns its gateway: the
// subnet's first address, set explicitly rather than left to the Engine's choice. A network
// labelled with an agent and a bot gets its bridge interface named bridgeName.
func (d *Docker) createNetwork(ctx context.Context, name string, labels map[string]string) (netip.Addr, error) {
	d.netMu.Lock()
	defer d.netMu.Unlock()
	var err error
	for range 5 {
		var sub netip.Prefix
		if sub, err = d.freeSubnet(ctx); err != nil {
			return netip.Addr{}, err
		}
		gw := sub.Addr().Next()
		opts := client.NetworkCreateOptions{
			Driver: network.NetworkBridge,
			Labels: labels,
			IPAM:   &network.IPAM{Config: []network.IPAMConfig{{Subnet: sub, Gateway: gw}}},
		}
		if agent, bot := labels[runtime.LabelAgent], labels[runtime.LabelBot]; agent != "" && bot != "" {
			opts.Options = map[string]string{bridgeNameOption: bridgeName(agent, bot)}
		}
		_, err = d.c.NetworkCreate(ctx, name, opts)
		if err == nil {
			return gw, nil
		}
		if !strings.Contains(err.Error(), "overlap") {
			return netip.Addr{}, err
		}
	}
	return netip.Addr{}, err
}

// ensureBridgeName replaces the bot's network id when its bridge is not named bridgeName:
// a network made before bridges were named would leave the bot outside the firewall's
// rules. It is called only when no container of the bot exists, so nothing is attached;
// if something is, the Engine refuses the removal and the error says so. It returns the
// network's gateway.
func (d *Docker) ensureBridgeName(ctx context.Context, id string, spec runtime.ContainerSpec) (netip.Addr, error) {
	res, err := d.c.NetworkInspect(ctx, id, client.NetworkInspectOptions{})
	if err != nil {
		return netip.Addr{}, fmt.Errorf("inspect network %s: %w", id, err)
	}
	want := bridgeName(spec.Agent, spec.BotID)
	if res.Network.Options[bridgeNameOption] == want {
		if gw := gateway(res.Network.IPAM); gw.IsValid() {
			return gw, nil
		}
		// A network of ours always has an IPv4 subnet; one without is made anew below.
	}
	if _, err := d.c.NetworkRemove(ctx, id, client.NetworkRemoveOptions{}); err != nil && !cerrdefs.IsNotFound(err) {
		return netip.Addr{}, fmt.Errorf("replace network %s, whose bridge is not named %s: %w", Name(spec.BotID), want, err)
	}
	return d.createNetwork(ctx, Name(spec.BotID), map[string]string{
		runtime.LabelBot:   spec.BotID,
		runtime.LabelAgent: spec.Agent,
	})
}

// gateway is the IPv4 gateway of a network's address management: the one the Engine reports,
// or, for a subnet it reports none for, the subnet's first address, which is the Engine's
// choice; invalid when the network has no IPv4 subnet.
func gateway(ipam network.IPAM) netip.Addr {
	for _, c := range ipam.Config {
		switch {
		case c.Gateway.Is4() && (!c.Subnet.IsValid() || c.Subnet.Contains(c.Gateway)):
			return c.Gateway
		case c.Subnet.Addr().Is4() && !c.Gateway.IsValid():
			return c.Subnet.Masked().Addr().Next()
		}
	}
	return netip.Addr{}
}
