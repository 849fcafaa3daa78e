package bots

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/pocketmolt/pocketmolt/internal/apiclient"
	"github.com/pocketmolt/pocketmolt/internal/output"
	"github.com/pocketmolt/pocketmolt/internal/pmctl/cmdutil"
	"github.com/pocketmolt/pocketmolt/internal/pmctl/iostreams"
)

// DeleteOptions are the inputs of `bots delete`.
type DeleteOptions struct {
	IO        *iostreams.IOStreams
	APIClient func() (*apiclient.Client, error)
	Format    output.Format
	Ref       string
	Purge     bool
	Yes       bool
}

// NewCmdDelete returns `bots delete`.
func NewCmdDelete(f *cmdutil.Factory, runF func(context.Context, *DeleteOptions) error) *cobra.Command {
	opts := &DeleteOptions{IO: f.IOStreams, APIClient: f.APIClient}
	cmd := &cobra.Command{
		Use:     "delete <name|id>",
		Aliases: []string{"rm"},
		Short:   "Delete a bot",
		Long: `Delete a bot. pmd marks it deleting and its host removes the container in the
background. The bot's workspace (its memory, sessions and files) stays on the host
unless --purge is given, which deletes it for good.

` + cmdutil.ConfirmHelp,
		Example: `  pmctl bots delete alice
  pmctl bots delete alice --purge --yes`,
		Args:              cmdutil.ExactArgs(1, "missing bot name or id"),
		ValidArgsFunction: completeBots(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Ref = args[0]
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return deleteRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.Purge, "purge", false, "delete the bot's workspace too")
	cmdutil.AddYesFlag(cmd, &opts.Yes)
	cmdutil.AddFormatFlag(cmd, &opts.Format)
	return cmd
}

func deleteRun(ctx context.Context, opts *DeleteOptions) error {
	question := fmt.Sprintf("Delete bot %s? Its workspace is kept (--purge deletes it too).", opts.Ref)
	if opts.Purge {
		question = fmt.Sprintf("Delete bot %s and, with --purge, its workspace? Its memory and sessions are lost for good.", opts.Ref)
	}
	if err := cmdutil.Confirm(opts.IO, opts.Yes, question); err != nil {
		return err
	}
	c, err := opts.APIClient()
	if err != nil {
		return err
	}
	b, err := c.DeleteBot(ctx, opts.Ref, opts.Purge)
	if err != nil {
		return fmt.Errorf("delete bot %s: %w", opts.Ref, err)
	}
	if opts.Format != output.Table {
		return output.Print(opts.IO.Out, opts.IO.IsTerminal, opts.Format, b, nil)
	}
	what := "the workspace is kept"
	if opts.Purge {
		what = "the workspace is deleted too"
	}
	fmt.Fprintf(opts.IO.ErrOut, "Deleting bot %s (%s) in the background; %s.\n", b.Name, b.ID, what)
	return nil
}
