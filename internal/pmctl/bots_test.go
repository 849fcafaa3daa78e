package pmctl_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/pocketmolt/pocketmolt/internal/wire"
)

var fixtureBots = []wire.Bot{
	{
		ID: "b_1", Name: "alice", HostID: "h_1", HostName: "edge-1",
		Image: "ghcr.io/openclaw/openclaw:2026.11.1", Model: "anthropic/claude-sonnet-4-6",
		ToolsProfile: "messaging", Telegram: true,
		Resources: wire.Resources{MemoryBytes: 2 << 30, CPUs: 2, PIDs: 512, DiskBytes: 10 << 30},
		Desired:   wire.DesiredRunning, SpecVersion: 3, Status: wire.BotRunning, Health: wire.HealthHealthy,
		ContainerID:     "4f2a9c1be07d5e3a8b6c0d1e2f3a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c",
		ObservedVersion: 3, Restarts: 1,
		StartedAt:   ptr(now.Add(-(3*time.Minute + 12*time.Second))),
		MemoryUsage: 312 << 20, DiskUsage: 1536 << 20,
		CreatedAt: now.Add(-2 * time.Hour), UpdatedAt: now.Add(-3 * time.Minute),
	},
	{
		ID: "b_2", Name: "bob", Model: "anthropic/claude-sonnet-4-6",
		Resources: wire.Resources{MemoryBytes: 1536 << 20},
		Desired:   wire.DesiredRunning, SpecVersion: 1, Status: wire.BotPending,
		Progress: "waiting for a host", LastError: "no host has 1.5 GiB free",
		CreatedAt: now.Add(-5 * time.Second), UpdatedAt: now.Add(-5 * time.Second),
	},
}

// findBot answers a bot by name or id, or writes not_found.
func findBot(w http.ResponseWriter, r *http.Request) (wire.Bot, bool) {
	ref := r.PathValue("ref")
	for _, b := range fixtureBots {
		if b.Name == ref || b.ID == ref {
			return b, true
		}
	}
	wire.WriteError(w, wire.Errorf(wire.CodeNotFound, "bot %q not found", ref))
	return wire.Bot{}, false
}

