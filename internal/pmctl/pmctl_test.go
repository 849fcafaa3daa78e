package pmctl_test

import (
	"context"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/pocketmolt/pocketmolt/internal/apiclient/apitest"
	"github.com/pocketmolt/pocketmolt/internal/ctlconfig"
	"github.com/pocketmolt/pocketmolt/internal/pmctl"
	"github.com/pocketmolt/pocketmolt/internal/pmctl/cmdutil"
	"github.com/pocketmolt/pocketmolt/internal/pmctl/iostreams"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

var now = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func ptr[T any](v T) *T { return &v }

var fixtureHosts = []wire.Host{
	{
		ID: "h_1", Name: "edge-1", Status: wire.HostOnline, Connected: true,
		Facts: &wire.HostFacts{
			Hostname: "edge-1.example", OS: "linux", Arch: "amd64", Kernel: "6.12.0", CPUs: 4,
			MemoryBytes: 8 << 30, DiskBytes: 80 << 30, DiskFreeBytes: 60 << 30,
			DockerVersion: "28.2.2", AgentVersion: "v0.1.0",
		},
		CreatedAt:     now.Add(-72 * time.Hour),
		EnrolledAt:    ptr(now.Add(-71 * time.Hour)),
		LastSeenAt:    ptr(now.Add(-2 * time.Second)),
		CertSerial:    "5e1f",
		CertExpiresAt: ptr(now.Add(20 * time.Hour)),
		Capacity:      wire.Capacity{Bots: 10, MemoryBytes: 20 << 30}, Bots: 3, MemoryAllocated: 6 << 30,
		DeclaredCapacity: wire.Capacity{Bots: 10, MemoryBytes: 20 << 30},
		CapacityLimit:    wire.Capacity{Bots: 12, MemoryBytes: 24 << 30}, CapacityLimitSource: wire.CapacityFromOperator,
		EnrolledMemory: 8 << 30,
	},
	{ID: "h_2", Name: "edge-2", Status: wire.HostPending, CreatedAt: now.Add(-time.Hour)},
	{
		ID: "h_9", Name: "liar", Status: wire.HostOnline, Connected: true, CreatedAt: now.Add(-time.Hour),
		Capacity: wire.Capacity{Bots: 4, MemoryBytes: 4 << 30}, DeclaredCapacity: wire.Capacity{Bots: 100000, MemoryBytes: 1 << 50},
		CapacityLimit: wire.Capacity{Bots: 4, MemoryBytes: 4 << 30}, CapacityLimitSource: wire.CapacityFromEnrollment,
		EnrolledMemory:  4 << 30,
		CapacityRefused: "declares 100000 bots, over the limit of 4; declares 1PiB of memory, over the limit of 4GiB",
	},
}

var fixtureCerts = []wire.Certificate{
	{Serial: "01", Kind: wire.CertRoot, Subject: "CN=PocketMolt Root", NotBefore: now.Add(-time.Hour), NotAfter: now.Add(10 * 365 * 24 * time.Hour), Status: wire.CertValid},
	{Serial: "5e1f", Kind: wire.CertAgent, Subject: "CN=h_1", HostID: "h_1", NotBefore: now.Add(-time.Hour), NotAfter: now.Add(20 * time.Hour), RevokedAt: ptr(now.Add(-time.Minute)), Status: wire.CertRevoked},
	{Serial: "6a2b", Kind: wire.CertAgent, Subject: "CN=h_1", HostID: "h_1", NotBefore: now.Add(-time.Hour), NotAfter: now.Add(23 * time.Hour), SupersededAt: ptr(now.Add(-time.Minute)), Status: wire.CertSuperseded},
}

var fixtureAdmins = []wire.Admin{
	{Name: "alice", Serial: "a1", NotBefore: now.Add(-time.Hour), NotAfter: now.Add(365 * 24 * time.Hour), Status: wire.CertValid},
	{Name: "bob", Serial: "b1", NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), RevokedAt: ptr(now), Status: wire.CertRevoked},
}

var fixtureAudit = []wire.AuditEntry{
	{ID: 2, Time: now.Add(-time.Minute), Actor: "admin", Action: "host.revoke", Target: "edge-1", Detail: "by hand"},
	{ID: 1, Time: now.Add(-time.Hour), Actor: "admin", Action: "token.create", Target: "edge-1"},
}

