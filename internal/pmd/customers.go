package pmd

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/accounts"
	"github.com/pocketmolt/pocketmolt/internal/billing"
	"github.com/pocketmolt/pocketmolt/internal/mail"
	"github.com/pocketmolt/pocketmolt/internal/secret"
	"github.com/pocketmolt/pocketmolt/internal/web"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// StripeConfig is the stripe: section. Secrets come from the file settings or the
// environment (PMD_STRIPE_SECRET_KEY, PMD_STRIPE_WEBHOOK_SECRET), never from a flag.
type StripeConfig struct {
	SecretKey         string `mapstructure:"secret_key" yaml:"-"`
	SecretKeyFile     string `mapstructure:"secret_key_file" yaml:"secret_key_file,omitempty"`
	WebhookSecret     string `mapstructure:"webhook_secret" yaml:"-"`
	WebhookSecretFile string `mapstructure:"webhook_secret_file" yaml:"webhook_secret_file,omitempty"`
	// APIBase points the client at another Stripe API (stripe-mock in tests).
	APIBase string `mapstructure:"api_base" yaml:"api_base,omitempty"`
}

// readSecret is a secret given inline (from the environment) or in a file; both is an error.
func readSecret(name, inline, file string) (string, error) {
	if inline != "" && file != "" {
		return "", fmt.Errorf("%s: give it inline or as a file, not both", name)
	}
	if file == "" {
		return strings.TrimSpace(inline), nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("%s_file: %w", name, err)
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return "", fmt.Errorf("%s_file %s is empty", name, file)
	}
	return v, nil
}

// Public URL is where customers and Stripe reach pmd: the configured one, else the public
// address over plain HTTP.
func (c *Config) publicURL(bound string) string {
	if c.PublicURL != "" {
		return strings.TrimRight(c.PublicURL, "/")
	}
	host, port, _ := net.SplitHostPort(bound)
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// plans are the configured plans, or the default ones when none are.
func (c *Config) plans() []billing.Plan {
	if len(c.Plans) > 0 {
		return c.Plans
	}
	return billing.DefaultPlans()
}

// validateCustomers checks the customer-facing settings and says what to fix.
func (c *Config) validateCustomers() error {
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return fmt.Errorf("public-url %q: want http(s)://host[:port] with no path, e.g. https://app.example.com", c.PublicURL)
		}
	}
	if _, err := parseProxies(c.TrustedProxies); err != nil {
		return err
	}
	if err := billing.ValidatePlans(c.plans()); err != nil {
		return fmt.Errorf("plans: %w", err)
	}
	st := c.Stripe
	if st.SecretKey != "" && st.SecretKeyFile != "" {
		return fmt.Errorf("stripe: give secret_key (PMD_STRIPE_SECRET_KEY) or secret_key_file, not both")
	}
	if st.WebhookSecret != "" && st.WebhookSecretFile != "" {
		return fmt.Errorf("stripe: give webhook_secret (PMD_STRIPE_WEBHOOK_SECRET) or webhook_secret_file, not both")
	}
	if err := checkStripeSecrets(st.SecretKey, st.WebhookSecret); err != nil {
		return err
	}
	key := st.SecretKey + st.SecretKeyFile // which one is set is all that matters here
	if key != "" && st.WebhookSecret+st.WebhookSecretFile == "" {
		return fmt.Errorf("stripe: webhook_secret is empty: with a Stripe key, set the webhook's signing secret (PMD_STRIPE_WEBHOOK_SECRET or stripe.webhook_secret_file) so payments reach pmd")
	}
	if key != "" && c.BillingTestMode {
		return fmt.Errorf("billing-test-mode is on but a Stripe key is configured: turn test billing off, or remove the key")
	}
	if key == "" && st.APIBase != "" {
		return fmt.Errorf("stripe.api_base is set but stripe.secret_key is not")
	}
	if st.APIBase != "" {
		if u, err := url.Parse(st.APIBase); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("stripe.api_base %q: want http(s)://host:port", st.APIBase)
		}
	}
	if key != "" {
		for _, p := range c.plans() {
			if p.StripePriceID == "" {
				return fmt.Errorf("plan %q has no stripe_price_id: with Stripe on, every plan needs the Stripe Price its customers subscribe to", p.ID)
			}
		}
	}
	if c.BillingGracePeriod < 0 || c.BillingGracePeriod > 90*24*time.Hour {
		return fmt.Errorf("billing-grace-period %s: use 0 (the default, 7 days) up to 90 days", c.BillingGracePeriod)
	}
	if c.BillingTestPeriod < 0 || c.BillingTestPeriod > 0 && c.BillingTestPeriod < time.Second {
		return fmt.Errorf("billing-test-period %s: use at least 1s (the default is 720h)", c.BillingTestPeriod)
	}
	if c.BillingRetention < 0 || c.BillingRetention > 365*24*time.Hour {
		return fmt.Errorf("billing-retention %s: use 0 (the default, 30 days) up to 365 days", c.BillingRetention)
	}
	if err := c.SMTP.Validate(); err != nil {
		return err
	}
	return nil
}