// botRoutes adds the bot endpoints of the admin API to mux. The log of "alice" is three lines;
// followed, it then stays open until the client goes. "slow" writes a line, pauses 400ms and
// writes another, to show a short --timeout does not cut a stream.
func botRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/bots", func(w http.ResponseWriter, r *http.Request) { wire.WriteJSON(w, 200, fixtureBots) })
	mux.HandleFunc("GET /v1/bots/{ref}", func(w http.ResponseWriter, r *http.Request) {
		if b, ok := findBot(w, r); ok {
			wire.WriteJSON(w, 200, b)
		}
	})
	mux.HandleFunc("POST /v1/bots", func(w http.ResponseWriter, r *http.Request) {
		var req wire.CreateBotRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			wire.WriteError(w, wire.Errorf(wire.CodeInvalidArgument, "bad body"))
			return
		}
		if req.Name == "taken" {
			wire.WriteError(w, wire.Errorf(wire.CodeConflict, "bot %q already exists", req.Name))
			return
		}
		wire.WriteJSON(w, 201, wire.Bot{
			ID: "b_3", Name: req.Name, Model: req.Model, Image: "ghcr.io/openclaw/openclaw:2026.11.1",
			ToolsProfile: "messaging", Telegram: req.TelegramToken != "", Resources: req.Resources,
			Desired: wire.DesiredRunning, SpecVersion: 1, Status: wire.BotPending, CreatedAt: now, UpdatedAt: now,
		})
	})
	for _, verb := range []string{"stop", "start", "restart"} {
		mux.HandleFunc("POST /v1/bots/{ref}/"+verb, func(w http.ResponseWriter, r *http.Request) {
			b, ok := findBot(w, r)
			if !ok {
				return
			}
			b.SpecVersion++
			if verb == "stop" {
				b.Desired = wire.DesiredStopped
			}
			wire.WriteJSON(w, 200, b)
		})
	}
	mux.HandleFunc("PATCH /v1/bots/{ref}", func(w http.ResponseWriter, r *http.Request) {
		var req wire.EditBotRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			wire.WriteError(w, wire.Errorf(wire.CodeInvalidArgument, "bad body"))
			return
		}
		b, ok := findBot(w, r)
		if !ok {
			return
		}
		if req.APIKey != nil && req.DiskBytes == 0 { // a key alone: --platform-key sends ""
			if *req.APIKey != "" {
				wire.WriteError(w, wire.Errorf(wire.CodeInvalidArgument, "want the platform's key in this test"))
				return
			}
			wire.WriteJSON(w, 200, b)
			return
		}
		if req.DiskBytes < 16<<20 {
			wire.WriteError(w, wire.Errorf(wire.CodeInvalidArgument, "disk limit %dB: use 16MiB to 16TiB", req.DiskBytes))
			return
		}
		b.Resources.DiskBytes = req.DiskBytes
		wire.WriteJSON(w, 200, b)
	})
	mux.HandleFunc("DELETE /v1/bots/{ref}", func(w http.ResponseWriter, r *http.Request) {
		b, ok := findBot(w, r)
		if !ok {
			return
		}
		b.Status, b.Purge = wire.BotDeleting, r.URL.Query().Get("purge") == "true"
		wire.WriteJSON(w, 202, b)
	})
	mux.HandleFunc("GET /v1/bots/{ref}/health", func(w http.ResponseWriter, r *http.Request) {
		if _, ok := findBot(w, r); !ok {
			return
		}
		wire.WriteJSON(w, 200, wire.Probes{
			Startupz: wire.Probe{Status: 200, Body: "ok"},
			Healthz:  wire.Probe{Status: 200, Body: "ok"},
			Readyz:   wire.Probe{Error: "dial tcp 127.0.0.1:18789: connection refused"},
			Checked:  now.Add(-time.Second),
		})
	})
	mux.HandleFunc("POST /v1/bots/{ref}/chat", func(w http.ResponseWriter, r *http.Request) {
		var req wire.ChatRequest
		json.NewDecoder(r.Body).Decode(&req)
		if _, ok := findBot(w, r); !ok {
			return
		}
		wire.WriteJSON(w, 200, wire.ChatResponse{
			Reply: "You said: " + req.Message, Model: "anthropic/claude-sonnet-4-6",
			Usage: wire.Usage{PromptTokens: 12, CompletionTokens: 5, TotalTokens: 17},
		})
	})
	mux.HandleFunc("GET /v1/bots/{ref}/logs", func(w http.ResponseWriter, r *http.Request) {
		flush := func() { http.NewResponseController(w).Flush() }
		if r.PathValue("ref") == "quiet" {
			// Like pmd, send the headers only with the first bytes of the log.
			<-r.Context().Done()
			return
		}
		if r.PathValue("ref") == "slow" {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			fmt.Fprintln(w, "before the pause")
			flush()
			time.Sleep(400 * time.Millisecond)
			fmt.Fprintln(w, "after the pause")
			return
		}
		if _, ok := findBot(w, r); !ok {
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		for i := 1; i <= 3; i++ {
			fmt.Fprintf(w, "line %d\n", i)
			flush()
		}
		if r.URL.Query().Get("follow") == "true" {
			<-r.Context().Done()
		}
	})
}

