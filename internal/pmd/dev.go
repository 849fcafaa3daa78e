package pmd

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/pocketmolt/pocketmolt/internal/agent"
	"github.com/pocketmolt/pocketmolt/internal/firewall"
	"github.com/pocketmolt/pocketmolt/internal/runtime/docker"
	"github.com/pocketmolt/pocketmolt/internal/standin"
	"github.com/pocketmolt/pocketmolt/internal/standinprovider"
	"github.com/pocketmolt/pocketmolt/internal/version"
)

// devHost is the name of the agent pmd dev runs beside itself.
const devHost = "local"

func newDevCmd(out, logOut io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run everything on this machine: init if needed, serve, and a local agent",
		Long: `dev is pmd for a laptop. It initialises the data dir if it is new, serves pmd,
and runs an agent in the same process, enrolled as host "local" (state in
<data-dir>/agent) and connected to the local Docker Engine. It prints the addresses
and the pmctl config path; Ctrl-C stops it all.

Each bot runs as a uid of its own, which needs pmd dev to run as root (or with
CAP_CHOWN, CAP_FOWNER and CAP_DAC_OVERRIDE); otherwise bots fail, saying so.
--bot-shared-uid runs them as your own user instead, without isolation between them.

With --bot-image pocketmolt/standin-gateway:dev (the stand-in gateway, for offline demos)
pmd dev also serves a stand-in Anthropic and OpenAI model provider on loopback and makes it
every provider's upstream, with platform keys of its own (written to the data dir) where none
are configured: chat, metering and credits then work end to end without the internet.`,
		Example: "  pmd dev\n  pmctl --config ./pm/pmctl.yaml hosts list",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd, false)
			if err != nil {
				return err
			}
			return Dev(cmd.Context(), cfg, out, logOut)
		},
	}
	commonFlags(cmd.Flags())
	cmd.Flags().Bool("bot-firewall", true, "keep the firewall rules that let the local agent's bots reach the internet but not this machine, its networks or each other (needs root or CAP_NET_ADMIN; false is unsafe)")
	cmd.Flags().StringSlice("bot-egress-allow", nil, "what the local agent's bots may reach anyway: CIDR[:PORT[-PORT]][/tcp|/udp] (repeatable)")
	cmd.Flags().Bool("bot-shared-uid", false, "INSECURE: run every bot as your own user, when pmd dev runs neither as root nor with CAP_CHOWN; bots can then read each other's secrets")
	cmd.Flags().Set("billing-test-mode", "true")
	cmd.Flags().Lookup("billing-test-mode").DefValue = "true"
	cmd.Flags().Set("agent-addr", "127.0.0.1:8443")
	cmd.Flags().Lookup("agent-addr").DefValue = "127.0.0.1:8443"
	return cmd
}

