package pmctl_test

import (
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/pocketmolt/pocketmolt/internal/apiclient/apitest"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

const day = 24 * time.Hour

var fixtureUsers = []wire.User{
	{ID: "u-1", Email: "alice@example.com", StripeCustomerID: "cus_123", CreatedAt: now.Add(-3 * day),
		Plan: "pro", Status: "active", BotID: "b_1", Assistant: "Molly"},
	{ID: "u-2", Email: "bob@example.com", Disabled: true, CreatedAt: now.Add(-time.Hour), Assistant: "Bobby"},
	{ID: "u-3", Email: "carol+molt@example.com", CreatedAt: now.Add(-5 * day),
		Plan: "starter", Status: "past_due", BotID: "b_3", Assistant: "Jarvis"},
	{ID: "u-4", Email: "dan@example.com", CreatedAt: now.Add(-2 * time.Minute)},
}

var fixtureSubs = []wire.Subscription{
	{ID: "s-0", UserID: "u-1", Email: "alice@example.com", Plan: "starter", Source: "grant", Status: "canceled",
		PeriodStart: ptr(now.Add(-40 * day)), PeriodEnd: ptr(now.Add(-10 * day)), EndedAt: ptr(now.Add(-10 * day)),
		CreatedAt: now.Add(-40 * day), UpdatedAt: now.Add(-10 * day)},
	{ID: "s-1", UserID: "u-1", Email: "alice@example.com", Plan: "pro", Source: "stripe", Status: "active",
		StripeSubscriptionID: "sub_1Q2w3E", PeriodStart: ptr(now.Add(-3 * day)), PeriodEnd: ptr(now.Add(27 * day)),
		BotID: "b_1", CreatedAt: now.Add(-3 * day), UpdatedAt: now.Add(-3 * day)},
	{ID: "s-2", UserID: "u-3", Email: "carol+molt@example.com", Plan: "starter", Source: "stripe", Status: "past_due",
		StripeSubscriptionID: "sub_9Z8x7Y", PeriodStart: ptr(now.Add(-31 * day)), PeriodEnd: ptr(now.Add(-1 * day)),
		CancelAtPeriodEnd: true, PastDueSince: ptr(now.Add(-1 * day)), BotID: "b_3",
		CreatedAt: now.Add(-31 * day), UpdatedAt: now.Add(-1 * day)},
}

var fixtureCredits = wire.Credits{
	UserID: "u-1", Email: "alice@example.com", Balance: "12.50", Included: "7.50",
	Entries: []wire.CreditEntry{
		{ID: 1, Kind: "grant", Amount: "10.00", Reason: "included credits for 2026-11-19 – 2026-12-19", Actor: "billing",
			ExpiresAt: ptr(now.Add(27 * day)), CreatedAt: now.Add(-3 * day)},
		{ID: 2, Kind: "debit", Amount: "-2.50", Reason: "model usage", Actor: "usage", CreatedAt: now.Add(-2 * time.Hour)},
		{ID: 3, Kind: "adjust", Amount: "5.00", Reason: "sorry for the outage", Actor: "admin:alice", CreatedAt: now.Add(-time.Hour)},
	},
}

// findUser answers a customer by email or id, or writes not_found as pmd does.
func findUser(w http.ResponseWriter, ref string) (wire.User, bool) {
	for _, u := range fixtureUsers {
		if u.Email == ref || u.ID == ref {
			return u, true
		}
	}
	wire.WriteError(w, wire.Errorf(wire.CodeNotFound, "no user %q (give an email or a user id)", ref))
	return wire.User{}, false
}

// decodeStrict reads a request body into v, refusing unknown fields as pmd does, so a test
// sees a body that is not exactly the wire type fail.
func decodeStrict(w http.ResponseWriter, r *http.Request, v any) bool {
	d := json.NewDecoder(r.Body)
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		wire.WriteError(w, wire.Errorf(wire.CodeInvalidArgument, "bad body: %v", err))
		return false
	}
	return true
}

// customerRoutes adds the customer endpoints of the admin API to mux, answering from the
// fixtures like pmd would: unknown customers are 404, an unknown plan or an adjustment too
// big is 400, a grant to a customer with a live subscription is 409.
func customerRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/users", func(w http.ResponseWriter, r *http.Request) { wire.WriteJSON(w, 200, fixtureUsers) })
	mux.HandleFunc("GET /v1/users/{ref}", func(w http.ResponseWriter, r *http.Request) {
		if u, ok := findUser(w, r.PathValue("ref")); ok {
			wire.WriteJSON(w, 200, u)
		}
	})
	for verb, disabled := range map[string]bool{"disable": true, "enable": false} {
		mux.HandleFunc("POST /v1/users/{ref}/"+verb, func(w http.ResponseWriter, r *http.Request) {
			if u, ok := findUser(w, r.PathValue("ref")); ok {
				u.Disabled = disabled
				wire.WriteJSON(w, 200, u)
			}
		})
	}
	mux.HandleFunc("POST /v1/users/{ref}/reset-link", func(w http.ResponseWriter, r *http.Request) {
		if u, ok := findUser(w, r.PathValue("ref")); ok {
			wire.WriteJSON(w, 200, wire.ResetLink{URL: "https://molt.example/reset?token=rt_" + u.ID, ExpiresAt: now.Add(time.Hour)})
		}
	})
	mux.HandleFunc("POST /v1/users/{ref}/grant", func(w http.ResponseWriter, r *http.Request) {
		var req wire.GrantRequest
		if !decodeStrict(w, r, &req) {
			return
		}
		u, ok := findUser(w, r.PathValue("ref"))
		switch {
		case !ok:
		case req.Plan != "pro" && req.Plan != "starter":
			wire.WriteError(w, wire.Errorf(wire.CodeInvalidArgument, "no plan %q", req.Plan))
		case req.Days < 1 || req.Days > 3660:
			wire.WriteError(w, wire.Errorf(wire.CodeInvalidArgument, "days %d: use 1 to 3660", req.Days))
		case u.Status == "active" || u.Status == "past_due":
			wire.WriteError(w, wire.Errorf(wire.CodeConflict, "%s already has a live subscription", u.ID))
		default:
			wire.WriteJSON(w, 201, wire.Subscription{ID: "s-9", UserID: u.ID, Email: u.Email, Plan: req.Plan, Source: "grant",
				Status: "active", PeriodStart: ptr(now), PeriodEnd: ptr(now.Add(time.Duration(req.Days) * day)),
				BotID: "b_9", CreatedAt: now, UpdatedAt: now})
		}
	})
	mux.HandleFunc("GET /v1/subscriptions", func(w http.ResponseWriter, r *http.Request) {
		ref := r.URL.Query().Get("user")
		if ref == "" {
			wire.WriteJSON(w, 200, fixtureSubs)
			return
		}
		u, ok := findUser(w, ref)
		if !ok {
			return
		}
		out := []wire.Subscription{}
		for _, s := range fixtureSubs {
			if s.UserID == u.ID {
				out = append(out, s)
			}
		}
		wire.WriteJSON(w, 200, out)
	})
	mux.HandleFunc("GET /v1/subscriptions/{id}", func(w http.ResponseWriter, r *http.Request) {
		for _, s := range fixtureSubs {
			if s.ID == r.PathValue("id") {
				wire.WriteJSON(w, 200, s)
				return
			}
		}
		wire.WriteError(w, wire.Errorf(wire.CodeNotFound, "no subscription %q", r.PathValue("id")))
	})
	credits := func(u wire.User) wire.Credits {
		if u.ID == fixtureCredits.UserID {
			c := fixtureCredits
			c.Entries = append([]wire.CreditEntry(nil), c.Entries...)
			return c
		}
		return wire.Credits{UserID: u.ID, Email: u.Email, Balance: "0.00", Included: "0.00", Entries: []wire.CreditEntry{}}
	}
	mux.HandleFunc("GET /v1/users/{ref}/credits", func(w http.ResponseWriter, r *http.Request) {
		if u, ok := findUser(w, r.PathValue("ref")); ok {
			wire.WriteJSON(w, 200, credits(u))
		}
	})
	mux.HandleFunc("POST /v1/users/{ref}/credits", func(w http.ResponseWriter, r *http.Request) {
		var req wire.AdjustCreditsRequest
		if !decodeStrict(w, r, &req) {
			return
		}
		u, ok := findUser(w, r.PathValue("ref"))
		if !ok {
			return
		}
		amount, ok := new(big.Rat).SetString(req.Amount)
		if !ok {
			wire.WriteError(w, wire.Errorf(wire.CodeInvalidArgument, "amount %q: want a number such as 10.00", req.Amount))
			return
		}
		if new(big.Rat).Abs(amount).Cmp(big.NewRat(10000, 1)) > 0 {
			wire.WriteError(w, wire.Errorf(wire.CodeInvalidArgument, "amount %s: adjust by at most 10000.00 at a time", req.Amount))
			return
		}
		c := credits(u)
		balance, _ := new(big.Rat).SetString(c.Balance)
		c.Balance = balance.Add(balance, amount).FloatString(2)
		c.Entries = append(c.Entries, wire.CreditEntry{ID: int64(len(c.Entries) + 1), Kind: "adjust", Amount: req.Amount,
			Reason: req.Reason, Actor: "admin:admin", CreatedAt: now})
		wire.WriteJSON(w, 200, c)
	})
}

