package fleet_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/pocketmolt/pocketmolt/internal/fleet"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// decodeHeartbeat runs fleet.DecodeHeartbeat on body as pmd's handler would see it.
func decodeHeartbeat(body []byte) (wire.Heartbeat, error) {
	w := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodPost, "/v1/heartbeat", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	return fleet.DecodeHeartbeat(w, r)
}

// checkDecoded holds DecodeHeartbeat to its contract: every error is a *wire.Error with a
// client-error code, and whatever is accepted is within the facts' bounds.
func checkDecoded(t *testing.T, hb wire.Heartbeat, err error) {
	t.Helper()
	if err != nil {
		var we *wire.Error
		if !errors.As(err, &we) {
			t.Fatalf("error %T %q is not a *wire.Error", err, err)
		}
		if s := wire.HTTPStatus(we.Code); s < 400 || s > 499 {
			t.Fatalf("error code %q maps to %d, want a 4xx", we.Code, s)
		}
		if we.Message == "" {
			t.Fatalf("error code %q has no message", we.Code)
		}
		return
	}
	f := hb.Facts
	for name, v := range map[string]string{
		"hostname": f.Hostname, "os": f.OS, "arch": f.Arch, "kernel": f.Kernel,
		"docker_version": f.DockerVersion, "agent_version": f.AgentVersion,
	} {
		if len(v) > 256 {
			t.Fatalf("accepted %s of %d bytes", name, len(v))
		}
	}
	if len(f.DockerError) > 1024 {
		t.Fatalf("accepted docker_error of %d bytes", len(f.DockerError))
	}
	if f.CPUs < 0 {
		t.Fatalf("accepted cpus %d", f.CPUs)
	}
	checkText(t, "docker_error", f.DockerError)
	checkAcceptedStates(t, hb.Bots)
}

// checkAcceptedStates holds accepted bot states to pmd's edge: known enums, ids of their shape,
// and free text with nothing a terminal acts on.
func checkAcceptedStates(t *testing.T, states []wire.BotState) {
	t.Helper()
	for _, st := range states {
		if !wire.ValidName(st.ID) || !wire.KnownBotStatus(st.Status) || !wire.KnownHealth(st.Health) {
			t.Fatalf("accepted state %+v", st)
		}
		for _, r := range st.ContainerID {
			if !strings.ContainsRune("0123456789abcdef", r) {
				t.Fatalf("accepted container id %q", st.ContainerID)
			}
		}
		checkText(t, "progress", st.Progress)
		checkText(t, "last_error", st.LastError)
		if p := st.Probes; p != nil {
			for _, pr := range []wire.Probe{p.Startupz, p.Healthz, p.Readyz} {
				checkText(t, "probe body", pr.Body)
				checkText(t, "probe error", pr.Error)
			}
		}
	}
}

// checkText fails if s, accepted from a host, holds what a terminal would act on.
func checkText(t *testing.T, what, s string) {
	t.Helper()
	if !utf8.ValidString(s) {
		t.Fatalf("accepted %s that is not UTF-8: %q", what, s)
	}
	for i, r := range s {
		if r < 0x20 && r != '\n' && r != '\t' && !(r == '\r' && strings.HasPrefix(s[i:], "\r\n")) ||
			r == 0x7f || r >= 0x80 && r <= 0x9f || r >= 0x202a && r <= 0x202e || r >= 0x2066 && r <= 0x2069 {
			t.Fatalf("accepted %s holding %U: %q", what, r, s)
		}
	}
}

