package pmctl_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/apiclient/apitest"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// waitingPMD is a fake pmd with the given hosts and bots, which also answers creating,
// editing and token requests with what a pmd with no room would.
func waitingPMD(t *testing.T, hosts []wire.Host, bots []wire.Bot, botsFail bool) (*apitest.Server, string) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/hosts", func(w http.ResponseWriter, r *http.Request) { wire.WriteJSON(w, 200, hosts) })
	mux.HandleFunc("GET /v1/hosts/{ref}", func(w http.ResponseWriter, r *http.Request) { wire.WriteJSON(w, 200, hosts[0]) })
	mux.HandleFunc("GET /v1/bots", func(w http.ResponseWriter, r *http.Request) {
		if botsFail {
			wire.WriteError(w, wire.Errorf(wire.CodeInternal, "boom"))
			return
		}
		wire.WriteJSON(w, 200, bots)
	})
	mux.HandleFunc("GET /v1/bots/{ref}", func(w http.ResponseWriter, r *http.Request) { wire.WriteJSON(w, 200, bots[0]) })
	mux.HandleFunc("POST /v1/bots", func(w http.ResponseWriter, r *http.Request) {
		var req wire.CreateBotRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			wire.WriteError(w, wire.Errorf(wire.CodeInvalidArgument, "bad body"))
			return
		}
		b := wire.Bot{ID: "b_9", Name: req.Name, Owner: "operator:admin", Placement: req.Placement, Status: wire.BotWaiting,
			Waiting: "no host has room for a bot with 2GiB of memory", Desired: wire.DesiredRunning, SpecVersion: 1}
		if req.Placement == wire.PlacementDedicated {
			b.Waiting = "waiting for a dedicated host"
		}
		wire.WriteJSON(w, 201, b)
	})
	mux.HandleFunc("PATCH /v1/bots/{ref}", func(w http.ResponseWriter, r *http.Request) {
		b := bots[0]
		b.SpecVersion++
		wire.WriteJSON(w, 200, b)
	})
	mux.HandleFunc("POST /v1/hosts/tokens", func(w http.ResponseWriter, r *http.Request) {
		var req wire.TokenRequest
		_ = json.NewDecoder(r.Body).Decode(&req)
		wire.WriteJSON(w, 201, wire.TokenResponse{Token: "pmt_abc123", HostID: "h_9", ExpiresAt: now.Add(time.Hour), ForBot: "b_" + req.ForBot})
	})
	srv := apitest.NewServer(t, mux)
	return srv, apitest.WriteConfig(t, srv.Context)
}

func waitingBot(name, why string) wire.Bot {
	return wire.Bot{ID: "b_" + name, Name: name, Owner: "customer:u-" + name, Placement: wire.PlacementShared,
		Status: wire.BotWaiting, Waiting: why, Desired: wire.DesiredRunning, SpecVersion: 1, CreatedAt: now, UpdatedAt: now}
}

func TestHostsListWarnsOfWaitingBots(t *testing.T) {
	hosts := fixtureHosts[:1]
	room := "no host has room for a bot with 2GiB of memory"
	two := []wire.Bot{fixtureBots[0], waitingBot("alice", room), waitingBot("vip", "waiting for a dedicated host")}
	many := []wire.Bot{}
	for i := range 7 {
		many = append(many, waitingBot(fmt.Sprintf("b%d", i), room))
	}
	hostile := []wire.Bot{waitingBot("evil", "x\x1b]0;pwned\x07")}
	for _, tc := range []struct {
		name     string
		hosts    []wire.Host
		bots     []wire.Bot
		botsFail bool
		args     []string
		tty      bool
		warning  string
	}{
		{"two waiting", hosts, two, false, nil, true,
			"warning: 2 bots wait for a host with room: alice (" + room + "), vip (waiting for a dedicated host)\n"},
		{"json stays json", hosts, two, false, []string{"-o", "json"}, false,
			"warning: 2 bots wait for a host with room: alice (" + room + "), vip (waiting for a dedicated host)\n"},
		{"no hosts at all", nil, two[1:2], false, nil, true,
			"No hosts yet: create an enrollment token with `pmctl hosts token create <name>`.\nwarning: 1 bot waits for a host with room: alice (" + room + ")\n"},
		{"many", hosts, many, false, nil, false,
			"warning: 7 bots wait for a host with room: b0 (" + room + "), b1 (" + room + "), b2 (" + room + "), b3 (" + room + "), b4 (" + room + "), and 2 more\n"},
		{"escaped", hosts, hostile, false, nil, false, `warning: 1 bot waits for a host with room: evil (x\x1b]0;pwned\x07)` + "\n"},
		{"none waiting", hosts, fixtureBots[:1], false, nil, true, ""},
		{"bots unreadable", hosts, nil, true, nil, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, config := waitingPMD(t, tc.hosts, tc.bots, tc.botsFail)
			r := run(t, runOpts{tty: tc.tty, env: map[string]string{"PMCTL_CONFIG": config}}, append([]string{"hosts", "list"}, tc.args...)...)
			if r.code != 0 || r.errOut != tc.warning {
				t.Fatalf("code %d\nstderr %q\nwant   %q", r.code, r.errOut, tc.warning)
			}
			if len(tc.args) > 0 {
				var got []wire.Host
				if err := json.Unmarshal([]byte(r.out), &got); err != nil || len(got) != 1 {
					t.Fatalf("stdout is not the hosts' json: %v\n%s", err, r.out)
				}
			}
		})
	}
}

