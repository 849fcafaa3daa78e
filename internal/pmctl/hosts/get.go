package hosts

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/pocketmolt/pocketmolt/internal/apiclient"
	"github.com/pocketmolt/pocketmolt/internal/output"
	"github.com/pocketmolt/pocketmolt/internal/pmctl/cmdutil"
	"github.com/pocketmolt/pocketmolt/internal/pmctl/iostreams"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// GetOptions are the inputs of `hosts get`.
type GetOptions struct {
	IO        *iostreams.IOStreams
	APIClient func() (*apiclient.Client, error)
	Now       func() time.Time
	Format    output.Format
	Ref       string
}

// NewCmdGet returns `hosts get`.
func NewCmdGet(f *cmdutil.Factory, runF func(context.Context, *GetOptions) error) *cobra.Command {
	opts := &GetOptions{IO: f.IOStreams, APIClient: f.APIClient, Now: f.Now}
	cmd := &cobra.Command{
		Use:   "get <name|id>",
		Short: "Show one host",
		Long: `Show one host: its status, whether it is draining, its bots and their memory against
its capacity, the capacity its agent declares and the limit pmd holds it to (and why it
refuses a declaration beyond it), the facts its agent last reported (OS, CPUs, memory,
disk, Docker) and its current certificate.`,
		Example: `  pmctl hosts get edge-1
  pmctl hosts get edge-1 -o json`,
		Args:              cmdutil.ExactArgs(1, "missing host name or id"),
		ValidArgsFunction: completeHosts(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Ref = args[0]
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return getRun(cmd.Context(), opts)
		},
	}
	cmdutil.AddFormatFlag(cmd, &opts.Format)
	return cmd
}

func getRun(ctx context.Context, opts *GetOptions) error {
	c, err := opts.APIClient()
	if err != nil {
		return err
	}
	h, err := c.GetHost(ctx, opts.Ref)
	if err != nil {
		return fmt.Errorf("get host %s: %w", opts.Ref, err)
	}
	return output.Print(opts.IO.Out, opts.IO.IsTerminal, opts.Format, h, hostView(h, opts.Now(), opts.IO.IsTerminal))
}

// hostView is the key/value table of one host; rows with nothing to say are left out.
func hostView(h *wire.Host, now time.Time, tty bool) output.Tabular {
	when := func(t time.Time) string {
		if tty {
			return output.Timestamp(t) + " (" + output.Ago(now, t) + ")"
		}
		return output.Timestamp(t)
	}
	status := h.Status
	if h.Connected {
		status += " (connected)"
	}
	kv := []output.KV{
		{Key: "name", Value: h.Name},
		{Key: "id", Value: h.ID},
		{Key: "status", Value: status},
		{Key: "draining", Value: yesNo(h.Draining)},
		{Key: "capacity", Value: "bots " + botsUse(h) + ", memory " + memoryUse(h)},
		{Key: "declared", Value: capacityText(h.DeclaredCapacity)},
		{Key: "capacity limit", Value: limitText(h)},
	}
	if h.CapacityRefused != "" {
		kv = append(kv, output.KV{Key: "capacity refused", Value: h.CapacityRefused})
	}
	if h.DedicatedBot != "" {
		kv = append(kv, output.KV{Key: "dedicated to", Value: "bot " + h.DedicatedBot + ": it runs no other"})
	}
	kv = append(kv, output.KV{Key: "created", Value: when(h.CreatedAt)})
	add := func(k string, t *time.Time) {
		if t != nil {
			kv = append(kv, output.KV{Key: k, Value: when(*t)})
		}
	}
	add("enrolled", h.EnrolledAt)
	add("last seen", h.LastSeenAt)
	add("revoked", h.RevokedAt)
	if f := h.Facts; f != nil {
		kv = append(kv,
			output.KV{Key: "hostname", Value: f.Hostname},
			output.KV{Key: "os/arch", Value: f.OS + "/" + f.Arch},
		)
		if f.Kernel != "" {
			kv = append(kv, output.KV{Key: "kernel", Value: f.Kernel})
		}
		docker := f.DockerVersion
		if f.DockerError != "" {
			docker += " (" + f.DockerError + ")"
		}
		kv = append(kv,
			output.KV{Key: "cpus", Value: strconv.Itoa(f.CPUs)},
			output.KV{Key: "memory", Value: output.Bytes(f.MemoryBytes)},
			output.KV{Key: "disk", Value: fmt.Sprintf("%s (%s free)", output.Bytes(f.DiskBytes), output.Bytes(f.DiskFreeBytes))},
			output.KV{Key: "docker", Value: docker},
			output.KV{Key: "agent", Value: f.AgentVersion},
		)
		if f.SharedBotUID {
			kv = append(kv, output.KV{Key: "bot uids", Value: "SHARED: every bot runs as the agent's own user (bot-shared-uid), so bots can read each other's files and secrets"})
		}
	}
	if h.CertSerial != "" {
		kv = append(kv, output.KV{Key: "cert serial", Value: h.CertSerial})
	}
	add("cert expires", h.CertExpiresAt)
	return output.KeyValues(kv...)
}

func yesNo(v bool) string {
	if v {
		return "yes"
	}
	return "no"
}
