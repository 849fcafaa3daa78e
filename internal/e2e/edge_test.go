package e2e_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/pmd"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// evil is what a hostile bot or host puts in every string it can: a window title (OSC 0), a
// screen clear (CSI), a C1 CSI, an OSC 8 hyperlink, a bidi override, a lone CR and DEL.
const evil = "\x1b]0;pwned\x07\x1b[2J\u009b2J\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\ \u202eexe.txt\u202c ok\rFAKE\x7f"

// rawAt returns the offset of the first character in s a terminal would act on (a CR that
// does not end a line counts), or -1.
func rawAt(s string) int {
	for i, r := range s {
		if r < 0x20 && r != '\n' && r != '\t' && !(r == '\r' && strings.HasPrefix(s[i:], "\r\n")) ||
			r == 0x7f || r >= 0x80 && r <= 0x9f || r >= 0x202a && r <= 0x202e || r >= 0x2066 && r <= 0x2069 {
			return i
		}
	}
	return -1
}

// mustBeClean fails the test if s holds anything a terminal would act on.
func mustBeClean(t *testing.T, what, s string) {
	t.Helper()
	if i := rawAt(s); i >= 0 {
		t.Errorf("%s holds %q raw at %d: %q", what, s[i:min(i+8, len(s))], i, s)
	}
}

// hostileAPI is a host's bot API whose every answer is evil: probes, logs (followed or not)
// and the gateway's chat replies. It counts the calls pmd makes.
type hostileAPI struct {
	logs, chats, restarts atomic.Int32
	// restartErr, when set, is what the host answers a restart with.
	restartErr atomic.Pointer[wire.Error]
}

