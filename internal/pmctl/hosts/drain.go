package hosts

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/pocketmolt/pocketmolt/internal/apiclient"
	"github.com/pocketmolt/pocketmolt/internal/pmctl/cmdutil"
)

// NewCmdDrain returns `hosts drain`.
func NewCmdDrain(f *cmdutil.Factory, runF func(context.Context, *DrainOptions) error) *cobra.Command {
	return newCmdDrain(f, &cobra.Command{
		Use:   "drain <name|id>",
		Short: "Stop placing new bots on a host",
		Long: `Mark a host as draining: pmd places no new bots on it, for instance before
maintenance. "pmctl hosts undrain" lifts it.`,
		Example: `  pmctl hosts drain edge-1`,
	}, drainRun, runF)
}

func drainRun(ctx context.Context, opts *DrainOptions) error {
	return drainCall(ctx, opts, "drain", (*apiclient.Client).DrainHost, "is draining: no new bots will be placed on it")
}