// lastRequest is the last request pmd got, as "METHOD path?query body", or "" for none.
func lastRequest(h *harness) string {
	reqs := h.srv.Requests()
	if len(reqs) == 0 {
		return ""
	}
	r := reqs[len(reqs)-1]
	s := r.Method + " " + r.Path
	if r.Query != "" {
		s += "?" + r.Query
	}
	if r.Body != "" {
		s += " " + r.Body
	}
	return s
}

// checkOutput runs args on a terminal and piped and compares stdout with the want of each,
// then checks -o json and -o yaml read back as v's type with check.
func checkOutput[T any](t *testing.T, h *harness, args []string, wantTTY, wantPiped string, check func(T) bool) {
	t.Helper()
	for _, c := range []struct {
		tty  bool
		want string
	}{{true, wantTTY}, {false, wantPiped}} {
		r := h.run(t, runOpts{tty: c.tty}, args...)
		if r.code != 0 || r.out != c.want || r.errOut != "" {
			t.Errorf("%v (tty %v): code %d\nstdout:\n%s\nstderr:\n%s\nwant stdout:\n%s", args, c.tty, r.code, r.out, r.errOut, c.want)
		}
	}
	for _, format := range []string{"json", "yaml"} {
		r := h.run(t, runOpts{tty: true}, append(append([]string{}, args...), "-o", format)...)
		var got T
		var err error
		if format == "json" {
			err = json.Unmarshal([]byte(r.out), &got)
		} else {
			err = yaml.Unmarshal([]byte(r.out), &got)
		}
		if r.code != 0 || err != nil || !check(got) || r.errOut != "" {
			t.Errorf("%v -o %s: code %d, %v, stderr %q:\n%s", args, format, r.code, err, r.errOut, r.out)
		}
	}
}

func TestUsersList(t *testing.T) {
	h := newHarness(t)
	checkOutput(t, h, []string{"users", "list"},
		"EMAIL                   STATUS    PLAN     SUBSCRIPTION  ASSISTANT  BOT  CREATED\n"+
			"alice@example.com       enabled   pro      active        Molly      b_1  3d ago\n"+
			"bob@example.com         disabled  -        -             Bobby      -    1h ago\n"+
			"carol+molt@example.com  enabled   starter  past_due      Jarvis     b_3  5d ago\n"+
			"dan@example.com         enabled   -        -             -          -    2m ago\n",
		"alice@example.com\tenabled\tpro\tactive\tMolly\tb_1\t2026-11-19T12:00:00Z\n"+
			"bob@example.com\tdisabled\t\t\tBobby\t\t2026-11-22T11:00:00Z\n"+
			"carol+molt@example.com\tenabled\tstarter\tpast_due\tJarvis\tb_3\t2026-11-17T12:00:00Z\n"+
			"dan@example.com\tenabled\t\t\t\t\t2026-11-22T11:58:00Z\n",
		func(got []wire.User) bool {
			return len(got) == 4 && got[0].StripeCustomerID == "cus_123" && got[1].Disabled && got[2].Status == "past_due" &&
				got[0].CreatedAt.Equal(fixtureUsers[0].CreatedAt)
		})
	if got := lastRequest(h); got != "GET /v1/users" {
		t.Errorf("request %q", got)
	}
	r := h.run(t, runOpts{}, "users", "ls", "-o", "json")
	if !strings.HasPrefix(r.out, "[\n  {\n    \"id\": \"u-1\",\n    \"email\": \"alice@example.com\",\n    \"disabled\": false,") {
		t.Errorf("json is not in the wire type's field order:\n%s", r.out)
	}

	t.Run("none yet", func(t *testing.T) {
		mux := http.NewServeMux()
		mux.HandleFunc("GET /v1/users", func(w http.ResponseWriter, r *http.Request) { wire.WriteJSON(w, 200, []wire.User{}) })
		srv := apitest.NewServer(t, mux)
		empty := &harness{srv: srv, config: apitest.WriteConfig(t, srv.Context)}
		r := empty.run(t, runOpts{tty: true}, "users", "list")
		if r.code != 0 || r.out != "" || !strings.Contains(r.errOut, "No customers yet") {
			t.Errorf("terminal: code %d, stdout %q, stderr %q", r.code, r.out, r.errOut)
		}
		if r := empty.run(t, runOpts{}, "users", "list"); r.code != 0 || r.out != "" || r.errOut != "" {
			t.Errorf("piped: code %d, stdout %q, stderr %q", r.code, r.out, r.errOut)
		}
		if r := empty.run(t, runOpts{}, "users", "list", "-o", "json"); r.code != 0 || r.out != "[]\n" {
			t.Errorf("json: code %d, stdout %q, stderr %q", r.code, r.out, r.errOut)
		}
	})
}

