package pmd

import (
	"cmp"
	"context"
	"fmt"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/credits"
	"github.com/pocketmolt/pocketmolt/internal/modelaccess"
	"github.com/pocketmolt/pocketmolt/internal/usage"
	"github.com/pocketmolt/pocketmolt/internal/web"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// validateModels checks the model gateway's settings: the upstreams and the price table.
func (c *Config) validateModels() error {
	for _, p := range wire.ModelProviders() {
		if err := modelaccess.ValidBaseURL(c.baseURL(p)); err != nil {
			return fmt.Errorf("%s-base-url: %w", p, err)
		}
	}
	_, err := usage.ParsePrices(c.prices())
	return err
}

// baseURL is where hosts send provider's calls: as configured, or the provider's public API.
func (c *Config) baseURL(provider string) string {
	switch provider {
	case wire.ProviderAnthropic:
		return cmp.Or(c.AnthropicBaseURL, modelaccess.DefaultAnthropicBaseURL)
	case wire.ProviderOpenAI:
		return cmp.Or(c.OpenAIBaseURL, modelaccess.DefaultOpenAIBaseURL)
	}
	return ""
}

// prices is the price table as configured, or the built-in one.
func (c *Config) prices() []usage.PriceConfig {
	if len(c.Prices) == 0 {
		return usage.DefaultPrices()
	}
	return c.Prices
}

// openModels assembles pmd's side of the model gateway: usage accounting (the agents'
// POST /v1/usage, debiting customers' credits), and the model access each bot gets in its
// host's desired set — the platform's keys or its owner's, its allowance and call limits.
// It runs before the bots service, which takes the access policy; call limits come from
// billing, assembled later.
func (d *Daemon) openModels(cfg Config) (*modelaccess.Policy, error) {
	table, err := usage.ParsePrices(cfg.prices())
	if err != nil {
		return nil, err
	}
	d.Credits = &credits.Ledger{Store: d.Store}
	d.Usage = usage.New(usage.Config{Store: d.Store, Ledger: d.Credits, Prices: table, Log: d.log.With("component", "usage"), Metrics: d.Metrics})
	d.Fleet.HandleAgent("POST /v1/usage", d.Usage.Handle)
	keys, err := cfg.platformKeys()
	if err != nil {
		return nil, err
	}
	return modelaccess.New(modelaccess.Config{
		Providers: map[string]modelaccess.Upstream{
			wire.ProviderAnthropic: {BaseURL: cfg.baseURL(wire.ProviderAnthropic), Key: keys[wire.ProviderAnthropic]},
			wire.ProviderOpenAI:    {BaseURL: cfg.baseURL(wire.ProviderOpenAI), Key: keys[wire.ProviderOpenAI]},
		},
		Prices:    table,
		Allowance: d.Usage.Allowance,
		Limits: func(ctx context.Context, userID string) (wire.CallLimits, error) {
			if d.Billing == nil {
				return wire.CallLimits{}, nil
			}
			return d.Billing.ModelLimits(ctx, userID)
		},
	})
}

// dashboardUsage is a customer's usage as the dashboard shows it: tokens, and the credits
// taken for them, today and since their period began.
type dashboardUsage struct{ d *Daemon }

func (u dashboardUsage) CustomerUsage(ctx context.Context, userID string) (web.UsageSummary, error) {
	var start time.Time
	if x, err := u.d.Billing.CurrentSubscription(ctx, userID); err == nil && x.PeriodStart != nil {
		start = *x.PeriodStart
	}
	cu, err := u.d.Usage.Customer(ctx, userID, start)
	if err != nil {
		return web.UsageSummary{}, err
	}
	tokens := func(t wire.Tokens) int64 { return t.Input + t.Output + t.CacheRead + t.CacheWrite }
	return web.UsageSummary{
		TodayCalls: cu.Today.Calls, PeriodCalls: cu.Period.Calls,
		TodayTokens: tokens(cu.Today.Tokens), PeriodTokens: tokens(cu.Period.Tokens),
		TodayCredits: cu.Today.Debited.String(), PeriodCredits: cu.Period.Debited.String(),
		PeriodStart: cu.PeriodStart,
	}, nil
}
