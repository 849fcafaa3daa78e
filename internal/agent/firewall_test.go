package agent

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// fakeFirewall is a Firewall whose Ensure fails while err is set, and counts its calls.
type fakeFirewall struct {
	mu    sync.Mutex
	err   error
	calls int
}

func (f *fakeFirewall) Ensure(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	return f.err
}

func (f *fakeFirewall) set(err error) {
	f.mu.Lock()
	f.err = err
	f.mu.Unlock()
}

func (f *fakeFirewall) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// firewallFixture is a bot manager with a fake firewall, checked every 10 s of its fake
// clock, logging into logs.
func firewallFixture(t *testing.T) (*botsFixture, *fakeFirewall, *syncLog) {
	f := newBotsFixture(t)
	logs := &syncLog{}
	f.m.log = slog.New(slog.NewJSONHandler(logs, nil))
	fw := &fakeFirewall{}
	f.m.SetFirewall(fw, 10*time.Second)
	return f, fw, logs
}

type syncLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncLog) count(sub string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), sub)
}

const denied = "iptables-save -t filter: exit status 4: Permission denied (you must be root)"

// While the rules cannot be installed, no container is created or started, the bot says why,
// and one log line says what to fix; once they can, the bot is created.
func TestBotsFirewallFailsClosed(t *testing.T) {
	f, fw, logs := firewallFixture(t)
	fw.set(errors.New(denied))
	f.want(testSpec("alpha", 1, true))
	for range 3 {
		f.m.step(t.Context())
		f.clock.Advance(11 * time.Second)
	}
	assertCalls(t, f.rt)
	st := f.state(t, "alpha")
	assertStatus(t, st, wire.BotFailed, "")
	if !strings.Contains(st.LastError, "bot firewall not in place") || !strings.Contains(st.LastError, denied) {
		t.Fatalf("last error %q", st.LastError)
	}
	if n := logs.count("bot firewall rules cannot be installed"); n != 1 {
		t.Fatalf("%d log lines about the firewall, want 1:\n%s", n, logs.b.String())
	}
	if logs.count("CAP_NET_ADMIN") != 1 || logs.count("bot-firewall: false") != 1 {
		t.Fatalf("the log line does not say what to fix:\n%s", logs.b.String())
	}

	fw.set(nil)
	f.m.step(t.Context())
	assertCalls(t, f.rt, "EnsureImage "+testSpec("alpha", 1, true).Image, "Create alpha", "Start alpha")
	st = f.state(t, "alpha")
	assertStatus(t, st, wire.BotRunning, wire.HealthHealthy)
	if st.LastError != "" {
		t.Fatalf("last error %q after the firewall came back", st.LastError)
	}
	if logs.count("bot firewall rules in place") != 1 {
		t.Fatalf("no log line when the firewall came back:\n%s", logs.b.String())
	}
}

// A container that exists but is stopped is not started while the firewall is down, nor
// restarted through the API; a running one is left running.
func TestBotsFirewallDownStartsNothing(t *testing.T) {
	f, fw, _ := firewallFixture(t)
	f.rt.add(testAgent, "alpha", 1, "exited")
	f.rt.add(testAgent, "beta", 1, "running")
	fw.set(errors.New(denied))
	f.want(testSpec("alpha", 1, true), testSpec("beta", 1, true))
	f.m.step(t.Context())
	assertCalls(t, f.rt)
	assertStatus(t, f.state(t, "alpha"), wire.BotFailed, "")
	assertStatus(t, f.state(t, "beta"), wire.BotRunning, wire.HealthHealthy)

	resp := do(t, http.MethodPost, newBotsServer(t, f).URL+"/v1/bots/beta/restart", nil, nil)
	assertAPIError(t, resp, http.StatusServiceUnavailable, wire.CodeUnavailable)
	assertCalls(t, f.rt)
}

// The rules are checked before the first container is created, and then once per period,
// not on every convergence pass.
func TestBotsFirewallCheckedPeriodically(t *testing.T) {
	f, fw, _ := firewallFixture(t)
	f.want(testSpec("alpha", 1, true))
	f.m.step(t.Context())
	if fw.count() != 1 {
		t.Fatalf("Ensure called %d times before the first container", fw.count())
	}
	for range 50 {
		f.m.step(t.Context())
		f.clock.Advance(100 * time.Millisecond)
	}
	if n := fw.count(); n != 1 {
		t.Fatalf("Ensure called %d times over 50 passes within 5 s, want 1", n)
	}
	f.clock.Advance(5 * time.Second)
	f.m.step(t.Context())
	if n := fw.count(); n != 2 {
		t.Fatalf("Ensure called %d times after the period, want 2", n)
	}
}

// Until the first check, nothing may be started: SetFirewall leaves the manager closed.
func TestBotsFirewallClosedUntilChecked(t *testing.T) {
	f, _, _ := firewallFixture(t)
	if err := f.m.firewallErr(); err == nil {
		t.Fatal("bots may start before the firewall was ever checked")
	}
}
