package bots

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

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
		if b.HostID == "" {
			continue // waits for a host: takes nothing of any
		}
		var sp spec
		_ = json.Unmarshal(b.Spec, &sp)
		u := out[b.HostID]
		u.bots++
		u.memory += sp.Resources.MemoryBytes
		out[b.HostID] = u
	}
	return out, nil
}

// room is a host as placement sees it: its status and what pmd makes of its capacity
// (fleet.HostCapacity: what it declared in its last heartbeat, held to what pmd knows of it,
// so a host cannot draw bots to itself by declaring more than it has). It is worked out once
// per host and round, not once per bot.
type room struct {
	h      store.Host
	status string
	cap    fleet.Capacity
}

func (s *Service) rooms(hs []store.Host) []room {
	out := make([]room, len(hs))
	for i, h := range hs {
		out[i] = room{h: h, status: s.fleet.Status(h), cap: fleet.HostCapacity(h)}
	}
	return out
}

// fits says why a bot of mem bytes cannot go on r, given what its bots take (u), or "" if it
// can.
func fits(r room, u usage, mem int64) string {
	switch st := r.status; {
	case st == wire.HostDraining:
		return "is draining"
	case st != wire.HostOnline:
		return "is " + st
	}
	c := r.cap.Usable
	switch {
	case (c.Bots == 0 || c.MemoryBytes == 0) && r.cap.Refused != "":
		return "has no usable capacity: " + r.cap.Refused
	case c.Bots == 0 && c.MemoryBytes == 0:
		return "declares no capacity"
	case u.bots+1 > c.Bots:
		return "is full (" + strconv.Itoa(u.bots) + "/" + strconv.Itoa(c.Bots) + " bots)"
	case u.memory+mem > c.MemoryBytes:
		return "is full (" + gib(u.memory) + " of " + gib(c.MemoryBytes) + " memory taken, the bot needs " + gib(mem) + ")"
	}
	return ""
}

// place picks the host for new bot b: the one named by ref, which must be online, not
// draining, shared and have room; or else the host choose picks. With no host named and none
// with room, it returns no host and why the bot waits: never an error.
func (s *Service) place(ctx context.Context, tx *store.Store, b store.Bot, ref string, mem int64) (store.Host, string, error) {
	us, err := usages(ctx, tx)
	if err != nil {
		return store.Host{}, "", err
	}
	if ref != "" {
		h, err := tx.GetHost(ctx, ref)
		if errors.Is(err, store.ErrNotFound) {
			h, err = tx.GetHostByName(ctx, ref)
		}
		if errors.Is(err, store.ErrNotFound) {
			return store.Host{}, "", wire.Errorf(wire.CodeNotFound, "no host %q", ref)
		}
		if err != nil {
			return store.Host{}, "", err
		}
		if h.DedicatedBot != "" && h.DedicatedBot != b.ID {
			return store.Host{}, "", wire.Errorf(wire.CodeConflict, "host %s is dedicated to another bot", h.Name)
		}
		if why := fits(s.rooms([]store.Host{h})[0], us[h.ID], mem); why != "" {
			return store.Host{}, "", wire.Errorf(wire.CodeConflict, "host %s %s", h.Name, why)
		}
		return h, "", nil
	}
	hs, err := tx.ListHosts(ctx)
	if err != nil {
		return store.Host{}, "", err
	}
	h, why := choose(b, s.rooms(hs), us, mem)
	return h, why, nil
}

// waitDedicated is why a dedicated bot waits while no host of its own has enrolled.
const waitDedicated = "waiting for a dedicated host"

// waitRoom is why a shared bot of mem bytes waits.
func waitRoom(mem int64) string {
	return "no host has room for a bot with " + gib(mem) + " of memory"
}