func FuzzDecodeHeartbeat(f *testing.F) {
	for _, s := range []string{
		``,
		`{}`,
		`null`,
		`[]`,
		`"facts"`,
		`{"facts":{"hostname":"h1","os":"linux","arch":"amd64","cpus":4,"memory_bytes":1024,"agent_version":"v1"},"sent":"2025-01-02T03:04:05Z"}`,
		`{"facts":{"cpus":-1}}`,
		`{"facts":{"cpus":9223372036854775808}}`,
		`{"facts":{"memory_bytes":-1}}`,
		`{"facts":{"hostname":"` + strings.Repeat("a", 257) + `"}}`,
		`{"facts":{"kernel":"` + strings.Repeat("\\u00e9", 200) + `"}}`,
		`{"facts":{"docker_error":"` + strings.Repeat("x", 1025) + `"}}`,
		`{"facts":{"hostname":"\xff\xfe\xfd"}}`,
		`{"facts":{"hostname":1}}`,
		`{"facts":[]}`,
		`{"sent":"yesterday"}`,
		`{"facts":{}} trailing`,
		`{"facts":{"hostname":"`,
		"\x00\x01\x02",
		`{"facts":{"hostname":"evil\u202e"}}`,
		`{"facts":{"docker_error":"\u001b]0;pwned\u0007"}}`,
		`{"bots":[{"id":"b-1","status":"running","health":"healthy","container_id":"4f2a9c","last_error":"\u001b[2J\u009b2J\u202e"}]}`,
		`{"bots":[{"id":"b-1","status":"pwned"}]}`,
		`{"bots":[{"id":"b-1","status":"running","health":"\u001b[2J"}]}`,
		`{"bots":[{"id":"../etc","status":"running"}]}`,
		`{"bots":[{"id":"b-1","status":"running","container_id":"not hex"}]}`,
		`{"bots":[{"id":"b-1","status":"running"},{"id":"b-1","status":"failed"}]}`,
		`{"bots":[{"id":"b-1","status":"starting","probes":{"startupz":{"status":503,"body":"\u001b]8;;http://x\u001b\\"},"healthz":{"status":-1}}}]}`,
		`{"bots":[{"id":"b-1","status":"pulling","progress":"` + strings.Repeat("\u001b", 2000) + `"}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		hb, err := decodeHeartbeat(body)
		checkDecoded(t, hb, err)
	})
}

func TestDecodeHeartbeat(t *testing.T) {
	huge := `{"facts":{"hostname":"` + strings.Repeat("a", wire.MaxHeartbeatBytes) + `"}}`
	tests := []struct {
		name string
		body string
		code string // "" means accepted
	}{
		{"complete", `{"facts":{"hostname":"h1","cpus":2,"agent_version":"v1"},"sent":"2025-01-02T03:04:05Z"}`, ""},
		{"empty body", ``, wire.CodeInvalidArgument},
		{"not json", `facts please`, wire.CodeInvalidArgument},
		{"wrong type", `{"facts":{"cpus":"four"}}`, wire.CodeInvalidArgument},
		{"negative memory", `{"facts":{"memory_bytes":-1}}`, wire.CodeInvalidArgument},
		{"negative cpus", `{"facts":{"cpus":-1}}`, wire.CodeInvalidArgument},
		{"long hostname", `{"facts":{"hostname":"` + strings.Repeat("a", 257) + `"}}`, wire.CodeInvalidArgument},
		{"long agent version", `{"facts":{"agent_version":"` + strings.Repeat("a", 257) + `"}}`, wire.CodeInvalidArgument},
		{"long docker error", `{"facts":{"docker_error":"` + strings.Repeat("a", 1025) + `"}}`, wire.CodeInvalidArgument},
		{"over the size limit", huge, wire.CodePayloadTooLarge},
		{"bidi override in a fact", `{"facts":{"hostname":"evil\u202etxt"}}`, wire.CodeInvalidArgument},
		{"unknown bot status", `{"bots":[{"id":"b-1","status":"\u001b]0;pwned\u0007"}]}`, wire.CodeInvalidArgument},
		{"deleting is pmd's to say", `{"bots":[{"id":"b-1","status":"deleting"}]}`, wire.CodeInvalidArgument},
		{"unknown health", `{"bots":[{"id":"b-1","status":"running","health":"great"}]}`, wire.CodeInvalidArgument},
		{"bot id of another shape", `{"bots":[{"id":"B_1","status":"running"}]}`, wire.CodeInvalidArgument},
		{"container id not hex", `{"bots":[{"id":"b-1","status":"running","container_id":"$(reboot)"}]}`, wire.CodeInvalidArgument},
		{"a bot twice", `{"bots":[{"id":"b-1","status":"running"},{"id":"b-1","status":"running"}]}`, wire.CodeInvalidArgument},
		{"negative restarts", `{"bots":[{"id":"b-1","status":"running","restarts":-1}]}`, wire.CodeInvalidArgument},
		{"probe status out of range", `{"bots":[{"id":"b-1","status":"running","probes":{"readyz":{"status":1000}}}]}`, wire.CodeInvalidArgument},
		{"negative capacity", `{"facts":{"capacity":{"bots":-1}}}`, wire.CodeInvalidArgument},
		{"escapes in free text are accepted", `{"bots":[{"id":"b-1","status":"failed","container_id":"4f2a","last_error":"\u001b]0;pwned\u0007"}]}`, ""},
		{"padding over the size limit", strings.Repeat(" ", wire.MaxHeartbeatBytes+1) + `{}`, wire.CodePayloadTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hb, err := decodeHeartbeat([]byte(tt.body))
			checkDecoded(t, hb, err)
			if got := codeOrEmpty(err); got != tt.code {
				t.Fatalf("code = %q (%v), want %q", got, err, tt.code)
			}
		})
	}
}

func codeOrEmpty(err error) string {
	if err == nil {
		return ""
	}
	return wire.CodeOf(err)
}

// decodeEvents runs fleet.DecodeEvents on body as pmd's handler would see it.
func decodeEvents(body []byte) (wire.Events, error) {
	w := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodPost, "/v1/events", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	return fleet.DecodeEvents(w, r)
}

func checkEventsDecoded(t *testing.T, ev wire.Events, err error) {
	t.Helper()
	if err != nil {
		checkDecoded(t, wire.Heartbeat{}, err)
		return
	}
	for _, e := range ev.Events {
		if !wire.ValidName(e.BotID) || !wire.KnownEvent(e.Action) {
			t.Fatalf("accepted event %+v", e)
		}
		checkText(t, "event detail", e.Detail)
	}
	checkAcceptedStates(t, ev.Bots)
}

func FuzzDecodeEvents(f *testing.F) {
	for _, s := range []string{
		``, `{}`, `null`, `{"events":null,"bots":null}`,
		`{"events":[{"bot_id":"b-1","action":"died","detail":"exit code 137","time":"2025-01-02T03:04:05Z"}],"bots":[{"id":"b-1","status":"failed"}]}`,
		`{"events":[{"bot_id":"b-1","action":"status","detail":"\u001b]0;pwned\u0007 running → \u202efailed"}]}`,
		`{"events":[{"bot_id":"b-1","action":"pwned"}]}`,
		`{"events":[{"bot_id":"b-1","action":"\u001b[2J"}]}`,
		`{"events":[{"bot_id":"","action":"died"}]}`,
		`{"events":[{"bot_id":"b-1","action":"died","detail":"\xff\xfe\x9b"}]}`,
		`{"bots":[{"id":"b-1","status":"running","container_id":"ZZ"}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := decodeEvents(body)
		checkEventsDecoded(t, ev, err)
	})
}

func TestDecodeEvents(t *testing.T) {
	tests := []struct {
		name, body, code string
	}{
		{"died", `{"events":[{"bot_id":"b-1","action":"died","detail":"exit 1"}]}`, ""},
		{"escaped detail", `{"events":[{"bot_id":"b-1","action":"status","detail":"\u001b]0;pwned\u0007"}]}`, ""},
		{"unknown action", `{"events":[{"bot_id":"b-1","action":"exploded"}]}`, wire.CodeInvalidArgument},
		{"bad bot id", `{"events":[{"bot_id":"b 1","action":"died"}]}`, wire.CodeInvalidArgument},
		{"bad state", `{"bots":[{"id":"b-1","status":"exploded"}]}`, wire.CodeInvalidArgument},
		{"not json", `events`, wire.CodeInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := decodeEvents([]byte(tt.body))
			checkEventsDecoded(t, ev, err)
			if got := codeOrEmpty(err); got != tt.code {
				t.Fatalf("code = %q (%v), want %q", got, err, tt.code)
			}
		})
	}
}

// BenchmarkDecodeHeartbeat measures reading and checking a heartbeat from a host with 100 bots,
// each with a probe and some text to escape.
func BenchmarkDecodeHeartbeat(b *testing.B) {
	hb := wire.Heartbeat{Facts: wire.HostFacts{Hostname: "edge-1", OS: "linux", Arch: "amd64", CPUs: 8, MemoryBytes: 32 << 30}}
	for i := range 100 {
		hb.Bots = append(hb.Bots, wire.BotState{
			ID: fmt.Sprintf("b-%016x", i), ContainerID: strings.Repeat("ab", 32), Version: 3, Status: wire.BotRunning,
			Health: wire.HealthHealthy, Restarts: 1, HostPort: 20000 + i, MemoryUsage: 800 << 20,
			Probes: &wire.Probes{Startupz: wire.Probe{Status: 200, Body: `{"ok":true}`}, Healthz: wire.Probe{Status: 200, Body: "ok"}, Readyz: wire.Probe{Status: 200, Body: "ok \x1b[32m✓\x1b[0m"}},
		})
	}
	body, _ := json.Marshal(hb)
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := decodeHeartbeat(body); err != nil {
			b.Fatal(err)
		}
	}
}