// checkStripeSecrets checks the form of Stripe's secrets, as given inline or read from
// their files ("" when not given).
func checkStripeSecrets(key, whsec string) error {
	if key != "" && !strings.HasPrefix(key, "sk_") && !strings.HasPrefix(key, "rk_") {
		return fmt.Errorf("stripe.secret_key: want a Stripe secret key (sk_live_…, sk_test_… or a restricted rk_…)")
	}
	if whsec != "" && !strings.HasPrefix(whsec, "whsec_") {
		return fmt.Errorf("stripe.webhook_secret: want the endpoint's signing secret (whsec_…)")
	}
	return nil
}

// platformKeys are the platform's own model keys, read from their files.
func (c *Config) platformKeys() (map[string]string, error) {
	keys := map[string]string{}
	for provider, file := range map[string]string{"anthropic": c.AnthropicAPIKeyFile, "openai": c.OpenAIAPIKeyFile} {
		if file == "" {
			continue
		}
		k, err := readSecret(provider+"-api-key", "", file)
		if err != nil {
			return nil, err
		}
		keys[provider] = k
	}
	return keys, nil
}

// mailer is the SMTP mailer when smtp.host is set, else one that logs each email (the
// reset links operators and tests read).
func (c *Config) mailer(log *slog.Logger) (mail.Mailer, error) {
	if !c.SMTP.Enabled() {
		if err := c.SMTP.Validate(); err != nil {
			return nil, err
		}
		return &mail.Log{Logger: log}, nil
	}
	return mail.NewSMTP(c.SMTP)
}

// openCustomers assembles the customers' side: accounts, the credit ledger and billing, on
// Stripe when a secret key is configured and in test billing mode otherwise.
func (d *Daemon) openCustomers(cfg Config, kr *secret.Keyring) error {
	d.PublicURL = cfg.publicURL(d.PublicAddr)
	mailer, err := cfg.mailer(d.log.With("component", "mail"))
	if err != nil {
		return err
	}
	d.Accounts, err = accounts.New(accounts.Config{Store: d.Store, Mailer: mailer, Logger: d.log.With("component", "accounts"), PublicURL: d.PublicURL})
	if err != nil {
		return err
	}
	keys, err := cfg.platformKeys()
	if err != nil {
		return err
	}
	providers := map[string]bool{}
	for p := range keys {
		providers[p] = true
	}
	bc := billing.Config{Plans: cfg.plans(), PublicURL: d.PublicURL, GracePeriod: cfg.BillingGracePeriod,
		Retention: cfg.BillingRetention, PlatformProviders: providers, TestPeriod: cfg.BillingTestPeriod, TestMode: cfg.BillingTestMode,
		EventHandled: d.Metrics.StripeEvent}
	key, err := readSecret("stripe.secret_key", cfg.Stripe.SecretKey, cfg.Stripe.SecretKeyFile)
	if err != nil {
		return err
	}
	whsec, err := readSecret("stripe.webhook_secret", cfg.Stripe.WebhookSecret, cfg.Stripe.WebhookSecretFile)
	if err != nil {
		return err
	}
	if err := checkStripeSecrets(key, whsec); err != nil {
		return err
	}
	if key != "" {
		bc.WebhookSecret = whsec
		sc, err := billing.NewStripeClient(billing.StripeClientConfig{SecretKey: key, APIBase: cfg.Stripe.APIBase})
		if err != nil {
			return err
		}
		bc.Stripe = sc
	} else if cfg.BillingTestMode {
		d.log.Warn("test billing mode: Subscribe activates plans at once and nobody is charged")
	} else {
		d.log.Info("no Stripe secret key: plans are not sold online; operators give them with pmctl users grant")
	}
	d.Billing = billing.New(d.Store, d.Bots, d.Credits, kr, bc, d.log.With("component", "billing"))
	proxies, err := parseProxies(cfg.TrustedProxies)
	if err != nil {
		return err
	}
	d.web, err = web.New(web.Config{Accounts: d.Accounts, Billing: d.Billing, Usage: dashboardUsage{d}, PublicURL: d.PublicURL,
		Logger: d.log.With("listener", "public"), ClientIP: clientIP(proxies)})
	return err
}

// countUsers and subscriptions feed the customers' metrics.
func (d *Daemon) countUsers(ctx context.Context) (int, error) {
	us, err := d.Store.ListUsers(ctx)
	return len(us), err
}

func (d *Daemon) subscriptions(ctx context.Context) ([]wire.Subscription, error) {
	subs, err := d.Store.ListSubscriptions(ctx, "")
	if err != nil {
		return nil, err
	}
	out := make([]wire.Subscription, 0, len(subs))
	for _, x := range subs {
		out = append(out, wire.Subscription{ID: x.ID, Status: x.Status, Source: x.Source, Plan: x.PlanID})
	}
	return out, nil
}
