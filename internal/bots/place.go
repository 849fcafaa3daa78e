package bots

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"

	"github.com/pocketmolt/pocketmolt/internal/fleet"
	"github.com/pocketmolt/pocketmolt/internal/store"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// usage is what a host's bots take of its capacity.
type usage struct {
	bots   int
	memory int64
}

// usages sums every bot's resources by host. Bots being deleted still count: their
// containers hold memory until the host removes them.
func usages(ctx context.Context, st *store.Store) (map[string]usage, error) {
	bs, err := st.ListBots(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]usage{}
	for _, b := range bs {
		var sp spec
		_ = json.Unmarshal(b.Spec, &sp)
		u := out[b.HostID]
		u.bots++
		u.memory += sp.Resources.MemoryBytes
		out[b.HostID] = u
	}
	return out, nil
}

// capacityOf is what placement may use of a host: the capacity it declared in its last
// heartbeat, held to what pmd knows of it (fleet.HostCapacity). A host cannot draw bots to
// itself by declaring more than it has.
func capacityOf(h store.Host) wire.Capacity { return fleet.HostCapacity(h).Usable }

// fits says why a bot of mem bytes cannot go on h, or "" if it can.
func (s *Service) fits(h store.Host, u usage, mem int64) string {
	switch st := s.fleet.Status(h); {
	case st == wire.HostDraining:
		return "is draining"
	case st != wire.HostOnline:
		return "is " + st
	}
	hc := fleet.HostCapacity(h)
	c := hc.Usable
	switch {
	case (c.Bots == 0 || c.MemoryBytes == 0) && hc.Refused != "":
		return "has no usable capacity: " + hc.Refused
	case c.Bots == 0 && c.MemoryBytes == 0:
		return "declares no capacity"
	case u.bots+1 > c.Bots:
		return "is full (" + strconv.Itoa(u.bots) + "/" + strconv.Itoa(c.Bots) + " bots)"
	case u.memory+mem > c.MemoryBytes:
		return "is full (" + gib(u.memory) + " of " + gib(c.MemoryBytes) + " memory taken, the bot needs " + gib(mem) + ")"
	}
	return ""
}

// place picks the host for a new bot: the one named by ref, which must be online, not
// draining and have room; or else the online, non-draining host with the most free memory.
func (s *Service) place(ctx context.Context, tx *store.Store, ref string, mem int64) (store.Host, error) {
	us, err := usages(ctx, tx)
	if err != nil {
		return store.Host{}, err
	}
	if ref != "" {
		h, err := tx.GetHost(ctx, ref)
		if errors.Is(err, store.ErrNotFound) {
			h, err = tx.GetHostByName(ctx, ref)
		}
		if errors.Is(err, store.ErrNotFound) {
			return store.Host{}, wire.Errorf(wire.CodeNotFound, "no host %q", ref)
		}
		if err != nil {
			return store.Host{}, err
		}
		if why := s.fits(h, us[h.ID], mem); why != "" {
			return store.Host{}, wire.Errorf(wire.CodeConflict, "host %s %s", h.Name, why)
		}
		return h, nil
	}
	hs, err := tx.ListHosts(ctx)
	if err != nil {
		return store.Host{}, err
	}
	var best store.Host
	var bestFree int64 = -1
	for _, h := range hs {
		u := us[h.ID]
		if s.fits(h, u, mem) != "" {
			continue
		}
		free := capacityOf(h).MemoryBytes - u.memory
		if free > bestFree {
			best, bestFree = h, free
		}
	}
	if bestFree < 0 {
		return store.Host{}, wire.Errorf(wire.CodeConflict, "no online, non-draining host has room for a bot with %s of memory", gib(mem))
	}
	return best, nil
}

// FillUsage adds each host's bot count and allocated memory to hosts.
func (s *Service) FillUsage(ctx context.Context, hosts []wire.Host) error {
	us, err := usages(ctx, s.store)
	if err != nil {
		return err
	}
	for i := range hosts {
		u := us[hosts[i].ID]
		hosts[i].Bots, hosts[i].MemoryAllocated = u.bots, u.memory
	}
	return nil
}
