package billing

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/bots"
	"github.com/pocketmolt/pocketmolt/internal/credits"
	"github.com/pocketmolt/pocketmolt/internal/fleet"
	"github.com/pocketmolt/pocketmolt/internal/pki"
	"github.com/pocketmolt/pocketmolt/internal/secret"
	"github.com/pocketmolt/pocketmolt/internal/store"
	"github.com/pocketmolt/pocketmolt/internal/store/storetest"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// fakeStripe is Stripe as the state machine sees it: subscriptions whose current state the
// test sets, read back by GetSubscription. stripe_test.go runs the real client against
// stripe-mock; this fake is for orders of events stripe-mock (stateless) cannot produce.
type fakeStripe struct {
	mu        sync.Mutex
	subs      map[string]Subscription
	checkouts map[string]Checkout
	canceled  []string
	made      int
	down      bool
}

var _ StripeAPI = (*fakeStripe)(nil)

func newFakeStripe() *fakeStripe {
	return &fakeStripe{subs: map[string]Subscription{}, checkouts: map[string]Checkout{}}
}

func (f *fakeStripe) set(sub Subscription) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.subs[sub.ID] = sub
}

func (f *fakeStripe) EnsureCustomer(_ context.Context, userID, _, customerID string) (string, error) {
	if customerID != "" {
		return customerID, nil
	}
	return "cus_" + userID, nil
}

func (f *fakeStripe) CreateCheckout(_ context.Context, p CheckoutParams) (Checkout, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.checkouts[p.IdempotencyKey]; ok {
		return c, nil
	}
	f.made++
	c := Checkout{ID: fmt.Sprintf("cs_%d", f.made), URL: fmt.Sprintf("https://checkout.stripe.test/%d", f.made), UserID: p.UserID, PlanID: p.PlanID, CustomerID: p.CustomerID}
	f.checkouts[p.IdempotencyKey] = c
	return c, nil
}

func (f *fakeStripe) GetCheckout(_ context.Context, id string) (Checkout, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.checkouts {
		if c.ID == id {
			return c, nil
		}
	}
	return Checkout{}, ErrStripeNotFound
}

func (f *fakeStripe) Portal(context.Context, string, string) (string, error) {
	return "https://billing.stripe.test/p", nil
}

func (f *fakeStripe) GetSubscription(_ context.Context, id string) (Subscription, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return Subscription{}, errors.New("connection refused")
	}
	sub, ok := f.subs[id]
	if !ok {
		return Subscription{}, ErrStripeNotFound
	}
	return sub, nil
}

func (f *fakeStripe) CancelAtPeriodEnd(_ context.Context, id string, cancel bool) (Subscription, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	sub := f.subs[id]
	sub.CancelAtPeriodEnd = cancel
	f.subs[id] = sub
	return sub, nil
}

func (f *fakeStripe) CancelNow(_ context.Context, id string) (Subscription, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.canceled = append(f.canceled, id)
	sub := f.subs[id]
	sub.Status = "canceled"
	f.subs[id] = sub
	return sub, nil
}

// clock is the tests' time, moved by hand.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

var testPlans = []Plan{
	{ID: "personal", Name: "Personal", Price: "19.00", Currency: "eur", StripePriceID: "price_personal", IncludedCredits: "10.00",
		Placement: PlacementShared, Models: []string{"anthropic/claude-sonnet-4-6", "openai/gpt-5.1"}},
	{ID: "pro", Name: "Pro", Price: "39.00", Currency: "eur", StripePriceID: "price_pro", IncludedCredits: "25.00",
		Placement: PlacementShared, Models: []string{"anthropic/claude-sonnet-4-6"}},
}

// env is one billing service on a fresh database, with a customer who has set up their
// assistant.
type env struct {
	st     *store.Store
	svc    *Service
	bots   *bots.Service
	stripe *fakeStripe
	clock  *clock
	user   string
}

func backends() map[string]func(t *testing.T) string {
	return map[string]func(t *testing.T) string{
		"sqlite":   func(t *testing.T) string { return "sqlite:" + filepath.Join(t.TempDir(), "pm.db") },
		"postgres": func(t *testing.T) string { return storetest.PostgresURL(t) },
	}
}

