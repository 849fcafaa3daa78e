package usage_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pocketmolt/pocketmolt/internal/credits"
	"github.com/pocketmolt/pocketmolt/internal/metrics"
	"github.com/pocketmolt/pocketmolt/internal/store"
	"github.com/pocketmolt/pocketmolt/internal/usage"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

func TestAllowance(t *testing.T) {
	for name, url := range backends() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, url(t))
			ctx := t.Context()
			// u2 has no grant but a subscription whose period ends on 3 April.
			pe, ps := time.Date(2027, 4, 3, 9, 0, 0, 0, time.UTC), now.AddDate(0, 0, -10)
			if err := f.st.PutSubscription(ctx, store.Subscription{ID: "s2", UserID: "u2", PlanID: "p", Source: store.SourceTest,
				Status: "active", PeriodStart: &ps, PeriodEnd: &pe, CreatedAt: now, UpdatedAt: now}); err != nil {
				t.Fatal(err)
			}
			if err := f.ledger.Adjust(ctx, "ops", "u2", 2*credits.Micro, "goodwill"); err != nil {
				t.Fatal(err)
			}
			if _, err := f.svc.Commit(ctx, "h1", wire.UsageBatch{Records: []wire.UsageRecord{rec("c1", "claude-opus-4-1", wire.Tokens{Output: 1000})}}); err != nil {
				t.Fatal(err)
			}
			for _, tc := range []struct {
				user      string
				remaining int64
				message   string
			}{
				{"u1", 10_000_000 - 75_000, "Your included credits for this month are used up — add your own key or wait until 1 March"},
				{"u2", 2_000_000, "Your included credits for this month are used up — add your own key or wait until 3 April"},
				{"u3", 0, "Your included credits for this month are used up — add your own key"},
			} {
				a, err := f.svc.Allowance(ctx, tc.user)
				if err != nil || a.Remaining != tc.remaining || a.Message != tc.message || !a.AsOf.Equal(now) {
					t.Errorf("Allowance(%s) = %+v, %v; want %d, %q", tc.user, a, err, tc.remaining, tc.message)
				}
			}
		})
	}
}

