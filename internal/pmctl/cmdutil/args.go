package cmdutil

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pocketmolt/pocketmolt/internal/output"
)

// ExactArgs wants exactly n arguments; the message says what is missing.
func ExactArgs(n int, missing string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		switch {
		case len(args) < n:
			return FlagErrorf("%s", missing)
		case len(args) > n:
			return FlagErrorf("too many arguments: %s", strings.Join(args[n:], " "))
		}
		return nil
	}
}

// NoArgs refuses any argument.
func NoArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return FlagErrorf("unexpected argument %q", args[0])
	}
	return nil
}

// Group makes cmd a noun that only holds verbs: run bare it prints its help, and an unknown
// verb is a usage error instead of cobra's silent help.
func Group(cmd *cobra.Command) *cobra.Command {
	cmd.Args = func(c *cobra.Command, args []string) error {
		return UnknownCommand(c, args)
	}
	cmd.RunE = func(c *cobra.Command, _ []string) error { return c.Help() }
	return cmd
}

// AddFormatFlag adds -o/--output to cmd, validated while flags are parsed.
func AddFormatFlag(cmd *cobra.Command, f *output.Format) {
	if *f == "" {
		*f = output.Table
	}
	cmd.Flags().VarP(f, "output", "o", "output format: "+strings.Join(output.Formats, ", "))
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(output.Formats, cobra.ShellCompDirectiveNoFileComp))
}

// UnknownCommand refuses args left over after cobra found no subcommand, suggesting close
// names like cobra does.
func UnknownCommand(c *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	if c.SuggestionsMinimumDistance <= 0 {
		c.SuggestionsMinimumDistance = 2
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], c.CommandPath())
	if s := c.SuggestionsFor(args[0]); len(s) > 0 {
		msg += fmt.Sprintf(" (did you mean %s?)", strings.Join(s, ", "))
	}
	return &FlagError{Err: errors.New(msg)}
}
