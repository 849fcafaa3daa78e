package pmd

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pocketmolt/pocketmolt/internal/billing"
)

// TestCustomerSettingsFromTheEnvironment: the nested sections' keys come from PMD_STRIPE_*
// and PMD_SMTP_* as the issue and examples/pmd.yaml promise.
func TestCustomerSettingsFromTheEnvironment(t *testing.T) {
	clearEnv(t)
	t.Setenv("PMD_STRIPE_SECRET_KEY", "sk_test_123")
	t.Setenv("PMD_STRIPE_WEBHOOK_SECRET", "whsec_abc")
	t.Setenv("PMD_STRIPE_API_BASE", "http://127.0.0.1:12111")
	t.Setenv("PMD_SMTP_HOST", "smtp.example.com")
	t.Setenv("PMD_SMTP_FROM", "PocketMolt <no-reply@example.com>")
	t.Setenv("PMD_PUBLIC_URL", "https://app.example.com")
	empty := filepath.Join(t.TempDir(), "pmd.yaml")
	plans := `plans:
  - {id: solo, name: Solo, price: "20.00", currency: eur, stripe_price_id: price_solo, included_credits: "10", placement: shared, models: [anthropic/claude-sonnet-4-6]}
`
	if err := os.WriteFile(empty, []byte(plans), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadWith(t, newServeCmd(io.Discard), true, "--config", empty, "--data-dir", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Stripe.SecretKey != "sk_test_123" || cfg.Stripe.WebhookSecret != "whsec_abc" || cfg.Stripe.APIBase != "http://127.0.0.1:12111" ||
		cfg.SMTP.Host != "smtp.example.com" || cfg.PublicURL != "https://app.example.com" || len(cfg.Plans) != 1 {
		t.Fatalf("loaded %+v", cfg)
	}
}

func TestCustomerSettingsRefused(t *testing.T) {
	good := func() Config {
		return Config{DataDir: "x", PublicAddr: "127.0.0.1:8080", AgentAddr: "0.0.0.0:8443", AdminAddr: "127.0.0.1:9443"}
	}
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"a public url without a scheme", func(c *Config) { c.PublicURL = "app.example.com" }, "public-url"},
		{"a key without a webhook secret", func(c *Config) { c.Stripe.SecretKey = "sk_test_1" }, "webhook_secret is empty"},
		{"a publishable key", func(c *Config) { c.Stripe.SecretKey, c.Stripe.WebhookSecret = "pk_test_1", "whsec_1" }, "secret key"},
		{"a webhook secret of the wrong form", func(c *Config) { c.Stripe.SecretKey, c.Stripe.WebhookSecret = "sk_test_1", "abc" }, "whsec_"},
		{"a key inline and in a file", func(c *Config) { c.Stripe.SecretKey, c.Stripe.SecretKeyFile = "sk_test_1", "/x" }, "not both"},
		{"an api base without a key", func(c *Config) { c.Stripe.APIBase = "http://127.0.0.1:1" }, "api_base"},
		{"stripe on, a plan without a price", func(c *Config) { c.Stripe.SecretKey, c.Stripe.WebhookSecret = "sk_test_1", "whsec_1" }, "stripe_price_id"},
		{"a plan with a bad id", func(c *Config) { c.Plans = []billing.Plan{{ID: "Bad ID"}} }, "plan id"},
		{"a grace period of a year", func(c *Config) { c.BillingGracePeriod = 365 * 24 * 60 * 60 * 1e9 }, "billing-grace-period"},
		{"test billing with a Stripe key", func(c *Config) {
			c.Stripe.SecretKey, c.Stripe.WebhookSecret, c.BillingTestMode = "sk_test_1", "whsec_1", true
		}, "billing-test-mode"},
		{"smtp without a host", func(c *Config) { c.SMTP.Username, c.SMTP.PasswordFile = "u", "/p" }, "smtp"},
	} {
		c := good()
		tc.edit(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Validate = %v, want an error about %q", tc.name, err, tc.want)
		}
	}
}
