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
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// ListOptions are the inputs of `bots list`.
type ListOptions struct {
	IO        *iostreams.IOStreams
	APIClient func() (*apiclient.Client, error)
	Now       func() time.Time
	Format    output.Format
}

// NewCmdList returns `bots list`. runF, when not nil, replaces the run so tests can stop
// before the network.
func NewCmdList(f *cmdutil.Factory, runF func(context.Context, *ListOptions) error) *cobra.Command {
	opts := &ListOptions{IO: f.IOStreams, APIClient: f.APIClient, Now: f.Now}
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List bots",
		Long: `List every bot with its host, status, health, image, uptime and memory use against
its limit. Piped output has no header and tab-separated columns, with the start time
in place of the uptime.`,
		Example: `  pmctl bots list
  pmctl bots list -o json`,
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
	bots, err := c.ListBots(ctx)
	if err != nil {
		return fmt.Errorf("list bots: %w", err)
	}
	tty := opts.IO.IsTerminal
	if len(bots) == 0 && opts.Format == output.Table && tty {
		fmt.Fprintln(opts.IO.ErrOut, "No bots yet: create one with `pmctl bots create --name <name> ...`.")
		return nil
	}
	now := opts.Now()
	table := output.Columns(bots,
		output.Column[wire.Bot]{Header: "NAME", Value: func(b wire.Bot) string { return b.Name }},
		output.Column[wire.Bot]{Header: "HOST", Value: func(b wire.Bot) string { return orDash(tty, b.HostName) }},
		output.Column[wire.Bot]{Header: "STATUS", Value: func(b wire.Bot) string { return b.Status }},
		output.Column[wire.Bot]{Header: "HEALTH", Value: func(b wire.Bot) string { return orDash(tty, b.Health) }},
		output.Column[wire.Bot]{Header: "IMAGE", Value: func(b wire.Bot) string { return orDash(tty, b.Image) }},
		output.Column[wire.Bot]{Header: "UPTIME", Value: func(b wire.Bot) string {
			switch {
			case !running(&b):
				return orDash(tty, "")
			case tty:
				return uptime(now.Sub(*b.StartedAt))
			default:
				return output.Timestamp(*b.StartedAt)
			}
		}},
		output.Column[wire.Bot]{Header: "MEM", Value: func(b wire.Bot) string { return orDash(tty, memUse(b)) }},
		output.Column[wire.Bot]{Header: "DISK", Value: func(b wire.Bot) string { return orDash(tty, diskUse(b)) }},
	)
	return output.Print(opts.IO.Out, tty, opts.Format, bots, table)
}

// memUse is "312MiB/2GiB", "312MiB" without a limit, or "" before the host reported usage.
func memUse(b wire.Bot) string {
	if b.MemoryUsage <= 0 {
		return ""
	}
	s := compactBytes(b.MemoryUsage)
	if b.Resources.MemoryBytes > 0 {
		s += "/" + compactBytes(b.Resources.MemoryBytes)
	}
	return s
}

// diskUse is "1.2GiB/10GiB", with "!" after it when over the limit, or "" before the host
// measured it.
func diskUse(b wire.Bot) string {
	if b.DiskUsage <= 0 {
		return ""
	}
	s := compactBytes(b.DiskUsage)
	if b.Resources.DiskBytes > 0 {
		s += "/" + compactBytes(b.Resources.DiskBytes)
		if b.DiskUsage > b.Resources.DiskBytes {
			s += "!"
		}
	}
	return s
}
