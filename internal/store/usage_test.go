package store

import (
	"fmt"
	"testing"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// TestUsage is the conformance suite of migration 00007: usage records inserted once by id,
// and the reports over them, on both backends.
func TestUsage(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			testUsage(t, openURL(t, b.newURL(t)))
		})
	}
}

func usageRec(id, bot string, owner Owner, model string, at time.Time, tok wire.Tokens, cost, debited int64) UsageRecord {
	return UsageRecord{
		ID: id, HostID: "h1", BotID: bot, Owner: owner, Provider: wire.ProviderAnthropic, Model: model, API: "messages",
		Status: 200, Outcome: wire.OutcomeOK, Tokens: tok, Cost: cost, Debited: debited, At: at, Millis: 42, RecordedAt: at,
	}
}

func testUsage(t *testing.T, s *Store) {
	ctx := t.Context()
	mustOK(t, s.CreateHost(ctx, host("h1")))
	mustOK(t, s.CreateUser(ctx, User{ID: "u-b1", Email: "ada@example.com", PasswordHash: "h", CreatedAt: ts(0), UpdatedAt: ts(0)}))
	b1 := ownedBot("b1", 0)
	b1.HostID = "h1"
	mustOK(t, s.CreateBot(ctx, b1))
	op := Bot{ID: "b2", Name: "ops-bot", HostID: "h1", Owner: Owner{Kind: OwnerOperator, ID: "admin"}, Spec: []byte(`{}`),
		SpecVersion: 1, Desired: DesiredRunning, CreatedAt: ts(0), UpdatedAt: ts(0)}
	mustOK(t, s.CreateBot(ctx, op))
	cust := Owner{Kind: OwnerCustomer, ID: "u-b1"}
	oper := Owner{Kind: OwnerOperator, ID: "admin"}
	day := 24 * time.Hour

	recs := []UsageRecord{
		usageRec("r1", "b1", cust, "sonnet", ts(0), wire.Tokens{Input: 100, Output: 10, CacheRead: 5, CacheWrite: 1}, 450, 450),
		usageRec("r2", "b1", cust, "sonnet", ts(time.Hour), wire.Tokens{Input: 200, Output: 20}, 900, 900),
		usageRec("r3", "b1", cust, "haiku", ts(day), wire.Tokens{Input: 1}, 1, 1),
		usageRec("r4", "b2", oper, "sonnet", ts(time.Hour), wire.Tokens{Input: 1000}, 3000, 0),
		usageRec("r5", "gone", Owner{}, "sonnet", ts(time.Hour), wire.Tokens{Output: 7}, 105, 0),
	}
	recs[1].Outcome, recs[1].Status, recs[1].Estimated, recs[1].Stream = wire.OutcomeError, 529, true, true
	recs[2].BYOK = true

	var got map[string]bool
	mustOK(t, s.InTx(ctx, func(tx *Store) error {
		var err error
		got, err = tx.InsertUsage(ctx, recs)
		return err
	}))
	mustEqual(t, "new ids", got, map[string]bool{"r1": true, "r2": true, "r3": true, "r4": true, "r5": true})
	// Sent again with one more: only the new one is inserted, the old ones are unchanged.
	again := append(recs[:2:2], usageRec("r6", "b1", cust, "sonnet", ts(2*day), wire.Tokens{Input: 3}, 9, 9))
	again[0].Cost = 999_999
	got, err := s.InsertUsage(ctx, again)
	mustOK(t, err)
	mustEqual(t, "new ids of a batch sent again", got, map[string]bool{"r6": true})
	got, err = s.InsertUsage(ctx, nil)
	mustOK(t, err)
	mustEqual(t, "new ids of nothing", got, map[string]bool{})

	// More records than one INSERT holds.
	var many []UsageRecord
	for i := range 1200 {
		many = append(many, usageRec(fmt.Sprintf("m%04d", i), "b2", oper, "bulk", ts(10*day), wire.Tokens{Input: 1}, 1, 0))
	}
	many = append(many, recs[0])
	got, err = s.InsertUsage(ctx, many)
	mustOK(t, err)
	if len(got) != 1200 || got["r1"] {
		t.Fatalf("a batch of 1201 with one old record: %d new (r1 %t), want 1200", len(got), got["r1"])
	}

	top, err := s.UsageTop(ctx, ts(0), ts(2*day), 0)
	mustOK(t, err)
	mustEqual(t, "top", top, []UsageTotal{
		{Owner: oper, BotID: "b2", BotName: "ops-bot", Provider: "anthropic", Model: "sonnet", Calls: 1, Tokens: wire.Tokens{Input: 1000}, Cost: 3000},
		{Owner: cust, Email: "ada@example.com", BotID: "b1", BotName: "name-b1", Provider: "anthropic", Model: "sonnet", Calls: 2, Errors: 1, Estimated: 1,
			Tokens: wire.Tokens{Input: 300, Output: 30, CacheRead: 5, CacheWrite: 1}, Cost: 1350, Debited: 1350},
		{Owner: Owner{}, BotID: "gone", Provider: "anthropic", Model: "sonnet", Calls: 1, Tokens: wire.Tokens{Output: 7}, Cost: 105},
		{Owner: cust, Email: "ada@example.com", BotID: "b1", BotName: "name-b1", Provider: "anthropic", Model: "haiku", Calls: 1, Tokens: wire.Tokens{Input: 1}, Cost: 1, Debited: 1},
	})
	top, err = s.UsageTop(ctx, ts(0), ts(2*day), 2)
	mustOK(t, err)
	if len(top) != 2 || top[0].BotID != "b2" {
		t.Fatalf("top 2 = %+v", top)
	}
	// until is excluded, since included.
	top, err = s.UsageTop(ctx, ts(day), ts(2*day), 0)
	mustOK(t, err)
	if len(top) != 1 || top[0].Model != "haiku" {
		t.Fatalf("top of [day 1, day 2) = %+v", top)
	}

	days, err := s.UsageByDay(ctx, "b1", ts(-day), ts(30*day))
	mustOK(t, err)
	d0, d1, d2 := ts(0).Format(time.DateOnly), ts(day).Format(time.DateOnly), ts(2*day).Format(time.DateOnly)
	mustEqual(t, "by day", days, []UsageTotal{
		{Day: d0, Owner: cust, Email: "ada@example.com", BotID: "b1", BotName: "name-b1", Provider: "anthropic", Model: "sonnet", Calls: 2, Errors: 1, Estimated: 1,
			Tokens: wire.Tokens{Input: 300, Output: 30, CacheRead: 5, CacheWrite: 1}, Cost: 1350, Debited: 1350},
		{Day: d1, Owner: cust, Email: "ada@example.com", BotID: "b1", BotName: "name-b1", Provider: "anthropic", Model: "haiku", Calls: 1, Tokens: wire.Tokens{Input: 1}, Cost: 1, Debited: 1},
		{Day: d2, Owner: cust, Email: "ada@example.com", BotID: "b1", BotName: "name-b1", Provider: "anthropic", Model: "sonnet", Calls: 1, Tokens: wire.Tokens{Input: 3}, Cost: 9, Debited: 9},
	})

	tot, err := s.UsageOfOwner(ctx, cust, ts(time.Minute))
	mustOK(t, err)
	mustEqual(t, "owner since", tot, UsageTotal{Owner: cust, Calls: 3, Errors: 1, Estimated: 1, Tokens: wire.Tokens{Input: 204, Output: 20}, Cost: 910, Debited: 910})
	tot, err = s.UsageOfOwner(ctx, Owner{Kind: OwnerCustomer, ID: "nobody"}, ts(0))
	mustOK(t, err)
	mustEqual(t, "owner with nothing", tot, UsageTotal{Owner: Owner{Kind: OwnerCustomer, ID: "nobody"}})

	bots, err := s.UsageBots(ctx, []string{"b1", "b2", "gone"})
	mustOK(t, err)
	mustEqual(t, "bots", bots, map[string]UsageBot{"b1": {HostID: "h1", Owner: cust}, "b2": {HostID: "h1", Owner: oper}})
	users, err := s.ExistingUsers(ctx, []string{"u-b1", "u-none"})
	mustOK(t, err)
	mustEqual(t, "users", users, map[string]bool{"u-b1": true})
}
