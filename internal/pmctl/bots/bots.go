// Package bots implements `pmctl bots`: creating bots, watching them, their logs, probes and
// a chat round trip, and stopping, starting and deleting them.
package bots

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pocketmolt/pocketmolt/internal/apiclient"
	"github.com/pocketmolt/pocketmolt/internal/output"
	"github.com/pocketmolt/pocketmolt/internal/pmctl/cmdutil"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// NewCmdBots returns the `bots` noun with its verbs.
func NewCmdBots(f *cmdutil.Factory) *cobra.Command {
	cmd := cmdutil.Group(&cobra.Command{
		Use:   "bots <command>",
		Short: "Manage bots",
		Long: `Manage bots: OpenClaw gateways, one container each, on the fleet's hosts.

pmd records what you ask for and the host converges on it in the background, so
create, stop, start, restart and delete return at once; watch the result with
"pmctl bots get" or "pmctl bots list".`,
		Example: `  pmctl bots create --name alice --model anthropic/claude-sonnet-4-6 --api-key-file ./anthropic.txt
  pmctl bots list
  pmctl bots logs alice -f
  pmctl bots chat alice "hello"`,
	})
	cmd.AddCommand(
		NewCmdCreate(f, nil),
		NewCmdList(f, nil),
		NewCmdGet(f, nil),
		NewCmdEdit(f, nil),
		NewCmdStop(f, nil),
		NewCmdStart(f, nil),
		NewCmdRestart(f, nil),
		NewCmdLogs(f, nil),
		NewCmdHealth(f, nil),
		NewCmdChat(f, nil),
		NewCmdDelete(f, nil),
	)
	return cmd
}

// completeBots offers bot names for the first argument.
func completeBots(f *cmdutil.Factory) cobra.CompletionFunc {
	return cmdutil.CompleteNames(f, (*apiclient.Client).ListBots, func(b wire.Bot) (string, string) { return b.Name, b.Status })
}

// ActionOptions are the inputs of the verbs that change a bot's desired state: stop, start
// and restart.
type ActionOptions = cmdutil.RefOptions

// newCmdAction builds stop, start or restart; only the wording and the call differ.
func newCmdAction(f *cmdutil.Factory, cmd *cobra.Command, run, runF func(context.Context, *ActionOptions) error) *cobra.Command {
	return cmdutil.NewRefCmd(f, cmd, "missing bot name or id", completeBots(f), run, runF)
}

// actionRun calls do and reports the bot it returns: on stderr for a table, on stdout as
// JSON or YAML otherwise.
func actionRun(ctx context.Context, opts *ActionOptions, verb string, do func(*apiclient.Client, context.Context, string) (*wire.Bot, error), done string) error {
	c, err := opts.APIClient()
	if err != nil {
		return err
	}
	b, err := do(c, ctx, opts.Ref)
	if err != nil {
		return fmt.Errorf("%s bot %s: %w", verb, opts.Ref, err)
	}
	if opts.Format != output.Table {
		return output.Print(opts.IO.Out, opts.IO.IsTerminal, opts.Format, b, nil)
	}
	fmt.Fprintf(opts.IO.ErrOut, "%s bot %s (%s): status %s.\n", done, b.Name, b.ID, b.Status)
	return nil
}

