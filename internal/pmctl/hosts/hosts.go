// Package hosts implements `pmctl hosts`: the machines that run bots, their enrollment tokens,
// draining, revocation and removal.
package hosts

import (
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pocketmolt/pocketmolt/internal/apiclient"
	"github.com/pocketmolt/pocketmolt/internal/output"

	"github.com/pocketmolt/pocketmolt/internal/pmctl/cmdutil"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// NewCmdHosts returns the `hosts` noun with its verbs.
func NewCmdHosts(f *cmdutil.Factory) *cobra.Command {
	cmd := cmdutil.Group(&cobra.Command{
		Use:   "hosts <command>",
		Short: "Manage hosts",
		Long: `Manage the hosts that run bots.

A host joins with a one-time enrollment token: create one with "pmctl hosts token create",
then run the printed "pmagent enroll" command on the machine.`,
		Example: `  pmctl hosts list
  pmctl hosts token create edge-1 --ttl 30m
  pmctl hosts get edge-1 -o yaml`,
	})
	cmd.AddCommand(
		NewCmdList(f, nil),
		NewCmdGet(f, nil),
		newCmdToken(f),
		NewCmdDrain(f, nil),
		NewCmdUndrain(f, nil),
		NewCmdSet(f, nil),
		NewCmdRevoke(f, nil),
		NewCmdRemove(f, nil),
	)
	return cmd
}

// completeHosts offers host names for the first argument.
func completeHosts(f *cmdutil.Factory) cobra.CompletionFunc {
	return cmdutil.CompleteNames(f, (*apiclient.Client).ListHosts, func(h wire.Host) (string, string) { return h.Name, h.Status })
}

// orDash shows an empty cell as "-" on a terminal and leaves it empty for scripts.
func orDash(tty bool, s string) string {
	if s == "" && tty {
		return "-"
	}
	return s
}

// botsUse is a host's bot count against its capacity: "3/10", or "3/-" when it declares
// no capacity.
func botsUse(h *wire.Host) string {
	limit := "-"
	if h.Capacity.Bots > 0 {
		limit = strconv.Itoa(h.Capacity.Bots)
	}
	return strconv.Itoa(h.Bots) + "/" + limit
}

// memoryUse is the memory its bots are allotted against the host's capacity: "6GiB/20GiB".
func memoryUse(h *wire.Host) string {
	limit := "-"
	if h.Capacity.MemoryBytes > 0 {
		limit = compactBytes(h.Capacity.MemoryBytes)
	}
	return compactBytes(h.MemoryAllocated) + "/" + limit
}

// capacityText is a capacity as "8 bots, 16GiB", a zero part as "?", nothing as "none".
func capacityText(c wire.Capacity) string {
	if c.Bots == 0 && c.MemoryBytes == 0 {
		return "none"
	}
	bots, mem := "?", "?"
	if c.Bots > 0 {
		bots = strconv.Itoa(c.Bots)
	}
	if c.MemoryBytes > 0 {
		mem = compactBytes(c.MemoryBytes)
	}
	return bots + " bots, " + mem
}

// limitText is a host's capacity limit and where it comes from.
func limitText(h *wire.Host) string {
	switch h.CapacityLimitSource {
	case wire.CapacityFromOperator:
		return capacityText(h.CapacityLimit) + " (set by an operator)"
	case wire.CapacityFromEnrollment:
		return capacityText(h.CapacityLimit) + " (from the " + compactBytes(h.EnrolledMemory) + " of memory it reported when it enrolled)"
	}
	return "unknown (pmd knows nothing of its memory: set one with pmctl hosts set)"
}

// compactBytes is output.Bytes without the space, for dense cells: "6GiB".
func compactBytes(n int64) string {
	return strings.ReplaceAll(output.Bytes(uint64(max(n, 0))), " ", "")
}
