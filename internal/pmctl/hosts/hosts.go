// Package hosts implements `pmctl hosts`: the machines that run bots, their enrollment tokens,
// revocation and removal.
package hosts

import (
	"github.com/spf13/cobra"

	"github.com/pocketmolt/pocketmolt/internal/pmctl/cmdutil"
)

// NewCmdHosts returns the `hosts` noun with its verbs.
func NewCmdHosts(f *cmdutil.Factory) *cobra.Command {
	cmd := cmdutil.Group(&cobra.Command{
		Use:   "hosts <command>",
		Short: "Manage hosts",
		Long: `Manage the hosts that run bots.

A host joins with a one-time enrollment token: create one with "pmctl hosts token create",
then run the printed "pmagent enroll" command on the machine.`,
		Example: `  pmctl hosts list
  pmctl hosts token create edge-1 --ttl 30m
  pmctl hosts get edge-1 -o yaml`,
	})
	cmd.AddCommand(
		NewCmdList(f, nil),
		NewCmdGet(f, nil),
		newCmdToken(f),
		NewCmdRevoke(f, nil),
		NewCmdRemove(f, nil),
	)
	return cmd
}

// completeHosts offers host names for the first argument.
func completeHosts(f *cmdutil.Factory) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		c, err := f.APIClient()
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		hosts, err := c.ListHosts(cmd.Context())
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		out := make([]cobra.Completion, 0, len(hosts))
		for _, h := range hosts {
			out = append(out, cobra.CompletionWithDesc(h.Name, h.Status))
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

// orDash shows an empty cell as "-" on a terminal and leaves it empty for scripts.
func orDash(tty bool, s string) string {
	if s == "" && tty {
		return "-"
	}
	return s
}
