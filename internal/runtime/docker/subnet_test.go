package docker

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/moby/moby/client"
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
