package bots_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/pocketmolt/pocketmolt/internal/bots"
	"github.com/pocketmolt/pocketmolt/internal/openclaw"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// TestDesiredSetKeepsKeysOutOfContainers: a bot's container gets tokens only — its gateway
// token, its model token, its Telegram token — and its config points the provider at the
// host's model endpoint; the provider key (the platform's, or the owner's own) goes to the
// host's model endpoint in the bot's model access, with credits, allowance and price table.
func TestDesiredSetKeepsKeysOutOfContainers(t *testing.T) {
	eachBackend(t, func(t *testing.T, url string) {
		r := newRig(t, url)
		ctx := t.Context()
		h := r.addHost("edge", 8, 64<<30, "")
		// A customer on included credits (no key of their own), a customer with their own
		// key, and an operator's bot on the platform's key.
		credits := customerBot("credits", "u-1")
		credits.APIKey = ""
		r.create(credits)
		r.create(customerBot("byok", "u-2"))
		r.create(bots.NewBot{Name: "ops", Owner: bots.Operator("alice"), Model: "anthropic/claude-haiku-4-5", Placement: bots.PlacementShared})

		set, err := r.svc.Desired(ctx, h.ID)
		if err != nil || len(set.Bots) != 3 {
			t.Fatalf("desired set: %+v %v", set, err)
		}
		tokens := map[string]bool{}
		for _, s := range set.Bots {
			raw, _ := json.Marshal(s.Env)
			for _, key := range []string{platformKey, apiKey} {
				if strings.Contains(string(raw), key) || strings.Contains(string(s.Config), key) {
					t.Errorf("%s: a provider key in the container's environment or config", s.Name)
				}
			}
			if strings.Contains(string(raw), "_API_KEY") {
				t.Errorf("%s: env names a provider key variable: %s", s.Name, raw)
			}
			tok := s.Env[openclaw.EnvModelToken]
			if s.Model == nil || tok == "" || s.Model.Token != tok || tokens[tok] || tok == s.Env[openclaw.EnvGatewayToken] {
				t.Fatalf("%s: model token %q, access %+v", s.Name, tok, s.Model)
			}
			tokens[tok] = true
			if !strings.Contains(string(s.Config), `"baseUrl": "http://pocketmolt-models:18790/anthropic"`) {
				t.Errorf("%s: config does not point the provider at the model endpoint:\n%s", s.Name, s.Config)
			}
			pa := s.Model.Providers[wire.ProviderAnthropic]
			if len(s.Model.Providers) != 1 || pa.BaseURL != "https://api.anthropic.com" {
				t.Errorf("%s: providers %+v", s.Name, s.Model.Providers)
			}
			switch s.Name {
			case "credits":
				if pa.Key != platformKey || pa.BYOK || !s.Model.Credits || s.Model.Allowance.Remaining != 5_000_000 || s.Model.Allowance.Message != "used up: u-1" {
					t.Errorf("credits: %+v", s.Model)
				}
			case "byok":
				if pa.Key != apiKey || !pa.BYOK || s.Model.Credits {
					t.Errorf("byok: %+v", s.Model)
				}
			case "ops":
				if pa.Key != platformKey || pa.BYOK || s.Model.Credits {
					t.Errorf("ops: %+v", s.Model)
				}
			}
		}
		// The token is the same at every sync: the container need not change for it.
		again, _ := r.svc.Desired(ctx, h.ID)
		for i := range again.Bots {
			if again.Bots[i].Model.Token != set.Bots[i].Model.Token {
				t.Errorf("%s: model token changed between syncs", set.Bots[i].Name)
			}
		}

		// A provider the platform has no key for needs the owner's own.
		_, err = r.svc.Create(ctx, "test", bots.NewBot{Name: "nokey", Owner: bots.Operator("alice"), Model: "openai/gpt-5.1", Placement: bots.PlacementShared})
		if wire.CodeOf(err) != wire.CodeInvalidArgument || !strings.Contains(err.Error(), "no openai key of its own") {
			t.Fatalf("a bot no key can serve: %v", err)
		}
		if _, err := r.svc.Create(ctx, "test", bots.NewBot{Name: "ownkey", Owner: bots.Operator("alice"), Model: "openai/gpt-5.1", APIKey: apiKey2, Placement: bots.PlacementShared}); err != nil {
			t.Fatalf("the same with its own key: %v", err)
		}
		// A provider the model endpoint does not serve.
		_, err = r.svc.Create(ctx, "test", bots.NewBot{Name: "gemini", Owner: bots.Operator("alice"), Model: "google/gemini-2.5-pro", APIKey: apiKey, Placement: bots.PlacementShared})
		if wire.CodeOf(err) != wire.CodeInvalidArgument || !strings.Contains(err.Error(), "unsupported provider") {
			t.Fatalf("a provider the endpoint does not serve: %v", err)
		}
	})
}
