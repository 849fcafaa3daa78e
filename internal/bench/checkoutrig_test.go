package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v86"
	"github.com/stripe/stripe-go/v86/webhook"

	"github.com/pocketmolt/pocketmolt/internal/billing"
	"github.com/pocketmolt/pocketmolt/internal/pmd"
	"github.com/pocketmolt/pocketmolt/internal/runtime/docker"
	"github.com/pocketmolt/pocketmolt/internal/store"
	"github.com/pocketmolt/pocketmolt/internal/stripemock"
)

// The Stripe secrets of the checkout rig: test-mode shapes, known only to this process.
const (
	checkoutStripeKey     = "sk_test_pocketmoltbench"
	checkoutWebhookSecret = "whsec_pocketmolt_bench"
	checkoutPlanID        = "bench"
	checkoutModel         = "anthropic/claude-sonnet-4-6"
)

// checkoutRig is the bots rig with the customers' side on: pmd's billing talks to a
// stripe-mock (through stripeTimer, which times each call) and takes signed webhooks on
// pmd's public listener.
type checkoutRig struct {
	*botsRig
	stripe *stripeTimer
	// priceID is the price stripe-mock's subscriptions carry, which the bench plan sells.
	priceID string
	// runID keeps this run's Stripe ids apart from any other's.
	runID string
	http  *http.Client
	// customers are the customers measureCheckout signed up, in the order they paid.
	customers []customer
}

// newCheckoutRig starts a stripe-mock, reads the price its subscriptions carry, and starts pmd
// with Stripe on and a plan of that price, then enrolls a host and starts its agent as
// newBotsRig does. Cleanup stops everything and removes every container and network of the
// host's bots, including customers' bots the benchmark never got to see.
func newCheckoutRig(tb testing.TB, eng *docker.Docker, opts rigOptions) *checkoutRig {
	tb.Helper()
	ctx := tb.Context()
	timer := newStripeTimer(tb, stripemock.Start(tb))

	// stripe-mock is stateless: GET /v1/subscriptions/{id} echoes the id and otherwise
	// returns one fixture. Its price is what the plan must sell for the state machine to
	// map a subscription to it.
	sc, err := billing.NewStripeClient(billing.StripeClientConfig{SecretKey: checkoutStripeKey, APIBase: timer.url})
	if err != nil {
		tb.Fatal(err)
	}
	fixture, err := sc.GetSubscription(ctx, "sub_bench_probe")
	if err != nil {
		tb.Fatalf("read stripe-mock's subscription fixture: %v", err)
	}
	if fixture.Status != "active" || !strings.HasPrefix(fixture.PriceID, "price_") {
		tb.Fatalf("stripe-mock's subscription fixture is %q with price %q; the benchmark needs an active subscription with a price", fixture.Status, fixture.PriceID)
	}

	plan := billing.Plan{
		ID: checkoutPlanID, Name: "Bench", Price: "19.00", Currency: "eur", StripePriceID: fixture.PriceID,
		IncludedCredits: "10.00", Placement: billing.PlacementShared,
		// The smallest plan validation allows; the stand-in uses a few MiB of it.
		Memory: "1GiB", CPUs: 0.5, PIDs: 128,
		Models: []string{checkoutModel}, ToolsProfile: "messaging",
	}
	opts.Configure = func(cfg *pmd.Config) {
		cfg.Plans = []billing.Plan{plan}
		cfg.Stripe = pmd.StripeConfig{SecretKey: checkoutStripeKey, WebhookSecret: checkoutWebhookSecret, APIBase: timer.url}
	}
	r := newBotsRig(tb, eng, opts)
	if r.pm.d.Billing.TestMode() {
		tb.Fatal("pmd runs in test billing mode although a Stripe key is configured")
	}
	// Runs before r.close (cleanups run last first): every bot pmd made, also one whose
	// container never came, goes on the list close removes from the engine with its network.
	tb.Cleanup(func() {
		bs, err := r.pm.d.Store.ListBots(context.Background())
		if err != nil {
			tb.Errorf("list bots to remove: %v", err)
			return
		}
		r.mu.Lock()
		for _, b := range bs {
			r.bots = append(r.bots, b.ID)
		}
		r.mu.Unlock()
	})
	return &checkoutRig{
		botsRig: r, stripe: timer, priceID: fixture.PriceID,
		runID: strings.ToLower(rand.Text()[:8]),
		http:  &http.Client{Timeout: time.Minute, Transport: &http.Transport{}},
	}
}

// customer is one signed-up customer with an assistant, ready to pay.
type customer struct {
	userID, email string
}

// addCustomer signs a customer up through pmd's accounts service and saves their assistant
// (web chat, their own Anthropic key, so no platform key is needed) through billing, as the
// onboarding page does.
func (r *checkoutRig) addCustomer(ctx context.Context, i int) (customer, error) {
	d := r.pm.d
	email := fmt.Sprintf("customer%02d-%s@example.com", i, r.runID)
	// A documentation address each: sign-ups are limited per address.
	ip := fmt.Sprintf("198.51.100.%d", i%250+1)
	u, err := d.Accounts.Signup(ctx, email, "correct horse battery staple", ip)
	if err != nil {
		return customer{}, fmt.Errorf("sign up %s: %w", email, err)
	}
	in := billing.AssistantInput{
		Name: fmt.Sprintf("Assistant %d", i), PlanID: checkoutPlanID, Model: checkoutModel, WebChat: true,
		KeyMode: billing.KeyBYOK, APIKey: "sk-ant-bench-" + r.runID + "-0123456789abcdef",
	}
	if err := d.Billing.SaveAssistant(ctx, u.ID, in); err != nil {
		return customer{}, fmt.Errorf("save the assistant of %s: %w", email, err)
	}
	return customer{userID: u.ID, email: email}, nil
}

