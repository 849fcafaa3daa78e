// Package users implements `pmctl users`: the customers who signed up on pmd's public page,
// their accounts (disable, enable, a password reset link) and a subscription given without
// Stripe.
package users

import (
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pocketmolt/pocketmolt/internal/apiclient"
	"github.com/pocketmolt/pocketmolt/internal/output"
	"github.com/pocketmolt/pocketmolt/internal/pmctl/cmdutil"
	"github.com/pocketmolt/pocketmolt/internal/termsafe"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// NewCmdUsers returns the `users` noun with its verbs.
func NewCmdUsers(f *cmdutil.Factory) *cobra.Command {
	cmd := cmdutil.Group(&cobra.Command{
		Use:   "users <command>",
		Short: "Manage customers",
		Long: `Manage customers: the people who signed up on pmd's public page.

A customer is named by their email or their user id. Every change (disable, enable,
reset-link, grant) is in the audit log under your admin name. Their subscriptions are
under "pmctl subs", their credits under "pmctl credits".`,
		Example: `  pmctl users list
  pmctl users get alice@example.com
  pmctl users grant alice@example.com --plan pro --days 30
  pmctl users disable alice@example.com`,
	})
	cmd.AddCommand(
		NewCmdList(f, nil),
		NewCmdGet(f, nil),
		NewCmdDisable(f, nil),
		NewCmdEnable(f, nil),
		NewCmdResetLink(f, nil),
		NewCmdGrant(f, nil),
	)
	return cmd
}

// missingRef is the usage error of a command run without its customer.
const missingRef = "missing user: give their email or user id"

// RefArgs wants exactly one argument naming a customer by email or id, and refuses a blank
// one, which would name no customer but the whole collection.
func RefArgs(cmd *cobra.Command, args []string) error {
	if err := cmdutil.ExactArgs(1, missingRef)(cmd, args); err != nil {
		return err
	}
	if strings.TrimSpace(args[0]) == "" {
		return cmdutil.FlagErrorf("the user is empty: give their email or user id")
	}
	return nil
}

// Ref is the customer an argument names, without the spaces a paste may bring along.
func Ref(arg string) string { return strings.TrimSpace(arg) }

// Complete offers customers' emails, with their subscription status, for the first argument.
// Emails are the customers' own input and the shell prints completions raw, so both are
// escaped.
func Complete(f *cmdutil.Factory) cobra.CompletionFunc {
	return cmdutil.CompleteNames(f, (*apiclient.Client).ListUsers, func(u wire.User) (string, string) {
		return termsafe.Line(u.Email), termsafe.Line(subscriptionText(&u))
	})
}

// CompleteFlag offers customers' emails for a flag such as --user.
func CompleteFlag(f *cmdutil.Factory) cobra.CompletionFunc {
	names := Complete(f)
	return func(cmd *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		return names(cmd, nil, toComplete)
	}
}

// accountText is the state of the account itself, apart from any subscription.
func accountText(u *wire.User) string {
	if u.Disabled {
		return "disabled"
	}
	return "enabled"
}

// subscriptionText is the customer's current subscription status, "none" without one.
func subscriptionText(u *wire.User) string {
	if u.Status == "" {
		return "none"
	}
	return u.Status
}

// orDash shows an empty cell as "-" on a terminal and leaves it empty for scripts.
func orDash(tty bool, s string) string {
	if s == "" && tty {
		return "-"
	}
	return s
}

// when is a time in a key/value view: with how long ago on a terminal.
func when(now, t time.Time, tty bool) string {
	if tty {
		return output.Timestamp(t) + " (" + output.Ago(now, t) + ")"
	}
	return output.Timestamp(t)
}

// userView is the key/value table of one customer; rows with nothing to say are left out.
func userView(u *wire.User, now time.Time, tty bool) output.Tabular {
	kv := []output.KV{
		{Key: "email", Value: u.Email},
		{Key: "id", Value: u.ID},
		{Key: "status", Value: accountText(u)},
	}
	if u.Disabled {
		kv[2].Value += " (cannot log in; pmctl users enable lets them back in)"
	}
	kv = append(kv, output.KV{Key: "subscription", Value: subscriptionText(u)})
	if u.Plan != "" {
		kv = append(kv, output.KV{Key: "plan", Value: u.Plan})
	}
	assistant := u.Assistant
	if assistant == "" {
		assistant = "(not set up yet)"
	}
	kv = append(kv, output.KV{Key: "assistant", Value: assistant})
	if u.BotID != "" {
		kv = append(kv, output.KV{Key: "bot", Value: u.BotID})
	}
	if u.StripeCustomerID != "" {
		kv = append(kv, output.KV{Key: "stripe customer", Value: u.StripeCustomerID})
	}
	kv = append(kv, output.KV{Key: "created", Value: when(now, u.CreatedAt, tty)})
	return output.KeyValues(kv...)
}
