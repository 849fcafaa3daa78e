package pmd

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/billing"
	"github.com/pocketmolt/pocketmolt/internal/bots"
	"github.com/pocketmolt/pocketmolt/internal/bytesize"
	"github.com/pocketmolt/pocketmolt/internal/firewall"
	"github.com/pocketmolt/pocketmolt/internal/fleet"
	"github.com/pocketmolt/pocketmolt/internal/mail"
	"github.com/pocketmolt/pocketmolt/internal/usage"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// Config is pmd's configuration. Each field is a flag of the same name, a PMD_<NAME>
// environment variable and a key of pmd.yaml.
type Config struct {
	DataDir           string        `mapstructure:"data-dir" yaml:"-"`
	Database          string        `mapstructure:"database" yaml:"database,omitempty"`
	MasterKeyFile     string        `mapstructure:"master-key-file" yaml:"master-key-file,omitempty"`
	PublicAddr        string        `mapstructure:"public-addr" yaml:"public-addr"`
	AgentAddr         string        `mapstructure:"agent-addr" yaml:"agent-addr"`
	AdminAddr         string        `mapstructure:"admin-addr" yaml:"admin-addr"`
	ServerName        []string      `mapstructure:"server-name" yaml:"server-name,omitempty"`
	HeartbeatInterval time.Duration `mapstructure:"heartbeat-interval" yaml:"heartbeat-interval"`
	AgentCertTTL      time.Duration `mapstructure:"agent-cert-ttl" yaml:"agent-cert-ttl"`
	TokenTTL          time.Duration `mapstructure:"token-ttl" yaml:"token-ttl"`
	LogLevel          string        `mapstructure:"log-level" yaml:"log-level"`
	BotImage          string        `mapstructure:"bot-image" yaml:"bot-image,omitempty"`
	BotStartTimeout   time.Duration `mapstructure:"bot-start-timeout" yaml:"bot-start-timeout,omitempty"`
	// BotDiskLimit is the disk limit of bots created without one, as a size ("10GiB").
	BotDiskLimit string `mapstructure:"bot-disk-limit" yaml:"bot-disk-limit,omitempty"`
	MetricsAddr  string `mapstructure:"metrics-addr" yaml:"metrics-addr,omitempty"`
	// BotFirewall and BotEgressAllow are pmd dev's local agent's (pmagent's settings of the
	// same names); init does not record them.
	BotFirewall    bool     `mapstructure:"bot-firewall" yaml:"-"`
	BotEgressAllow []string `mapstructure:"bot-egress-allow" yaml:"-"`
	// AgentCertOverlap is how long an agent certificate replaced by a renewal is still
	// accepted at new handshakes.
	AgentCertOverlap time.Duration `mapstructure:"agent-cert-overlap" yaml:"agent-cert-overlap,omitempty"`
	// EnrollRate and EnrollRatePerAddress bound enrollment requests per minute, overall and
	// from one source address.
	EnrollRate           int `mapstructure:"enroll-rate" yaml:"enroll-rate,omitempty"`
	EnrollRatePerAddress int `mapstructure:"enroll-rate-per-address" yaml:"enroll-rate-per-address,omitempty"`
	// PublicURL is where customers and Stripe reach pmd (Checkout's return pages, links in
	// emails); default http://<public-addr>.
	PublicURL string `mapstructure:"public-url" yaml:"public-url,omitempty"`
	// TrustedProxies are the reverse proxies in front of the public listener, whose
	// X-Forwarded-For names the client that rate limits count against.
	TrustedProxies []string `mapstructure:"trusted-proxies" yaml:"trusted-proxies,omitempty"`
	// Plans are what customers can buy; none configured sells billing.DefaultPlans.
	Plans  []billing.Plan `mapstructure:"plans" yaml:"plans,omitempty"`
	Stripe StripeConfig   `mapstructure:"stripe" yaml:"stripe,omitempty"`
	SMTP   mail.Config    `mapstructure:"smtp" yaml:"smtp,omitempty"`
	// BillingGracePeriod is how long a past-due customer's bot keeps running;
	// BillingRetention how long an ended subscription's bot and workspace are kept.
	BillingGracePeriod time.Duration `mapstructure:"billing-grace-period" yaml:"billing-grace-period,omitempty"`
	BillingRetention   time.Duration `mapstructure:"billing-retention" yaml:"billing-retention,omitempty"`
	// BillingTestMode sells plans without Stripe, activating them at once (pmd dev's
	// default); without it and without a Stripe key, only operators' grants give plans.
	BillingTestMode bool `mapstructure:"billing-test-mode" yaml:"billing-test-mode,omitempty"`
	// BillingTestPeriod is a period's length in test billing mode.
	BillingTestPeriod time.Duration `mapstructure:"billing-test-period" yaml:"billing-test-period,omitempty"`
	// AnthropicAPIKeyFile and OpenAIAPIKeyFile hold the platform's own model keys, for
	// customers on included credits and operators' bots made without a key. Bots never see
	// them: their hosts' model endpoints swap them in.
	AnthropicAPIKeyFile string `mapstructure:"anthropic-api-key-file" yaml:"anthropic-api-key-file,omitempty"`
	OpenAIAPIKeyFile    string `mapstructure:"openai-api-key-file" yaml:"openai-api-key-file,omitempty"`
	// AnthropicBaseURL and OpenAIBaseURL are where hosts send bots' model calls: the
	// providers' public APIs unless a proxy or a stand-in is in between.
	AnthropicBaseURL string `mapstructure:"anthropic-base-url" yaml:"anthropic-base-url,omitempty"`
	OpenAIBaseURL    string `mapstructure:"openai-base-url" yaml:"openai-base-url,omitempty"`
	// Prices are what model calls cost, in credits per million tokens, by "provider/model",
	// with "default" for a model not listed; empty means the built-in table.
	Prices []usage.PriceConfig `mapstructure:"prices" yaml:"prices,omitempty"`
	// Force is init's --force; it is never read from a file.
	Force bool `mapstructure:"force" yaml:"-"`
	// Admin is init's --admin: the name in the first admin certificate. Never read from a file.
	Admin string `mapstructure:"admin" yaml:"-"`
	// OfflineRoot is init's --offline-root: the root CA's key goes to a file for the operator
	// to keep offline instead of into the database. Never read from a file.
	OfflineRoot bool `mapstructure:"offline-root" yaml:"-"`
	// BotSharedUID is dev's --bot-shared-uid: the local agent runs every bot as its own user.
	// It is never read from a file.
	BotSharedUID bool `mapstructure:"bot-shared-uid" yaml:"-"`
}

