package hosts

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/pocketmolt/pocketmolt/internal/apiclient"
	"github.com/pocketmolt/pocketmolt/internal/output"
	"github.com/pocketmolt/pocketmolt/internal/pmctl/cmdutil"
	"github.com/pocketmolt/pocketmolt/internal/pmctl/iostreams"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// SetOptions are the inputs of `hosts set`.
type SetOptions struct {
	IO        *iostreams.IOStreams
	APIClient func() (*apiclient.Client, error)
	Format    output.Format
	Ref       string
	Update    wire.HostUpdate
}

// NewCmdSet returns `hosts set`.
func NewCmdSet(f *cmdutil.Factory, runF func(context.Context, *SetOptions) error) *cobra.Command {
	opts := &SetOptions{IO: f.IOStreams, APIClient: f.APIClient}
	var bots int
	var memory cmdutil.SizeFlag
	cmd := &cobra.Command{
		Use:   "set <name|id> [--capacity-bots N] [--capacity-memory SIZE] [--clear-capacity]",
		Short: "Set a host's capacity limit",
		Long: `Set the most a host may offer bots. pmd places bots on a host within the capacity its
agent declares, and never beyond a limit: by default the memory the host reported when
it enrolled (all of it, and a bot per GiB of it); with this command, the operator's.
A host that declares more than its limit is shown as refused (hosts get, hosts list,
the pocketmolt_host_capacity_refused metric) and placement uses the limit.

Memory takes bytes or a binary unit: 16GiB, 1536MiB, 16G. --clear-capacity drops the
operator's limit, back to the enrollment's. Each change is in the audit log.`,
		Example: `  pmctl hosts set edge-1 --capacity-bots 8 --capacity-memory 16GiB
  pmctl hosts set edge-1 --clear-capacity`,
		Args:              cmdutil.ExactArgs(1, "missing host name or id"),
		ValidArgsFunction: completeHosts(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Ref = args[0]
			fl := cmd.Flags()
			opts.Update = wire.HostUpdate{ClearCapacity: opts.Update.ClearCapacity}
			switch {
			case opts.Update.ClearCapacity && (fl.Changed("capacity-bots") || fl.Changed("capacity-memory")):
				return cmdutil.FlagErrorf("--clear-capacity cannot be combined with --capacity-bots or --capacity-memory")
			case !opts.Update.ClearCapacity && !fl.Changed("capacity-bots") && !fl.Changed("capacity-memory"):
				return cmdutil.FlagErrorf("nothing to set: give --capacity-bots, --capacity-memory or --clear-capacity")
			case fl.Changed("capacity-bots") && bots < 1:
				return cmdutil.FlagErrorf("--capacity-bots must be at least 1 (drain the host to place nothing on it)")
			}
			if fl.Changed("capacity-bots") {
				opts.Update.CapacityBots = &bots
			}
			if fl.Changed("capacity-memory") {
				m := int64(memory)
				opts.Update.CapacityMemoryBytes = &m
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return setRun(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&bots, "capacity-bots", 0, "most bots the host may run")
	fl.Var(&memory, "capacity-memory", "most memory the host may give bots, e.g. 16GiB")
	fl.BoolVar(&opts.Update.ClearCapacity, "clear-capacity", false, "drop the operator's limit")
	cmdutil.AddFormatFlag(cmd, &opts.Format)
	return cmd
}

func setRun(ctx context.Context, opts *SetOptions) error {
	c, err := opts.APIClient()
	if err != nil {
		return err
	}
	h, err := c.SetHost(ctx, opts.Ref, opts.Update)
	if err != nil {
		return fmt.Errorf("set host %s: %w", opts.Ref, err)
	}
	if opts.Format != output.Table {
		return output.Print(opts.IO.Out, opts.IO.IsTerminal, opts.Format, h, nil)
	}
	fmt.Fprintf(opts.IO.ErrOut, "Host %s (%s): capacity limit %s.\n", h.Name, h.ID, limitText(h))
	if h.CapacityRefused != "" {
		fmt.Fprintf(opts.IO.ErrOut, "It declares more: %s; pmd places bots within the limit.\n", h.CapacityRefused)
	}
	return nil
}
