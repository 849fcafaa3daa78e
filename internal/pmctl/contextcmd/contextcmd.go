// Package contextcmd implements `pmctl context`: listing the contexts of the config file and
// choosing the current one.
package contextcmd

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/pocketmolt/pocketmolt/internal/ctlconfig"
	"github.com/pocketmolt/pocketmolt/internal/output"
	"github.com/pocketmolt/pocketmolt/internal/pmctl/cmdutil"
	"github.com/pocketmolt/pocketmolt/internal/pmctl/iostreams"
)

// NewCmdContext returns the `context` noun with its verbs.
func NewCmdContext(f *cmdutil.Factory) *cobra.Command {
	cmd := cmdutil.Group(&cobra.Command{
		Use:   "context <command>",
		Short: "Choose which pmd to talk to",
		Long: `A context names one pmd admin endpoint and the admin certificate for it. The current
context is used unless --context or PMCTL_CONTEXT picks another.`,
		Example: `  pmctl context list
  pmctl context use staging`,
	})
	cmd.AddCommand(NewCmdList(f, nil), NewCmdUse(f, nil))
	return cmd
}

// Summary is a context as `context list -o json` shows it: never its key.
type Summary struct {
	Name       string `json:"name" yaml:"name"`
	Server     string `json:"server" yaml:"server"`
	ServerName string `json:"server_name,omitempty" yaml:"server_name,omitempty"`
	Current    bool   `json:"current" yaml:"current"`
}

// ListOptions are the inputs of `context list`.
type ListOptions struct {
	IO     *iostreams.IOStreams
	Config func() (*ctlconfig.Config, error)
	Format output.Format
}

// NewCmdList returns `context list`.
func NewCmdList(f *cmdutil.Factory, runF func(context.Context, *ListOptions) error) *cobra.Command {
	opts := &ListOptions{IO: f.IOStreams, Config: f.Config}
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List contexts; * marks the current one",
		Example: `  pmctl context list`,
		Args:    cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return listRun(opts)
		},
	}
	cmdutil.AddFormatFlag(cmd, &opts.Format)
	return cmd
}

func listRun(opts *ListOptions) error {
	cfg, err := opts.Config()
	if err != nil {
		return err
	}
	rows := make([]Summary, len(cfg.Contexts))
	for i, c := range cfg.Contexts {
		rows[i] = Summary{Name: c.Name, Server: c.Server, ServerName: c.ServerName, Current: c.Name == cfg.CurrentContext}
	}
	table := output.Columns(rows,
		output.Column[Summary]{Header: "CURRENT", Value: func(s Summary) string {
			if s.Current {
				return "*"
			}
			return ""
		}},
		output.Column[Summary]{Header: "NAME", Value: func(s Summary) string { return s.Name }},
		output.Column[Summary]{Header: "SERVER", Value: func(s Summary) string { return s.Server }},
	)
	return output.Print(opts.IO.Out, opts.IO.IsTerminal, opts.Format, rows, table)
}

// UseOptions are the inputs of `context use`.
type UseOptions struct {
	IO         *iostreams.IOStreams
	ConfigPath func() (string, error)
	Config     func() (*ctlconfig.Config, error)
	Name       string
}

// NewCmdUse returns `context use`.
func NewCmdUse(f *cmdutil.Factory, runF func(context.Context, *UseOptions) error) *cobra.Command {
	opts := &UseOptions{IO: f.IOStreams, ConfigPath: f.ConfigPath, Config: f.Config}
	cmd := &cobra.Command{
		Use:     "use <name>",
		Short:   "Make a context the current one",
		Long:    "Make a context the current one by writing current-context to the config file.",
		Example: `  pmctl context use staging`,
		Args:    cmdutil.ExactArgs(1, "missing context name"),
		ValidArgsFunction: func(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
			cfg, err := f.Config()
			if err != nil {
				return nil, cobra.ShellCompDirectiveError
			}
			names := make([]cobra.Completion, len(cfg.Contexts))
			for i, c := range cfg.Contexts {
				names[i] = c.Name
			}
			return names, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Name = args[0]
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return useRun(opts)
		},
	}
	return cmd
}

func useRun(opts *UseOptions) error {
	cfg, err := opts.Config()
	if err != nil {
		return err
	}
	if _, err := cfg.Context(opts.Name); err != nil {
		return err
	}
	path, err := opts.ConfigPath()
	if err != nil {
		return err
	}
	cfg.CurrentContext = opts.Name
	if err := ctlconfig.Write(path, cfg); err != nil {
		return err
	}
	fmt.Fprintf(opts.IO.ErrOut, "Switched to context %q.\n", opts.Name)
	return nil
}
