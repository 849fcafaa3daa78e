// Package admins implements `pmctl admins`: an admin certificate for each operator, so that
// the audit log names who did what.
package admins

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/pocketmolt/pocketmolt/internal/apiclient"
	"github.com/pocketmolt/pocketmolt/internal/ctlconfig"
	"github.com/pocketmolt/pocketmolt/internal/output"
	"github.com/pocketmolt/pocketmolt/internal/pmctl/cmdutil"
	"github.com/pocketmolt/pocketmolt/internal/pmctl/iostreams"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// NewCmdAdmins returns the `admins` noun with its verbs.
func NewCmdAdmins(f *cmdutil.Factory) *cobra.Command {
	cmd := cmdutil.Group(&cobra.Command{
		Use:   "admins <command>",
		Short: "Manage operators' admin certificates",
		Long: `Each operator gets an admin certificate of their own, so that the audit log names who
did what (admin:<name>). pmd refuses to revoke the last valid one; if every admin
certificate is lost, run "pmd admin-cert NAME --data-dir DIR" on the pmd host.`,
		Example: `  pmctl admins create alice --out alice.yaml
  pmctl admins list
  pmctl admins revoke alice`,
	})
	cmd.AddCommand(NewCmdCreate(f, nil), NewCmdList(f, nil), NewCmdRevoke(f, nil))
	return cmd
}

// CreateOptions are the inputs of `admins create`.
type CreateOptions struct {
	IO        *iostreams.IOStreams
	APIClient func() (*apiclient.Client, error)
	Context   func() (*ctlconfig.Context, error)
	Name      string
	TTL       time.Duration
	Out       string
}

