package usage_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/credits"
	"github.com/pocketmolt/pocketmolt/internal/prices"
	"github.com/pocketmolt/pocketmolt/internal/store"
	"github.com/pocketmolt/pocketmolt/internal/store/storetest"
	"github.com/pocketmolt/pocketmolt/internal/usage"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// now is the tests' clock: a month whose included credits end on 1 March.
var now = time.Date(2027, 2, 14, 12, 0, 0, 0, time.UTC)

var periodEnd = time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC)

func backends() map[string]func(testing.TB) string {
	return map[string]func(testing.TB) string{
		"sqlite":   func(t testing.TB) string { return "sqlite:" + filepath.Join(t.TempDir(), "pm.db") },
		"postgres": func(t testing.TB) string { return storetest.PostgresURL(t) },
	}
}

// fixture is a store with two hosts, two customers on credits (u1 granted 10 credits until
// 1 March, u2 none) and bots: c1 (u1's), c2 (u2's), op (an operator's) on h1, and far (u1's)
// on h2.
type fixture struct {
	st     *store.Store
	ledger *credits.Ledger
	svc    *usage.Service
	table  prices.Table
	logs   *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newFixture(t testing.TB, url string, bots ...string) *fixture {
	t.Helper()
	ctx := t.Context()
	st, err := store.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	clock := func() time.Time { return now }
	table, err := usage.ParsePrices(usage.DefaultPrices())
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{st: st, ledger: &credits.Ledger{Store: st, Now: clock}, table: table, logs: &syncBuffer{}}
	f.svc = usage.New(usage.Config{Store: st, Ledger: f.ledger, Prices: table, Now: clock,
		Log: slog.New(slog.NewJSONHandler(f.logs, nil))})
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, h := range []string{"h1", "h2"} {
		must(st.CreateHost(ctx, store.Host{ID: h, Name: "host-" + h, CreatedAt: now}))
	}
	for _, u := range []string{"u1", "u2"} {
		must(st.CreateUser(ctx, store.User{ID: u, Email: u + "@example.com", PasswordHash: "x", CreatedAt: now, UpdatedAt: now}))
	}
	must(st.InTx(ctx, func(tx *store.Store) error {
		_, err := f.ledger.GrantPeriod(ctx, tx, "u1", "s1", 10*credits.Micro, periodEnd.AddDate(0, -1, 0), periodEnd)
		return err
	}))
	bot := func(id, host string, o store.Owner) {
		must(st.CreateBot(ctx, store.Bot{ID: id, Name: "bot-" + id, HostID: host, Owner: o, Spec: []byte(`{}`), SpecVersion: 1,
			Desired: store.DesiredRunning, CreatedAt: now, UpdatedAt: now}))
	}
	bot("c1", "h1", store.Owner{Kind: store.OwnerCustomer, ID: "u1"})
	bot("c2", "h1", store.Owner{Kind: store.OwnerCustomer, ID: "u2"})
	bot("op", "h1", store.Owner{Kind: store.OwnerOperator, ID: "admin"})
	bot("far", "h2", store.Owner{Kind: store.OwnerCustomer, ID: "u1"})
	for _, id := range bots {
		bot(id, "h1", store.Owner{Kind: store.OwnerCustomer, ID: "u1"})
	}
	return f
}

var seq struct {
	sync.Mutex
	n int
}

// rec is a record of a call by bot to model with tok, with a fresh id.
func rec(bot, model string, tok wire.Tokens) wire.UsageRecord {
	seq.Lock()
	seq.n++
	n := seq.n
	seq.Unlock()
	provider := wire.ProviderAnthropic
	if strings.HasPrefix(model, "gpt") {
		provider = wire.ProviderOpenAI
	}
	return wire.UsageRecord{ID: fmt.Sprintf("%032x", n), BotID: bot, Provider: provider, Model: model, API: "messages",
		Status: 200, Outcome: wire.OutcomeOK, Tokens: tok, Time: now.Add(-time.Minute), Millis: 120}
}

// ledger is a customer's debits (as a positive sum) and number of debit entries.
func (f *fixture) ledgerDebits(t testing.TB, user string) (credits.Amount, int) {
	t.Helper()
	es, err := f.st.ListCredits(t.Context(), user)
	if err != nil {
		t.Fatal(err)
	}
	var sum credits.Amount
	n := 0
	for _, e := range es {
		if e.Kind == store.CreditDebit {
			sum -= credits.Amount(e.Amount)
			n++
		}
	}
	return sum, n
}

// committed sums every record's cost and debit in the store, by owner ref.
func (f *fixture) committed(t testing.TB) (calls int64, cost, debited map[string]int64) {
	t.Helper()
	rep, err := f.st.UsageTop(t.Context(), now.AddDate(-2, 0, 0), now.AddDate(1, 0, 0), 0)
	if err != nil {
		t.Fatal(err)
	}
	cost, debited = map[string]int64{}, map[string]int64{}
	for _, r := range rep {
		calls += r.Calls
		cost[r.Owner.ID] += r.Cost
		debited[r.Owner.ID] += r.Debited
	}
	return calls, cost, debited
}

func TestCommit(t *testing.T) {
	for name, url := range backends() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, url(t))
			ctx := t.Context()
			sonnet := wire.Tokens{Input: 1234, Output: 567, CacheRead: 89, CacheWrite: 10}
			b := wire.UsageBatch{Records: []wire.UsageRecord{
				rec("c1", "claude-sonnet-4-6", sonnet),
				rec("c1", "claude-haiku-4-5", wire.Tokens{Input: 1, Output: 1}),
				rec("c1", "claude-sonnet-4-6", wire.Tokens{Input: 1_000_000}), // BYOK: metered, not debited
				rec("c2", "gpt-5.1", wire.Tokens{Input: 3, Output: 7}),
				rec("op", "claude-sonnet-4-6", wire.Tokens{Input: 50}),   // an operator's: never debited
				rec("gone", "claude-sonnet-4-6", wire.Tokens{Input: 50}), // deleted since: kept, no owner
				rec("c1", "claude-next-9", wire.Tokens{Output: 2}),       // no price: the default (Opus)
				rec("c1", "claude-next-9", wire.Tokens{Output: 3}),
			}, Refusals: []wire.UsageRefusal{{BotID: "c2", Provider: wire.ProviderAnthropic, Reason: wire.RefusedCredits, Count: 2}}}
			b.Records[2].BYOK = true
			b.Records[1].Outcome, b.Records[1].Status = wire.OutcomeCut, 200

			reply, err := f.svc.Commit(ctx, "h1", b)
			if err != nil {
				t.Fatal(err)
			}
			if reply.Committed != 8 {
				t.Fatalf("committed %d, want 8", reply.Committed)
			}
			// What each record costs, by the price arithmetic alone.
			cost := func(r wire.UsageRecord) int64 {
				p, _ := f.table.Lookup(r.Provider, r.Model)
				return prices.Cost(p, r.Tokens)
			}
			var wantU1, wantU2 int64
			for _, r := range b.Records {
				switch {
				case r.BotID == "c1" && !r.BYOK:
					wantU1 += cost(r)
				case r.BotID == "c2":
					wantU2 += cost(r)
				}
			}
			// 1234×3 + 567×15 + 89×0.30 + 10×3.75 = 12271.2 → 12272 millionths, and so on.
			if c := cost(b.Records[0]); c != 12_272 {
				t.Fatalf("sonnet call costs %d, want 12272", c)
			}
			if c := cost(b.Records[6]); c != 150 { // 2 × 75
				t.Fatalf("an unpriced model's call costs %d, want 150 (Opus output)", c)
			}
			for _, tc := range []struct {
				user       string
				want       int64
				debitLines int
			}{{"u1", wantU1, 1}, {"u2", wantU2, 0}} {
				got, n := f.ledgerDebits(t, tc.user)
				_, _, debited := f.committed(t)
				if tc.user == "u2" {
					// u2 has no credits at all: debited into the negative, one line.
					tc.debitLines = 1
				}
				if int64(got) != tc.want || debited[tc.user] != tc.want || n != tc.debitLines {
					t.Errorf("%s: ledger debits %d in %d lines, records debited %d; want %d in %d", tc.user, got, n, debited[tc.user], tc.want, tc.debitLines)
				}
			}
			calls, costs, debited := f.committed(t)
			if calls != 8 || debited["admin"] != 0 || debited[""] != 0 || costs["admin"] != cost(b.Records[4]) || costs[""] != cost(b.Records[5]) {
				t.Errorf("records: %d calls, costs %v, debited %v", calls, costs, debited)
			}
			if n := strings.Count(f.logs.String(), "no price for model"); n != 1 {
				t.Errorf("the missing price was warned %d times, want once:\n%s", n, f.logs)
			}
			wantAllow := map[string]wire.Allowance{
				"c1": {Remaining: 10_000_000 - wantU1, AsOf: now, Message: "Your included credits for this month are used up — add your own key or wait until 1 March"},
				"c2": {Remaining: -wantU2, AsOf: now, Message: "Your included credits for this month are used up — add your own key"},
			}
			if fmt.Sprint(reply.Allowances) != fmt.Sprint(wantAllow) {
				t.Errorf("allowances %+v\nwant %+v", reply.Allowances, wantAllow)
			}

			// Sent again, whole or in part with new records: only the new ones count.
			again, err := f.svc.Commit(ctx, "h1", b)
			if err != nil || again.Committed != 0 {
				t.Fatalf("a batch sent again: %+v, %v", again, err)
			}
			extra := rec("c1", "claude-haiku-4-5", wire.Tokens{Input: 1000})
			part := wire.UsageBatch{Records: append([]wire.UsageRecord{extra}, b.Records[:3]...)}
			if r, err := f.svc.Commit(ctx, "h1", part); err != nil || r.Committed != 1 {
				t.Fatalf("a batch with one new record: %+v, %v", r, err)
			}
			got, n := f.ledgerDebits(t, "u1")
			if int64(got) != wantU1+cost(extra) || n != 2 {
				t.Errorf("u1 after re-sends: debited %d in %d lines, want %d in 2", got, n, wantU1+cost(extra))
			}
			if n := strings.Count(f.logs.String(), "no price for model"); n != 1 {
				t.Errorf("the missing price was warned %d times after a re-send, want once", n)
			}
		})
	}
}

