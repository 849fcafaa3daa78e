package bots_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/pocketmolt/pocketmolt/internal/bots"
	"github.com/pocketmolt/pocketmolt/internal/openclaw"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

func ptr[T any](v T) *T { return &v }

// TestReconfigure: a new model, key or Telegram token reaches the host's desired set under a
// new spec version, so the agent re-creates the container; nothing secret is audited.
func TestReconfigure(t *testing.T) {
	eachBackend(t, func(t *testing.T, url string) {
		r := newRig(t, url)
		ctx := t.Context()
		h := r.addHost("edge", 4, 16<<30, "")
		b := r.create(customerBot("alice", "u-1"))
		if b.HostID != h.ID || b.SpecVersion != 1 {
			t.Fatalf("created: %+v", b)
		}
		spec := func() wire.BotSpec {
			t.Helper()
			set, err := r.svc.Desired(ctx, h.ID)
			if err != nil || len(set.Bots) != 1 {
				t.Fatalf("desired set: %+v %v", set, err)
			}
			return set.Bots[0]
		}
		gatewayToken := spec().Env[openclaw.EnvGatewayToken]

		got, err := r.svc.Reconfigure(ctx, "customer:u-1", "alice", bots.Changes{Model: ptr("anthropic/claude-opus-4-6"), APIKey: ptr(apiKey2)})
		if err != nil || got.SpecVersion != 2 || got.Model != "anthropic/claude-opus-4-6" {
			t.Fatalf("new model and key: %+v %v", got, err)
		}
		s := spec()
		if s.Version != 2 || !strings.Contains(string(s.Config), "anthropic/claude-opus-4-6") ||
			s.Model.Providers[wire.ProviderAnthropic].Key != apiKey2 || slices.Contains(values(s.Env), apiKey2) ||
			s.Env[openclaw.EnvTelegramToken] != telegram || s.Env[openclaw.EnvGatewayToken] != gatewayToken {
			t.Fatalf("host's spec after the change: version %d, config %s", s.Version, s.Config)
		}

		got, err = r.svc.Reconfigure(ctx, "customer:u-1", b.ID, bots.Changes{TelegramToken: ptr("")})
		if err != nil || got.Telegram || got.SpecVersion != 3 {
			t.Fatalf("telegram removed: %+v %v", got, err)
		}
		if s := spec(); s.Env[openclaw.EnvTelegramToken] != "" || s.Version != 3 {
			t.Fatalf("telegram still in the host's spec: %d", s.Version)
		}
		// The same values again change nothing.
		got, err = r.svc.Reconfigure(ctx, "customer:u-1", "alice", bots.Changes{APIKey: ptr(apiKey2), TelegramToken: ptr("")})
		if err != nil || got.SpecVersion != 3 {
			t.Fatalf("a change to the same values: %+v %v", got, err)
		}

		for _, tc := range []struct {
			name string
			c    bots.Changes
			code string
			want string
		}{
			{"nothing", bots.Changes{}, wire.CodeInvalidArgument, "nothing to change"},
			{"bad model", bots.Changes{Model: ptr("claude")}, wire.CodeInvalidArgument, "provider"},
			{"another provider without its key", bots.Changes{Model: ptr("openai/gpt-5")}, wire.CodeInvalidArgument, "api key"},
			{"back to the platform's key where it has none", bots.Changes{Model: ptr("openai/gpt-5"), APIKey: ptr("")}, wire.CodeInvalidArgument, "no openai key of its own"},
			{"empty key", bots.Changes{APIKey: ptr("  ")}, wire.CodeInvalidArgument, "api key"},
			{"telegram token of the wrong shape", bots.Changes{TelegramToken: ptr("not-a-token")}, wire.CodeInvalidArgument, "telegram"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := r.svc.Reconfigure(ctx, "test", "alice", tc.c)
				if wire.CodeOf(err) != tc.code || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("got %v, want %s mentioning %q", err, tc.code, tc.want)
				}
			})
		}
		if _, err := r.svc.Reconfigure(ctx, "test", "nobody", bots.Changes{APIKey: ptr(apiKey)}); wire.CodeOf(err) != wire.CodeNotFound {
			t.Fatalf("unknown bot: %v", err)
		}
		if got := r.get("alice"); got.SpecVersion != 3 || got.Model != "anthropic/claude-opus-4-6" {
			t.Fatalf("bad changes changed the bot: %+v", got)
		}

		// A waiting bot is reconfigured too; it takes the change to its host when placed.
		if err := r.st.SetDraining(ctx, h.ID, true); err != nil {
			t.Fatal(err)
		}
		if w := r.create(customerBot("waits", "u-2")); w.Status != wire.BotWaiting {
			t.Fatalf("created with the only host draining: %+v", w)
		}
		if got, err := r.svc.Reconfigure(ctx, "test", "waits", bots.Changes{Model: ptr("anthropic/claude-haiku-4-5")}); err != nil || got.SpecVersion != 2 {
			t.Fatalf("reconfigure a waiting bot: %+v %v", got, err)
		}

		// A new key alone is applied in place: the container holds none, so the spec version
		// (and the container) stay, and the host's model endpoint gets it with the next set.
		got, err = r.svc.Reconfigure(ctx, "test", "alice", bots.Changes{APIKey: ptr(apiKey)})
		if err != nil || got.SpecVersion != 3 {
			t.Fatalf("a new key alone: %+v %v", got, err)
		}
		if s := spec(); s.Version != 3 || s.Model.Providers[wire.ProviderAnthropic].Key != apiKey {
			t.Fatalf("the host's set after a key change: version %d, key changed %v", s.Version, s.Model.Providers[wire.ProviderAnthropic].Key == apiKey)
		}
		// Back to the platform's key, in place too.
		if got, err = r.svc.Reconfigure(ctx, "test", "alice", bots.Changes{APIKey: ptr("")}); err != nil || got.SpecVersion != 3 {
			t.Fatalf("back to the platform's key: %+v %v", got, err)
		}
		if s := spec(); s.Model.Providers[wire.ProviderAnthropic].Key != platformKey || !s.Model.Credits {
			t.Fatalf("the host's set on the platform's key: credits %v", s.Model.Credits)
		}

		es := r.audits("bot.reconfigure")
		if len(es) != 5 {
			t.Fatalf("%d bot.reconfigure entries, want 5", len(es))
		}
		for _, e := range es {
			for _, secret := range []string{apiKey, apiKey2, telegram} {
				if strings.Contains(e.Detail, secret) {
					t.Fatalf("a secret in the audit log: %s", e.Detail)
				}
			}
		}
		details := make([]string, len(es))
		for i, e := range es {
			details[i] = e.Detail
		}
		all := strings.Join(details, "\n")
		for _, want := range []string{"model anthropic/claude-sonnet-4-6 → anthropic/claude-opus-4-6, api key replaced", "api key replaced; applied in place", "own api key removed: the platform's key; applied in place"} {
			if !strings.Contains(all, want) {
				t.Fatalf("audit details lack %q:\n%s", want, all)
			}
		}
	})
}

func values(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}
