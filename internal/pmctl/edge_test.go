package pmctl_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/pocketmolt/pocketmolt/internal/apiclient/apitest"
	"github.com/pocketmolt/pocketmolt/internal/pmctl"
	"github.com/pocketmolt/pocketmolt/internal/pmctl/cmdutil"
	"github.com/pocketmolt/pocketmolt/internal/pmctl/iostreams"
	"github.com/pocketmolt/pocketmolt/internal/pmctl/root"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// evil is what a hostile bot writes wherever it can: a window title (OSC 0), a screen clear
// (CSI), a C1 CSI, an OSC 8 link, a bidi override, a lone CR and DEL.
const evil = "\x1b]0;pwned\x07\x1b[2J\u009b2J\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\ \u202eexe.txt\u202c ok\rFAKE\x7f"

// rawAt returns the offset of the first character in s a terminal would act on (a CR that
// does not end a line counts), or -1. Written out here, apart from termsafe, to check it.
func rawAt(s string) int {
	for i, r := range s {
		if r < 0x20 && r != '\n' && r != '\t' && !(r == '\r' && strings.HasPrefix(s[i:], "\r\n")) ||
			r == 0x7f || r >= 0x80 && r <= 0x9f || r >= 0x202a && r <= 0x202e || r >= 0x2066 && r <= 0x2069 {
			return i
		}
	}
	return -1
}

// hostilePMD answers like a pmd whose hosts and bots report evil in every string.
func hostilePMD() http.Handler {
	bot := wire.Bot{
		ID: "b-1", Name: "alice", HostID: "h-1", HostName: "edge-1", Image: "img", Model: "anthropic/x",
		Desired: wire.DesiredRunning, SpecVersion: 1, Status: wire.BotFailed,
		Progress: evil, LastError: "gateway did not pass /startupz; last log lines:\n" + evil,
		CreatedAt: now, UpdatedAt: now,
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/bots", func(w http.ResponseWriter, r *http.Request) {
		wire.WriteJSON(w, 200, []wire.Bot{bot})
	})
	mux.HandleFunc("GET /v1/bots/{ref}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("ref") != "alice" {
			wire.WriteError(w, wire.Errorf(wire.CodeNotFound, "no bot %q", r.PathValue("ref")))
			return
		}
		wire.WriteJSON(w, 200, bot)
	})
	mux.HandleFunc("GET /v1/bots/{ref}/health", func(w http.ResponseWriter, r *http.Request) {
		wire.WriteJSON(w, 200, wire.Probes{Startupz: wire.Probe{Status: 503, Body: evil}, Readyz: wire.Probe{Error: evil}})
	})
	mux.HandleFunc("POST /v1/bots/{ref}/chat", func(w http.ResponseWriter, r *http.Request) {
		wire.WriteJSON(w, 200, wire.ChatResponse{Reply: "Sure!\n" + evil, Model: evil})
	})
	mux.HandleFunc("POST /v1/bots/{ref}/restart", func(w http.ResponseWriter, r *http.Request) {
		wire.WriteError(w, wire.Errorf(wire.CodeUnavailable, "agent said: %s\nsecond line", evil))
	})
	mux.HandleFunc("GET /v1/bots/{ref}/logs", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fl := w.(http.Flusher)
		// A rune, an escape sequence and a CR LF split across writes, as a stream brings them.
		for _, chunk := range []string{"line one\r", "\nsplit rune \xe2\x9c", "\x93 \x1b", "[2J cleared\n", evil + "\n"} {
			w.Write([]byte(chunk))
			fl.Flush()
			time.Sleep(5 * time.Millisecond)
		}
	})
	mux.HandleFunc("GET /v1/hosts/{ref}", func(w http.ResponseWriter, r *http.Request) {
		wire.WriteJSON(w, 200, wire.Host{ID: "h-1", Name: "edge-1", Status: wire.HostOnline,
			Facts: &wire.HostFacts{Hostname: evil, DockerError: evil}, CapacityRefused: evil})
	})
	return mux
}