// fakePMD answers the admin API from the fixtures. Requests for "blocked" wait until the
// client gives up, signalling on arrived.
func fakePMD(arrived chan<- struct{}) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/hosts", func(w http.ResponseWriter, r *http.Request) { wire.WriteJSON(w, 200, fixtureHosts) })
	mux.HandleFunc("GET /v1/hosts/{ref}", func(w http.ResponseWriter, r *http.Request) {
		ref := r.PathValue("ref")
		switch ref {
		case "blocked":
			arrived <- struct{}{}
			<-r.Context().Done()
			return
		case "secret":
			wire.WriteError(w, wire.Errorf(wire.CodePermissionDenied, "admin certificate may not read hosts"))
			return
		case "whoami":
			wire.WriteError(w, wire.Errorf(wire.CodeUnauthenticated, "no admin certificate"))
			return
		}
		for _, h := range fixtureHosts {
			if h.Name == ref || h.ID == ref {
				wire.WriteJSON(w, 200, h)
				return
			}
		}
		wire.WriteError(w, wire.Errorf(wire.CodeNotFound, "host %q not found", ref))
	})
	mux.HandleFunc("POST /v1/hosts/tokens", func(w http.ResponseWriter, r *http.Request) {
		var req wire.TokenRequest
		json.NewDecoder(r.Body).Decode(&req)
		wire.WriteJSON(w, 201, wire.TokenResponse{Token: "pmt_abc123", HostID: "h_3", ExpiresAt: now.Add(time.Hour)})
	})
	mux.HandleFunc("POST /v1/hosts/{ref}/revoke", func(w http.ResponseWriter, r *http.Request) {
		h := fixtureHosts[0]
		h.Status, h.RevokedAt, h.Connected = wire.HostRevoked, ptr(now), false
		wire.WriteJSON(w, 200, h)
	})
	mux.HandleFunc("DELETE /v1/hosts/{ref}", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("PATCH /v1/hosts/{ref}", func(w http.ResponseWriter, r *http.Request) {
		for _, h := range fixtureHosts {
			if h.Name == r.PathValue("ref") {
				wire.WriteJSON(w, 200, h)
				return
			}
		}
		wire.WriteError(w, wire.Errorf(wire.CodeNotFound, "host %q not found", r.PathValue("ref")))
	})
	mux.HandleFunc("GET /v1/certs", func(w http.ResponseWriter, r *http.Request) { wire.WriteJSON(w, 200, fixtureCerts) })
	mux.HandleFunc("POST /v1/certs/{serial}/revoke", func(w http.ResponseWriter, r *http.Request) {
		c := fixtureCerts[1]
		c.Serial = r.PathValue("serial")
		wire.WriteJSON(w, 200, c)
	})
	mux.HandleFunc("GET /v1/audit", func(w http.ResponseWriter, r *http.Request) { wire.WriteJSON(w, 200, fixtureAudit) })
	for _, verb := range []string{"drain", "undrain"} {
		mux.HandleFunc("POST /v1/hosts/{ref}/"+verb, func(w http.ResponseWriter, r *http.Request) {
			h := fixtureHosts[0]
			h.Draining = verb == "drain"
			wire.WriteJSON(w, 200, h)
		})
	}
	mux.HandleFunc("POST /v1/admins", func(w http.ResponseWriter, r *http.Request) {
		var req wire.AdminRequest
		json.NewDecoder(r.Body).Decode(&req)
		if req.Name == "Bad" {
			wire.WriteError(w, wire.Errorf(wire.CodeInvalidArgument, "admin name %q: use lower case", req.Name))
			return
		}
		wire.WriteJSON(w, 201, wire.AdminBundle{
			Admin: wire.Admin{Name: req.Name, Serial: "c1", NotAfter: now.Add(time.Duration(req.TTL)), Status: wire.CertValid},
			Cert:  "CERT PEM", Key: "KEY PEM", RootCA: "ROOT PEM",
		})
	})
	mux.HandleFunc("GET /v1/admins", func(w http.ResponseWriter, r *http.Request) { wire.WriteJSON(w, 200, fixtureAdmins) })
	mux.HandleFunc("POST /v1/admins/{name}/revoke", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("name") == "alice" {
			wire.WriteError(w, wire.Errorf(wire.CodeConflict, "admin alice holds the last valid admin certificate"))
			return
		}
		wire.WriteJSON(w, 200, wire.AdminRevocation{Name: r.PathValue("name"), Revoked: fixtureAdmins[1:]})
	})
	botRoutes(mux)
	customerRoutes(mux)
	return mux
}

