package cmdutil

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/pocketmolt/pocketmolt/internal/pmctl/iostreams"
)

// ErrNoConfirm refuses a destructive command that cannot ask: stdin or stderr is not a
// terminal and --yes was not given. Nothing was sent to pmd.
var ErrNoConfirm = errors.New("--yes is required when not running on a terminal: nothing was done")

// Confirm asks question unless yes. As in gh, a destructive command never goes ahead unasked:
// without a terminal to ask on it returns ErrNoConfirm, and when the answer is no, ErrCancel.
func Confirm(ios *iostreams.IOStreams, yes bool, question string) error {
	if yes {
		return nil
	}
	if !ios.CanPrompt {
		return ErrNoConfirm
	}
	ok, err := ios.Confirm(question)
	if err != nil {
		return err
	}
	if !ok {
		return ErrCancel
	}
	return nil
}

// ConfirmHelp ends the help of every destructive command.
const ConfirmHelp = `pmctl asks for confirmation on a terminal. Without one (in a script, or with stdin
redirected) it does nothing unless --yes is given.`

// AddYesFlag adds --yes/-y, which a destructive command needs to go ahead without asking.
func AddYesFlag(cmd *cobra.Command, yes *bool) {
	cmd.Flags().BoolVarP(yes, "yes", "y", false, "go ahead without asking (required without a terminal)")
}
