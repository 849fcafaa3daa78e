package metrics

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// stripeEventTypes are the Stripe event types billing acts on; others count as "other", so
// whoever can send a signed event cannot grow the label set.
var stripeEventTypes = map[string]bool{
	"checkout.session.completed": true, "customer.subscription.created": true, "customer.subscription.updated": true,
	"customer.subscription.deleted": true, "invoice.paid": true, "invoice.payment_failed": true,
}

// stripeResults are what billing makes of an event.
var stripeResults = map[string]bool{"applied": true, "duplicate": true, "ignored": true, "error": true}

// StripeEvent counts one Stripe event billing handled, by type and result (applied,
// duplicate, ignored or error).
func (m *Metrics) StripeEvent(typ, result string) {
	if m == nil {
		return
	}
	if !stripeEventTypes[typ] {
		typ = "other"
	}
	if !stripeResults[result] {
		result = "error"
	}
	m.stripe.WithLabelValues(typ, result).Inc()
}

func newStripeCounter() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "stripe_events_total",
		Help: "Stripe webhook events billing handled, by type and result (applied, duplicate, ignored, error).",
	}, []string{"type", "result"})
}

// Customers is where the customers collector reads from at each scrape.
type Customers struct {
	Users         func(context.Context) (int, error)
	Subscriptions func(context.Context) ([]wire.Subscription, error)
}

var (
	usersDesc = prometheus.NewDesc(namespace+"_users", "Customer accounts.", nil, nil)
	subsDesc  = prometheus.NewDesc(namespace+"_subscriptions", "Subscriptions by status (Stripe's: active, past_due, canceled…) and source (stripe, grant, test).", []string{"status", "source"}, nil)
)

// Describe implements prometheus.Collector.
func (c Customers) Describe(ch chan<- *prometheus.Desc) {
	ch <- usersDesc
	ch <- subsDesc
}

// Collect implements prometheus.Collector. A failed read leaves its series out; the fleet
// collector's store_up says the store is out of reach.
func (c Customers) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	if n, err := c.Users(ctx); err == nil {
		gauge(ch, usersDesc, float64(n))
	}
	subs, err := c.Subscriptions(ctx)
	if err != nil {
		return
	}
	type key struct{ status, source string }
	counts := map[key]int{}
	for _, s := range subs {
		counts[key{s.Status, s.Source}]++
	}
	for k, n := range counts {
		gauge(ch, subsDesc, float64(n), k.status, k.source)
	}
}
