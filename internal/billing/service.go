package billing

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pocketmolt/pocketmolt/internal/bots"
	"github.com/pocketmolt/pocketmolt/internal/credits"
	"github.com/pocketmolt/pocketmolt/internal/openclaw"
	"github.com/pocketmolt/pocketmolt/internal/secret"
	"github.com/pocketmolt/pocketmolt/internal/store"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// Defaults of Config.
const (
	DefaultGracePeriod      = 7 * 24 * time.Hour
	DefaultRetention        = 30 * 24 * time.Hour
	DefaultWebhookTolerance = 5 * time.Minute
	// DefaultTestPeriod is the length of a period in test billing mode.
	DefaultTestPeriod = 30 * 24 * time.Hour
	// DefaultSweepInterval is how often Run looks for subscriptions whose time has come.
	DefaultSweepInterval = 30 * time.Second
)

// Config is the billing service's configuration.
type Config struct {
	Plans []Plan
	// PublicURL is where customers reach pmd ("https://app.example.com"): Checkout's success
	// and cancel pages.
	PublicURL string
	// Stripe is the Stripe API. Without it, TestMode runs test billing mode, where Subscribe
	// activates a plan at once and nothing is charged; and without either, nothing is sold
	// online: operators grant plans (Grant).
	Stripe   StripeAPI
	TestMode bool
	// WebhookSecret verifies Stripe's webhook signatures; the webhook refuses everything
	// without one.
	WebhookSecret    string
	WebhookTolerance time.Duration
	// GracePeriod is how long a past-due subscription's bot keeps running; Retention how long
	// an ended subscription's bot and workspace are kept for a customer who comes back.
	GracePeriod time.Duration
	Retention   time.Duration
	// PlatformProviders are the providers ("anthropic", "openai") the platform has a key of
	// its own for, for customers on included credits. A provider without one is offered only
	// with the customer's own key. The keys themselves stay with pmd's model settings: the
	// bot's host gets them, never the bot.
	PlatformProviders map[string]bool
	// TestPeriod is a period's length in test billing mode (DefaultTestPeriod when 0): short
	// for demos and tests that want to see a period end.
	TestPeriod time.Duration
	// SweepInterval is how often Run looks for subscriptions whose time has come
	// (DefaultSweepInterval when 0, and never more than a quarter of TestPeriod).
	SweepInterval time.Duration
	// EventHandled, when not nil, is told each Stripe event's type and what came of it
	// (applied, duplicate, ignored or error): pmd's metrics.
	EventHandled func(typ, result string)
	Now          func() time.Time
}

// Bots is what billing needs of the bots service.
type Bots interface {
	CreateTx(ctx context.Context, tx *store.Store, actor string, nb bots.NewBot) (store.Bot, error)
	Kick(hostID string)
	Get(ctx context.Context, ref string) (wire.Bot, error)
	SetDesired(ctx context.Context, actor, ref, desired string) (wire.Bot, error)
	Restart(ctx context.Context, actor, ref string) (wire.Bot, error)
	Delete(ctx context.Context, actor, ref string, purge bool) (wire.Bot, error)
	Reconfigure(ctx context.Context, actor, ref string, c bots.Changes) (wire.Bot, error)
	// CreditsChanged tells a customer's bots' hosts their new allowance.
	CreditsChanged(ctx context.Context, userID string)
}

// Service sells plans and keeps each paying customer's bot in step with their
// subscription. It is safe for concurrent use.
type Service struct {
	store  *store.Store
	bots   Bots
	ledger *credits.Ledger
	keys   *secret.Keyring
	cfg    Config
	log    *slog.Logger
	// failAfterRecord, when set by a test, fails an event's transaction after the event is
	// recorded and before its effects: what a pmd killed at that point leaves behind.
	failAfterRecord func(eventID string) error
}

