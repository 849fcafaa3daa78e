package bots

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pocketmolt/pocketmolt/internal/apiclient"
	"github.com/pocketmolt/pocketmolt/internal/output"
	"github.com/pocketmolt/pocketmolt/internal/pmctl/cmdutil"
	"github.com/pocketmolt/pocketmolt/internal/pmctl/iostreams"
	"github.com/pocketmolt/pocketmolt/internal/termsafe"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// maxSecretBytes bounds a secret file: API keys and bot tokens are far shorter, so anything
// bigger is the wrong file.
const maxSecretBytes = 64 << 10

// CreateOptions are the inputs of `bots create`. The secrets are read from files, never from
// flags, so they stay out of shell history and process listings.
type CreateOptions struct {
	IO        *iostreams.IOStreams
	APIClient func() (*apiclient.Client, error)
	Now       func() time.Time
	Format    output.Format

	Name         string
	Host         string
	Model        string
	Image        string
	ToolsProfile string
	// APIKeyFile and TelegramTokenFile are paths; "-" is stdin.
	APIKeyFile        string
	TelegramTokenFile string
	Memory            int64
	Disk              int64
	CPUs              float64
	PIDs              int64
	Force             bool
	// Placement is "" (pmd's default, shared), wire.PlacementShared or wire.PlacementDedicated.
	Placement string
}

// NewCmdCreate returns `bots create`.
func NewCmdCreate(f *cmdutil.Factory, runF func(context.Context, *CreateOptions) error) *cobra.Command {
	opts := &CreateOptions{IO: f.IOStreams, APIClient: f.APIClient, Now: f.Now}
	var memory, disk cmdutil.SizeFlag
	cmd := &cobra.Command{
		Use:   "create --name <name> --model <provider/model> [--api-key-file <file>] [flags]",
		Short: "Create a bot",
		Long: `Create a bot. pmd records it, picks a host unless --host names one, and the host
pulls the image and starts the gateway in the background: the command returns at once
with the bot still pending. Watch it with "pmctl bots get <name>".

When no host has room (and --host names none), the bot is recorded waiting, and pmd
places it as soon as a host has room for it. A bot with --placement dedicated always
waits for a host of its own: enroll one with
"pmctl hosts token create <host> --for-bot <name>"; no other bot goes on that host.

Without --api-key-file the bot's model calls use the platform's key for the model's
provider (pmd's anthropic-api-key-file or openai-api-key-file); with it, the key given.
Either way the key never reaches the bot: its host's model endpoint swaps it in for the
bot's own model token, and meters every call ("pmctl usage get <name>").

The API key and the Telegram bot token are read from files, "-" meaning stdin, with
trailing whitespace trimmed. They are sent to pmd only in this request and never shown
again.

Memory and disk take bytes or a binary unit: 2GiB, 1536MiB, 2G (= 2GiB, as in docker).
Resources left unset get pmd's defaults; --force allows less memory than the gateway needs.
The disk limit bounds what the bot's state and workspace take on its host: its agent
stops the bot while it is over (change it later with "pmctl bots edit --disk").`,
		Example: `  pmctl bots create --name alice --model anthropic/claude-sonnet-4-6 --telegram-token-file ./tg.txt
  pmctl bots create --name carol --model openai/gpt-5.1 --api-key-file ./carols-openai-key.txt
  pass show anthropic | pmctl bots create --name bob --host edge-1 \
    --model anthropic/claude-sonnet-4-6 --api-key-file - --memory 2GiB --cpus 2`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case opts.Name == "":
				return cmdutil.FlagErrorf("--name is required")
			case opts.Model == "":
				return cmdutil.FlagErrorf("--model is required")
			case opts.APIKeyFile == "-" && opts.TelegramTokenFile == "-":
				return cmdutil.FlagErrorf("only one of --api-key-file and --telegram-token-file can be - (stdin)")
			case opts.CPUs < 0:
				return cmdutil.FlagErrorf("--cpus must not be negative")
			case opts.PIDs < 0:
				return cmdutil.FlagErrorf("--pids must not be negative")
			case opts.Placement != "" && opts.Placement != wire.PlacementShared && opts.Placement != wire.PlacementDedicated:
				return cmdutil.FlagErrorf("--placement must be %s or %s", wire.PlacementShared, wire.PlacementDedicated)
			case opts.Placement == wire.PlacementDedicated && opts.Host != "":
				return cmdutil.FlagErrorf("--host and --placement dedicated cannot be combined: a dedicated bot goes on the host enrolled for it")
			}
			opts.Memory, opts.Disk = int64(memory), int64(disk)
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return createRun(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.Name, "name", "", "name of the bot (required)")
	fl.StringVar(&opts.Host, "host", "", "host name or id to run on (default: pmd picks one)")
	fl.StringVar(&opts.Model, "model", "", "model as provider/model, e.g. anthropic/claude-sonnet-4-6 (required)")
	fl.StringVar(&opts.APIKeyFile, "api-key-file", "", "file holding the bot owner's own API key for the model's provider, - for stdin (default: the platform's key)")
	fl.StringVar(&opts.TelegramTokenFile, "telegram-token-file", "", "file holding the Telegram bot token, - for stdin")
	fl.StringVar(&opts.Image, "image", "", "gateway image reference (default: pmd's)")
	fl.StringVar(&opts.ToolsProfile, "tools-profile", "", "OpenClaw tools profile, e.g. messaging (default: pmd's)")
	fl.Var(&memory, "memory", "memory limit, e.g. 2GiB (default: pmd's)")
	fl.Var(&disk, "disk", "disk limit of the bot's state and workspace, e.g. 10GiB (default: pmd's bot-disk-limit)")
	fl.Float64Var(&opts.CPUs, "cpus", 0, "CPU limit, e.g. 1.5 (default: pmd's)")
	fl.Int64Var(&opts.PIDs, "pids", 0, "process limit (default: pmd's)")
	fl.BoolVar(&opts.Force, "force", false, "allow less memory than the gateway's minimum")
	fl.StringVar(&opts.Placement, "placement", "", "shared (any host with room) or dedicated (a host of its own) (default: shared)")
	_ = cmd.RegisterFlagCompletionFunc("host", completeHostNames(f))
	cmdutil.AddFormatFlag(cmd, &opts.Format)
	return cmd
}

