package bots

import (
	"context"
	"errors"

	"github.com/pocketmolt/pocketmolt/internal/store"
)

// Owners sorts the bot ids a host reported: foreign are bots placed on another host, unknown
// are ids of no bot (deleted since, or never made); the rest are the host's own. It reads the
// host's bots once, and each id not among them once more.
func (s *Service) Owners(ctx context.Context, hostID string, ids []string) (foreign, unknown []string, err error) {
	bs, err := s.store.ListBotsByHost(ctx, hostID)
	if err != nil {
		return nil, nil, err
	}
	own := make(map[string]bool, len(bs))
	for _, b := range bs {
		own[b.ID] = true
	}
	seen := map[string]bool{}
	for _, id := range ids {
		if own[id] || seen[id] {
			continue
		}
		seen[id] = true
		_, err := s.store.GetBot(ctx, id)
		switch {
		case errors.Is(err, store.ErrNotFound):
			unknown = append(unknown, id)
		case err != nil:
			return nil, nil, err
		default:
			foreign = append(foreign, id)
		}
	}
	return foreign, unknown, nil
}
