package e2e_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/pocketmolt/pocketmolt/internal/apiclient"
	"github.com/pocketmolt/pocketmolt/internal/ctlconfig"
	"github.com/pocketmolt/pocketmolt/internal/pmagent"
	"github.com/pocketmolt/pocketmolt/internal/pmd"
	"github.com/pocketmolt/pocketmolt/internal/secret"
	"github.com/pocketmolt/pocketmolt/internal/store"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// These tests drive the cobra commands, so flags, PMD_* variables and files are read the way
// the binaries read them. They set environment variables and so do not run in parallel.

// clearEnv unsets every PMD_ and PMAGENT_ variable for the test, so the caller's environment
// cannot change the outcome.
func clearEnv(t *testing.T) {
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "PMD_") || strings.HasPrefix(name, "PMAGENT_") {
			t.Setenv(name, "")
		}
	}
}

// runCmd runs `pmd args…` and returns its stdout, stderr and error.
func runCmd(ctx context.Context, args ...string) (string, string, error) {
	var stdout, stderr syncBuf
	cmd := pmd.NewCommand(&stdout, &stderr)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(ctx)
	return stdout.String(), stderr.String(), err
}

var loopback = []string{"--public-addr", "127.0.0.1:0", "--agent-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"}

// initDir runs `pmd init` in a new data dir with loopback addresses and returns the dir.
func initDir(t *testing.T, extra ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "pm")
	args := append(append([]string{"init", "--data-dir", dir}, loopback...), extra...)
	if _, stderr, err := runCmd(t.Context(), args...); err != nil {
		t.Fatalf("pmd init: %v\n%s", err, stderr)
	}
	return dir
}

// rootFingerprint is the fingerprint of the root certificate recorded in dir's database.
func rootFingerprint(t *testing.T, dir string) string {
	t.Helper()
	st, err := store.Open(t.Context(), "sqlite:"+filepath.Join(dir, pmd.DatabaseFile))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cs, err := st.ListCerts(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var fps []string
	for _, c := range cs {
		if c.Kind == wire.CertRoot {
			fps = append(fps, c.Fingerprint)
		}
	}
	if len(fps) != 1 {
		t.Fatalf("database holds %d roots, want 1", len(fps))
	}
	return fps[0]
}

func writeFile(t *testing.T, path, text string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func appendFile(t *testing.T, path, text string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
}

// replaceKey rewrites key: value in a pmd.yaml.
func replaceKey(t *testing.T, path, key, value string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	found := false
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, key+":") {
			line, found = key+": "+value, true
		}
		out = append(out, line)
	}
	if !found {
		t.Fatalf("%s has no %s", path, key)
	}
	writeFile(t, path, strings.Join(out, "\n"), 0o600)
}

