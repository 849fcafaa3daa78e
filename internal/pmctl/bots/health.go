package bots

import (
	"context"
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/pocketmolt/pocketmolt/internal/apiclient"
	"github.com/pocketmolt/pocketmolt/internal/output"
	"github.com/pocketmolt/pocketmolt/internal/pmctl/cmdutil"
	"github.com/pocketmolt/pocketmolt/internal/pmctl/iostreams"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// HealthOptions are the inputs of `bots health`.
type HealthOptions struct {
	IO        *iostreams.IOStreams
	APIClient func() (*apiclient.Client, error)
	Format    output.Format
	Ref       string
}

// NewCmdHealth returns `bots health`.
func NewCmdHealth(f *cmdutil.Factory, runF func(context.Context, *HealthOptions) error) *cobra.Command {
	opts := &HealthOptions{IO: f.IOStreams, APIClient: f.APIClient}
	cmd := &cobra.Command{
		Use:   "health <name|id>",
		Short: "Show a bot's gateway probes",
		Long: `Show the last answers of a bot's gateway probes: /startupz (started), /healthz (live)
and /readyz (ready to serve, channels included). STATUS is the HTTP status, or "error"
when the probe could not be made.`,
		Example: `  pmctl bots health alice
  pmctl bots health alice -o json`,
		Args:              cmdutil.ExactArgs(1, "missing bot name or id"),
		ValidArgsFunction: completeBots(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Ref = args[0]
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return healthRun(cmd.Context(), opts)
		},
	}
	cmdutil.AddFormatFlag(cmd, &opts.Format)
	return cmd
}

// probeRow is one line of the health table.
type probeRow struct {
	name string
	wire.Probe
}

func healthRun(ctx context.Context, opts *HealthOptions) error {
	c, err := opts.APIClient()
	if err != nil {
		return err
	}
	p, err := c.BotHealth(ctx, opts.Ref)
	if err != nil {
		return fmt.Errorf("health of bot %s: %w", opts.Ref, err)
	}
	rows := []probeRow{{"startupz", p.Startupz}, {"healthz", p.Healthz}, {"readyz", p.Readyz}}
	table := output.Columns(rows,
		output.Column[probeRow]{Header: "PROBE", Value: func(r probeRow) string { return r.name }},
		output.Column[probeRow]{Header: "STATUS", Value: func(r probeRow) string {
			if r.Status == 0 {
				return "error"
			}
			return strconv.Itoa(r.Status)
		}},
		output.Column[probeRow]{Header: "BODY", Value: func(r probeRow) string {
			if r.Status == 0 {
				return r.Error
			}
			return r.Body
		}},
	)
	return output.Print(opts.IO.Out, opts.IO.IsTerminal, opts.Format, p, table)
}