// harness is one fake pmd and a config file pointing at it.
type harness struct {
	srv     *apitest.Server
	config  string
	arrived chan struct{}
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	arrived := make(chan struct{}, 1)
	srv := apitest.NewServer(t, fakePMD(arrived))
	return &harness{srv: srv, config: apitest.WriteConfig(t, srv.Context), arrived: arrived}
}

type result struct {
	code        int
	out, errOut string
}

type runOpts struct {
	tty   bool   // stdout, stdin and stderr are terminals
	stdin string // what the user types
	env   map[string]string
	ctx   context.Context
	tee   io.Writer // also gets what is written to stdout, as it is written
}

// run executes pmctl with args against a Factory reading env only from o.env.
func run(t *testing.T, o runOpts, args ...string) result {
	t.Helper()
	ios, in, out, errOut := iostreams.Test()
	ios.IsTerminal, ios.CanPrompt = o.tty, o.tty
	in.WriteString(o.stdin)
	if o.tee != nil {
		ios.Out = io.MultiWriter(out, o.tee)
	}
	f := cmdutil.NewFactory(ios, func(k string) string { return o.env[k] })
	f.Now = func() time.Time { return now }
	ctx := o.ctx
	if ctx == nil {
		ctx = t.Context()
	}
	code := pmctl.Run(ctx, f, args)
	return result{code: code, out: out.String(), errOut: errOut.String()}
}

// runH runs against h's config via PMCTL_CONFIG.
func (h *harness) run(t *testing.T, o runOpts, args ...string) result {
	t.Helper()
	if o.env == nil {
		o.env = map[string]string{}
	}
	o.env["PMCTL_CONFIG"] = h.config
	return run(t, o, args...)
}

func TestHostsList(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		name string
		o    runOpts
		args []string
		want string
	}{
		{"terminal", runOpts{tty: true}, nil,
			"NAME    STATUS   BOTS  AGENT   DOCKER  LAST SEEN  NOTE\n" +
				"edge-1  online   3/10  v0.1.0  28.2.2  2s ago\n" +
				"edge-2  pending  0/-   -       -       -\n" +
				"liar    online   0/4   -       -       -          capacity refused\n"},
		{"piped", runOpts{}, nil,
			"edge-1\tonline\t3/10\tv0.1.0\t28.2.2\t2026-11-22T11:59:58Z\t\n" +
				"edge-2\tpending\t0/-\t\t\t\t\n" +
				"liar\tonline\t0/4\t\t\t\tcapacity refused\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.run(t, tt.o, "hosts", "list")
			if r.code != 0 || r.out != tt.want || r.errOut != "" {
				t.Fatalf("code %d\nstdout:\n%s\nstderr:\n%s\nwant stdout:\n%s", r.code, r.out, r.errOut, tt.want)
			}
		})
	}

	t.Run("json", func(t *testing.T) {
		r := h.run(t, runOpts{tty: true}, "hosts", "list", "-o", "json")
		var got []wire.Host
		if err := json.Unmarshal([]byte(r.out), &got); err != nil || r.code != 0 {
			t.Fatalf("code %d, %v:\n%s%s", r.code, err, r.out, r.errOut)
		}
		if len(got) != 3 || got[0].Facts.DockerVersion != "28.2.2" || got[2].CapacityRefused == "" || !strings.HasPrefix(r.out, "[\n  {\n    \"id\": \"h_1\",") {
			t.Errorf("json = %s", r.out)
		}
	})
	t.Run("yaml", func(t *testing.T) {
		r := h.run(t, runOpts{}, "hosts", "list", "--output=yaml")
		var got []map[string]any
		if err := yaml.Unmarshal([]byte(r.out), &got); err != nil || r.code != 0 || len(got) != 3 || got[1]["name"] != "edge-2" {
			t.Fatalf("code %d, %v:\n%s", r.code, err, r.out)
		}
		if !strings.Contains(r.out, "docker_version: 28.2.2") {
			t.Errorf("yaml lacks facts:\n%s", r.out)
		}
	})
}

