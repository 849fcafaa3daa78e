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
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// EditOptions are the inputs of `bots edit`. Secrets are read from files, never from flags.
type EditOptions struct {
	IO        *iostreams.IOStreams
	APIClient func() (*apiclient.Client, error)
	Format    output.Format
	Ref       string
	Disk      int64
	Model     string
	// APIKeyFile and TelegramTokenFile are paths; "-" is stdin; "" leaves the secret as it is.
	APIKeyFile        string
	TelegramTokenFile string
	// NoTelegram removes the bot's Telegram token.
	NoTelegram bool
	// PlatformKey drops the bot's own API key for the platform's.
	PlatformKey bool
}

// NewCmdEdit returns `bots edit`.
func NewCmdEdit(f *cmdutil.Factory, runF func(context.Context, *EditOptions) error) *cobra.Command {
	opts := &EditOptions{IO: f.IOStreams, APIClient: f.APIClient}
	var disk cmdutil.SizeFlag
	cmd := &cobra.Command{
		Use:   "edit <name|id> [--disk <size>] [--model <provider/model>] [--api-key-file <file> | --platform-key] [--telegram-token-file <file> | --no-telegram]",
		Short: "Change a bot's limits, model or keys",
		Long: `Change a bot.

--disk changes what its state and workspace may take on its host. The host applies it
without restarting the bot; a bot its agent stopped for being over its old limit starts
again once it fits under the new one.

--model, --telegram-token-file and --no-telegram change its configuration: its host
re-creates the container with the new settings (the workspace stays), so the bot
restarts. --api-key-file alone changes the key its host's model endpoint uses for it,
in place: the bot holds no provider key, and does not restart; --platform-key drops the
bot's own key for the platform's. A bot with its own key
that moves to a model of another provider needs that provider's key in the same
command. Secrets are read from files, "-" meaning stdin, and never shown.`,
		Example: `  pmctl bots edit alice --disk 20GiB
  pmctl bots edit alice --model anthropic/claude-opus-4-6
  pass show openai | pmctl bots edit alice --model openai/gpt-5 --api-key-file -
  pmctl bots edit alice --api-key-file ./rotated-key.txt
  pmctl bots edit alice --no-telegram`,
		Args: cmdutil.ExactArgs(1, "missing bot name or id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Ref, opts.Disk = args[0], int64(disk)
			switch {
			case opts.Disk == 0 && opts.Model == "" && opts.APIKeyFile == "" && !opts.PlatformKey && opts.TelegramTokenFile == "" && !opts.NoTelegram:
				return cmdutil.FlagErrorf("give what to change: --disk, --model, --api-key-file, --platform-key, --telegram-token-file or --no-telegram")
			case opts.PlatformKey && opts.APIKeyFile != "":
				return cmdutil.FlagErrorf("--api-key-file and --platform-key cannot be combined")
			case opts.NoTelegram && opts.TelegramTokenFile != "":
				return cmdutil.FlagErrorf("--telegram-token-file and --no-telegram cannot be combined")
			case opts.APIKeyFile == "-" && opts.TelegramTokenFile == "-":
				return cmdutil.FlagErrorf("only one of --api-key-file and --telegram-token-file can be - (stdin)")
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return editRun(cmd.Context(), opts)
		},
		ValidArgsFunction: completeBots(f),
	}
	fl := cmd.Flags()
	fl.Var(&disk, "disk", "disk limit of the bot's state and workspace, e.g. 20GiB")
	fl.StringVar(&opts.Model, "model", "", "new model as provider/model, e.g. anthropic/claude-opus-4-6")
	fl.StringVar(&opts.APIKeyFile, "api-key-file", "", "file holding the model provider's new API key, - for stdin")
	fl.StringVar(&opts.TelegramTokenFile, "telegram-token-file", "", "file holding the new Telegram bot token, - for stdin")
	fl.BoolVar(&opts.PlatformKey, "platform-key", false, "drop the bot's own API key: its calls use the platform's key for its provider")
	fl.BoolVar(&opts.NoTelegram, "no-telegram", false, "remove the bot's Telegram token")
	cmdutil.AddFormatFlag(cmd, &opts.Format)
	return cmd
}

func editRun(ctx context.Context, opts *EditOptions) error {
	req := wire.EditBotRequest{DiskBytes: opts.Disk}
	if opts.Model != "" {
		req.Model = &opts.Model
	}
	if opts.IO.CanPrompt && (opts.APIKeyFile == "-" || opts.TelegramTokenFile == "-") {
		fmt.Fprintln(opts.IO.ErrOut, "Reading the secret from stdin; end it with Ctrl-D.")
	}
	if opts.APIKeyFile != "" {
		key, err := readSecret(opts.IO.In, "--api-key-file", opts.APIKeyFile)
		if err != nil {
			return err
		}
		req.APIKey = &key
	}
	if opts.PlatformKey {
		none := ""
		req.APIKey = &none
	}
	if opts.TelegramTokenFile != "" {
		tok, err := readSecret(opts.IO.In, "--telegram-token-file", opts.TelegramTokenFile)
		if err != nil {
			return err
		}
		req.TelegramToken = &tok
	}
	if opts.NoTelegram {
		none := ""
		req.TelegramToken = &none
	}
	c, err := opts.APIClient()
	if err != nil {
		return err
	}
	b, err := c.EditBot(ctx, opts.Ref, req)
	if err != nil {
		return fmt.Errorf("edit bot %s: %w", opts.Ref, err)
	}
	if opts.Format != output.Table {
		return output.Print(opts.IO.Out, opts.IO.IsTerminal, opts.Format, b, nil)
	}
	var what []string
	switch {
	case req.Model != nil || req.TelegramToken != nil:
		what = append(what, fmt.Sprintf("reconfigured (spec version %d): its host re-creates the container with the new settings", b.SpecVersion))
	case req.APIKey != nil:
		what = append(what, "new key: its host's model endpoint uses it from the next call, without a restart")
	}
	if opts.Disk != 0 {
		what = append(what, "disk limit "+output.Bytes(uint64(b.Resources.DiskBytes)))
	}
	fmt.Fprintf(opts.IO.ErrOut, "Bot %s (%s): %s.\n", b.Name, b.ID, strings.Join(what, "; "))
	return nil
}
