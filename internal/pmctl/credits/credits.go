// Package credits implements `pmctl credits`: a customer's credit balance and ledger, and an
// operator's adjustment of it with a reason.
package credits

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
	"github.com/pocketmolt/pocketmolt/internal/pmctl/users"
	"github.com/pocketmolt/pocketmolt/internal/termsafe"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// MaxReasonBytes bounds the reason of an adjustment: a sentence, not a document.
const MaxReasonBytes = 500

// NewCmdCredits returns the `credits` noun with its verbs.
func NewCmdCredits(f *cmdutil.Factory) *cobra.Command {
	cmd := cmdutil.Group(&cobra.Command{
		Use:   "credits <command>",
		Short: "Show and adjust customers' credits",
		Long: `Show and adjust customers' credits. A credit is one US dollar of model usage. Each paid
period grants the plan's included credits, which lapse when the period ends; model
usage is debited as it happens (not for customers who bring their own key); operators
add or take away credits with a reason, and those do not lapse.

The ledger is append-only: a mistake is undone by an adjustment the other way.`,
		Example: `  pmctl credits get alice@example.com
  pmctl credits adjust alice@example.com --amount 5 --reason "sorry for the outage"`,
	})
	cmd.AddCommand(NewCmdGet(f, nil), NewCmdAdjust(f, nil))
	return cmd
}

// GetOptions are the inputs of `credits get`.
type GetOptions struct {
	IO        *iostreams.IOStreams
	APIClient func() (*apiclient.Client, error)
	Now       func() time.Time
	Format    output.Format
	Ref       string
}

