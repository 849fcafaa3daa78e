// Package subs implements `pmctl subs`: customers' subscriptions, paid through Stripe or
// given by an operator, and where each one stands.
package subs

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

// NewCmdSubs returns the `subs` noun with its verbs.
func NewCmdSubs(f *cmdutil.Factory) *cobra.Command {
	cmd := cmdutil.Group(&cobra.Command{
		Use:     "subs <command>",
		Aliases: []string{"subscriptions"},
		Short:   "Show customers' subscriptions",
		Long: `Show customers' subscriptions: paid through Stripe (source stripe), given by an
operator with "pmctl users grant" (source grant), or activated at once by pmd's test
billing mode (source test).

An active or past_due subscription keeps its bot running (past_due for a grace period);
a canceled or unpaid one stops it. Stripe owns the paid ones: change them in Stripe or
let the customer use "manage billing" on their dashboard.`,
		Example: `  pmctl subs list
  pmctl subs list --user alice@example.com
  pmctl subs get s-4b1d2e -o yaml`,
	})
	cmd.AddCommand(NewCmdList(f, nil), NewCmdGet(f, nil))
	return cmd
}

// ListOptions are the inputs of `subs list`.
type ListOptions struct {
	IO        *iostreams.IOStreams
	APIClient func() (*apiclient.Client, error)
	Now       func() time.Time
	Format    output.Format
	// User, when set, keeps only that customer's subscriptions (an email or a user id).
	User string
}

