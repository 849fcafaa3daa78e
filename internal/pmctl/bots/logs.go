package bots

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/pocketmolt/pocketmolt/internal/apiclient"
	"github.com/pocketmolt/pocketmolt/internal/pmctl/cmdutil"
	"github.com/pocketmolt/pocketmolt/internal/pmctl/iostreams"
	"github.com/pocketmolt/pocketmolt/internal/termsafe"
)

// LogsOptions are the inputs of `bots logs`.
type LogsOptions struct {
	IO        *iostreams.IOStreams
	APIClient func() (*apiclient.Client, error)
	Ref       string
	Follow    bool
	Tail      int
	// Raw prints the log as the container wrote it, control characters and all.
	Raw bool
}

// NewCmdLogs returns `bots logs`.
func NewCmdLogs(f *cmdutil.Factory, runF func(context.Context, *LogsOptions) error) *cobra.Command {
	opts := &LogsOptions{IO: f.IOStreams, APIClient: f.APIClient}
	cmd := &cobra.Command{
		Use:   "logs <name|id>",
		Short: "Print a bot's container log",
		Long: `Print the last lines of a bot's container log, as the gateway wrote them, and with
--follow keep printing new lines as they come. pmd records each read in the audit log.

The log is written by the bot, so control characters in it are printed as escapes (\x1b,
\u202e…) and cannot drive the terminal; --raw prints the bytes as they are, for a file or
a pipe.

--timeout never cuts the stream: without --follow it bounds only the wait for pmd to
answer, and with --follow it does not apply, since a quiet bot may log nothing for a
long time. Interrupting a followed log (Ctrl-C) is the normal way to stop it and exits
0; interrupting anything else exits 2.`,
		Example: `  pmctl bots logs alice
  pmctl bots logs alice -f --tail 0
  pmctl bots logs alice --tail 1000 | grep -i error`,
		Args:              cmdutil.ExactArgs(1, "missing bot name or id"),
		ValidArgsFunction: completeBots(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.Tail < 0 {
				return cmdutil.FlagErrorf("--tail must not be negative")
			}
			opts.Ref = args[0]
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return logsRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVarP(&opts.Follow, "follow", "f", false, "keep printing new lines until interrupted")
	cmd.Flags().IntVar(&opts.Tail, "tail", 100, "number of lines from the end of the log to print first")
	cmd.Flags().BoolVar(&opts.Raw, "raw", false, "print control characters as they are instead of escaping them")
	return cmd
}

func logsRun(ctx context.Context, opts *LogsOptions) error {
	c, err := opts.APIClient()
	if err != nil {
		return err
	}
	rc, err := c.BotLogs(ctx, opts.Ref, apiclient.LogsOptions{Follow: opts.Follow, Tail: opts.Tail})
	if err != nil {
		return stopped(ctx, opts.Follow, fmt.Errorf("logs of bot %s: %w", opts.Ref, err))
	}
	defer rc.Close()
	if opts.Raw {
		if _, err := io.Copy(opts.IO.Out, rc); err != nil {
			return stopped(ctx, opts.Follow, fmt.Errorf("logs of bot %s: %w", opts.Ref, err))
		}
		return nil
	}
	// The escaping writer holds back at most an incomplete rune or a CR, which the next read
	// completes; whatever it holds at the end is written, escaped, however the stream ends.
	out := termsafe.NewWriter(opts.IO.Out)
	_, err = io.Copy(out, rc)
	if ferr := out.Flush(); err == nil {
		err = ferr
	}
	if err != nil {
		return stopped(ctx, opts.Follow, fmt.Errorf("logs of bot %s: %w", opts.Ref, err))
	}
	return nil
}

// stopped decides what an error means once ctx may be done: following a log ends only by
// interruption, so that is success; for a bounded read it is a cancellation, as everywhere.
func stopped(ctx context.Context, follow bool, err error) error {
	if ctx.Err() == nil {
		return err
	}
	if follow {
		return nil
	}
	return ctx.Err()
}
