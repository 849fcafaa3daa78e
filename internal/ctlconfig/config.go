// Package ctlconfig reads and writes pmctl's config file: a list of contexts, each naming a pmd
// admin listener and the admin client certificate that authenticates to it.
//
// The file is YAML with mode 0600:
//
//	current-context: default
//	contexts:
//	  - name: default
//	    server: 127.0.0.1:9443
//	    server-name: localhost
//	    ca-data: |
//	      -----BEGIN CERTIFICATE-----
//	      ...
//	    cert-data: |
//	      ...
//	    key-data: |
//	      ...
package ctlconfig

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Config is the whole config file. It is a plain value: not safe for concurrent mutation.
type Config struct {
	CurrentContext string    `yaml:"current-context"`
	Contexts       []Context `yaml:"contexts"`
}

// Context is one pmd admin endpoint and the credentials pmctl presents to it.
type Context struct {
	Name string `yaml:"name"`
	// Server is host:port of pmd's admin listener.
	Server string `yaml:"server"`
	// ServerName is the TLS server name to verify; empty means the host part of Server.
	ServerName string `yaml:"server-name,omitempty"`
	// CAData is the PEM of the root CA that signed pmd's server certificate.
	CAData string `yaml:"ca-data"`
	// CertData is the PEM admin client certificate: leaf, then intermediate.
	CertData string `yaml:"cert-data"`
	// KeyData is the PEM private key of CertData.
	KeyData string `yaml:"key-data"`
}

// The keys a file may hold; anything else is refused so a typo never goes unnoticed.
var (
	configKeys  = []string{"current-context", "contexts"}
	contextKeys = []string{"name", "server", "server-name", "ca-data", "cert-data", "key-data"}
)

// Load reads and validates the config file at path. A missing file is an error wrapping
// fs.ErrNotExist; an unknown key, a duplicate or unnamed context is an error naming it and its
// line. Load does not check permissions: see CheckMode.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	c, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// Parse decodes and validates a config file's contents. An empty document is an empty Config.
func Parse(b []byte) (*Config, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return &Config{}, nil
		}
		return nil, err
	}
	if len(doc.Content) == 0 {
		return &Config{}, nil
	}
	root := doc.Content[0]
	if err := checkKeys(root, configKeys, "top level"); err != nil {
		return nil, err
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value != "contexts" {
			continue
		}
		list := root.Content[i+1]
		if list.Kind != yaml.SequenceNode {
			if list.Tag == "!!null" {
				continue
			}
			return nil, fmt.Errorf("line %d: contexts must be a list", list.Line)
		}
		for n, item := range list.Content {
			if err := checkKeys(item, contextKeys, fmt.Sprintf("context #%d", n+1)); err != nil {
				return nil, err
			}
		}
	}
	var c Config
	if err := root.Decode(&c); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for i, ctx := range c.Contexts {
		if ctx.Name == "" {
			return nil, fmt.Errorf("context #%d has no name", i+1)
		}
		if seen[ctx.Name] {
			return nil, fmt.Errorf("context %q appears twice", ctx.Name)
		}
		seen[ctx.Name] = true
	}
	return &c, nil
}

// checkKeys refuses a mapping key outside allowed, naming it, where it is and what is allowed.
func checkKeys(n *yaml.Node, allowed []string, where string) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: %s must be a mapping", n.Line, where)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if !slices.Contains(allowed, k.Value) {
			return fmt.Errorf("line %d: unknown key %q in %s (known keys: %s)",
				k.Line, k.Value, where, strings.Join(allowed, ", "))
		}
	}
	return nil
}

// CheckMode returns an error describing the problem if the file at path can be read by its
// group or by others. Callers print it as a warning: the file holds a private key.
func CheckMode(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("stat config: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("config %s has mode %#o and holds a private key; run chmod 600 %s", path, perm, path)
	}
	return nil
}

// Encode returns c as the config file holds it.
func Encode(c *Config) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, fmt.Errorf("encode config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode config: %w", err)
	}
	return buf.Bytes(), nil
}

// WriteNew stores c in a new file at path with mode 0600, refusing a path that exists: it is
// for handing a config (and its private key) to someone, never for replacing one. A failed
// write leaves no file.
func WriteNew(path string, c *Config) error {
	b, err := Encode(c)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("write config: %s already exists; choose another file", path)
	}
	if err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("write config %s: %w", path, err)
	}
	return nil
}

// Write stores c at path atomically: it writes a temporary file with mode 0600 in the same
// directory and renames it over path. The parent directory is created with mode 0700.
func Write(path string, c *Config) error {
	b, err := Encode(c)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	buf.Write(b)
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create config directory: %w", err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("write config: %w", err)
	}
	if _, err := f.Write(buf.Bytes()); err != nil {
		f.Close()
		return fmt.Errorf("write config: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write config: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	return nil
}

// ErrNoContext is wrapped by Current and Context when the wanted context does not exist.
var ErrNoContext = errors.New("no such context")

// Context returns the context called name, or an error wrapping ErrNoContext that lists the
// names there are.
func (c *Config) Context(name string) (*Context, error) {
	for i := range c.Contexts {
		if c.Contexts[i].Name == name {
			return &c.Contexts[i], nil
		}
	}
	return nil, fmt.Errorf("context %q: %w (have: %s)", name, ErrNoContext, c.names())
}

// Current returns the context named by CurrentContext.
func (c *Config) Current() (*Context, error) {
	if c.CurrentContext == "" {
		if len(c.Contexts) == 0 {
			return nil, fmt.Errorf("config has no contexts: %w", ErrNoContext)
		}
		return nil, fmt.Errorf("no current-context set (have: %s): %w", c.names(), ErrNoContext)
	}
	return c.Context(c.CurrentContext)
}

func (c *Config) names() string {
	if len(c.Contexts) == 0 {
		return "none"
	}
	names := make([]string, len(c.Contexts))
	for i, ctx := range c.Contexts {
		names[i] = ctx.Name
	}
	return strings.Join(names, ", ")
}

// IsNotExist reports whether err says the config file does not exist.
func IsNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
