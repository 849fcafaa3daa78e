package pmd

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/billing"
	"github.com/pocketmolt/pocketmolt/internal/config/configtest"
	"github.com/pocketmolt/pocketmolt/internal/usage"

	"github.com/spf13/cobra"
)

// exampleConfig is the commented pmd.yaml shipped for operators; these tests keep it true to
// the code: every key loads, every key is documented with its env var and default, and the
// commented-out keys load too once uncommented.
const exampleConfig = "../../examples/pmd.yaml"

// notInFile are Config keys that the file cannot usefully set: the data dir is read before the
// file, --force, --admin and --offline-root are init's one-offs, and --bot-shared-uid is dev's.
var notInFile = []string{"data-dir", "force", "admin", "offline-root", "bot-shared-uid"}

// sections are Config keys that are YAML sections rather than flags: their comment names the
// variables of their keys (or says there are none), and they have no flag and no default.
var sections = map[string]string{
	"plans":  "Not settable from the environment",
	"prices": "Not settable from the environment",
	"stripe": "Env: PMD_STRIPE_SECRET_KEY",
	"smtp":   "Env: PMD_SMTP_HOST",
}

// clearEnv hides the developer's PMD_* variables from the loader (viper treats empty as unset).
func clearEnv(t *testing.T) {
	t.Helper()
	for _, k := range configtest.Keys[Config](t) {
		t.Setenv(envName(k), "")
	}
	t.Setenv("PMD_MASTER_KEY", "")
}

func envName(key string) string { return "PMD_" + strings.ToUpper(strings.ReplaceAll(key, "-", "_")) }

// loadWith runs the commands' own loader on a command built like the real one.
func loadWith(t *testing.T, cmd *cobra.Command, required bool, args ...string) (Config, error) {
	t.Helper()
	if err := cmd.ParseFlags(args); err != nil {
		t.Fatalf("parse flags %v: %v", args, err)
	}
	return loadConfig(cmd, required)
}

func TestExampleConfigLoads(t *testing.T) {
	want := Config{
		PublicAddr:           "127.0.0.1:8080",
		AgentAddr:            "0.0.0.0:8443",
		AdminAddr:            "127.0.0.1:9443",
		ServerName:           []string{"pm.example.com"},
		HeartbeatInterval:    10 * time.Second,
		AgentCertTTL:         24 * time.Hour,
		TokenTTL:             time.Hour,
		LogLevel:             "info",
		BotImage:             "ghcr.io/openclaw/openclaw:2026.9.6",
		BotStartTimeout:      2 * time.Minute,
		AgentCertOverlap:     10 * time.Minute,
		EnrollRate:           600,
		EnrollRatePerAddress: 20,
		BotDiskLimit:         "10GiB",
		Plans:                examplePlans(),
		Prices:               usage.DefaultPrices(),
		AnthropicBaseURL:     "https://api.anthropic.com",
		OpenAIBaseURL:        "https://api.openai.com/v1",
		BillingGracePeriod:   billing.DefaultGracePeriod,
		BillingRetention:     billing.DefaultRetention,
		BillingTestPeriod:    billing.DefaultTestPeriod,
		TrustedProxies:       []string{},
	}
	for _, tc := range []struct {
		name     string
		cmd      func() *cobra.Command
		required bool
	}{
		{"init", func() *cobra.Command { return newInitCmd(io.Discard) }, false},
		{"serve", func() *cobra.Command { return newServeCmd(io.Discard) }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clearEnv(t)
			dir := t.TempDir()
			got, err := loadWith(t, tc.cmd(), tc.required, "--config", exampleConfig, "--data-dir", dir)
			if err != nil {
				t.Fatalf("load %s: %v", exampleConfig, err)
			}
			w := want
			w.DataDir = dir

			if !reflect.DeepEqual(got, w) {
				t.Errorf("loaded %+v\nwant   %+v", got, w)
			}
		})
	}
}

// TestExampleConfigSetsDefaults checks that every value the example sets is the built-in
// default, as its comments say (server-name, which has none, aside).
func TestExampleConfigSetsDefaults(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	fromFile, err := loadWith(t, newServeCmd(io.Discard), true, "--config", exampleConfig, "--data-dir", dir)
	if err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(t.TempDir(), "empty.yaml")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	defaults, err := loadWith(t, newServeCmd(io.Discard), true, "--config", empty, "--data-dir", dir)
	if err != nil {
		t.Fatal(err)
	}
	fromFile.ServerName = nil
	// The example lists the plans sold without a plans: section, with Stripe prices.
	if !reflect.DeepEqual(fromFile.Plans, examplePlans()) {
		t.Errorf("the example's plans are not the default ones:\nexample  %+v\ndefaults %+v", fromFile.Plans, billing.DefaultPlans())
	}
	fromFile.Plans = nil
	// And the prices used without a prices: section.
	if !reflect.DeepEqual(fromFile.Prices, usage.DefaultPrices()) {
		t.Errorf("the example's prices are not the default ones:\nexample  %+v\ndefaults %+v", fromFile.Prices, usage.DefaultPrices())
	}
	fromFile.Prices = nil
	if !reflect.DeepEqual(fromFile, defaults) {
		t.Errorf("example differs from the defaults:\nexample  %+v\ndefaults %+v", fromFile, defaults)
	}
}