// Defaults.
const (
	DefaultDataDir    = "./pm"
	DefaultPublicAddr = "127.0.0.1:8080"
	DefaultAgentAddr  = "0.0.0.0:8443"
	DefaultAdminAddr  = "127.0.0.1:9443"
	ConfigFile        = "pmd.yaml"
	CtlConfigFile     = "pmctl.yaml"
	MasterKeyFile     = "master.key"
	DatabaseFile      = "pmd.db"
)

// DatabaseURL is the store URL: the configured one, or SQLite in the data dir.
func (c *Config) DatabaseURL() string {
	if c.Database != "" {
		return c.Database
	}
	return "sqlite:" + filepath.Join(c.DataDir, DatabaseFile)
}

// KeyFile is the master key file's path.
func (c *Config) KeyFile() string {
	if c.MasterKeyFile != "" {
		return c.MasterKeyFile
	}
	return filepath.Join(c.DataDir, MasterKeyFile)
}

// FleetConfig is the fleet's part of the configuration.
func (c *Config) FleetConfig() fleet.Config {
	return fleet.Config{
		HeartbeatInterval: c.HeartbeatInterval, AgentCertTTL: c.AgentCertTTL, TokenTTL: c.TokenTTL,
		CertOverlap: c.AgentCertOverlap, EnrollRate: c.EnrollRate, EnrollRatePerAddress: c.EnrollRatePerAddress,
	}
}

// DiskLimit is BotDiskLimit in bytes, bots.DefaultDiskLimit when it is empty.
func (c *Config) DiskLimit() (int64, error) {
	if c.BotDiskLimit == "" {
		return bots.DefaultDiskLimit, nil
	}
	n, err := bytesize.Parse(c.BotDiskLimit)
	if err == nil {
		err = bots.ValidDisk(n)
	}
	if err != nil {
		return 0, fmt.Errorf("bot-disk-limit %q: %w", c.BotDiskLimit, err)
	}
	return n, nil
}