func TestReports(t *testing.T) {
	for name, url := range backends() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, url(t))
			ctx := t.Context()
			yesterday := rec("c1", "claude-sonnet-4-6", wire.Tokens{Input: 1_000_000})
			yesterday.Time = now.Add(-24 * time.Hour)
			errored := rec("c1", "claude-sonnet-4-6", wire.Tokens{Input: 10})
			errored.Outcome, errored.Status, errored.Estimated = wire.OutcomeError, 529, true
			b := wire.UsageBatch{Records: []wire.UsageRecord{
				yesterday, errored,
				rec("c1", "claude-haiku-4-5", wire.Tokens{Output: 200_000}),
				rec("op", "gpt-5-mini", wire.Tokens{Input: 4_000_000}),
			}}
			if _, err := f.svc.Commit(ctx, "h1", b); err != nil {
				t.Fatal(err)
			}
			top, err := f.svc.Top(ctx, now.Add(-48*time.Hour), now, 2)
			if err != nil {
				t.Fatal(err)
			}
			want := []wire.UsageRow{
				{Owner: "customer:u1", Email: "u1@example.com", BotID: "c1", BotName: "bot-c1", Provider: "anthropic", Model: "claude-sonnet-4-6",
					Calls: 2, Errors: 1, Estimated: 1, Tokens: wire.Tokens{Input: 1_000_010}, Cost: "3.00003", Debited: "3.00003"},
				{Owner: "customer:u1", Email: "u1@example.com", BotID: "c1", BotName: "bot-c1", Provider: "anthropic", Model: "claude-haiku-4-5",
					Calls: 1, Tokens: wire.Tokens{Output: 200_000}, Cost: "1.00", Debited: "1.00"},
			}
			if got, _ := json.Marshal(top.Rows); string(got) != string(must(json.Marshal(want))) {
				t.Errorf("top 2:\n got %s\nwant %s", got, must(json.Marshal(want)))
			}
			all, err := f.svc.Top(ctx, now.Add(-48*time.Hour), now, 0)
			if err != nil || len(all.Rows) != 3 || all.Rows[2].Owner != "operator:admin" || all.Rows[2].Debited != "0.00" || all.Rows[2].Cost != "1.00" {
				t.Errorf("top: %+v, %v", all, err)
			}
			days, err := f.svc.Bot(ctx, "c1", now.Add(-48*time.Hour), now)
			if err != nil || len(days.Rows) != 3 || days.Rows[0].Day != "2027-02-13" || days.Rows[0].Calls != 1 || days.Rows[1].Day != "2027-02-14" {
				t.Errorf("by day: %+v, %v", days, err)
			}
			cu, err := f.svc.Customer(ctx, "u1", now.AddDate(0, 0, -14))
			if err != nil {
				t.Fatal(err)
			}
			wantCU := usage.CustomerUsage{
				Today:       usage.Totals{Calls: 2, Tokens: wire.Tokens{Input: 10, Output: 200_000}, Cost: 1_000_030, Debited: 1_000_030},
				Period:      usage.Totals{Calls: 3, Tokens: wire.Tokens{Input: 1_000_010, Output: 200_000}, Cost: 4_000_030, Debited: 4_000_030},
				PeriodStart: now.AddDate(0, 0, -14),
			}
			if cu != wantCU {
				t.Errorf("Customer = %+v\nwant %+v", cu, wantCU)
			}
		})
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestHandle(t *testing.T) {
	f := newFixture(t, backends()["sqlite"](t))
	good := must(json.Marshal(wire.UsageBatch{Records: []wire.UsageRecord{rec("c1", "claude-haiku-4-5", wire.Tokens{Input: 1000})}}))
	for _, tc := range []struct {
		name   string
		body   []byte
		status int
		code   string
	}{
		{"a batch", good, 200, ""},
		{"not JSON", []byte("{"), 400, wire.CodeInvalidArgument},
		{"too large", bytes.Repeat([]byte(" "), usage.MaxBatchBytes+1), 413, wire.CodePayloadTooLarge},
		{"a bad record", []byte(`{"records":[{"id":"xyz"}]}`), 400, wire.CodeInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			r := httptest.NewRequest("POST", "/v1/usage", bytes.NewReader(tc.body))
			err := f.svc.Handle(w, r, "h1")
			if tc.code == "" {
				var reply wire.UsageReply
				if err != nil || w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &reply) != nil || reply.Committed != 1 || reply.Allowances["c1"].Remaining != 10_000_000-1000 {
					t.Fatalf("Handle = %v, %d %s", err, w.Code, w.Body)
				}
				return
			}
			we, ok := err.(*wire.Error)
			if !ok || we.Code != tc.code || wire.HTTPStatus(we.Code) != tc.status {
				t.Fatalf("Handle = %v, want %s", err, tc.code)
			}
		})
	}
}

func withModel(model string, c usage.PriceConfig) usage.PriceConfig {
	c.Model = model
	return c
}