func TestHostsGet(t *testing.T) {
	h := newHarness(t)
	r := h.run(t, runOpts{tty: true}, "hosts", "get", "edge-1")
	want := `name:            edge-1
id:              h_1
status:          online (connected)
draining:        no
capacity:        bots 3/10, memory 6GiB/20GiB
declared:        10 bots, 20GiB
capacity limit:  12 bots, 24GiB (set by an operator)
created:         2026-11-19T12:00:00Z (3d ago)
enrolled:        2026-11-19T13:00:00Z (3d ago)
last seen:       2026-11-22T11:59:58Z (2s ago)
hostname:        edge-1.example
os/arch:         linux/amd64
kernel:          6.12.0
cpus:            4
memory:          8 GiB
disk:            80 GiB (60 GiB free)
docker:          28.2.2
agent:           v0.1.0
cert serial:     5e1f
cert expires:    2026-11-23T08:00:00Z (in 20h)
`
	if r.code != 0 || r.out != want {
		t.Fatalf("code %d\n%s%s\nwant:\n%s", r.code, r.out, r.errOut, want)
	}

	r = h.run(t, runOpts{tty: true}, "hosts", "get", "liar")
	for _, line := range []string{
		"capacity:          bots 0/4, memory 0B/4GiB\n",
		"declared:          100000 bots, 1PiB\n",
		"capacity limit:    4 bots, 4GiB (from the 4GiB of memory it reported when it enrolled)\n",
		"capacity refused:  declares 100000 bots, over the limit of 4; declares 1PiB of memory, over the limit of 4GiB\n",
	} {
		if r.code != 0 || !strings.Contains(r.out, line) {
			t.Errorf("liar lacks %q:\n%s%s", line, r.out, r.errOut)
		}
	}
	r = h.run(t, runOpts{tty: true}, "hosts", "get", "edge-2")
	if !strings.Contains(r.out, "declared:        none\n") || !strings.Contains(r.out, "capacity limit:  unknown") {
		t.Errorf("a pending host:\n%s", r.out)
	}

	r = h.run(t, runOpts{}, "hosts", "get", "h_2", "-o", "yaml")
	var got wire.Host
	if err := yaml.Unmarshal([]byte(r.out), &got); err != nil || got.Name != "edge-2" || got.Facts != nil {
		t.Fatalf("yaml: %v\n%s", err, r.out)
	}

	r = h.run(t, runOpts{}, "hosts", "get", "edge-1", "-o", "json")
	var gotJSON wire.Host
	if err := json.Unmarshal([]byte(r.out), &gotJSON); err != nil || gotJSON.CertSerial != "5e1f" {
		t.Fatalf("json: %v\n%s", err, r.out)
	}
}

func TestHostsTokenCreate(t *testing.T) {
	h := newHarness(t)
	r := h.run(t, runOpts{tty: true}, "hosts", "token", "create", "edge-3", "--ttl", "30m")
	if r.code != 0 || r.out != "pmt_abc123\n" {
		t.Fatalf("code %d stdout %q stderr %q", r.code, r.out, r.errOut)
	}
	if !strings.Contains(r.errOut, "pmagent enroll --server <pmd-agent-address> --token pmt_abc123") || !strings.Contains(r.errOut, "(in 1h)") {
		t.Errorf("stderr hint = %q", r.errOut)
	}
	reqs := h.srv.Requests()
	if last := reqs[len(reqs)-1]; last.Method != "POST" || last.Path != "/v1/hosts/tokens" || last.Body != `{"name":"edge-3","ttl":"30m0s"}` {
		t.Errorf("request = %+v", last)
	}

	r = h.run(t, runOpts{}, "hosts", "token", "create", "edge-4", "-o", "json")
	want := "{\n  \"token\": \"pmt_abc123\",\n  \"host_id\": \"h_3\",\n  \"expires_at\": \"2026-11-22T13:00:00Z\"\n}\n"
	if r.code != 0 || r.out != want || r.errOut != "" {
		t.Fatalf("code %d stdout %q stderr %q", r.code, r.out, r.errOut)
	}
	reqs = h.srv.Requests()
	if last := reqs[len(reqs)-1]; last.Body != `{"name":"edge-4"}` {
		t.Errorf("request without --ttl = %+v", last)
	}
}