func TestPMDRefusesBadSetups(t *testing.T) {
	clearEnv(t)
	otherKey, err := secret.NewKey("k1")
	if err != nil {
		t.Fatal(err)
	}
	// A key line one hex digit short: the error must not echo it.
	truncated := strings.TrimSpace(string(secret.FormatKeys(otherKey)))
	truncated = truncated[:len(truncated)-1]

	tests := []struct {
		name string
		// setup prepares a data dir and the environment, and returns pmd's args.
		setup func(t *testing.T) []string
		want  []string // what the error must say
		never []string // what it must not say
	}{
		{
			name: "serve: missing data dir",
			setup: func(t *testing.T) []string {
				return []string{"serve", "--data-dir", filepath.Join(t.TempDir(), "nope")}
			},
			want: []string{"nope", "does not exist", "pmd init"},
		},
		{
			name: "serve: missing data dir from PMD_DATA_DIR",
			setup: func(t *testing.T) []string {
				t.Setenv("PMD_DATA_DIR", filepath.Join(t.TempDir(), "from-env"))
				return []string{"serve"}
			},
			want: []string{"from-env", "does not exist"},
		},
		{
			name: "serve: data dir is a file",
			setup: func(t *testing.T) []string {
				f := filepath.Join(t.TempDir(), "file")
				writeFile(t, f, "not a dir", 0o600)
				return []string{"serve", "--data-dir", f}
			},
			want: []string{"not a directory"},
		},
		{
			name: "init: data dir is a file",
			setup: func(t *testing.T) []string {
				f := filepath.Join(t.TempDir(), "file")
				writeFile(t, f, "not a dir", 0o600)
				return append([]string{"init", "--data-dir", f}, loopback...)
			},
			want: []string{"data dir", "not a directory"},
		},
		{
			name:  "serve: empty data dir",
			setup: func(t *testing.T) []string { return []string{"serve", "--data-dir", t.TempDir()} },
			want:  []string{"not initialised", "pmd init"},
		},
		{
			name: "serve: corrupt master key",
			setup: func(t *testing.T) []string {
				dir := initDir(t)
				writeFile(t, filepath.Join(dir, pmd.MasterKeyFile), "garbage text\n", 0o600)
				return []string{"serve", "--data-dir", dir}
			},
			want: []string{"master key", "corrupt"},
		},
		{
			name: "serve: truncated master key",
			setup: func(t *testing.T) []string {
				dir := initDir(t)
				writeFile(t, filepath.Join(dir, pmd.MasterKeyFile), truncated+"\n", 0o600)
				return []string{"serve", "--data-dir", dir}
			},
			want:  []string{"master key", "corrupt"},
			never: []string{truncated[3:]},
		},
		{
			name: "serve: corrupt PMD_MASTER_KEY",
			setup: func(t *testing.T) []string {
				dir := initDir(t)
				t.Setenv("PMD_MASTER_KEY", truncated)
				return []string{"serve", "--data-dir", dir}
			},
			want:  []string{"PMD_MASTER_KEY", "corrupt"},
			never: []string{truncated[3:]},
		},
		{
			name: "serve: master key readable by others",
			setup: func(t *testing.T) []string {
				dir := initDir(t)
				if err := os.Chmod(filepath.Join(dir, pmd.MasterKeyFile), 0o644); err != nil {
					t.Fatal(err)
				}
				return []string{"serve", "--data-dir", dir}
			},
			want: []string{"master key", "chmod 600"},
		},
		{
			name: "serve: another master key",
			setup: func(t *testing.T) []string {
				dir := initDir(t)
				writeFile(t, filepath.Join(dir, pmd.MasterKeyFile), string(secret.FormatKeys(otherKey)), 0o600)
				return []string{"serve", "--data-dir", dir}
			},
			want:  []string{"master key"},
			never: []string{strings.Fields(string(secret.FormatKeys(otherKey)))[1]},
		},
		{
			name: "serve: missing master key",
			setup: func(t *testing.T) []string {
				dir := initDir(t)
				if err := os.Remove(filepath.Join(dir, pmd.MasterKeyFile)); err != nil {
					t.Fatal(err)
				}
				return []string{"serve", "--data-dir", dir}
			},
			want: []string{"master key", pmd.MasterKeyFile},
		},
		{
			name: "serve: unknown key in pmd.yaml",
			setup: func(t *testing.T) []string {
				dir := initDir(t)
				appendFile(t, filepath.Join(dir, pmd.ConfigFile), "heartbeat-intervall: 5s\n")
				return []string{"serve", "--data-dir", dir}
			},
			want: []string{pmd.ConfigFile, "heartbeat-intervall"},
		},
		{
			name: "serve: list for a duration",
			setup: func(t *testing.T) []string {
				dir := initDir(t)
				replaceKey(t, filepath.Join(dir, pmd.ConfigFile), "heartbeat-interval", "[1, 2]")
				return []string{"serve", "--data-dir", dir}
			},
			want: []string{pmd.ConfigFile, "heartbeat-interval"},
		},
		{
			name: "serve: word for a duration",
			setup: func(t *testing.T) []string {
				dir := initDir(t)
				replaceKey(t, filepath.Join(dir, pmd.ConfigFile), "heartbeat-interval", "often")
				return []string{"serve", "--data-dir", dir}
			},
			want: []string{pmd.ConfigFile, "heartbeat-interval"},
		},
		{
			name: "serve: map for an address",
			setup: func(t *testing.T) []string {
				dir := initDir(t)
				replaceKey(t, filepath.Join(dir, pmd.ConfigFile), "agent-addr", "{a: b}")
				return []string{"serve", "--data-dir", dir}
			},
			want: []string{pmd.ConfigFile, "agent-addr"},
		},
		{
			name: "serve: interval too short",
			setup: func(t *testing.T) []string {
				dir := initDir(t)
				replaceKey(t, filepath.Join(dir, pmd.ConfigFile), "heartbeat-interval", "10ms")
				return []string{"serve", "--data-dir", dir}
			},
			want: []string{"heartbeat-interval", "100ms"},
		},
		{
			name: "serve: bad PMD_HEARTBEAT_INTERVAL",
			setup: func(t *testing.T) []string {
				dir := initDir(t)
				t.Setenv("PMD_HEARTBEAT_INTERVAL", "soon")
				return []string{"serve", "--data-dir", dir}
			},
			want: []string{"heartbeat-interval"},
		},
		{
			name: "serve: database out of reach",
			setup: func(t *testing.T) []string {
				return append([]string{"serve", "--data-dir", initDir(t), "--database", "postgres://pm:hunter2@127.0.0.1:1/pm?connect_timeout=2"}, loopback...)
			},
			want:  []string{"127.0.0.1:1", "connection refused"},
			never: []string{"hunter2", "\n"},
		},
		{
			name: "serve: bad metrics-addr",
			setup: func(t *testing.T) []string {
				return []string{"serve", "--data-dir", initDir(t), "--metrics-addr", "9464"}
			},
			want: []string{"metrics-addr", "host:port"},
		},
		{
			name: "serve: metrics-addr taken",
			setup: func(t *testing.T) []string {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { ln.Close() })
				return append([]string{"serve", "--data-dir", initDir(t), "--metrics-addr", ln.Addr().String()}, loopback...)
			},
			want: []string{"metrics-addr", "address already in use"},
		},
		{
			name: "serve: not yaml",
			setup: func(t *testing.T) []string {
				dir := initDir(t)
				appendFile(t, filepath.Join(dir, pmd.ConfigFile), "\t: : [\n")
				return []string{"serve", "--data-dir", dir}
			},
			want: []string{pmd.ConfigFile},
		},
		{
			name: "serve: missing --config file",
			setup: func(t *testing.T) []string {
				return []string{"serve", "--data-dir", initDir(t), "--config", filepath.Join(t.TempDir(), "absent.yaml")}
			},
			want: []string{"absent.yaml"},
		},
		{
			name: "init: unknown key in --config",
			setup: func(t *testing.T) []string {
				f := filepath.Join(t.TempDir(), "pmd.yaml")
				writeFile(t, f, "agent-addr: 127.0.0.1:0\nadmin-adr: 127.0.0.1:0\n", 0o600)
				return []string{"init", "--data-dir", filepath.Join(t.TempDir(), "pm"), "--config", f}
			},
			want: []string{"admin-adr"},
		},
		{
			name: "init: bad address",
			setup: func(t *testing.T) []string {
				return []string{"init", "--data-dir", filepath.Join(t.TempDir(), "pm"), "--agent-addr", "8443"}
			},
			want: []string{"agent-addr", "host:port"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.setup(t)
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			_, stderr, err := runCmd(ctx, args...)
			if err == nil {
				t.Fatalf("pmd %s succeeded; stderr:\n%s", strings.Join(args, " "), stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			for _, n := range tt.never {
				if strings.Contains(err.Error()+stderr, n) {
					t.Errorf("error or log reveals %q: %v", n, err)
				}
			}
		})
	}
}

func TestPMDInitTwice(t *testing.T) {
	clearEnv(t)
	dir := initDir(t)
	fp := rootFingerprint(t, dir)
	key, err := os.ReadFile(filepath.Join(dir, pmd.MasterKeyFile))
	if err != nil {
		t.Fatal(err)
	}

	t.Run("a second init is refused", func(t *testing.T) {
		_, _, err := runCmd(t.Context(), append([]string{"init", "--data-dir", dir}, loopback...)...)
		if err == nil || !strings.Contains(err.Error(), "already initialised") || !strings.Contains(err.Error(), "--force") {
			t.Fatalf("second init: %v, want a refusal that mentions --force", err)
		}
		if got := rootFingerprint(t, dir); got != fp {
			t.Fatalf("root changed from %s to %s", fp, got)
		}
		if got, _ := os.ReadFile(filepath.Join(dir, pmd.MasterKeyFile)); !bytes.Equal(got, key) {
			t.Fatal("master key changed")
		}
	})

	t.Run("a second init through PMD_DATA_DIR is refused", func(t *testing.T) {
		t.Setenv("PMD_DATA_DIR", dir)
		_, _, err := runCmd(t.Context(), append([]string{"init"}, loopback...)...)
		if err == nil || !strings.Contains(err.Error(), "already initialised") {
			t.Fatalf("second init: %v", err)
		}
		if got := rootFingerprint(t, dir); got != fp {
			t.Fatalf("root changed from %s to %s", fp, got)
		}
	})

	t.Run("--force starts over with a new CA", func(t *testing.T) {
		stdout, _, err := runCmd(t.Context(), append([]string{"init", "--data-dir", dir, "--force"}, loopback...)...)
		if err != nil {
			t.Fatalf("init --force: %v", err)
		}
		if !strings.Contains(stdout, "warning") {
			t.Errorf("init --force printed no warning:\n%s", stdout)
		}
		got := rootFingerprint(t, dir)
		if got == fp {
			t.Fatal("init --force kept the old CA")
		}
		if !strings.Contains(stdout, got) {
			t.Errorf("init --force did not print the new root fingerprint %s:\n%s", got, stdout)
		}
		if k, _ := os.ReadFile(filepath.Join(dir, pmd.MasterKeyFile)); bytes.Equal(k, key) {
			t.Error("init --force kept the old master key")
		}
	})
}

// yamlKey reads one key of a YAML file.
func yamlKey(t *testing.T, path, key string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	s, _ := m[key].(string)
	return s
}

// servePMD runs `pmd serve args…` until the test ends and returns the agent and admin
// addresses it bound.
func servePMD(t *testing.T, args ...string) (agentAddr, adminAddr string) {
	t.Helper()
	var stdout, stderr syncBuf
	cmd := pmd.NewCommand(&stdout, &stderr)
	cmd.SetArgs(append([]string{"serve"}, args...))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("pmd serve: %v", err)
		}
	})
	eventually(t, 10*time.Second, "pmd serving", func() bool {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("pmd serve ended: %v\n%s", err, stderr.String())
		default:
		}
		for _, line := range strings.Split(stderr.String(), "\n") {
			var e struct {
				Msg       string `json:"msg"`
				AgentAddr string `json:"agent_addr"`
				AdminAddr string `json:"admin_addr"`
			}
			if json.Unmarshal([]byte(line), &e) == nil && e.Msg == "pmd serving" {
				agentAddr, adminAddr = e.AgentAddr, e.AdminAddr
				return true
			}
		}
		return false
	})
	return agentAddr, adminAddr
}

