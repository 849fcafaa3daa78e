// Package pmctl runs the pmctl command line: it builds the command tree, executes it, prints
// the error if any, and maps it to the exit code. cmd/pmctl calls Main.
package pmctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/pocketmolt/pocketmolt/internal/apiclient"
	"github.com/pocketmolt/pocketmolt/internal/pmctl/cmdutil"
	"github.com/pocketmolt/pocketmolt/internal/pmctl/iostreams"
	"github.com/pocketmolt/pocketmolt/internal/pmctl/root"
	"github.com/pocketmolt/pocketmolt/internal/termsafe"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// Exit codes.
const (
	ExitOK        = 0
	ExitError     = 1
	ExitCancelled = 2
	ExitAuth      = 4
)

// Main runs pmctl with the process's arguments, streams and environment and returns the exit
// code. The first SIGINT or SIGTERM cancels the running command; a second one kills pmctl.
func Main() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop() // restore default handling so a second ^C is not ignored
	}()
	return Run(ctx, cmdutil.NewFactory(iostreams.System(), os.Getenv), os.Args[1:])
}

// Run executes args against f and returns the exit code, having printed any error on
// f.IOStreams.ErrOut.
//
// Everything pmctl writes on stderr — messages, prompts, errors — passes through a
// termsafe.Writer, since much of it quotes what pmd, a host or a bot said; what it writes on
// stdout is escaped by each command, so that bots logs --raw can leave it alone.
func Run(ctx context.Context, f *cmdutil.Factory, args []string) int {
	stderr := termsafe.NewWriter(f.IOStreams.ErrOut)
	f.IOStreams.ErrOut = stderr
	defer stderr.Flush()
	cmd := root.NewCmdRoot(f)
	cmd.SetArgs(args)
	failed, err := cmd.ExecuteContextC(ctx)
	if err == nil {
		return ExitOK
	}
	if ctx.Err() != nil {
		// Whatever failed, it failed because we were interrupted.
		err = errors.Join(context.Canceled, err)
	}
	printError(f.IOStreams.ErrOut, failed, err)
	return ExitCode(err)
}

// ExitCode maps an error returned by a command to pmctl's exit code: 0 for nil, 2 when the
// user cancelled, 4 when pmd did not accept our credentials, 1 otherwise.
func ExitCode(err error) int {
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, context.Canceled), errors.Is(err, cmdutil.ErrCancel):
		return ExitCancelled
	case apiclient.IsAuth(err):
		return ExitAuth
	default:
		return ExitError
	}
}

func printError(w io.Writer, cmd *cobra.Command, err error) {
	var flagErr *cmdutil.FlagError
	switch {
	case errors.Is(err, cmdutil.ErrSilent):
	case errors.Is(err, context.Canceled), errors.Is(err, cmdutil.ErrCancel):
		fmt.Fprintln(w, "cancelled")
	case errors.As(err, &flagErr):
		fmt.Fprintf(w, "error: %v\n", err)
		if cmd != nil {
			fmt.Fprintf(w, "\nUsage:\n  %s\n\nRun '%s --help' for more.\n", cmd.UseLine(), cmd.CommandPath())
		}
	default:
		fmt.Fprintf(w, "error: %s\n", message(err))
	}
}

// message is err on one line, with the wire code appended where the text alone may not say
// what kind of failure it was. Its text may come from a host or a bot, through pmd: anything
// a terminal would act on is escaped, line breaks included.
func message(err error) string {
	msg := err.Error()
	var we *wire.Error
	if errors.As(err, &we) {
		switch we.Code {
		case wire.CodeNotFound, wire.CodeInvalidArgument, wire.CodeConflict:
		default:
			msg += " (" + we.Code + ")"
		}
	}
	return termsafe.Line(msg)
}
