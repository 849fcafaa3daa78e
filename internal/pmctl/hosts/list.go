package hosts

import (
	"context"
	"fmt"
	"io"
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

// ListOptions are the inputs of `hosts list`.
type ListOptions struct {
	IO        *iostreams.IOStreams
	APIClient func() (*apiclient.Client, error)
	Now       func() time.Time
	Format    output.Format
}

// NewCmdList returns `hosts list`. runF, when not nil, replaces the run so tests can stop
// before the network.
func NewCmdList(f *cmdutil.Factory, runF func(context.Context, *ListOptions) error) *cobra.Command {
	opts := &ListOptions{IO: f.IOStreams, APIClient: f.APIClient, Now: f.Now}
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List hosts",
		Long: `List every host with its status, its bots against its capacity, agent and Docker
versions, when pmd last heard from it, and a note when pmd refuses the capacity it
declares (see "pmctl hosts set") or when it is a bot's dedicated host. Piped output has
no header and tab-separated columns.

When bots wait for a host with room, a warning on stderr names them and why.`,
		Example: `  pmctl hosts list
  pmctl hosts list -o json`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return listRun(cmd.Context(), opts)
		},
	}
	cmdutil.AddFormatFlag(cmd, &opts.Format)
	return cmd
}

func listRun(ctx context.Context, opts *ListOptions) error {
	c, err := opts.APIClient()
	if err != nil {
		return err
	}
	hosts, err := c.ListHosts(ctx)
	if err != nil {
		return fmt.Errorf("list hosts: %w", err)
	}
	tty := opts.IO.IsTerminal
	if len(hosts) == 0 && opts.Format == output.Table && tty {
		fmt.Fprintln(opts.IO.ErrOut, "No hosts yet: create an enrollment token with `pmctl hosts token create <name>`.")
		warnWaiting(ctx, c, opts.IO.ErrOut)
		return nil
	}
	now := opts.Now()
	table := output.Columns(hosts,
		output.Column[wire.Host]{Header: "NAME", Value: func(h wire.Host) string { return h.Name }},
		output.Column[wire.Host]{Header: "STATUS", Value: func(h wire.Host) string { return h.Status }},
		output.Column[wire.Host]{Header: "BOTS", Value: func(h wire.Host) string { return botsUse(&h) }},
		output.Column[wire.Host]{Header: "AGENT", Value: func(h wire.Host) string {
			if h.Facts == nil {
				return orDash(tty, "")
			}
			return orDash(tty, h.Facts.AgentVersion)
		}},
		output.Column[wire.Host]{Header: "DOCKER", Value: func(h wire.Host) string {
			if h.Facts == nil {
				return orDash(tty, "")
			}
			return orDash(tty, h.Facts.DockerVersion)
		}},
		output.Column[wire.Host]{Header: "LAST SEEN", Value: func(h wire.Host) string {
			switch {
			case h.LastSeenAt == nil:
				return orDash(tty, "")
			case tty:
				return output.Ago(now, *h.LastSeenAt)
			default:
				return output.Timestamp(*h.LastSeenAt)
			}
		}},
		output.Column[wire.Host]{Header: "NOTE", Value: func(h wire.Host) string {
			var notes []string
			if h.CapacityRefused != "" {
				notes = append(notes, "capacity refused")
			}
			if h.DedicatedBot != "" {
				notes = append(notes, "dedicated to "+h.DedicatedBot)
			}
			return strings.Join(notes, ", ")
		}},
	)
	if err := output.Print(opts.IO.Out, tty, opts.Format, hosts, table); err != nil {
		return err
	}
	warnWaiting(ctx, c, opts.IO.ErrOut)
	return nil
}

// maxWaitingNamed bounds how many waiting bots the warning names.
const maxWaitingNamed = 5

// warnWaiting warns on w when bots wait for a host with room, naming them and why. The
// hosts were listed already: a failure to read the bots only leaves the warning out.
func warnWaiting(ctx context.Context, c *apiclient.Client, w io.Writer) {
	bots, err := c.ListBots(ctx)
	if err != nil {
		return
	}
	var names []string
	n := 0
	for _, b := range bots {
		if b.Status != wire.BotWaiting {
			continue
		}
		n++
		if len(names) < maxWaitingNamed {
			names = append(names, termsafe.Line(b.Name)+" ("+termsafe.Line(b.Waiting)+")")
		}
	}
	switch {
	case n == 0:
		return
	case n > len(names):
		names = append(names, fmt.Sprintf("and %d more", n-len(names)))
	}
	verb := "bots wait"
	if n == 1 {
		verb = "bot waits"
	}
	fmt.Fprintf(w, "warning: %d %s for a host with room: %s\n", n, verb, strings.Join(names, ", "))
}
