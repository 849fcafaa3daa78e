package pmagent

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/pocketmolt/pocketmolt/internal/agent"
	"github.com/pocketmolt/pocketmolt/internal/firewall"
	"github.com/pocketmolt/pocketmolt/internal/logging"
	"github.com/pocketmolt/pocketmolt/internal/runtime/docker"
)

func firewallFlags(fs *pflag.FlagSet) {
	fs.Bool("bot-firewall", true, "keep the firewall rules that let bots reach the internet but not this host, its networks or each other (false is unsafe: for a laptop)")
	fs.StringSlice("bot-egress-allow", nil, "what bots may reach anyway: CIDR[:PORT[-PORT]][/tcp|/udp], IPv6 as [CIDR]:PORT (repeatable)")
}

func newFirewallCmd(stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "firewall",
		Short: "Show, install or remove the firewall rules that fence this host's bots in",
	}
	show := &cobra.Command{
		Use:   "rules",
		Short: "Print the rules pmagent run keeps, as iptables-restore input",
		Long: `rules prints what pmagent run installs with these settings: per address family, a
chain for traffic from bots to this host and one for traffic through it, a chain that keeps
the model endpoint to each bot's own gateway, their rules, and the jumps to them from INPUT
and DOCKER-USER.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fw, _, err := firewallFor(cmd, stderr)
			if err != nil {
				return err
			}
			rules := fw.Rules()
			fmt.Fprintf(stdout, "# iptables-restore --noflush\n%s# ip6tables-restore --noflush\n%s", rules["ipv4"], rules["ipv6"])
			return nil
		},
	}
	install := &cobra.Command{
		Use:   "install",
		Short: "Install this host's bot firewall rules once, before the Engine starts",
		Long: `install puts the rules pmagent run keeps in place once and exits. The systemd unit
runs it before the Docker Engine starts at boot (a reboot loses every rule), so that no
bot container the Engine restarts is ever unfenced. It makes the Engine's DOCKER-USER
chain when the Engine has not yet; the Engine keeps it and its rules when it starts.
A host not enrolled yet has no bots and nothing to install.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := load(cmd)
			if err != nil {
				return err
			}
			if !cfg.BotFirewall {
				fmt.Fprintln(stderr, "pmagent: "+firewall.OffWarning)
				return nil
			}
			if _, err := agent.LoadState(cfg.StateDir); errors.Is(err, agent.ErrNotEnrolled) {
				fmt.Fprintln(stdout, "not enrolled yet: no bots, no rules to install")
				return nil
			}
			fw, hostID, err := firewallFor(cmd, stderr)
			if err != nil {
				return err
			}
			if err := fw.Ensure(cmd.Context()); err != nil {
				return err
			}
			in, fwd, rej := fw.Chains()
			fmt.Fprintf(stdout, "installed the bot firewall rules of host %s (chains %s, %s and %s)\n", hostID, in, fwd, rej)
			return nil
		},
	}
	remove := &cobra.Command{
		Use:   "remove",
		Short: "Remove this host's bot firewall rules",
		Long: `remove deletes the chains pmagent run keeps and the jumps to them, for a host being
retired. Stop pmagent first: while it runs it puts them back. Bots still running are
no longer fenced in.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fw, hostID, err := firewallFor(cmd, stderr)
			if err != nil {
				return err
			}
			if err := fw.Remove(cmd.Context()); err != nil {
				return err
			}
			in, fwd, rej := fw.Chains()
			fmt.Fprintf(stdout, "removed the bot firewall rules of host %s (chains %s, %s and %s)\n", hostID, in, fwd, rej)
			return nil
		},
	}
	for _, c := range []*cobra.Command{show, install, remove} {
		commonFlags(c.Flags())
		c.Flags().String("bot-subnet-pool", docker.DefaultSubnetPool.String(), "IPv4 range each bot's bridge network takes a /28 from")
		firewallFlags(c.Flags())
	}
	cmd.AddCommand(show, install, remove)
	return cmd
}

// firewallFor loads the settings and the host's identity and returns its bot firewall.
func firewallFor(cmd *cobra.Command, stderr io.Writer) (*firewall.Firewall, string, error) {
	cfg, err := load(cmd)
	if err != nil {
		return nil, "", err
	}
	log, err := logging.New(stderr, cfg.LogLevel)
	if err != nil {
		return nil, "", err
	}
	st, err := agent.LoadState(cfg.StateDir)
	if err != nil {
		return nil, "", err
	}
	allow, err := firewall.ParseRules(cfg.BotEgressAllow)
	if err != nil {
		return nil, "", fmt.Errorf("bot-egress-allow: %w", err)
	}
	pool, err := netip.ParsePrefix(cfg.BotSubnetPool)
	if err != nil {
		return nil, "", fmt.Errorf("bot-subnet-pool %q: %w", cfg.BotSubnetPool, err)
	}
	fw, err := botFirewall(st.Identity.HostID, allow, pool, log)
	return fw, st.Identity.HostID, err
}

// botFirewall is the firewall of the bots of host hostID: the operator's allowances, the bot
// subnet pool refused beyond the host, and the agent's model endpoint (runtime.ModelPort on
// each bot's own bridge gateway) open to its bot.
func botFirewall(hostID string, allow []firewall.Rule, pool netip.Prefix, log *slog.Logger) (*firewall.Firewall, error) {
	return firewall.ForBots(docker.BridgePrefix(hostID), allow, pool, log)
}
