// Package modelaccess decides how each bot reaches its models through its host's model
// endpoint: which provider it may call, at which upstream, with whose key (the platform's or
// the owner's own), whether its calls are paid from its customer's credits and how much it
// may still spend, its call limits, and the price table the agent estimates spend with.
// It implements bots.Models for pmd.
package modelaccess

import (
	"context"
	"fmt"
	"maps"
	"net/url"
	"strings"

	"github.com/pocketmolt/pocketmolt/internal/prices"
	"github.com/pocketmolt/pocketmolt/internal/store"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// Default upstreams: the providers' public APIs.
const (
	DefaultAnthropicBaseURL = "https://api.anthropic.com"
	DefaultOpenAIBaseURL    = "https://api.openai.com/v1"
)

// Upstream is one provider as pmd reaches it: its API root and the platform's own key, ""
// when the platform has none (then only bots with their owner's key may use the provider).
type Upstream struct {
	BaseURL string
	Key     string
}

// Config is what a Policy decides with.
type Config struct {
	// Providers are the upstreams by provider (wire.ProviderAnthropic, wire.ProviderOpenAI).
	Providers map[string]Upstream
	Prices    prices.Table
	// Allowance is what a customer on included credits may still spend (pmd's usage service).
	Allowance func(ctx context.Context, userID string) (wire.Allowance, error)
	// Limits are a customer's model call limits (their plan's); nil means none.
	Limits func(ctx context.Context, userID string) (wire.CallLimits, error)
}

// Policy decides bots' model access. It is safe for concurrent use.
type Policy struct {
	cfg Config
}

// New checks cfg and returns its Policy: every upstream must be an http(s) URL without a
// query, and Allowance is required.
func New(cfg Config) (*Policy, error) {
	for p, u := range cfg.Providers {
		if err := ValidBaseURL(u.BaseURL); err != nil {
			return nil, fmt.Errorf("%s-base-url: %w", p, err)
		}
	}
	if cfg.Allowance == nil {
		return nil, fmt.Errorf("model access: no allowance source")
	}
	return &Policy{cfg: cfg}, nil
}

// ValidBaseURL checks a provider's API root: http or https, a host, no query, fragment or
// credentials.
func ValidBaseURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("%q: want an http(s) URL such as %s", s, DefaultAnthropicBaseURL)
	}
	return nil
}

// Check says whether a bot of provider's models can be served: with its own key, or with the
// platform's when the platform has one for provider.
func (p *Policy) Check(provider string, ownKey bool) error {
	u, ok := p.cfg.Providers[provider]
	switch {
	case !ok:
		return wire.Errorf(wire.CodeInvalidArgument, "the model endpoint does not serve %s models", provider)
	case !ownKey && u.Key == "":
		return wire.Errorf(wire.CodeInvalidArgument, "pmd has no %s key of its own (%s-api-key-file): give the bot its own key", provider, provider)
	}
	return nil
}

// Access is bot b's model access for provider, with its owner's key ownKey ("" for the
// platform's) and its model token. A customer's bot on the platform's key is paid from their
// credits and gets their allowance; every customer's bot gets their plan's call limits.
func (p *Policy) Access(ctx context.Context, b store.Bot, provider, ownKey, token string) (*wire.ModelAccess, error) {
	if err := p.Check(provider, ownKey != ""); err != nil {
		return nil, fmt.Errorf("bot %s: %w", b.ID, err)
	}
	u := p.cfg.Providers[provider]
	pa := wire.ProviderAccess{BaseURL: strings.TrimSuffix(u.BaseURL, "/"), Key: u.Key}
	if ownKey != "" {
		pa.Key, pa.BYOK = ownKey, true
	}
	acc := &wire.ModelAccess{
		Token:        token,
		Providers:    map[string]wire.ProviderAccess{provider: pa},
		Prices:       maps.Clone(p.cfg.Prices.Models),
		DefaultPrice: p.cfg.Prices.Default,
	}
	if b.Owner.Kind != store.OwnerCustomer {
		return acc, nil // an operator's bot: metered against the bot, never refused for credits
	}
	if p.cfg.Limits != nil {
		l, err := p.cfg.Limits(ctx, b.Owner.ID)
		if err != nil {
			return nil, fmt.Errorf("bot %s: call limits: %w", b.ID, err)
		}
		acc.Limits = l
	}
	if ownKey == "" {
		a, err := p.cfg.Allowance(ctx, b.Owner.ID)
		if err != nil {
			return nil, fmt.Errorf("bot %s: allowance: %w", b.ID, err)
		}
		acc.Credits, acc.Allowance = true, a
	}
	return acc, nil
}