func TestBotsList(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		name string
		o    runOpts
		want string
	}{
		{"terminal", runOpts{tty: true},
			"NAME   HOST    STATUS   HEALTH   IMAGE                                UPTIME  MEM          DISK\n" +
				"alice  edge-1  running  healthy  ghcr.io/openclaw/openclaw:2026.11.1  3m12s   312MiB/2GiB  1.5GiB/10GiB\n" +
				"bob    -       pending  -        -                                    -       -            -\n"},
		{"piped", runOpts{},
			"alice\tedge-1\trunning\thealthy\tghcr.io/openclaw/openclaw:2026.11.1\t2026-11-22T11:56:48Z\t312MiB/2GiB\t1.5GiB/10GiB\n" +
				"bob\t\tpending\t\t\t\t\t\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.run(t, tt.o, "bots", "list")
			if r.code != 0 || r.out != tt.want || r.errOut != "" {
				t.Fatalf("code %d\nstdout:\n%s\nstderr:\n%s\nwant stdout:\n%s", r.code, r.out, r.errOut, tt.want)
			}
		})
	}
	t.Run("json", func(t *testing.T) {
		r := h.run(t, runOpts{tty: true}, "bots", "ls", "-o", "json")
		var got []wire.Bot
		if err := json.Unmarshal([]byte(r.out), &got); err != nil || r.code != 0 || len(got) != 2 || got[0].Resources.PIDs != 512 {
			t.Fatalf("code %d, %v:\n%s%s", r.code, err, r.out, r.errOut)
		}
	})
	t.Run("yaml", func(t *testing.T) {
		r := h.run(t, runOpts{}, "bots", "list", "-o", "yaml")
		var got []wire.Bot
		if err := yaml.Unmarshal([]byte(r.out), &got); err != nil || r.code != 0 || len(got) != 2 || got[1].Progress != "waiting for a host" {
			t.Fatalf("code %d, %v:\n%s", r.code, err, r.out)
		}
	})
}

func TestBotsEdit(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		name     string
		args     []string
		code     int
		out, err string
	}{
		{"disk", []string{"bots", "edit", "alice", "--disk", "20GiB"}, 0, "", "Bot alice (b_1): disk limit 20 GiB.\n"},
		{"json", []string{"bots", "edit", "alice", "--disk", "20GiB", "-o", "json"}, 0, `"disk_bytes": 21474836480`, ""},
		{"nothing to change", []string{"bots", "edit", "alice"}, 1, "", "give what to change: --disk"},
		{"not a size", []string{"bots", "edit", "alice", "--disk", "lots"}, 1, "", `invalid argument "lots" for "--disk" flag: not a size`},
		{"pmd refuses", []string{"bots", "edit", "alice", "--disk", "1MiB"}, 1, "", "disk limit 1048576B: use 16MiB to 16TiB"},
		{"unknown bot", []string{"bots", "edit", "zed", "--disk", "1GiB"}, 1, "", `bot "zed" not found`},
		{"back to the platform's key", []string{"bots", "edit", "alice", "--platform-key"}, 0, "", "new key: its host's model endpoint uses it from the next call, without a restart"},
		{"a key file and the platform's key", []string{"bots", "edit", "alice", "--platform-key", "--api-key-file", "k"}, 1, "", "--api-key-file and --platform-key cannot be combined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.run(t, runOpts{tty: true}, tt.args...)
			if r.code != tt.code || !strings.Contains(r.out, tt.out) || !strings.Contains(r.errOut, tt.err) {
				t.Fatalf("code %d\nstdout:\n%s\nstderr:\n%s\nwant code %d, stdout with %q, stderr with %q", r.code, r.out, r.errOut, tt.code, tt.out, tt.err)
			}
		})
	}
}

