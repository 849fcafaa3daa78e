// Package billing is what a customer buys and pays for: the plans, the assistant they set up,
// their subscription through Stripe (the only package that imports stripe-go), and the bot a
// paid subscription keeps running.
package billing

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/pocketmolt/pocketmolt/internal/bots"
	"github.com/pocketmolt/pocketmolt/internal/bytesize"
	"github.com/pocketmolt/pocketmolt/internal/credits"
	"github.com/pocketmolt/pocketmolt/internal/openclaw"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// Placements of a plan's bots.
const (
	PlacementShared    = "shared"    // on a shared host with room
	PlacementDedicated = "dedicated" // on a host of the customer's own
)

// Plan is one thing customers can buy, from the plans: section of pmd.yaml.
type Plan struct {
	ID          string `mapstructure:"id" yaml:"id"`
	Name        string `mapstructure:"name" yaml:"name"`
	Description string `mapstructure:"description" yaml:"description,omitempty"`
	// Price is the monthly price in Currency's units ("29.00"); StripePriceID is the Stripe
	// Price customers subscribe to (unused in test billing mode).
	Price         string `mapstructure:"price" yaml:"price"`
	Currency      string `mapstructure:"currency" yaml:"currency"`
	StripePriceID string `mapstructure:"stripe_price_id" yaml:"stripe_price_id,omitempty"`
	// IncludedCredits are granted each paid period ("10.00"), for model usage on the
	// platform's keys; they do not carry over.
	IncludedCredits string `mapstructure:"included_credits" yaml:"included_credits"`
	Placement       string `mapstructure:"placement" yaml:"placement"`
	// The bot's resources: a size ("2GiB"), CPUs, PIDs and a disk limit ("" for pmd's).
	Memory string  `mapstructure:"memory" yaml:"memory,omitempty"`
	CPUs   float64 `mapstructure:"cpus" yaml:"cpus,omitempty"`
	PIDs   int     `mapstructure:"pids" yaml:"pids,omitempty"`
	Disk   string  `mapstructure:"disk" yaml:"disk,omitempty"`
	// Models the customer may pick ("provider/model"); the first is the default.
	Models       []string `mapstructure:"models" yaml:"models"`
	ToolsProfile string   `mapstructure:"tools_profile" yaml:"tools_profile,omitempty"`
	// Message limits for the channels pmd carries (WhatsApp, web chat); 0 means none.
	MessagesPerMinute int `mapstructure:"messages_per_minute" yaml:"messages_per_minute,omitempty"`
	MessagesPerDay    int `mapstructure:"messages_per_day" yaml:"messages_per_day,omitempty"`
	// Model call limits, from every channel (Telegram too), enforced on the bot's host; 0
	// means none.
	ModelCallsPerMinute int `mapstructure:"model_calls_per_minute" yaml:"model_calls_per_minute,omitempty"`
	ModelCallsPerDay    int `mapstructure:"model_calls_per_day" yaml:"model_calls_per_day,omitempty"`
}

var (
	planIDRE   = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)
	currencyRE = regexp.MustCompile(`^[a-z]{3}$`)
)

// currencySymbols are the currencies shown with a symbol; others show their code.
var currencySymbols = map[string]string{"eur": "€", "usd": "$", "gbp": "£", "chf": "CHF "}

// Validate checks a plan and says what to fix.
func (p Plan) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("plan %q: "+format, append([]any{p.ID}, args...)...)
	}
	if !planIDRE.MatchString(p.ID) {
		return fmt.Errorf("plan id %q: use 1 to 32 lower-case letters, digits and dashes, starting with a letter", p.ID)
	}
	if strings.TrimSpace(p.Name) == "" {
		return bad("name is empty")
	}
	if _, err := credits.Parse(p.Price); err != nil || strings.HasPrefix(p.Price, "-") {
		return bad("price %q: want an amount such as 29.00", p.Price)
	}
	if !currencyRE.MatchString(p.Currency) {
		return bad("currency %q: want a three-letter ISO code in lower case, such as eur", p.Currency)
	}
	if p.StripePriceID != "" && !strings.HasPrefix(p.StripePriceID, "price_") {
		return bad("stripe_price_id %q: want a Stripe Price id (price_…)", p.StripePriceID)
	}
	if c, err := credits.Parse(p.IncludedCredits); err != nil || c < 0 {
		return bad("included_credits %q: want an amount such as 10.00 (or 0)", p.IncludedCredits)
	}
	if p.Placement != PlacementShared && p.Placement != PlacementDedicated {
		return bad("placement %q: use shared or dedicated", p.Placement)
	}
	if _, err := p.Resources(); err != nil {
		return bad("%v", err)
	}
	if len(p.Models) == 0 {
		return bad("models is empty: list the models customers may pick, such as anthropic/claude-sonnet-4-5")
	}
	for _, m := range p.Models {
		if err := openclaw.ValidateModel(m); err != nil {
			return bad("%v", err)
		}
		if _, err := openclaw.Provider(m); err != nil {
			return bad("%v", err)
		}
	}
	if p.ToolsProfile != "" {
		if err := openclaw.ValidateToolsProfile(p.ToolsProfile); err != nil {
			return bad("%v", err)
		}
	}
	if p.MessagesPerMinute < 0 || p.MessagesPerDay < 0 {
		return bad("message limits must not be negative (0 means none)")
	}
	if p.ModelCallsPerMinute < 0 || p.ModelCallsPerDay < 0 {
		return bad("model call limits must not be negative (0 means none)")
	}
	return nil
}

