package docker

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"

	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
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

// createNetwork creates the bot's bridge network on a free subnet of the pool, retrying when
// another agent on the same Engine took that subnet first.
func (d *Docker) createNetwork(ctx context.Context, name string, labels map[string]string) error {
	d.netMu.Lock()
	defer d.netMu.Unlock()
	var err error
	for range 5 {
		var sub netip.Prefix
		if sub, err = d.freeSubnet(ctx); err != nil {
			return err
		}
		_, err = d.c.NetworkCreate(ctx, name, client.NetworkCreateOptions{
			Driver: network.NetworkBridge,
			Labels: labels,
			IPAM:   &network.IPAM{Config: []network.IPAMConfig{{Subnet: sub}}},
		})
		if err == nil || !strings.Contains(err.Error(), "overlap") {
			return err
		}
	}
	return err
}
