package pmctl_test

import (
	"encoding/json"
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

var fixtureTop = wire.UsageReport{
	Since: now.Add(-7 * day), Until: now,
	Rows: []wire.UsageRow{
		{Owner: "customer:u-1", Email: "alice@example.com", BotID: "b_1", BotName: "molly", Provider: "anthropic", Model: "claude-sonnet-4-6",
			Calls: 120, Errors: 2, Tokens: wire.Tokens{Input: 340000, Output: 52000, CacheRead: 900000, CacheWrite: 41000}, Cost: "2.3145", Debited: "2.3145"},
		{Owner: "operator:ops", BotID: "b_7", BotName: "canary", Provider: "openai", Model: "gpt-5-mini",
			Calls: 40, Estimated: 3, Tokens: wire.Tokens{Input: 80000, Output: 9000}, Cost: "0.0380", Debited: "0.0000"},
		{Owner: "customer:u-3", BotID: "b_3", BotName: "jarvis", Provider: "anthropic", Model: "claude-haiku-4-5",
			Calls: 9, Errors: 9, Cost: "0.0000", Debited: "0.0000"},
	},
}

var fixtureBotUsage = wire.UsageReport{
	Since: now.Add(-30 * day), Until: now,
	Rows: []wire.UsageRow{
		{Day: "2026-11-21", Owner: "customer:u-1", Email: "alice@example.com", BotID: "b_1", BotName: "molly", Provider: "anthropic", Model: "claude-sonnet-4-6",
			Calls: 70, Errors: 1, Tokens: wire.Tokens{Input: 200000, Output: 30000, CacheRead: 500000, CacheWrite: 21000}, Cost: "1.3", Debited: "1.3"},
		{Day: "2026-11-22", Owner: "customer:u-1", Email: "alice@example.com", BotID: "b_1", BotName: "molly", Provider: "anthropic", Model: "claude-sonnet-4-6",
			Calls: 50, Errors: 1, Tokens: wire.Tokens{Input: 140000, Output: 22000, CacheRead: 400000, CacheWrite: 20000}, Cost: "1.0145", Debited: "1.0145"},
	},
}

// usagePMD answers the usage endpoints like pmd: bad periods and limits are 400, unknown
// bots 404, bot "quiet" has no usage, and "unmetered" is a pmd without a usage service.
func usagePMD() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/usage/top", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("period") == "1h" {
			wire.WriteJSON(w, 200, wire.UsageReport{Since: now.Add(-time.Hour), Until: now, Rows: []wire.UsageRow{}})
			return
		}
		wire.WriteJSON(w, 200, fixtureTop)
	})
	mux.HandleFunc("GET /v1/usage/bots/{ref}", func(w http.ResponseWriter, r *http.Request) {
		switch r.PathValue("ref") {
		case "molly", "b_1":
			wire.WriteJSON(w, 200, fixtureBotUsage)
		case "quiet":
			wire.WriteJSON(w, 200, wire.UsageReport{Since: now.Add(-30 * day), Until: now, Rows: []wire.UsageRow{}})
		case "unmetered":
			wire.WriteError(w, wire.Errorf(wire.CodeUnavailable, "usage reports are not available: this pmd does not meter model calls"))
		default:
			wire.WriteError(w, wire.Errorf(wire.CodeNotFound, "no bot %q", r.PathValue("ref")))
		}
	})
	return mux
}

func newUsageHarness(t *testing.T) *harness {
	t.Helper()
	srv := apitest.NewServer(t, usagePMD())
	return &harness{srv: srv, config: apitest.WriteConfig(t, srv.Context)}
}

