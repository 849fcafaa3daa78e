package bots

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

// GetOptions are the inputs of `bots get`.
type GetOptions struct {
	IO        *iostreams.IOStreams
	APIClient func() (*apiclient.Client, error)
	Now       func() time.Time
	Format    output.Format
	Ref       string
}

// NewCmdGet returns `bots get`.
func NewCmdGet(f *cmdutil.Factory, runF func(context.Context, *GetOptions) error) *cobra.Command {
	opts := &GetOptions{IO: f.IOStreams, APIClient: f.APIClient, Now: f.Now}
	cmd := &cobra.Command{
		Use:   "get <name|id>",
		Short: "Show one bot",
		Long: `Show one bot: what was asked for (desired state, image, model, limits, spec version)
and what its host last observed (status, health, progress, last error, container,
restarts, memory and disk use, observed version). Disk use is what the bot's state
and workspace take on its host, against its disk limit. The observed version catches up with the
spec version once the host has applied the latest change.`,
		Example: `  pmctl bots get alice
  pmctl bots get alice -o json`,
		Args:              cmdutil.ExactArgs(1, "missing bot name or id"),
		ValidArgsFunction: completeBots(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Ref = args[0]
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
	b, err := c.GetBot(ctx, opts.Ref)
	if err != nil {
		return fmt.Errorf("get bot %s: %w", opts.Ref, err)
	}
	return output.Print(opts.IO.Out, opts.IO.IsTerminal, opts.Format, b, botView(b, opts.Now(), opts.IO.IsTerminal))
}
