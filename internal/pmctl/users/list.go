package users

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/pocketmolt/pocketmolt/internal/apiclient"
	"github.com/pocketmolt/pocketmolt/internal/output"
	"github.com/pocketmolt/pocketmolt/internal/pmctl/cmdutil"
	"github.com/pocketmolt/pocketmolt/internal/pmctl/iostreams"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// ListOptions are the inputs of `users list`.
type ListOptions struct {
	IO        *iostreams.IOStreams
	APIClient func() (*apiclient.Client, error)
	Now       func() time.Time
	Format    output.Format
}

// NewCmdList returns `users list`. runF, when not nil, replaces the run so tests can stop
// before the network.
func NewCmdList(f *cmdutil.Factory, runF func(context.Context, *ListOptions) error) *cobra.Command {
	opts := &ListOptions{IO: f.IOStreams, APIClient: f.APIClient, Now: f.Now}
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List customers",
		Long: `List every customer: their email, whether the account is enabled or disabled, the
plan and status of their current subscription, the name of their assistant, its bot
and when they signed up. Piped output has no header and tab-separated columns, with
the sign-up time in full.`,
		Example: `  pmctl users list
  pmctl users list -o json`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return listRun(cmd.Context(), opts)
		},
	}
	cmdutil.AddFormatFlag(cmd, &opts.Format)
	return cmd
}

func listRun(ctx context.Context, opts *ListOptions) error {
	c, err := opts.APIClient()
	if err != nil {
		return err
	}
	users, err := c.ListUsers(ctx)
	if err != nil {
		return fmt.Errorf("list users: %w", err)
	}
	tty := opts.IO.IsTerminal
	if len(users) == 0 && opts.Format == output.Table && tty {
		fmt.Fprintln(opts.IO.ErrOut, "No customers yet: they appear here once they sign up on pmd's public page.")
		return nil
	}
	now := opts.Now()
	table := output.Columns(users,
		output.Column[wire.User]{Header: "EMAIL", Value: func(u wire.User) string { return u.Email }},
		output.Column[wire.User]{Header: "STATUS", Value: func(u wire.User) string { return accountText(&u) }},
		output.Column[wire.User]{Header: "PLAN", Value: func(u wire.User) string { return orDash(tty, u.Plan) }},
		output.Column[wire.User]{Header: "SUBSCRIPTION", Value: func(u wire.User) string { return orDash(tty, u.Status) }},
		output.Column[wire.User]{Header: "ASSISTANT", Value: func(u wire.User) string { return orDash(tty, u.Assistant) }},
		output.Column[wire.User]{Header: "BOT", Value: func(u wire.User) string { return orDash(tty, u.BotID) }},
		output.Column[wire.User]{Header: "CREATED", Value: func(u wire.User) string {
			if tty {
				return output.Ago(now, u.CreatedAt)
			}
			return output.Timestamp(u.CreatedAt)
		}},
	)
	return output.Print(opts.IO.Out, tty, opts.Format, users, table)
}