// standInModels serves the stand-in model provider on loopback and makes it every
// provider's upstream, with platform keys of its own when none are configured, so that the
// offline demo with the stand-in gateway shows chat, metering and credits end to end. The
// keys it writes live in the data dir, beside the master key.
func standInModels(ctx context.Context, cfg *Config, log *slog.Logger) (*standinprovider.Server, error) {
	p, err := standinprovider.Start(ctx, "127.0.0.1:0", standinprovider.Options{Log: log})
	if err != nil {
		return nil, fmt.Errorf("stand-in model provider: %w", err)
	}
	cfg.AnthropicBaseURL, cfg.OpenAIBaseURL = p.URL(), p.URL()+"/v1"
	for _, k := range []struct {
		file *string
		name string
	}{{&cfg.AnthropicAPIKeyFile, "anthropic"}, {&cfg.OpenAIAPIKeyFile, "openai"}} {
		if *k.file != "" {
			continue
		}
		*k.file = filepath.Join(cfg.DataDir, "standin-"+k.name+"-key")
		if _, err := os.Stat(*k.file); errors.Is(err, os.ErrNotExist) {
			if err := os.WriteFile(*k.file, []byte("sk-standin-"+k.name+"-"+randomHex(16)+"\n"), 0o600); err != nil {
				p.Close()
				return nil, fmt.Errorf("stand-in model key: %w", err)
			}
		}
	}
	return p, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Dev initialises cfg.DataDir if needed, serves pmd, and runs a local agent until ctx ends.
// It warns on out when the data dir is inside a git work tree.
func Dev(ctx context.Context, cfg Config, out, logOut io.Writer) error {
	if w := gitWarning(cfg.DataDir); w != "" {
		fmt.Fprintln(out, "warning: "+w)
	}
	if ok, _ := Initialised(cfg.DataDir); !ok {
		if err := Init(ctx, cfg, out); err != nil {
			return err
		}
	}
	log, err := newLogger(cfg, logOut)
	if err != nil {
		return err
	}
	var provider *standinprovider.Server
	if cfg.BotImage == standin.Image {
		if provider, err = standInModels(ctx, &cfg, log.With("component", "standin-provider")); err != nil {
			return err
		}
		defer provider.Close()
	}
	d, err := Open(ctx, cfg, log.With("component", "pmd"))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return d.Run(ctx) })

	stateDir := filepath.Join(cfg.DataDir, "agent")
	st, err := agent.LoadState(stateDir)
	if errors.Is(err, agent.ErrNotEnrolled) || err != nil && !dirExists(stateDir) {
		tok, terr := d.Fleet.CreateToken(ctx, "pmd:dev", devHost, 0)
		if terr != nil {
			cancel()
			g.Wait()
			return terr
		}
		st, err = agent.Enroll(ctx, agent.EnrollOptions{
			Server: dialAddr(d.AgentAddr), ServerName: "localhost", Token: tok.Token, StateDir: stateDir, Log: log,
		})
	}
	if err != nil {
		cancel()
		g.Wait()
		return fmt.Errorf("local agent: %w", err)
	}
	dk, err := docker.New("")
	if err != nil {
		cancel()
		g.Wait()
		return err
	}
	defer dk.Close()
	a := agent.New(st, dk, version.Version, log.With("component", "agent"))
	if cfg.BotFirewall {
		allow, _ := firewall.ParseRules(cfg.BotEgressAllow) // checked by Validate
		fw, err := firewall.ForBots(docker.BridgePrefix(st.Identity.HostID), allow, docker.DefaultSubnetPool, a.Log)
		if err != nil {
			cancel()
			g.Wait()
			return err
		}
		a.Bots.SetFirewall(fw, 0)
	} else {
		a.Log.Warn(firewall.OffWarning)
	}
	if err := a.Bots.SetSharedUID(cfg.BotSharedUID); err != nil {
		cancel()
		g.Wait()
		return err
	}
	if cfg.BotSharedUID {
		log.Warn("bot-shared-uid is on: every bot runs as your own user and can read the other bots' files and secrets")
	}
	g.Go(func() error { return a.Run(ctx) })

	billingMode := "Stripe"
	switch {
	case d.Billing.TestMode():
		billingMode = "test billing: Subscribe activates a plan at once, nobody is charged"
	case cfg.Stripe.SecretKey == "" && cfg.Stripe.SecretKeyFile == "":
		billingMode = "no online sales: give plans with pmctl users grant"
	}
	fmt.Fprintf(out, `pmd dev is running
  customers: %s   (%s)
  admin:     https://%s   pmctl --config %s hosts list
  agents:    %s   local agent %q, state in %s
`, d.PublicURL, billingMode, d.AdminAddr, filepath.Join(cfg.DataDir, CtlConfigFile), d.AgentAddr, st.Identity.HostName, stateDir)
	if d.MetricsAddr != "" {
		fmt.Fprintf(out, "  metrics:   http://%s/metrics\n", d.MetricsAddr)
	}
	if provider != nil {
		fmt.Fprintf(out, "  models:    %s   stand-in Anthropic and OpenAI provider, every bot's upstream\n", provider.URL())
	}
	fmt.Fprintln(out, "Ctrl-C stops it.")
	return g.Wait()
}
