package adminapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/bots"
	"github.com/pocketmolt/pocketmolt/internal/httpapi"
	"github.com/pocketmolt/pocketmolt/internal/store"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// fakeUsage records what it was asked and answers with rep, or err.
type fakeUsage struct {
	mu    sync.Mutex
	calls []usageCall
	rep   wire.UsageReport
	err   error
}

type usageCall struct {
	method, botID string
	since, until  time.Time
	limit         int
}

func (f *fakeUsage) Top(_ context.Context, since, until time.Time, limit int) (wire.UsageReport, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, usageCall{method: "top", since: since, until: until, limit: limit})
	return f.rep, f.err
}

func (f *fakeUsage) Bot(_ context.Context, botID string, since, until time.Time) (wire.UsageReport, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, usageCall{method: "bot", botID: botID, since: since, until: until})
	return f.rep, f.err
}

func (f *fakeUsage) last() (usageCall, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.calls) == 0 {
		return usageCall{}, false
	}
	return f.calls[len(f.calls)-1], true
}

var _ UsageReports = (*fakeUsage)(nil)

// noFleet is a fleet with no hosts; the test's bots wait for one.
type noFleet struct{}

func (noFleet) Status(store.Host) string            { return wire.HostOffline }
func (noFleet) Reachable(string) bool               { return false }
func (noFleet) Client(string) (*http.Client, error) { return nil, errors.New("no hosts") }

