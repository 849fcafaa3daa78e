package pmagent

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/config/configtest"

	"github.com/spf13/cobra"

	"github.com/pocketmolt/pocketmolt/internal/agent"
)

// exampleConfig is the commented pmagent.yaml shipped for operators and packaged as
// /etc/pocketmolt/pmagent.yaml; these tests keep it true to the code.
const exampleConfig = "../../examples/pmagent.yaml"

func envName(key string) string {
	return "PMAGENT_" + strings.ToUpper(strings.ReplaceAll(key, "-", "_"))
}

// clearEnv hides the developer's PMAGENT_* variables from the loader (viper treats empty as
// unset).
func clearEnv(t *testing.T) {
	t.Helper()
	for _, k := range configtest.Keys[Config](t) {
		t.Setenv(envName(k), "")
	}
}

// loadWith runs the commands' own loader on a command built like the real one.
func loadWith(t *testing.T, cmd *cobra.Command, args ...string) (Config, error) {
	t.Helper()
	if err := cmd.ParseFlags(args); err != nil {
		t.Fatalf("parse flags %v: %v", args, err)
	}
	return load(cmd)
}

func TestExampleConfigLoads(t *testing.T) {
	want := Config{
		StateDir:      "/var/lib/pmagent",
		Server:        "pm.example.com:8443",
		TokenFile:     "/etc/pocketmolt/enroll-token",
		MaxBackoff:    30 * time.Second,
		BotInterval:   2 * time.Second,
		BotSubnetPool: "10.213.0.0/16",
		BotFirewall:   true,
		BotUIDBase:    agent.DefaultBotUIDBase,
		LogLevel:      "info",
	}
	for _, tc := range []struct {
		name string
		cmd  func() *cobra.Command
	}{
		{"enroll", func() *cobra.Command { return newEnrollCmd(io.Discard, io.Discard) }},
		{"run", func() *cobra.Command { return newRunCmd(io.Discard) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clearEnv(t)
			got, err := loadWith(t, tc.cmd(), "--config", exampleConfig)
			if err != nil {
				t.Fatalf("load %s: %v", exampleConfig, err)
			}
			if len(got.BotEgressAllow) == 0 {
				got.BotEgressAllow = nil // an unset list flag reads as empty
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("loaded %+v\nwant   %+v", got, want)
			}
		})
	}
}

// TestExampleConfigSetsDefaults checks that the values the example sets, other than the
// server and token file a host must be given, are the built-in defaults its comments name.
func TestExampleConfigSetsDefaults(t *testing.T) {
	clearEnv(t)
	fromFile, err := loadWith(t, newRunCmd(io.Discard), "--config", exampleConfig)
	if err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(t.TempDir(), "empty.yaml")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	defaults, err := loadWith(t, newRunCmd(io.Discard), "--config", empty)
	if err != nil {
		t.Fatal(err)
	}
	fromFile.Server, fromFile.TokenFile = "", ""
	if !reflect.DeepEqual(fromFile, defaults) {
		t.Errorf("example differs from the defaults:\nexample  %+v\ndefaults %+v", fromFile, defaults)
	}
}

// TestExampleConfigDocumentsEveryKey checks that each key appears in the example, set or
// commented out, under a comment naming its env var and, where the flag has one, its default.
func TestExampleConfigDocumentsEveryKey(t *testing.T) {
	b, err := os.ReadFile(exampleConfig)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	flags := newEnrollCmd(io.Discard, io.Discard).Flags()
	flags.AddFlagSet(newRunCmd(io.Discard).Flags())
	for _, key := range configtest.Keys[Config](t) {
		t.Run(key, func(t *testing.T) {
			doc, ok := configtest.CommentAbove(lines, key)
			if !ok {
				t.Fatalf("%s does not document %q (as `%s:` or `# %s:`)", exampleConfig, key, key, key)
			}
			if env := "Env: " + envName(key); !strings.Contains(doc, env) {
				t.Errorf("comment on %s does not say %q:\n%s", key, env, doc)
			}
			f := flags.Lookup(key)
			if f == nil {
				t.Fatalf("no flag %s on enroll or run", key)
			}
			if def := configtest.FlagDefault(f); def != "" && !strings.Contains(doc, "Default: "+def) {
				t.Errorf("comment on %s does not say %q:\n%s", key, "Default: "+def, doc)
			}
		})
	}
}

// TestExampleConfigCommentedKeysLoad uncomments the example's commented-out keys and loads
// the result, so the suggestions are valid too.
func TestExampleConfigCommentedKeysLoad(t *testing.T) {
	clearEnv(t)
	b, err := os.ReadFile(exampleConfig)
	if err != nil {
		t.Fatal(err)
	}
	uncommented, n := configtest.Uncomment(b, configtest.Keys[Config](t))
	if n == 0 {
		t.Fatal("found no commented-out keys to try")
	}
	path := filepath.Join(t.TempDir(), "pmagent.yaml")
	if err := os.WriteFile(path, uncommented, 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := loadWith(t, newEnrollCmd(io.Discard, io.Discard), "--config", path)
	if err != nil {
		t.Fatalf("load with %d keys uncommented: %v", n, err)
	}
	if got.DockerHost == "" || got.ServerName == "" || got.Token == "" {
		t.Errorf("uncommented keys not loaded: %+v", got)
	}
}

// TestExampleConfigCommands runs the real commands with the example: each must get past the
// configuration and stop where a fresh host would.
func TestExampleConfigCommands(t *testing.T) {
	badToken := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(badToken, []byte("not-a-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		args  []string
		check func(error) bool
	}{
		{
			name:  "run before enrolling",
			args:  []string{"run"},
			check: func(err error) bool { return errors.Is(err, agent.ErrNotEnrolled) },
		},
		{
			// The example's token-file does not exist here: enroll read the key and tried it.
			name: "enroll reads token-file",
			args: []string{"enroll"},
			check: func(err error) bool {
				return errors.Is(err, fs.ErrNotExist) && strings.Contains(err.Error(), "/etc/pocketmolt/enroll-token")
			},
		},
		{
			name:  "enroll parses the token",
			args:  []string{"enroll", "--token-file", badToken},
			check: func(err error) bool { return strings.HasPrefix(err.Error(), "enrollment token") },
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clearEnv(t)
			var stdout, stderr bytes.Buffer
			root := NewCommand(&stdout, &stderr)
			root.SetArgs(append(tc.args, "--config", exampleConfig, "--state-dir", t.TempDir()))
			err := root.ExecuteContext(t.Context())
			if err == nil {
				t.Fatal("succeeded on a fresh state dir")
			}
			if !tc.check(err) {
				t.Errorf("error = %v", err)
			}
		})
	}
}