// Resources are the bot's resources under this plan; zero fields take the bots' defaults.
func (p Plan) Resources() (wire.Resources, error) {
	var r wire.Resources
	if p.Memory != "" {
		n, err := bytesize.Parse(p.Memory)
		if err != nil {
			return r, fmt.Errorf("memory %q: %w", p.Memory, err)
		}
		if n < bots.MinMemory || n > bots.MaxMemory {
			return r, fmt.Errorf("memory %s: use %s to %s", p.Memory, bytesize.Format(bots.MinMemory), bytesize.Format(bots.MaxMemory))
		}
		r.MemoryBytes = n
	}
	if p.CPUs < 0 || p.CPUs > 64 {
		return r, fmt.Errorf("cpus %g: use 0.1 to 64", p.CPUs)
	}
	r.CPUs = p.CPUs
	if p.PIDs != 0 && (p.PIDs < 64 || p.PIDs > 32768) {
		return r, fmt.Errorf("pids %d: use 64 to 32768", p.PIDs)
	}
	r.PIDs = int64(p.PIDs)
	if p.Disk != "" {
		n, err := bytesize.Parse(p.Disk)
		if err == nil {
			err = bots.ValidDisk(n)
		}
		if err != nil {
			return r, fmt.Errorf("disk %q: %w", p.Disk, err)
		}
		r.DiskBytes = n
	}
	return r, nil
}

// PriceText is the monthly price as customers read it: "€29.00".
func (p Plan) PriceText() string {
	if sym, ok := currencySymbols[p.Currency]; ok {
		return sym + p.Price
	}
	return p.Price + " " + strings.ToUpper(p.Currency)
}

// Credits are the plan's included credits per period, in millionths of a credit.
func (p Plan) Credits() credits.Amount {
	c, _ := credits.Parse(p.IncludedCredits)
	return c
}

// OffersModel reports whether customers on this plan may pick model.
func (p Plan) OffersModel(model string) bool { return slices.Contains(p.Models, model) }

// ValidatePlans checks a set of plans: each valid, ids unique.
func ValidatePlans(ps []Plan) error {
	seen := map[string]bool{}
	for _, p := range ps {
		if err := p.Validate(); err != nil {
			return err
		}
		if seen[p.ID] {
			return fmt.Errorf("plan id %q is used twice", p.ID)
		}
		seen[p.ID] = true
	}
	return nil
}

// DefaultPlans are sold when pmd.yaml lists none: a shared plan, a bigger shared plan for
// coding, and a plan with a server of the customer's own. examples/pmd.yaml lists the same.
func DefaultPlans() []Plan {
	models := []string{"anthropic/claude-sonnet-4-6", "anthropic/claude-haiku-4-5", "openai/gpt-5.1", "openai/gpt-5-mini"}
	return []Plan{
		{ID: "personal", Name: "Personal", Description: "Your own assistant on Telegram, WhatsApp and the web.",
			Price: "19.00", Currency: "eur", IncludedCredits: "10.00", Placement: PlacementShared, Memory: "2GiB", CPUs: 1,
			Models: models, ToolsProfile: "messaging", MessagesPerMinute: 10, MessagesPerDay: 500,
			ModelCallsPerMinute: 30, ModelCallsPerDay: 2000},
		{ID: "pro", Name: "Pro", Description: "More memory and tools for research and coding.",
			Price: "39.00", Currency: "eur", IncludedCredits: "25.00", Placement: PlacementShared, Memory: "4GiB", CPUs: 2,
			Models: models, ToolsProfile: "coding", MessagesPerMinute: 20, MessagesPerDay: 2000,
			ModelCallsPerMinute: 60, ModelCallsPerDay: 6000},
		{ID: "dedicated", Name: "Dedicated", Description: "A server of your own, for full tools and privacy.",
			Price: "49.00", Currency: "eur", IncludedCredits: "10.00", Placement: PlacementDedicated, Memory: "4GiB", CPUs: 2,
			Models: models, ToolsProfile: "full", MessagesPerMinute: 30, MessagesPerDay: 5000,
			ModelCallsPerMinute: 90, ModelCallsPerDay: 12000},
	}
}