func (h *hostileAPI) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/bots/{id}/health", func(w http.ResponseWriter, r *http.Request) {
		wire.WriteJSON(w, 200, wire.Probes{
			Startupz: wire.Probe{Status: 503, Body: evil}, Healthz: wire.Probe{Status: 200, Body: evil},
			Readyz: wire.Probe{Error: evil}, Checked: time.Now(),
		})
	})
	mux.HandleFunc("GET /v1/bots/{id}/logs", func(w http.ResponseWriter, r *http.Request) {
		h.logs.Add(1)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fl := w.(http.Flusher)
		// An escape sequence, a rune and a CR LF cut across writes, as a stream brings them.
		for _, chunk := range []string{"gateway starting\r", "\nsplit \xe2\x9c", "\x93 \x1b", "[2J\n", evil + "\n", "end of tail\n"} {
			w.Write([]byte(chunk))
			fl.Flush()
		}
		if r.URL.Query().Get("follow") == "true" {
			<-r.Context().Done()
		}
	})
	mux.HandleFunc("POST /v1/bots/{id}/gateway/v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
		h.chats.Add(1)
		wire.WriteJSON(w, 200, map[string]any{
			"model":   "openclaw",
			"choices": []any{map[string]any{"message": map[string]any{"role": "assistant", "content": "Sure.\n" + evil}}},
			"usage":   wire.Usage{PromptTokens: 3, CompletionTokens: 4, TotalTokens: 7},
		})
	})
	mux.HandleFunc("POST /v1/bots/{id}/restart", func(w http.ResponseWriter, r *http.Request) {
		h.restarts.Add(1)
		if e := h.restartErr.Load(); e != nil {
			wire.WriteError(w, e)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}

// smallHost is the facts of a host with mem of memory, declaring all but 1 GiB of it and a
// bot per 2 GiB, as pmagent does by default.
func smallHost(name string, mem int64) *wire.HostFacts {
	return &wire.HostFacts{
		Hostname: name, OS: "linux", Arch: "amd64", CPUs: 2, MemoryBytes: uint64(mem), AgentVersion: "fake",
		DockerVersion: "27.0.0", Capacity: wire.Capacity{Bots: int((mem - 1<<30) / (2 << 30)), MemoryBytes: mem - 1<<30},
	}
}

const containerHex = "4f2a9c1be07d5e3a8b6c0d1e2f3a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c"

// TestHostileReportsAreEscaped: a host reports states, events, progress, probe bodies, logs
// and chat replies full of terminal escapes. pmd refuses what is not a known value (status,
// health, action, id shapes) and stores and serves the free text escaped; pmctl prints none of
// it raw, in tables, JSON or YAML, logs followed or not — unless asked with --raw.
func TestHostileReportsAreEscaped(t *testing.T) {
	t.Parallel()
	p := startPMD(t, nil)
	api := &hostileAPI{}
	fa := p.enrollFake("edge-1", smallHost("edge-1", 8<<30), api.handler())
	p.waitStatus("edge-1", wire.HostOnline)
	b, err := p.admin().CreateBot(t.Context(), botRequest("alice", "edge-1"))
	if err != nil {
		t.Fatal(err)
	}
	state := wire.BotState{
		ID: b.ID, ContainerID: containerHex, Version: 1, Status: wire.BotFailed,
		Progress: evil, LastError: "gateway did not pass /startupz within 2m0s; last log lines:\n" + evil,
		Probes: &wire.Probes{Startupz: wire.Probe{Status: 503, Body: evil}, Readyz: wire.Probe{Error: evil}},
	}
	fa.report(func(hb *wire.Heartbeat) { hb.Bots = []wire.BotState{state} })
	if code, e := fa.events(wire.Events{
		Events: []wire.BotEvent{{BotID: b.ID, Action: wire.EventStatus, Detail: "starting → failed " + evil, Time: time.Now()}},
		Bots:   []wire.BotState{state},
	}); code != http.StatusNoContent {
		t.Fatalf("events: %d %+v", code, e)
	}
	p.waitBot("alice", 10*time.Second, "failed with the host's error", func(b wire.Bot) bool {
		return b.Status == wire.BotFailed && strings.Contains(b.LastError, "pwned")
	})

	t.Run("pmd stores the text escaped", func(t *testing.T) {
		sb, err := p.D.Store.GetBot(t.Context(), b.ID)
		if err != nil {
			t.Fatal(err)
		}
		var ob wire.BotState
		if err := json.Unmarshal(sb.Observed, &ob); err != nil {
			t.Fatal(err)
		}
		for what, s := range map[string]string{
			"progress": ob.Progress, "last_error": ob.LastError,
			"startupz body": ob.Probes.Startupz.Body, "readyz error": ob.Probes.Readyz.Error,
		} {
			mustBeClean(t, "stored "+what, s)
			if !strings.Contains(s, `\x1b]0;pwned\x07`) || !strings.Contains(s, `\u202eexe.txt`) {
				t.Errorf("stored %s lost what was escaped: %q", what, s)
			}
		}
		mustBeClean(t, "pmd's log", p.Logs.String())
		if !strings.Contains(p.Logs.String(), `starting → failed \\x1b]0;pwned\\x07`) {
			t.Errorf("pmd did not log the event, escaped:\n%s", p.Logs.String())
		}
	})

	t.Run("pmd refuses values it does not know", func(t *testing.T) {
		ctx := t.Context()
		bad := func(f func(*wire.BotState)) []wire.BotState {
			st := state
			f(&st)
			return []wire.BotState{st}
		}
		for name, req := range map[string]struct {
			path string
			body any
		}{
			"status":        {"/v1/heartbeat", wire.Heartbeat{Facts: *smallHost("edge-1", 8<<30), Bots: bad(func(s *wire.BotState) { s.Status = "\x1b]0;pwned\x07" })}},
			"health":        {"/v1/heartbeat", wire.Heartbeat{Facts: *smallHost("edge-1", 8<<30), Bots: bad(func(s *wire.BotState) { s.Health = "great" })}},
			"container id":  {"/v1/heartbeat", wire.Heartbeat{Facts: *smallHost("edge-1", 8<<30), Bots: bad(func(s *wire.BotState) { s.ContainerID = "$(reboot)" })}},
			"bot id":        {"/v1/events", wire.Events{Bots: bad(func(s *wire.BotState) { s.ID = "../" + b.ID })}},
			"event action":  {"/v1/events", wire.Events{Events: []wire.BotEvent{{BotID: b.ID, Action: "\x1b[2J"}}}},
			"hostname bidi": {"/v1/heartbeat", wire.Heartbeat{Facts: *smallHost("edge-\u202e1", 8<<30)}},
		} {
			before, _ := p.D.Store.GetBot(ctx, b.ID)
			logs := len(p.Logs.String())
			code, e := fa.post(ctx, req.path, req.body)
			if code != http.StatusBadRequest || e.Code != wire.CodeInvalidArgument {
				t.Errorf("%s: %d %+v, want 400 invalid_argument", name, code, e)
			}
			mustBeClean(t, name+": the refusal", e.Message)
			after, _ := p.D.Store.GetBot(ctx, b.ID)
			if string(after.Observed) != string(before.Observed) {
				t.Errorf("%s: a refused report changed the bot:\n%s\n%s", name, before.Observed, after.Observed)
			}
			if strings.Contains(p.Logs.String()[logs:], `"msg":"bot event"`) {
				t.Errorf("%s: a refused report was logged as a bot event", name)
			}
		}
	})

	cfg := p.pmctlConfig()
	t.Run("pmctl prints nothing raw", func(t *testing.T) {
		for _, args := range [][]string{
			{"bots", "list", "-o", "json"}, {"bots", "list", "-o", "yaml"},
			{"bots", "get", "alice"}, {"bots", "get", "alice", "-o", "json"}, {"bots", "get", "alice", "-o", "yaml"},
			{"bots", "health", "alice"}, {"bots", "health", "alice", "-o", "yaml"},
			{"bots", "logs", "alice"},
			{"bots", "chat", "alice", "hello"}, {"bots", "chat", "alice", "hello", "-o", "json"},
		} {
			for _, tty := range []bool{true, false} {
				r := ctlRun(t.Context(), cfg, tty, nil, args...)
				if r.code != 0 || !strings.Contains(r.out, "pwned") {
					t.Errorf("%v (tty %v): code %d\n%s%s", args, tty, r.code, r.out, r.errOut)
				}
				mustBeClean(t, fmt.Sprintf("%v (tty %v) stdout", args, tty), r.out)
				mustBeClean(t, fmt.Sprintf("%v (tty %v) stderr", args, tty), r.errOut)
			}
		}
		// The list's table has no column for the text; its status comes from the host too.
		if r := ctlRun(t.Context(), cfg, true, nil, "bots", "list"); r.code != 0 || !strings.Contains(r.out, "alice  edge-1  failed") {
			t.Errorf("bots list: %d\n%s%s", r.code, r.out, r.errOut)
		}
	})

	t.Run("pmctl bots logs -f prints nothing raw", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		out := &syncBuf{}
		done := make(chan ctlResult, 1)
		go func() { done <- ctlRun(ctx, cfg, true, out, "bots", "logs", "alice", "-f") }()
		eventually(t, 10*time.Second, "the followed log", func() bool { return strings.Contains(out.String(), "end of tail") })
		cancel()
		r := <-done
		if r.code != 0 {
			t.Errorf("logs -f ended with %d: %s", r.code, r.errOut)
		}
		mustBeClean(t, "logs -f", r.out)
		if want := "gateway starting\r\nsplit ✓ \\x1b[2J\n\\x1b]0;pwned\\x07"; !strings.HasPrefix(r.out, want) {
			t.Errorf("logs -f: %q, want it to start %q", r.out, want)
		}
	})

	t.Run("an error the host answers with", func(t *testing.T) {
		// A host may not pass for pmd refusing the operator (exit 4), nor write into the
		// operator's terminal through an error message.
		api.restartErr.Store(&wire.Error{Code: wire.CodeUnauthenticated, Message: "admin certificate revoked\n" + evil})
		r := ctlRun(t.Context(), cfg, true, nil, "bots", "restart", "alice")
		if r.code != 1 || strings.Count(r.errOut, "\n") != 1 || !strings.Contains(r.errOut, `revoked\n\x1b]0;pwned\x07`) || !strings.HasSuffix(r.errOut, "(unavailable)\n") {
			t.Errorf("restart refused by the host: %d %q", r.code, r.errOut)
		}
		mustBeClean(t, "the host's error", r.errOut)
	})

	t.Run("pmctl bots logs --raw leaves the bytes alone", func(t *testing.T) {
		r := ctlRun(t.Context(), cfg, false, nil, "bots", "logs", "alice", "--raw")
		if want := "gateway starting\r\nsplit ✓ \x1b[2J\n" + evil + "\nend of tail\n"; r.code != 0 || r.out != want {
			t.Errorf("--raw: %d %q, want %q", r.code, r.out, want)
		}
	})
}

// TestCapacityOverDeclarationIsRefused: a compromised host declares 1 PiB and 100,000 bots.
// pmd holds it to what it knew of the host at enrollment, so the next bot created without
// --host lands on an honest host; operators see the refusal in hosts get/list, a metric and
// one warning; an operator's limit (hosts set) bounds it too, and can be cleared.
func TestCapacityOverDeclarationIsRefused(t *testing.T) {
	t.Parallel()
	p := startPMD(t, func(c *pmd.Config) { c.MetricsAddr = "127.0.0.1:0" })
	p.enrollFake("honest", smallHost("honest", 16<<30), nil)
	// "a-liar" sorts first, so it would win a tie too.
	liar := p.enrollFake("a-liar", smallHost("a-liar", 4<<30), nil)
	p.waitStatus("honest", wire.HostOnline)
	p.waitStatus("a-liar", wire.HostOnline)
	liar.report(func(hb *wire.Heartbeat) {
		hb.Facts.MemoryBytes = 1 << 50
		hb.Facts.Capacity = wire.Capacity{Bots: 100000, MemoryBytes: 1 << 50}
	})
	var h *wire.Host
	eventually(t, 10*time.Second, "the liar's declaration", func() bool {
		var err error
		h, err = p.admin().GetHost(t.Context(), "a-liar")
		return err == nil && h.DeclaredCapacity.Bots == 100000
	})
	if h.CapacityRefused == "" || h.Capacity != (wire.Capacity{Bots: 4, MemoryBytes: 4 << 30}) ||
		h.CapacityLimitSource != wire.CapacityFromEnrollment || h.EnrolledMemory != 4<<30 {
		t.Fatalf("the liar as pmd shows it: %+v", h)
	}

	for i := range 3 {
		b, err := p.admin().CreateBot(t.Context(), botRequest(fmt.Sprint("customer-", i), ""))
		if err != nil || b.HostName != "honest" {
			t.Fatalf("bot %d placed on %v (%v), want honest", i, b, err)
		}
	}
	cfg := p.pmctlConfig()
	if r := ctlRun(t.Context(), cfg, false, nil, "hosts", "list"); !strings.Contains(r.out, "a-liar\tonline\t0/4\t") || !strings.Contains(r.out, "\tcapacity refused\n") {
		t.Errorf("hosts list:\n%s%s", r.out, r.errOut)
	}
	if r := ctlRun(t.Context(), cfg, true, nil, "hosts", "get", "a-liar"); !strings.Contains(r.out, "capacity refused:  declares 100000 bots, over the limit of 4; declares 1PiB of memory, over the limit of 4GiB") {
		t.Errorf("hosts get:\n%s%s", r.out, r.errOut)
	}
	m := scrape(t, p)
	if m[`pocketmolt_host_capacity_refused{host="a-liar"}`] != 1 || m[`pocketmolt_host_capacity_refused{host="honest"}`] != 0 ||
		m[`pocketmolt_host_capacity_memory_bytes{host="a-liar"}`] != 4<<30 {
		t.Errorf("metrics: refused liar %v honest %v, liar memory %v", m[`pocketmolt_host_capacity_refused{host="a-liar"}`],
			m[`pocketmolt_host_capacity_refused{host="honest"}`], m[`pocketmolt_host_capacity_memory_bytes{host="a-liar"}`])
	}
	// Heartbeats keep declaring it; the warning is not repeated.
	seen := liar.beatsAccepted()
	eventually(t, 10*time.Second, "more heartbeats", func() bool { return liar.beatsAccepted() >= seen+5 })
	if n := countLogs(p.Logs.String(), "host capacity refused", liar.HostID); n != 1 {
		t.Errorf("%d refusal warnings, want 1", n)
	}

	t.Run("an operator's limit", func(t *testing.T) {
		r := ctlRun(t.Context(), cfg, false, nil, "hosts", "set", "a-liar", "--capacity-memory", "2GiB", "--capacity-bots", "1")
		if r.code != 0 || !strings.Contains(r.errOut, "capacity limit 1 bots, 2GiB (set by an operator)") {
			t.Fatalf("hosts set: %d\n%s", r.code, r.errOut)
		}
		h, err := p.admin().GetHost(t.Context(), "a-liar")
		if err != nil || h.Capacity != (wire.Capacity{Bots: 1, MemoryBytes: 2 << 30}) || h.CapacityRefused == "" {
			t.Fatalf("after hosts set: %+v (%v)", h, err)
		}
		es, err := p.admin().ListAudit(t.Context(), 1)
		if err != nil || len(es) != 1 || es[0].Action != "host.set" || es[0].Actor != "admin:admin" || es[0].Target != "a-liar" {
			t.Fatalf("audit: %+v (%v)", es, err)
		}
		if r := ctlRun(t.Context(), cfg, false, nil, "hosts", "set", "a-liar", "--clear-capacity"); r.code != 0 {
			t.Fatalf("clear: %s", r.errOut)
		}
		if h, _ := p.admin().GetHost(t.Context(), "a-liar"); h.Capacity != (wire.Capacity{Bots: 4, MemoryBytes: 4 << 30}) || h.CapacityLimitSource != wire.CapacityFromEnrollment {
			t.Fatalf("after clearing: %+v", h)
		}
		// The honest host's own declaration is held to an operator's limit too.
		if _, err := p.admin().SetHost(t.Context(), "honest", wire.HostUpdate{CapacityBots: ptr(3)}); err != nil {
			t.Fatal(err)
		}
		if _, err := p.admin().CreateBot(t.Context(), botRequest("customer-4", "honest")); wire.CodeOf(err) != wire.CodeConflict || !strings.Contains(err.Error(), "full (3/3 bots)") {
			t.Fatalf("a fourth bot on honest with a limit of 3: %v", err)
		}
	})

	t.Run("a host enrolled without facts", func(t *testing.T) {
		// An agent older than this pmd sends no facts when it enrolls: its memory is taken
		// from its first heartbeat, and no later heartbeat changes it.
		old := p.enrollFake("old", nil, nil)
		if h, _ := p.admin().GetHost(t.Context(), "old"); h.EnrolledMemory != 0 {
			t.Fatalf("memory before any heartbeat with facts: %d", h.EnrolledMemory)
		}
		old.report(func(hb *wire.Heartbeat) { hb.Facts = *smallHost("old", 8<<30) })
		eventually(t, 10*time.Second, "old's memory", func() bool {
			h, err := p.admin().GetHost(t.Context(), "old")
			return err == nil && h.EnrolledMemory == 8<<30
		})
		old.report(func(hb *wire.Heartbeat) {
			hb.Facts.MemoryBytes, hb.Facts.Capacity = 1<<50, wire.Capacity{Bots: 9999, MemoryBytes: 1 << 50}
		})
		eventually(t, 10*time.Second, "old's new declaration", func() bool {
			h, err := p.admin().GetHost(t.Context(), "old")
			return err == nil && h.DeclaredCapacity.Bots == 9999
		})
		if h, _ := p.admin().GetHost(t.Context(), "old"); h.EnrolledMemory != 8<<30 || h.CapacityRefused == "" {
			t.Fatalf("old after declaring more: %+v", h)
		}
	})
}

func ptr[T any](v T) *T { return &v }

// TestReportsAboutOtherHostsBotsAreRefused: a host that reports events or states about another
// host's bot is refused with 403 permission_denied; nothing is logged or counted as a bot
// event and the bot does not change; pmd warns that the host tried. A bot pmd does not know
// is dropped without a word.
func TestReportsAboutOtherHostsBotsAreRefused(t *testing.T) {
	t.Parallel()
	p := startPMD(t, func(c *pmd.Config) { c.MetricsAddr = "127.0.0.1:0" })
	owner := p.enrollFake("owner", smallHost("owner", 8<<30), nil)
	intruder := p.enrollFake("intruder", smallHost("intruder", 8<<30), nil)
	p.waitStatus("owner", wire.HostOnline)
	p.waitStatus("intruder", wire.HostOnline)
	b, err := p.admin().CreateBot(t.Context(), botRequest("alice", "owner"))
	if err != nil {
		t.Fatal(err)
	}
	running := wire.BotState{ID: b.ID, ContainerID: containerHex, Version: 1, Status: wire.BotRunning, Health: wire.HealthHealthy}
	owner.report(func(hb *wire.Heartbeat) { hb.Bots = []wire.BotState{running} })
	p.waitBot("alice", 10*time.Second, "running", func(b wire.Bot) bool { return b.Status == wire.BotRunning })
	events := func() float64 { return scrape(t, p)[`pocketmolt_bot_events_total{action="died"}`] }
	botEvents := func(id string) int { return countLogsWith(p.Logs.String(), "bot event", "bot_id", id) }
	intruderID := intruder.HostID

	forged := wire.BotState{ID: b.ID, ContainerID: containerHex, Version: 1, Status: wire.BotFailed, LastError: "forged"}
	for name, req := range map[string]struct {
		path string
		body any
	}{
		"events":        {"/v1/events", wire.Events{Events: []wire.BotEvent{{BotID: b.ID, Action: wire.EventDied, Detail: "exit 137", Time: time.Now()}}, Bots: []wire.BotState{forged}}},
		"event only":    {"/v1/events", wire.Events{Events: []wire.BotEvent{{BotID: b.ID, Action: wire.EventDied}}}},
		"state only":    {"/v1/events", wire.Events{Bots: []wire.BotState{forged}}},
		"heartbeat":     {"/v1/heartbeat", wire.Heartbeat{Facts: *smallHost("intruder", 8<<30), Bots: []wire.BotState{forged}, Observed: true}},
		"among its own": {"/v1/events", wire.Events{Events: []wire.BotEvent{{BotID: "b-0000000000000001", Action: wire.EventDied}, {BotID: b.ID, Action: wire.EventDied}}}},
	} {
		before, warned := events(), countLogs(p.Logs.String(), "host reported other hosts' bots", intruderID)
		code, e := intruder.post(t.Context(), req.path, req.body)
		if code != http.StatusForbidden || e.Code != wire.CodePermissionDenied {
			t.Errorf("%s: %d %+v, want 403 permission_denied", name, code, e)
		}
		if n := botEvents(b.ID); n != 0 {
			t.Errorf("%s: %d bot events logged for another host's bot", name, n)
		}
		if after := events(); after != before {
			t.Errorf("%s: died events counted %v → %v", name, before, after)
		}
		if got := p.bot("alice"); got.Status != wire.BotRunning || got.LastError != "" {
			t.Errorf("%s: the bot changed: %s %q", name, got.Status, got.LastError)
		}
		if n := countLogs(p.Logs.String(), "host reported other hosts' bots", intruderID); n != warned+1 {
			t.Errorf("%s: %d warnings that the host tried, want %d", name, n, warned+1)
		}
	}
	if got := intruder.heartbeatCode(); got != http.StatusOK {
		t.Errorf("the intruder's own heartbeats: %d", got)
	}

	t.Run("a bot pmd does not know is dropped", func(t *testing.T) {
		before := events()
		ghost := "b-00000000deadbeef"
		code, e := intruder.events(wire.Events{
			Events: []wire.BotEvent{{BotID: ghost, Action: wire.EventDied, Time: time.Now()}},
			Bots:   []wire.BotState{{ID: ghost, Status: wire.BotFailed}},
		})
		if code != http.StatusNoContent {
			t.Fatalf("events about an unknown bot: %d %+v", code, e)
		}
		if n := botEvents(ghost); n != 0 || events() != before {
			t.Errorf("an unknown bot's event was logged (%d) or counted (%v → %v)", n, before, events())
		}
	})

	t.Run("the owner's own events still count", func(t *testing.T) {
		before := events()
		if code, e := owner.events(wire.Events{Events: []wire.BotEvent{{BotID: b.ID, Action: wire.EventDied, Detail: "exit 1", Time: time.Now()}}}); code != http.StatusNoContent {
			t.Fatalf("owner's event: %d %+v", code, e)
		}
		if n := botEvents(b.ID); n != 1 || events() != before+1 {
			t.Errorf("owner's event: %d logged, counted %v → %v", n, before, events())
		}
	})
}

// countLogsWith counts the JSON log lines whose message is msg and whose key is val.
func countLogsWith(logs, msg, key, val string) int {
	n := 0
	for _, line := range strings.Split(logs, "\n") {
		var e map[string]any
		if json.Unmarshal([]byte(line), &e) == nil && e["msg"] == msg && e[key] == val {
			n++
		}
	}
	return n
}

// TestCustomerDataReadsAreAudited: reading a bot's logs (followed or not) and chatting with it
// through the admin API are audited with the operator's name before they happen, and so is a
// restart; when the audit log cannot be written (a trigger makes every insert into it fail,
// in the real database), the call fails and nothing is read or done.
func TestCustomerDataReadsAreAudited(t *testing.T) {
	t.Parallel()
	p := startPMD(t, nil)
	api := &hostileAPI{}
	fa := p.enrollFake("edge-1", smallHost("edge-1", 8<<30), api.handler())
	p.waitStatus("edge-1", wire.HostOnline)
	b, err := p.admin().CreateBot(t.Context(), botRequest("alice", "edge-1"))
	if err != nil {
		t.Fatal(err)
	}
	fa.report(func(hb *wire.Heartbeat) {
		hb.Bots = []wire.BotState{{ID: b.ID, ContainerID: containerHex, Version: 1, Status: wire.BotRunning, Health: wire.HealthHealthy, HostPort: 18789}}
	})
	p.waitBot("alice", 10*time.Second, "running", func(b wire.Bot) bool { return b.Status == wire.BotRunning })
	cfg := p.pmctlConfig()
	lastAudit := func() wire.AuditEntry {
		es, err := p.admin().ListAudit(t.Context(), 1)
		if err != nil || len(es) != 1 {
			t.Fatalf("audit: %v", err)
		}
		return es[0]
	}

	for _, c := range []struct {
		args   []string
		action string
		detail string
	}{
		{[]string{"bots", "logs", "alice", "--tail", "20"}, "bot.logs", "tail 20, follow false"},
		{[]string{"bots", "logs", "alice", "-f"}, "bot.logs", "follow true"},
		{[]string{"bots", "chat", "alice", "what is my password?", "--session", "s-1"}, "bot.chat", "session s-1, 20 bytes"},
		{[]string{"bots", "restart", "alice"}, "bot.restart", b.ID},
	} {
		ctx, cancel := context.WithCancel(t.Context())
		out := &syncBuf{}
		done := make(chan ctlResult, 1)
		go func() { done <- ctlRun(ctx, cfg, false, out, c.args...) }()
		if c.args[len(c.args)-1] == "-f" {
			eventually(t, 10*time.Second, "the followed log", func() bool { return strings.Contains(out.String(), "end of tail") })
			cancel()
		}
		r := <-done
		cancel()
		if r.code != 0 {
			t.Fatalf("%v: %d %s", c.args, r.code, r.errOut)
		}
		e := lastAudit()
		if e.Action != c.action || e.Actor != "admin:admin" || e.Target != "alice" || !strings.Contains(e.Detail, c.detail) {
			t.Errorf("%v: audit %+v, want %s by admin:admin on alice with %q", c.args, e, c.action, c.detail)
		}
		if strings.Contains(e.Detail, "password") {
			t.Errorf("the audit log holds what was said: %q", e.Detail)
		}
	}

	t.Run("an audit write that fails fails the call", func(t *testing.T) {
		db, err := sql.Open("sqlite", filepath.Join(p.cfg.DataDir, pmd.DatabaseFile)+"?_pragma=busy_timeout(5000)")
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := db.ExecContext(t.Context(), `CREATE TRIGGER audit_down BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'audit log unavailable'); END`); err != nil {
			t.Fatal(err)
		}
		logs, chats, restarts := api.logs.Load(), api.chats.Load(), api.restarts.Load()
		before := lastAudit()
		for _, args := range [][]string{
			{"bots", "restart", "alice"},
			{"bots", "logs", "alice"},
			{"bots", "logs", "alice", "-f"},
			{"bots", "chat", "alice", "hello"},
		} {
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			r := ctlRun(ctx, cfg, false, nil, args...)
			cancel()
			if r.code != 1 || r.out != "" || !strings.HasPrefix(r.errOut, "error: ") {
				t.Errorf("%v with the audit log down: %d %q %q", args, r.code, r.out, r.errOut)
			}
		}
		if api.restarts.Load() != restarts || api.logs.Load() != logs || api.chats.Load() != chats {
			t.Errorf("the host was asked anyway: restarts %d→%d, logs %d→%d, chats %d→%d",
				restarts, api.restarts.Load(), logs, api.logs.Load(), chats, api.chats.Load())
		}
		if _, err := db.ExecContext(t.Context(), `DROP TRIGGER audit_down`); err != nil {
			t.Fatal(err)
		}
		if after := lastAudit(); after.ID != before.ID {
			t.Errorf("an audit entry appeared: %+v", after)
		}
		if r := ctlRun(t.Context(), cfg, false, nil, "bots", "restart", "alice"); r.code != 0 || api.restarts.Load() != restarts+1 {
			t.Errorf("restart once the audit log is back: %d %s", r.code, r.errOut)
		}
	})
}
