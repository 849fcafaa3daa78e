package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/pocketmolt/pocketmolt/internal/store"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// botMemoryFloor is the least memory a bot takes by default (bots.MinMemory): a host cannot run
// more gateways than it has of it, unless an operator says otherwise.
const botMemoryFloor = 1 << 30

// Capacity is what pmd makes of the capacity a host declares. It is computed from the host's
// record alone, so placement and the admin API agree on it.
type Capacity struct {
	// Usable is what placement uses: Declared, each part held to Limit.
	Usable   wire.Capacity
	Declared wire.Capacity
	// Limit bounds Declared; a zero part means no bound is known, and nothing is usable.
	Limit  wire.Capacity
	Source string // wire.CapacityFromOperator, wire.CapacityFromEnrollment or ""
	// Refused says why pmd refused Declared, "" when it accepted it.
	Refused string
}

// HostCapacity bounds what h declares in its heartbeats by what pmd knows of it: an operator's
// limit where one is set, else the memory the host reported when it enrolled (all of it for
// bots, and a bot per GiB of it). A host whose memory pmd does not know, and that has no
// operator limit, gets nothing usable: its declaration cannot be checked.
func HostCapacity(h store.Host) Capacity {
	var c Capacity
	if len(h.Facts) > 0 {
		var f wire.HostFacts
		if json.Unmarshal(h.Facts, &f) == nil {
			c.Declared = f.Capacity
		}
	}
	if h.MemoryBytes > 0 {
		c.Limit = wire.Capacity{Bots: int(h.MemoryBytes / botMemoryFloor), MemoryBytes: h.MemoryBytes}
		c.Source = wire.CapacityFromEnrollment
	}
	if h.CapacityBots > 0 {
		c.Limit.Bots, c.Source = h.CapacityBots, wire.CapacityFromOperator
	}
	if h.CapacityMemoryBytes > 0 {
		c.Limit.MemoryBytes, c.Source = h.CapacityMemoryBytes, wire.CapacityFromOperator
	}
	c.Usable = wire.Capacity{Bots: min(c.Declared.Bots, c.Limit.Bots), MemoryBytes: min(c.Declared.MemoryBytes, c.Limit.MemoryBytes)}
	var why []string
	if c.Declared.Bots > 0 || c.Declared.MemoryBytes > 0 {
		switch {
		case c.Limit.Bots <= 0 || c.Limit.MemoryBytes <= 0:
			why = append(why, "pmd knows nothing of the host's memory to check it against; set a limit with pmctl hosts set")
		default:
			if c.Declared.Bots > c.Limit.Bots {
				why = append(why, "declares "+strconv.Itoa(c.Declared.Bots)+" bots, over the limit of "+strconv.Itoa(c.Limit.Bots))
			}
			if c.Declared.MemoryBytes > c.Limit.MemoryBytes {
				why = append(why, "declares "+size(c.Declared.MemoryBytes)+" of memory, over the limit of "+size(c.Limit.MemoryBytes))
			}
		}
	}
	c.Refused = strings.Join(why, "; ")
	return c
}