// heartbeatFromServe enrolls a host with the pmd serving dir and returns the heartbeat
// interval pmd gave it.
func heartbeatFromServe(t *testing.T, dir, name, agentAddr, adminAddr string) time.Duration {
	t.Helper()
	cfg, err := ctlconfig.Load(filepath.Join(dir, pmd.CtlConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	cc, err := cfg.Current()
	if err != nil {
		t.Fatal(err)
	}
	cc.Server = adminAddr
	ac, err := apiclient.New(cc)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := ac.CreateHostToken(t.Context(), wire.TokenRequest{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM([]byte(cc.CAData))
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		MinVersion: tls.VersionTLS13, RootCAs: roots, ServerName: "127.0.0.1", NextProtos: []string{wire.ProtoEnroll},
	}}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Post("https://"+agentAddr+"/v1/enroll", "application/json", bytes.NewReader(enrollBody(t, tr.Token, string(newCSR(t)))))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("enroll: %v", wire.DecodeError(resp))
	}
	var er wire.EnrollResponse
	if err := json.NewDecoder(resp.Body).Decode(&er); err != nil {
		t.Fatal(err)
	}
	return time.Duration(er.Heartbeat)
}

func TestPMDConfigPrecedence(t *testing.T) {
	clearEnv(t)

	t.Run("init records env and flags, flags first", func(t *testing.T) {
		t.Setenv("PMD_HEARTBEAT_INTERVAL", "700ms")
		t.Setenv("PMD_TOKEN_TTL", "2h")
		dir := initDir(t, "--token-ttl", "3h")
		path := filepath.Join(dir, pmd.ConfigFile)
		if got := yamlKey(t, path, "heartbeat-interval"); got != "700ms" {
			t.Errorf("heartbeat-interval = %q, want 700ms from PMD_HEARTBEAT_INTERVAL", got)
		}
		if got := yamlKey(t, path, "token-ttl"); got != "3h0m0s" {
			t.Errorf("token-ttl = %q, want 3h0m0s from the flag over PMD_TOKEN_TTL", got)
		}
	})

	// One installation whose pmd.yaml says 2s, served three ways.
	dir := initDir(t, "--heartbeat-interval", "2s")
	if got := yamlKey(t, filepath.Join(dir, pmd.ConfigFile), "heartbeat-interval"); got != "2s" {
		t.Fatalf("pmd.yaml heartbeat-interval = %q", got)
	}
	tests := []struct {
		name string
		env  string
		args []string
		want time.Duration
	}{
		{"the file", "", nil, 2 * time.Second},
		{"PMD_HEARTBEAT_INTERVAL over the file", "700ms", nil, 700 * time.Millisecond},
		{"the flag over PMD_HEARTBEAT_INTERVAL", "700ms", []string{"--heartbeat-interval", "900ms"}, 900 * time.Millisecond},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.env != "" {
				t.Setenv("PMD_HEARTBEAT_INTERVAL", tt.env)
			}
			// PMD_DATA_DIR names the installation, as a service unit would.
			t.Setenv("PMD_DATA_DIR", dir)
			agentAddr, adminAddr := servePMD(t, tt.args...)
			if got := heartbeatFromServe(t, dir, "edge-"+string(rune('a'+i)), agentAddr, adminAddr); got != tt.want {
				t.Fatalf("pmd told the agent %s, want %s", got, tt.want)
			}
		})
	}
}