func TestHostileBatches(t *testing.T) {
	for name, url := range backends() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, url(t))
			ctx := t.Context()
			ok := func() wire.UsageRecord { return rec("c1", "claude-sonnet-4-6", wire.Tokens{Input: 10}) }
			with := func(mod func(*wire.UsageRecord)) wire.UsageBatch {
				r := ok()
				mod(&r)
				return wire.UsageBatch{Records: []wire.UsageRecord{ok(), r}}
			}
			tooMany := wire.UsageBatch{}
			for range wire.MaxUsageBatch + 1 {
				tooMany.Records = append(tooMany.Records, ok())
			}
			for _, tc := range []struct {
				name string
				b    wire.UsageBatch
				code string
			}{
				{"another host's bot", with(func(r *wire.UsageRecord) { r.BotID = "far" }), wire.CodePermissionDenied},
				{"another host's bot in a refusal", wire.UsageBatch{Records: []wire.UsageRecord{ok()},
					Refusals: []wire.UsageRefusal{{BotID: "far", Provider: "openai", Reason: wire.RefusedRate, Count: 1}}}, wire.CodePermissionDenied},
				{"too many records", tooMany, wire.CodeInvalidArgument},
				{"a short id", with(func(r *wire.UsageRecord) { r.ID = "abc123" }), wire.CodeInvalidArgument},
				{"an id that is not hex", with(func(r *wire.UsageRecord) { r.ID = strings.Repeat("z", 32) }), wire.CodeInvalidArgument},
				{"an upper-case id", with(func(r *wire.UsageRecord) { r.ID = strings.Repeat("A", 32) }), wire.CodeInvalidArgument},
				{"a long id", with(func(r *wire.UsageRecord) { r.ID = strings.Repeat("a", 65) }), wire.CodeInvalidArgument},
				{"a bot id with escapes", with(func(r *wire.UsageRecord) { r.BotID = "c1\x1b[2J" }), wire.CodeInvalidArgument},
				{"an unknown provider", with(func(r *wire.UsageRecord) { r.Provider = "mistral" }), wire.CodeInvalidArgument},
				{"an unknown outcome", with(func(r *wire.UsageRecord) { r.Outcome = "great" }), wire.CodeInvalidArgument},
				{"negative tokens", with(func(r *wire.UsageRecord) { r.Tokens.Output = -1 }), wire.CodeInvalidArgument},
				{"too many tokens", with(func(r *wire.UsageRecord) { r.Tokens.CacheWrite = usage.MaxTokens + 1 }), wire.CodeInvalidArgument},
				{"a status that is not one", with(func(r *wire.UsageRecord) { r.Status = 1000 }), wire.CodeInvalidArgument},
				{"a negative duration", with(func(r *wire.UsageRecord) { r.Millis = -5 }), wire.CodeInvalidArgument},
				{"no time", with(func(r *wire.UsageRecord) { r.Time = time.Time{} }), wire.CodeInvalidArgument},
				{"a refusal count too big", wire.UsageBatch{Refusals: []wire.UsageRefusal{{BotID: "c1", Provider: "openai", Reason: wire.RefusedRate, Count: usage.MaxRefused + 1}}}, wire.CodeInvalidArgument},
				{"a refusal reason unknown", wire.UsageBatch{Refusals: []wire.UsageRefusal{{BotID: "c1", Provider: "openai", Reason: "bored", Count: 1}}}, wire.CodeInvalidArgument},
			} {
				t.Run(tc.name, func(t *testing.T) {
					_, err := f.svc.Commit(ctx, "h1", tc.b)
					var we *wire.Error
					if !errors.As(err, &we) || we.Code != tc.code {
						t.Fatalf("Commit = %v, want %s", err, tc.code)
					}
					if calls, _, _ := f.committed(t); calls != 0 {
						t.Fatalf("%d records committed from a refused batch", calls)
					}
					if d, _ := f.ledgerDebits(t, "u1"); d != 0 {
						t.Fatalf("%s debited from a refused batch", d)
					}
				})
			}
			if !strings.Contains(f.logs.String(), `"msg":"host reported usage of other hosts' bots","host_id":"h1","bot_ids":["far"]`) {
				t.Errorf("the other host's bot was not logged:\n%s", f.logs)
			}

			// What a bot chose is escaped and bounded, not refused; absurd times are pmd's.
			r := ok()
			r.Model = "claude\x1b]0;pwned\x07" + strings.Repeat("x", 300)
			r.API = "messages\u202e"
			r.Time = now.AddDate(-5, 0, 0)
			dup := r
			if rep, err := f.svc.Commit(ctx, "h1", wire.UsageBatch{Records: []wire.UsageRecord{r, dup}}); err != nil || rep.Committed != 1 {
				t.Fatalf("a record with a strange model, sent twice in its batch: %+v, %v", rep, err)
			}
			top, err := f.svc.Top(ctx, now.Add(-time.Hour), now.Add(time.Hour), 0)
			if err != nil || len(top.Rows) != 1 {
				t.Fatalf("Top = %+v, %v", top, err)
			}
			if m := top.Rows[0].Model; len(m) > 128 || !strings.HasPrefix(m, `claude\x1b]0;pwned\x07xx`) {
				t.Errorf("model kept as %q", m)
			}
		})
	}
}