func TestUsersGet(t *testing.T) {
	h := newHarness(t)
	checkOutput(t, h, []string{"users", "get", "alice@example.com"},
		`email:            alice@example.com
id:               u-1
status:           enabled
subscription:     active
plan:             pro
assistant:        Molly
bot:              b_1
stripe customer:  cus_123
created:          2026-11-19T12:00:00Z (3d ago)
`,
		"email:\talice@example.com\nid:\tu-1\nstatus:\tenabled\nsubscription:\tactive\nplan:\tpro\nassistant:\tMolly\nbot:\tb_1\n"+
			"stripe customer:\tcus_123\ncreated:\t2026-11-19T12:00:00Z\n",
		func(got wire.User) bool {
			return got.ID == "u-1" && got.Email == "alice@example.com" && got.Assistant == "Molly" && got.CreatedAt.Equal(fixtureUsers[0].CreatedAt)
		})

	r := h.run(t, runOpts{tty: true}, "users", "get", "u-4")
	want := `email:         dan@example.com
id:            u-4
status:        enabled
subscription:  none
assistant:     (not set up yet)
created:       2026-11-22T11:58:00Z (2m ago)
`
	if r.code != 0 || r.out != want {
		t.Errorf("a customer with nothing yet: code %d\n%s%s\nwant\n%s", r.code, r.out, r.errOut, want)
	}
	r = h.run(t, runOpts{tty: true}, "users", "get", "bob@example.com")
	if !strings.Contains(r.out, "status:        disabled (cannot log in; pmctl users enable lets them back in)\n") {
		t.Errorf("a disabled customer:\n%s", r.out)
	}
	// A ref is one path segment, whatever it holds, and a pasted space around it is dropped.
	h.run(t, runOpts{}, "users", "get", " carol+molt@example.com ")
	if got := lastRequest(h); got != "GET /v1/users/carol+molt@example.com" {
		t.Errorf("request %q", got)
	}
	h.run(t, runOpts{}, "users", "get", "a b/../c?d#e")
	if got := lastRequest(h); got != "GET /v1/users/a%20b%2F..%2Fc%3Fd%23e" {
		t.Errorf("request %q", got)
	}
}

func TestUsersDisableEnable(t *testing.T) {
	tests := []struct {
		name       string
		o          runOpts
		args       []string
		code       int
		wantReq    string
		wantStderr string
	}{
		{"disable piped needs --yes", runOpts{}, []string{"users", "disable", "alice@example.com"}, 1, "",
			"error: --yes is required when not running on a terminal: nothing was done\n"},
		{"disable terminal no", runOpts{tty: true, stdin: "n\n"}, []string{"users", "disable", "alice@example.com"}, 2, "",
			"Disable user alice@example.com? They are logged out everywhere and cannot log in until enabled again. [y/N] cancelled\n"},
		{"disable terminal yes", runOpts{tty: true, stdin: "yes\n"}, []string{"users", "disable", "alice@example.com"}, 0,
			"POST /v1/users/alice@example.com/disable",
			"Disable user alice@example.com? They are logged out everywhere and cannot log in until enabled again. [y/N] " +
				"Disabled user alice@example.com (u-1): logged out everywhere; `pmctl users enable alice@example.com` lets them back in.\n"},
		{"disable --yes by id", runOpts{}, []string{"users", "disable", "--yes", "u-3"}, 0, "POST /v1/users/u-3/disable",
			"Disabled user carol+molt@example.com (u-3): logged out everywhere; `pmctl users enable carol+molt@example.com` lets them back in.\n"},
		{"disable unknown", runOpts{}, []string{"users", "disable", "-y", "zed@example.com"}, 1, "POST /v1/users/zed@example.com/disable",
			"error: disable user zed@example.com: no user \"zed@example.com\" (give an email or a user id)\n"},
		{"enable asks nothing", runOpts{}, []string{"users", "enable", "bob@example.com"}, 0, "POST /v1/users/bob@example.com/enable",
			"Enabled user bob@example.com (u-2): they can log in again.\n"},
		{"enable has no --yes", runOpts{}, []string{"users", "enable", "bob@example.com", "--yes"}, 1, "", "error: unknown flag: --yes\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			r := h.run(t, tt.o, tt.args...)
			first, _, _ := strings.Cut(r.errOut, "\nUsage:")
			if r.code != tt.code || strings.TrimSuffix(first, "\n")+"\n" != tt.wantStderr || r.out != "" {
				t.Errorf("code %d (want %d), stdout %q, stderr %q (want %q)", r.code, tt.code, r.out, r.errOut, tt.wantStderr)
			}
			if got := lastRequest(h); got != tt.wantReq {
				t.Errorf("request %q, want %q", got, tt.wantReq)
			}
		})
	}
	h := newHarness(t)
	for _, args := range [][]string{{"disable", "--yes"}, {"enable"}} {
		verb, disabled := args[0], args[0] == "disable"
		r := h.run(t, runOpts{}, append([]string{"users", verb, "carol+molt@example.com", "-o", "json"}, args[1:]...)...)
		var got wire.User
		if err := json.Unmarshal([]byte(r.out), &got); err != nil || r.code != 0 || got.Disabled != disabled || got.ID != "u-3" || r.errOut != "" {
			t.Errorf("%s -o json: code %d, %v: %s%s", verb, r.code, err, r.out, r.errOut)
		}
	}
}

