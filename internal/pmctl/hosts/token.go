package hosts

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/pocketmolt/pocketmolt/internal/apiclient"
	"github.com/pocketmolt/pocketmolt/internal/output"
	"github.com/pocketmolt/pocketmolt/internal/pmctl/cmdutil"
	"github.com/pocketmolt/pocketmolt/internal/pmctl/iostreams"
	"github.com/pocketmolt/pocketmolt/internal/termsafe"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

func newCmdToken(f *cmdutil.Factory) *cobra.Command {
	cmd := cmdutil.Group(&cobra.Command{
		Use:   "token <command>",
		Short: "Manage enrollment tokens",
	})
	cmd.AddCommand(NewCmdTokenCreate(f, nil))
	return cmd
}

// TokenCreateOptions are the inputs of `hosts token create`.
type TokenCreateOptions struct {
	IO        *iostreams.IOStreams
	APIClient func() (*apiclient.Client, error)
	Now       func() time.Time
	Format    output.Format
	Name      string
	TTL       time.Duration
	// ForBot names the bot (placed dedicated) whose host of its own this is.
	ForBot string
}

// NewCmdTokenCreate returns `hosts token create`.
func NewCmdTokenCreate(f *cmdutil.Factory, runF func(context.Context, *TokenCreateOptions) error) *cobra.Command {
	opts := &TokenCreateOptions{IO: f.IOStreams, APIClient: f.APIClient, Now: f.Now}
	cmd := &cobra.Command{
		Use:   "create <name>",
		Short: "Create a one-time enrollment token for a new host",
		Long: `Create a host record called <name> and a one-time enrollment token for it.

The token is printed once on stdout; pmd keeps only its hash. Run the printed
"pmagent enroll" command on the new machine before the token expires.

With --for-bot, the host is the dedicated host of that bot (one created with
--placement dedicated, waiting for its host): once enrolled and online it runs that
bot, and no other bot is ever placed on it.`,
		Example: `  pmctl hosts token create edge-1
  pmctl hosts token create edge-2 --ttl 15m -o json
  pmctl hosts token create vip-1 --for-bot alice`,
		Args: cmdutil.ExactArgs(1, "missing host name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Name = args[0]
			if opts.TTL < 0 {
				return cmdutil.FlagErrorf("--ttl must not be negative")
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return tokenCreateRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().DurationVar(&opts.TTL, "ttl", 0, "how long the token stays valid (pmd's default: 1h)")
	cmd.Flags().StringVar(&opts.ForBot, "for-bot", "", "make the host the dedicated host of this bot (name or id)")
	cmdutil.AddFormatFlag(cmd, &opts.Format)
	return cmd
}

func tokenCreateRun(ctx context.Context, opts *TokenCreateOptions) error {
	c, err := opts.APIClient()
	if err != nil {
		return err
	}
	tok, err := c.CreateHostToken(ctx, wire.TokenRequest{Name: opts.Name, TTL: wire.Duration(opts.TTL), ForBot: opts.ForBot})
	if err != nil {
		return fmt.Errorf("create token for host %s: %w", opts.Name, err)
	}
	if opts.Format != output.Table {
		return output.Print(opts.IO.Out, opts.IO.IsTerminal, opts.Format, tok, nil)
	}
	fmt.Fprintln(opts.IO.Out, termsafe.Line(tok.Token))
	server := tok.Server
	if server == "" {
		server = "<pmd-agent-address>"
	}
	fmt.Fprintf(opts.IO.ErrOut, "Token for host %s, valid until %s (%s). On the host, run:\n  pmagent enroll --server %s --token %s\n",
		opts.Name, output.Timestamp(tok.ExpiresAt), output.Ago(opts.Now(), tok.ExpiresAt), server, tok.Token)
	if tok.ForBot != "" {
		fmt.Fprintf(opts.IO.ErrOut, "The host will run bot %s (%s) and no other.\n", opts.ForBot, tok.ForBot)
	}
	return nil
}