func TestBotsGet(t *testing.T) {
	h := newHarness(t)
	r := h.run(t, runOpts{tty: true}, "bots", "get", "alice")
	want := `name:              alice
id:                b_1
host:              edge-1 (h_1)
status:            running
health:            healthy
desired:           running
image:             ghcr.io/openclaw/openclaw:2026.11.1
model:             anthropic/claude-sonnet-4-6
tools profile:     messaging
telegram:          yes
memory:            2 GiB (312 MiB used)
disk:              10 GiB (1.5 GiB used)
cpus:              2
pids:              512
spec version:      3
observed version:  3
container:         4f2a9c1be07d
restarts:          1
started:           2026-11-22T11:56:48Z (up 3m12s)
created:           2026-11-22T10:00:00Z (2h ago)
updated:           2026-11-22T11:57:00Z (3m ago)
`
	if r.code != 0 || r.out != want || r.errOut != "" {
		t.Fatalf("code %d\n%s%s\nwant:\n%s", r.code, r.out, r.errOut, want)
	}

	r = h.run(t, runOpts{tty: true}, "bots", "get", "b_2")
	for _, line := range []string{"host:              (not placed yet)\n", "progress:          waiting for a host\n", "last error:        no host has 1.5 GiB free\n", "observed version:  -\n", "memory:            1.5 GiB\n"} {
		if !strings.Contains(r.out, line) {
			t.Errorf("pending bot lacks %q:\n%s", line, r.out)
		}
	}

	r = h.run(t, runOpts{}, "bots", "get", "alice", "-o", "json")
	var got wire.Bot
	if err := json.Unmarshal([]byte(r.out), &got); err != nil || got.ContainerID != fixtureBots[0].ContainerID {
		t.Fatalf("json: %v\n%s", err, r.out)
	}
}

// secretFile writes content to a file in a fresh directory and returns its path.
func secretFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestBotsCreate(t *testing.T) {
	const apiKey, tgToken = "sk-ant-SECRET-KEY", "123456:TG-SECRET-TOKEN"
	keyFile := secretFile(t, "anthropic.txt", apiKey+"\n\n")
	tgFile := secretFile(t, "tg.txt", tgToken+" \r\n")
	base := []string{"bots", "create", "--name", "carol", "--model", "anthropic/claude-sonnet-4-6", "--api-key-file", keyFile}

	tests := []struct {
		name     string
		o        runOpts
		args     []string
		wantBody string
		wantOut  string // prefix of stdout
	}{
		{"table", runOpts{tty: true},
			append(base, "--telegram-token-file", tgFile, "--host", "edge-1", "--image", "img:1", "--tools-profile", "messaging", "--memory", "2GiB", "--cpus", "1.5", "--pids", "512", "--force"),
			`{"name":"carol","host":"edge-1","model":"anthropic/claude-sonnet-4-6","image":"img:1","tools_profile":"messaging","telegram_token":"` + tgToken + `","api_key":"` + apiKey + `","resources":{"memory_bytes":2147483648,"cpus":1.5,"pids":512},"force":true}`,
			"name:              carol\nid:                b_3\nhost:              (not placed yet)\nstatus:            pending\n"},
		{"json", runOpts{}, append(base, "-o", "json", "--memory", "1536MiB"),
			`{"name":"carol","model":"anthropic/claude-sonnet-4-6","api_key":"` + apiKey + `","resources":{"memory_bytes":1610612736,"cpus":0,"pids":0}}`,
			"{\n  \"id\": \"b_3\",\n  \"name\": \"carol\","},
		{"yaml", runOpts{}, append(base, "-o", "yaml", "--telegram-token-file", tgFile),
			`{"name":"carol","model":"anthropic/claude-sonnet-4-6","telegram_token":"` + tgToken + `","api_key":"` + apiKey + `","resources":{"memory_bytes":0,"cpus":0,"pids":0}}`,
			"id: b_3\nname: carol\n"},
		{"api key from stdin", runOpts{stdin: "sk-from-stdin\n"},
			[]string{"bots", "create", "--name", "carol", "--model", "m", "--api-key-file", "-"},
			`{"name":"carol","model":"m","api_key":"sk-from-stdin","resources":{"memory_bytes":0,"cpus":0,"pids":0}}`,
			"name:\tcarol\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			r := h.run(t, tt.o, tt.args...)
			if r.code != 0 || !strings.HasPrefix(r.out, tt.wantOut) {
				t.Fatalf("code %d\nstdout:\n%s\nstderr:\n%s\nwant stdout starting:\n%s", r.code, r.out, r.errOut, tt.wantOut)
			}
			reqs := h.srv.Requests()
			if len(reqs) != 1 || reqs[0].Method != "POST" || reqs[0].Path != "/v1/bots" || reqs[0].Body != tt.wantBody {
				t.Errorf("requests = %+v\nwant body %s", reqs, tt.wantBody)
			}
			for _, secret := range []string{apiKey, tgToken, "sk-from-stdin"} {
				if strings.Contains(r.out+r.errOut, secret) {
					t.Errorf("output shows a secret:\n%s%s", r.out, r.errOut)
				}
			}
		})
	}

	t.Run("hint on terminal", func(t *testing.T) {
		h := newHarness(t)
		r := h.run(t, runOpts{tty: true}, base...)
		if want := "Created bot carol: it starts in the background; watch it with `pmctl bots get carol`.\n"; r.errOut != want {
			t.Errorf("stderr %q, want %q", r.errOut, want)
		}
	})

	t.Run("server error", func(t *testing.T) {
		h := newHarness(t)
		args := append([]string{}, base...)
		args[3] = "taken"
		r := h.run(t, runOpts{}, append(args, "--telegram-token-file", tgFile)...)
		if r.code != 1 || r.out != "" || r.errOut != "error: create bot taken: bot \"taken\" already exists\n" {
			t.Errorf("code %d stdout %q stderr %q", r.code, r.out, r.errOut)
		}
	})
}