func TestParsePrices(t *testing.T) {
	def := usage.DefaultPrices()
	table, err := usage.ParsePrices(def)
	if err != nil {
		t.Fatal(err)
	}
	opus := wire.Price{Input: 15_000_000, Output: 75_000_000, CacheRead: 1_500_000, CacheWrite: 18_750_000}
	if table.Default != opus || len(table.Models) != 5 {
		t.Fatalf("default prices: %+v", table)
	}
	// The default is the dearest model's, part by part.
	for k, p := range table.Models {
		if p.Input > opus.Input || p.Output > opus.Output || p.CacheRead > opus.CacheRead || p.CacheWrite > opus.CacheWrite {
			t.Errorf("%s costs more than the default", k)
		}
	}
	if p, ok := table.Lookup("openai", "gpt-5-mini"); !ok || p != (wire.Price{Input: 250_000, Output: 2_000_000, CacheRead: 25_000}) {
		t.Errorf("gpt-5-mini = %+v, %t", p, ok)
	}
	ok := usage.PriceConfig{Input: "1", Output: "2"}
	for _, tc := range []struct {
		name string
		m    []usage.PriceConfig
		want string // in the error
	}{
		{"no default", []usage.PriceConfig{withModel("anthropic/x", ok)}, `no "default" price`},
		{"no model", []usage.PriceConfig{withModel("default", ok), withModel("anthropic/", ok)}, "anthropic/: want provider/model"},
		{"no provider", []usage.PriceConfig{withModel("default", ok), withModel("claude", ok)}, "claude: want provider/model"},
		{"unknown provider", []usage.PriceConfig{withModel("default", ok), withModel("mistral/large", ok)}, `mistral/large: provider "mistral"`},
		{"no output price", []usage.PriceConfig{withModel("default", ok), withModel("openai/gpt-5", usage.PriceConfig{Input: "1"})}, "openai/gpt-5: output: no price"},
		{"not a number", []usage.PriceConfig{withModel("default", usage.PriceConfig{Input: "three", Output: "1"})}, "default: input: amount"},
		{"negative", []usage.PriceConfig{withModel("default", ok), withModel("openai/gpt-5", usage.PriceConfig{Input: "1", Output: "-2"})}, "openai/gpt-5: output: -2.00 credits"},
		{"too many decimals", []usage.PriceConfig{withModel("default", usage.PriceConfig{Input: "0.0000001", Output: "1"})}, "default: input"},
		{"spaces in a model", []usage.PriceConfig{withModel("default", ok), withModel("openai/gpt 5", ok)}, "openai/gpt 5: model must be"},
		{"priced twice", []usage.PriceConfig{withModel("default", ok), withModel("openai/gpt-5.1", ok), withModel("openai/gpt-5.1", ok)}, "openai/gpt-5.1 is priced twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := usage.ParsePrices(tc.m)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParsePrices = %v, want an error with %q", err, tc.want)
			}
		})
	}
}

func TestMetricsCountOnce(t *testing.T) {
	reg := prometheus.NewRegistry()
	f := newFixture(t, backends()["sqlite"](t))
	svc := usage.New(usage.Config{Store: f.st, Ledger: f.ledger, Prices: f.table, Now: func() time.Time { return now }, Metrics: metrics.New(reg)})
	b := wire.UsageBatch{
		Records:  []wire.UsageRecord{rec("c1", "claude-haiku-4-5", wire.Tokens{Input: 10, Output: 5}), rec("op", "gpt-5.1", wire.Tokens{Input: 7})},
		Refusals: []wire.UsageRefusal{{BotID: "c1", Provider: "anthropic", Reason: wire.RefusedCredits, Count: 3}},
	}
	for range 3 { // sent again twice: nothing more is counted
		if _, err := svc.Commit(t.Context(), "h1", b); err != nil {
			t.Fatal(err)
		}
	}
	want := `
# HELP pocketmolt_usage_records_committed_total Usage records pmd committed; a record an agent sent again is not counted twice.
# TYPE pocketmolt_usage_records_committed_total counter
pocketmolt_usage_records_committed_total 2
# HELP pocketmolt_model_refusals_total Model calls an agent refused itself, by provider and reason (credits, rate, provider, token, upstream).
# TYPE pocketmolt_model_refusals_total counter
pocketmolt_model_refusals_total{provider="anthropic",reason="credits"} 3
# HELP pocketmolt_model_tokens_total Tokens model calls used as their providers reported (or the agent estimated), by provider and kind (input, output, cache_read, cache_write).
# TYPE pocketmolt_model_tokens_total counter
pocketmolt_model_tokens_total{kind="input",provider="anthropic"} 10
pocketmolt_model_tokens_total{kind="input",provider="openai"} 7
pocketmolt_model_tokens_total{kind="output",provider="anthropic"} 5
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "pocketmolt_usage_records_committed_total", "pocketmolt_model_refusals_total", "pocketmolt_model_tokens_total"); err != nil {
		t.Error(err)
	}
}
