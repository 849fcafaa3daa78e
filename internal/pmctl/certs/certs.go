// Package certs implements `pmctl certs`: the certificates pmd's CA has issued.
package certs

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/pocketmolt/pocketmolt/internal/apiclient"
	"github.com/pocketmolt/pocketmolt/internal/output"
	"github.com/pocketmolt/pocketmolt/internal/pmctl/cmdutil"
	"github.com/pocketmolt/pocketmolt/internal/pmctl/iostreams"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// NewCmdCerts returns the `certs` noun with its verbs.
func NewCmdCerts(f *cmdutil.Factory) *cobra.Command {
	cmd := cmdutil.Group(&cobra.Command{
		Use:   "certs <command>",
		Short: "Manage issued certificates",
		Example: `  pmctl certs list
  pmctl certs revoke 3f2a9c`,
	})
	cmd.AddCommand(NewCmdList(f, nil), NewCmdRevoke(f, nil))
	return cmd
}

// ListOptions are the inputs of `certs list`.
type ListOptions struct {
	IO        *iostreams.IOStreams
	APIClient func() (*apiclient.Client, error)
	Now       func() time.Time
	Format    output.Format
}

// NewCmdList returns `certs list`.
func NewCmdList(f *cmdutil.Factory, runF func(context.Context, *ListOptions) error) *cobra.Command {
	opts := &ListOptions{IO: f.IOStreams, APIClient: f.APIClient, Now: f.Now}
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List issued certificates",
		Long: `List every certificate pmd's CA has issued: CAs, the server, admins and agents, with
each one's status: valid, superseded (an agent certificate a renewal replaced: accepted
for a short overlap, revoked as soon as its host connects with the newer one), revoked or
expired.`,
		Example: `  pmctl certs list
  pmctl certs list -o json`,
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
	certs, err := c.ListCerts(ctx)
	if err != nil {
		return fmt.Errorf("list certificates: %w", err)
	}
	tty := opts.IO.IsTerminal
	dash := func(s string) string {
		if s == "" && tty {
			return "-"
		}
		return s
	}
	table := output.Columns(certs,
		output.Column[wire.Certificate]{Header: "SERIAL", Value: func(c wire.Certificate) string { return c.Serial }},
		output.Column[wire.Certificate]{Header: "KIND", Value: func(c wire.Certificate) string { return c.Kind }},
		output.Column[wire.Certificate]{Header: "SUBJECT", Value: func(c wire.Certificate) string { return c.Subject }},
		output.Column[wire.Certificate]{Header: "HOST", Value: func(c wire.Certificate) string { return dash(c.HostID) }},
		output.Column[wire.Certificate]{Header: "STATUS", Value: func(c wire.Certificate) string { return dash(c.Status) }},
		output.Column[wire.Certificate]{Header: "NOT AFTER", Value: func(c wire.Certificate) string { return output.Timestamp(c.NotAfter) }},
		output.Column[wire.Certificate]{Header: "REVOKED", Value: func(c wire.Certificate) string {
			if c.RevokedAt == nil {
				return dash("")
			}
			return output.Timestamp(*c.RevokedAt)
		}},
	)
	return output.Print(opts.IO.Out, tty, opts.Format, certs, table)
}

// RevokeOptions are the inputs of `certs revoke`.
type RevokeOptions struct {
	IO        *iostreams.IOStreams
	APIClient func() (*apiclient.Client, error)
	Format    output.Format
	Serial    string
	Yes       bool
}

// NewCmdRevoke returns `certs revoke`.
func NewCmdRevoke(f *cmdutil.Factory, runF func(context.Context, *RevokeOptions) error) *cobra.Command {
	opts := &RevokeOptions{IO: f.IOStreams, APIClient: f.APIClient}
	cmd := &cobra.Command{
		Use:   "revoke <serial>",
		Short: "Revoke a certificate",
		Long: `Revoke one certificate by serial. It is refused at its next TLS handshake and any
live session that used it is closed.

` + cmdutil.ConfirmHelp,
		Example: `  pmctl certs revoke 3f2a9c --yes`,
		Args:    cmdutil.ExactArgs(1, "missing certificate serial"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Serial = args[0]
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return revokeRun(cmd.Context(), opts)
		},
	}
	cmdutil.AddYesFlag(cmd, &opts.Yes)
	cmdutil.AddFormatFlag(cmd, &opts.Format)
	return cmd
}

func revokeRun(ctx context.Context, opts *RevokeOptions) error {
	if err := cmdutil.Confirm(opts.IO, opts.Yes, fmt.Sprintf("Revoke certificate %s?", opts.Serial)); err != nil {
		return err
	}
	c, err := opts.APIClient()
	if err != nil {
		return err
	}
	cert, err := c.RevokeCert(ctx, opts.Serial)
	if err != nil {
		return fmt.Errorf("revoke certificate %s: %w", opts.Serial, err)
	}
	if opts.Format != output.Table {
		return output.Print(opts.IO.Out, opts.IO.IsTerminal, opts.Format, cert, nil)
	}
	fmt.Fprintf(opts.IO.ErrOut, "Revoked %s certificate %s (%s).\n", cert.Kind, cert.Serial, cert.Subject)
	return nil
}