func TestPMAgentRefusesBadConfig(t *testing.T) {
	clearEnv(t)
	stateDir := t.TempDir()
	tests := []struct {
		name string
		cmd  string
		yaml string
		want []string
	}{
		{"run: unknown key", "run", "state-dir: " + stateDir + "\nmax-backof: 5s\n", []string{"max-backof"}},
		{"enroll: unknown key", "enroll", "server: 127.0.0.1:1\ntokn: x\n", []string{"tokn"}},
		{"run: list for a duration", "run", "state-dir: " + stateDir + "\nmax-backoff: [1, 2]\n", []string{"max-backoff"}},
		{"run: map for a string", "run", "state-dir: {a: b}\n", []string{"state-dir"}},
		{"run: bad log level", "run", "state-dir: " + stateDir + "\nlog-level: loud\n", []string{"loud"}},
		{"run: bad bot-egress-allow entry", "run", "state-dir: " + stateDir + "\nbot-egress-allow: [\"10.0.0.5:5432/tcp\", \"10.0.0.1/8\"]\n", []string{`bot-egress-allow: entry "10.0.0.1/8": network 10.0.0.1/8 has host bits set: did you mean 10.0.0.0/8?`}},
		{"run: bad bot-firewall", "run", "state-dir: " + stateDir + "\nbot-firewall: maybe\n", []string{"bot-firewall"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "pmagent.yaml")
			writeFile(t, path, tt.yaml, 0o600)
			var stdout, stderr syncBuf
			cmd := pmagent.NewCommand(&stdout, &stderr)
			cmd.SetArgs([]string{tt.cmd, "--config", path})
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			err := cmd.ExecuteContext(ctx)
			if err == nil {
				t.Fatalf("pmagent %s succeeded with %q", tt.cmd, tt.yaml)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}

	t.Run("run: PMAGENT_STATE_DIR is read", func(t *testing.T) {
		t.Setenv("PMAGENT_STATE_DIR", filepath.Join(t.TempDir(), "from-env"))
		cmd := pmagent.NewCommand(&syncBuf{}, &syncBuf{})
		cmd.SetArgs([]string{"run", "--config", filepath.Join(t.TempDir(), "absent.yaml")})
		err := cmd.ExecuteContext(t.Context())
		if err == nil {
			t.Fatal("pmagent run succeeded")
		}
		// An explicit --config that is missing is an error in itself; without one the
		// variable decides the state dir.
		cmd = pmagent.NewCommand(&syncBuf{}, &syncBuf{})
		cmd.SetArgs([]string{"run"})
		err = cmd.ExecuteContext(t.Context())
		if err == nil || !strings.Contains(err.Error(), "from-env") {
			t.Fatalf("pmagent run: %v, want an error about the state dir from PMAGENT_STATE_DIR", err)
		}
	})
}