// Validate checks every value and says what to fix.
func (c *Config) Validate() error {
	if c.DataDir == "" {
		return fmt.Errorf("--data-dir is empty")
	}
	for name, addr := range map[string]string{"public-addr": c.PublicAddr, "agent-addr": c.AgentAddr, "admin-addr": c.AdminAddr} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return fmt.Errorf("%s %q: want host:port, e.g. 127.0.0.1:8443", name, addr)
		}
	}
	if c.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			return fmt.Errorf("metrics-addr %q: want host:port, e.g. 127.0.0.1:9464, or empty for none", c.MetricsAddr)
		}
	}
	if c.Database != "" && !strings.HasPrefix(c.Database, "sqlite:") && !strings.HasPrefix(c.Database, "postgres://") && !strings.HasPrefix(c.Database, "postgresql://") {
		return fmt.Errorf("database %q: use sqlite:<path> or postgres://…", redactURL(c.Database))
	}
	if c.HeartbeatInterval < 0 || c.HeartbeatInterval > 0 && c.HeartbeatInterval < 100*time.Millisecond {
		return fmt.Errorf("heartbeat-interval %s: use at least 100ms", c.HeartbeatInterval)
	}
	if c.AgentCertTTL < 0 || c.AgentCertTTL > 0 && c.AgentCertTTL < time.Minute {
		return fmt.Errorf("agent-cert-ttl %s: use at least 1m", c.AgentCertTTL)
	}
	if c.AgentCertOverlap < 0 || c.AgentCertOverlap > 0 && c.AgentCertOverlap < time.Second {
		return fmt.Errorf("agent-cert-overlap %s: use at least 1s", c.AgentCertOverlap)
	}
	if c.AgentCertOverlap > time.Hour {
		return fmt.Errorf("agent-cert-overlap %s: use at most 1h; a renewed host reconnects with its new certificate long before", c.AgentCertOverlap)
	}
	if c.EnrollRate < 0 {
		return fmt.Errorf("enroll-rate %d: use a positive number of enrollments a minute", c.EnrollRate)
	}
	if c.EnrollRatePerAddress < 0 {
		return fmt.Errorf("enroll-rate-per-address %d: use a positive number of enrollments a minute", c.EnrollRatePerAddress)
	}
	if c.Admin != "" && !wire.ValidName(c.Admin) {
		return fmt.Errorf("admin %q: %s", c.Admin, wire.NameRule)
	}
	if c.BotImage != "" {
		if err := bots.ValidImage(c.BotImage); err != nil {
			return fmt.Errorf("bot-image: %w", err)
		}
	}
	if c.BotStartTimeout < 0 || c.BotStartTimeout > 0 && c.BotStartTimeout < time.Second {
		return fmt.Errorf("bot-start-timeout %s: use at least 1s", c.BotStartTimeout)
	}
	if _, err := firewall.ParseRules(c.BotEgressAllow); err != nil {
		return fmt.Errorf("bot-egress-allow: %w", err)
	}
	if _, err := c.DiskLimit(); err != nil {
		return err
	}
	if c.TokenTTL < 0 || c.TokenTTL > fleet.MaxTokenTTL || c.TokenTTL > 0 && c.TokenTTL < time.Minute {
		return fmt.Errorf("token-ttl %s: use between 1m and %s", c.TokenTTL, fleet.MaxTokenTTL)
	}
	if err := c.validateModels(); err != nil {
		return err
	}
	return c.validateCustomers()
}

// checkDataDir says clearly when the data dir is missing or unusable.
func checkDataDir(dir string) error {
	fi, err := os.Stat(dir)
	if os.IsNotExist(err) {
		return fmt.Errorf("data dir %s does not exist; run `pmd init --data-dir %s` first", dir, dir)
	}
	if err != nil {
		return fmt.Errorf("data dir %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("data dir %s is not a directory", dir)
	}
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("data dir %s is not readable: %w", dir, err)
	}
	f.Close()
	return nil
}

// redactURL hides a password in a database URL.
func redactURL(s string) string {
	if i := strings.Index(s, "://"); i >= 0 {
		rest := s[i+3:]
		if at := strings.Index(rest, "@"); at >= 0 {
			if colon := strings.Index(rest[:at], ":"); colon >= 0 {
				return s[:i+3] + rest[:colon] + ":[redacted]" + rest[at:]
			}
		}
	}
	return s
}

func dirExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}