// New returns a Service; cfg must have passed Validate.
func New(st *store.Store, b Bots, ledger *credits.Ledger, keys *secret.Keyring, cfg Config, log *slog.Logger) *Service {
	if cfg.GracePeriod <= 0 {
		cfg.GracePeriod = DefaultGracePeriod
	}
	if cfg.Retention <= 0 {
		cfg.Retention = DefaultRetention
	}
	if cfg.WebhookTolerance <= 0 {
		cfg.WebhookTolerance = DefaultWebhookTolerance
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.TestPeriod <= 0 {
		cfg.TestPeriod = DefaultTestPeriod
	}
	if cfg.SweepInterval <= 0 {
		cfg.SweepInterval = DefaultSweepInterval
	}
	cfg.SweepInterval = min(cfg.SweepInterval, max(cfg.TestPeriod/4, 100*time.Millisecond))
	cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	return &Service{store: st, bots: b, ledger: ledger, keys: keys, cfg: cfg, log: log}
}

func (s *Service) now() time.Time { return s.cfg.Now().UTC() }

// Plans returns the plans on sale, in the order of the configuration.
func (s *Service) Plans() []Plan { return s.cfg.Plans }

// Plan returns a plan by id.
func (s *Service) Plan(id string) (Plan, bool) {
	for _, p := range s.cfg.Plans {
		if p.ID == id {
			return p, true
		}
	}
	return Plan{}, false
}

func (s *Service) planByPrice(priceID string) (Plan, bool) {
	for _, p := range s.cfg.Plans {
		if priceID != "" && p.StripePriceID == priceID {
			return p, true
		}
	}
	return Plan{}, false
}

// TestMode reports whether billing runs in test billing mode: no Stripe, and Subscribe
// activates a plan at once.
func (s *Service) TestMode() bool { return s.cfg.Stripe == nil && s.cfg.TestMode }

// assistantSecrets are sealed as one JSON value bound to the customer's row.
type assistantSecrets struct {
	APIKey        string `json:"api_key,omitempty"`
	TelegramToken string `json:"telegram_token,omitempty"`
}

func (s *Service) sealSecrets(userID string, sec assistantSecrets) (string, error) {
	b, err := json.Marshal(sec)
	if err != nil {
		return "", err
	}
	return s.keys.Seal(b, AssistantSecretsAD(userID))
}

func (s *Service) openSecrets(a store.Assistant) (assistantSecrets, error) {
	var sec assistantSecrets
	if a.Secrets == "" {
		return sec, nil
	}
	pt, err := s.keys.Open(a.Secrets, AssistantSecretsAD(a.UserID))
	if err != nil {
		return sec, fmt.Errorf("open secrets of customer %s: %w", a.UserID, err)
	}
	return sec, json.Unmarshal(pt, &sec)
}

var e164RE = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)

// provider is the model's provider: "anthropic/claude-…" → "anthropic".
func provider(model string) string { p, _, _ := strings.Cut(model, "/"); return p }

