package bench

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/billing"
	"github.com/pocketmolt/pocketmolt/internal/store"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

var (
	checkoutCustomers = flag.Int("checkout.customers", 20, "BenchmarkCheckout/webhook: customers who pay one after another")
	checkoutInterval  = flag.Duration("checkout.interval", 100*time.Millisecond, "BenchmarkCheckout/webhook: the agent's bot interval (converge and probe); the product's default is 2s")
	checkoutHashes    = flag.Int("checkout.hashes", 20, "BenchmarkCheckout/passwords: argon2id hashes per goroutine")
	checkoutLogins    = flag.Int("checkout.logins", 50, "BenchmarkCheckout/passwords: logins of each kind")
)

// BenchmarkCheckout measures what a paying customer waits for, and prints markdown tables for
// the README:
//
//	webhook    customers pay one after another: a signed checkout.session.completed is POSTed
//	           to pmd's public listener as Stripe would, and each is timed until pmd records
//	           the customer's bot running and healthy on the local Docker Engine (stand-in
//	           gateway image, one shared host); the time split into stages (see checkoutSample)
//	passwords  argon2id with accounts.DefaultParams, hashes per second on one goroutine and on
//	           two, and the latency of accounts.Service.Login on SQLite (and on PostgreSQL when
//	           PM_TEST_POSTGRES_URL is set)
//
//	go test -run '^$' -bench BenchmarkCheckout -benchtime 1x -timeout 30m ./internal/bench/
//
// pmd runs in this process with Stripe on, pointed at a stripe-mock. Each sub-benchmark sets
// up its own and removes the containers, networks and databases it made; TestMain removes the
// image. -benchtime 1x is enough: a run is one measurement.
func BenchmarkCheckout(b *testing.B) {
	var tables []string
	b.Run("webhook", func(b *testing.B) {
		eng := engine(b)
		n := *checkoutCustomers
		load0 := loadAverage()
		r := newCheckoutRig(b, eng, rigOptions{Interval: *checkoutInterval, Capacity: wire.Capacity{Bots: n + 1, MemoryBytes: int64(n+1) << 30}})
		samples, err := measureCheckout(b.Context(), r, n)
		if err != nil {
			b.Fatal(err)
		}
		s := summarizeCheckout(samples)
		b.ReportMetric(0, "ns/op")
		b.ReportMetric(ms(s.p50.total), "total-p50-ms")
		b.ReportMetric(ms(s.p50.webhook), "webhook-p50-ms")
		b.ReportMetric(ms(s.p50.started), "started-p50-ms")
		b.Logf("pmd: %s; agent: %s", r.pm.warns.summary(), r.agent.warns.summary())
		b.Logf("engine calls, p50 (n): %s", engineCallSummary(r.agent.rt.snapshot()))
		for i, s := range samples {
			b.Logf("customer %2d: total %4.0f webhook %5.1f (stripe %4.1f) delivered %5.1f agent %5.1f docker %5.1f started %5.1f gateway %4.0f detection %3.0f ms",
				i, ms(s.total), ms(s.webhook), ms(s.stripe), ms(s.delivered), ms(s.agent), ms(s.docker), ms(s.started), ms(s.gateway), ms(s.detection))
		}
		var w strings.Builder
		writeCheckoutTable(&w, s, *checkoutInterval, load0, loadAverage())
		tables = append(tables, w.String())
	})
	b.Run("passwords", func(b *testing.B) {
		load0 := loadAverage()
		res, err := measurePasswords(b.Context(), b, *checkoutHashes, *checkoutLogins)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(0, "ns/op")
		b.ReportMetric(res.single, "hashes/s-1")
		b.ReportMetric(res.pair, "hashes/s-2")
		b.ReportMetric(ms(percentile(res.dbs[0].login, 0.5)), "login-p50-ms")
		var w strings.Builder
		writePasswordTable(&w, res, load0, loadAverage())
		tables = append(tables, w.String())
	})
	for _, t := range tables {
		fmt.Fprintln(os.Stdout)
		fmt.Fprint(os.Stdout, t)
	}
}

