package docker

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/pocketmolt/pocketmolt/internal/runtime"
)

// More bot networks than the Engine's default address pools hold (about 30) all get a subnet.
func TestNetworksBeyondDefaultPools(t *testing.T) {
	d, err := New("")
	if err == nil {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		_, err = d.Version(ctx)
		cancel()
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI needs a Docker Engine: %v", err)
		}
		t.Skipf("no Docker Engine: %v", err)
	}
	defer d.Close()
	if err := d.SetSubnetPool(netip.MustParsePrefix("10.214.0.0/20")); err != nil {
		t.Fatal(err)
	}
	prefix := fmt.Sprintf("pm-subnet-test-%d-", os.Getpid())
	seen := map[netip.Prefix]bool{}
	for i := range 40 {
		name := fmt.Sprintf("%s%d", prefix, i)
		t.Cleanup(func() { d.c.NetworkRemove(context.Background(), name, client.NetworkRemoveOptions{}) })
		gw, err := d.createNetwork(t.Context(), name, map[string]string{"pocketmolt.test": "subnet"})
		if err != nil {
			t.Fatalf("network %d: %v", i, err)
		}
		n, err := d.c.NetworkInspect(t.Context(), name, client.NetworkInspectOptions{})
		if err != nil || len(n.Network.IPAM.Config) != 1 {
			t.Fatalf("inspect network %d: %v", i, err)
		}
		sub := n.Network.IPAM.Config[0].Subnet
		if sub.Bits() != subnetBits || !netip.MustParsePrefix("10.214.0.0/20").Contains(sub.Addr()) || seen[sub] {
			t.Fatalf("network %d got subnet %s", i, sub)
		}
		if gw != sub.Addr().Next() || n.Network.IPAM.Config[0].Gateway != gw || gateway(n.Network.IPAM) != gw {
			t.Fatalf("network %d: subnet %s, gateway %s, the Engine reports %s", i, sub, gw, n.Network.IPAM.Config[0].Gateway)
		}
		seen[sub] = true
	}
	for _, bad := range []string{"10.0.0.0/29", "fd00::/64", "10.0.0.1/16"} {
		if err := d.SetSubnetPool(netip.MustParsePrefix(bad)); err == nil {
			t.Errorf("pool %s accepted", bad)
		}
	}
}

func TestBridgeNames(t *testing.T) {
	a, b := BridgePrefix("h_0123456789abcdef"), BridgePrefix("h_fedcba9876543210")
	if a == b || len(a) != 7 || !strings.HasPrefix(a, "pm") {
		t.Fatalf("prefixes %q %q", a, b)
	}
	if BridgePrefix("h_0123456789abcdef") != a {
		t.Fatal("the prefix is not stable")
	}
	n1, n2 := bridgeName("h_0123456789abcdef", "b_1"), bridgeName("h_0123456789abcdef", "b_2")
	if n1 == n2 || len(n1) != 15 || !strings.HasPrefix(n1, a) || !strings.HasPrefix(n2, a) {
		t.Fatalf("names %q %q", n1, n2)
	}
	if strings.HasPrefix(bridgeName("h_fedcba9876543210", "b_1"), a) {
		t.Fatal("another agent's bridge matches this agent's prefix")
	}
}

