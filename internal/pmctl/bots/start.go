package bots

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/pocketmolt/pocketmolt/internal/apiclient"
	"github.com/pocketmolt/pocketmolt/internal/pmctl/cmdutil"
)

// NewCmdStart returns `bots start`.
func NewCmdStart(f *cmdutil.Factory, runF func(context.Context, *ActionOptions) error) *cobra.Command {
	return newCmdAction(f, &cobra.Command{
		Use:   "start <name|id>",
		Short: "Start a stopped bot",
		Long: `Start a stopped bot: its desired state becomes running and its host starts the
container in the background.`,
		Example: `  pmctl bots start alice`,
	}, startRun, runF)
}

func startRun(ctx context.Context, opts *ActionOptions) error {
	return actionRun(ctx, opts, "start", (*apiclient.Client).StartBot, "Starting")
}