func TestUsersResetLink(t *testing.T) {
	h := newHarness(t)
	for _, tty := range []bool{true, false} {
		r := h.run(t, runOpts{tty: tty}, "users", "reset-link", "alice@example.com")
		// stdout is the link alone, as $(...) wants it; the rest is on stderr.
		if r.code != 0 || r.out != "https://molt.example/reset?token=rt_u-1\n" {
			t.Fatalf("tty %v: code %d, stdout %q, stderr %q", tty, r.code, r.out, r.errOut)
		}
		if r.errOut != "Reset link for alice@example.com, valid until 2026-11-22T13:00:00Z (in 1h), once. Hand it only to the customer.\n" {
			t.Errorf("stderr %q", r.errOut)
		}
	}
	if got := lastRequest(h); got != "POST /v1/users/alice@example.com/reset-link" {
		t.Errorf("request %q", got)
	}
	r := h.run(t, runOpts{}, "users", "reset-link", "u-2", "-o", "json")
	want := "{\n  \"url\": \"https://molt.example/reset?token=rt_u-2\",\n  \"expires_at\": \"2026-11-22T13:00:00Z\"\n}\n"
	if r.code != 0 || r.out != want || r.errOut != "" {
		t.Errorf("json: code %d, stdout %q, stderr %q", r.code, r.out, r.errOut)
	}
	r = h.run(t, runOpts{}, "users", "reset-link", "u-2", "-o", "yaml")
	var link wire.ResetLink
	if err := yaml.Unmarshal([]byte(r.out), &link); err != nil || link.URL != "https://molt.example/reset?token=rt_u-2" || !link.ExpiresAt.Equal(now.Add(time.Hour)) {
		t.Errorf("yaml: %v\n%s", err, r.out)
	}
	r = h.run(t, runOpts{}, "users", "reset-link", "nobody@example.com")
	if r.code != 1 || r.out != "" || r.errOut != "error: make a reset link for user nobody@example.com: no user \"nobody@example.com\" (give an email or a user id)\n" {
		t.Errorf("unknown: code %d, stdout %q, stderr %q", r.code, r.out, r.errOut)
	}
}

func TestUsersGrant(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		code     int
		wantReq  string // "" for no request
		stderr   string // the first line of stderr
		usage    bool   // a usage error: the usage follows
		inStdout string
	}{
		{"grant", []string{"bob@example.com", "--plan", "pro", "--days", "30"}, 0,
			`POST /v1/users/bob@example.com/grant {"plan":"pro","days":30}`,
			"Granted plan pro to bob@example.com for 30 days: subscription s-9, active until 2026-12-22T12:00:00Z.", false, ""},
		{"json", []string{"u-4", "--plan=starter", "--days=3660", "-o", "json"}, 0,
			`POST /v1/users/u-4/grant {"plan":"starter","days":3660}`, "", false, `"source": "grant"`},
		{"a day", []string{"u-4", "--plan", " starter ", "--days", "1"}, 0,
			`POST /v1/users/u-4/grant {"plan":"starter","days":1}`, "Granted plan starter to dan@example.com for 1 days", false, ""},
		{"no plan", []string{"u-4", "--days", "30"}, 1, "", "error: --plan is required: give the id of one of pmd's plans", true, ""},
		{"blank plan", []string{"u-4", "--plan", "  ", "--days", "30"}, 1, "", "error: --plan is required: give the id of one of pmd's plans", true, ""},
		{"no days", []string{"u-4", "--plan", "pro"}, 1, "", "error: --days is required: how long the subscription lasts, 1 to 3660", true, ""},
		{"zero days", []string{"u-4", "--plan", "pro", "--days", "0"}, 1, "", "error: --days 0 is out of range: give 1 to 3660", true, ""},
		{"too many days", []string{"u-4", "--plan", "pro", "--days", "3661"}, 1, "", "error: --days 3661 is out of range: give 1 to 3660", true, ""},
		{"negative days", []string{"u-4", "--plan", "pro", "--days", "-5"}, 1, "", "error: --days -5 is out of range: give 1 to 3660", true, ""},
		{"days not a number", []string{"u-4", "--plan", "pro", "--days", "a month"}, 1, "",
			`error: invalid argument "a month" for "--days" flag: strconv.ParseInt: parsing "a month": invalid syntax`, true, ""},
		{"no user", []string{"--plan", "pro", "--days", "30"}, 1, "", "error: missing user: give their email or user id", true, ""},
		{"blank user", []string{"", "--plan", "pro", "--days", "30"}, 1, "", "error: the user is empty: give their email or user id", true, ""},
		{"two users", []string{"a@x", "b@x", "--plan", "pro", "--days", "30"}, 1, "", "error: too many arguments: b@x", true, ""},
		{"pmd: unknown plan (400)", []string{"u-4", "--plan", "gold", "--days", "30"}, 1,
			`POST /v1/users/u-4/grant {"plan":"gold","days":30}`, `error: grant plan gold to user u-4: no plan "gold"`, false, ""},
		{"pmd: live subscription (409)", []string{"alice@example.com", "--plan", "pro", "--days", "30"}, 1,
			`POST /v1/users/alice@example.com/grant {"plan":"pro","days":30}`, "error: grant plan pro to user alice@example.com: u-1 already has a live subscription", false, ""},
		{"pmd: unknown user (404)", []string{"zed@example.com", "--plan", "pro", "--days", "30"}, 1,
			`POST /v1/users/zed@example.com/grant {"plan":"pro","days":30}`, `error: grant plan pro to user zed@example.com: no user "zed@example.com" (give an email or a user id)`, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			r := h.run(t, runOpts{}, append([]string{"users", "grant"}, tt.args...)...)
			first, rest, _ := strings.Cut(r.errOut, "\n")
			if r.code != tt.code || first != tt.stderr && !(tt.stderr != "" && strings.HasPrefix(first, tt.stderr)) || tt.stderr == "" && r.errOut != "" {
				t.Errorf("code %d (want %d), stderr %q (want first line %q)", r.code, tt.code, r.errOut, tt.stderr)
			}
			if tt.code != 0 && !tt.usage && rest != "" {
				t.Errorf("an error from pmd is one line; stderr %q", r.errOut)
			}
			if tt.usage && !strings.HasPrefix(rest, "\nUsage:\n  pmctl users grant <email|id> --plan <plan> --days <n> [flags]\n") {
				t.Errorf("a usage error shows the usage; stderr %q", r.errOut)
			}
			if !strings.Contains(r.out, tt.inStdout) || tt.inStdout == "" && r.out != "" {
				t.Errorf("stdout %q, want %q in it", r.out, tt.inStdout)
			}
			if got := lastRequest(h); got != tt.wantReq {
				t.Errorf("request %q, want %q", got, tt.wantReq)
			}
		})
	}
	h := newHarness(t)
	r := h.run(t, runOpts{}, "users", "grant", "bob@example.com", "--plan", "pro", "--days", "30", "-o", "yaml")
	var got wire.Subscription
	if err := yaml.Unmarshal([]byte(r.out), &got); err != nil || got.ID != "s-9" || got.BotID != "b_9" || !got.PeriodEnd.Equal(now.Add(30*day)) {
		t.Errorf("yaml: %v\n%s", err, r.out)
	}
}

