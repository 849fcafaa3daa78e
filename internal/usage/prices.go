package usage

import (
	"fmt"
	"slices"
	"strings"

	"github.com/pocketmolt/pocketmolt/internal/credits"
	"github.com/pocketmolt/pocketmolt/internal/prices"
	"github.com/pocketmolt/pocketmolt/internal/termsafe"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// PriceConfig is one model's price as pmd's config writes it: the model ("provider/model", or
// DefaultKey for the price of every model the table lacks) and credits per million tokens, as
// decimals ("3", "0.30"). Input and Output are required; an empty cache price is 0. The table
// is a list, not a map, because model ids hold dots ("openai/gpt-5.1"), which a config key
// cannot.
type PriceConfig struct {
	Model      string `mapstructure:"model" yaml:"model" json:"model"`
	Input      string `mapstructure:"input" yaml:"input" json:"input"`
	Output     string `mapstructure:"output" yaml:"output" json:"output"`
	CacheRead  string `mapstructure:"cache_read" yaml:"cache_read" json:"cache_read"`
	CacheWrite string `mapstructure:"cache_write" yaml:"cache_write" json:"cache_write"`
}

// DefaultKey is the price table's key for the price of a model it lacks.
const DefaultKey = "default"

// maxPrice bounds one price: 100,000 credits per million tokens is far past any model's.
const maxPrice = 100_000 * credits.Micro

// ParsePrices turns the config's price table into a prices.Table. Models are "provider/model"
// (anthropic/claude-sonnet-4-6), each at most once, and DefaultKey, which is required: it
// prices every model the table lacks. Errors name the model at fault.
func ParsePrices(list []PriceConfig) (prices.Table, error) {
	m := make(map[string]PriceConfig, len(list))
	for _, c := range list {
		if _, dup := m[c.Model]; dup {
			return prices.Table{}, fmt.Errorf("prices: %s is priced twice: keep one", termsafe.Line(c.Model))
		}
		m[c.Model] = c
	}
	t := prices.Table{Models: make(map[string]wire.Price, len(m))}
	def, ok := m[DefaultKey]
	if !ok {
		return prices.Table{}, fmt.Errorf("prices: no %q price: give the price of models the table lacks", DefaultKey)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys) // the first error is the same at every start
	for _, k := range keys {
		p, err := parsePrice(m[k])
		if err != nil {
			return prices.Table{}, fmt.Errorf("prices: %s: %w", termsafe.Line(k), err)
		}
		if k == DefaultKey {
			continue
		}
		provider, model, ok := strings.Cut(k, "/")
		switch {
		case !ok || model == "":
			return prices.Table{}, fmt.Errorf("prices: %s: want provider/model, such as anthropic/claude-sonnet-4-6, or %q", termsafe.Line(k), DefaultKey)
		case !slices.Contains(wire.ModelProviders(), provider):
			return prices.Table{}, fmt.Errorf("prices: %s: provider %q is not one of %s", termsafe.Line(k), termsafe.Line(provider), strings.Join(wire.ModelProviders(), ", "))
		case len(model) > maxModel || !termsafe.IsPlain(model) || strings.ContainsAny(model, " \t"):
			return prices.Table{}, fmt.Errorf("prices: %s: model must be at most %d bytes with no spaces or control characters", termsafe.Line(k), maxModel)
		}
		t.Models[k] = p
	}
	var err error
	if t.Default, err = parsePrice(def); err != nil {
		return prices.Table{}, fmt.Errorf("prices: %s: %w", DefaultKey, err)
	}
	return t, nil
}

func parsePrice(c PriceConfig) (wire.Price, error) {
	var p wire.Price
	for _, f := range []struct {
		name     string
		s        string
		required bool
		dst      *int64
	}{
		{"input", c.Input, true, &p.Input}, {"output", c.Output, true, &p.Output},
		{"cache_read", c.CacheRead, false, &p.CacheRead}, {"cache_write", c.CacheWrite, false, &p.CacheWrite},
	} {
		if strings.TrimSpace(f.s) == "" {
			if f.required {
				return wire.Price{}, fmt.Errorf("%s: no price: give credits per million tokens, such as 3 or 0.30", f.name)
			}
			continue
		}
		a, err := credits.Parse(f.s)
		if err != nil {
			return wire.Price{}, fmt.Errorf("%s: %w", f.name, err)
		}
		if a < 0 || a > maxPrice {
			return wire.Price{}, fmt.Errorf("%s: %s credits per million tokens is out of range (0 to %s)", f.name, a, maxPrice)
		}
		*f.dst = int64(a)
	}
	return p, nil
}

// DefaultPrices are the providers' list prices (USD per million tokens, one credit a dollar)
// of the models bots use most, as of this writing. The default — for a model the table lacks
// — is the dearest of them, Claude Opus: a model pmd has no price for may be a new and
// expensive one, and charging it at the top list price means an unknown model never costs the
// platform more than it charges; the warning logged for it says to add its real price.
func DefaultPrices() []PriceConfig {
	opus := func(model string) PriceConfig {
		return PriceConfig{Model: model, Input: "15", Output: "75", CacheRead: "1.50", CacheWrite: "18.75"}
	}
	return []PriceConfig{
		{Model: "anthropic/claude-sonnet-4-6", Input: "3", Output: "15", CacheRead: "0.30", CacheWrite: "3.75"},
		{Model: "anthropic/claude-haiku-4-5", Input: "1", Output: "5", CacheRead: "0.10", CacheWrite: "1.25"},
		opus("anthropic/claude-opus-4-1"),
		{Model: "openai/gpt-5.1", Input: "1.25", Output: "10", CacheRead: "0.125", CacheWrite: "0"},
		{Model: "openai/gpt-5-mini", Input: "0.25", Output: "2", CacheRead: "0.025", CacheWrite: "0"},
		opus(DefaultKey),
	}
}