func newEnv(t *testing.T, url string, testMode bool) *env {
	t.Helper()
	ctx := t.Context()
	st, err := store.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	clk := &clock{now: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}
	key, err := secret.NewKey("k1")
	if err != nil {
		t.Fatal(err)
	}
	kr, err := secret.NewKeyring(key)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.NewCA("test", clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	fl := fleet.New(st, ca, fleet.Config{Now: clk.Now}, log)
	bs := bots.New(st, fl, kr, bots.Config{Now: clk.Now}, log)
	fs := newFakeStripe()
	cfg := Config{Plans: testPlans, PublicURL: "https://pm.test", Stripe: fs, WebhookSecret: "whsec_test",
		PlatformProviders: map[string]bool{"anthropic": true}, Now: clk.Now}
	if testMode {
		cfg.Stripe, cfg.TestMode = nil, true
	}
	ledger := &credits.Ledger{Store: st, Now: clk.Now}
	svc := New(st, bs, ledger, kr, cfg, log)
	e := &env{st: st, svc: svc, bots: bs, stripe: fs, clock: clk, user: "u-0123456789abcdef"}
	now := clk.Now()
	if err := st.CreateUser(ctx, store.User{ID: e.user, Email: "ada@example.com", PasswordHash: "x", CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := svc.SaveAssistant(ctx, e.user, AssistantInput{Name: "Jeeves", PlanID: "personal", Model: "anthropic/claude-sonnet-4-6",
		WebChat: true, KeyMode: KeyCredits}); err != nil {
		t.Fatal(err)
	}
	return e
}

// sub is a Stripe subscription of the env's customer in a given state.
func (e *env) sub(id, status string, start time.Time) Subscription {
	return Subscription{ID: id, CustomerID: "cus_" + e.user, Status: status, PriceID: "price_personal", UserID: e.user,
		PlanID: "personal", PeriodStart: start, PeriodEnd: start.Add(30 * 24 * time.Hour)}
}

func (e *env) event(id, typ, subID string) Event {
	ev := Event{ID: id, Type: typ, SubscriptionID: subID, CustomerID: "cus_" + e.user}
	switch typ {
	case "checkout.session.completed":
		ev.ObjectID, ev.UserID, ev.CheckoutID = "cs_x", e.user, "cs_x"
	case "customer.subscription.created", "customer.subscription.updated", "customer.subscription.deleted":
		ev.ObjectID, ev.SubscriptionID = subID, subID
	default:
		ev.ObjectID = "in_" + id
	}
	return ev
}

func (e *env) handle(t *testing.T, ev Event) string {
	t.Helper()
	res, err := e.svc.HandleEvent(t.Context(), ev)
	if err != nil {
		t.Fatalf("HandleEvent(%s %s): %v", ev.Type, ev.ID, err)
	}
	return res
}

// state is what the customer has, summed up.
type state struct {
	subs    int
	status  string
	bots    int
	desired string
	grants  int
	balance credits.Amount
}

func (e *env) state(t *testing.T) state {
	t.Helper()
	ctx := t.Context()
	var s state
	subs, err := e.st.ListSubscriptions(ctx, e.user)
	if err != nil {
		t.Fatal(err)
	}
	s.subs = len(subs)
	if len(subs) > 0 {
		cur, _ := e.svc.CurrentSubscription(ctx, e.user)
		s.status = cur.Status
	}
	bs, err := e.st.ListBots(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bs {
		if b.Owner.ID == e.user {
			s.bots++
			s.desired = b.Desired
		}
	}
	es, err := e.st.ListCredits(ctx, e.user)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range es {
		if x.Kind == store.CreditGrant {
			s.grants++
		}
	}
	s.balance, _ = credits.Replay(es, e.clock.Now())
	return s
}

func permutations(xs []string) [][]string {
	if len(xs) <= 1 {
		return [][]string{append([]string(nil), xs...)}
	}
	var out [][]string
	for i := range xs {
		rest := append(append([]string(nil), xs[:i]...), xs[i+1:]...)
		for _, p := range permutations(rest) {
			out = append(out, append([]string{xs[i]}, p...))
		}
	}
	return out
}

func TestWebhookStateMachine(t *testing.T) {
	for name, url := range backends() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			// The first payment's events, in every order, each delivered twice: one
			// subscription, one bot, one period's credits.
			for _, order := range permutations([]string{"checkout.session.completed", "customer.subscription.created", "invoice.paid"}) {
				t.Run(fmt.Sprint(order), func(t *testing.T) {
					e := newEnv(t, url(t), false)
					e.stripe.set(e.sub("sub_1", "active", e.clock.Now()))
					for round := range 2 {
						for i, typ := range order {
							res := e.handle(t, e.event(fmt.Sprintf("evt_%d", i), typ, "sub_1"))
							if want := map[int]string{0: ResultApplied, 1: ResultDuplicate}[round]; res != want {
								t.Fatalf("round %d: %s = %s, want %s", round, typ, res, want)
							}
						}
					}
					want := state{subs: 1, status: "active", bots: 1, desired: store.DesiredRunning, grants: 1, balance: 10 * credits.Micro}
					if got := e.state(t); got != want {
						t.Fatalf("after %v: %+v, want %+v", order, got, want)
					}
				})
			}

			t.Run("every transition", func(t *testing.T) {
				e := newEnv(t, url(t), false)
				start := e.clock.Now()
				day := 24 * time.Hour
				steps := []struct {
					name          string
					set           *Subscription // Stripe's state from now on
					event         string
					before, after time.Duration // time passed before the event, and after it before a sweep
					want          state
				}{
					{"paid", ptr(e.sub("sub_1", "active", start)), "checkout.session.completed", 0, 0,
						state{1, "active", 1, store.DesiredRunning, 1, 10 * credits.Micro}},
					{"the renewal fails: past due, the bot keeps running, the old period's credits lapse", ptr(e.sub("sub_1", "past_due", start.Add(30*day))), "invoice.payment_failed", 31 * day, day,
						state{1, "past_due", 1, store.DesiredRunning, 1, 0}},
					{"paid within the grace period: active again, the new period's credits", ptr(e.sub("sub_1", "active", start.Add(30*day))), "invoice.paid", 0, 0,
						state{1, "active", 1, store.DesiredRunning, 2, 10 * credits.Micro}},
					{"fails again and the grace period runs out: stopped", ptr(e.sub("sub_1", "past_due", start.Add(30*day))), "invoice.payment_failed", 0, 8 * day,
						state{1, "past_due", 1, store.DesiredStopped, 2, 10 * credits.Micro}},
					{"paid late: running again, no second grant of the period", ptr(e.sub("sub_1", "active", start.Add(30*day))), "customer.subscription.updated", time.Minute, 0,
						state{1, "active", 1, store.DesiredRunning, 2, 10 * credits.Micro}},
					{"canceled: stopped at once", ptr(withEnded(e.sub("sub_1", "canceled", start.Add(30*day)), start.Add(40*day))), "customer.subscription.deleted", time.Minute, 0,
						state{1, "canceled", 1, store.DesiredStopped, 2, 10 * credits.Micro}},
					{"a late event of the old subscription changes nothing", nil, "invoice.paid", time.Minute, 0,
						state{1, "canceled", 1, store.DesiredStopped, 2, 10 * credits.Micro}},
					{"resubscribed within retention: the same bot back, a new period's credits", ptr(e.sub("sub_2", "active", start.Add(45*day))), "checkout.session.completed", 5 * day, 0,
						state{2, "active", 1, store.DesiredRunning, 3, 20 * credits.Micro}},
				}
				for i, st := range steps {
					subID := "sub_1"
					if st.set != nil {
						e.stripe.set(*st.set)
						subID = st.set.ID
					}
					e.clock.add(st.before)
					e.handle(t, e.event(fmt.Sprintf("evt_t%d", i), st.event, subID))
					if st.after > 0 {
						e.clock.add(st.after)
						if err := e.svc.Sweep(t.Context()); err != nil {
							t.Fatal(err)
						}
					}
					if got := e.state(t); got != st.want {
						t.Fatalf("step %d, %s: %+v, want %+v", i, st.name, got, st.want)
					}
				}
			})

			t.Run("ended past retention: the bot goes with its workspace", func(t *testing.T) {
				e := newEnv(t, url(t), false)
				e.stripe.set(e.sub("sub_1", "active", e.clock.Now()))
				e.handle(t, e.event("evt_1", "checkout.session.completed", "sub_1"))
				e.stripe.set(withEnded(e.sub("sub_1", "canceled", e.clock.Now()), e.clock.Now()))
				e.handle(t, e.event("evt_2", "customer.subscription.deleted", "sub_1"))
				e.clock.add(29 * 24 * time.Hour)
				if err := e.svc.Sweep(t.Context()); err != nil {
					t.Fatal(err)
				}
				if got := e.state(t); got.desired != store.DesiredStopped {
					t.Fatalf("within retention: %+v", got)
				}
				e.clock.add(2 * 24 * time.Hour)
				if err := e.svc.Sweep(t.Context()); err != nil {
					t.Fatal(err)
				}
				// A bot on a host is deleted when its host confirms; this one never had a host,
				// so it is gone at once.
				bs, _ := e.st.ListBots(t.Context())
				if len(bs) > 1 || len(bs) == 1 && (bs[0].Desired != store.DesiredDeleted || !bs[0].Purge) {
					t.Fatalf("past retention the bot is %+v, want deleted with its workspace", bs)
				}
				if err := e.svc.Sweep(t.Context()); err != nil {
					t.Fatal(err)
				}
				if x, _ := e.st.GetSubscriptionByStripeID(t.Context(), "sub_1"); len(bs) == 0 && x.BotID != "" {
					t.Fatalf("the subscription still names its deleted bot: %+v", x)
				}
			})

			t.Run("a checkout of a customer who deleted their account", func(t *testing.T) {
				e := newEnv(t, url(t), false)
				e.stripe.set(e.sub("sub_1", "active", e.clock.Now()))
				if err := e.st.DeleteUser(t.Context(), e.user); err != nil {
					t.Fatal(err)
				}
				e.handle(t, e.event("evt_1", "checkout.session.completed", "sub_1"))
				if bs, _ := e.st.ListBots(t.Context()); len(bs) != 0 {
					t.Fatalf("a bot for a deleted customer: %+v", bs)
				}
				if len(e.stripe.canceled) != 1 || e.stripe.canceled[0] != "sub_1" {
					t.Fatalf("the orphan subscription was not canceled: %v", e.stripe.canceled)
				}
			})

			t.Run("unknown event types are ignored", func(t *testing.T) {
				e := newEnv(t, url(t), false)
				if res := e.handle(t, Event{ID: "evt_x", Type: "customer.created"}); res != ResultIgnored {
					t.Fatalf("customer.created = %s", res)
				}
			})

			t.Run("stripe out of reach: nothing recorded, the retry applies", func(t *testing.T) {
				e := newEnv(t, url(t), false)
				e.stripe.set(e.sub("sub_1", "active", e.clock.Now()))
				e.stripe.down = true
				var we *wire.Error
				if _, err := e.svc.HandleEvent(t.Context(), e.event("evt_1", "invoice.paid", "sub_1")); !errors.As(err, &we) || we.Code != wire.CodeUnavailable {
					t.Fatalf("HandleEvent with Stripe down = %v, want unavailable", err)
				}
				e.stripe.down = false
				if res := e.handle(t, e.event("evt_1", "invoice.paid", "sub_1")); res != ResultApplied {
					t.Fatalf("the retry: %s", res)
				}
			})
		})
	}
}

func ptr[T any](v T) *T { return &v }

func withEnded(s Subscription, at time.Time) Subscription { s.EndedAt = &at; return s }

// TestKilledBetweenEventAndBot is pmd killed after recording an event and before making its
// bot: the transaction that recorded the event never commits, so Stripe's retry finds it new
// and applies it; however many retries follow, one bot and one grant.
func TestKilledBetweenEventAndBot(t *testing.T) {
	for name, url := range backends() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			u := url(t)
			e := newEnv(t, u, false)
			e.stripe.set(e.sub("sub_1", "active", e.clock.Now()))
			killed := errors.New("killed")
			e.svc.failAfterRecord = func(string) error { return killed }
			if _, err := e.svc.HandleEvent(t.Context(), e.event("evt_1", "checkout.session.completed", "sub_1")); !errors.Is(err, killed) {
				t.Fatalf("HandleEvent = %v", err)
			}
			if got := e.state(t); got != (state{}) {
				t.Fatalf("after the kill: %+v, want nothing", got)
			}
			// The restarted pmd: a new service on the same database.
			e.svc = New(e.st, e.bots, &credits.Ledger{Store: e.st, Now: e.clock.Now}, e.svc.keys, e.svc.cfg, e.svc.log)
			for range 3 {
				e.handle(t, e.event("evt_1", "checkout.session.completed", "sub_1"))
				e.handle(t, e.event("evt_2", "invoice.paid", "sub_1"))
			}
			want := state{subs: 1, status: "active", bots: 1, desired: store.DesiredRunning, grants: 1, balance: 10 * credits.Micro}
			if got := e.state(t); got != want {
				t.Fatalf("after the restart and retries: %+v, want %+v", got, want)
			}
		})
	}
}