// TestConcurrentCommits: many agents' batches for many bots at once, each sent twice; every
// record is committed once and the ledger holds exactly what the records cost.
func TestConcurrentCommits(t *testing.T) {
	for name, url := range backends() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var bots []string
			for i := range 16 {
				bots = append(bots, fmt.Sprintf("b%02d", i))
			}
			f := newFixture(t, url(t), bots...)
			ctx := t.Context()
			const workers, batches, size = 8, 6, 40
			var mu sync.Mutex
			var want int64
			var all int
			var wg sync.WaitGroup
			errs := make(chan error, workers*batches*2)
			for w := range workers {
				wg.Go(func() {
					for i := range batches {
						var b wire.UsageBatch
						for j := range size {
							r := rec(bots[(w+i+j)%len(bots)], "claude-sonnet-4-6", wire.Tokens{Input: int64(100 + j), Output: int64(w*7 + i), CacheRead: 3})
							r.BYOK = j%10 == 0
							b.Records = append(b.Records, r)
						}
						var sum int64
						for _, r := range b.Records {
							if !r.BYOK {
								p, _ := f.table.Lookup(r.Provider, r.Model)
								sum += prices.Cost(p, r.Tokens)
							}
						}
						mu.Lock()
						want += sum
						all += len(b.Records)
						mu.Unlock()
						// The same batch from two goroutines at once, as a retry racing its original.
						var inner sync.WaitGroup
						for range 2 {
							inner.Go(func() {
								if _, err := f.svc.Commit(ctx, "h1", b); err != nil {
									errs <- err
								}
							})
						}
						inner.Wait()
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			got, _ := f.ledgerDebits(t, "u1")
			calls, _, debited := f.committed(t)
			if int(calls) != all || int64(got) != want || debited["u1"] != want {
				t.Fatalf("%d calls committed of %d; ledger debits %d, records debited %d; want %d", calls, all, got, debited["u1"], want)
			}
		})
	}
}
