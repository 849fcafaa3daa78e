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
)

// GetOptions are the inputs of `users get`.
type GetOptions struct {
	IO        *iostreams.IOStreams
	APIClient func() (*apiclient.Client, error)
	Now       func() time.Time
	Format    output.Format
	Ref       string
}

// NewCmdGet returns `users get`.
func NewCmdGet(f *cmdutil.Factory, runF func(context.Context, *GetOptions) error) *cobra.Command {
	opts := &GetOptions{IO: f.IOStreams, APIClient: f.APIClient, Now: f.Now}
	cmd := &cobra.Command{
		Use:   "get <email|id>",
		Short: "Show one customer",
		Long: `Show one customer: their email and user id, whether the account is enabled, their
current subscription's status and plan, their assistant and its bot, their Stripe
customer id and when they signed up.`,
		Example: `  pmctl users get alice@example.com
  pmctl users get u-7f3a9c -o json`,
		Args:              RefArgs,
		ValidArgsFunction: Complete(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Ref = Ref(args[0])
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return getRun(cmd.Context(), opts)
		},
	}
	cmdutil.AddFormatFlag(cmd, &opts.Format)
	return cmd
}

func getRun(ctx context.Context, opts *GetOptions) error {
	c, err := opts.APIClient()
	if err != nil {
		return err
	}
	u, err := c.GetUser(ctx, opts.Ref)
	if err != nil {
		return fmt.Errorf("get user %s: %w", opts.Ref, err)
	}
	return output.Print(opts.IO.Out, opts.IO.IsTerminal, opts.Format, u, userView(u, opts.Now(), opts.IO.IsTerminal))
}
