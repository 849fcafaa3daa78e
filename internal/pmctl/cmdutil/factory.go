// Package cmdutil holds what every pmctl command shares: the Factory of lazy dependencies,
// typed errors the exit-code mapping branches on, and small helpers for flags and arguments.
package cmdutil

import (
	"fmt"
	"sync"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/apiclient"
	"github.com/pocketmolt/pocketmolt/internal/ctlconfig"
	"github.com/pocketmolt/pocketmolt/internal/pmctl/iostreams"
	"github.com/pocketmolt/pocketmolt/internal/version"
)

// Factory hands commands their dependencies. The funcs are lazy: nothing is read or dialled
// until a command asks, so `pmctl version` works without a config file. The root command binds
// the global flags to ConfigFlag, ContextFlag and Timeout before any func is called. A Factory
// serves one command invocation and is not safe for concurrent use.
type Factory struct {
	IOStreams *iostreams.IOStreams
	// Getenv reads the environment (os.Getenv outside tests).
	Getenv func(string) string
	// Now is the clock used for "2s ago".
	Now func() time.Time

	// Global flags.
	ConfigFlag  string
	ContextFlag string
	Timeout     time.Duration

	// ConfigPath resolves the config file: --config, $PMCTL_CONFIG, then the default path.
	ConfigPath func() (string, error)
	// Config loads the config file once, warning on ErrOut if others can read it.
	Config func() (*ctlconfig.Config, error)
	// Context is the selected context: --context, $PMCTL_CONTEXT, then current-context.
	Context func() (*ctlconfig.Context, error)
	// APIClient is a client for the selected context.
	APIClient func() (*apiclient.Client, error)
}

// NewFactory returns a Factory whose lazy funcs read the real config file.
func NewFactory(ios *iostreams.IOStreams, getenv func(string) string) *Factory {
	f := &Factory{IOStreams: ios, Getenv: getenv, Now: time.Now, Timeout: 30 * time.Second}
	f.ConfigPath = func() (string, error) { return ctlconfig.Path(f.ConfigFlag, f.Getenv) }
	f.Config = sync.OnceValues(func() (*ctlconfig.Config, error) {
		path, err := f.ConfigPath()
		if err != nil {
			return nil, err
		}
		cfg, err := ctlconfig.Load(path)
		if ctlconfig.IsNotExist(err) {
			return nil, fmt.Errorf("no config file at %s: run `pmd init` on the server, or set --config or %s", path, ctlconfig.EnvConfig)
		}
		if err != nil {
			return nil, err
		}
		if err := ctlconfig.CheckMode(path); err != nil {
			fmt.Fprintf(f.IOStreams.ErrOut, "warning: %v\n", err)
		}
		return cfg, nil
	})
	f.Context = func() (*ctlconfig.Context, error) {
		cfg, err := f.Config()
		if err != nil {
			return nil, err
		}
		return cfg.Select(ctlconfig.ContextName(f.ContextFlag, f.Getenv))
	}
	f.APIClient = func() (*apiclient.Client, error) {
		cc, err := f.Context()
		if err != nil {
			return nil, err
		}
		return apiclient.New(cc,
			apiclient.WithTimeout(f.Timeout),
			apiclient.WithUserAgent("pmctl/"+version.Version))
	}
	return f
}