func TestUsageTop(t *testing.T) {
	h := newUsageHarness(t)
	tests := []struct {
		name      string
		o         runOpts
		args      []string
		wantQuery string
		want      string
		wantErr   string
	}{
		{"terminal", runOpts{tty: true}, nil, "limit=20&period=7d",
			"OWNER              BOT     MODEL                        CALLS         ERRORS  INPUT   OUTPUT  CACHE R/W     COST    DEBITED\n" +
				"alice@example.com  molly   anthropic/claude-sonnet-4-6  120           2       340000  52000   900000/41000  2.3145  2.3145\n" +
				"operator:ops       canary  openai/gpt-5-mini            40 (3 est.)   0       80000   9000    0/0           0.0380  0.0000\n" +
				"customer:u-3       jarvis  anthropic/claude-haiku-4-5   9             9       0       0       0/0           0.0000  0.0000\n" +
				"total                                                   169 (3 est.)  11      420000  61000   900000/41000  2.3525  2.3145\n", ""},
		{"piped with flags", runOpts{}, []string{"--period", "30d", "--limit", "3"}, "limit=3&period=30d",
			"alice@example.com\tmolly\tanthropic/claude-sonnet-4-6\t120\t2\t340000\t52000\t900000/41000\t2.3145\t2.3145\n" +
				"operator:ops\tcanary\topenai/gpt-5-mini\t40\t0\t80000\t9000\t0/0\t0.0380\t0.0000\n" +
				"customer:u-3\tjarvis\tanthropic/claude-haiku-4-5\t9\t9\t0\t0\t0/0\t0.0000\t0.0000\n", ""},
		{"nothing yet", runOpts{tty: true}, []string{"--period=1h"}, "limit=20&period=1h", "", "No model calls since 2026-11-22 11:00:00 UTC.\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.run(t, tt.o, append([]string{"usage", "top"}, tt.args...)...)
			if r.code != 0 || r.out != tt.want || r.errOut != tt.wantErr {
				t.Fatalf("code %d\nstdout:\n%s\nstderr:\n%s\nwant stdout:\n%s", r.code, r.out, r.errOut, tt.want)
			}
			reqs := h.srv.Requests()
			if last := reqs[len(reqs)-1]; last.Method != "GET" || last.Path != "/v1/usage/top" || last.Query != tt.wantQuery {
				t.Errorf("request %+v, want query %q", last, tt.wantQuery)
			}
		})
	}
	t.Run("json", func(t *testing.T) {
		r := h.run(t, runOpts{tty: true}, "usage", "top", "-o", "json")
		var got wire.UsageReport
		if err := json.Unmarshal([]byte(r.out), &got); err != nil || r.code != 0 || len(got.Rows) != 3 {
			t.Fatalf("code %d, %v:\n%s%s", r.code, err, r.out, r.errOut)
		}
		if got.Rows[0].Tokens.CacheWrite != 41000 || got.Rows[1].Estimated != 3 || !got.Since.Equal(now.Add(-7*day)) {
			t.Errorf("json = %s", r.out)
		}
	})
	t.Run("yaml", func(t *testing.T) {
		r := h.run(t, runOpts{}, "usage", "top", "-o", "yaml")
		var got wire.UsageReport
		if err := yaml.Unmarshal([]byte(r.out), &got); err != nil || r.code != 0 || len(got.Rows) != 3 || got.Rows[0].Email != "alice@example.com" {
			t.Fatalf("code %d, %v:\n%s", r.code, err, r.out)
		}
		if !strings.Contains(r.out, "cache_read: 900000") || !strings.Contains(r.out, `cost: "2.3145"`) {
			t.Errorf("yaml:\n%s", r.out)
		}
	})
}

