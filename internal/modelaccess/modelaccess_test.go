package modelaccess_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/modelaccess"
	"github.com/pocketmolt/pocketmolt/internal/prices"
	"github.com/pocketmolt/pocketmolt/internal/store"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

const platformKey = "sk-ant-platform-0123456789"

func policy(t *testing.T) *modelaccess.Policy {
	t.Helper()
	asOf := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	p, err := modelaccess.New(modelaccess.Config{
		Providers: map[string]modelaccess.Upstream{
			wire.ProviderAnthropic: {BaseURL: "https://api.anthropic.com/", Key: platformKey},
			wire.ProviderOpenAI:    {BaseURL: "https://api.openai.com/v1"},
		},
		Prices: prices.Table{Models: map[string]wire.Price{"anthropic/claude-sonnet-4-6": {Input: 3_000_000}}, Default: wire.Price{Input: 15_000_000}},
		Allowance: func(_ context.Context, user string) (wire.Allowance, error) {
			if user == "u-broken" {
				return wire.Allowance{}, errors.New("ledger unavailable")
			}
			return wire.Allowance{Remaining: 4_200_000, AsOf: asOf, Message: "used up"}, nil
		},
		Limits: func(context.Context, string) (wire.CallLimits, error) {
			return wire.CallLimits{PerMinute: 20, PerDay: 500}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAccess(t *testing.T) {
	p := policy(t)
	customer := store.Bot{ID: "b-1", Owner: store.Owner{Kind: store.OwnerCustomer, ID: "u-1"}}
	operator := store.Bot{ID: "b-2", Owner: store.Owner{Kind: store.OwnerOperator, ID: "ops"}}
	tests := []struct {
		name        string
		bot         store.Bot
		provider    string
		ownKey      string
		wantKey     string
		wantBYOK    bool
		wantCredits bool
		wantLimits  bool
		wantErr     string
	}{
		{"customer on credits", customer, "anthropic", "", platformKey, false, true, true, ""},
		{"customer with own key", customer, "anthropic", "sk-own-0123456789", "sk-own-0123456789", true, false, true, ""},
		{"operator on the platform key", operator, "anthropic", "", platformKey, false, false, false, ""},
		{"operator with own key", operator, "openai", "sk-op-0123456789", "sk-op-0123456789", true, false, false, ""},
		{"no platform key for the provider", customer, "openai", "", "", false, false, false, "no openai key of its own"},
		{"provider the endpoint does not serve", customer, "google", "k", "", false, false, false, "does not serve google"},
		{"allowance unavailable", store.Bot{ID: "b-3", Owner: store.Owner{Kind: store.OwnerCustomer, ID: "u-broken"}}, "anthropic", "", "", false, false, false, "ledger unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			acc, err := p.Access(t.Context(), tt.bot, tt.provider, tt.ownKey, "pmm-token")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				if tt.ownKey != "" && strings.Contains(err.Error(), tt.ownKey) {
					t.Errorf("error shows the key: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(acc.Providers) != 1 {
				t.Fatalf("providers = %v, want only %s", acc.Providers, tt.provider)
			}
			pa := acc.Providers[tt.provider]
			if pa.Key != tt.wantKey || pa.BYOK != tt.wantBYOK || strings.HasSuffix(pa.BaseURL, "/") || pa.BaseURL == "" {
				t.Errorf("provider access = %+v", pa)
			}
			if acc.Token != "pmm-token" || acc.Credits != tt.wantCredits {
				t.Errorf("token %q credits %v", acc.Token, acc.Credits)
			}
			if tt.wantCredits != (acc.Allowance.Remaining == 4_200_000) {
				t.Errorf("allowance = %+v", acc.Allowance)
			}
			if tt.wantLimits != (acc.Limits.PerMinute == 20 && acc.Limits.PerDay == 500) {
				t.Errorf("limits = %+v", acc.Limits)
			}
			if acc.Prices["anthropic/claude-sonnet-4-6"].Input != 3_000_000 || acc.DefaultPrice.Input != 15_000_000 {
				t.Errorf("prices = %v, default %v", acc.Prices, acc.DefaultPrice)
			}
		})
	}
}

func TestNewRefusesBadUpstreams(t *testing.T) {
	allow := func(context.Context, string) (wire.Allowance, error) { return wire.Allowance{}, nil }
	for _, u := range []string{"", "api.anthropic.com", "ftp://x", "https://x/?q=1", "https://user:pw@x"} {
		_, err := modelaccess.New(modelaccess.Config{Providers: map[string]modelaccess.Upstream{"anthropic": {BaseURL: u}}, Allowance: allow})
		if err == nil || !strings.Contains(err.Error(), "anthropic-base-url") {
			t.Errorf("%q: err = %v", u, err)
		}
	}
	if _, err := modelaccess.New(modelaccess.Config{}); err == nil {
		t.Error("no allowance source accepted")
	}
}
