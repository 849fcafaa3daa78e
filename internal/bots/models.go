package bots

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strconv"

	"github.com/pocketmolt/pocketmolt/internal/openclaw"
	"github.com/pocketmolt/pocketmolt/internal/runtime"
	"github.com/pocketmolt/pocketmolt/internal/store"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// ModelEndpoint is where a bot's gateway reaches its models: the model endpoint its host's
// agent serves on the bot's own network.
var ModelEndpoint = "http://" + runtime.ModelHost + ":" + strconv.Itoa(runtime.ModelPort)

// Models decides how bots reach their models beyond their own spec: the upstream and the
// platform's key for each provider, whether a bot is paid from its customer's credits, its
// allowance and call limits, and the price table. pmd's usage package implements it.
type Models interface {
	// Check says whether a bot of provider's models can be served: with its own key
	// (ownKey), or else with the platform's. Its error is a *wire.Error saying what to give.
	Check(provider string, ownKey bool) error
	// Access is the bot's model access for provider; ownKey is the bot's own key, "" for the
	// platform's. token is the bot's model token.
	Access(ctx context.Context, b store.Bot, provider, ownKey, token string) (*wire.ModelAccess, error)
}

// modelToken is a bot's model token: what its gateway sends the model endpoint as its key.
// It is derived from the bot's gateway token, which its container already holds, so it adds
// nothing a bot could not know and needs no record of its own; it tells bots apart.
func modelToken(gatewayToken string) string {
	m := hmac.New(sha256.New, []byte(gatewayToken))
	m.Write([]byte("pocketmolt model token v1"))
	return "pmm-" + hex.EncodeToString(m.Sum(nil))
}

// checkModels says whether a bot of model can have its calls served, with ownKey or the
// platform's key. Without a Models policy (a fleet without model access) any is.
func (s *Service) checkModels(model string, ownKey bool) error {
	p, err := openclaw.Provider(model)
	if err != nil {
		return wire.Errorf(wire.CodeInvalidArgument, "%v", err)
	}
	if s.cfg.Models == nil {
		return nil
	}
	return s.cfg.Models.Check(p, ownKey)
}

// CreditsChanged sends the hosts of a customer's bots their desired sets again, so that the
// allowance their model endpoints hold follows a grant or an adjustment at once rather than
// at the next usage pmd counts. Failures are logged: the next sync carries it too.
func (s *Service) CreditsChanged(ctx context.Context, userID string) {
	bs, err := s.store.ListBotsByOwner(ctx, Customer(userID))
	if err != nil {
		s.log.Warn("credits changed: list the customer's bots", "user_id", userID, "error", err.Error())
		return
	}
	for _, b := range bs {
		s.Kick(b.HostID) // "" (waiting for a host) does nothing
	}
}