// TestCheckout runs BenchmarkCheckout's scenarios small — two customers pay, a few hashes and
// logins — and checks outcomes: each customer ends with one running, healthy bot on an active
// subscription of the plan Stripe's price names, a replayed event changes nothing, and
// the password numbers come from logins that succeeded and failed as they should.
func TestCheckout(t *testing.T) {
	t.Run("webhook", func(t *testing.T) {
		eng := engine(t)
		r := newCheckoutRig(t, eng, rigOptions{Interval: 100 * time.Millisecond, Capacity: wire.Capacity{Bots: 2, MemoryBytes: 2 << 30}})
		samples, err := measureCheckout(t.Context(), r, 2)
		if err != nil {
			t.Fatal(err)
		}
		for i, s := range samples {
			if s.total <= 0 || s.webhook <= 0 || s.stripe <= 0 || s.delivered <= 0 || s.docker <= 0 || s.gateway <= 0 || s.started < s.docker {
				t.Errorf("customer %d: a stage was not measured: %+v", i, s)
			}
		}
		ctx := t.Context()
		// Stripe sends an event again when it is unsure it arrived: pmd answers it and
		// changes nothing.
		c := r.customers[0]
		ev, err := r.checkoutEvent(c, 0, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if _, res, err := r.postWebhook(ctx, ev); err != nil || res != billing.ResultDuplicate {
			t.Fatalf("replayed event: %q, %v; want %q", res, err, billing.ResultDuplicate)
		}
		bs, err := r.pm.d.Store.ListBots(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(bs) != 2 {
			t.Fatalf("%d bots after two customers paid and one event came twice, want 2", len(bs))
		}
		for _, c := range r.customers {
			x, err := r.botOf(ctx, c)
			if err != nil {
				t.Fatal(err)
			}
			if x.Status != "active" || x.PlanID != checkoutPlanID || x.Source != store.SourceStripe || x.BotID == "" {
				t.Errorf("customer %s: subscription %+v, want active on %s from Stripe with a bot", c.email, x, checkoutPlanID)
				continue
			}
			b, err := r.pm.d.Bots.Get(ctx, x.BotID)
			if err != nil {
				t.Fatal(err)
			}
			if b.Status != wire.BotRunning || b.Health != wire.HealthHealthy || b.Owner != "customer:"+c.userID {
				t.Errorf("customer %s: bot %s is %s/%s owned by %q", c.email, b.ID, b.Status, b.Health, b.Owner)
			}
		}
		writeCheckoutTable(t.Output(), summarizeCheckout(samples), 100*time.Millisecond, loadAverage(), loadAverage())
	})
	t.Run("passwords", func(t *testing.T) {
		res, err := measurePasswords(t.Context(), t, 2, 2)
		if err != nil {
			t.Fatal(err)
		}
		if res.single <= 0 || res.pair <= 0 || len(res.dbs) == 0 || len(res.dbs[0].login) != 2 || len(res.dbs[0].unknown) != 2 {
			t.Fatalf("not everything was measured: %+v", res)
		}
		writePasswordTable(t.Output(), res, loadAverage(), loadAverage())
	})
}

// checkoutSample is one customer's way from the webhook's POST to pmd recording their bot
// running and healthy. Milestones are times since the POST began:
//
//	webhook    pmd answered 200: the signature checked, the subscription read from Stripe
//	           (stripe, a span: stripe-mock on loopback here), the event, subscription,
//	           credits and bot written in one transaction
//	delivered  pmd has the host's acknowledgement of the set with the new bot (the bots
//	           service sends it as soon as the transaction commits, so it may come before the
//	           answer)
//	started    the agent's Start of the container returned: the platform's share
//	total      pmd has recorded the bot running and healthy
//
// and spans, covering delivered → total without overlap, as in createSample:
//
//	agent      delivered until Start returns, less the engine calls
//	docker     the engine calls in that span (list: List's share)
//	gateway    Start returned until /startupz first answers 200 to the benchmark's own
//	           2 ms probe loop; listen until it answers at all
//	detection  then until pmd has recorded running+healthy
type checkoutSample struct {
	total, webhook, stripe, delivered, agent, docker, list, started, gateway, listen, detection time.Duration
	// platform is delivered + agent: the platform's share less Docker's engine calls.
	platform time.Duration
}

// measureCheckout signs n customers up, then has them pay one after another, each timed to
// running and healthy. The customers are kept in r.customers.
func measureCheckout(ctx context.Context, r *checkoutRig, n int) ([]checkoutSample, error) {
	for i := range n {
		c, err := r.addCustomer(ctx, i)
		if err != nil {
			return nil, err
		}
		r.customers = append(r.customers, c)
	}
	gw := newGatewayWatch(r.eng)
	r.agent.rt.setOnStart(gw.watch)
	defer r.agent.rt.setOnStart(nil)
	var out []checkoutSample
	for i, c := range r.customers {
		body, err := r.checkoutEvent(c, i, time.Now())
		if err != nil {
			return out, err
		}
		t0 := time.Now()
		_, res, err := r.postWebhook(ctx, body)
		if err != nil {
			return out, fmt.Errorf("customer %d: %w", i, err)
		}
		tAnswered := time.Now()
		if res != billing.ResultApplied {
			return out, fmt.Errorf("customer %d: webhook result %q, want %q", i, res, billing.ResultApplied)
		}
		x, err := r.botOf(ctx, c)
		if err != nil {
			return out, err
		}
		if x.BotID == "" || x.Status != "active" || x.PlanID != checkoutPlanID {
			return out, fmt.Errorf("customer %d: after the webhook the subscription is %s on %q with bot %q; want active on %s with a bot",
				i, x.Status, x.PlanID, x.BotID, checkoutPlanID)
		}
		r.mu.Lock()
		r.bots = append(r.bots, x.BotID)
		r.mu.Unlock()

		var tEnd time.Time
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(time.Millisecond) {
			if t, ok := r.obs.healthyAt(x.BotID); ok {
				tEnd = t
				break
			}
			if time.Now().After(deadline) {
				return out, fmt.Errorf("customer %d: bot %s not reported healthy within a minute", i, x.BotID)
			}
		}
		if err := r.waitAllHealthy(ctx, []string{x.BotID}, 10*time.Second); err != nil {
			return out, err
		}
		t1, ok := r.syncs.first(t0, i+1)
		if !ok {
			return out, fmt.Errorf("customer %d: pmd logged no sync with %d bots", i, i+1)
		}
		stripeRead, ok := r.stripe.call("GET", "/v1/subscriptions/"+r.subscriptionID(i))
		if !ok {
			return out, fmt.Errorf("customer %d: pmd did not read subscription %s from Stripe", i, r.subscriptionID(i))
		}
		var startEnd time.Time
		calls := r.agent.rt.snapshot()
		for _, c := range calls {
			if c.op == "Start" && c.bot == x.BotID && c.err == nil {
				startEnd = c.end
				break
			}
		}
		if startEnd.IsZero() {
			return out, fmt.Errorf("customer %d: no Start call recorded for bot %s", i, x.BotID)
		}
		gt, ok := gw.get(x.BotID)
		for deadline := time.Now().Add(5 * time.Second); !ok && time.Now().Before(deadline); gt, ok = gw.get(x.BotID) {
			time.Sleep(time.Millisecond)
		}
		if !ok || gt.err != nil {
			return out, fmt.Errorf("customer %d: gateway not watched: %v", i, gt.err)
		}
		s := checkoutSample{
			total: tEnd.Sub(t0), webhook: tAnswered.Sub(t0), stripe: stripeRead,
			delivered: t1.Sub(t0), started: startEnd.Sub(t0),
		}
		// Engine calls before the set's delivery are the agent's own passes over the bots
		// it has, alongside pmd's work rather than in its way: only those after it count.
		for _, c := range calls {
			d := overlap(c.start, c.end, t1, startEnd)
			s.docker += d
			if c.op == "List" {
				s.list += d
			}
		}
		s.agent = startEnd.Sub(t1) - s.docker
		s.platform = s.delivered + s.agent
		s.gateway = gt.ready.Sub(startEnd)
		s.listen = gt.listening.Sub(startEnd)
		s.detection = tEnd.Sub(gt.ready)
		out = append(out, s)
	}
	return out, nil
}

type checkoutSummary struct {
	n             int
	p50, p90, max checkoutSample
}

// summarizeCheckout takes each column's quantile on its own: the p50 row is not one
// customer, and its parts need not add up to its total.
func summarizeCheckout(ss []checkoutSample) checkoutSummary {
	cols := []func(*checkoutSample) *time.Duration{
		func(s *checkoutSample) *time.Duration { return &s.total },
		func(s *checkoutSample) *time.Duration { return &s.webhook },
		func(s *checkoutSample) *time.Duration { return &s.stripe },
		func(s *checkoutSample) *time.Duration { return &s.delivered },
		func(s *checkoutSample) *time.Duration { return &s.agent },
		func(s *checkoutSample) *time.Duration { return &s.docker },
		func(s *checkoutSample) *time.Duration { return &s.list },
		func(s *checkoutSample) *time.Duration { return &s.started },
		func(s *checkoutSample) *time.Duration { return &s.gateway },
		func(s *checkoutSample) *time.Duration { return &s.listen },
		func(s *checkoutSample) *time.Duration { return &s.detection },
		func(s *checkoutSample) *time.Duration { return &s.platform },
	}
	row := func(q float64) checkoutSample {
		var out checkoutSample
		for _, col := range cols {
			ds := make([]time.Duration, len(ss))
			for i := range ss {
				ds[i] = *col(&ss[i])
			}
			slices.Sort(ds)
			*col(&out) = percentile(ds, q)
		}
		return out
	}
	return checkoutSummary{n: len(ss), p50: row(0.5), p90: row(0.9), max: row(1)}
}

func writeCheckoutTable(w io.Writer, s checkoutSummary, interval time.Duration, load0, load1 string) {
	fmt.Fprintf(w, "Signed `checkout.session.completed` → bot running+healthy, %d customers one after another, agent interval %s, load average %s → %s (ms; each column's quantile on its own):\n\n",
		s.n, interval, load0, load1)
	fmt.Fprintln(w, "| | total | webhook answered | (of it Stripe read) | set delivered | agent | Docker | (of it List) | container started | gateway listening | gateway ready | detection | platform less Docker |")
	fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, r := range []struct {
		name string
		s    checkoutSample
	}{{"p50", s.p50}, {"p90", s.p90}, {"max", s.max}} {
		fmt.Fprintf(w, "| %s | %.0f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.0f | %.0f | %.0f | %.1f |\n", r.name,
			ms(r.s.total), ms(r.s.webhook), ms(r.s.stripe), ms(r.s.delivered), ms(r.s.agent), ms(r.s.docker), ms(r.s.list),
			ms(r.s.started), ms(r.s.listen), ms(r.s.gateway), ms(r.s.detection), ms(r.s.platform))
	}
	fmt.Fprintf(w, "\nThe platform's share, webhook → container started: p50 %.0f ms, p90 %.0f ms, max %.0f ms (the aim: under 1 s; %s at p50, %s at p90); of it Docker's engine calls took %.0f ms at p50, the rest %.1f ms.\n",
		ms(s.p50.started), ms(s.p90.started), ms(s.max.started), aim(s.p50.started), aim(s.p90.started), ms(s.p50.docker), ms(s.p50.platform))
}

// aim says whether d is under the platform's 1 s aim.
func aim(d time.Duration) string {
	if d < time.Second {
		return "met"
	}
	return "missed"
}

// loadAverage is the machine's 1-minute load average, for the tables' headings: the machine
// is shared, and a number means little without it.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "unknown"
	}
	return f[0]
}