func TestSubsList(t *testing.T) {
	h := newHarness(t)
	checkOutput(t, h, []string{"subs", "list"},
		"ID   EMAIL                   PLAN     SOURCE  STATUS    PERIOD END  CANCEL         BOT\n"+
			"s-0  alice@example.com       starter  grant   canceled  10d ago     -              -\n"+
			"s-1  alice@example.com       pro      stripe  active    in 27d      -              b_1\n"+
			"s-2  carol+molt@example.com  starter  stripe  past_due  24h ago     at period end  b_3\n",
		"s-0\talice@example.com\tstarter\tgrant\tcanceled\t2026-11-12T12:00:00Z\t\t\n"+
			"s-1\talice@example.com\tpro\tstripe\tactive\t2026-12-19T12:00:00Z\t\tb_1\n"+
			"s-2\tcarol+molt@example.com\tstarter\tstripe\tpast_due\t2026-11-21T12:00:00Z\tat period end\tb_3\n",
		func(got []wire.Subscription) bool {
			return len(got) == 3 && got[2].CancelAtPeriodEnd && got[2].PastDueSince.Equal(now.Add(-day)) && got[0].EndedAt != nil
		})
	if got := lastRequest(h); got != "GET /v1/subscriptions" {
		t.Errorf("request %q", got)
	}

	r := h.run(t, runOpts{}, "subscriptions", "ls", "--user", "carol+molt@example.com")
	if r.code != 0 || r.out != "s-2\tcarol+molt@example.com\tstarter\tstripe\tpast_due\t2026-11-21T12:00:00Z\tat period end\tb_3\n" {
		t.Errorf("--user: code %d, stdout %q, stderr %q", r.code, r.out, r.errOut)
	}
	if got := lastRequest(h); got != "GET /v1/subscriptions?user=carol%2Bmolt%40example.com" {
		t.Errorf("request %q", got)
	}
	r = h.run(t, runOpts{tty: true}, "subs", "list", "--user", "u-4")
	if r.code != 0 || r.out != "" || r.errOut != "User u-4 has no subscriptions; `pmctl users grant u-4 --plan <plan> --days <n>` gives one without Stripe.\n" {
		t.Errorf("none: code %d, stdout %q, stderr %q", r.code, r.out, r.errOut)
	}
	r = h.run(t, runOpts{}, "subs", "list", "--user", "u-4", "-o", "json")
	if r.code != 0 || r.out != "[]\n" {
		t.Errorf("none, json: code %d, stdout %q, stderr %q", r.code, r.out, r.errOut)
	}
	r = h.run(t, runOpts{}, "subs", "list", "--user", "zed@example.com")
	if r.code != 1 || r.out != "" || r.errOut != "error: list subscriptions of user zed@example.com: no user \"zed@example.com\" (give an email or a user id)\n" {
		t.Errorf("unknown user: code %d, stdout %q, stderr %q", r.code, r.out, r.errOut)
	}
	before := len(h.srv.Requests())
	r = h.run(t, runOpts{}, "subs", "list", "--user", " ")
	if r.code != 1 || !strings.HasPrefix(r.errOut, "error: --user is empty: give a customer's email or user id, or leave it out for everyone\n\nUsage:") || len(h.srv.Requests()) != before {
		t.Errorf("blank --user: code %d, stderr %q", r.code, r.errOut)
	}
}

func TestSubsGet(t *testing.T) {
	h := newHarness(t)
	checkOutput(t, h, []string{"subs", "get", "s-2"},
		`id:                    s-2
user:                  carol+molt@example.com (u-3)
plan:                  starter
source:                stripe
status:                past_due
stripe subscription:   sub_9Z8x7Y
period start:          2026-10-22T12:00:00Z (31d ago)
period end:            2026-11-21T12:00:00Z (24h ago)
cancel at period end:  yes: it ends with the current period
past due since:        2026-11-21T12:00:00Z (24h ago)
bot:                   b_3
created:               2026-10-22T12:00:00Z (31d ago)
updated:               2026-11-21T12:00:00Z (24h ago)
`,
		"id:\ts-2\nuser:\tcarol+molt@example.com (u-3)\nplan:\tstarter\nsource:\tstripe\nstatus:\tpast_due\n"+
			"stripe subscription:\tsub_9Z8x7Y\nperiod start:\t2026-10-22T12:00:00Z\nperiod end:\t2026-11-21T12:00:00Z\n"+
			"cancel at period end:\tyes: it ends with the current period\npast due since:\t2026-11-21T12:00:00Z\nbot:\tb_3\n"+
			"created:\t2026-10-22T12:00:00Z\nupdated:\t2026-11-21T12:00:00Z\n",
		func(got wire.Subscription) bool {
			return got.ID == "s-2" && got.StripeSubscriptionID == "sub_9Z8x7Y" && got.PeriodEnd.Equal(now.Add(-day))
		})
	r := h.run(t, runOpts{tty: true}, "subs", "get", "s-0")
	if r.code != 0 || !strings.Contains(r.out, "ended:                 2026-11-12T12:00:00Z (10d ago)\n") ||
		!strings.Contains(r.out, "cancel at period end:  no\n") || strings.Contains(r.out, "bot:") {
		t.Errorf("an ended grant:\n%s%s", r.out, r.errOut)
	}
	r = h.run(t, runOpts{}, "subs", "get", "s-404")
	if r.code != 1 || r.out != "" || r.errOut != "error: get subscription s-404: no subscription \"s-404\"\n" {
		t.Errorf("unknown: code %d, stdout %q, stderr %q", r.code, r.out, r.errOut)
	}
	r = h.run(t, runOpts{}, "subs", "get")
	if r.code != 1 || !strings.HasPrefix(r.errOut, "error: missing subscription id (see pmctl subs list)\n\nUsage:\n  pmctl subs get <id> [flags]\n") {
		t.Errorf("no id: code %d, stderr %q", r.code, r.errOut)
	}
}