func TestBotsCreateRefused(t *testing.T) {
	dir := t.TempDir()
	key := secretFile(t, "key.txt", "sk-ant-SECRET\n")
	empty := secretFile(t, "empty.txt", " \n\t\n")
	missing := filepath.Join(dir, "none.txt")
	big := secretFile(t, "big.txt", strings.Repeat("x", 65<<10))
	unreadable := t.TempDir() // a directory: opens, then fails to read
	create := func(extra ...string) []string {
		return append([]string{"bots", "create", "--name", "carol", "--model", "m"}, extra...)
	}
	tests := []struct {
		name       string
		args       []string
		stdin      string
		wantStderr string // exact first line
	}{
		{"no name", []string{"bots", "create", "--model", "m", "--api-key-file", key}, "", "error: --name is required"},
		{"no model", []string{"bots", "create", "--name", "x", "--api-key-file", key}, "", "error: --model is required"},
		{"missing file", create("--api-key-file", missing), "", "error: --api-key-file " + missing + ": no such file or directory"},
		{"empty file", create("--api-key-file", empty), "", "error: --api-key-file " + empty + ": empty"},
		{"empty stdin", create("--api-key-file", "-"), "\n", "error: --api-key-file stdin: empty"},
		{"directory", create("--api-key-file", unreadable), "", "error: --api-key-file " + unreadable + ": read: is a directory"},
		{"huge file", create("--api-key-file", big), "", "error: --api-key-file " + big + ": larger than 64 KiB: not a secret file"},
		{"empty telegram", create("--api-key-file", key, "--telegram-token-file", empty), "", "error: --telegram-token-file " + empty + ": empty"},
		{"both stdin", create("--api-key-file", "-", "--telegram-token-file", "-"), "", "error: only one of --api-key-file and --telegram-token-file can be - (stdin)"},
		{"junk memory", create("--api-key-file", key, "--memory", "lots"), "", `error: invalid argument "lots" for "--memory" flag: not a size: want bytes or a number with a unit, like 2GiB or 1536MiB`},
		{"negative cpus", create("--api-key-file", key, "--cpus", "-1"), "", "error: --cpus must not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			r := h.run(t, runOpts{stdin: tt.stdin}, tt.args...)
			first, _, _ := strings.Cut(r.errOut, "\n")
			if r.code != 1 || first != tt.wantStderr || r.out != "" {
				t.Errorf("code %d stdout %q\nstderr %q\nwant first line %q", r.code, r.out, r.errOut, tt.wantStderr)
			}
			if strings.Contains(r.errOut, "SECRET") {
				t.Errorf("stderr shows a secret: %q", r.errOut)
			}
			if reqs := h.srv.Requests(); len(reqs) != 0 {
				t.Errorf("sent %+v", reqs)
			}
		})
	}
}