func TestBotsCreateSaysItWaits(t *testing.T) {
	srv, config := waitingPMD(t, fixtureHosts[:1], nil, false)
	key := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(key, []byte("sk-ant-test-0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"PMCTL_CONFIG": config}
	base := []string{"bots", "create", "--name", "alice", "--model", "anthropic/claude-sonnet-4-6", "--api-key-file", key}

	r := run(t, runOpts{env: env, tty: true}, base...)
	if r.code != 0 || !strings.Contains(r.out, "status:            waiting\nwaiting:           no host has room for a bot with 2GiB of memory\n") ||
		r.errOut != "Created bot alice, but it waits: no host has room for a bot with 2GiB of memory. pmd places it as soon as a host has room; watch it with `pmctl bots get alice`.\n" {
		t.Fatalf("code %d\nstdout:\n%s\nstderr: %q", r.code, r.out, r.errOut)
	}

	r = run(t, runOpts{env: env, tty: true}, append(base, "--placement", "dedicated")...)
	if r.code != 0 || !strings.Contains(r.errOut, "--for-bot alice") || !strings.Contains(r.out, "placement:         dedicated") {
		t.Fatalf("dedicated: code %d\nstdout:\n%s\nstderr: %q", r.code, r.out, r.errOut)
	}
	reqs := srv.Requests()
	if last := reqs[len(reqs)-1]; !strings.Contains(last.Body, `"placement":"dedicated"`) {
		t.Fatalf("request body %s", last.Body)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--placement", "anywhere"}, "error: --placement must be shared or dedicated"},
		{[]string{"--placement", "dedicated", "--host", "edge-1"}, "error: --host and --placement dedicated cannot be combined"},
	} {
		n := len(srv.Requests())
		r := run(t, runOpts{env: env}, append(base, tc.args...)...)
		if r.code != 1 || !strings.HasPrefix(r.errOut, tc.want) || len(srv.Requests()) != n {
			t.Fatalf("%v: code %d stderr %q, %d requests", tc.args, r.code, r.errOut, len(srv.Requests())-n)
		}
	}
}

func TestBotsEditReconfigures(t *testing.T) {
	bot := fixtureBots[0]
	srv, config := waitingPMD(t, fixtureHosts[:1], []wire.Bot{bot}, false)
	env := map[string]string{"PMCTL_CONFIG": config}
	key := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(key, []byte("sk-openai-test-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := run(t, runOpts{env: env}, "bots", "edit", "alice", "--model", "openai/gpt-5", "--api-key-file", key, "--no-telegram")
	if r.code != 0 || r.errOut != "Bot alice (b_1): reconfigured (spec version 4): its host re-creates the container with the new settings.\n" {
		t.Fatalf("code %d stderr %q", r.code, r.errOut)
	}
	reqs := srv.Requests()
	last := reqs[len(reqs)-1]
	if last.Method != "PATCH" || last.Body != `{"model":"openai/gpt-5","api_key":"sk-openai-test-0123456789","telegram_token":""}` {
		t.Fatalf("request %s %s", last.Method, last.Body)
	}
	r = run(t, runOpts{env: env}, "bots", "edit", "alice", "--disk", "20GiB", "--model", "anthropic/claude-opus-4-6")
	if r.code != 0 || !strings.Contains(r.errOut, "reconfigured (spec version 4)") || !strings.Contains(r.errOut, "; disk limit 10 GiB.") {
		t.Fatalf("disk and model: code %d stderr %q", r.code, r.errOut)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "error: give what to change"},
		{[]string{"--no-telegram", "--telegram-token-file", key}, "error: --telegram-token-file and --no-telegram cannot be combined"},
		{[]string{"--api-key-file", filepath.Join(t.TempDir(), "missing")}, "error: --api-key-file "},
	} {
		n := len(srv.Requests())
		r := run(t, runOpts{env: env}, append([]string{"bots", "edit", "alice"}, tc.args...)...)
		if r.code != 1 || !strings.HasPrefix(r.errOut, tc.want) || len(srv.Requests()) != n {
			t.Fatalf("%v: code %d stderr %q", tc.args, r.code, r.errOut)
		}
	}
}

func TestHostsTokenForBot(t *testing.T) {
	srv, config := waitingPMD(t, fixtureHosts[:1], nil, false)
	r := run(t, runOpts{env: map[string]string{"PMCTL_CONFIG": config}}, "hosts", "token", "create", "vip-1", "--for-bot", "alice")
	if r.code != 0 || r.out != "pmt_abc123\n" || !strings.Contains(r.errOut, "The host will run bot alice (b_alice) and no other.\n") {
		t.Fatalf("code %d stdout %q stderr %q", r.code, r.out, r.errOut)
	}
	reqs := srv.Requests()
	if last := reqs[len(reqs)-1]; last.Body != `{"name":"vip-1","for_bot":"alice"}` {
		t.Fatalf("request body %s", last.Body)
	}
}