// SaveAssistant validates and records a customer's choices. When their bot exists, a new
// model, key or Telegram token is applied to it at once.
func (s *Service) SaveAssistant(ctx context.Context, userID string, in AssistantInput) error {
	prev, err := s.store.GetAssistant(ctx, userID)
	hadPrev := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	var prevSec assistantSecrets
	if hadPrev {
		if prevSec, err = s.openSecrets(prev); err != nil {
			return err
		}
	}
	fe := FieldErrors{}
	in.Name = strings.TrimSpace(in.Name)
	switch n := utf8.RuneCountInString(in.Name); {
	case n == 0:
		fe["name"] = "give your assistant a name"
	case n > 40:
		fe["name"] = "use at most 40 characters"
	case strings.ContainsFunc(in.Name, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		fe["name"] = "use letters, digits, spaces and punctuation only"
	}
	plan, ok := s.Plan(in.PlanID)
	if !ok {
		fe["plan"] = "pick one of the plans"
	}
	if ok && !plan.OffersModel(in.Model) {
		fe["model"] = "pick one of the plan's models"
	}
	sec := prevSec
	in.TelegramToken = strings.TrimSpace(in.TelegramToken)
	if in.Telegram {
		switch {
		case in.TelegramToken != "":
			if err := openclaw.ValidateTelegramToken(in.TelegramToken); err != nil {
				fe["telegram_token"] = "that does not look like a token from @BotFather (it looks like 123456789:AA…)"
			}
			sec.TelegramToken = in.TelegramToken
		case prevSec.TelegramToken == "":
			fe["telegram_token"] = "paste the token @BotFather gave you"
		}
	} else {
		sec.TelegramToken = ""
	}
	in.WhatsApp = strings.ReplaceAll(strings.TrimSpace(in.WhatsApp), " ", "")
	if in.WhatsApp != "" && !e164RE.MatchString(in.WhatsApp) {
		fe["whatsapp"] = "write the number in international form, e.g. +4915112345678"
	}
	if !in.Telegram && in.WhatsApp == "" && !in.WebChat {
		fe["channels"] = "pick at least one way to talk to your assistant"
	}
	last4 := ""
	switch in.KeyMode {
	case KeyCredits:
		sec.APIKey = ""
		if ok && !s.cfg.PlatformProviders[provider(in.Model)] && fe["model"] == "" {
			fe["key_mode"] = "included credits are not offered for this model yet; bring your own key"
		}
	case KeyBYOK:
		key := strings.TrimSpace(in.APIKey)
		if key == "" && (prevSec.APIKey == "" || provider(prev.Model) != provider(in.Model)) {
			fe["api_key"] = "paste your " + providerName(in.Model) + " API key"
			break
		}
		if key == "" {
			key = prevSec.APIKey
		}
		if err := openclaw.ValidateAPIKey(key); err != nil {
			fe["api_key"] = "that key cannot be used: " + err.Error()
			break
		}
		switch p := provider(in.Model); {
		case p == "anthropic" && !strings.HasPrefix(key, "sk-ant-"):
			fe["api_key"] = "an Anthropic key starts with sk-ant-"
		case p == "openai" && (!strings.HasPrefix(key, "sk-") || strings.HasPrefix(key, "sk-ant-")):
			fe["api_key"] = "an OpenAI key starts with sk-"
		}
		sec.APIKey, last4 = key, key[max(0, len(key)-4):]
	default:
		fe["key_mode"] = "choose included credits or your own key"
	}
	if len(fe) > 0 {
		return fe
	}
	sealed, err := s.sealSecrets(userID, sec)
	if err != nil {
		return err
	}
	a := store.Assistant{UserID: userID, Name: in.Name, PlanID: in.PlanID, Model: in.Model, Telegram: in.Telegram,
		WhatsApp: in.WhatsApp, WebChat: in.WebChat, KeyMode: in.KeyMode, KeyLast4: last4, Secrets: sealed, Updated: s.now()}
	if err := s.store.PutAssistant(ctx, a); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return FieldErrors{"whatsapp": "this number is already used by another account"}
		}
		return err
	}
	// A plan's change takes effect with the subscription; the model, key and Telegram token
	// are re-applied to a bot that exists now. A customer who has paid (or was granted a plan)
	// before setting up gets their bot now.
	sub, err := s.CurrentSubscription(ctx, userID)
	if err != nil || !live(sub) {
		return nil
	}
	if sub.BotID == "" {
		var hostID string
		err := s.store.InTx(ctx, func(tx *store.Store) error {
			x, err := tx.GetSubscription(ctx, sub.ID)
			if err != nil {
				return err
			}
			if hostID, err = s.ensureBot(ctx, tx, &x); err != nil {
				return err
			}
			x.UpdatedAt = s.now()
			return tx.PutSubscription(ctx, x)
		})
		if err != nil {
			return fmt.Errorf("make your assistant: %w", err)
		}
		s.kick(hostID)
		return nil
	}
	apiKey, err := s.botKey(a, sec)
	if err != nil {
		return err
	}
	_, err = s.bots.Reconfigure(ctx, customerActor(userID), sub.BotID, bots.Changes{Model: &a.Model, APIKey: &apiKey, TelegramToken: &sec.TelegramToken})
	if err != nil && !isWire(err, wire.CodeNotFound) {
		return fmt.Errorf("apply the new settings to your assistant: %w", err)
	}
	return nil
}

func providerName(model string) string {
	switch provider(model) {
	case "anthropic":
		return "Anthropic"
	case "openai":
		return "OpenAI"
	}
	return provider(model)
}

// botKey is the customer's own model key for their bot, or "" for the platform's (on
// included credits), which pmd gives the bot's host itself.
func (s *Service) botKey(a store.Assistant, sec assistantSecrets) (string, error) {
	if a.KeyMode == KeyBYOK {
		return sec.APIKey, nil
	}
	if !s.cfg.PlatformProviders[provider(a.Model)] {
		return "", wire.Errorf(wire.CodeUnavailable, "included credits are not offered for %s models now; choose your own key in settings", providerName(a.Model))
	}
	return "", nil
}

func customerActor(userID string) string { return "customer:" + userID }

func isWire(err error, code string) bool {
	var we *wire.Error
	return errors.As(err, &we) && we.Code == code
}