func TestBotsActions(t *testing.T) {
	tests := []struct {
		name       string
		o          runOpts
		args       []string
		code       int
		wantReq    string // "METHOD path?query", or "" for no request
		wantStderr string
	}{
		{"stop", runOpts{tty: true}, []string{"bots", "stop", "alice"}, 0, "POST /v1/bots/alice/stop", "Stopping bot alice (b_1): status running.\n"},
		{"start", runOpts{}, []string{"bots", "start", "alice"}, 0, "POST /v1/bots/alice/start", "Starting bot alice (b_1): status running.\n"},
		{"restart", runOpts{}, []string{"bots", "restart", "b_1"}, 0, "POST /v1/bots/b_1/restart", "Restarting bot alice (b_1): status running.\n"},
		{"stop unknown", runOpts{}, []string{"bots", "stop", "nope"}, 1, "POST /v1/bots/nope/stop", "error: stop bot nope: bot \"nope\" not found\n"},
		{"delete piped needs --yes", runOpts{}, []string{"bots", "delete", "alice"}, 1, "", "error: --yes is required when not running on a terminal: nothing was done\n"},
		{"delete piped --yes", runOpts{}, []string{"bots", "delete", "alice", "--yes"}, 0, "DELETE /v1/bots/alice?purge=false", "Deleting bot alice (b_1) in the background; the workspace is kept.\n"},
		{"delete terminal no", runOpts{tty: true, stdin: "n\n"}, []string{"bots", "delete", "alice"}, 2, "", "Delete bot alice? Its workspace is kept (--purge deletes it too). [y/N] cancelled\n"},
		{"delete purge terminal no", runOpts{tty: true, stdin: "no\n"}, []string{"bots", "rm", "alice", "--purge"}, 2, "", "Delete bot alice and, with --purge, its workspace? Its memory and sessions are lost for good. [y/N] cancelled\n"},
		{"delete terminal eof", runOpts{tty: true}, []string{"bots", "delete", "alice"}, 2, "", "cancelled\n"},
		{"delete terminal yes", runOpts{tty: true, stdin: "y\n"}, []string{"bots", "delete", "alice", "--purge"}, 0, "DELETE /v1/bots/alice?purge=true", "Deleting bot alice (b_1) in the background; the workspace is deleted too.\n"},
		{"delete --yes escapes", runOpts{tty: true}, []string{"bots", "delete", "-y", "a b/c"}, 1, "DELETE /v1/bots/a%20b%2Fc?purge=false", "error: delete bot a b/c: bot \"a b/c\" not found\n"},
		{"drain", runOpts{tty: true}, []string{"hosts", "drain", "edge-1"}, 0, "POST /v1/hosts/edge-1/drain", "Host edge-1 (h_1) is draining: no new bots will be placed on it.\n"},
		{"undrain", runOpts{}, []string{"hosts", "undrain", "h_1"}, 0, "POST /v1/hosts/h_1/undrain", "Host edge-1 (h_1) accepts new bots again.\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			r := h.run(t, tt.o, tt.args...)
			if r.code != tt.code || !strings.HasSuffix(r.errOut, tt.wantStderr) || r.out != "" {
				t.Errorf("code %d (want %d), stdout %q, stderr %q (want suffix %q)", r.code, tt.code, r.out, r.errOut, tt.wantStderr)
			}
			var got string
			if reqs := h.srv.Requests(); len(reqs) > 0 {
				got = reqs[0].Method + " " + reqs[0].Path
				if reqs[0].Query != "" {
					got += "?" + reqs[0].Query
				}
			}
			if got != tt.wantReq {
				t.Errorf("request %q, want %q", got, tt.wantReq)
			}
		})
	}

	t.Run("json", func(t *testing.T) {
		h := newHarness(t)
		for _, args := range [][]string{
			{"bots", "stop", "alice", "-o", "json"},
			{"bots", "delete", "alice", "--purge", "-o", "json", "--yes"},
			{"hosts", "drain", "edge-1", "-o", "json"},
		} {
			r := h.run(t, runOpts{}, args...)
			var got map[string]any
			if err := json.Unmarshal([]byte(r.out), &got); err != nil || r.code != 0 || r.errOut != "" {
				t.Errorf("%v: code %d, %v\n%s%s", args, r.code, err, r.out, r.errOut)
			}
			switch args[1] {
			case "stop":
				if got["desired"] != "stopped" {
					t.Errorf("stop: %v", got)
				}
			case "delete":
				if got["status"] != "deleting" || got["purge"] != true {
					t.Errorf("delete: %v", got)
				}
			case "drain":
				if got["draining"] != true {
					t.Errorf("drain: %v", got)
				}
			}
		}
	})
}