// NewCmdCreate returns `admins create`.
func NewCmdCreate(f *cmdutil.Factory, runF func(context.Context, *CreateOptions) error) *cobra.Command {
	opts := &CreateOptions{IO: f.IOStreams, APIClient: f.APIClient, Context: f.Context}
	cmd := &cobra.Command{
		Use:   "create <name>",
		Short: "Create an admin certificate for an operator and print their pmctl config",
		Long: `Create an admin certificate for the operator <name> and print a pmctl config with one
context holding it, for the same pmd as the current context — or write it to a new file
with --out (mode 0600). pmd makes the key and does not keep it: this is the only copy,
so hand it over privately. Every call made with it is audited as admin:<name>.`,
		Example: `  pmctl admins create alice --out alice.yaml
  pmctl admins create bob --ttl 720h > bob.yaml`,
		Args: cmdutil.ExactArgs(1, "missing admin name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Name = args[0]
			if opts.TTL < 0 {
				return cmdutil.FlagErrorf("--ttl must not be negative")
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return createRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().DurationVar(&opts.TTL, "ttl", 0, "lifetime of the certificate (pmd's default: 1 year)")
	cmd.Flags().StringVar(&opts.Out, "out", "", "write the config to this new file (mode 0600) instead of stdout")
	return cmd
}

func createRun(ctx context.Context, opts *CreateOptions) error {
	cur, err := opts.Context()
	if err != nil {
		return err
	}
	if opts.Out != "" {
		if _, err := os.Lstat(opts.Out); !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("--out %s already exists; choose another file", opts.Out)
		}
	}
	c, err := opts.APIClient()
	if err != nil {
		return err
	}
	b, err := c.CreateAdmin(ctx, wire.AdminRequest{Name: opts.Name, TTL: wire.Duration(opts.TTL)})
	if err != nil {
		return fmt.Errorf("create admin %s: %w", opts.Name, err)
	}
	cfg := &ctlconfig.Config{
		CurrentContext: cur.Name,
		Contexts: []ctlconfig.Context{{
			Name: cur.Name, Server: cur.Server, ServerName: cur.ServerName,
			CAData: b.RootCA, CertData: b.Cert, KeyData: b.Key,
		}},
	}
	if opts.Out != "" {
		if err := ctlconfig.WriteNew(opts.Out, cfg); err != nil {
			return fmt.Errorf("certificate %s for %s was issued, but %w; revoke it (pmctl admins revoke %s) and create it again", b.Serial, opts.Name, err, opts.Name)
		}
		fmt.Fprintf(opts.IO.ErrOut, "Created admin %s (certificate %s, valid until %s) in %s. It holds the only copy of the key: hand it over privately.\n",
			b.Name, b.Serial, output.Timestamp(b.NotAfter), opts.Out)
		return nil
	}
	y, err := ctlconfig.Encode(cfg)
	if err != nil {
		return err
	}
	if _, err := opts.IO.Out.Write(y); err != nil {
		return err
	}
	fmt.Fprintf(opts.IO.ErrOut, "Created admin %s (certificate %s, valid until %s). The config above holds the only copy of the key: hand it over privately.\n",
		b.Name, b.Serial, output.Timestamp(b.NotAfter))
	return nil
}

// ListOptions are the inputs of `admins list`.
type ListOptions struct {
	IO        *iostreams.IOStreams
	APIClient func() (*apiclient.Client, error)
	Format    output.Format
}

// NewCmdList returns `admins list`.
func NewCmdList(f *cmdutil.Factory, runF func(context.Context, *ListOptions) error) *cobra.Command {
	opts := &ListOptions{IO: f.IOStreams, APIClient: f.APIClient}
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List admin certificates",
		Example: `  pmctl admins list
  pmctl admins list -o json`,
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
	as, err := c.ListAdmins(ctx)
	if err != nil {
		return fmt.Errorf("list admins: %w", err)
	}
	table := output.Columns(as,
		output.Column[wire.Admin]{Header: "NAME", Value: func(a wire.Admin) string { return a.Name }},
		output.Column[wire.Admin]{Header: "SERIAL", Value: func(a wire.Admin) string { return a.Serial }},
		output.Column[wire.Admin]{Header: "STATUS", Value: func(a wire.Admin) string { return a.Status }},
		output.Column[wire.Admin]{Header: "NOT AFTER", Value: func(a wire.Admin) string { return output.Timestamp(a.NotAfter) }},
	)
	return output.Print(opts.IO.Out, opts.IO.IsTerminal, opts.Format, as, table)
}

// RevokeOptions are the inputs of `admins revoke`.
type RevokeOptions struct {
	IO        *iostreams.IOStreams
	APIClient func() (*apiclient.Client, error)
	Format    output.Format
	Name      string
	Yes       bool
}

// NewCmdRevoke returns `admins revoke`.
func NewCmdRevoke(f *cmdutil.Factory, runF func(context.Context, *RevokeOptions) error) *cobra.Command {
	opts := &RevokeOptions{IO: f.IOStreams, APIClient: f.APIClient}
	cmd := &cobra.Command{
		Use:   "revoke <name>",
		Short: "Revoke every admin certificate of an operator",
		Long: `Revoke every admin certificate of the operator <name>: their next request is refused.
pmd refuses to revoke the last valid admin certificate.

On a terminal pmctl asks for confirmation; without one, --yes is required.`,
		Example: `  pmctl admins revoke alice
  pmctl admins revoke alice --yes`,
		Args: cmdutil.ExactArgs(1, "missing admin name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Name = args[0]
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return revokeRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVarP(&opts.Yes, "yes", "y", false, "do not ask for confirmation")
	cmdutil.AddFormatFlag(cmd, &opts.Format)
	return cmd
}

func revokeRun(ctx context.Context, opts *RevokeOptions) error {
	if err := cmdutil.Confirm(opts.IO, opts.Yes, fmt.Sprintf("Revoke every admin certificate of %s? Their next request will be refused.", opts.Name)); err != nil {
		return err
	}
	c, err := opts.APIClient()
	if err != nil {
		return err
	}
	rev, err := c.RevokeAdmin(ctx, opts.Name)
	if err != nil {
		return fmt.Errorf("revoke admin %s: %w", opts.Name, err)
	}
	if opts.Format != output.Table {
		return output.Print(opts.IO.Out, opts.IO.IsTerminal, opts.Format, rev, nil)
	}
	fmt.Fprintf(opts.IO.ErrOut, "Revoked %d certificates of admin %s.\n", len(rev.Revoked), rev.Name)
	return nil
}
