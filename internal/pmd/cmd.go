package pmd

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/pocketmolt/pocketmolt/internal/billing"
	"github.com/pocketmolt/pocketmolt/internal/bots"
	"github.com/pocketmolt/pocketmolt/internal/bytesize"
	"github.com/pocketmolt/pocketmolt/internal/config"
	"github.com/pocketmolt/pocketmolt/internal/fleet"
	"github.com/pocketmolt/pocketmolt/internal/logging"
	"github.com/pocketmolt/pocketmolt/internal/modelaccess"
	"github.com/pocketmolt/pocketmolt/internal/version"
)

// Main runs pmd with args and returns its exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := NewCommand(stdout, stderr)
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintf(stderr, "pmd: %v\n", err)
		return 1
	}
	return 0
}

// NewCommand builds pmd's command tree.
func NewCommand(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "pmd",
		Short: "PocketMolt control daemon",
		Long: `pmd owns the database, the CA, the fleet of hosts and the admin API.

One pmd at a time uses a data dir: serve, dev, init and rotate-key hold an exclusive
lock on <data-dir>/pmd.lock while they run, and refuse a data dir that another holds.
admin-cert and rotate-server-cert take no lock: they run beside a running pmd.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(newInitCmd(stdout), newServeCmd(stderr), newDevCmd(stdout, stderr), newRotateKeyCmd(stdout),
		newAdminCertCmd(stdout), newRotateServerCertCmd(stdout), newVersionCmd(stdout))
	return root
}

func newVersionCmd(out io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print pmd's version",
		Args:  cobra.NoArgs,
		Run:   func(*cobra.Command, []string) { fmt.Fprintln(out, version.String("pmd")) },
	}
}

// commonFlags are the flags every daemon command reads.
func commonFlags(fs *pflag.FlagSet) {
	fs.String("data-dir", DefaultDataDir, "directory holding the database, master key and configs (env PMD_DATA_DIR)")
	fs.String("config", "", "config file (default <data-dir>/pmd.yaml)")
	fs.String("database", "", "database URL: sqlite:<path> or postgres://… (default SQLite in the data dir)")
	fs.String("master-key-file", "", "master key file (default <data-dir>/master.key; env PMD_MASTER_KEY holds the key itself)")
	fs.String("public-addr", DefaultPublicAddr, "public HTTP address (customer page, webhooks, /healthz)")
	fs.String("agent-addr", DefaultAgentAddr, "agent listener address (mTLS tunnel and enrollment)")
	fs.String("admin-addr", DefaultAdminAddr, "admin API address (mTLS, admin certificates)")
	fs.Duration("heartbeat-interval", fleet.DefaultHeartbeat, "how often agents send heartbeats; 3 missed make a host offline")
	fs.Duration("agent-cert-ttl", fleet.DefaultAgentCertTTL, "lifetime of agent certificates; agents renew at 2/3")
	fs.Duration("token-ttl", fleet.DefaultTokenTTL, "default lifetime of enrollment tokens")
	fs.String("log-level", "info", "log level: debug, info, warn or error")
	fs.String("public-url", "", "where customers and Stripe reach pmd, e.g. https://app.example.com (default http://<public-addr>)")
	fs.StringSlice("trusted-proxies", nil, "reverse proxies in front of the public listener (addresses or CIDRs) whose X-Forwarded-For names the client")
	fs.Duration("billing-grace-period", billing.DefaultGracePeriod, "how long a customer's bot keeps running after a payment fails")
	fs.Duration("billing-retention", billing.DefaultRetention, "how long an ended subscription's bot and workspace are kept")
	fs.Bool("billing-test-mode", false, "without a Stripe key, sell plans in test billing mode: Subscribe activates them at once, nobody is charged (pmd dev's default)")
	fs.Duration("billing-test-period", billing.DefaultTestPeriod, "length of a paid period in test billing mode (no Stripe key): short for demos that show a period end")
	fs.String("anthropic-api-key-file", "", "file holding the platform's Anthropic key, for customers on included credits")
	fs.String("openai-api-key-file", "", "file holding the platform's OpenAI key, for customers on included credits")
	fs.String("anthropic-base-url", modelaccess.DefaultAnthropicBaseURL, "where hosts send bots' Anthropic calls (the Messages API's root)")
	fs.String("openai-base-url", modelaccess.DefaultOpenAIBaseURL, "where hosts send bots' OpenAI calls (the API's root, with /v1)")
	fs.String("bot-image", bots.DefaultImage, "gateway image for bots that name none")
	fs.Duration("bot-start-timeout", bots.DefaultStartWait, "how long a bot may take to pass /startupz before it is failed")
	fs.String("bot-disk-limit", bytesize.Format(bots.DefaultDiskLimit), "disk a bot's state and workspace may take on its host, for bots created without --disk; its agent stops a bot over it")
	fs.String("metrics-addr", "", "address serving Prometheus metrics at /metrics over plain HTTP, e.g. 127.0.0.1:9464 (empty: none)")
	fs.Duration("agent-cert-overlap", fleet.DefaultCertOverlap, "how long an agent certificate replaced by a renewal is still accepted at new handshakes")
	fs.Int("enroll-rate", fleet.DefaultEnrollRate, "enrollment requests a minute pmd accepts from all sources together; more get 429")
	fs.Int("enroll-rate-per-address", fleet.DefaultEnrollRatePerAddress, "enrollment requests a minute pmd accepts from one source address (an IPv6 /64); more get 429")
}

// loadConfig reads flags, PMD_* variables and the config file. The file is required when
// required is true (serve), optional otherwise.
func loadConfig(cmd *cobra.Command, required bool) (Config, error) {
	var cfg Config
	dataDir, _ := cmd.Flags().GetString("data-dir")
	if !cmd.Flags().Changed("data-dir") {
		if env := os.Getenv("PMD_DATA_DIR"); env != "" {
			dataDir = env
		}
	}
	path, _ := cmd.Flags().GetString("config")
	explicit := path != ""
	if !explicit {
		path = filepath.Join(dataDir, ConfigFile)
		// serve needs the data dir; init may create it, but not over a file.
		if _, statErr := os.Stat(dataDir); required || statErr == nil {
			if err := checkDataDir(dataDir); err != nil {
				return cfg, err
			}
		}
		if required {
			if _, err := os.Stat(path); os.IsNotExist(err) {
				return cfg, fmt.Errorf("data dir %s is not initialised (no %s); run `pmd init --data-dir %s` first", dataDir, ConfigFile, dataDir)
			}
		}
	}
	if err := config.Load(cmd, "PMD", path, !explicit && !required, &cfg); err != nil {
		return cfg, err
	}
	cfg.DataDir = dataDir
	return cfg, cfg.Validate()
}

func newLogger(cfg Config, w io.Writer) (*slog.Logger, error) {
	return logging.New(w, cfg.LogLevel)
}

func newInitCmd(out io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create the database, master key, CA, server certificate and configs in a data dir",
		Long: `init creates a pmd installation in the data dir: the master key (0600), the
database, a root and an intermediate CA, pmd's server certificate for the names and
addresses given, pmd.yaml recording the addresses, and pmctl.yaml (0600) holding the
first admin certificate, for --admin (default: $USER when it is a valid name, else
"admin"), for the admin address. Give every further operator a certificate of their own
with pmctl admins create, so the audit log names who did what.

With --offline-root the root CA's key is written to <data-dir>/root-ca.key (0600) and
not stored in the database: move it to offline storage. pmd runs on the intermediate's
key alone; only making a new intermediate CA would need the root key.

It refuses a data dir that is already initialised unless --force, which starts over
with a new CA: every host must then enroll again.`,
		Example: "  pmd init --data-dir ./pm --server-name pm.example.com --agent-addr 0.0.0.0:8443 --admin alice",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd, false)
			if err != nil {
				return err
			}
			if w := gitWarning(cfg.DataDir); w != "" {
				fmt.Fprintln(out, "warning: "+w)
			}
			return Init(cmd.Context(), cfg, out)
		},
	}
	commonFlags(cmd.Flags())
	cmd.Flags().StringSlice("server-name", nil, "extra DNS name or IP for pmd's certificate (repeatable)")
	cmd.Flags().Bool("force", false, "replace an existing installation and its CA")
	cmd.Flags().String("admin", "", `name of the first admin, as the audit log shows it (default: $USER if valid, else "admin")`)
	cmd.Flags().Bool("offline-root", false, "write the root CA's key to <data-dir>/root-ca.key to keep offline, not into the database")
	return cmd
}

func newServeCmd(logOut io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the public, admin and agent listeners",
		Long: `serve runs pmd on an initialised data dir: public HTTP, the admin API (mTLS,
admin certificates) and the agent listener (mTLS tunnel and enrollment), on the
addresses recorded in pmd.yaml unless flags or PMD_* variables override them.`,
		Example: "  pmd serve --data-dir ./pm",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd, true)
			if err != nil {
				return err
			}
			log, err := newLogger(cfg, logOut)
			if err != nil {
				return err
			}
			if w := gitWarning(cfg.DataDir); w != "" {
				log.Warn("data dir inside a git work tree", "data_dir", cfg.DataDir, "work_tree", gitWorkTree(cfg.DataDir), "detail", w)
			}
			d, err := Open(cmd.Context(), cfg, log)
			if err != nil {
				return err
			}
			return d.Run(cmd.Context())
		},
	}
	commonFlags(cmd.Flags())
	return cmd
}
