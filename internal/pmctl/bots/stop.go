package bots

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/pocketmolt/pocketmolt/internal/apiclient"
	"github.com/pocketmolt/pocketmolt/internal/pmctl/cmdutil"
)

// NewCmdStop returns `bots stop`.
func NewCmdStop(f *cmdutil.Factory, runF func(context.Context, *ActionOptions) error) *cobra.Command {
	return newCmdAction(f, &cobra.Command{
		Use:   "stop <name|id>",
		Short: "Stop a bot",
		Long: `Stop a bot: its desired state becomes stopped and its host stops the container in the
background. The bot, its configuration and its workspace stay; "pmctl bots start" brings
it back.`,
		Example: `  pmctl bots stop alice`,
	}, stopRun, runF)
}

func stopRun(ctx context.Context, opts *ActionOptions) error {
	return actionRun(ctx, opts, "stop", (*apiclient.Client).StopBot, "Stopping")
}
