package users

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pocketmolt/pocketmolt/internal/apiclient"
	"github.com/pocketmolt/pocketmolt/internal/output"
	"github.com/pocketmolt/pocketmolt/internal/pmctl/cmdutil"
	"github.com/pocketmolt/pocketmolt/internal/pmctl/iostreams"
	"github.com/pocketmolt/pocketmolt/internal/termsafe"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// Bounds of --days: a day at least, and ten years at most, which is what pmd accepts.
const (
	MinGrantDays = 1
	MaxGrantDays = 3660
)

// GrantOptions are the inputs of `users grant`.
type GrantOptions struct {
	IO        *iostreams.IOStreams
	APIClient func() (*apiclient.Client, error)
	Format    output.Format
	Ref       string
	Plan      string
	Days      int
}

// NewCmdGrant returns `users grant`.
func NewCmdGrant(f *cmdutil.Factory, runF func(context.Context, *GrantOptions) error) *cobra.Command {
	opts := &GrantOptions{IO: f.IOStreams, APIClient: f.APIClient}
	cmd := &cobra.Command{
		Use:   "grant <email|id> --plan <plan> --days <n>",
		Short: "Give a customer a subscription without Stripe",
		Long: fmt.Sprintf(`Give a customer a subscription to a plan for a number of days, without Stripe: for
friends, tests and self-hosters. It works like a paid one: the customer gets the plan's
included credits for the period and their assistant's bot is made (or started again) and
placed in the background; when the days are over, it ends like a subscription that was
not renewed.

The plan is a plan id from pmd's configuration; --days is %d to %d. pmd refuses a
customer who has a live subscription already, or who has not set up their assistant yet.
The grant is in the audit log.`, MinGrantDays, MaxGrantDays),
		Example: `  pmctl users grant alice@example.com --plan pro --days 30
  pmctl users grant u-7f3a9c --plan starter --days 365 -o json`,
		Args:              RefArgs,
		ValidArgsFunction: Complete(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Ref = Ref(args[0])
			opts.Plan = strings.TrimSpace(opts.Plan)
			switch {
			case opts.Plan == "":
				return cmdutil.FlagErrorf("--plan is required: give the id of one of pmd's plans")
			case !cmd.Flags().Changed("days"):
				return cmdutil.FlagErrorf("--days is required: how long the subscription lasts, %d to %d", MinGrantDays, MaxGrantDays)
			case opts.Days < MinGrantDays || opts.Days > MaxGrantDays:
				return cmdutil.FlagErrorf("--days %d is out of range: give %d to %d", opts.Days, MinGrantDays, MaxGrantDays)
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return grantRun(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.Plan, "plan", "", "id of the plan to give (required)")
	fl.IntVar(&opts.Days, "days", 0, fmt.Sprintf("how many days it lasts, %d to %d (required)", MinGrantDays, MaxGrantDays))
	cmdutil.AddFormatFlag(cmd, &opts.Format)
	return cmd
}

func grantRun(ctx context.Context, opts *GrantOptions) error {
	c, err := opts.APIClient()
	if err != nil {
		return err
	}
	s, err := c.GrantSubscription(ctx, opts.Ref, wire.GrantRequest{Plan: opts.Plan, Days: opts.Days})
	if err != nil {
		return fmt.Errorf("grant plan %s to user %s: %w", opts.Plan, opts.Ref, err)
	}
	if opts.Format != output.Table {
		return output.Print(opts.IO.Out, opts.IO.IsTerminal, opts.Format, s, nil)
	}
	until := ""
	if s.PeriodEnd != nil {
		until = " until " + output.Timestamp(*s.PeriodEnd)
	}
	fmt.Fprintf(opts.IO.ErrOut, "Granted plan %s to %s for %d days: subscription %s, %s%s.\n",
		termsafe.Line(s.Plan), termsafe.Line(s.Email), opts.Days, termsafe.Line(s.ID), termsafe.Line(s.Status), until)
	if s.BotID != "" {
		fmt.Fprintf(opts.IO.ErrOut, "Their bot %s starts in the background; watch it with `pmctl bots get %s`.\n",
			termsafe.Line(s.BotID), termsafe.Line(s.BotID))
	}
	return nil
}
