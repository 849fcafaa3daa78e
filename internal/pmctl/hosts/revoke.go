package hosts

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/pocketmolt/pocketmolt/internal/apiclient"
	"github.com/pocketmolt/pocketmolt/internal/output"
	"github.com/pocketmolt/pocketmolt/internal/pmctl/cmdutil"
	"github.com/pocketmolt/pocketmolt/internal/pmctl/iostreams"
)

// RevokeOptions are the inputs of `hosts revoke`.
type RevokeOptions struct {
	IO        *iostreams.IOStreams
	APIClient func() (*apiclient.Client, error)
	Format    output.Format
	Ref       string
	Yes       bool
}

// NewCmdRevoke returns `hosts revoke`.
func NewCmdRevoke(f *cmdutil.Factory, runF func(context.Context, *RevokeOptions) error) *cobra.Command {
	opts := &RevokeOptions{IO: f.IOStreams, APIClient: f.APIClient}
	cmd := &cobra.Command{
		Use:   "revoke <name|id>",
		Short: "Revoke a host's certificates",
		Long: `Revoke every certificate of a host and close its tunnel. The host record stays, with
status revoked; the machine must enroll again with a new token to come back.

` + cmdutil.ConfirmHelp,
		Example: `  pmctl hosts revoke edge-1
  pmctl hosts revoke edge-1 --yes`,
		Args:              cmdutil.ExactArgs(1, "missing host name or id"),
		ValidArgsFunction: completeHosts(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Ref = args[0]
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return revokeRun(cmd.Context(), opts)
		},
	}
	cmdutil.AddYesFlag(cmd, &opts.Yes)
	cmdutil.AddFormatFlag(cmd, &opts.Format)
	return cmd
}

func revokeRun(ctx context.Context, opts *RevokeOptions) error {
	if err := cmdutil.Confirm(opts.IO, opts.Yes, fmt.Sprintf("Revoke host %s? It will be disconnected and must enroll again.", opts.Ref)); err != nil {
		return err
	}
	c, err := opts.APIClient()
	if err != nil {
		return err
	}
	h, err := c.RevokeHost(ctx, opts.Ref)
	if err != nil {
		return fmt.Errorf("revoke host %s: %w", opts.Ref, err)
	}
	if opts.Format != output.Table {
		return output.Print(opts.IO.Out, opts.IO.IsTerminal, opts.Format, h, nil)
	}
	fmt.Fprintf(opts.IO.ErrOut, "Revoked host %s (%s).\n", h.Name, h.ID)
	return nil
}