func TestCreditsGet(t *testing.T) {
	h := newHarness(t)
	checkOutput(t, h, []string{"credits", "get", "alice@example.com"},
		`user:      alice@example.com (u-1)
balance:   12.50
included:  7.50 left of this period's included credits, which lapse at its end

TIME                  KIND    AMOUNT  REASON                                        ACTOR        LAPSES
2026-11-19T12:00:00Z  grant   +10.00  included credits for 2026-11-19 – 2026-12-19  billing      in 27d
2026-11-22T10:00:00Z  debit   -2.50   model usage                                   usage        -
2026-11-22T11:00:00Z  adjust  +5.00   sorry for the outage                          admin:alice  -
`,
		"user:\talice@example.com (u-1)\nbalance:\t12.50\nincluded:\t7.50 left of this period's included credits, which lapse at its end\n\n"+
			"2026-11-19T12:00:00Z\tgrant\t+10.00\tincluded credits for 2026-11-19 – 2026-12-19\tbilling\t2026-12-19T12:00:00Z\n"+
			"2026-11-22T10:00:00Z\tdebit\t-2.50\tmodel usage\tusage\t\n"+
			"2026-11-22T11:00:00Z\tadjust\t+5.00\tsorry for the outage\tadmin:alice\t\n",
		func(got wire.Credits) bool {
			return got.Balance == "12.50" && got.Included == "7.50" && len(got.Entries) == 3 && got.Entries[1].Amount == "-2.50" &&
				got.Entries[0].ExpiresAt.Equal(now.Add(27*day))
		})
	if got := lastRequest(h); got != "GET /v1/users/alice@example.com/credits" {
		t.Errorf("request %q", got)
	}
	r := h.run(t, runOpts{tty: true}, "credits", "get", "u-4")
	want := "user:      dan@example.com (u-4)\nbalance:   0.00\nincluded:  0.00 left of this period's included credits, which lapse at its end\nledger:    no entries yet\n"
	if r.code != 0 || r.out != want {
		t.Errorf("no entries: code %d\n%s%s\nwant\n%s", r.code, r.out, r.errOut, want)
	}
	r = h.run(t, runOpts{}, "credits", "get", "u-4", "-o", "json")
	if r.code != 0 || !strings.Contains(r.out, `"entries": []`) {
		t.Errorf("no entries, json: %s", r.out)
	}
	r = h.run(t, runOpts{}, "credits", "get", "zed@example.com")
	if r.code != 1 || r.out != "" || r.errOut != "error: get credits of user zed@example.com: no user \"zed@example.com\" (give an email or a user id)\n" {
		t.Errorf("unknown: code %d, stdout %q, stderr %q", r.code, r.out, r.errOut)
	}
}

func TestCreditsAdjust(t *testing.T) {
	long := strings.Repeat("é", 250) + "x" // 501 bytes, 251 characters
	tests := []struct {
		name     string
		args     []string
		code     int
		wantReq  string // "" for no request
		stderr   string // the first line of stderr
		usage    bool
		inStdout string
	}{
		{"add", []string{"alice@example.com", "--amount", "5", "--reason", "sorry for the outage"}, 0,
			`POST /v1/users/alice@example.com/credits {"amount":"5","reason":"sorry for the outage"}`,
			"Adjusted the credits of alice@example.com by +5: balance 17.50, of which 7.50 included.", false, ""},
		{"take away", []string{"alice@example.com", "--amount", "-2.50", "--reason", "refunded in Stripe"}, 0,
			`POST /v1/users/alice@example.com/credits {"amount":"-2.50","reason":"refunded in Stripe"}`,
			"Adjusted the credits of alice@example.com by -2.50: balance 10.00, of which 7.50 included.", false, ""},
		{"take away, = form", []string{"u-1", "--amount=-.000001", "--reason", "rounding"}, 0,
			`POST /v1/users/u-1/credits {"amount":"-0.000001","reason":"rounding"}`,
			"Adjusted the credits of alice@example.com by -0.000001: balance 12.50, of which 7.50 included.", false, ""},
		{"plain form sent", []string{"u-4", "--amount", " +007.50 ", "--reason", "  welcome  "}, 0,
			`POST /v1/users/u-4/credits {"amount":"7.50","reason":"welcome"}`,
			"Adjusted the credits of dan@example.com by +7.50: balance 7.50, of which 0.00 included.", false, ""},
		{"json", []string{"u-4", "--amount", "1", "--reason", "test", "-o", "json"}, 0,
			`POST /v1/users/u-4/credits {"amount":"1","reason":"test"}`, "", false, `"balance": "1.00"`},
		{"a reason of 500 bytes", []string{"u-4", "--amount", "1", "--reason", long[:500]}, 0,
			`POST /v1/users/u-4/credits {"amount":"1","reason":"` + long[:500] + `"}`,
			"Adjusted the credits of dan@example.com by +1: balance 1.00, of which 0.00 included.", false, ""},
		{"no amount", []string{"u-1", "--reason", "x"}, 1, "", "error: --amount is required: a number of credits such as 5, or -2.50 to take some away", true, ""},
		{"zero", []string{"u-1", "--amount", "0.00", "--reason", "x"}, 1, "",
			`error: invalid argument "0.00" for "--amount" flag: zero changes nothing: give a positive amount to add credits or a negative one to take them away`, true, ""},
		{"seven decimals", []string{"u-1", "--amount", "1.0000001", "--reason", "x"}, 1, "",
			`error: invalid argument "1.0000001" for "--amount" flag: use at most 6 decimals (a millionth of a credit)`, true, ""},
		{"not a number", []string{"u-1", "--amount", "five", "--reason", "x"}, 1, "", `error: invalid argument "five" for "--amount" flag: want a number of credits such as 5 or -2.50`, true, ""},
		{"exponent", []string{"u-1", "--amount", "1e3", "--reason", "x"}, 1, "", `error: invalid argument "1e3" for "--amount" flag: want a number of credits such as 5 or -2.50`, true, ""},
		{"comma", []string{"u-1", "--amount", "2,50", "--reason", "x"}, 1, "", `error: invalid argument "2,50" for "--amount" flag: want a number of credits such as 5 or -2.50`, true, ""},
		{"empty", []string{"u-1", "--amount", "", "--reason", "x"}, 1, "", `error: invalid argument "" for "--amount" flag: want a number of credits such as 5 or -2.50`, true, ""},
		{"huge", []string{"u-1", "--amount", "1000000000000", "--reason", "x"}, 1, "", `error: invalid argument "1000000000000" for "--amount" flag: too large`, true, ""},
		{"no reason", []string{"u-1", "--amount", "5"}, 1, "", "error: --reason is required: say why the credits change (it is kept in the ledger)", true, ""},
		{"blank reason", []string{"u-1", "--amount", "5", "--reason", " \t "}, 1, "", "error: --reason is required: say why the credits change (it is kept in the ledger)", true, ""},
		{"reason too long", []string{"u-1", "--amount", "5", "--reason", long}, 1, "", "error: --reason is 501 bytes long: keep it to 500", true, ""},
		{"no user", []string{"--amount", "5", "--reason", "x"}, 1, "", "error: missing user: give their email or user id", true, ""},
		{"pmd: too much (400)", []string{"u-1", "--amount", "20000", "--reason", "typo"}, 1,
			`POST /v1/users/u-1/credits {"amount":"20000","reason":"typo"}`, "error: adjust credits of user u-1 by 20000: amount 20000: adjust by at most 10000.00 at a time", false, ""},
		{"pmd: unknown user (404)", []string{"zed@example.com", "--amount", "5", "--reason", "x"}, 1,
			`POST /v1/users/zed@example.com/credits {"amount":"5","reason":"x"}`,
			`error: adjust credits of user zed@example.com by 5: no user "zed@example.com" (give an email or a user id)`, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			r := h.run(t, runOpts{}, append([]string{"credits", "adjust"}, tt.args...)...)
			first, rest, _ := strings.Cut(r.errOut, "\n")
			if r.code != tt.code || first != tt.stderr || tt.stderr == "" && r.errOut != "" {
				t.Errorf("code %d (want %d), stderr %q (want first line %q)", r.code, tt.code, r.errOut, tt.stderr)
			}
			if tt.code != 0 && !tt.usage && rest != "" {
				t.Errorf("an error from pmd is one line; stderr %q", r.errOut)
			}
			if tt.usage && !strings.HasPrefix(rest, "\nUsage:\n  pmctl credits adjust <email|id> --amount <credits> --reason <text> [flags]\n") {
				t.Errorf("a usage error shows the usage; stderr %q", r.errOut)
			}
			if !strings.Contains(r.out, tt.inStdout) || tt.inStdout == "" && r.out != "" {
				t.Errorf("stdout %q, want %q in it", r.out, tt.inStdout)
			}
			if got := lastRequest(h); got != tt.wantReq {
				t.Errorf("request %q, want %q", got, tt.wantReq)
			}
		})
	}
	h := newHarness(t)
	r := h.run(t, runOpts{}, "credits", "adjust", "alice@example.com", "--amount", "-2.50", "--reason", "refund", "-o", "yaml")
	var got wire.Credits
	if err := yaml.Unmarshal([]byte(r.out), &got); err != nil || got.Balance != "10.00" || len(got.Entries) != 4 || got.Entries[3].Reason != "refund" {
		t.Errorf("yaml: %v\n%s", err, r.out)
	}
}