// size formats bytes in the largest binary unit that divides them, as the limits are set.
func size(n int64) string {
	for _, u := range []struct {
		shift uint
		name  string
	}{{50, "PiB"}, {40, "TiB"}, {30, "GiB"}, {20, "MiB"}, {10, "KiB"}} {
		if n >= 1<<u.shift && n%(1<<u.shift) == 0 {
			return strconv.FormatInt(n>>u.shift, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10) + "B"
}

// fillCapacity sets w's capacity fields from h.
func fillCapacity(w *wire.Host, h store.Host) {
	c := HostCapacity(h)
	w.Capacity, w.DeclaredCapacity, w.CapacityLimit = c.Usable, c.Declared, c.Limit
	w.CapacityLimitSource, w.CapacityRefused, w.EnrolledMemory = c.Source, c.Refused, h.MemoryBytes
}

// noteCapacity logs, once each time it changes, whether pmd refuses the capacity the host
// declares.
func (f *Fleet) noteCapacity(h store.Host) {
	log := f.log
	c := HostCapacity(h)
	f.mu.Lock()
	last, seen := f.refused[h.ID]
	f.refused[h.ID] = c.Refused
	f.mu.Unlock()
	switch {
	case c.Refused == last && (seen || c.Refused == ""):
	case c.Refused != "":
		log.Warn("host capacity refused", "host_id", h.ID, "host_name", h.Name, "reason", c.Refused,
			"declared_bots", c.Declared.Bots, "declared_memory", c.Declared.MemoryBytes,
			"limit_bots", c.Limit.Bots, "limit_memory", c.Limit.MemoryBytes, "limit_source", c.Source)
	default:
		log.Info("host capacity accepted", "host_id", h.ID, "host_name", h.Name,
			"declared_bots", c.Declared.Bots, "declared_memory", c.Declared.MemoryBytes)
	}
}

// checkCapacity reads the host and notes whether its declared capacity is refused.
func (f *Fleet) checkCapacity(ctx context.Context, hostID string) {
	h, err := f.store.GetHost(ctx, hostID)
	if err != nil {
		f.log.Warn("check host capacity", "host_id", hostID, "error", err.Error())
		return
	}
	f.noteCapacity(h)
}

// SetCapacity sets or clears an operator's capacity limit on a host. It is audited.
func (f *Fleet) SetCapacity(ctx context.Context, actor, ref string, u wire.HostUpdate) (wire.Host, error) {
	switch {
	case u.ClearCapacity && (u.CapacityBots != nil || u.CapacityMemoryBytes != nil):
		return wire.Host{}, wire.Errorf(wire.CodeInvalidArgument, "clear_capacity cannot be combined with a capacity")
	case !u.ClearCapacity && u.CapacityBots == nil && u.CapacityMemoryBytes == nil:
		return wire.Host{}, wire.Errorf(wire.CodeInvalidArgument, "nothing to set: give capacity_bots, capacity_memory_bytes or clear_capacity")
	case u.CapacityBots != nil && (*u.CapacityBots < 1 || *u.CapacityBots > maxCapacityBots):
		return wire.Host{}, wire.Errorf(wire.CodeInvalidArgument, "capacity_bots %d: use 1 to %d", *u.CapacityBots, maxCapacityBots)
	case u.CapacityMemoryBytes != nil && (*u.CapacityMemoryBytes < 1<<20 || *u.CapacityMemoryBytes > maxCapacityMemory):
		return wire.Host{}, wire.Errorf(wire.CodeInvalidArgument, "capacity_memory_bytes %d: use 1MiB to %s", *u.CapacityMemoryBytes, size(maxCapacityMemory))
	}
	now := f.cfg.Now().UTC()
	var h store.Host
	err := f.store.InTx(ctx, func(tx *store.Store) error {
		var err error
		if h, err = f.lookup(ctx, tx, ref); err != nil {
			return err
		}
		if h.RevokedAt != nil {
			return wire.Errorf(wire.CodeConflict, "host %s is revoked", h.Name)
		}
		bots, mem := h.CapacityBots, h.CapacityMemoryBytes
		if u.ClearCapacity {
			bots, mem = 0, 0
		}
		if u.CapacityBots != nil {
			bots = *u.CapacityBots
		}
		if u.CapacityMemoryBytes != nil {
			mem = *u.CapacityMemoryBytes
		}
		if err := tx.SetHostCapacity(ctx, h.ID, bots, mem); err != nil {
			return err
		}
		detail := "capacity limit cleared"
		if bots > 0 || mem > 0 {
			detail = fmt.Sprintf("capacity limit: %s bots, %s memory", orNone(bots > 0, strconv.Itoa(bots)), orNone(mem > 0, size(mem)))
		}
		h.CapacityBots, h.CapacityMemoryBytes = bots, mem
		return audit(ctx, tx, now, actor, "host.set", h.Name, detail)
	})
	if err != nil {
		return wire.Host{}, fmt.Errorf("set host %s: %w", ref, err)
	}
	f.noteCapacity(h)
	f.hostChanged(h.ID)
	return f.Host(ctx, h.ID)
}

// Bounds of an operator's capacity limit.
const (
	maxCapacityBots   = 100000
	maxCapacityMemory = 1 << 50
)

func orNone(ok bool, s string) string {
	if ok {
		return s
	}
	return "no limit on"
}
