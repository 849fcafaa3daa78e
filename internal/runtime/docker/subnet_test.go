package docker

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

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
		if err := d.createNetwork(t.Context(), name, map[string]string{"pocketmolt.test": "subnet"}); err != nil {
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
	if err := d.createNetwork(t.Context(), name, map[string]string{runtime.LabelBot: spec.BotID}); err != nil {
		t.Fatal(err)
	}
	ids, err := d.networks(t.Context(), name)
	if err != nil || len(ids) != 1 {
		t.Fatalf("networks %v %v", ids, err)
	}
	if err := d.ensureNetwork(t.Context(), spec); err != nil {
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
	if _, err := net.InterfaceByName(want); err != nil {
		t.Fatalf("no bridge interface %s: %v", want, err)
	}
	if err := d.ensureNetwork(t.Context(), spec); err != nil {
		t.Fatal(err)
	}
	if again, _ := d.networks(t.Context(), name); len(again) != 1 || again[0] != ids[0] {
		t.Fatalf("a named network was replaced: %v → %v", ids, again)
	}
}
