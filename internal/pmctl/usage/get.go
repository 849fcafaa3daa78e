package usage

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
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// GetOptions are the inputs of `usage get`.
type GetOptions struct {
	IO        *iostreams.IOStreams
	APIClient func() (*apiclient.Client, error)
	Format    output.Format
	Ref       string
	Period    string
}

// NewCmdGet returns `usage get`.
func NewCmdGet(f *cmdutil.Factory, runF func(context.Context, *GetOptions) error) *cobra.Command {
	opts := &GetOptions{IO: f.IOStreams, APIClient: f.APIClient}
	cmd := &cobra.Command{
		Use:   "get <bot> [--period 30d]",
		Short: "Show one bot's model usage per day and model",
		Long: `Show what one bot (by name or id) spent on model calls, one row per day (UTC) and
model: the calls and how many of them failed, the input and output tokens, the tokens
read from and written to the provider's prompt cache, the cost in credits and what of
it was debited from its customer's credits. On a terminal its owner comes first, on
stderr, and the last line is the total.

The period ends now and reaches back --period (days or hours, up to 366d). Piped
output has no header and tab-separated columns. pmd records each read in the audit
log under your admin name.`,
		Example: `  pmctl usage get alice
  pmctl usage get alice --period 7d
  pmctl usage get b-4f2a9c -o yaml`,
		Args:              cmdutil.ExactArgs(1, "missing bot name or id"),
		ValidArgsFunction: cmdutil.CompleteNames(f, (*apiclient.Client).ListBots, func(b wire.Bot) (string, string) { return b.Name, b.Owner }),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Ref = args[0]
			if opts.Ref == "" {
				return cmdutil.FlagErrorf("missing bot name or id (the argument is empty)")
			}
			if err := checkPeriod(opts.Period); err != nil {
				return err
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return getRun(cmd.Context(), opts)
		},
	}
	addPeriodFlag(cmd, &opts.Period, "30d")
	cmdutil.AddFormatFlag(cmd, &opts.Format)
	return cmd
}

func getRun(ctx context.Context, opts *GetOptions) error {
	c, err := opts.APIClient()
	if err != nil {
		return err
	}
	rep, err := c.BotUsage(ctx, opts.Ref, opts.Period)
	if err != nil {
		return fmt.Errorf("usage of bot %s: %w", opts.Ref, err)
	}
	if opts.Format == output.Table && opts.IO.IsTerminal {
		since := rep.Since.UTC().Format(time.DateTime + " UTC")
		if len(rep.Rows) == 0 {
			fmt.Fprintf(opts.IO.ErrOut, "Bot %s made no model calls since %s.\n", termsafe.Line(opts.Ref), since)
			return nil
		}
		r := rep.Rows[0]
		fmt.Fprintf(opts.IO.ErrOut, "Bot %s (%s) of %s, since %s:\n", termsafe.Line(r.BotName), termsafe.Line(r.BotID), termsafe.Line(owner(r)), since)
	}
	first := []output.Column[wire.UsageRow]{{Header: "DAY", Value: func(r wire.UsageRow) string { return r.Day }}}
	return printReport(opts.IO, opts.Format, rep, first, func(t *wire.UsageRow) { t.Day = "total" })
}