// NewCmdGet returns `credits get`.
func NewCmdGet(f *cmdutil.Factory, runF func(context.Context, *GetOptions) error) *cobra.Command {
	opts := &GetOptions{IO: f.IOStreams, APIClient: f.APIClient, Now: f.Now}
	cmd := &cobra.Command{
		Use:   "get <email|id>",
		Short: "Show a customer's credit balance and ledger",
		Long: `Show a customer's credits: the balance, how much of it is what is left of the current
period's included credits (the rest came from adjustments and does not lapse), then
every line of the ledger — when, what kind (grant, adjust or debit), the amount, the
reason, who made it, and when a grant lapses. Piped output has no header and
tab-separated columns; -o json gives the amounts as decimal strings.`,
		Example: `  pmctl credits get alice@example.com
  pmctl credits get u-7f3a9c -o json`,
		Args:              users.RefArgs,
		ValidArgsFunction: users.Complete(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Ref = users.Ref(args[0])
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
	cr, err := c.GetCredits(ctx, opts.Ref)
	if err != nil {
		return fmt.Errorf("get credits of user %s: %w", opts.Ref, err)
	}
	return printCredits(opts.IO, opts.Format, cr, opts.Now())
}

// printCredits prints the balance and, below it, the ledger; JSON and YAML print cr whole.
func printCredits(ios *iostreams.IOStreams, format output.Format, cr *wire.Credits, now time.Time) error {
	tty := ios.IsTerminal
	if format != output.Table {
		return output.Print(ios.Out, tty, format, cr, nil)
	}
	user := cr.Email
	if cr.UserID != "" {
		user += " (" + cr.UserID + ")"
	}
	kv := []output.KV{
		{Key: "user", Value: user},
		{Key: "balance", Value: cr.Balance},
		{Key: "included", Value: cr.Included + " left of this period's included credits, which lapse at its end"},
	}
	if len(cr.Entries) == 0 {
		kv = append(kv, output.KV{Key: "ledger", Value: "no entries yet"})
	}
	if err := output.Print(ios.Out, tty, format, cr, output.KeyValues(kv...)); err != nil {
		return err
	}
	if len(cr.Entries) == 0 {
		return nil
	}
	fmt.Fprintln(ios.Out)
	table := output.Columns(cr.Entries,
		output.Column[wire.CreditEntry]{Header: "TIME", Value: func(e wire.CreditEntry) string { return output.Timestamp(e.CreatedAt) }},
		output.Column[wire.CreditEntry]{Header: "KIND", Value: func(e wire.CreditEntry) string { return e.Kind }},
		output.Column[wire.CreditEntry]{Header: "AMOUNT", Value: func(e wire.CreditEntry) string { return signed(e.Amount) }},
		output.Column[wire.CreditEntry]{Header: "REASON", Value: func(e wire.CreditEntry) string { return orDash(tty, e.Reason) }},
		output.Column[wire.CreditEntry]{Header: "ACTOR", Value: func(e wire.CreditEntry) string { return orDash(tty, e.Actor) }},
		output.Column[wire.CreditEntry]{Header: "LAPSES", Value: func(e wire.CreditEntry) string {
			switch {
			case e.ExpiresAt == nil:
				return orDash(tty, "")
			case tty:
				return output.Ago(now, *e.ExpiresAt)
			default:
				return output.Timestamp(*e.ExpiresAt)
			}
		}},
	)
	return output.Print(ios.Out, tty, format, cr.Entries, table)
}

// signed shows an amount with its sign, so credits in and out read apart in the ledger.
func signed(amount string) string {
	if amount == "" || strings.HasPrefix(amount, "-") || strings.HasPrefix(amount, "+") {
		return amount
	}
	return "+" + amount
}

// orDash shows an empty cell as "-" on a terminal and leaves it empty for scripts.
func orDash(tty bool, s string) string {
	if s == "" && tty {
		return "-"
	}
	return s
}

// AdjustOptions are the inputs of `credits adjust`.
type AdjustOptions struct {
	IO        *iostreams.IOStreams
	APIClient func() (*apiclient.Client, error)
	Now       func() time.Time
	Format    output.Format
	Ref       string
	// Amount is the checked amount in the plain form ParseAmount returns.
	Amount string
	Reason string
}

// NewCmdAdjust returns `credits adjust`.
func NewCmdAdjust(f *cmdutil.Factory, runF func(context.Context, *AdjustOptions) error) *cobra.Command {
	opts := &AdjustOptions{IO: f.IOStreams, APIClient: f.APIClient, Now: f.Now}
	var amount AmountFlag
	cmd := &cobra.Command{
		Use:   "adjust <email|id> --amount <credits> --reason <text>",
		Short: "Add credits to a customer or take some away",
		Long: fmt.Sprintf(`Add credits to a customer's balance, or take some away with a negative amount, with a
reason. The amount is a decimal number of credits with at most %d decimals ("5",
"-2.50", "0.25"); a credit is one US dollar of model usage. Adjusted credits do not
lapse. The reason (required, at most %d bytes) is kept in the ledger, and the
adjustment is in the audit log under your admin name.

pmd bounds a single adjustment; a mistake is undone by an adjustment the other way.`, MaxDecimals, MaxReasonBytes),
		Example: `  pmctl credits adjust alice@example.com --amount 5 --reason "sorry for the outage"
  pmctl credits adjust alice@example.com --amount -2.50 --reason "refunded in Stripe instead"`,
		Args:              users.RefArgs,
		ValidArgsFunction: users.Complete(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Ref = users.Ref(args[0])
			if !cmd.Flags().Changed("amount") {
				return cmdutil.FlagErrorf("--amount is required: a number of credits such as 5, or -2.50 to take some away")
			}
			opts.Amount = string(amount)
			opts.Reason = strings.TrimSpace(opts.Reason)
			switch {
			case opts.Reason == "":
				return cmdutil.FlagErrorf("--reason is required: say why the credits change (it is kept in the ledger)")
			case len(opts.Reason) > MaxReasonBytes:
				return cmdutil.FlagErrorf("--reason is %d bytes long: keep it to %d", len(opts.Reason), MaxReasonBytes)
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return adjustRun(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.Var(&amount, "amount", "credits to add, negative to take away, e.g. 5 or -2.50 (required)")
	fl.StringVar(&opts.Reason, "reason", "", fmt.Sprintf("why, kept in the ledger; at most %d bytes (required)", MaxReasonBytes))
	cmdutil.AddFormatFlag(cmd, &opts.Format)
	return cmd
}

func adjustRun(ctx context.Context, opts *AdjustOptions) error {
	c, err := opts.APIClient()
	if err != nil {
		return err
	}
	cr, err := c.AdjustCredits(ctx, opts.Ref, wire.AdjustCreditsRequest{Amount: opts.Amount, Reason: opts.Reason})
	if err != nil {
		return fmt.Errorf("adjust credits of user %s by %s: %w", opts.Ref, opts.Amount, err)
	}
	if opts.Format != output.Table {
		return output.Print(opts.IO.Out, opts.IO.IsTerminal, opts.Format, cr, nil)
	}
	fmt.Fprintf(opts.IO.ErrOut, "Adjusted the credits of %s by %s: balance %s, of which %s included.\n",
		termsafe.Line(cr.Email), signed(opts.Amount), termsafe.Line(cr.Balance), termsafe.Line(cr.Included))
	return nil
}