func TestBotsHealth(t *testing.T) {
	h := newHarness(t)
	r := h.run(t, runOpts{tty: true}, "bots", "health", "alice")
	want := "PROBE     STATUS  BODY\n" +
		"startupz  200     ok\n" +
		"healthz   200     ok\n" +
		"readyz    error   dial tcp 127.0.0.1:18789: connection refused\n"
	if r.code != 0 || r.out != want {
		t.Fatalf("code %d\n%s%s\nwant:\n%s", r.code, r.out, r.errOut, want)
	}
	r = h.run(t, runOpts{}, "bots", "health", "alice")
	if r.code != 0 || !strings.HasPrefix(r.out, "startupz\t200\tok\n") {
		t.Errorf("piped: %q", r.out)
	}
	r = h.run(t, runOpts{}, "bots", "health", "alice", "-o", "yaml")
	var got wire.Probes
	if err := yaml.Unmarshal([]byte(r.out), &got); err != nil || got.Healthz.Status != 200 || got.Readyz.Error == "" {
		t.Errorf("yaml: %v\n%s", err, r.out)
	}
}

func TestBotsChat(t *testing.T) {
	h := newHarness(t)
	r := h.run(t, runOpts{tty: true}, "bots", "chat", "alice", "hello there", "--session", "s1")
	if r.code != 0 || r.out != "You said: hello there\n" || r.errOut != "usage: 12 prompt + 5 completion = 17 tokens\n" {
		t.Fatalf("code %d stdout %q stderr %q", r.code, r.out, r.errOut)
	}
	if reqs := h.srv.Requests(); reqs[0].Path != "/v1/bots/alice/chat" || reqs[0].Body != `{"message":"hello there","session":"s1"}` {
		t.Errorf("request %+v", reqs[0])
	}

	r = h.run(t, runOpts{}, "bots", "chat", "alice", "ping", "-o", "json")
	var got wire.ChatResponse
	if err := json.Unmarshal([]byte(r.out), &got); err != nil || r.code != 0 || got.Usage.TotalTokens != 17 || r.errOut != "" {
		t.Fatalf("json: code %d %v\n%s%s", r.code, err, r.out, r.errOut)
	}
	if reqs := h.srv.Requests(); reqs[len(reqs)-1].Body != `{"message":"ping"}` {
		t.Errorf("request without --session: %+v", reqs[len(reqs)-1])
	}

	for args, want := range map[string]string{
		"alice":         "error: missing message\n",
		"alice hi more": "error: too many arguments: more (quote the message)\n",
	} {
		r := h.run(t, runOpts{}, append([]string{"bots", "chat"}, strings.Fields(args)...)...)
		if r.code != 1 || !strings.HasPrefix(r.errOut, want) {
			t.Errorf("chat %s: code %d %q", args, r.code, r.errOut)
		}
	}
}

