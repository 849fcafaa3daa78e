package hosts

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/pocketmolt/pocketmolt/internal/apiclient"
	"github.com/pocketmolt/pocketmolt/internal/output"
	"github.com/pocketmolt/pocketmolt/internal/pmctl/cmdutil"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// DrainOptions are the inputs of `hosts drain` and `hosts undrain`.
type DrainOptions = cmdutil.RefOptions

// NewCmdUndrain returns `hosts undrain`.
func NewCmdUndrain(f *cmdutil.Factory, runF func(context.Context, *DrainOptions) error) *cobra.Command {
	return newCmdDrain(f, &cobra.Command{
		Use:     "undrain <name|id>",
		Short:   "Let pmd place bots on a host again",
		Long:    `Lift "pmctl hosts drain": pmd may place new bots on the host again.`,
		Example: `  pmctl hosts undrain edge-1`,
	}, undrainRun, runF)
}

func undrainRun(ctx context.Context, opts *DrainOptions) error {
	return drainCall(ctx, opts, "undrain", (*apiclient.Client).UndrainHost, "accepts new bots again")
}

// newCmdDrain completes drain or undrain; only the wording and the call differ.
func newCmdDrain(f *cmdutil.Factory, cmd *cobra.Command, run, runF func(context.Context, *DrainOptions) error) *cobra.Command {
	return cmdutil.NewRefCmd(f, cmd, "missing host name or id", completeHosts(f), run, runF)
}

// drainCall calls do and reports the host it returns: a line on stderr for a table, the host
// on stdout as JSON or YAML otherwise.
func drainCall(ctx context.Context, opts *DrainOptions, verb string, do func(*apiclient.Client, context.Context, string) (*wire.Host, error), done string) error {
	c, err := opts.APIClient()
	if err != nil {
		return err
	}
	h, err := do(c, ctx, opts.Ref)
	if err != nil {
		return fmt.Errorf("%s host %s: %w", verb, opts.Ref, err)
	}
	if opts.Format != output.Table {
		return output.Print(opts.IO.Out, opts.IO.IsTerminal, opts.Format, h, nil)
	}
	fmt.Fprintf(opts.IO.ErrOut, "Host %s (%s) %s.\n", h.Name, h.ID, done)
	return nil
}
