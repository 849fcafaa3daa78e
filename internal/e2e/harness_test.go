// Package e2e_test runs pmd, agents and the admin API together over real TLS and yamux on
// loopback.
package e2e_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/agent"
	"github.com/pocketmolt/pocketmolt/internal/apiclient"
	"github.com/pocketmolt/pocketmolt/internal/ctlconfig"
	"github.com/pocketmolt/pocketmolt/internal/pmd"
	"github.com/pocketmolt/pocketmolt/internal/standinprovider"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

const beat = 200 * time.Millisecond

// syncBuf is a log sink tests can read while daemons write.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type testPMD struct {
	t      *testing.T
	cfg    pmd.Config
	D      *pmd.Daemon
	Logs   *syncBuf
	cancel context.CancelFunc
	done   chan error
	// Provider is the stand-in model provider every bot's calls go to, with the platform's
	// keys (platformAnthropicKey, platformOpenAIKey) or their owners' own.
	Provider *standinprovider.Server
}

// The platform's own model keys in every test pmd.
const (
	platformAnthropicKey = "sk-ant-platform-e2e-0123456789abcdef"
	platformOpenAIKey    = "sk-platform-e2e-openai-0123456789abcdef"
)

func testConfig(t *testing.T) pmd.Config {
	return pmd.Config{
		DataDir:           filepath.Join(t.TempDir(), "pm"),
		PublicAddr:        "127.0.0.1:0",
		AgentAddr:         "127.0.0.1:0",
		AdminAddr:         "127.0.0.1:0",
		HeartbeatInterval: beat,
		LogLevel:          "debug",
		// Every test host enrolls from loopback; TestEnrollmentFloodIsRefused tests the limit.
		EnrollRatePerAddress: 1000,
	}
}

// startPMD initialises a data dir and serves pmd on loopback ports.
func startPMD(t *testing.T, mutate func(*pmd.Config)) *testPMD {
	t.Helper()
	cfg := testConfig(t)
	prov, err := standinprovider.Start(context.Background(), "127.0.0.1:0", standinprovider.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prov.Close() })
	keys := t.TempDir()
	cfg.AnthropicAPIKeyFile, cfg.OpenAIAPIKeyFile = filepath.Join(keys, "anthropic"), filepath.Join(keys, "openai")
	for file, key := range map[string]string{cfg.AnthropicAPIKeyFile: platformAnthropicKey, cfg.OpenAIAPIKeyFile: platformOpenAIKey} {
		if err := os.WriteFile(file, []byte(key+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg.AnthropicBaseURL, cfg.OpenAIBaseURL = prov.URL(), prov.URL()+"/v1"
	if mutate != nil {
		mutate(&cfg)
	}
	if err := pmd.Init(t.Context(), cfg, io.Discard); err != nil {
		t.Fatalf("init: %v", err)
	}
	p := &testPMD{t: t, cfg: cfg, Provider: prov}
	p.start()
	t.Cleanup(p.stop)
	return p
}

func (p *testPMD) start() {
	p.t.Helper()
	p.Logs = &syncBuf{}
	log := slog.New(slog.NewJSONHandler(p.Logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	d, err := pmd.Open(context.Background(), p.cfg, log)
	if err != nil {
		p.t.Fatalf("open pmd: %v", err)
	}
	p.D = d
	// Agents dial the same address after a restart.
	p.cfg.AgentAddr = d.AgentAddr
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	p.done = make(chan error, 1)
	go func() { p.done <- d.Run(ctx) }()
}

func (p *testPMD) stop() {
	if p.cancel == nil {
		return
	}
	p.cancel()
	if err := <-p.done; err != nil {
		p.t.Errorf("pmd run: %v", err)
	}
	p.cancel = nil
}

func (p *testPMD) restart() {
	p.stop()
	p.start()
}

// admin is an admin API client using the pmctl.yaml init wrote.
func (p *testPMD) admin() *apiclient.Client {
	p.t.Helper()
	cfg, err := ctlconfig.Load(filepath.Join(p.cfg.DataDir, pmd.CtlConfigFile))
	if err != nil {
		p.t.Fatal(err)
	}
	cc, err := cfg.Current()
	if err != nil {
		p.t.Fatal(err)
	}
	cc.Server = p.D.AdminAddr
	c, err := apiclient.New(cc)
	if err != nil {
		p.t.Fatal(err)
	}
	return c
}

func (p *testPMD) token(name string) string {
	p.t.Helper()
	tr, err := p.admin().CreateHostToken(p.t.Context(), wire.TokenRequest{Name: name})
	if err != nil {
		p.t.Fatalf("token for %s: %v", name, err)
	}
	return tr.Token
}

type testAgent struct {
	t      *testing.T
	A      *agent.Agent
	Logs   *syncBuf
	cancel context.CancelFunc
	done   chan struct{}

	mu    sync.Mutex
	conns []net.Conn
}

// enroll enrolls a host called name and runs its agent.
func (p *testPMD) enroll(name string) *testAgent {
	p.t.Helper()
	dir := filepath.Join(p.t.TempDir(), name)
	st, err := agent.Enroll(p.t.Context(), agent.EnrollOptions{Server: p.D.AgentAddr, Token: p.token(name), StateDir: dir})
	if err != nil {
		p.t.Fatalf("enroll %s: %v", name, err)
	}
	return runAgent(p.t, st)
}

func runAgent(t *testing.T, st *agent.State) *testAgent { return runAgentAgainst(t, st, "") }

// runAgentAgainst runs an agent for st that dials to, whatever its identity says, or the
// address its identity names when to is "".
func runAgentAgainst(t *testing.T, st *agent.State, to string) *testAgent {
	ta := &testAgent{t: t, Logs: &syncBuf{}, done: make(chan struct{})}
	log := slog.New(slog.NewJSONHandler(ta.Logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ta.A = agent.New(st, nil, "test", log)
	ta.A.MaxBackoff = 300 * time.Millisecond
	ta.A.Dialer = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if to != "" {
			addr = to
		}
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err == nil {
			ta.mu.Lock()
			ta.conns = append(ta.conns, c)
			ta.mu.Unlock()
		}
		return c, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	ta.cancel = cancel
	go func() { defer close(ta.done); ta.A.Run(ctx) }()
	t.Cleanup(ta.stop)
	return ta
}

func (a *testAgent) stop() {
	a.cancel()
	<-a.done
}

// cut closes the agent's current TCP connection, as a network failure would.
func (a *testAgent) cut() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if n := len(a.conns); n > 0 {
		a.conns[n-1].Close()
	}
}

func (a *testAgent) hostID() string { return a.A.State.Identity.HostID }

// eventually polls cond until it holds or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (p *testPMD) status(ref string) string {
	h, err := p.admin().GetHost(p.t.Context(), ref)
	if err != nil {
		p.t.Fatalf("get host %s: %v", ref, err)
	}
	return h.Status
}

func (p *testPMD) waitStatus(ref, want string) {
	p.t.Helper()
	eventually(p.t, 10*time.Second, ref+" "+want, func() bool { return p.status(ref) == want })
}
