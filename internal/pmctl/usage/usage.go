// Package usage implements `pmctl usage`: what bots spent on model calls, as their hosts
// metered it — the largest spenders over a period, and one bot's usage per day and model.
package usage

import (
	"math/big"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pocketmolt/pocketmolt/internal/output"
	"github.com/pocketmolt/pocketmolt/internal/pmctl/cmdutil"
	"github.com/pocketmolt/pocketmolt/internal/pmctl/iostreams"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// NewCmdUsage returns the `usage` noun with its verbs.
func NewCmdUsage(f *cmdutil.Factory) *cobra.Command {
	cmd := cmdutil.Group(&cobra.Command{
		Use:   "usage <command>",
		Short: "Show what bots spent on model calls",
		Long: `Show what bots spent on model calls. Every model call of a bot goes through its
host's agent, which counts the tokens the provider reported (or estimates them when the
provider reported none) and sends the count to pmd.

Cost is in credits (one credit is one US dollar of model usage) at pmd's price table.
Debited is what of it was taken from the customer's credits: calls with the customer's
own key (BYOK) and operators' bots are counted but never debited.`,
		Example: `  pmctl usage top
  pmctl usage top --period 30d --limit 50
  pmctl usage get alice
  pmctl usage get alice --period 7d -o json`,
	})
	cmd.AddCommand(NewCmdTop(f, nil), NewCmdGet(f, nil))
	return cmd
}

// Period bounds, as pmd enforces them.
const (
	maxPeriodHours = 366 * 24
	maxLimit       = 1000
)

const periodHelp = "give a number of days or hours such as 7d or 12h, from 1h to 366d"

// checkPeriod refuses a --period pmd would refuse, before anything is sent.
func checkPeriod(s string) error {
	if len(s) < 2 || len(s) > 8 || (s[len(s)-1] != 'd' && s[len(s)-1] != 'h') {
		return cmdutil.FlagErrorf("--period %q: %s", s, periodHelp)
	}
	digits := s[:len(s)-1]
	for _, c := range digits {
		if c < '0' || c > '9' {
			return cmdutil.FlagErrorf("--period %q: %s", s, periodHelp)
		}
	}
	n, err := strconv.Atoi(digits)
	if err != nil {
		return cmdutil.FlagErrorf("--period %q: %s", s, periodHelp)
	}
	if s[len(s)-1] == 'd' {
		n *= 24
	}
	if n < 1 || n > maxPeriodHours {
		return cmdutil.FlagErrorf("--period %q is out of range: %s", s, periodHelp)
	}
	return nil
}

// addPeriodFlag adds --period with its default.
func addPeriodFlag(cmd *cobra.Command, p *string, def string) {
	cmd.Flags().StringVar(p, "period", def, "how far back to count: days (30d) or hours (12h), from 1h to 366d")
	_ = cmd.RegisterFlagCompletionFunc("period", cobra.FixedCompletions([]string{"24h", "7d", "30d", "90d", "366d"}, cobra.ShellCompDirectiveNoFileComp))
}

// owner is the row's owner as an operator reads it: a customer's email when pmd knows it.
func owner(r wire.UsageRow) string {
	if r.Email != "" {
		return r.Email
	}
	return r.Owner
}

// model is the row's model as bots name it: "anthropic/claude-sonnet-4-6".
func model(r wire.UsageRow) string {
	if r.Provider == "" {
		return r.Model
	}
	return r.Provider + "/" + r.Model
}

// calls is the row's call count; on a terminal it says how many were estimated.
func calls(tty bool) func(wire.UsageRow) string {
	return func(r wire.UsageRow) string {
		s := strconv.FormatInt(r.Calls, 10)
		if tty && r.Estimated > 0 {
			s += " (" + strconv.FormatInt(r.Estimated, 10) + " est.)"
		}
		return s
	}
}

func num(n int64) string { return strconv.FormatInt(n, 10) }

// cache is the tokens read from and written to the provider's prompt cache, "read/write".
func cache(r wire.UsageRow) string { return num(r.Tokens.CacheRead) + "/" + num(r.Tokens.CacheWrite) }

// usageColumns are the columns after the first ones: what was spent.
func usageColumns(tty bool) []output.Column[wire.UsageRow] {
	return []output.Column[wire.UsageRow]{
		{Header: "MODEL", Value: model},
		{Header: "CALLS", Value: calls(tty)},
		{Header: "ERRORS", Value: func(r wire.UsageRow) string { return num(r.Errors) }},
		{Header: "INPUT", Value: func(r wire.UsageRow) string { return num(r.Tokens.Input) }},
		{Header: "OUTPUT", Value: func(r wire.UsageRow) string { return num(r.Tokens.Output) }},
		{Header: "CACHE R/W", Value: cache},
		{Header: "COST", Value: func(r wire.UsageRow) string { return r.Cost }},
		{Header: "DEBITED", Value: func(r wire.UsageRow) string { return r.Debited }},
	}
}

// total is the sum of rows, for the last line of a table on a terminal; ok is false when a
// cost is not a decimal pmd would write (the line is left out rather than wrong).
func total(rows []wire.UsageRow) (wire.UsageRow, bool) {
	var t wire.UsageRow
	cost, debited := new(big.Rat), new(big.Rat)
	places := 0
	for _, r := range rows {
		t.Calls += r.Calls
		t.Errors += r.Errors
		t.Estimated += r.Estimated
		t.Tokens.Input += r.Tokens.Input
		t.Tokens.Output += r.Tokens.Output
		t.Tokens.CacheRead += r.Tokens.CacheRead
		t.Tokens.CacheWrite += r.Tokens.CacheWrite
		for _, x := range []struct {
			s   string
			sum *big.Rat
		}{{r.Cost, cost}, {r.Debited, debited}} {
			v, p, ok := decimal(x.s)
			if !ok {
				return t, false
			}
			x.sum.Add(x.sum, v)
			places = max(places, p)
		}
	}
	t.Cost, t.Debited = cost.FloatString(places), debited.FloatString(places)
	return t, true
}

// decimal parses a plain decimal ("0.4210", "12"), returning its number of decimal places.
func decimal(s string) (*big.Rat, int, bool) {
	if s == "" || len(s) > 40 || strings.ContainsAny(s, "eE/+") {
		return nil, 0, false
	}
	v, ok := new(big.Rat).SetString(s)
	if !ok {
		return nil, 0, false
	}
	places := 0
	if _, frac, found := strings.Cut(s, "."); found {
		places = len(frac)
	}
	return v, places, true
}

// printReport prints rep: whole as JSON or YAML, or its rows in a table of first and the usage
// columns with, on a terminal, a total line (labelled by label) when there is more than one.
func printReport(ios *iostreams.IOStreams, f output.Format, rep *wire.UsageReport, first []output.Column[wire.UsageRow], label func(*wire.UsageRow)) error {
	tty := ios.IsTerminal
	if f != output.Table {
		return output.Print(ios.Out, tty, f, rep, nil)
	}
	rows := rep.Rows
	if tty && len(rows) > 1 {
		if t, ok := total(rows); ok {
			label(&t)
			rows = append(rows[:len(rows):len(rows)], t)
		}
	}
	cols := append(first[:len(first):len(first)], usageColumns(tty)...)
	return output.Print(ios.Out, tty, f, rep, output.Columns(rows, cols...))
}
