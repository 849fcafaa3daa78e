package bots

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/pocketmolt/pocketmolt/internal/apiclient"
	"github.com/pocketmolt/pocketmolt/internal/pmctl/cmdutil"
)

// NewCmdRestart returns `bots restart`.
func NewCmdRestart(f *cmdutil.Factory, runF func(context.Context, *ActionOptions) error) *cobra.Command {
	return newCmdAction(f, &cobra.Command{
		Use:   "restart <name|id>",
		Short: "Restart a bot's container",
		Long: `Restart a bot's container; its host does it in the background. The workspace is
kept.`,
		Example: `  pmctl bots restart alice`,
	}, restartRun, runF)
}

func restartRun(ctx context.Context, opts *ActionOptions) error {
	return actionRun(ctx, opts, "restart", (*apiclient.Client).RestartBot, "Restarting")
}
