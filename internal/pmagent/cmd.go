// Package pmagent wires pmagent's commands: enroll, run and version.
package pmagent

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/pocketmolt/pocketmolt/internal/agent"
	"github.com/pocketmolt/pocketmolt/internal/config"
	"github.com/pocketmolt/pocketmolt/internal/firewall"
	"github.com/pocketmolt/pocketmolt/internal/logging"
	"github.com/pocketmolt/pocketmolt/internal/runtime/docker"
	"github.com/pocketmolt/pocketmolt/internal/version"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// Config is pmagent's configuration: flags of the same names, PMAGENT_* variables, and keys
// of the config file (default /etc/pocketmolt/pmagent.yaml, read if present).
type Config struct {
	StateDir   string        `mapstructure:"state-dir"`
	Server     string        `mapstructure:"server"`
	ServerName string        `mapstructure:"server-name"`
	Token      string        `mapstructure:"token"`
	TokenFile  string        `mapstructure:"token-file"`
	DockerHost string        `mapstructure:"docker-host"`
	MaxBackoff time.Duration `mapstructure:"max-backoff"`
	// CapacityBots and CapacityMemoryMiB declare what the host offers to bots; 0 derives
	// them from its memory.
	CapacityBots      int           `mapstructure:"capacity-bots"`
	CapacityMemoryMiB int64         `mapstructure:"capacity-memory-mib"`
	BotInterval       time.Duration `mapstructure:"bot-interval"`
	BotSubnetPool     string        `mapstructure:"bot-subnet-pool"`
	// BotFirewall keeps the rules that fence bots in; BotEgressAllow are what bots may reach
	// anyway (firewall.ParseRule's syntax).
	BotFirewall    bool     `mapstructure:"bot-firewall"`
	BotEgressAllow []string `mapstructure:"bot-egress-allow"`
	// BotUIDBase is the first of the agent.BotUIDRange uids its bots get, one each.
	BotUIDBase int `mapstructure:"bot-uid-base"`
	// BotSharedUID runs every bot as pmagent's own user, for an agent that cannot chown.
	BotSharedUID bool   `mapstructure:"bot-shared-uid"`
	LogLevel     string `mapstructure:"log-level"`
	Force        bool   `mapstructure:"force"`
}

// DefaultConfigFile is read when --config is not given, if it exists.
const DefaultConfigFile = "/etc/pocketmolt/pmagent.yaml"

// Main runs pmagent with args and returns its exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := NewCommand(stdout, stderr)
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintf(stderr, "pmagent: %v\n", err)
		return 1
	}
	return 0
}

// NewCommand builds pmagent's command tree.
func NewCommand(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "pmagent",
		Short:         "PocketMolt host agent",
		Long:          "pmagent runs on every host: it dials pmd over mTLS, keeps a yamux tunnel open and runs what pmd asks.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(newEnrollCmd(stdout, stderr), newRunCmd(stderr), newFirewallCmd(stdout, stderr), &cobra.Command{
		Use:   "version",
		Short: "Print pmagent's version",
		Args:  cobra.NoArgs,
		Run:   func(*cobra.Command, []string) { fmt.Fprintln(stdout, version.String("pmagent")) },
	})
	return root
}

func commonFlags(fs *pflag.FlagSet) {
	fs.String("config", "", "config file (default "+DefaultConfigFile+" if it exists)")
	fs.String("state-dir", "/var/lib/pmagent", "directory holding this host's identity, key and certificates")
	fs.String("log-level", "info", "log level: debug, info, warn or error")
}

func load(cmd *cobra.Command) (Config, error) {
	var cfg Config
	path, _ := cmd.Flags().GetString("config")
	optional := path == ""
	if optional {
		path = DefaultConfigFile
	}
	if err := config.Load(cmd, "PMAGENT", path, optional, &cfg); err != nil {
		return cfg, err
	}
	if cfg.StateDir == "" {
		return cfg, fmt.Errorf("--state-dir is empty")
	}
	if _, err := logging.ParseLevel(cfg.LogLevel); err != nil {
		return cfg, err
	}
	return cfg, nil
}

