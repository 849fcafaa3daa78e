// Package root assembles pmctl's command tree and its global flags.
package root

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/pocketmolt/pocketmolt/internal/pmctl/admins"
	"github.com/pocketmolt/pocketmolt/internal/pmctl/audit"
	"github.com/pocketmolt/pocketmolt/internal/pmctl/bots"
	"github.com/pocketmolt/pocketmolt/internal/pmctl/certs"
	"github.com/pocketmolt/pocketmolt/internal/pmctl/cmdutil"
	"github.com/pocketmolt/pocketmolt/internal/pmctl/contextcmd"
	"github.com/pocketmolt/pocketmolt/internal/pmctl/credits"
	"github.com/pocketmolt/pocketmolt/internal/pmctl/hosts"
	"github.com/pocketmolt/pocketmolt/internal/pmctl/subs"
	"github.com/pocketmolt/pocketmolt/internal/pmctl/usage"
	"github.com/pocketmolt/pocketmolt/internal/pmctl/users"
	"github.com/pocketmolt/pocketmolt/internal/version"
)

// NewCmdRoot returns the pmctl command, binding the global flags to f.
func NewCmdRoot(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pmctl <command> <subcommand> [flags]",
		Short: "Operate a PocketMolt fleet",
		Long: `pmctl talks to pmd's admin API over mutual TLS, using the admin certificate in its
config file (written by "pmd init", "pmctl admins create" or "pmd admin-cert").

Read commands print a table on a terminal, tab-separated rows without a header when
piped, and JSON or YAML with -o.`,
		Example: `  pmctl hosts list
  pmctl hosts token create edge-1
  pmctl bots list
  pmctl certs list -o json
  pmctl --context staging audit list --limit 10`,
		Version:       version.Version,
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          cmdutil.UnknownCommand,
		RunE:          func(c *cobra.Command, _ []string) error { return c.Help() },
		PersistentPreRunE: func(*cobra.Command, []string) error {
			if f.Timeout < 0 {
				return cmdutil.FlagErrorf("--timeout must not be negative")
			}
			return nil
		},
	}
	cmd.SetVersionTemplate(version.String("pmctl") + "\n")
	cmd.SetIn(f.IOStreams.In)
	cmd.SetOut(f.IOStreams.Out)
	cmd.SetErr(f.IOStreams.ErrOut)
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &cmdutil.FlagError{Err: err} })

	pf := cmd.PersistentFlags()
	pf.StringVar(&f.ConfigFlag, "config", "", "config file (default $PMCTL_CONFIG, else ${XDG_CONFIG_HOME:-~/.config}/pmctl/config.yaml)")
	pf.StringVar(&f.ContextFlag, "context", "", "context to use instead of the current one (default $PMCTL_CONTEXT)")
	pf.DurationVar(&f.Timeout, "timeout", 30*time.Second, "time limit of each request to pmd, 0 for none")

	cmd.AddCommand(
		hosts.NewCmdHosts(f),
		bots.NewCmdBots(f),
		users.NewCmdUsers(f),
		subs.NewCmdSubs(f),
		credits.NewCmdCredits(f),
		usage.NewCmdUsage(f),
		certs.NewCmdCerts(f),
		admins.NewCmdAdmins(f),
		audit.NewCmdAudit(f),
		contextcmd.NewCmdContext(f),
		newCmdVersion(f),
	)
	return cmd
}

func newCmdVersion(f *cmdutil.Factory) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print pmctl's version",
		Args:  cmdutil.NoArgs,
		Run: func(*cobra.Command, []string) {
			fmt.Fprintln(f.IOStreams.Out, version.String("pmctl"))
		},
	}
}
