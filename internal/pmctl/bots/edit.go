package bots

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/pocketmolt/pocketmolt/internal/apiclient"
	"github.com/pocketmolt/pocketmolt/internal/output"
	"github.com/pocketmolt/pocketmolt/internal/pmctl/cmdutil"
	"github.com/pocketmolt/pocketmolt/internal/pmctl/iostreams"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// EditOptions are the inputs of `bots edit`.
type EditOptions struct {
	IO        *iostreams.IOStreams
	APIClient func() (*apiclient.Client, error)
	Format    output.Format
	Ref       string
	Disk      int64
}

// NewCmdEdit returns `bots edit`.
func NewCmdEdit(f *cmdutil.Factory, runF func(context.Context, *EditOptions) error) *cobra.Command {
	opts := &EditOptions{IO: f.IOStreams, APIClient: f.APIClient}
	var disk cmdutil.SizeFlag
	cmd := &cobra.Command{
		Use:   "edit <name|id> --disk <size>",
		Short: "Change a bot's limits",
		Long: `Change a bot's disk limit: what its state and workspace may take on its host. The host
applies it without restarting the bot; a bot its agent stopped for being over its old
limit starts again once it fits under the new one.`,
		Example: `  pmctl bots edit alice --disk 20GiB`,
		Args:    cmdutil.ExactArgs(1, "missing bot name or id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Ref, opts.Disk = args[0], int64(disk)
			if opts.Disk == 0 {
				return cmdutil.FlagErrorf("give what to change: --disk")
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return editRun(cmd.Context(), opts)
		},
		ValidArgsFunction: completeBots(f),
	}
	cmd.Flags().Var(&disk, "disk", "disk limit of the bot's state and workspace, e.g. 20GiB")
	cmdutil.AddFormatFlag(cmd, &opts.Format)
	return cmd
}

func editRun(ctx context.Context, opts *EditOptions) error {
	c, err := opts.APIClient()
	if err != nil {
		return err
	}
	b, err := c.EditBot(ctx, opts.Ref, wire.EditBotRequest{DiskBytes: opts.Disk})
	if err != nil {
		return fmt.Errorf("edit bot %s: %w", opts.Ref, err)
	}
	if opts.Format != output.Table {
		return output.Print(opts.IO.Out, opts.IO.IsTerminal, opts.Format, b, nil)
	}
	fmt.Fprintf(opts.IO.ErrOut, "Bot %s (%s): disk limit %s.\n", b.Name, b.ID, output.Bytes(uint64(b.Resources.DiskBytes)))
	return nil
}
