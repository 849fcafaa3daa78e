package e2e_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v86"
	"github.com/stripe/stripe-go/v86/webhook"

	"github.com/pocketmolt/pocketmolt/internal/billing"
	"github.com/pocketmolt/pocketmolt/internal/pmd"
	"github.com/pocketmolt/pocketmolt/internal/stripemock"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

const (
	e2eStripeKey = "sk_test_e2e0123456789"
	e2eWhsec     = "whsec_e2e0123456789"
)

// stripePMD is a pmd on Stripe (stripe-mock) with one plan whose price is stripe-mock's
// fixture price, so the subscriptions stripe-mock hands back map to it.
func stripePMD(t *testing.T) *testPMD {
	t.Helper()
	base := stripemock.Start(t)
	sc, err := billing.NewStripeClient(billing.StripeClientConfig{SecretKey: e2eStripeKey, APIBase: base})
	if err != nil {
		t.Fatal(err)
	}
	probe, err := sc.GetSubscription(t.Context(), "sub_probe")
	if err != nil || probe.PriceID == "" || probe.Status != "active" {
		t.Fatalf("stripe-mock's subscription fixture: %+v, %v", probe, err)
	}
	return startPMD(t, func(c *pmdConfig) {
		c.BotImage = testImage
		c.BotStartTimeout = time.Minute
		c.MetricsAddr = "127.0.0.1:0"
		c.Stripe = pmdStripe{SecretKey: e2eStripeKey, WebhookSecret: e2eWhsec, APIBase: base}
		c.Plans = []billing.Plan{{ID: "solo", Name: "Solo", Price: "20.00", Currency: "eur", StripePriceID: probe.PriceID,
			IncludedCredits: "10.00", Placement: billing.PlacementShared, Memory: "1GiB", CPUs: 1, PIDs: 256,
			Models: []string{"anthropic/claude-sonnet-4-6"}}}
	})
}

// checkoutCompleted is Stripe's event for a customer's finished Checkout.
func checkoutCompleted(eventID, userID, subID string) []byte {
	return fmt.Appendf(nil, `{"id": %q, "object": "event", "api_version": %q, "created": %d, "type": "checkout.session.completed",
  "data": {"object": {"id": "cs_test_%s", "object": "checkout.session", "client_reference_id": %q, "customer": "cus_%s",
  "metadata": {"user_id": %q, "plan_id": "solo"}, "mode": "subscription", "status": "complete", "subscription": %q}}}`,
		eventID, stripe.APIVersion, time.Now().Unix(), eventID, userID, userID, userID, subID)
}

// postWebhook posts body to pmd's Stripe webhook with sig ("" for none).
func (p *testPMD) postWebhook(body []byte, sig string) (int, string) {
	p.t.Helper()
	req, err := http.NewRequestWithContext(p.t.Context(), http.MethodPost, "http://"+p.D.PublicAddr+"/webhooks/stripe", strings.NewReader(string(body)))
	if err != nil {
		p.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if sig != "" {
		req.Header.Set("Stripe-Signature", sig)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func sign(body []byte, secret string, at time.Time) string {
	return webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: secret, Timestamp: at}).Header
}

// TestStripeCheckoutOnDocker is a payment as Stripe delivers it: a signed webhook to pmd's
// public listener, Stripe's API (stripe-mock) read for the subscription, and the customer's
// bot running on the real Docker Engine; replays and forgeries change nothing.
func TestStripeCheckoutOnDocker(t *testing.T) {
	d := engine(t)
	p := stripePMD(t)
	p.enrollDocker("edge-1", d, wire.Capacity{Bots: 4, MemoryBytes: 8 << 30})
	p.waitStatus("edge-1", wire.HostOnline)
	ctx := t.Context()

	u, err := p.D.Accounts.Signup(ctx, "ada@example.com", "correct horse battery staple", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.D.Billing.SaveAssistant(ctx, u.ID, billing.AssistantInput{Name: "Jeeves", PlanID: "solo", Model: "anthropic/claude-sonnet-4-6",
		WebChat: true, KeyMode: billing.KeyBYOK, APIKey: testAPIKey}); err != nil {
		t.Fatal(err)
	}
	body := checkoutCompleted("evt_e2e_1", u.ID, "sub_e2e_1")

	// Forgeries first: nothing is written.
	for name, sig := range map[string]string{
		"no signature":   "",
		"another secret": sign(body, "whsec_someone_else", time.Now()),
		"an old one":     sign(body, e2eWhsec, time.Now().Add(-time.Hour)),
	} {
		if code, resp := p.postWebhook(body, sig); code != http.StatusBadRequest {
			t.Errorf("%s: %d %s, want 400", name, code, resp)
		}
	}
	if o, err := p.D.Billing.Overview(ctx, u.ID); err != nil || o.Subscription != nil {
		t.Fatalf("after forged webhooks: %+v, %v", o.Subscription, err)
	}

	for i, want := range []string{billing.ResultApplied, billing.ResultDuplicate, billing.ResultDuplicate} {
		if code, resp := p.postWebhook(body, sign(body, e2eWhsec, time.Now())); code != http.StatusOK || !strings.Contains(resp, want) {
			t.Fatalf("delivery %d: %d %s, want 200 %s", i, code, resp, want)
		}
	}
	o, err := p.D.Billing.Overview(ctx, u.ID)
	if err != nil || o.Bot == nil || o.Subscription == nil || o.Subscription.Status != "active" {
		t.Fatalf("after the payment: %+v, %v", o, err)
	}
	b := p.waitBot(o.Bot.ID, 90*time.Second, "running and healthy", running)
	if b.HostName != "edge-1" {
		t.Fatalf("bot on %q", b.HostName)
	}
	bs, err := p.admin().ListBots(ctx)
	if err != nil || len(bs) != 1 {
		t.Fatalf("bots after three deliveries: %d, %v", len(bs), err)
	}
	waitStage(t, p, u.ID, billing.StageRunning)

	// What operators see: one event applied, two duplicates; one active Stripe subscription.
	resp, err := http.Get("http://" + p.D.MetricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`pocketmolt_stripe_events_total{result="applied",type="checkout.session.completed"} 1`,
		`pocketmolt_stripe_events_total{result="duplicate",type="checkout.session.completed"} 2`,
		`pocketmolt_subscriptions{source="stripe",status="active"} 1`,
		`pocketmolt_users 1`,
	} {
		if !strings.Contains(string(m), want) {
			t.Errorf("metrics lack %s", want)
		}
	}

	// The customer deletes their account: the subscription is canceled at Stripe, and the bot
	// goes with its workspace once its host confirms.
	if err := p.D.Billing.DeleteCustomer(ctx, u.ID); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, err := p.admin().GetBot(ctx, o.Bot.ID)
		if err != nil && strings.Contains(err.Error(), "no bot") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the deleted customer's bot is still there: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := p.D.Accounts.Get(ctx, u.ID); err == nil {
		t.Fatal("the deleted customer's account is still there")
	}
}

type pmdStripe = pmd.StripeConfig

func waitStage(t *testing.T, p *testPMD, userID, stage string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	for {
		o, err := p.D.Billing.Overview(ctx, userID)
		if err == nil && o.Stage == stage {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("stage %s never came: last %+v, %v", stage, o.Stage, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