func TestDestructiveCommands(t *testing.T) {
	tests := []struct {
		name       string
		o          runOpts
		args       []string
		code       int
		wantReq    string // "METHOD path", or "" for no request
		wantStderr string
	}{
		{"revoke piped needs --yes", runOpts{}, []string{"hosts", "revoke", "edge-1"}, 1, "", "error: --yes is required when not running on a terminal: nothing was done\n"},
		{"revoke piped --yes", runOpts{}, []string{"hosts", "revoke", "edge-1", "--yes"}, 0, "POST /v1/hosts/edge-1/revoke", "Revoked host edge-1 (h_1).\n"},
		{"revoke terminal no", runOpts{tty: true, stdin: "n\n"}, []string{"hosts", "revoke", "edge-1"}, 2, "", "Revoke host edge-1? It will be disconnected and must enroll again. [y/N] cancelled\n"},
		{"revoke terminal eof", runOpts{tty: true}, []string{"hosts", "revoke", "edge-1"}, 2, "", "cancelled\n"},
		{"revoke terminal yes", runOpts{tty: true, stdin: "y\n"}, []string{"hosts", "revoke", "edge-1"}, 0, "POST /v1/hosts/edge-1/revoke", "Revoked host edge-1 (h_1).\n"},
		{"revoke --yes", runOpts{tty: true}, []string{"hosts", "revoke", "--yes", "edge-1"}, 0, "POST /v1/hosts/edge-1/revoke", "Revoked host edge-1 (h_1).\n"},
		{"remove -y escapes", runOpts{tty: true}, []string{"hosts", "rm", "-y", "a b/c"}, 0, "DELETE /v1/hosts/a%20b%2Fc", "Removed host a b/c.\n"},
		{"cert revoke piped needs --yes", runOpts{}, []string{"certs", "revoke", "5e1f"}, 1, "", "error: --yes is required when not running on a terminal: nothing was done\n"},
		{"cert revoke -y", runOpts{}, []string{"certs", "revoke", "5e1f", "-y"}, 0, "POST /v1/certs/5e1f/revoke", "Revoked agent certificate 5e1f (CN=h_1).\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			r := h.run(t, tt.o, tt.args...)
			if r.code != tt.code || !strings.HasSuffix(r.errOut, tt.wantStderr) {
				t.Errorf("code %d (want %d), stderr %q (want suffix %q)", r.code, tt.code, r.errOut, tt.wantStderr)
			}
			var got string
			if reqs := h.srv.Requests(); len(reqs) > 0 {
				got = reqs[0].Method + " " + reqs[0].Path
			}
			if got != tt.wantReq {
				t.Errorf("request %q, want %q", got, tt.wantReq)
			}
		})
	}
	t.Run("revoke -o json", func(t *testing.T) {
		h := newHarness(t)
		r := h.run(t, runOpts{}, "hosts", "revoke", "edge-1", "-o", "json", "--yes")
		var got wire.Host
		if err := json.Unmarshal([]byte(r.out), &got); err != nil || got.Status != wire.HostRevoked {
			t.Fatalf("%v: %s", err, r.out)
		}
	})
}

func TestCertsAndAudit(t *testing.T) {
	h := newHarness(t)
	r := h.run(t, runOpts{tty: true}, "certs", "list")
	want := "SERIAL  KIND   SUBJECT             HOST  STATUS      NOT AFTER             REVOKED\n" +
		"01      root   CN=PocketMolt Root  -     valid       2036-11-19T12:00:00Z  -\n" +
		"5e1f    agent  CN=h_1              h_1   revoked     2026-11-23T08:00:00Z  2026-11-22T11:59:00Z\n" +
		"6a2b    agent  CN=h_1              h_1   superseded  2026-11-23T11:00:00Z  -\n"
	if r.code != 0 || r.out != want {
		t.Fatalf("code %d\n%s%s\nwant\n%s", r.code, r.out, r.errOut, want)
	}

	r = h.run(t, runOpts{}, "audit", "list", "--limit", "5")
	wantAudit := "2026-11-22T11:59:00Z\tadmin\thost.revoke\tedge-1\tby hand\n" +
		"2026-11-22T11:00:00Z\tadmin\ttoken.create\tedge-1\t\n"
	if r.code != 0 || r.out != wantAudit {
		t.Fatalf("code %d\n%q\nwant\n%q", r.code, r.out, wantAudit)
	}
	reqs := h.srv.Requests()
	if last := reqs[len(reqs)-1]; last.Path != "/v1/audit" || last.Query != "limit=5" {
		t.Errorf("audit request = %+v", last)
	}
	r = h.run(t, runOpts{tty: true}, "audit", "list")
	if !strings.HasPrefix(r.out, "TIME                  ACTOR  ACTION        TARGET  DETAIL\n") {
		t.Errorf("audit table:\n%s", r.out)
	}
}

