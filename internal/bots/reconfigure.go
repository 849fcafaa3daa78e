package bots

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/pocketmolt/pocketmolt/internal/openclaw"
	"github.com/pocketmolt/pocketmolt/internal/store"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// Changes are what Reconfigure changes in a bot; a nil field stays as it is.
type Changes struct {
	// Model is the new model, as provider/model. A model of another provider needs its
	// APIKey in the same change.
	Model *string
	// APIKey replaces the owner's own key for the model's provider; "" goes over to the
	// platform's key.
	APIKey *string
	// TelegramToken replaces the Telegram bot token; "" removes Telegram.
	TelegramToken *string
}

// empty reports whether c changes nothing.
func (c Changes) empty() bool { return c.Model == nil && c.APIKey == nil && c.TelegramToken == nil }

// validate checks c on its own, as Create checks the same fields.
func (c Changes) validate() error {
	bad := func(format string, args ...any) error { return wire.Errorf(wire.CodeInvalidArgument, format, args...) }
	if c.empty() {
		return bad("nothing to change: give a model, an api key or a telegram token")
	}
	if c.Model != nil {
		if err := validModel(*c.Model); err != nil {
			return bad("%v", err)
		}
	}
	if c.APIKey != nil && *c.APIKey != "" {
		if err := openclaw.ValidateAPIKey(*c.APIKey); err != nil {
			return bad("api key: %v", err)
		}
	}
	if c.TelegramToken != nil && *c.TelegramToken != "" {
		if err := openclaw.ValidateTelegramToken(*c.TelegramToken); err != nil {
			return bad("telegram token: %v", err)
		}
	}
	return nil
}

// Reconfigure changes a bot's model, API key or Telegram token (ref is its id or name). The
// secrets are sealed again and the spec version goes up, so its host re-creates the container
// with the new configuration and environment; its workspace stays. It is audited without the
// secrets. A change that leaves everything as it was does nothing.
func (s *Service) Reconfigure(ctx context.Context, actor, ref string, c Changes) (wire.Bot, error) {
	if err := c.validate(); err != nil {
		return wire.Bot{}, fmt.Errorf("reconfigure bot %s: %w", ref, err)
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
		sec, err := s.open(b)
		if err != nil {
			return err
		}
		var what []string
		oldModel := sp.Model
		if c.Model != nil && *c.Model != sp.Model {
			oldProvider, _ := openclaw.Provider(sp.Model)
			newProvider, _ := openclaw.Provider(*c.Model)
			if oldProvider != newProvider && c.APIKey == nil && sec.APIKey != "" {
				return wire.Errorf(wire.CodeInvalidArgument, "model %s is another provider's than %s: give its api key too", *c.Model, sp.Model)
			}
			what = append(what, fmt.Sprintf("model %s → %s", sp.Model, *c.Model))
			sp.Model = *c.Model
		}
		if c.APIKey != nil && *c.APIKey != sec.APIKey {
			switch {
			case *c.APIKey == "":
				what = append(what, "own api key removed: the platform's key")
			case sec.APIKey == "":
				what = append(what, "own api key given")
			default:
				what = append(what, "api key replaced")
			}
			sec.APIKey = *c.APIKey
		}
		if err := s.checkModels(sp.Model, sec.APIKey != ""); err != nil {
			return err
		}
		if c.TelegramToken != nil && *c.TelegramToken != sec.TelegramToken {
			switch {
			case *c.TelegramToken == "":
				what = append(what, "telegram removed")
			case sec.TelegramToken == "":
				what = append(what, "telegram added")
			default:
				what = append(what, "telegram token replaced")
			}
			sec.TelegramToken = *c.TelegramToken
			sp.Telegram = sec.TelegramToken != ""
		}
		if len(what) == 0 {
			return nil
		}
		keyOnly := len(what) == 1 && c.APIKey != nil && sp.Model == oldModel
		raw, err := json.Marshal(sp)
		if err != nil {
			return err
		}
		sealed, err := s.seal(b.ID, sec)
		if err != nil {
			return err
		}
		if keyOnly {
			// The container holds no provider key: its host's model endpoint takes the new one
			// with the next desired set, and the bot never notices.
			if err := tx.SetBotSecrets(ctx, b.ID, sealed, now); err != nil {
				return err
			}
			_, err = tx.AppendAudit(ctx, store.AuditEntry{Time: now, Actor: actor, Action: "bot.reconfigure", Target: b.Name,
				Detail: fmt.Sprintf("%s, %s; applied in place, spec version %d", b.ID, strings.Join(what, ", "), b.SpecVersion)})
			return err
		}
		v, err := tx.ReplaceBotSpec(ctx, b.ID, raw, sealed, now)
		if err != nil {
			return err
		}
		_, err = tx.AppendAudit(ctx, store.AuditEntry{Time: now, Actor: actor, Action: "bot.reconfigure", Target: b.Name,
			Detail: fmt.Sprintf("%s, %s; spec version %d", b.ID, strings.Join(what, ", "), v)})
		return err
	})
	if err != nil {
		return wire.Bot{}, fmt.Errorf("reconfigure bot %s: %w", ref, err)
	}
	s.Kick(b.HostID)
	return s.Get(ctx, b.ID)
}
