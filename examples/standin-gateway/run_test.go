package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedWriter serialises writes from the server's goroutines for the race detector.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestParseConfig(t *testing.T) {
	env := mapLookup(map[string]string{"TOK": "s3cret", "PORT_NAME": "x", "EMPTY": ""})
	tests := []struct {
		name    string
		json    string
		wantErr string
		check   func(t *testing.T, c *config)
	}{
		{name: "the documented config", json: `{
			"gateway": {"mode": "local", "port": 18789, "bind": "lan",
				"auth": {"mode": "token", "token": "${TOK}"},
				"http": {"endpoints": {"chatCompletions": {"enabled": true}}}},
			"agents": {"defaults": {"workspace": "~/.openclaw/workspace", "model": {"primary": "anthropic/claude-sonnet-4-6"}}},
			"channels": {"telegram": {"enabled": true, "botToken": "${TOK}", "dmPolicy": "pairing"}}}`,
			check: func(t *testing.T, c *config) {
				if c.Mode != "local" || c.Port != 18789 || c.Bind != "lan" || c.Token != "s3cret" || !c.ChatCompletions || !c.TerminalEnabled {
					t.Errorf("%+v", c)
				}
				if !c.KnownModels["anthropic/claude-sonnet-4-6"] {
					t.Errorf("primary model not known: %v", c.KnownModels)
				}
			}},
		{name: "$schema, comments and trailing commas", json: `{
			// a comment
			"$schema": "https://example.invalid/schema.json", /* block */
			"gateway": {"mode": "local", "trustedProxies": ["10.0.0.1", "172.16.0.0/12",],},
		}`, check: func(t *testing.T, c *config) {
			if len(c.TrustedProxies) != 2 || c.TrustedProxies[0].String() != "10.0.0.1/32" {
				t.Errorf("trusted proxies %v", c.TrustedProxies)
			}
		}},
		{name: "comment markers inside strings stay", json: `{"gateway":{"mode":"local","auth":{"token":"a//b/*c*/,}"}}}`,
			check: func(t *testing.T, c *config) {
				if c.Token != "a//b/*c*/,}" {
					t.Errorf("token %q", c.Token)
				}
			}},
		{name: "expansion inside longer strings and escapes", json: `{"gateway":{"mode":"local","auth":{"token":"pre-${TOK}-$${TOK}-${lower}"}}}`,
			check: func(t *testing.T, c *config) {
				if c.Token != "pre-s3cret-${TOK}-${lower}" {
					t.Errorf("token %q", c.Token)
				}
			}},
		{name: "env secret ref", json: `{"gateway":{"mode":"local","auth":{"token":{"source":"env","provider":"default","id":"TOK"}}}}`,
			check: func(t *testing.T, c *config) {
				if c.Token != "s3cret" {
					t.Errorf("token %q", c.Token)
				}
			}},
		{name: "agents entries", json: `{"gateway":{"mode":"local"},"agents":{"entries":{"support":{},"ops":{}}}}`,
			check: func(t *testing.T, c *config) {
				if strings.Join(c.Agents, ",") != "ops,support" {
					t.Errorf("agents %v", c.Agents)
				}
			}},
		{name: "unknown root key", json: `{"gateway":{"mode":"local"},"mcpServers":{}}`, wantErr: `unknown key "mcpServers" at the root`},
		{name: "unknown gateway key", json: `{"gateway":{"mode":"local","listen":"0.0.0.0"}}`, wantErr: `unknown key "listen" under gateway`},
		{name: "unknown gateway.auth key", json: `{"gateway":{"auth":{"bearer":"x"}}}`, wantErr: `unknown key "bearer" under gateway.auth`},
		{name: "unknown chatCompletions key", json: `{"gateway":{"http":{"endpoints":{"chatCompletions":{"on":true}}}}}`, wantErr: `under gateway.http.endpoints.chatCompletions`},
		{name: "unset variable", json: `{"gateway":{"auth":{"token":"${NOPE}"}}}`, wantErr: `gateway.auth.token references ${NOPE}`},
		{name: "empty variable", json: `{"channels":{"telegram":{"botToken":"${EMPTY}"}}}`, wantErr: `channels.telegram.botToken references ${EMPTY}`},
		{name: "bind address instead of mode", json: `{"gateway":{"bind":"0.0.0.0"}}`, wantErr: "gateway.bind must be one of"},
		{name: "port out of range", json: `{"gateway":{"port":70000}}`, wantErr: "gateway.port must be an integer"},
		{name: "port as string", json: `{"gateway":{"port":"18789"}}`, wantErr: "gateway.port must be an integer"},
		{name: "bad trusted proxy", json: `{"gateway":{"trustedProxies":["proxy.local"]}}`, wantErr: "not an IP or CIDR"},
		{name: "not an object", json: `[]`, wantErr: "root must be an object"},
		{name: "broken JSON", json: `{"gateway":`, wantErr: "parse"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseConfig([]byte(tt.json), env)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want it to contain %q", err, tt.wantErr)
				}
				if !errors.Is(err, errConfig) {
					t.Errorf("err %v does not wrap errConfig", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

func TestConfigPath(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"HOME unset, as FROM scratch", map[string]string{}, "/home/node/.openclaw/openclaw.json"},
		{"HOME", map[string]string{"HOME": "/root"}, "/root/.openclaw/openclaw.json"},
		{"state dir", map[string]string{"HOME": "/root", "OPENCLAW_STATE_DIR": "/data"}, "/data/openclaw.json"},
		{"state dir with ~", map[string]string{"HOME": "/h", "OPENCLAW_STATE_DIR": "~/state"}, "/h/state/openclaw.json"},
		{"config path wins", map[string]string{"OPENCLAW_STATE_DIR": "/data", "OPENCLAW_CONFIG_PATH": "/etc/oc.json"}, "/etc/oc.json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := configPath(func(k string) string { return tt.env[k] }); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

const localConfig = `{"gateway":{"mode":"local","auth":{"token":"${OPENCLAW_GATEWAY_TOKEN}"},"http":{"endpoints":{"chatCompletions":{"enabled":true}}}}}`

// TestRunExitCodes drives run like the container would and checks the exit code and message
// for every refusal, and that good setups listen and exit 0 on cancellation.
func TestRunExitCodes(t *testing.T) {
	tests := []struct {
		name       string
		config     string // "" = no file
		env        map[string]string
		args       []string
		wantCode   int
		wantStderr string
		wantHost   string // for code 0: the IP it must listen on
	}{
		{name: "no config", args: []string{"gateway", "--port", "0"}, wantCode: 78, wantStderr: "gateway.mode=local (current: unset)"},
		{name: "no config, allow-unconfigured", args: []string{"gateway", "--port", "0", "--allow-unconfigured"}, wantCode: 0, wantHost: "127.0.0.1"},
		{name: "mode unset", config: `{"gateway":{"port":18789}}`, args: []string{"gateway", "--port", "0"}, wantCode: 78, wantStderr: "Gateway start blocked"},
		{name: "mode remote", config: `{"gateway":{"mode":"remote"}}`, args: []string{"gateway", "--port", "0"}, wantCode: 78, wantStderr: "current: remote"},
		{name: "unknown root key", config: `{"gateway":{"mode":"local"},"mcpServers":{}}`, args: []string{"gateway", "--port", "0"}, wantCode: 78, wantStderr: `unknown key "mcpServers"`},
		{name: "unknown gateway key", config: `{"gateway":{"mode":"local","host":"x"}}`, args: []string{"gateway", "--port", "0"}, wantCode: 78, wantStderr: `unknown key "host" under gateway`},
		{name: "missing variable", config: localConfig, args: []string{"gateway", "--port", "0"}, wantCode: 78, wantStderr: "${OPENCLAW_GATEWAY_TOKEN}"},
		{name: "lan without auth", config: `{"gateway":{"mode":"local"}}`, args: []string{"gateway", "--port", "0", "--bind", "lan"}, wantCode: 78, wantStderr: "without auth"},
		{name: "lan from config without auth", config: `{"gateway":{"mode":"local","bind":"lan"}}`, args: []string{"gateway", "--port", "0"}, wantCode: 78, wantStderr: "without auth"},
		{name: "auth mode token without token", config: `{"gateway":{"mode":"local","auth":{"mode":"token"}}}`, args: []string{"gateway", "--port", "0"}, wantCode: 78, wantStderr: "no token"},
		{name: "lan with env token", config: `{"gateway":{"mode":"local"}}`, env: map[string]string{"OPENCLAW_GATEWAY_TOKEN": "t"}, args: []string{"gateway", "--port", "0", "--bind", "lan"}, wantCode: 0, wantHost: "0.0.0.0"},
		{name: "loopback without auth", config: `{"gateway":{"mode":"local"}}`, args: []string{"gateway", "--port", "0"}, wantCode: 0, wantHost: "127.0.0.1"},
		{name: "expanded token", config: localConfig, env: map[string]string{"OPENCLAW_GATEWAY_TOKEN": "t"}, args: []string{"gateway", "--port", "0", "--bind", "lan"}, wantCode: 0, wantHost: "0.0.0.0"},
		{name: "bad startup delay", config: `{"gateway":{"mode":"local"}}`, env: map[string]string{"STANDIN_STARTUP_DELAY": "soon"}, args: []string{"gateway", "--port", "0"}, wantCode: 78, wantStderr: "STANDIN_STARTUP_DELAY"},
		{name: "bad bind flag", config: `{"gateway":{"mode":"local"}}`, args: []string{"gateway", "--port", "0", "--bind", "0.0.0.0"}, wantCode: 2, wantStderr: "--bind"},
		{name: "unknown flag", config: `{"gateway":{"mode":"local"}}`, args: []string{"gateway", "--nope"}, wantCode: 2},
		{name: "unknown command", args: []string{"serve"}, wantCode: 2, wantStderr: "unknown command"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			env := map[string]string{"OPENCLAW_STATE_DIR": dir, "STANDIN_STARTUP_DELAY": "0s"}
			for k, v := range tt.env {
				env[k] = v
			}
			if tt.config != "" {
				if err := os.WriteFile(filepath.Join(dir, "openclaw.json"), []byte(tt.config), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			var stdout, stderr bytes.Buffer
			var addr net.Addr
			code := run(ctx, tt.args, mapLookup(env), &lockedWriter{w: &stdout}, &stderr, func(a net.Addr) {
				addr = a
				cancel() // listening is all this test needs; stop right away
			})
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d; stderr: %s", code, tt.wantCode, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Errorf("stderr %q, want it to contain %q", stderr.String(), tt.wantStderr)
			}
			if tt.wantCode != 0 {
				return
			}
			host, _, _ := net.SplitHostPort(addr.String())
			if host != tt.wantHost {
				t.Errorf("listened on %s, want host %s", addr, tt.wantHost)
			}
			if !strings.Contains(stdout.String(), "gateway listening on "+addr.String()) {
				t.Errorf("no start line in %s", stdout.String())
			}
		})
	}
}

// freePort finds a port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestRunNoArgsServes runs with no arguments, as the image's defaults would: lan, port from
// gateway.port. It watches the probes go from starting to started, then cancels.
func TestRunNoArgsServes(t *testing.T) {
	dir := t.TempDir()
	port := freePort(t)
	cfg := strings.Replace(localConfig, `"mode":"local"`, `"mode":"local","port":`+itoa(port), 1)
	if err := os.WriteFile(filepath.Join(dir, "openclaw.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"OPENCLAW_STATE_DIR": dir, "OPENCLAW_GATEWAY_TOKEN": "t", "STANDIN_STARTUP_DELAY": "300ms"}
	ctx, cancel := context.WithCancel(t.Context())
	listening := make(chan net.Addr, 1)
	done := make(chan int, 1)
	var stdout bytes.Buffer
	go func() {
		done <- run(ctx, nil, mapLookup(env), &lockedWriter{w: &stdout}, io.Discard, func(a net.Addr) { listening <- a })
	}()
	var addr net.Addr
	select {
	case addr = <-listening:
	case code := <-done:
		t.Fatalf("run exited %d before listening", code)
	case <-time.After(5 * time.Second):
		t.Fatal("not listening after 5 s")
	}
	if want := "0.0.0.0:" + itoa(port); addr.String() != want {
		t.Errorf("listening on %s, want %s", addr, want)
	}
	base := "http://127.0.0.1:" + itoa(port)
	if got := getStatus(t, base+"/healthz"); got != 200 {
		t.Errorf("healthz while starting: %d", got)
	}
	if got := getStatus(t, base+"/startupz"); got != 503 {
		t.Errorf("startupz while starting: %d", got)
	}
	deadline := time.Now().Add(3 * time.Second)
	for getStatus(t, base+"/startupz") != 200 {
		if time.Now().After(deadline) {
			t.Fatal("never started")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := getStatus(t, base+"/readyz"); got != 200 {
		t.Errorf("readyz once started: %d", got)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit %d after cancellation", code)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("run did not return within 2 s of cancellation")
	}
}

func getStatus(t *testing.T, url string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func itoa(i int) string { return strconv.Itoa(i) }