func TestErrorsAndExitCodes(t *testing.T) {
	h := newHarness(t)
	foreign := apitest.WriteConfig(t, h.srv.ForeignContext(t))
	tests := []struct {
		name       string
		env        map[string]string
		args       []string
		code       int
		wantStderr string
	}{
		{"not found", nil, []string{"hosts", "get", "nope"}, 1, "error: get host nope: host \"nope\" not found\n"},
		{"unauthenticated", nil, []string{"hosts", "get", "whoami"}, 4, "error: get host whoami: no admin certificate (unauthenticated)\n"},
		{"permission denied", nil, []string{"hosts", "get", "secret"}, 4, "(permission_denied)\n"},
		{"certificate rejected", map[string]string{"PMCTL_CONFIG": foreign}, []string{"hosts", "list"}, 4, "error: list hosts: server rejected the admin certificate (certificate required): it may be revoked, expired or from another CA\n"},
		{"bad output", nil, []string{"hosts", "list", "-o", "xml"}, 1, "error: invalid argument \"xml\" for \"-o, --output\" flag: must be one of table, json, yaml\n"},
		{"missing arg", nil, []string{"hosts", "get"}, 1, "error: missing host name or id\n\nUsage:\n  pmctl hosts get <name|id> [flags]\n"},
		{"extra arg", nil, []string{"hosts", "list", "x"}, 1, "error: unexpected argument \"x\""},
		{"unknown flag", nil, []string{"hosts", "list", "--bogus"}, 1, "error: unknown flag: --bogus"},
		{"unknown command", nil, []string{"hots"}, 1, "error: unknown command \"hots\" for \"pmctl\" (did you mean hosts, bots?)"},
		{"unknown verb", nil, []string{"hosts", "lst"}, 1, "error: unknown command \"lst\" for \"pmctl hosts\" (did you mean list, get, set?)"},
		{"bad limit", nil, []string{"audit", "list", "--limit", "0"}, 1, "error: --limit must be at least 1"},
		{"negative timeout", nil, []string{"hosts", "list", "--timeout", "-1s"}, 1, "error: --timeout must not be negative"},
		{"no config", map[string]string{"PMCTL_CONFIG": filepath.Join(t.TempDir(), "none.yaml")}, []string{"hosts", "list"}, 1, "error: no config file at "},
		{"unknown context", map[string]string{"PMCTL_CONTEXT": "prod"}, []string{"hosts", "list"}, 1, "error: context \"prod\": no such context (have: default)\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := runOpts{env: map[string]string{"PMCTL_CONFIG": h.config}}
			for k, v := range tt.env {
				o.env[k] = v
			}
			r := run(t, o, tt.args...)
			if r.code != tt.code || !strings.Contains(r.errOut, tt.wantStderr) || r.out != "" {
				t.Errorf("code %d (want %d)\nstdout %q\nstderr %q\nwant stderr containing %q", r.code, tt.code, r.out, r.errOut, tt.wantStderr)
			}
		})
	}
}

func TestCancelled(t *testing.T) {
	h := newHarness(t)
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		<-h.arrived
		cancel() // what SIGINT does in Main
	}()
	r := h.run(t, runOpts{ctx: ctx}, "hosts", "get", "blocked")
	if r.code != 2 || r.errOut != "cancelled\n" {
		t.Fatalf("code %d, stderr %q", r.code, r.errOut)
	}
}

func TestTimeout(t *testing.T) {
	h := newHarness(t)
	r := h.run(t, runOpts{}, "hosts", "get", "blocked", "--timeout", "200ms")
	if r.code != 1 || !strings.Contains(r.errOut, "timed out") {
		t.Fatalf("code %d, stderr %q", r.code, r.errOut)
	}
}