// subscriptionID is the Stripe subscription customer i's checkout makes. stripe-mock echoes
// it back from GET /v1/subscriptions/{id}.
func (r *checkoutRig) subscriptionID(i int) string {
	return fmt.Sprintf("sub_bench%s%02d", r.runID, i)
}

// checkoutEvent is the checkout.session.completed Stripe sends when customer i has paid, in
// the shape of billing's event tests.
func (r *checkoutRig) checkoutEvent(c customer, i int, now time.Time) ([]byte, error) {
	meta := map[string]string{"plan_id": checkoutPlanID, "user_id": c.userID}
	return json.Marshal(map[string]any{
		"id":          fmt.Sprintf("evt_bench%s%02d", r.runID, i),
		"object":      "event",
		"api_version": stripe.APIVersion,
		"created":     now.Unix(),
		"data": map[string]any{"object": map[string]any{
			"id":                  fmt.Sprintf("cs_test_bench%s%02d", r.runID, i),
			"object":              "checkout.session",
			"amount_total":        1900,
			"client_reference_id": c.userID,
			"currency":            "eur",
			"customer":            fmt.Sprintf("cus_bench%s%02d", r.runID, i),
			"customer_details":    map[string]any{"email": c.email, "name": nil},
			"metadata":            meta,
			"mode":                "subscription",
			"payment_status":      "paid",
			"status":              "complete",
			"subscription":        r.subscriptionID(i),
			"success_url":         r.pm.d.PublicURL + "/billing/done",
			"url":                 nil,
		}},
		"livemode":         false,
		"pending_webhooks": 1,
		"request":          map[string]any{"id": nil, "idempotency_key": nil},
		"type":             "checkout.session.completed",
	})
}

// postWebhook sends a signed event to POST /webhooks/stripe on pmd's public listener, as
// Stripe does, and returns the status and the result pmd reported.
func (r *checkoutRig) postWebhook(ctx context.Context, body []byte) (int, string, error) {
	sig := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: checkoutWebhookSecret, Timestamp: time.Now()})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+r.pm.d.PublicAddr+"/webhooks/stripe", bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("Stripe-Signature", sig.Header)
	resp, err := r.http.Do(req)
	if err != nil {
		return 0, "", fmt.Errorf("post webhook: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, "", fmt.Errorf("read webhook answer: %w", err)
	}
	var out struct {
		Result string `json:"result"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(raw, &out) != nil {
		return resp.StatusCode, "", fmt.Errorf("webhook answered %s: %s", resp.Status, tail(string(raw), 300))
	}
	return resp.StatusCode, out.Result, nil
}

// botOf is the bot of customer c's subscription, once pmd made it.
func (r *checkoutRig) botOf(ctx context.Context, c customer) (store.Subscription, error) {
	subs, err := r.pm.d.Store.ListSubscriptions(ctx, c.userID)
	if err != nil {
		return store.Subscription{}, fmt.Errorf("list subscriptions of %s: %w", c.userID, err)
	}
	if len(subs) != 1 {
		return store.Subscription{}, fmt.Errorf("customer %s has %d subscriptions, want 1", c.email, len(subs))
	}
	return subs[0], nil
}

// stripeTimer is a reverse proxy in front of stripe-mock that times every call pmd makes to
// it: pmd's Stripe reads are outside pmd's control (Stripe's own latency in production), so
// the benchmark reports them apart. The proxy adds a loopback hop, well under a millisecond.
type stripeTimer struct {
	url string

	mu    sync.Mutex
	calls map[string][]time.Duration // "GET /v1/subscriptions/sub_…" →
}

func newStripeTimer(tb testing.TB, base string) *stripeTimer {
	tb.Helper()
	target, err := url.Parse(base)
	if err != nil {
		tb.Fatal(err)
	}
	t := &stripeTimer{calls: map[string][]time.Duration{}}
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.Transport = timedTransport{rt: http.DefaultTransport.(*http.Transport).Clone(), t: t}
	srv := httptest.NewServer(proxy)
	tb.Cleanup(srv.Close)
	t.url = srv.URL
	return t
}

// call is how long the first call "METHOD path" took, and whether there was one.
func (t *stripeTimer) call(method, path string) (time.Duration, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ds := t.calls[method+" "+path]
	if len(ds) == 0 {
		return 0, false
	}
	return ds[0], true
}

type timedTransport struct {
	rt http.RoundTripper
	t  *stripeTimer
}

// RoundTrip times the exchange with stripe-mock up to its whole body read, as stripe-go
// reads it.
func (tt timedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	began := time.Now()
	resp, err := tt.rt.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	d := time.Since(began)
	resp.Body = io.NopCloser(bytes.NewReader(body))
	key := req.Method + " " + req.URL.Path
	tt.t.mu.Lock()
	tt.t.calls[key] = append(tt.t.calls[key], d)
	tt.t.mu.Unlock()
	return resp, nil
}