// botView is the key/value table of one bot; rows with nothing to say are left out.
func botView(b *wire.Bot, now time.Time, tty bool) output.Tabular {
	when := func(t time.Time) string {
		if tty {
			return output.Timestamp(t) + " (" + output.Ago(now, t) + ")"
		}
		return output.Timestamp(t)
	}
	var kv []output.KV
	add := func(k, v string) {
		if v != "" {
			kv = append(kv, output.KV{Key: k, Value: v})
		}
	}
	add("name", b.Name)
	add("id", b.ID)
	host := b.HostName
	switch {
	case host == "" && b.HostID == "":
		host = "(not placed yet)"
	case host == "":
		host = b.HostID
	case b.HostID != "" && b.HostID != host:
		host += " (" + b.HostID + ")"
	}
	add("host", host)
	add("owner", b.Owner)
	if b.Placement == wire.PlacementDedicated {
		add("placement", "dedicated: a host of its own")
	}
	add("status", b.Status)
	add("waiting", b.Waiting)
	add("health", b.Health)
	add("desired", b.Desired)
	add("progress", b.Progress)
	add("last error", b.LastError)
	if b.Status == wire.BotDeleting && b.Purge {
		add("purge", "yes: the workspace is deleted too")
	}
	add("image", b.Image)
	add("model", b.Model)
	add("tools profile", b.ToolsProfile)
	add("telegram", yesNo(b.Telegram))
	mem := "-"
	if r := b.Resources; r.MemoryBytes > 0 {
		mem = output.Bytes(uint64(r.MemoryBytes))
	}
	if b.MemoryUsage > 0 {
		mem += " (" + output.Bytes(uint64(b.MemoryUsage)) + " used)"
	}
	add("memory", mem)
	disk := "-"
	if r := b.Resources; r.DiskBytes > 0 {
		disk = output.Bytes(uint64(r.DiskBytes))
	}
	if b.DiskUsage > 0 {
		disk += " (" + output.Bytes(uint64(b.DiskUsage)) + " used"
		if b.Resources.DiskBytes > 0 && b.DiskUsage > b.Resources.DiskBytes {
			disk += ": over the limit"
		}
		disk += ")"
	}
	add("disk", disk)
	if b.Resources.CPUs > 0 {
		add("cpus", strconv.FormatFloat(b.Resources.CPUs, 'f', -1, 64))
	}
	if b.Resources.PIDs > 0 {
		add("pids", strconv.FormatInt(b.Resources.PIDs, 10))
	}
	add("spec version", strconv.FormatInt(b.SpecVersion, 10))
	observed := "-"
	if b.ObservedVersion > 0 {
		observed = strconv.FormatInt(b.ObservedVersion, 10)
		if b.ObservedVersion < b.SpecVersion {
			observed += " (converging)"
		}
	}
	add("observed version", observed)
	add("container", shortID(b.ContainerID))
	add("restarts", strconv.Itoa(b.Restarts))
	if b.StartedAt != nil {
		v := output.Timestamp(*b.StartedAt)
		if tty && running(b) {
			v += " (up " + uptime(now.Sub(*b.StartedAt)) + ")"
		}
		add("started", v)
	}
	add("created", when(b.CreatedAt))
	add("updated", when(b.UpdatedAt))
	return output.KeyValues(kv...)
}

// running is true while the bot's container is up, so its start time means an uptime.
func running(b *wire.Bot) bool {
	return b.StartedAt != nil && (b.Status == wire.BotRunning || b.Status == wire.BotStarting)
}

// uptime formats d with its two largest units: "45s", "3m12s", "2h5m", "3d4h".
func uptime(d time.Duration) string {
	d = d.Truncate(time.Second)
	switch {
	case d < 0:
		return "0s"
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm%ds", int(d/time.Minute), int(d%time.Minute/time.Second))
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh%dm", int(d/time.Hour), int(d%time.Hour/time.Minute))
	default:
		return fmt.Sprintf("%dd%dh", int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour))
	}
}

// shortID is a container id as docker ps shows it.
func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// compactBytes is output.Bytes without the space, for narrow columns: "312MiB".
func compactBytes(n int64) string {
	return strings.ReplaceAll(output.Bytes(uint64(max(n, 0))), " ", "")
}

func yesNo(v bool) string {
	if v {
		return "yes"
	}
	return "no"
}

// orDash shows an empty cell as "-" on a terminal and leaves it empty for scripts.
func orDash(tty bool, s string) string {
	if s == "" && tty {
		return "-"
	}
	return s
}

// completeHostNames offers host names for a --host flag.
func completeHostNames(f *cmdutil.Factory) cobra.CompletionFunc {
	return func(cmd *cobra.Command, _ []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
		c, err := f.APIClient()
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		hosts, err := c.ListHosts(cmd.Context())
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		out := make([]cobra.Completion, 0, len(hosts))
		for _, h := range hosts {
			out = append(out, cobra.CompletionWithDesc(h.Name, h.Status))
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}