// choose picks a host for bot b among rs, given what their bots take (us). A shared bot goes
// on the online, non-draining shared host with room and the most free memory; a dedicated
// bot only on a host enrolled for it, when that has room. With none, it returns no host and
// why the bot waits.
func choose(b store.Bot, rs []room, us map[string]usage, mem int64) (store.Host, string) {
	if b.Placement == store.PlacementDedicated {
		why := waitDedicated
		for _, r := range rs {
			if r.h.DedicatedBot != b.ID {
				continue
			}
			no := fits(r, us[r.h.ID], mem)
			if no == "" {
				return r.h, ""
			}
			why = waitDedicated + ": its host " + r.h.Name + " " + no
		}
		return store.Host{}, why
	}
	var best store.Host
	var bestFree int64 = -1
	for _, r := range rs {
		// A dedicated host runs its own bot alone: a shared bot on it would share the
		// machine of a customer who paid not to.
		if r.h.DedicatedBot != "" {
			continue
		}
		u := us[r.h.ID]
		if fits(r, u, mem) != "" {
			continue
		}
		free := r.cap.Usable.MemoryBytes - u.memory
		if free > bestFree {
			best, bestFree = r.h, free
		}
	}
	if bestFree < 0 {
		return store.Host{}, waitRoom(mem)
	}
	return best, ""
}

// Run places the bots that wait for a host (PlaceWaiting) every PlaceInterval and whenever it
// is woken — a host connected or gained room, a bot's record went — until ctx ends. pmd runs
// it once; several pmds on one database may each run it. The end of ctx is not an error.
func (s *Service) Run(ctx context.Context) error {
	t := time.NewTicker(s.cfg.PlaceInterval)
	defer t.Stop()
	for {
		if err := s.PlaceWaiting(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("place waiting bots", "error", err.Error())
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-s.wake:
		}
	}
}

// wakePlacer makes Run look for waiting bots now, once however often it is called before.
func (s *Service) wakePlacer() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// HostChanged is told by the fleet when a host may have gained room: it wakes the placer
// (fleet.RoomObserver).
func (s *Service) HostChanged(string) { s.wakePlacer() }

var _ fleet.RoomObserver = (*Service)(nil)

// PlaceWaiting places the bots that wait for a host, oldest first, each where Create would
// put it now. A bot that fits nowhere keeps waiting, with its reason brought up to date, and
// does not hold back younger bots that fit. It runs in one transaction under the placement
// lock, so concurrent calls — in this pmd or in another on the same database — place each bot
// once and fill no host past its capacity. The hosts that got bots are sent their sets.
func (s *Service) PlaceWaiting(ctx context.Context) error {
	// A read first: when nothing waits, as is usual, no write transaction is begun.
	ws, err := s.store.ListWaitingBots(ctx)
	if err != nil || len(ws) == 0 {
		return err
	}
	var placed []store.Bot
	err = s.store.InTx(ctx, func(tx *store.Store) error {
		placed = placed[:0]
		if err := tx.LockPlacement(ctx); err != nil {
			return err
		}
		ws, err := tx.ListWaitingBots(ctx)
		if err != nil || len(ws) == 0 {
			return err
		}
		us, err := usages(ctx, tx)
		if err != nil {
			return err
		}
		hs, err := tx.ListHosts(ctx)
		if err != nil {
			return err
		}
		rs := s.rooms(hs)
		now := s.cfg.Now().UTC()
		for _, b := range ws {
			var sp spec
			if err := json.Unmarshal(b.Spec, &sp); err != nil {
				s.log.Error("waiting bot's spec", "bot_id", b.ID, "error", err.Error())
				continue
			}
			mem := sp.Resources.MemoryBytes
			h, why := choose(b, rs, us, mem)
			if h.ID == "" {
				if why != b.Waiting {
					if err := tx.SetBotWaiting(ctx, b.ID, why, now); err != nil {
						return err
					}
				}
				continue
			}
			if err := tx.PlaceBot(ctx, b.ID, h.ID, now); err != nil {
				return err
			}
			_, err := tx.AppendAudit(ctx, store.AuditEntry{Time: now, Actor: "pmd", Action: "bot.place", Target: b.Name,
				Detail: fmt.Sprintf("%s, host %s, after waiting %s", b.ID, h.Name, now.Sub(b.CreatedAt).Round(time.Second))})
			if err != nil {
				return err
			}
			u := us[h.ID]
			u.bots++
			u.memory += mem
			us[h.ID] = u
			b.HostID, b.Waiting = h.ID, ""
			placed = append(placed, b)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("place waiting bots: %w", err)
	}
	kicked := map[string]bool{}
	for _, b := range placed {
		s.log.Info("bot placed", "bot_id", b.ID, "bot", b.Name, "host_id", b.HostID)
		if !kicked[b.HostID] {
			kicked[b.HostID] = true
			s.Kick(b.HostID)
		}
	}
	return nil
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