func TestUsageGet(t *testing.T) {
	h := newUsageHarness(t)
	tests := []struct {
		name      string
		o         runOpts
		args      []string
		code      int
		wantPath  string
		wantQuery string
		want      string
		wantErr   string
	}{
		{"terminal", runOpts{tty: true}, []string{"molly"}, 0, "/v1/usage/bots/molly", "period=30d",
			"DAY         MODEL                        CALLS  ERRORS  INPUT   OUTPUT  CACHE R/W     COST    DEBITED\n" +
				"2026-11-21  anthropic/claude-sonnet-4-6  70     1       200000  30000   500000/21000  1.3     1.3\n" +
				"2026-11-22  anthropic/claude-sonnet-4-6  50     1       140000  22000   400000/20000  1.0145  1.0145\n" +
				"total                                    120    2       340000  52000   900000/41000  2.3145  2.3145\n",
			"Bot molly (b_1) of alice@example.com, since 2026-10-23 12:00:00 UTC:\n"},
		{"piped by id", runOpts{}, []string{"b_1", "--period", "7d"}, 0, "/v1/usage/bots/b_1", "period=7d",
			"2026-11-21\tanthropic/claude-sonnet-4-6\t70\t1\t200000\t30000\t500000/21000\t1.3\t1.3\n" +
				"2026-11-22\tanthropic/claude-sonnet-4-6\t50\t1\t140000\t22000\t400000/20000\t1.0145\t1.0145\n", ""},
		{"no calls", runOpts{tty: true}, []string{"quiet"}, 0, "/v1/usage/bots/quiet", "period=30d", "",
			"Bot quiet made no model calls since 2026-10-23 12:00:00 UTC.\n"},
		{"escaped ref", runOpts{}, []string{"a b/c", "--period", "12h"}, 1, "/v1/usage/bots/a%20b%2Fc", "period=12h", "",
			"error: usage of bot a b/c: no bot \"a b/c\"\n"},
		{"not metered", runOpts{}, []string{"unmetered"}, 1, "/v1/usage/bots/unmetered", "period=30d", "",
			"error: usage of bot unmetered: usage reports are not available: this pmd does not meter model calls (unavailable)\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.run(t, tt.o, append([]string{"usage", "get"}, tt.args...)...)
			if r.code != tt.code || r.out != tt.want || r.errOut != tt.wantErr {
				t.Fatalf("code %d (want %d)\nstdout:\n%s\nstderr:\n%q\nwant stdout:\n%s\nwant stderr:\n%q", r.code, tt.code, r.out, r.errOut, tt.want, tt.wantErr)
			}
			reqs := h.srv.Requests()
			if last := reqs[len(reqs)-1]; last.Method != "GET" || last.Path != tt.wantPath || last.Query != tt.wantQuery {
				t.Errorf("request %+v", last)
			}
		})
	}
	t.Run("json", func(t *testing.T) {
		r := h.run(t, runOpts{tty: true}, "usage", "get", "molly", "-o", "json")
		var got wire.UsageReport
		if err := json.Unmarshal([]byte(r.out), &got); err != nil || r.code != 0 || len(got.Rows) != 2 || got.Rows[1].Day != "2026-11-22" || r.errOut != "" {
			t.Fatalf("code %d, %v:\n%s%s", r.code, err, r.out, r.errOut)
		}
	})
}

func TestUsageBadFlags(t *testing.T) {
	h := newUsageHarness(t)
	tests := []struct {
		args    []string
		wantErr string
	}{
		{[]string{"top", "--period", "2w"}, `--period "2w": give a number of days or hours such as 7d or 12h, from 1h to 366d`},
		{[]string{"top", "--period", "367d"}, `--period "367d" is out of range`},
		{[]string{"top", "--period", "0h"}, `--period "0h" is out of range`},
		{[]string{"top", "--period", ""}, `--period "": give`},
		{[]string{"top", "--limit", "0"}, "--limit 0: give a number of rows from 1 to 1000"},
		{[]string{"top", "--limit", "1001"}, "--limit 1001: give a number of rows from 1 to 1000"},
		{[]string{"top", "extra"}, `unexpected argument "extra"`},
		{[]string{"get"}, "missing bot name or id"},
		{[]string{"get", "a", "b"}, "too many arguments: b"},
		{[]string{"get", ""}, "missing bot name or id (the argument is empty)"},
		{[]string{"get", "molly", "--period", "30"}, `--period "30": give`},
		{[]string{"get", "molly", "-o", "xml"}, "must be one of table, json, yaml"},
		{[]string{"bogus"}, `unknown command "bogus"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			r := h.run(t, runOpts{}, append([]string{"usage"}, tt.args...)...)
			if r.code != 1 || !strings.Contains(r.errOut, tt.wantErr) || r.out != "" {
				t.Errorf("code %d, stdout %q, stderr %q; want 1 and %q", r.code, r.out, r.errOut, tt.wantErr)
			}
		})
	}
	if n := len(h.srv.Requests()); n != 0 {
		t.Errorf("%d requests were sent for bad flags", n)
	}
}

func TestUsageHelpGolden(t *testing.T) {
	tests := []struct {
		golden string
		args   []string
	}{
		{"usage_help.golden", []string{"usage", "--help"}},
		{"usage_top_help.golden", []string{"usage", "top", "--help"}},
		{"usage_get_help.golden", []string{"usage", "get", "--help"}},
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
	for _, args := range [][]string{{"usage", "top"}, {"usage", "get"}} {
		r := run(t, runOpts{}, append(args, "--help")...)
		desc, _, _ := strings.Cut(r.out, "\n\nUsage:")
		if r.code != 0 || len(desc) < 80 || !strings.Contains(r.out, "\nExamples:\n  pmctl "+strings.Join(args, " ")) {
			t.Errorf("%v: help is thin:\n%s", args, r.out)
		}
	}
}
