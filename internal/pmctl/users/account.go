package users

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/pocketmolt/pocketmolt/internal/apiclient"
	"github.com/pocketmolt/pocketmolt/internal/output"
	"github.com/pocketmolt/pocketmolt/internal/pmctl/cmdutil"
	"github.com/pocketmolt/pocketmolt/internal/pmctl/iostreams"
	"github.com/pocketmolt/pocketmolt/internal/termsafe"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// AccountOptions are the inputs of `users disable` and `users enable`.
type AccountOptions struct {
	IO        *iostreams.IOStreams
	APIClient func() (*apiclient.Client, error)
	Format    output.Format
	Ref       string
	// Yes skips the question disable asks; enable asks nothing.
	Yes bool
}

// NewCmdDisable returns `users disable`.
func NewCmdDisable(f *cmdutil.Factory, runF func(context.Context, *AccountOptions) error) *cobra.Command {
	opts := &AccountOptions{IO: f.IOStreams, APIClient: f.APIClient}
	cmd := newCmdAccount(f, opts, &cobra.Command{
		Use:   "disable <email|id>",
		Short: "Stop a customer from logging in and log them out everywhere",
		Long: `Disable a customer's account: they cannot log in, and every session they have ends at
once, so they are logged out of every browser. "pmctl users enable" lets them back in.
The change is in the audit log.

` + cmdutil.ConfirmHelp,
		Example: `  pmctl users disable alice@example.com
  pmctl users disable u-7f3a9c --yes`,
	}, disableRun, runF)
	cmdutil.AddYesFlag(cmd, &opts.Yes)
	return cmd
}

// NewCmdEnable returns `users enable`.
func NewCmdEnable(f *cmdutil.Factory, runF func(context.Context, *AccountOptions) error) *cobra.Command {
	opts := &AccountOptions{IO: f.IOStreams, APIClient: f.APIClient}
	return newCmdAccount(f, opts, &cobra.Command{
		Use:   "enable <email|id>",
		Short: "Let a disabled customer log in again",
		Long: `Enable a disabled customer's account: they can log in again with their password (or
set a new one with a link from "pmctl users reset-link"). The change is in the audit
log.`,
		Example: `  pmctl users enable alice@example.com`,
	}, enableRun, runF)
}

// newCmdAccount completes disable or enable; only the wording, the question and the call
// differ.
func newCmdAccount(f *cmdutil.Factory, opts *AccountOptions, cmd *cobra.Command, run, runF func(context.Context, *AccountOptions) error) *cobra.Command {
	cmd.Args = RefArgs
	cmd.ValidArgsFunction = Complete(f)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		opts.Ref = Ref(args[0])
		if runF != nil {
			return runF(cmd.Context(), opts)
		}
		return run(cmd.Context(), opts)
	}
	cmdutil.AddFormatFlag(cmd, &opts.Format)
	return cmd
}

func disableRun(ctx context.Context, opts *AccountOptions) error {
	question := fmt.Sprintf("Disable user %s? They are logged out everywhere and cannot log in until enabled again.", opts.Ref)
	if err := cmdutil.Confirm(opts.IO, opts.Yes, question); err != nil {
		return err
	}
	return accountCall(ctx, opts, "disable", (*apiclient.Client).DisableUser, func(u *wire.User) string {
		return fmt.Sprintf("Disabled user %s (%s): logged out everywhere; `pmctl users enable %s` lets them back in.",
			termsafe.Line(u.Email), termsafe.Line(u.ID), termsafe.Line(u.Email))
	})
}

func enableRun(ctx context.Context, opts *AccountOptions) error {
	return accountCall(ctx, opts, "enable", (*apiclient.Client).EnableUser, func(u *wire.User) string {
		return fmt.Sprintf("Enabled user %s (%s): they can log in again.", termsafe.Line(u.Email), termsafe.Line(u.ID))
	})
}

// accountCall calls do and reports the account it returns: a line on stderr for a table, the
// user on stdout as JSON or YAML otherwise.
func accountCall(ctx context.Context, opts *AccountOptions, verb string, do func(*apiclient.Client, context.Context, string) (*wire.User, error), done func(*wire.User) string) error {
	c, err := opts.APIClient()
	if err != nil {
		return err
	}
	u, err := do(c, ctx, opts.Ref)
	if err != nil {
		return fmt.Errorf("%s user %s: %w", verb, opts.Ref, err)
	}
	if opts.Format != output.Table {
		return output.Print(opts.IO.Out, opts.IO.IsTerminal, opts.Format, u, nil)
	}
	fmt.Fprintln(opts.IO.ErrOut, done(u))
	return nil
}