// usageServer serves the usage routes of an API on a real store, as the admin "admin:op",
// without the mutual TLS the real listener puts in front.
func usageServer(t *testing.T, u UsageReports) (*httptest.Server, *store.Store) {
	t.Helper()
	st, err := store.Open(t.Context(), "sqlite:"+filepath.Join(t.TempDir(), "pm.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	now := time.Now().UTC()
	if err := st.CreateBot(t.Context(), store.Bot{ID: "b_1", Name: "alice", Owner: store.Owner{Kind: store.OwnerOperator, ID: "op"},
		Spec: []byte(`{"model":"anthropic/claude-sonnet-4-6"}`), Desired: store.DesiredRunning, CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	a := &API{Store: st, Log: log, Bots: bots.New(st, noFleet{}, nil, bots.Config{}, log)}
	if u != nil {
		a.Usage = u
	}
	mux := http.NewServeMux()
	a.usageRoutes(func(pattern string, h httpapi.HandlerFunc) {
		mux.Handle(pattern, httpapi.Handle(log, func(w http.ResponseWriter, r *http.Request) error {
			return h(w, r.WithContext(context.WithValue(r.Context(), actorKey{}, "admin:op")))
		}))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, st
}

func get(t *testing.T, url string) (int, wire.UsageReport, wire.Error) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var rep wire.UsageReport
	var e wire.Error
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, &rep); err != nil {
			t.Fatalf("body %s: %v", body, err)
		}
		if !strings.Contains(string(body), `"rows":[`) {
			t.Errorf("rows are not a list: %s", body)
		}
	} else if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("error body %s: %v", body, err)
	}
	return resp.StatusCode, rep, e
}

func TestUsageRoutes(t *testing.T) {
	day := 24 * time.Hour
	fake := &fakeUsage{rep: wire.UsageReport{Rows: []wire.UsageRow{{Owner: "operator:op", BotID: "b_1", BotName: "alice",
		Provider: "anthropic", Model: "claude-sonnet-4-6", Calls: 3, Tokens: wire.Tokens{Input: 1200, Output: 300}, Cost: "0.0081", Debited: "0.0000"}}}}
	srv, st := usageServer(t, fake)

	tests := []struct {
		name   string
		path   string
		status int
		want   usageCall // since is checked as until-since
		period time.Duration
		msg    string // in the error message
	}{
		{"top defaults", "/v1/usage/top", 200, usageCall{method: "top", limit: 20}, 7 * day, ""},
		{"top 12h limit 5", "/v1/usage/top?period=12h&limit=5", 200, usageCall{method: "top", limit: 5}, 12 * time.Hour, ""},
		{"top 366d limit 1000", "/v1/usage/top?period=366d&limit=1000", 200, usageCall{method: "top", limit: 1000}, 366 * day, ""},
		{"top 1h", "/v1/usage/top?period=1h", 200, usageCall{method: "top", limit: 20}, time.Hour, ""},
		{"bot by name", "/v1/usage/bots/alice", 200, usageCall{method: "bot", botID: "b_1"}, 30 * day, ""},
		{"bot by id 1d", "/v1/usage/bots/b_1?period=1d", 200, usageCall{method: "bot", botID: "b_1"}, day, ""},
		{"period 0h", "/v1/usage/top?period=0h", 400, usageCall{}, 0, "from 1h to 366d"},
		{"period 367d", "/v1/usage/top?period=367d", 400, usageCall{}, 0, "out of range"},
		{"period 8785h", "/v1/usage/top?period=8785h", 400, usageCall{}, 0, "out of range"},
		{"period weeks", "/v1/usage/top?period=2w", 400, usageCall{}, 0, "such as 7d or 12h"},
		{"period negative", "/v1/usage/top?period=-1d", 400, usageCall{}, 0, "such as 7d or 12h"},
		{"period empty", "/v1/usage/top?period=", 400, usageCall{}, 0, "such as 7d or 12h"},
		{"period plus", "/v1/usage/top?period=%2B7d", 400, usageCall{}, 0, "such as 7d or 12h"},
		{"period huge", "/v1/usage/top?period=99999999999d", 400, usageCall{}, 0, "such as 7d or 12h"},
		{"period Go duration", "/v1/usage/top?period=1h30m", 400, usageCall{}, 0, "such as 7d or 12h"},
		{"limit 0", "/v1/usage/top?limit=0", 400, usageCall{}, 0, "from 1 to 1000"},
		{"limit 1001", "/v1/usage/top?limit=1001", 400, usageCall{}, 0, "from 1 to 1000"},
		{"limit word", "/v1/usage/top?limit=all", 400, usageCall{}, 0, "from 1 to 1000"},
		{"bot period bad", "/v1/usage/bots/alice?period=30", 400, usageCall{}, 0, "such as 7d or 12h"},
		{"bot unknown", "/v1/usage/bots/nobody", 404, usageCall{}, 0, `no bot "nobody"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(fake.calls)
			start := time.Now().UTC()
			status, rep, e := get(t, srv.URL+tt.path)
			if status != tt.status {
				t.Fatalf("status %d, want %d (%+v)", status, tt.status, e)
			}
			if tt.status != 200 {
				if !strings.Contains(e.Message, tt.msg) {
					t.Errorf("message %q, want it to say %q", e.Message, tt.msg)
				}
				if len(fake.calls) != before {
					t.Errorf("the usage service was asked, for a request refused")
				}
				return
			}
			got, _ := fake.last()
			if got.method != tt.want.method || got.botID != tt.want.botID || got.limit != tt.want.limit {
				t.Errorf("asked %+v, want %+v", got, tt.want)
			}
			if got.until.Sub(got.since) != tt.period || got.until.Before(start) || got.until.After(time.Now()) || got.until.Location() != time.UTC {
				t.Errorf("asked for %s – %s, want %s up to now", got.since, got.until, tt.period)
			}
			if len(rep.Rows) != 1 || rep.Rows[0].Tokens.Input != 1200 || rep.Rows[0].Cost != "0.0081" {
				t.Errorf("report %+v", rep)
			}
		})
	}

	// Each read is in the audit log under the operator's name; refusals are not.
	es, err := st.ListAudit(t.Context(), 100)
	if err != nil {
		t.Fatal(err)
	}
	var tops, botReads int
	for _, e := range es {
		if e.Actor != "admin:op" {
			t.Errorf("audit actor %q", e.Actor)
		}
		switch e.Action {
		case "usage.top":
			tops++
		case "usage.bot":
			botReads++
			if e.Target != "b_1" || !strings.HasPrefix(e.Detail, "alice, period ") {
				t.Errorf("audit entry %+v", e)
			}
		}
	}
	if tops != 4 || botReads != 2 {
		t.Errorf("audited %d top and %d bot reads, want 4 and 2: %+v", tops, botReads, es)
	}
}

func TestUsageErrors(t *testing.T) {
	t.Run("not configured", func(t *testing.T) {
		srv, _ := usageServer(t, nil)
		for _, path := range []string{"/v1/usage/top", "/v1/usage/bots/alice"} {
			status, _, e := get(t, srv.URL+path)
			if status != http.StatusServiceUnavailable || e.Code != wire.CodeUnavailable || !strings.Contains(e.Message, "not available") {
				t.Errorf("%s: %d %+v", path, status, e)
			}
		}
	})
	t.Run("service fails", func(t *testing.T) {
		srv, st := usageServer(t, &fakeUsage{err: errors.New("query usage: connection refused to db.internal:5432")})
		status, _, e := get(t, srv.URL+"/v1/usage/top")
		if status != http.StatusInternalServerError || strings.Contains(e.Message, "db.internal") {
			t.Errorf("%d %+v: want 500 without the internal error", status, e)
		}
		if es, _ := st.ListAudit(t.Context(), 10); len(es) != 0 {
			t.Errorf("a failed read is audited: %+v", es)
		}
	})
	t.Run("service refuses", func(t *testing.T) {
		srv, _ := usageServer(t, &fakeUsage{err: wire.Errorf(wire.CodeUnavailable, "the database is out of reach")})
		status, _, e := get(t, srv.URL+"/v1/usage/bots/alice")
		if status != http.StatusServiceUnavailable || e.Message != "the database is out of reach" {
			t.Errorf("%d %+v", status, e)
		}
	})
	t.Run("no rows", func(t *testing.T) {
		srv, _ := usageServer(t, &fakeUsage{})
		if status, rep, e := get(t, srv.URL+"/v1/usage/top"); status != 200 || rep.Rows == nil {
			t.Errorf("%d %+v %+v", status, rep, e)
		}
	})
}

func TestParsePeriod(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"1h", time.Hour, true}, {"24h", 24 * time.Hour, true}, {"7d", 7 * 24 * time.Hour, true},
		{"366d", 366 * 24 * time.Hour, true}, {"8784h", 366 * 24 * time.Hour, true}, {"007d", 7 * 24 * time.Hour, true},
		{"0d", 0, false}, {"367d", 0, false}, {"8785h", 0, false}, {"d", 0, false}, {"7", 0, false},
		{"7D", 0, false}, {" 7d", 0, false}, {"7d ", 0, false}, {"1.5d", 0, false}, {"1m", 0, false},
		{"١d", 0, false}, {"", 0, false}, {"99999999d", 0, false},
	}
	for _, tt := range tests {
		got, err := ParsePeriod(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParsePeriod(%q) = %v, %v; want %v, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
		if back, err2 := ParsePeriod(periodLabel(got)); err == nil && (err2 != nil || back != got) {
			t.Errorf("periodLabel(%v) = %q, which reads back as %v, %v", got, periodLabel(got), back, err2)
		}
	}
}

func FuzzParsePeriod(f *testing.F) {
	for _, s := range []string{"7d", "12h", "366d", "0h", "367d", "-1d", "1h30m", "", "9999999d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParsePeriod(s)
		if err != nil {
			if !strings.Contains(err.Error(), "7d or 12h") {
				t.Errorf("error %q does not say what to give", err)
			}
			return
		}
		if d < MinUsagePeriod || d > MaxUsagePeriod || d%time.Hour != 0 {
			t.Errorf("ParsePeriod(%q) = %v, out of bounds", s, d)
		}
		if back, err := ParsePeriod(periodLabel(d)); err != nil || back != d {
			t.Errorf("ParsePeriod(periodLabel(%v)) = %v, %v", d, back, err)
		}
	})
}
