package ctlconfig_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pocketmolt/pocketmolt/internal/apiclient/apitest"
	"github.com/pocketmolt/pocketmolt/internal/ctlconfig"
)

func TestWriteLoadRoundTrip(t *testing.T) {
	ca := apitest.NewCA(t, "root")
	cert, key := ca.Issue(t, "admin", false)
	want := &ctlconfig.Config{
		CurrentContext: "prod",
		Contexts: []ctlconfig.Context{
			{Name: "prod", Server: "10.0.0.1:9443", ServerName: "pmd.internal", CAData: ca.CertPEM, CertData: cert, KeyData: key},
			{Name: "dev", Server: "127.0.0.1:9443"},
		},
	}
	path := filepath.Join(t.TempDir(), "a", "b", "config.yaml")
	if err := ctlconfig.Write(path, want); err != nil {
		t.Fatal(err)
	}
	for p, mode := range map[string]os.FileMode{path: 0o600, filepath.Dir(path): 0o700} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s mode = %#o, want %#o", p, fi.Mode().Perm(), mode)
		}
	}
	b, _ := os.ReadFile(path)
	if !strings.Contains(string(b), "ca-data: |") {
		t.Errorf("PEM not written as a literal block:\n%s", b)
	}
	got, err := ctlconfig.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.CurrentContext != want.CurrentContext || len(got.Contexts) != 2 || got.Contexts[0] != want.Contexts[0] || got.Contexts[1] != want.Contexts[1] {
		t.Fatalf("Load = %+v, want %+v", got, want)
	}
	if err := ctlconfig.CheckMode(path); err != nil {
		t.Errorf("CheckMode after Write: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}

	cur, err := got.Current()
	if err != nil || cur.Name != "prod" {
		t.Fatalf("Current = %v, %v", cur, err)
	}
	tc, err := cur.TLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	if tc.ServerName != "pmd.internal" || tc.MinVersion != 0x0304 || len(tc.Certificates) != 1 {
		t.Errorf("TLSConfig = %+v", tc)
	}
	dev, _ := got.Context("dev")
	if dev.Host() != "127.0.0.1" {
		t.Errorf("Host() = %q", dev.Host())
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown top-level key", "current-context: a\ncontext: []\n", `line 2: unknown key "context" in top level`},
		{"unknown context key", "contexts:\n  - name: a\n    sever: x:1\n", `line 3: unknown key "sever" in context #1`},
		{"duplicate", "contexts:\n  - name: a\n  - name: a\n", `context "a" appears twice`},
		{"unnamed", "contexts:\n  - server: x:1\n", `context #1 has no name`},
		{"not yaml", "contexts: [\n", `yaml`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "config.yaml")
			os.WriteFile(path, []byte(tt.yaml), 0o600)
			_, err := ctlconfig.Load(path)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("Load error = %v, want it to name %s and contain %q", err, path, tt.want)
			}
		})
	}
	if c, err := ctlconfig.Parse(nil); err != nil || len(c.Contexts) != 0 {
		t.Errorf("Parse(empty) = %v, %v", c, err)
	}
	if _, err := ctlconfig.Load(filepath.Join(t.TempDir(), "missing")); !ctlconfig.IsNotExist(err) {
		t.Errorf("Load(missing) = %v, want not-exist", err)
	}
}

func TestCheckMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.yaml")
	os.WriteFile(path, nil, 0o644)
	os.Chmod(path, 0o644)
	if err := ctlconfig.CheckMode(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("CheckMode(0644) = %v", err)
	}
}

func TestCurrentAndSelect(t *testing.T) {
	c := &ctlconfig.Config{Contexts: []ctlconfig.Context{{Name: "a"}, {Name: "b"}}}
	if _, err := c.Current(); !errors.Is(err, ctlconfig.ErrNoContext) {
		t.Errorf("Current without current-context = %v", err)
	}
	c.CurrentContext = "a"
	if got, _ := c.Select(""); got.Name != "a" {
		t.Errorf("Select(\"\") = %v", got)
	}
	if got, _ := c.Select("b"); got.Name != "b" {
		t.Errorf("Select(b) = %v", got)
	}
	_, err := c.Select("zz")
	if !errors.Is(err, ctlconfig.ErrNoContext) || !strings.Contains(err.Error(), "have: a, b") {
		t.Errorf("Select(zz) = %v", err)
	}
}

func TestTLSConfigErrors(t *testing.T) {
	ca := apitest.NewCA(t, "root")
	cert, key := ca.Issue(t, "admin", false)
	good := ctlconfig.Context{Name: "x", Server: "h:1", CAData: ca.CertPEM, CertData: cert, KeyData: key}
	tests := []struct {
		name string
		edit func(*ctlconfig.Context)
		want string
	}{
		{"no server", func(c *ctlconfig.Context) { c.Server = "" }, "server is empty"},
		{"garbage ca", func(c *ctlconfig.Context) { c.CAData = "not pem" }, "ca-data holds no PEM certificate"},
		{"no key", func(c *ctlconfig.Context) { c.KeyData = "" }, "cert-data and key-data are both required"},
		{"wrong key", func(c *ctlconfig.Context) { _, c.KeyData = ca.Issue(t, "other", false) }, "cert-data/key-data"},
		{"garbage cert", func(c *ctlconfig.Context) {
			c.CertData = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
		}, "cert-data/key-data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good
			tt.edit(&c)
			_, err := c.TLSConfig()
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), `context "x"`) {
				t.Fatalf("TLSConfig error = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestPath(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	tests := []struct {
		name string
		flag string
		env  map[string]string
		want string
	}{
		{"flag wins", "/f.yaml", map[string]string{"PMCTL_CONFIG": "/e.yaml", "XDG_CONFIG_HOME": "/x", "HOME": "/h"}, "/f.yaml"},
		{"env next", "", map[string]string{"PMCTL_CONFIG": "/e.yaml", "XDG_CONFIG_HOME": "/x", "HOME": "/h"}, "/e.yaml"},
		{"xdg next", "", map[string]string{"XDG_CONFIG_HOME": "/x", "HOME": "/h"}, "/x/pmctl/config.yaml"},
		{"home last", "", map[string]string{"HOME": "/h"}, "/h/.config/pmctl/config.yaml"},
		{"relative xdg ignored", "", map[string]string{"XDG_CONFIG_HOME": "rel", "HOME": "/h"}, "/h/.config/pmctl/config.yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ctlconfig.Path(tt.flag, env(tt.env))
			if err != nil || got != filepath.FromSlash(tt.want) {
				t.Errorf("Path = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	if got := ctlconfig.ContextName("", env(map[string]string{"PMCTL_CONTEXT": "e"})); got != "e" {
		t.Errorf("ContextName from env = %q", got)
	}
	if got := ctlconfig.ContextName("f", env(map[string]string{"PMCTL_CONTEXT": "e"})); got != "f" {
		t.Errorf("ContextName flag = %q", got)
	}
}