// hostileCustomersPMD answers like a pmd whose customers chose evil emails, assistant names
// and, through an operator's paste, ledger reasons.
func hostileCustomersPMD() http.Handler {
	email := "eve" + evil + "@example.com"
	user := wire.User{ID: "u-" + evil, Email: email, Plan: evil, Status: evil, BotID: evil, Assistant: evil, StripeCustomerID: evil, CreatedAt: now}
	sub := wire.Subscription{ID: "s-" + evil, UserID: "u-" + evil, Email: email, Plan: evil, Source: evil, Status: evil,
		StripeSubscriptionID: evil, PeriodEnd: ptr(now), CancelAtPeriodEnd: true, BotID: evil, CreatedAt: now, UpdatedAt: now}
	credits := wire.Credits{UserID: "u-" + evil, Email: email, Balance: evil, Included: evil, Entries: []wire.CreditEntry{
		{ID: 1, Kind: evil, Amount: evil, Reason: "line one\n" + evil, Actor: evil, CreatedAt: now},
	}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/users", func(w http.ResponseWriter, r *http.Request) { wire.WriteJSON(w, 200, []wire.User{user}) })
	mux.HandleFunc("GET /v1/users/{ref}", func(w http.ResponseWriter, r *http.Request) { wire.WriteJSON(w, 200, user) })
	mux.HandleFunc("POST /v1/users/{ref}/{verb}", func(w http.ResponseWriter, r *http.Request) {
		switch r.PathValue("verb") {
		case "disable", "enable":
			wire.WriteJSON(w, 200, user)
		case "reset-link":
			wire.WriteJSON(w, 200, wire.ResetLink{URL: "https://molt.example/reset?token=" + evil, ExpiresAt: now})
		case "grant":
			wire.WriteJSON(w, 201, sub)
		case "credits":
			wire.WriteJSON(w, 200, credits)
		}
	})
	mux.HandleFunc("GET /v1/users/{ref}/credits", func(w http.ResponseWriter, r *http.Request) { wire.WriteJSON(w, 200, credits) })
	mux.HandleFunc("GET /v1/subscriptions", func(w http.ResponseWriter, r *http.Request) { wire.WriteJSON(w, 200, []wire.Subscription{sub}) })
	mux.HandleFunc("GET /v1/subscriptions/{id}", func(w http.ResponseWriter, r *http.Request) { wire.WriteJSON(w, 200, sub) })
	return mux
}

func TestCustomersHostileTextIsEscaped(t *testing.T) {
	srv := apitest.NewServer(t, hostileCustomersPMD())
	h := &harness{srv: srv, config: apitest.WriteConfig(t, srv.Context)}
	tests := [][]string{
		{"users", "list"},
		{"users", "get", "eve"},
		{"users", "disable", "eve", "--yes"},
		{"users", "enable", "eve"},
		{"users", "reset-link", "eve"},
		{"users", "grant", "eve", "--plan", "pro", "--days", "1"},
		{"subs", "list"},
		{"subs", "get", "s-1"},
		{"credits", "get", "eve"},
		{"credits", "adjust", "eve", "--amount", "1", "--reason", "x"},
	}
	for _, args := range tests {
		for _, format := range []string{"", "json", "yaml"} {
			for _, tty := range []bool{true, false} {
				a := args
				if format != "" {
					a = append(append([]string{}, args...), "-o", format)
				}
				r := h.run(t, runOpts{tty: tty}, a...)
				if r.code != 0 {
					t.Errorf("%v (tty %v): code %d: %s", a, tty, r.code, r.errOut)
				}
				for name, out := range map[string]string{"stdout": r.out, "stderr": r.errOut} {
					if i := rawAt(out); i >= 0 {
						t.Errorf("%v (tty %v): %s holds %q raw at %d:\n%q", a, tty, name, out[i:i+1], i, out)
					}
				}
				switch format {
				case "":
					if out := r.out + r.errOut; !strings.Contains(out, `\x1b]0;pwned\x07`) || !strings.Contains(out, `\u202eexe.txt`) {
						t.Errorf("%v (tty %v): what was escaped is not shown:\n%s", a, tty, out)
					}
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

	t.Run("a reason stays on its line", func(t *testing.T) {
		r := h.run(t, runOpts{}, "credits", "get", "eve")
		lines := strings.Split(strings.TrimSuffix(r.out, "\n"), "\n")
		// A cell's line break is a space: the row stays one row.
		if len(lines) != 5 || !strings.Contains(lines[4], "\tline one "+`\x1b]0;pwned`) {
			t.Errorf("ledger:\n%s", r.out)
		}
	})
	t.Run("completion", func(t *testing.T) {
		for _, args := range [][]string{{"__complete", "users", "get", ""}, {"__complete", "subs", "get", ""}} {
			r := h.run(t, runOpts{}, args...)
			if i := rawAt(r.out); i >= 0 || r.code != 0 || !strings.Contains(r.out, `\x1b]0;pwned`) {
				t.Errorf("%v: code %d, stdout %q", args, r.code, r.out)
			}
		}
	})
	t.Run("the reset link alone on one line", func(t *testing.T) {
		r := h.run(t, runOpts{}, "users", "reset-link", "eve")
		if strings.Count(r.out, "\n") != 1 || !strings.HasPrefix(r.out, `https://molt.example/reset?token=\x1b]0;pwned\x07`) {
			t.Errorf("stdout %q", r.out)
		}
	})
	t.Run("json and yaml keep the values exactly", func(t *testing.T) {
		r := h.run(t, runOpts{}, "users", "get", "eve", "-o", "json")
		var u wire.User
		if err := json.Unmarshal([]byte(r.out), &u); err != nil || u.Email != "eve"+evil+"@example.com" {
			t.Fatalf("json email %q (%v)", u.Email, err)
		}
		r = h.run(t, runOpts{}, "credits", "get", "eve", "-o", "yaml")
		var c wire.Credits
		if err := yaml.Unmarshal([]byte(r.out), &c); err != nil || len(c.Entries) != 1 || c.Entries[0].Reason != "line one\n"+evil {
			t.Fatalf("yaml reason (%v): %+v", err, c)
		}
	})
}

func TestCustomersHelpGolden(t *testing.T) {
	tests := []struct {
		golden string
		args   []string
	}{
		{"users_help.golden", []string{"users", "--help"}},
		{"users_list_help.golden", []string{"users", "list", "--help"}},
		{"users_get_help.golden", []string{"users", "get", "--help"}},
		{"users_disable_help.golden", []string{"users", "disable", "--help"}},
		{"users_enable_help.golden", []string{"users", "enable", "--help"}},
		{"users_reset_link_help.golden", []string{"users", "reset-link", "--help"}},
		{"users_grant_help.golden", []string{"users", "grant", "--help"}},
		{"subs_help.golden", []string{"subs", "--help"}},
		{"subs_list_help.golden", []string{"subs", "list", "--help"}},
		{"subs_get_help.golden", []string{"subs", "get", "--help"}},
		{"credits_help.golden", []string{"credits", "--help"}},
		{"credits_get_help.golden", []string{"credits", "get", "--help"}},
		{"credits_adjust_help.golden", []string{"credits", "adjust", "--help"}},
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
	// Every command says what it does, in short and at length, with an example.
	for _, args := range [][]string{
		{"users", "list"}, {"users", "get"}, {"users", "disable"}, {"users", "enable"}, {"users", "reset-link"}, {"users", "grant"},
		{"subs", "list"}, {"subs", "get"}, {"credits", "get"}, {"credits", "adjust"},
	} {
		r := run(t, runOpts{}, append(args, "--help")...)
		desc, _, _ := strings.Cut(r.out, "\n\nUsage:")
		if r.code != 0 || len(desc) < 80 || !strings.Contains(r.out, "\nExamples:\n  pmctl "+strings.Join(args, " ")) {
			t.Errorf("%v: help is thin:\n%s", args, r.out)
		}
	}
}

func TestCustomersCompletion(t *testing.T) {
	h := newHarness(t)
	for _, args := range [][]string{
		{"__complete", "users", "get", ""},
		{"__complete", "credits", "adjust", ""},
		{"__complete", "subs", "list", "--user", ""},
	} {
		r := h.run(t, runOpts{}, args...)
		if r.code != 0 || !strings.Contains(r.out, "alice@example.com\tactive\n") || !strings.Contains(r.out, "dan@example.com\tnone\n") {
			t.Errorf("%v: code %d %q %q", args, r.code, r.out, r.errOut)
		}
	}
	r := h.run(t, runOpts{}, "__complete", "subs", "get", "")
	if r.code != 0 || !strings.Contains(r.out, "s-2\tcarol+molt@example.com starter past_due\n") {
		t.Errorf("subs get: code %d %q %q", r.code, r.out, r.errOut)
	}
}

// Every customer command fails with one line naming what it was doing when pmd cannot
// serve it, and exits 1; and whatever the customer's ref holds, it stays one path segment
// or one query value.
func TestCustomersPmdErrors(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		wire.WriteError(w, wire.Errorf(wire.CodeUnavailable, "store unavailable: database is locked"))
	})
	srv := apitest.NewServer(t, mux)
	h := &harness{srv: srv, config: apitest.WriteConfig(t, srv.Context)}
	const ref = "a/b c?&@x"
	for _, tc := range []struct {
		args []string
		what string
		req  string
	}{
		{[]string{"users", "list"}, "list users", "GET /v1/users"},
		{[]string{"users", "get", ref}, "get user " + ref, "GET /v1/users/a%2Fb%20c%3F&@x"},
		{[]string{"users", "disable", ref, "-y"}, "disable user " + ref, "POST /v1/users/a%2Fb%20c%3F&@x/disable"},
		{[]string{"users", "enable", ref}, "enable user " + ref, "POST /v1/users/a%2Fb%20c%3F&@x/enable"},
		{[]string{"users", "reset-link", ref}, "make a reset link for user " + ref, "POST /v1/users/a%2Fb%20c%3F&@x/reset-link"},
		{[]string{"users", "grant", ref, "--plan", "pro", "--days", "1"}, "grant plan pro to user " + ref,
			`POST /v1/users/a%2Fb%20c%3F&@x/grant {"plan":"pro","days":1}`},
		{[]string{"subs", "list"}, "list subscriptions", "GET /v1/subscriptions"},
		{[]string{"subs", "list", "--user", ref}, "list subscriptions of user " + ref, "GET /v1/subscriptions?user=a%2Fb+c%3F%26%40x"},
		{[]string{"subs", "get", "s/1"}, "get subscription s/1", "GET /v1/subscriptions/s%2F1"},
		{[]string{"credits", "get", ref}, "get credits of user " + ref, "GET /v1/users/a%2Fb%20c%3F&@x/credits"},
		{[]string{"credits", "adjust", ref, "--amount", "1", "--reason", "thing"}, "adjust credits of user " + ref + " by 1",
			`POST /v1/users/a%2Fb%20c%3F&@x/credits {"amount":"1","reason":"thing"}`},
	} {
		r := h.run(t, runOpts{}, tc.args...)
		want := fmt.Sprintf("error: %s: store unavailable: database is locked (unavailable)\n", tc.what)
		if r.code != 1 || r.out != "" || r.errOut != want {
			t.Errorf("%v: code %d, stdout %q, stderr %q; want %q", tc.args, r.code, r.out, r.errOut, want)
		}
		if got := lastRequest(h); got != tc.req {
			t.Errorf("%v: request %q, want %q", tc.args, got, tc.req)
		}
	}
}