func createRun(ctx context.Context, opts *CreateOptions) error {
	if opts.IO.CanPrompt && (opts.APIKeyFile == "-" || opts.TelegramTokenFile == "-") {
		fmt.Fprintln(opts.IO.ErrOut, "Reading the secret from stdin; end it with Ctrl-D.")
	}
	var apiKey string
	var err error
	if opts.APIKeyFile != "" {
		if apiKey, err = readSecret(opts.IO.In, "--api-key-file", opts.APIKeyFile); err != nil {
			return err
		}
	}
	var telegram string
	if opts.TelegramTokenFile != "" {
		if telegram, err = readSecret(opts.IO.In, "--telegram-token-file", opts.TelegramTokenFile); err != nil {
			return err
		}
	}
	c, err := opts.APIClient()
	if err != nil {
		return err
	}
	b, err := c.CreateBot(ctx, wire.CreateBotRequest{
		Name:          opts.Name,
		Host:          opts.Host,
		Model:         opts.Model,
		Image:         opts.Image,
		ToolsProfile:  opts.ToolsProfile,
		TelegramToken: telegram,
		APIKey:        apiKey,
		Resources:     wire.Resources{MemoryBytes: opts.Memory, CPUs: opts.CPUs, PIDs: opts.PIDs, DiskBytes: opts.Disk},
		Force:         opts.Force,
		Placement:     opts.Placement,
	})
	if err != nil {
		return fmt.Errorf("create bot %s: %w", opts.Name, err)
	}
	if err := output.Print(opts.IO.Out, opts.IO.IsTerminal, opts.Format, b, botView(b, opts.Now(), opts.IO.IsTerminal)); err != nil {
		return err
	}
	if opts.Format != output.Table {
		return nil
	}
	switch {
	case b.Status == wire.BotWaiting && b.Placement == wire.PlacementDedicated:
		fmt.Fprintf(opts.IO.ErrOut, "Created bot %s: it waits for a host of its own. Enroll one for it with `pmctl hosts token create <host> --for-bot %s`; it starts there once the host is online.\n", b.Name, b.Name)
	case b.Status == wire.BotWaiting:
		fmt.Fprintf(opts.IO.ErrOut, "Created bot %s, but it waits: %s. pmd places it as soon as a host has room; watch it with `pmctl bots get %s`.\n", b.Name, termsafe.Line(b.Waiting), b.Name)
	default:
		fmt.Fprintf(opts.IO.ErrOut, "Created bot %s: it starts in the background; watch it with `pmctl bots get %s`.\n", b.Name, b.Name)
	}
	return nil
}

// readSecret reads the secret in path ("-" for stdin) with trailing whitespace trimmed. Its
// errors name the flag and the file, never the content.
func readSecret(stdin io.Reader, flag, path string) (string, error) {
	var r io.Reader = stdin
	name := "stdin"
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return "", fmt.Errorf("%s %s: %w", flag, path, unwrapPath(err))
		}
		defer f.Close()
		r, name = f, path
	}
	b, err := io.ReadAll(io.LimitReader(r, maxSecretBytes+1))
	if err != nil {
		return "", fmt.Errorf("%s %s: read: %w", flag, name, unwrapPath(err))
	}
	if len(b) > maxSecretBytes {
		return "", fmt.Errorf("%s %s: larger than %d KiB: not a secret file", flag, name, maxSecretBytes>>10)
	}
	s := strings.TrimRight(string(b), " \t\r\n")
	if s == "" {
		return "", fmt.Errorf("%s %s: empty", flag, name)
	}
	return s, nil
}

// unwrapPath drops the *fs.PathError wrapping whose text repeats the path we already name.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