func TestContextListUse(t *testing.T) {
	h := newHarness(t)
	staging := h.srv.Context
	staging.Name, staging.Server = "staging", "10.1.2.3:9443"
	path := apitest.WriteConfig(t, h.srv.Context, staging)
	env := map[string]string{"PMCTL_CONFIG": path}

	r := run(t, runOpts{tty: true, env: env}, "context", "list")
	want := "CURRENT  NAME     SERVER\n*        default  " + h.srv.Context.Server + "\n         staging  10.1.2.3:9443\n"
	if r.code != 0 || r.out != want {
		t.Fatalf("code %d\n%s%s\nwant\n%s", r.code, r.out, r.errOut, want)
	}

	r = run(t, runOpts{env: env}, "context", "use", "staging")
	if r.code != 0 || r.errOut != "Switched to context \"staging\".\n" {
		t.Fatalf("use: code %d %q", r.code, r.errOut)
	}
	cfg, err := ctlconfig.Load(path)
	if err != nil || cfg.CurrentContext != "staging" || len(cfg.Contexts) != 2 || cfg.Contexts[0].KeyData != h.srv.Context.KeyData {
		t.Fatalf("after use: %+v, %v", cfg, err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode after use = %#o", fi.Mode().Perm())
	}

	r = run(t, runOpts{env: env}, "context", "list", "-o", "json")
	var got []map[string]any
	if err := json.Unmarshal([]byte(r.out), &got); err != nil || len(got) != 2 || got[1]["current"] != true || strings.Contains(r.out, "PRIVATE KEY") {
		t.Fatalf("json: %v\n%s", err, r.out)
	}

	// --context and PMCTL_CONTEXT pick a context without touching the file: "default"
	// answers, "staging" (current now) points nowhere reachable.
	for _, o := range []runOpts{
		{env: map[string]string{"PMCTL_CONFIG": path, "PMCTL_CONTEXT": "default"}},
		{env: map[string]string{"PMCTL_CONFIG": path, "PMCTL_CONTEXT": "staging"}},
	} {
		args := []string{"hosts", "list"}
		if o.env["PMCTL_CONTEXT"] == "staging" {
			args = append(args, "--context", "default") // the flag beats the environment
		}
		if r := run(t, o, args...); r.code != 0 || !strings.HasPrefix(r.out, "edge-1\t") {
			t.Errorf("%v %v: code %d %s", o.env, args, r.code, r.errOut)
		}
	}
	if cfg, _ := ctlconfig.Load(path); cfg.CurrentContext != "staging" {
		t.Errorf("selecting a context changed the file")
	}

	r = run(t, runOpts{env: env}, "context", "use", "nope")
	if r.code != 1 || !strings.Contains(r.errOut, `context "nope": no such context (have: default, staging)`) {
		t.Errorf("use nope: code %d %q", r.code, r.errOut)
	}
}

func TestConfigPathPrecedence(t *testing.T) {
	// Three config files whose only context has a different name: which one context list
	// shows tells which file was read.
	dir := t.TempDir()
	write := func(path, name string) {
		if err := ctlconfig.Write(path, &ctlconfig.Config{CurrentContext: name, Contexts: []ctlconfig.Context{{Name: name, Server: "x:1"}}}); err != nil {
			t.Fatal(err)
		}
	}
	flagPath := filepath.Join(dir, "flag.yaml")
	envPath := filepath.Join(dir, "env.yaml")
	xdg := filepath.Join(dir, "xdg")
	home := filepath.Join(dir, "home")
	write(flagPath, "from-flag")
	write(envPath, "from-env")
	write(filepath.Join(xdg, "pmctl", "config.yaml"), "from-xdg")
	write(filepath.Join(home, ".config", "pmctl", "config.yaml"), "from-home")

	tests := []struct {
		name string
		flag string
		env  map[string]string
		want string
	}{
		{"flag", flagPath, map[string]string{"PMCTL_CONFIG": envPath, "XDG_CONFIG_HOME": xdg, "HOME": home}, "from-flag"},
		{"env", "", map[string]string{"PMCTL_CONFIG": envPath, "XDG_CONFIG_HOME": xdg, "HOME": home}, "from-env"},
		{"xdg", "", map[string]string{"XDG_CONFIG_HOME": xdg, "HOME": home}, "from-xdg"},
		{"home", "", map[string]string{"HOME": home}, "from-home"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := []string{"context", "list"}
			if tt.flag != "" {
				args = append(args, "--config", tt.flag)
			}
			r := run(t, runOpts{env: tt.env}, args...)
			if r.code != 0 || r.out != "*\t"+tt.want+"\tx:1\n" {
				t.Errorf("code %d stdout %q stderr %q, want %s", r.code, r.out, r.errOut, tt.want)
			}
		})
	}
}