// NewCmdList returns `subs list`. runF, when not nil, replaces the run so tests can stop
// before the network.
func NewCmdList(f *cmdutil.Factory, runF func(context.Context, *ListOptions) error) *cobra.Command {
	opts := &ListOptions{IO: f.IOStreams, APIClient: f.APIClient, Now: f.Now}
	cmd := &cobra.Command{
		Use:     "list [--user <email|id>]",
		Aliases: []string{"ls"},
		Short:   "List subscriptions",
		Long: `List subscriptions, every customer's or, with --user, one customer's: id, customer,
plan, source (stripe, grant or test), status, when the current period ends, whether it
is set to cancel at the end of that period, and its bot. Piped output has no header and
tab-separated columns, with the period's end in full.`,
		Example: `  pmctl subs list
  pmctl subs list --user alice@example.com -o json`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cmd.Flags().Changed("user") {
				opts.User = strings.TrimSpace(opts.User)
				if opts.User == "" {
					return cmdutil.FlagErrorf("--user is empty: give a customer's email or user id, or leave it out for everyone")
				}
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return listRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.User, "user", "", "only this customer's subscriptions (email or user id)")
	_ = cmd.RegisterFlagCompletionFunc("user", users.CompleteFlag(f))
	cmdutil.AddFormatFlag(cmd, &opts.Format)
	return cmd
}

func listRun(ctx context.Context, opts *ListOptions) error {
	c, err := opts.APIClient()
	if err != nil {
		return err
	}
	subs, err := c.ListSubscriptions(ctx, opts.User)
	if err != nil {
		if opts.User != "" {
			return fmt.Errorf("list subscriptions of user %s: %w", opts.User, err)
		}
		return fmt.Errorf("list subscriptions: %w", err)
	}
	tty := opts.IO.IsTerminal
	if len(subs) == 0 && opts.Format == output.Table && tty {
		if opts.User != "" {
			fmt.Fprintf(opts.IO.ErrOut, "User %s has no subscriptions; `pmctl users grant %s --plan <plan> --days <n>` gives one without Stripe.\n", opts.User, opts.User)
		} else {
			fmt.Fprintln(opts.IO.ErrOut, "No subscriptions yet.")
		}
		return nil
	}
	now := opts.Now()
	table := output.Columns(subs,
		output.Column[wire.Subscription]{Header: "ID", Value: func(s wire.Subscription) string { return s.ID }},
		output.Column[wire.Subscription]{Header: "EMAIL", Value: func(s wire.Subscription) string { return orDash(tty, s.Email) }},
		output.Column[wire.Subscription]{Header: "PLAN", Value: func(s wire.Subscription) string { return s.Plan }},
		output.Column[wire.Subscription]{Header: "SOURCE", Value: func(s wire.Subscription) string { return s.Source }},
		output.Column[wire.Subscription]{Header: "STATUS", Value: func(s wire.Subscription) string { return s.Status }},
		output.Column[wire.Subscription]{Header: "PERIOD END", Value: func(s wire.Subscription) string {
			switch {
			case s.PeriodEnd == nil:
				return orDash(tty, "")
			case tty:
				return output.Ago(now, *s.PeriodEnd)
			default:
				return output.Timestamp(*s.PeriodEnd)
			}
		}},
		output.Column[wire.Subscription]{Header: "CANCEL", Value: func(s wire.Subscription) string {
			if s.CancelAtPeriodEnd {
				return "at period end"
			}
			return orDash(tty, "")
		}},
		output.Column[wire.Subscription]{Header: "BOT", Value: func(s wire.Subscription) string { return orDash(tty, s.BotID) }},
	)
	return output.Print(opts.IO.Out, tty, opts.Format, subs, table)
}

// GetOptions are the inputs of `subs get`.
type GetOptions struct {
	IO        *iostreams.IOStreams
	APIClient func() (*apiclient.Client, error)
	Now       func() time.Time
	Format    output.Format
	ID        string
}

// NewCmdGet returns `subs get`.
func NewCmdGet(f *cmdutil.Factory, runF func(context.Context, *GetOptions) error) *cobra.Command {
	opts := &GetOptions{IO: f.IOStreams, APIClient: f.APIClient, Now: f.Now}
	cmd := &cobra.Command{
		Use:   "get <id>",
		Short: "Show one subscription",
		Long: `Show one subscription: its customer, plan, source and status, its Stripe
subscription id, its current period, whether it cancels at the end of it, since when it
is past due or when it ended, and its bot.`,
		Example: `  pmctl subs get s-4b1d2e
  pmctl subs get s-4b1d2e -o json`,
		Args: func(cmd *cobra.Command, args []string) error {
			if err := cmdutil.ExactArgs(1, "missing subscription id (see pmctl subs list)")(cmd, args); err != nil {
				return err
			}
			if strings.TrimSpace(args[0]) == "" {
				return cmdutil.FlagErrorf("missing subscription id (the argument is empty)")
			}
			return nil
		},
		ValidArgsFunction: cmdutil.CompleteNames(f,
			func(c *apiclient.Client, ctx context.Context) ([]wire.Subscription, error) {
				return c.ListSubscriptions(ctx, "")
			},
			func(s wire.Subscription) (string, string) {
				return termsafe.Line(s.ID), termsafe.Line(s.Email + " " + s.Plan + " " + s.Status)
			}),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.ID = strings.TrimSpace(args[0])
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
	s, err := c.GetSubscription(ctx, opts.ID)
	if err != nil {
		return fmt.Errorf("get subscription %s: %w", opts.ID, err)
	}
	return output.Print(opts.IO.Out, opts.IO.IsTerminal, opts.Format, s, subView(s, opts.Now(), opts.IO.IsTerminal))
}

// subView is the key/value table of one subscription; rows with nothing to say are left out.
func subView(s *wire.Subscription, now time.Time, tty bool) output.Tabular {
	when := func(t time.Time) string {
		if tty {
			return output.Timestamp(t) + " (" + output.Ago(now, t) + ")"
		}
		return output.Timestamp(t)
	}
	var kv []output.KV
	add := func(k, v string) {
		if v != "" {
			kv = append(kv, output.KV{Key: k, Value: v})
		}
	}
	add("id", s.ID)
	user := s.UserID
	if s.Email != "" {
		user = s.Email + " (" + s.UserID + ")"
	}
	add("user", user)
	add("plan", s.Plan)
	add("source", s.Source)
	add("status", s.Status)
	add("stripe subscription", s.StripeSubscriptionID)
	if s.PeriodStart != nil {
		add("period start", when(*s.PeriodStart))
	}
	if s.PeriodEnd != nil {
		add("period end", when(*s.PeriodEnd))
	}
	cancel := "no"
	if s.CancelAtPeriodEnd {
		cancel = "yes: it ends with the current period"
	}
	add("cancel at period end", cancel)
	if s.PastDueSince != nil {
		add("past due since", when(*s.PastDueSince))
	}
	if s.EndedAt != nil {
		add("ended", when(*s.EndedAt))
	}
	add("bot", s.BotID)
	add("created", when(s.CreatedAt))
	add("updated", when(s.UpdatedAt))
	return output.KeyValues(kv...)
}

// orDash shows an empty cell as "-" on a terminal and leaves it empty for scripts.
func orDash(tty bool, s string) string {
	if s == "" && tty {
		return "-"
	}
	return s
}
