package bots

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pocketmolt/pocketmolt/internal/apiclient"
	"github.com/pocketmolt/pocketmolt/internal/output"
	"github.com/pocketmolt/pocketmolt/internal/pmctl/cmdutil"
	"github.com/pocketmolt/pocketmolt/internal/pmctl/iostreams"
	"github.com/pocketmolt/pocketmolt/internal/termsafe"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// ChatOptions are the inputs of `bots chat`.
type ChatOptions struct {
	IO        *iostreams.IOStreams
	APIClient func() (*apiclient.Client, error)
	Format    output.Format
	Ref       string
	Message   string
	Session   string
}

// NewCmdChat returns `bots chat`.
func NewCmdChat(f *cmdutil.Factory, runF func(context.Context, *ChatOptions) error) *cobra.Command {
	opts := &ChatOptions{IO: f.IOStreams, APIClient: f.APIClient}
	cmd := &cobra.Command{
		Use:   "chat <name|id> <message>",
		Short: "Send a bot one message and print its reply",
		Long: `Send a bot one message through its gateway and print the reply on stdout; token usage
goes to stderr. Messages with the same --session continue one conversation; without it
pmd uses pmctl's own session. pmd records the exchange in the audit log (who, which bot
and session; never the text).

Control characters in the reply are printed as escapes (\x1b, \u202e…), so a reply cannot
drive the terminal; -o json gives it exactly.

The reply comes from the model, so it can take a while: raise --timeout for slow models.`,
		Example: `  pmctl bots chat alice "hello"
  pmctl bots chat alice "what did I just say?" --session test-1
  pmctl bots chat alice "ping" -o json`,
		Args: func(_ *cobra.Command, args []string) error {
			switch len(args) {
			case 0:
				return cmdutil.FlagErrorf("missing bot name or id")
			case 1:
				return cmdutil.FlagErrorf("missing message")
			case 2:
				return nil
			}
			return cmdutil.FlagErrorf("too many arguments: %s (quote the message)", strings.Join(args[2:], " "))
		},
		ValidArgsFunction: completeBots(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Ref, opts.Message = args[0], args[1]
			if strings.TrimSpace(opts.Message) == "" {
				return cmdutil.FlagErrorf("the message is empty")
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return chatRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.Session, "session", "", "session key that keeps a conversation")
	cmdutil.AddFormatFlag(cmd, &opts.Format)
	return cmd
}

func chatRun(ctx context.Context, opts *ChatOptions) error {
	c, err := opts.APIClient()
	if err != nil {
		return err
	}
	resp, err := c.ChatBot(ctx, opts.Ref, wire.ChatRequest{Message: opts.Message, Session: opts.Session})
	if err != nil {
		return fmt.Errorf("chat with bot %s: %w", opts.Ref, err)
	}
	if opts.Format != output.Table {
		return output.Print(opts.IO.Out, opts.IO.IsTerminal, opts.Format, resp, nil)
	}
	// The reply is what the model wrote, steered by whoever talks to the bot: escaped, so it
	// cannot drive the terminal; -o json carries it exactly.
	reply := termsafe.String(resp.Reply)
	if !strings.HasSuffix(reply, "\n") {
		reply += "\n"
	}
	if _, err := fmt.Fprint(opts.IO.Out, reply); err != nil {
		return err
	}
	u := resp.Usage
	fmt.Fprintf(opts.IO.ErrOut, "usage: %d prompt + %d completion = %d tokens\n", u.PromptTokens, u.CompletionTokens, u.TotalTokens)
	return nil
}