func newEnrollCmd(stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "enroll",
		Short: "Join this host to pmd with a one-time token",
		Long: `enroll makes this host's key, pins pmd's root CA by the fingerprint the token
carries, sends pmd a certificate request with the token, and writes the host's identity,
key and certificate into the state dir. The key never leaves the host. When pmd is taking
enrollments slower than they come (429), it waits as pmd says and tries again.`,
		Example: "  pmagent enroll --server pm.example.com:8443 --token pmt1.… --state-dir /var/lib/pmagent",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := load(cmd)
			if err != nil {
				return err
			}
			tok := cfg.Token
			if cfg.TokenFile != "" {
				b, err := os.ReadFile(cfg.TokenFile)
				if err != nil {
					return fmt.Errorf("--token-file: %w", err)
				}
				tok = strings.TrimSpace(string(b))
			}
			if tok == "" {
				return fmt.Errorf("give the enrollment token with --token, --token-file or PMAGENT_TOKEN (pmctl hosts token create <name> makes one)")
			}
			if cfg.Server == "" {
				return fmt.Errorf("give pmd's agent address with --server host:port")
			}
			log, err := logging.New(stderr, cfg.LogLevel)
			if err != nil {
				return err
			}
			st, err := agent.Enroll(cmd.Context(), agent.EnrollOptions{
				Server: cfg.Server, ServerName: cfg.ServerName, Token: tok, StateDir: cfg.StateDir, Force: cfg.Force, Log: log,
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "enrolled as host %s (%s); start it with: pmagent run --state-dir %s\n", st.Identity.HostName, st.Identity.HostID, cfg.StateDir)
			return nil
		},
	}
	commonFlags(cmd.Flags())
	cmd.Flags().String("server", "", "pmd's agent address, host:port")
	cmd.Flags().String("server-name", "", "name to check pmd's certificate against (default: the host part of --server)")
	cmd.Flags().String("token", "", "one-time enrollment token (prefer --token-file or PMAGENT_TOKEN: flags show in ps)")
	cmd.Flags().String("token-file", "", "file holding the enrollment token")
	cmd.Flags().Bool("force", false, "enroll again over an existing identity")
	return cmd
}

func newRunCmd(stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Connect to pmd and stay connected",
		Long: `run dials pmd with this host's certificate, keeps the tunnel open, sends
heartbeats, renews the certificate before it expires, and reconnects forever with
jittered exponential backoff. SIGINT or SIGTERM stops it.

Before it creates or starts any bot container it installs the firewall rules that let
bots reach the internet but not this host, its networks or each other, and it keeps
them (see pmagent firewall). That needs CAP_NET_ADMIN; --bot-firewall=false turns it off,
which is unsafe.`,
		Example: "  pmagent run --state-dir /var/lib/pmagent",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := load(cmd)
			if err != nil {
				return err
			}
			allow, err := firewall.ParseRules(cfg.BotEgressAllow)
			if err != nil {
				return fmt.Errorf("bot-egress-allow: %w", err)
			}
			log, err := logging.New(stderr, cfg.LogLevel)
			if err != nil {
				return err
			}
			st, err := agent.LoadState(cfg.StateDir)
			if err != nil {
				return err
			}
			dk, err := docker.New(cfg.DockerHost)
			if err != nil {
				return err
			}
			defer dk.Close()
			pool, err := netip.ParsePrefix(cfg.BotSubnetPool)
			if err == nil {
				err = dk.SetSubnetPool(pool)
			}
			if err != nil {
				return fmt.Errorf("bot-subnet-pool %q: %w", cfg.BotSubnetPool, err)
			}
			if cfg.CapacityBots < 0 || cfg.CapacityMemoryMiB < 0 {
				return fmt.Errorf("capacity-bots and capacity-memory-mib must not be negative")
			}
			a := agent.New(st, dk, version.Version, log)
			a.MaxBackoff = cfg.MaxBackoff
			a.Facts.Capacity = wire.Capacity{Bots: cfg.CapacityBots, MemoryBytes: cfg.CapacityMemoryMiB << 20}
			a.Bots.SetInterval(cfg.BotInterval)
			if !cfg.BotFirewall {
				a.Log.Warn(firewall.OffWarning)
			} else {
				fw, err := botFirewall(st.Identity.HostID, allow, pool, a.Log)
				if err != nil {
					return err
				}
				a.Bots.SetFirewall(fw, 0)
			}
			if err := a.Bots.SetUIDBase(cfg.BotUIDBase); err != nil {
				return fmt.Errorf("bot-uid-base: %w", err)
			}
			if err := a.Bots.SetSharedUID(cfg.BotSharedUID); err != nil {
				return err
			}
			if cfg.BotSharedUID {
				log.Warn("bot-shared-uid is on: every bot runs as pmagent's own user and can read the other bots' files and secrets; use it on a laptop only")
			}
			return a.Run(cmd.Context())
		},
	}
	commonFlags(cmd.Flags())
	cmd.Flags().String("docker-host", "", "Docker Engine address (default: DOCKER_HOST or the local socket)")
	cmd.Flags().Duration("max-backoff", agent.DefaultMaxBackoff, "longest wait between reconnects")
	cmd.Flags().Int("capacity-bots", 0, "how many bots this host offers room for (0: host memory less 1 GiB, over 2 GiB a bot)")
	cmd.Flags().Int64("capacity-memory-mib", 0, "memory this host offers to bots, in MiB (0: host memory less 1 GiB)")
	cmd.Flags().Duration("bot-interval", agent.DefaultBotInterval, "how often bots are converged and their gateways probed")
	cmd.Flags().String("bot-subnet-pool", docker.DefaultSubnetPool.String(), "IPv4 range each bot's bridge network takes a /28 from")
	firewallFlags(cmd.Flags())
	cmd.Flags().Int("bot-uid-base", agent.DefaultBotUIDBase, fmt.Sprintf("first of the %d uids this agent gives its bots, one each (two agents on one machine need ranges apart)", agent.BotUIDRange))
	cmd.Flags().Bool("bot-shared-uid", false, "INSECURE: run every bot as pmagent's own user, for an agent that can neither run as root nor chown (a laptop); bots can then read each other's secrets")
	return cmd
}
