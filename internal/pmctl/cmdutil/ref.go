package cmdutil

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/pocketmolt/pocketmolt/internal/apiclient"
	"github.com/pocketmolt/pocketmolt/internal/output"
	"github.com/pocketmolt/pocketmolt/internal/pmctl/iostreams"
)

// RefOptions are the inputs of a command that acts on one object named by its argument
// (`bots stop alice`, `hosts drain edge-1`).
type RefOptions struct {
	IO        *iostreams.IOStreams
	APIClient func() (*apiclient.Client, error)
	Format    output.Format
	Ref       string
}

// NewRefCmd completes cmd as such a command: one argument (missing says what is missing),
// completion of names, and -o. run does the work; runF, when set, replaces it in tests.
func NewRefCmd(f *Factory, cmd *cobra.Command, missing string, complete cobra.CompletionFunc, run, runF func(context.Context, *RefOptions) error) *cobra.Command {
	opts := &RefOptions{IO: f.IOStreams, APIClient: f.APIClient}
	cmd.Args = ExactArgs(1, missing)
	cmd.ValidArgsFunction = complete
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		opts.Ref = args[0]
		if runF != nil {
			return runF(cmd.Context(), opts)
		}
		return run(cmd.Context(), opts)
	}
	AddFormatFlag(cmd, &opts.Format)
	return cmd
}

// CompleteNames offers the names list returns, with a description each, for the first
// argument.
func CompleteNames[T any](f *Factory, list func(*apiclient.Client, context.Context) ([]T, error), name func(T) (string, string)) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		c, err := f.APIClient()
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		items, err := list(c, cmd.Context())
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		out := make([]cobra.Completion, 0, len(items))
		for _, it := range items {
			n, desc := name(it)
			out = append(out, cobra.CompletionWithDesc(n, desc))
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}