// A bot network's bridge interface is named for its agent and bot, so the firewall can tell
// whose traffic it is; a network made without the name is replaced when the bot's container
// is made anew.
func TestBotNetworkBridgeName(t *testing.T) {
	d, err := New("")
	if err == nil {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		_, err = d.Version(ctx)
		cancel()
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI needs a Docker Engine: %v", err)
		}
		t.Skipf("no Docker Engine: %v", err)
	}
	defer d.Close()
	agent := fmt.Sprintf("h_bridgetest%d", os.Getpid())
	spec := runtime.ContainerSpec{BotID: fmt.Sprintf("b_bridgetest%d", os.Getpid()), Agent: agent}
	name := Name(spec.BotID)
	t.Cleanup(func() {
		ids, _ := d.networks(context.Background(), name)
		for _, id := range ids {
			d.c.NetworkRemove(context.Background(), id, client.NetworkRemoveOptions{})
		}
	})

	// As main made them: no bridge name.
	if _, err := d.createNetwork(t.Context(), name, map[string]string{runtime.LabelBot: spec.BotID}); err != nil {
		t.Fatal(err)
	}
	ids, err := d.networks(t.Context(), name)
	if err != nil || len(ids) != 1 {
		t.Fatalf("networks %v %v", ids, err)
	}
	gw, err := d.ensureNetwork(t.Context(), spec)
	if err != nil {
		t.Fatal(err)
	}
	ids, err = d.networks(t.Context(), name)
	if err != nil || len(ids) != 1 {
		t.Fatalf("networks after ensure %v %v", ids, err)
	}
	n, err := d.c.NetworkInspect(t.Context(), ids[0], client.NetworkInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := bridgeName(agent, spec.BotID)
	if got := n.Network.Options[bridgeNameOption]; got != want {
		t.Fatalf("bridge name option %q, want %q", got, want)
	}
	if n.Network.Labels[runtime.LabelAgent] != agent {
		t.Fatalf("labels %v", n.Network.Labels)
	}
	ifc, err := net.InterfaceByName(want)
	if err != nil {
		t.Fatalf("no bridge interface %s: %v", want, err)
	}
	// The gateway ensureNetwork returns is the host's address on the bot's bridge: where
	// the agent serves the bot's model endpoint.
	addrs, err := ifc.Addrs()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(addrs, func(a net.Addr) bool {
		p, err := netip.ParsePrefix(a.String())
		return err == nil && p.Addr() == gw
	}) {
		t.Fatalf("gateway %s is not an address of bridge %s (%v)", gw, want, addrs)
	}
	again, err := d.ensureNetwork(t.Context(), spec)
	if err != nil || again != gw {
		t.Fatalf("ensure again: gateway %s, %v; want %s", again, err, gw)
	}
	if again, _ := d.networks(t.Context(), name); len(again) != 1 || again[0] != ids[0] {
		t.Fatalf("a named network was replaced: %v → %v", ids, again)
	}
}

func TestGateway(t *testing.T) {
	sub := netip.MustParsePrefix("10.213.4.16/28")
	tests := []struct {
		name string
		ipam network.IPAM
		want netip.Addr
	}{
		{"reported", network.IPAM{Config: []network.IPAMConfig{{Subnet: sub, Gateway: netip.MustParseAddr("10.213.4.30")}}}, netip.MustParseAddr("10.213.4.30")},
		{"not reported: the subnet's first address", network.IPAM{Config: []network.IPAMConfig{{Subnet: sub}}}, netip.MustParseAddr("10.213.4.17")},
		{"IPv6 first", network.IPAM{Config: []network.IPAMConfig{
			{Subnet: netip.MustParsePrefix("fd00::/64"), Gateway: netip.MustParseAddr("fd00::1")},
			{Subnet: sub, Gateway: netip.MustParseAddr("10.213.4.17")},
		}}, netip.MustParseAddr("10.213.4.17")},
		{"a gateway outside its subnet", network.IPAM{Config: []network.IPAMConfig{{Subnet: sub, Gateway: netip.MustParseAddr("10.0.0.1")}}}, netip.Addr{}},
		{"IPv6 only", network.IPAM{Config: []network.IPAMConfig{{Subnet: netip.MustParsePrefix("fd00::/64")}}}, netip.Addr{}},
		{"none", network.IPAM{}, netip.Addr{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := gateway(tt.ipam); got != tt.want {
				t.Fatalf("gateway = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestModelHostAddr(t *testing.T) {
	gw := netip.MustParseAddr("10.213.4.17")
	if got := modelHostAddr([]string{modelHostEntry(gw)}); got != gw {
		t.Fatalf("modelHostAddr(%q) = %s", modelHostEntry(gw), got)
	}
	tests := []struct {
		extra []string
		want  netip.Addr
	}{
		{[]string{"pocketmolt-models:10.213.4.17"}, gw},
		{[]string{"other:10.0.0.1", "pocketmolt-models=10.213.4.17"}, gw},
		{[]string{"pocketmolt-models:host-gateway"}, netip.Addr{}},
		{[]string{"pocketmolt-models-2:10.213.4.17", "other:10.0.0.1"}, netip.Addr{}},
		{nil, netip.Addr{}},
	}
	for _, tt := range tests {
		if got := modelHostAddr(tt.extra); got != tt.want {
			t.Errorf("modelHostAddr(%q) = %s, want %s", tt.extra, got, tt.want)
		}
	}
}
