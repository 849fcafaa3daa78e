package ctlconfig

import (
	"errors"
	"os"
	"path/filepath"
)

// EnvConfig and EnvContext are the environment variables that choose the config file and the
// context when the --config and --context flags are not given.
const (
	EnvConfig  = "PMCTL_CONFIG"
	EnvContext = "PMCTL_CONTEXT"
)

// Path resolves the config file: flag if set, else $PMCTL_CONFIG, else DefaultPath. getenv is
// os.Getenv outside tests.
func Path(flag string, getenv func(string) string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	if p := getenv(EnvConfig); p != "" {
		return p, nil
	}
	return DefaultPath(getenv)
}

// DefaultPath is $XDG_CONFIG_HOME/pmctl/config.yaml, or ~/.config/pmctl/config.yaml when
// XDG_CONFIG_HOME is unset, on every platform.
func DefaultPath(getenv func(string) string) (string, error) {
	if dir := getenv("XDG_CONFIG_HOME"); dir != "" && filepath.IsAbs(dir) {
		return filepath.Join(dir, "pmctl", "config.yaml"), nil
	}
	home := getenv("HOME")
	if home == "" {
		h, err := os.UserHomeDir()
		if err != nil {
			return "", errors.New("cannot find the config file: set --config, PMCTL_CONFIG or HOME")
		}
		home = h
	}
	return filepath.Join(home, ".config", "pmctl", "config.yaml"), nil
}

// ContextName resolves which context to use: flag if set, else $PMCTL_CONTEXT; empty means the
// file's current-context.
func ContextName(flag string, getenv func(string) string) string {
	if flag != "" {
		return flag
	}
	return getenv(EnvContext)
}

// Select returns the context called name, or the current one when name is empty.
func (c *Config) Select(name string) (*Context, error) {
	if name == "" {
		return c.Current()
	}
	return c.Context(name)
}