func TestConfigProblems(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("current-context: a\ncontexts:\n  - name: a\n    sever: 127.0.0.1:9443\n"), 0o600)
	r := run(t, runOpts{env: map[string]string{"PMCTL_CONFIG": bad}}, "hosts", "list")
	if r.code != 1 || r.errOut != "error: config "+bad+": line 4: unknown key \"sever\" in context #1 (known keys: name, server, server-name, ca-data, cert-data, key-data)\n" {
		t.Errorf("unknown key: code %d %q", r.code, r.errOut)
	}

	open := filepath.Join(dir, "open.yaml")
	os.WriteFile(open, []byte("current-context: a\ncontexts:\n  - name: a\n    server: x:1\n"), 0o644)
	os.Chmod(open, 0o644)
	r = run(t, runOpts{env: map[string]string{"PMCTL_CONFIG": open}}, "context", "list")
	if r.code != 0 || !strings.HasPrefix(r.errOut, "warning: config "+open+" has mode 0644") {
		t.Errorf("loose mode: code %d %q", r.code, r.errOut)
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		r := run(t, runOpts{}, args...)
		if r.code != 0 || r.out != "pmctl dev (commit none)\n" {
			t.Errorf("%v: code %d %q %q", args, r.code, r.out, r.errOut)
		}
	}
}

func TestCompletion(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish", "powershell"} {
		r := run(t, runOpts{}, "completion", shell)
		if r.code != 0 || !strings.Contains(r.out, "pmctl") {
			t.Errorf("completion %s: code %d %q", shell, r.code, r.errOut)
		}
	}
	// Dynamic completion of host names asks pmd.
	h := newHarness(t)
	r := h.run(t, runOpts{}, "__complete", "hosts", "get", "")
	if r.code != 0 || !strings.Contains(r.out, "edge-1\tonline") || !strings.Contains(r.out, "edge-2\tpending") {
		t.Errorf("__complete: code %d %q %q", r.code, r.out, r.errOut)
	}
}

func TestHelpGolden(t *testing.T) {
	tests := []struct {
		golden string
		args   []string
	}{
		{"root_help.golden", []string{"--help"}},
		{"hosts_help.golden", []string{"hosts", "--help"}},
		{"hosts_token_create_help.golden", []string{"hosts", "token", "create", "--help"}},
		{"bots_help.golden", []string{"bots", "--help"}},
		{"bots_create_help.golden", []string{"bots", "create", "--help"}},
		{"bots_logs_help.golden", []string{"bots", "logs", "--help"}},
		{"admins_help.golden", []string{"admins", "--help"}},
		{"admins_create_help.golden", []string{"admins", "create", "--help"}},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			r := run(t, runOpts{}, tt.args...)
			if r.code != 0 {
				t.Fatalf("code %d: %s", r.code, r.errOut)
			}
			path := filepath.Join("testdata", tt.golden)
			if *update {
				if err := os.WriteFile(path, []byte(r.out), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create)", err)
			}
			if r.out != string(want) {
				t.Errorf("%s differs (run with -update to accept):\n%s", path, r.out)
			}
		})
	}
}

func TestExitCode(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{nil, 0},
		{context.Canceled, 2},
		{cmdutil.ErrCancel, 2},
		{&wire.Error{Code: wire.CodePermissionDenied}, 4},
		{&wire.Error{Code: wire.CodeNotFound}, 1},
		{&cmdutil.FlagError{Err: context.DeadlineExceeded}, 1},
	}
	for _, tt := range tests {
		if got := pmctl.ExitCode(tt.err); got != tt.want {
			t.Errorf("ExitCode(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}
