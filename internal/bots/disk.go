package bots

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/pocketmolt/pocketmolt/internal/bytesize"
	"github.com/pocketmolt/pocketmolt/internal/store"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// resources are a bot's limits as its host applies them: its own, with pmd's disk limit when
// it has none.
func (s *Service) resources(sp spec) wire.Resources {
	r := sp.Resources
	if r.DiskBytes == 0 {
		r.DiskBytes = s.cfg.DiskLimit
	}
	return r
}

// SetDisk changes a bot's disk limit. Its host applies it without recreating the container,
// so the spec version stays; a bot its agent stopped for being over the old limit starts
// again when it fits under the new one.
func (s *Service) SetDisk(ctx context.Context, actor, ref string, bytes int64) (wire.Bot, error) {
	if err := ValidDisk(bytes); err != nil {
		return wire.Bot{}, wire.Errorf(wire.CodeInvalidArgument, "%v", err)
	}
	now := s.cfg.Now().UTC()
	var b store.Bot
	err := s.store.InTx(ctx, func(tx *store.Store) error {
		var err error
		if b, err = s.lookup(ctx, tx, ref); err != nil {
			return err
		}
		if b.Desired == store.DesiredDeleted {
			return wire.Errorf(wire.CodeConflict, "bot %s is being deleted", b.Name)
		}
		var sp spec
		if err := json.Unmarshal(b.Spec, &sp); err != nil {
			return fmt.Errorf("read spec: %w", err)
		}
		old := s.resources(sp).DiskBytes
		sp.Resources.DiskBytes = bytes
		raw, err := json.Marshal(sp)
		if err != nil {
			return err
		}
		if err := tx.SetBotSpec(ctx, b.ID, raw, now); err != nil {
			return err
		}
		_, err = tx.AppendAudit(ctx, store.AuditEntry{Time: now, Actor: actor, Action: "bot.edit", Target: b.Name,
			Detail: fmt.Sprintf("%s, disk limit %s → %s", b.ID, bytesize.Format(old), bytesize.Format(bytes))})
		return err
	})
	if err != nil {
		return wire.Bot{}, fmt.Errorf("edit bot %s: %w", ref, err)
	}
	s.Kick(b.HostID)
	return s.Get(ctx, b.ID)
}
