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
	"github.com/pocketmolt/pocketmolt/internal/termsafe"
)

// ResetLinkOptions are the inputs of `users reset-link`.
type ResetLinkOptions struct {
	IO        *iostreams.IOStreams
	APIClient func() (*apiclient.Client, error)
	Now       func() time.Time
	Format    output.Format
	Ref       string
}

// NewCmdResetLink returns `users reset-link`.
func NewCmdResetLink(f *cmdutil.Factory, runF func(context.Context, *ResetLinkOptions) error) *cobra.Command {
	opts := &ResetLinkOptions{IO: f.IOStreams, APIClient: f.APIClient, Now: f.Now}
	cmd := &cobra.Command{
		Use:   "reset-link <email|id>",
		Short: "Make a one-time password reset link for a customer",
		Long: `Make a one-time link with which a customer sets a new password, for when no email
reaches them (pmd without SMTP) or an operator helps them by hand.

The link alone is printed on stdout, so $(pmctl users reset-link EMAIL) is the link; when
it expires is printed on stderr. Whoever holds the link can take over the account until
it is used or expires: hand it only to the customer. Each link made is in the audit log.`,
		Example: `  pmctl users reset-link alice@example.com
  link=$(pmctl users reset-link alice@example.com)
  pmctl users reset-link u-7f3a9c -o json`,
		Args:              RefArgs,
		ValidArgsFunction: Complete(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Ref = Ref(args[0])
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return resetLinkRun(cmd.Context(), opts)
		},
	}
	cmdutil.AddFormatFlag(cmd, &opts.Format)
	return cmd
}

func resetLinkRun(ctx context.Context, opts *ResetLinkOptions) error {
	c, err := opts.APIClient()
	if err != nil {
		return err
	}
	link, err := c.UserResetLink(ctx, opts.Ref)
	if err != nil {
		return fmt.Errorf("make a reset link for user %s: %w", opts.Ref, err)
	}
	if opts.Format != output.Table {
		return output.Print(opts.IO.Out, opts.IO.IsTerminal, opts.Format, link, nil)
	}
	// The URL alone, on one line, so that command substitution yields exactly the link.
	fmt.Fprintln(opts.IO.Out, termsafe.Line(link.URL))
	fmt.Fprintf(opts.IO.ErrOut, "Reset link for %s, valid until %s (%s), once. Hand it only to the customer.\n",
		opts.Ref, output.Timestamp(link.ExpiresAt), output.Ago(opts.Now(), link.ExpiresAt))
	return nil
}