func newID(prefix string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// LiveStatus reports whether a subscription in Stripe's status keeps its bot: active,
// trialing, or past due within the grace period.
func LiveStatus(status string) bool {
	return status == "active" || status == "trialing" || status == "past_due"
}

// live reports whether a subscription's bot should run.
func live(x store.Subscription) bool { return LiveStatus(x.Status) }

// CurrentSubscription is the customer's subscription that matters now: a live one, else the
// newest; store.ErrNotFound when they never had one.
func (s *Service) CurrentSubscription(ctx context.Context, userID string) (store.Subscription, error) {
	return currentSubIn(ctx, s.store, userID)
}

func currentSubIn(ctx context.Context, st *store.Store, userID string) (store.Subscription, error) {
	subs, err := st.ListSubscriptions(ctx, userID)
	if err != nil {
		return store.Subscription{}, err
	}
	for _, x := range subs {
		if live(x) {
			return x, nil
		}
	}
	if len(subs) == 0 {
		return store.Subscription{}, store.ErrNotFound
	}
	return subs[0], nil
}

// ensureBot gives a live subscription its bot, in tx: the customer's bot if they still have
// one (a resubscription within retention gets the same bot and workspace back), else a new
// one made from their assistant, keyed by the subscription so a replay makes no second bot.
func (s *Service) ensureBot(ctx context.Context, tx *store.Store, x *store.Subscription) (hostID string, err error) {
	if x.BotID != "" || !live(*x) {
		return "", nil
	}
	if prev, err := tx.ListSubscriptions(ctx, x.UserID); err == nil {
		for _, p := range prev {
			if p.ID == x.ID || p.BotID == "" {
				continue
			}
			if b, err := tx.GetBot(ctx, p.BotID); err == nil && b.Desired != store.DesiredDeleted {
				x.BotID = b.ID
				p.BotID = ""
				p.UpdatedAt = s.now()
				if err := tx.PutSubscription(ctx, p); err != nil {
					return "", err
				}
				return b.HostID, nil
			}
		}
	}
	a, err := tx.GetAssistant(ctx, x.UserID)
	if errors.Is(err, store.ErrNotFound) {
		// Paid before choosing anything: the bot is made when they finish onboarding.
		return "", nil
	}
	if err != nil {
		return "", err
	}
	plan, ok := s.Plan(x.PlanID)
	if !ok {
		return "", fmt.Errorf("subscription %s: plan %q is not configured", x.ID, x.PlanID)
	}
	sec, err := s.openSecrets(a)
	if err != nil {
		return "", err
	}
	key, err := s.botKey(a, sec)
	if err != nil {
		return "", err
	}
	res, err := plan.Resources()
	if err != nil {
		return "", err
	}
	b, err := s.bots.CreateTx(ctx, tx, "billing", bots.NewBot{
		Name:           botName(x.UserID),
		Owner:          bots.Owner{Kind: store.OwnerCustomer, ID: x.UserID},
		IdempotencyKey: "subscription:" + x.ID,
		Model:          a.Model, ToolsProfile: plan.ToolsProfile, APIKey: key, TelegramToken: sec.TelegramToken,
		Resources: res, Placement: plan.Placement,
	})
	if err != nil {
		return "", fmt.Errorf("make the bot of subscription %s: %w", x.ID, err)
	}
	x.BotID = b.ID
	return b.HostID, nil
}

// botName is a customer's bot's name: unique, stable, and free of anything they typed.
func botName(userID string) string { return "c-" + strings.TrimPrefix(userID, "u-") }

// ModelLimits are a customer's model call limits: their current subscription's plan's. A
// customer without a live subscription (a bot kept stopped) or on a plan no longer configured
// gets none from here: their bot does not run, or keeps what it had.
func (s *Service) ModelLimits(ctx context.Context, userID string) (wire.CallLimits, error) {
	x, err := s.CurrentSubscription(ctx, userID)
	if errors.Is(err, store.ErrNotFound) {
		return wire.CallLimits{}, nil
	}
	if err != nil {
		return wire.CallLimits{}, err
	}
	p, ok := s.Plan(x.PlanID)
	if !ok {
		return wire.CallLimits{}, nil
	}
	return wire.CallLimits{PerMinute: p.ModelCallsPerMinute, PerDay: p.ModelCallsPerDay}, nil
}
