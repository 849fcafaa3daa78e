// Package audit implements `pmctl audit`: the log of every mutating admin call.
package audit

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

// NewCmdAudit returns the `audit` noun with its verbs.
func NewCmdAudit(f *cmdutil.Factory) *cobra.Command {
	cmd := cmdutil.Group(&cobra.Command{
		Use:     "audit <command>",
		Short:   "Read the audit log",
		Example: `  pmctl audit list --limit 20`,
	})
	cmd.AddCommand(NewCmdList(f, nil))
	return cmd
}

// ListOptions are the inputs of `audit list`.
type ListOptions struct {
	IO        *iostreams.IOStreams
	APIClient func() (*apiclient.Client, error)
	Format    output.Format
	Limit     int
}

// NewCmdList returns `audit list`.
func NewCmdList(f *cmdutil.Factory, runF func(context.Context, *ListOptions) error) *cobra.Command {
	opts := &ListOptions{IO: f.IOStreams, APIClient: f.APIClient}
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List audit entries, newest first",
		Example: `  pmctl audit list
  pmctl audit list --limit 500 -o json`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.Limit < 1 {
				return cmdutil.FlagErrorf("--limit must be at least 1")
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return listRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().IntVarP(&opts.Limit, "limit", "L", 50, "maximum number of entries")
	cmdutil.AddFormatFlag(cmd, &opts.Format)
	return cmd
}

func listRun(ctx context.Context, opts *ListOptions) error {
	c, err := opts.APIClient()
	if err != nil {
		return err
	}
	entries, err := c.ListAudit(ctx, opts.Limit)
	if err != nil {
		return fmt.Errorf("list audit entries: %w", err)
	}
	table := output.Columns(entries,
		output.Column[wire.AuditEntry]{Header: "TIME", Value: func(e wire.AuditEntry) string { return output.Timestamp(e.Time) }},
		output.Column[wire.AuditEntry]{Header: "ACTOR", Value: func(e wire.AuditEntry) string { return e.Actor }},
		output.Column[wire.AuditEntry]{Header: "ACTION", Value: func(e wire.AuditEntry) string { return e.Action }},
		output.Column[wire.AuditEntry]{Header: "TARGET", Value: func(e wire.AuditEntry) string { return e.Target }},
		output.Column[wire.AuditEntry]{Header: "DETAIL", Value: func(e wire.AuditEntry) string { return e.Detail }},
	)
	return output.Print(opts.IO.Out, opts.IO.IsTerminal, opts.Format, entries, table)
}