// examplePlans are the default plans with the example's Stripe prices.
func examplePlans() []billing.Plan {
	ps := billing.DefaultPlans()
	prices := map[string]string{"personal": "price_1PersonalMonthlyEUR", "pro": "price_1ProMonthlyEUR", "dedicated": "price_1DedicatedMonthlyEUR"}
	for i := range ps {
		ps[i].StripePriceID = prices[ps[i].ID]
	}
	return ps
}

// TestExampleConfigDocumentsEveryKey checks that each key appears in the example, set or
// commented out, under a comment naming its env var and, where the flag has one, its default.
func TestExampleConfigDocumentsEveryKey(t *testing.T) {
	b, err := os.ReadFile(exampleConfig)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	flags := newInitCmd(io.Discard).Flags() // the common flags, server-name and force
	flags.AddFlagSet(newDevCmd(io.Discard, io.Discard).Flags())
	for _, key := range configtest.Keys[Config](t) {
		if slices.Contains(notInFile, key) {
			continue
		}
		t.Run(key, func(t *testing.T) {
			doc, ok := configtest.CommentAbove(lines, key)
			if !ok {
				t.Fatalf("%s does not document %q (as `%s:` or `# %s:`)", exampleConfig, key, key, key)
			}
			if want, ok := sections[key]; ok {
				if !strings.Contains(doc, want) {
					t.Errorf("comment on %s does not say %q:\n%s", key, want, doc)
				}
				return
			}
			if env := "Env: " + envName(key); !strings.Contains(doc, env) {
				t.Errorf("comment on %s does not say %q:\n%s", key, env, doc)
			}
			f := flags.Lookup(key)
			if f == nil {
				t.Fatalf("no flag %s", key)
			}
			if def := configtest.FlagDefault(f); def != "" && !strings.Contains(doc, "Default: "+def) {
				t.Errorf("comment on %s does not say %q:\n%s", key, "Default: "+def, doc)
			}
		})
	}
}

// TestExampleConfigCommentedKeysLoad uncomments the example's commented-out keys (the
// PostgreSQL URL and so on) and loads the result, so the suggestions are valid too.
func TestExampleConfigCommentedKeysLoad(t *testing.T) {
	clearEnv(t)
	b, err := os.ReadFile(exampleConfig)
	if err != nil {
		t.Fatal(err)
	}
	uncommented, n := configtest.Uncomment(b, configtest.Keys[Config](t))
	if n == 0 {
		t.Fatal("found no commented-out keys to try")
	}
	path := filepath.Join(t.TempDir(), "pmd.yaml")
	if err := os.WriteFile(path, uncommented, 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := loadWith(t, newServeCmd(io.Discard), true, "--config", path, "--data-dir", t.TempDir())
	if err != nil {
		t.Fatalf("load with %d keys uncommented: %v", n, err)
	}
	if !strings.HasPrefix(got.Database, "postgres://") || got.MasterKeyFile == "" {
		t.Errorf("uncommented keys not loaded: database %q, master-key-file %q", got.Database, got.MasterKeyFile)
	}
}

// TestExampleConfigServeUninitialised runs `pmd serve` with the example on an empty data dir:
// it must get past the configuration and stop at the missing master key.
func TestExampleConfigServeUninitialised(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	root := NewCommand(&stdout, &stderr)
	root.SetArgs([]string{"serve", "--config", exampleConfig, "--data-dir", dir})
	err := root.ExecuteContext(t.Context())
	if err == nil {
		t.Fatal("serve on an empty data dir succeeded")
	}
	if msg := err.Error(); strings.HasPrefix(msg, "config ") || !strings.Contains(msg, "master key") {
		t.Errorf("serve error = %q, want one about the missing master key", msg)
	}
}

// TestExampleConfigInit runs `pmd init` with the example, as the operator's guide says, and
// checks the pmd.yaml it writes records the example's addresses.
func TestExampleConfigInit(t *testing.T) {
	clearEnv(t)
	dir := filepath.Join(t.TempDir(), "pm")
	var stdout, stderr bytes.Buffer
	root := NewCommand(&stdout, &stderr)
	root.SetArgs([]string{"init", "--config", exampleConfig, "--data-dir", dir})
	if err := root.ExecuteContext(t.Context()); err != nil {
		t.Fatalf("init: %v\n%s", err, stderr.String())
	}
	cfg, err := loadWith(t, newServeCmd(io.Discard), true, "--data-dir", dir)
	if err != nil {
		t.Fatalf("load the pmd.yaml init wrote: %v", err)
	}
	if cfg.AgentAddr != "0.0.0.0:8443" || cfg.AdminAddr != "127.0.0.1:9443" || cfg.PublicAddr != "127.0.0.1:8080" {
		t.Errorf("init recorded public %s, agent %s, admin %s", cfg.PublicAddr, cfg.AgentAddr, cfg.AdminAddr)
	}
}
