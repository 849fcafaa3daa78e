package hosts

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/pocketmolt/pocketmolt/internal/apiclient"
	"github.com/pocketmolt/pocketmolt/internal/pmctl/cmdutil"
	"github.com/pocketmolt/pocketmolt/internal/pmctl/iostreams"
)

// RemoveOptions are the inputs of `hosts remove`.
type RemoveOptions struct {
	IO        *iostreams.IOStreams
	APIClient func() (*apiclient.Client, error)
	Ref       string
	Yes       bool
}

// NewCmdRemove returns `hosts remove`.
func NewCmdRemove(f *cmdutil.Factory, runF func(context.Context, *RemoveOptions) error) *cobra.Command {
	opts := &RemoveOptions{IO: f.IOStreams, APIClient: f.APIClient}
	cmd := &cobra.Command{
		Use:     "remove <name|id>",
		Aliases: []string{"rm"},
		Short:   "Delete a host record",
		Long: `Delete a host record from pmd.

` + cmdutil.ConfirmHelp,
		Example:           `  pmctl hosts remove edge-1 --yes`,
		Args:              cmdutil.ExactArgs(1, "missing host name or id"),
		ValidArgsFunction: completeHosts(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Ref = args[0]
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return removeRun(cmd.Context(), opts)
		},
	}
	cmdutil.AddYesFlag(cmd, &opts.Yes)
	return cmd
}

func removeRun(ctx context.Context, opts *RemoveOptions) error {
	if err := cmdutil.Confirm(opts.IO, opts.Yes, fmt.Sprintf("Remove host %s?", opts.Ref)); err != nil {
		return err
	}
	c, err := opts.APIClient()
	if err != nil {
		return err
	}
	if err := c.RemoveHost(ctx, opts.Ref); err != nil {
		return fmt.Errorf("remove host %s: %w", opts.Ref, err)
	}
	fmt.Fprintf(opts.IO.ErrOut, "Removed host %s.\n", opts.Ref)
	return nil
}