func TestHostileTextIsEscaped(t *testing.T) {
	srv := apitest.NewServer(t, hostilePMD())
	h := &harness{srv: srv, config: apitest.WriteConfig(t, srv.Context)}
	tests := [][]string{
		{"bots", "list"},
		{"bots", "get", "alice"},
		{"bots", "health", "alice"},
		{"bots", "chat", "alice", "hi"},
		{"bots", "logs", "alice"},
		{"bots", "logs", "alice", "-f"},
		{"bots", "restart", "alice"},
		{"hosts", "get", "edge-1"},
	}
	for _, args := range tests {
		for _, format := range []string{"", "json", "yaml"} {
			if format != "" && (args[1] == "logs" || args[1] == "restart") {
				continue
			}
			for _, tty := range []bool{true, false} {
				a := args
				if format != "" {
					a = append(append([]string{}, args...), "-o", format)
				}
				r := h.run(t, runOpts{tty: tty}, a...)
				for name, out := range map[string]string{"stdout": r.out, "stderr": r.errOut} {
					if i := rawAt(out); i >= 0 {
						t.Errorf("%v (tty %v): %s holds %q raw at %d:\n%q", a, tty, name, out[i:i+1], i, out)
					}
				}
				if r.out+r.errOut == "" {
					t.Errorf("%v printed nothing", a)
				}
				switch format {
				case "json":
					var v any
					if err := json.Unmarshal([]byte(r.out), &v); err != nil || !strings.Contains(r.out, `\u009b2J`) {
						t.Errorf("%v: json %v:\n%s", a, err, r.out)
					}
				case "yaml":
					var v any
					if err := yaml.Unmarshal([]byte(r.out), &v); err != nil {
						t.Errorf("%v: yaml %v:\n%s", a, err, r.out)
					}
				}
			}
		}
	}

	t.Run("what was escaped stays readable", func(t *testing.T) {
		r := h.run(t, runOpts{tty: true}, "bots", "logs", "alice")
		want := "line one\r\nsplit rune ✓ \\x1b[2J cleared\n\\x1b]0;pwned\\x07\\x1b[2J\\u009b2J"
		if !strings.HasPrefix(r.out, want) || r.code != 0 {
			t.Fatalf("logs: %q, want it to start %q", r.out, want)
		}
		r = h.run(t, runOpts{}, "bots", "restart", "alice")
		if strings.Count(r.errOut, "\n") != 1 || !strings.Contains(r.errOut, `\x1b]0;pwned\x07`) || !strings.Contains(r.errOut, `\nsecond line`) {
			t.Fatalf("an error from pmd must stay one escaped line: %q", r.errOut)
		}
	})

	t.Run("--raw prints the log as it is", func(t *testing.T) {
		r := h.run(t, runOpts{}, "bots", "logs", "alice", "--raw")
		want := "line one\r\nsplit rune ✓ \x1b[2J cleared\n" + evil + "\n"
		if r.out != want || r.code != 0 {
			t.Fatalf("raw logs: %q, want %q", r.out, want)
		}
	})

	t.Run("json keeps the value exactly", func(t *testing.T) {
		r := h.run(t, runOpts{}, "bots", "chat", "alice", "hi", "-o", "json")
		var got wire.ChatResponse
		if err := json.Unmarshal([]byte(r.out), &got); err != nil || got.Reply != "Sure!\n"+evil {
			t.Fatalf("json reply %q (%v)", got.Reply, err)
		}
		r = h.run(t, runOpts{}, "bots", "get", "alice", "-o", "yaml")
		var b wire.Bot
		if err := yaml.Unmarshal([]byte(r.out), &b); err != nil || b.Progress != evil {
			t.Fatalf("yaml progress %q (%v)", b.Progress, err)
		}
	})
}

// destructive lists every pmctl command that destroys or cuts off something, and a way to
// run it. Each must refuse to run without a terminal unless --yes is given.
var destructive = map[string][]string{
	"pmctl hosts revoke":  {"hosts", "revoke", "edge-1"},
	"pmctl hosts remove":  {"hosts", "remove", "edge-1"},
	"pmctl certs revoke":  {"certs", "revoke", "5e1f"},
	"pmctl bots delete":   {"bots", "delete", "alice", "--purge"},
	"pmctl admins revoke": {"admins", "revoke", "bob"},
	"pmctl users disable": {"users", "disable", "alice@example.com"},
}