func TestBotsLogs(t *testing.T) {
	t.Run("tail", func(t *testing.T) {
		h := newHarness(t)
		r := h.run(t, runOpts{}, "bots", "logs", "alice", "--tail", "3")
		if r.code != 0 || r.out != "line 1\nline 2\nline 3\n" || r.errOut != "" {
			t.Fatalf("code %d stdout %q stderr %q", r.code, r.out, r.errOut)
		}
		if req := h.srv.Requests()[0]; req.Path != "/v1/bots/alice/logs" || req.Query != "follow=false&tail=3" {
			t.Errorf("request %+v", req)
		}
	})

	t.Run("timeout does not cut the stream", func(t *testing.T) {
		h := newHarness(t)
		r := h.run(t, runOpts{}, "bots", "logs", "slow", "--timeout", "200ms")
		if r.code != 0 || r.out != "before the pause\nafter the pause\n" {
			t.Fatalf("code %d stdout %q stderr %q", r.code, r.out, r.errOut)
		}
	})

	t.Run("follow until interrupted", func(t *testing.T) {
		h := newHarness(t)
		ctx, cancel := context.WithCancel(t.Context())
		seen := &watchWriter{want: "line 3\n", done: make(chan struct{})}
		go func() {
			select {
			case <-seen.done:
			case <-time.After(10 * time.Second):
			}
			cancel() // what SIGINT does in Main
		}()
		r := h.run(t, runOpts{ctx: ctx, tee: seen}, "bots", "logs", "alice", "-f", "--timeout", "100ms")
		if r.code != 0 || r.out != "line 1\nline 2\nline 3\n" || r.errOut != "" {
			t.Fatalf("code %d stdout %q stderr %q", r.code, r.out, r.errOut)
		}
		if req := h.srv.Requests()[0]; req.Query != "follow=true&tail=100" {
			t.Errorf("request %+v", req)
		}
	})

	t.Run("follow a quiet bot past the timeout", func(t *testing.T) {
		h := newHarness(t)
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(400*time.Millisecond, cancel)
		r := h.run(t, runOpts{ctx: ctx}, "bots", "logs", "quiet", "-f", "--timeout", "100ms")
		if r.code != 0 || r.out != "" || r.errOut != "" {
			t.Fatalf("code %d stdout %q stderr %q", r.code, r.out, r.errOut)
		}
	})

	t.Run("interrupted without follow", func(t *testing.T) {
		h := newHarness(t)
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(100*time.Millisecond, cancel)
		r := h.run(t, runOpts{ctx: ctx}, "bots", "logs", "quiet", "--timeout", "0")
		if r.code != 2 || r.errOut != "cancelled\n" {
			t.Fatalf("code %d stdout %q stderr %q", r.code, r.out, r.errOut)
		}
	})

	t.Run("not found", func(t *testing.T) {
		h := newHarness(t)
		r := h.run(t, runOpts{}, "bots", "logs", "nope", "-f")
		if r.code != 1 || r.errOut != "error: logs of bot nope: bot \"nope\" not found\n" {
			t.Fatalf("code %d stderr %q", r.code, r.errOut)
		}
	})

	t.Run("negative tail", func(t *testing.T) {
		h := newHarness(t)
		r := h.run(t, runOpts{}, "bots", "logs", "alice", "--tail", "-1")
		if r.code != 1 || !strings.HasPrefix(r.errOut, "error: --tail must not be negative\n") {
			t.Fatalf("code %d stderr %q", r.code, r.errOut)
		}
	})
}

// watchWriter closes done once what was written contains want.
type watchWriter struct {
	want string
	done chan struct{}
	mu   sync.Mutex
	buf  strings.Builder
}

func (w *watchWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	had := strings.Contains(w.buf.String(), w.want)
	w.buf.Write(p)
	if !had && strings.Contains(w.buf.String(), w.want) {
		close(w.done)
	}
	return len(p), nil
}

func TestBotsCompletion(t *testing.T) {
	h := newHarness(t)
	r := h.run(t, runOpts{}, "__complete", "bots", "logs", "")
	if r.code != 0 || !strings.Contains(r.out, "alice\trunning") || !strings.Contains(r.out, "bob\tpending") {
		t.Errorf("__complete bots: code %d %q %q", r.code, r.out, r.errOut)
	}
	r = h.run(t, runOpts{}, "__complete", "bots", "create", "--host", "")
	if r.code != 0 || !strings.Contains(r.out, "edge-1\tonline") {
		t.Errorf("__complete --host: code %d %q %q", r.code, r.out, r.errOut)
	}
}
