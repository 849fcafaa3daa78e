package usage

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pocketmolt/pocketmolt/internal/apiclient"
	"github.com/pocketmolt/pocketmolt/internal/output"
	"github.com/pocketmolt/pocketmolt/internal/pmctl/cmdutil"
	"github.com/pocketmolt/pocketmolt/internal/pmctl/iostreams"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// TopOptions are the inputs of `usage top`.
type TopOptions struct {
	IO        *iostreams.IOStreams
	APIClient func() (*apiclient.Client, error)
	Format    output.Format
	Period    string
	Limit     int
}

// NewCmdTop returns `usage top`. runF, when not nil, replaces the run so tests can stop
// before the network.
func NewCmdTop(f *cmdutil.Factory, runF func(context.Context, *TopOptions) error) *cobra.Command {
	opts := &TopOptions{IO: f.IOStreams, APIClient: f.APIClient}
	cmd := &cobra.Command{
		Use:   "top [--period 7d] [--limit 20]",
		Short: "Show the largest spenders on model calls",
		Long: fmt.Sprintf(`Show who spent most on model calls over a period: one row per owner, bot and model,
largest cost first — the owner (a customer's email, or operator:<name>), the bot, the
model, the calls and how many of them failed, the input and output tokens, the tokens
read from and written to the provider's prompt cache, the cost in credits and what of
it was debited from the customer's credits. On a terminal the last line is the total,
and calls whose tokens were estimated are counted in brackets.

The period ends now and reaches back --period (days or hours, up to 366d); --limit
bounds the rows (1 to %d). Piped output has no header and tab-separated columns.
pmd records each read in the audit log under your admin name.`, maxLimit),
		Example: `  pmctl usage top
  pmctl usage top --period 24h --limit 5
  pmctl usage top --period 30d -o json`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Period = strings.TrimSpace(opts.Period)
			if err := checkPeriod(opts.Period); err != nil {
				return err
			}
			if opts.Limit < 1 || opts.Limit > maxLimit {
				return cmdutil.FlagErrorf("--limit %d: give a number of rows from 1 to %d", opts.Limit, maxLimit)
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return topRun(cmd.Context(), opts)
		},
	}
	addPeriodFlag(cmd, &opts.Period, "7d")
	cmd.Flags().IntVar(&opts.Limit, "limit", 20, fmt.Sprintf("at most this many rows, 1 to %d", maxLimit))
	cmdutil.AddFormatFlag(cmd, &opts.Format)
	return cmd
}

func topRun(ctx context.Context, opts *TopOptions) error {
	c, err := opts.APIClient()
	if err != nil {
		return err
	}
	rep, err := c.UsageTop(ctx, opts.Period, opts.Limit)
	if err != nil {
		return fmt.Errorf("usage top: %w", err)
	}
	if len(rep.Rows) == 0 && opts.Format == output.Table && opts.IO.IsTerminal {
		fmt.Fprintf(opts.IO.ErrOut, "No model calls since %s.\n", rep.Since.UTC().Format(time.DateTime+" UTC"))
		return nil
	}
	first := []output.Column[wire.UsageRow]{
		{Header: "OWNER", Value: owner},
		{Header: "BOT", Value: func(r wire.UsageRow) string { return r.BotName }},
	}
	return printReport(opts.IO, opts.Format, rep, first, func(t *wire.UsageRow) { t.Email = "total" })
}