func TestDestructiveCommandsNeedYesWithoutTerminal(t *testing.T) {
	// Every command with a --yes flag is in the list, and every one in the list has --yes.
	withYes := map[string]bool{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Flags().Lookup("yes") != nil {
			withYes[c.CommandPath()] = true
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	ios, _, _, _ := iostreams.Test()
	walk(root.NewCmdRoot(cmdutil.NewFactory(ios, func(string) string { return "" })))
	for path := range destructive {
		if !withYes[path] {
			t.Errorf("%s has no --yes", path)
		}
	}
	for path := range withYes {
		if _, ok := destructive[path]; !ok {
			t.Errorf("%s has --yes but is not in this test's list: add it", path)
		}
	}

	for path, args := range destructive {
		t.Run(path, func(t *testing.T) {
			for _, c := range []struct {
				name   string
				stdout bool   // stdout is a terminal; stdin is not
				stdin  string // what is piped in
			}{
				{"piped", false, ""},
				{"stdin from /dev/null on a terminal", true, ""},
				{"yes piped in", false, "y\n"},
			} {
				h := newHarness(t)
				ios, in, out, errOut := iostreams.Test()
				ios.IsTerminal, ios.CanPrompt = c.stdout, false
				in.WriteString(c.stdin)
				f := cmdutil.NewFactory(ios, func(k string) string { return map[string]string{"PMCTL_CONFIG": h.config}[k] })
				f.Now = func() time.Time { return now }
				code := pmctl.Run(t.Context(), f, args)
				want := "error: --yes is required when not running on a terminal: nothing was done\n"
				if code != pmctl.ExitError || errOut.String() != want || out.Len() != 0 {
					t.Errorf("%s: code %d, stdout %q, stderr %q; want 1 and %q", c.name, code, out, errOut, want)
				}
				if reqs := h.srv.Requests(); len(reqs) != 0 {
					t.Errorf("%s: pmd got %+v", c.name, reqs)
				}
			}
			h := newHarness(t)
			if r := h.run(t, runOpts{}, append(args, "--yes")...); r.code != 0 || len(h.srv.Requests()) != 1 {
				t.Errorf("with --yes: code %d, %d requests, stderr %q", r.code, len(h.srv.Requests()), r.errOut)
			}
		})
	}
}

func TestHostsSet(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		code     int
		wantBody string // "" for no request
		stderr   string
	}{
		{"both", []string{"edge-1", "--capacity-bots", "8", "--capacity-memory", "16GiB"}, 0,
			`{"capacity_bots":8,"capacity_memory_bytes":17179869184}`, "Host edge-1 (h_1): capacity limit 12 bots, 24GiB (set by an operator).\n"},
		{"memory only", []string{"edge-1", "--capacity-memory", "1536MiB"}, 0, `{"capacity_memory_bytes":1610612736}`, ""},
		{"clear", []string{"edge-1", "--clear-capacity"}, 0, `{"clear_capacity":true}`, ""},
		{"nothing", []string{"edge-1"}, 1, "", "error: nothing to set: give --capacity-bots, --capacity-memory or --clear-capacity\n"},
		{"clear and set", []string{"edge-1", "--clear-capacity", "--capacity-bots", "2"}, 1, "", "error: --clear-capacity cannot be combined with --capacity-bots or --capacity-memory\n"},
		{"zero bots", []string{"edge-1", "--capacity-bots", "0"}, 1, "", "error: --capacity-bots must be at least 1 (drain the host to place nothing on it)\n"},
		{"junk memory", []string{"edge-1", "--capacity-memory", "lots"}, 1, "", `error: invalid argument "lots" for "--capacity-memory" flag: not a size: want bytes or a number with a unit, like 2GiB or 1536MiB` + "\n"},
		{"refused host", []string{"liar", "--capacity-bots", "4"}, 0, `{"capacity_bots":4}`,
			"Host liar (h_9): capacity limit 4 bots, 4GiB (from the 4GiB of memory it reported when it enrolled).\n" +
				"It declares more: declares 100000 bots, over the limit of 4; declares 1PiB of memory, over the limit of 4GiB; pmd places bots within the limit.\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			r := h.run(t, runOpts{}, append([]string{"hosts", "set"}, tt.args...)...)
			first, _, _ := strings.Cut(r.errOut, "\n\nUsage:")
			if r.code != tt.code || tt.stderr != "" && strings.TrimSuffix(first, "\n")+"\n" != tt.stderr {
				t.Errorf("code %d, stderr %q; want %d, %q", r.code, r.errOut, tt.code, tt.stderr)
			}
			var got string
			if reqs := h.srv.Requests(); len(reqs) > 0 {
				if reqs[0].Method != http.MethodPatch || reqs[0].Path != "/v1/hosts/"+tt.args[0] {
					t.Errorf("request %+v", reqs[0])
				}
				got = reqs[0].Body
			}
			if got != tt.wantBody {
				t.Errorf("body %q, want %q", got, tt.wantBody)
			}
		})
	}
}
