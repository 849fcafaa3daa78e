package billing

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v86"

	"github.com/pocketmolt/pocketmolt/internal/credits"
	"github.com/pocketmolt/pocketmolt/internal/store"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// checkoutEvent is a signed-shape checkout.session.completed for the env's customer.
func (e *env) checkoutEvent(id, subID string) []byte {
	return fmt.Appendf(nil, `{"id": %q, "object": "event", "api_version": %q, "created": %d, "type": "checkout.session.completed",
  "data": {"object": {"id": "cs_test_1", "object": "checkout.session", "client_reference_id": %q, "customer": "cus_%s",
  "metadata": {"user_id": %q, "plan_id": "personal"}, "mode": "subscription", "status": "complete", "subscription": %q}}}`,
		id, stripe.APIVersion, e.clock.Now().Unix(), e.user, e.user, e.user, subID)
}

func TestWebhookSignatures(t *testing.T) {
	e := newEnv(t, backends()["sqlite"](t), false)
	e.stripe.set(e.sub("sub_1", "active", e.clock.Now()))
	h := e.svc.Webhook()
	post := func(body []byte, sig string) (int, string) {
		req := httptest.NewRequest(http.MethodPost, "/webhooks/stripe", strings.NewReader(string(body)))
		if sig != "" {
			req.Header.Set("Stripe-Signature", sig)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}
	body := e.checkoutEvent("evt_sig", "sub_1")
	now := e.clock.Now()
	for _, tc := range []struct {
		name string
		sig  string
		body []byte
	}{
		{"no signature", "", body},
		{"another secret", stripeSign(body, "whsec_other", now), body},
		{"an old signature", stripeSign(body, "whsec_test", now.Add(-time.Hour)), body},
		{"a tampered body", stripeSign(body, "whsec_test", now), []byte(strings.Replace(string(body), "sub_1", "sub_9", 1))},
		{"garbage", "t=abc,v1=zz", body},
	} {
		code, resp := post(tc.body, tc.sig)
		if code != http.StatusBadRequest || !strings.Contains(resp, `"code":"invalid_argument"`) {
			t.Errorf("%s: %d %s, want 400 invalid_argument", tc.name, code, resp)
		}
	}
	if got := e.state(t); got != (state{}) {
		t.Fatalf("refused webhooks wrote %+v", got)
	}
	var n int
	if evs, _ := e.st.ListSubscriptions(t.Context(), ""); len(evs) != 0 {
		t.Fatalf("subscriptions after refused webhooks: %+v", evs)
	}
	for i, want := range []string{ResultApplied, ResultDuplicate} {
		code, resp := post(body, stripeSign(body, "whsec_test", now))
		if code != http.StatusOK || !strings.Contains(resp, want) {
			t.Fatalf("signed event, delivery %d: %d %s, want 200 %s", i, code, resp, want)
		}
		n++
	}
	if got := e.state(t); got.bots != 1 || got.grants != 1 {
		t.Fatalf("after the signed event: %+v", got)
	}
	// An unknown type: 200, ignored.
	other := []byte(`{"id":"evt_o","object":"event","api_version":"` + stripe.APIVersion + `","type":"customer.created","data":{"object":{"id":"cus_1","object":"customer"}}}`)
	if code, resp := post(other, stripeSign(other, "whsec_test", now)); code != http.StatusOK || !strings.Contains(resp, ResultIgnored) {
		t.Fatalf("unknown type: %d %s", code, resp)
	}
	// A body over the limit.
	big := []byte(strings.Repeat("x", maxWebhookBody+1))
	if code, _ := post(big, stripeSign(big, "whsec_test", now)); code != http.StatusRequestEntityTooLarge && code != http.StatusBadRequest {
		t.Fatalf("an oversized body: %d", code)
	}
}

func TestTestBillingMode(t *testing.T) {
	for name, url := range backends() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, url(t), true)
			ctx := t.Context()
			if !e.svc.TestMode() {
				t.Fatal("no Stripe, yet not test mode")
			}
			o, err := e.svc.Overview(ctx, e.user)
			if err != nil || o.Stage != StageWaitingPayment || o.CreditsLeft != "$0.00" {
				t.Fatalf("before paying: %+v, %v", o, err)
			}
			dest, err := e.svc.Subscribe(ctx, e.user)
			if err != nil || dest != "/app" {
				t.Fatalf("Subscribe = %q, %v", dest, err)
			}
			// A double click: one subscription.
			if _, err := e.svc.Subscribe(ctx, e.user); !isWire(err, wire.CodeConflict) {
				t.Fatalf("second Subscribe = %v, want conflict", err)
			}
			want := state{subs: 1, status: "active", bots: 1, desired: store.DesiredRunning, grants: 1, balance: 10 * credits.Micro}
			if got := e.state(t); got != want {
				t.Fatalf("after Subscribe: %+v, want %+v", got, want)
			}
			o, err = e.svc.Overview(ctx, e.user)
			if err != nil || o.Stage != StagePreparing || o.Bot == nil || o.CreditsLeft != "$10.00" || o.Subscription.Source != store.SourceTest {
				t.Fatalf("after Subscribe, with no host: %+v, %v", o, err)
			}
			// Renewed each period while not canceled; a new period's credits, not carried over.
			e.clock.add(DefaultTestPeriod + time.Minute)
			if err := e.svc.Sweep(ctx); err != nil {
				t.Fatal(err)
			}
			if got := e.state(t); got.status != "active" || got.grants != 2 || got.balance != 10*credits.Micro {
				t.Fatalf("after a period: %+v", got)
			}
			if err := e.svc.Cancel(ctx, e.user); err != nil {
				t.Fatal(err)
			}
			if err := e.svc.Resume(ctx, e.user); err != nil {
				t.Fatal(err)
			}
			if err := e.svc.Cancel(ctx, e.user); err != nil {
				t.Fatal(err)
			}
			if got := e.state(t); got.status != "active" || got.desired != store.DesiredRunning {
				t.Fatalf("canceled at period end, within the period: %+v", got)
			}
			e.clock.add(DefaultTestPeriod)
			if err := e.svc.Sweep(ctx); err != nil {
				t.Fatal(err)
			}
			if got := e.state(t); got.status != "canceled" || got.desired != store.DesiredStopped {
				t.Fatalf("after the canceled period: %+v", got)
			}
			o, _ = e.svc.Overview(ctx, e.user)
			if o.Stage != StageStopped {
				t.Fatalf("stage after the end: %s", o.Stage)
			}
			// Back within retention: the same bot.
			bots, _ := e.st.ListBots(ctx)
			if _, err := e.svc.Subscribe(ctx, e.user); err != nil {
				t.Fatal(err)
			}
			again, _ := e.st.ListBots(ctx)
			if len(again) != 1 || again[0].ID != bots[0].ID || again[0].Desired != store.DesiredRunning {
				t.Fatalf("resubscribed: bots %+v, before %+v", again, bots)
			}
			if err := e.svc.Cancel(ctx, "u-nobody"); !isWire(err, wire.CodeInvalidArgument) {
				t.Fatalf("Cancel of a customer with nothing: %v", err)
			}
			// Stripe webhooks are refused in test mode.
			if _, err := e.svc.HandleEvent(ctx, Event{ID: "evt", Type: "invoice.paid"}); !isWire(err, wire.CodeInvalidArgument) {
				t.Fatalf("an event in test mode: %v", err)
			}
			// Deleting the account takes the bot and every record.
			if err := e.svc.DeleteCustomer(ctx, e.user); err != nil {
				t.Fatal(err)
			}
			if _, err := e.st.GetUser(ctx, e.user); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("user after deletion: %v", err)
			}
			if bs, _ := e.st.ListBots(ctx); len(bs) > 0 && (bs[0].Desired != store.DesiredDeleted || !bs[0].Purge) {
				t.Fatalf("bot after the account's deletion: %+v", bs)
			}
		})
	}
}

func TestGrant(t *testing.T) {
	e := newEnv(t, backends()["sqlite"](t), false)
	ctx := t.Context()
	for _, bad := range []struct {
		plan string
		days int
		code string
	}{{"nope", 30, wire.CodeInvalidArgument}, {"personal", 0, wire.CodeInvalidArgument}, {"personal", 5000, wire.CodeInvalidArgument}} {
		if _, err := e.svc.Grant(ctx, "admin:ops", e.user, bad.plan, bad.days); !isWire(err, bad.code) {
			t.Errorf("Grant(%s, %d) = %v, want %s", bad.plan, bad.days, err, bad.code)
		}
	}
	if _, err := e.svc.Grant(ctx, "admin:ops", "u-missing", "personal", 30); !isWire(err, wire.CodeNotFound) {
		t.Errorf("Grant to a missing user = %v", err)
	}
	x, err := e.svc.Grant(ctx, "admin:ops", e.user, "personal", 14)
	if err != nil || x.Source != store.SourceGrant || x.PeriodEnd.Sub(*x.PeriodStart) != 14*24*time.Hour {
		t.Fatalf("Grant = %+v, %v", x, err)
	}
	if _, err := e.svc.Grant(ctx, "admin:ops", e.user, "personal", 14); !isWire(err, wire.CodeConflict) {
		t.Fatalf("a second grant while the first lasts: %v", err)
	}
	// A friend granted a plan before setting up gets their bot when they do.
	now := e.clock.Now()
	if err := e.st.CreateUser(ctx, store.User{ID: "u-friend", Email: "friend@example.com", PasswordHash: "x", CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Grant(ctx, "admin:ops", "u-friend", "pro", 30); err != nil {
		t.Fatal(err)
	}
	if o, _ := e.svc.Overview(ctx, "u-friend"); o.Stage != StageOnboarding {
		t.Fatalf("granted, not set up: stage %s", o.Stage)
	}
	if err := e.svc.SaveAssistant(ctx, "u-friend", AssistantInput{Name: "F", PlanID: "pro", Model: "anthropic/claude-sonnet-4-6", WebChat: true, KeyMode: KeyCredits}); err != nil {
		t.Fatal(err)
	}
	if o, _ := e.svc.Overview(ctx, "u-friend"); o.Bot == nil || o.CreditsLeft != "$25.00" {
		t.Fatalf("granted, then set up: %+v", o)
	}
	audit, _ := e.st.ListAudit(ctx, 10)
	if len(audit) < 2 || audit[1].Action != "subscription.grant" || audit[1].Actor != "admin:ops" {
		t.Fatalf("audit: %+v", audit)
	}
	e.clock.add(15 * 24 * time.Hour)
	if err := e.svc.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if got := e.state(t); got.status != "canceled" || got.desired != store.DesiredStopped {
		t.Fatalf("after the grant ran out: %+v", got)
	}
}

func TestSaveAssistant(t *testing.T) {
	e := newEnv(t, backends()["sqlite"](t), false)
	ctx := t.Context()
	ok := AssistantInput{Name: "Jeeves", PlanID: "personal", Model: "anthropic/claude-sonnet-4-6", WebChat: true, KeyMode: KeyCredits}
	tg := "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw0"
	for _, tc := range []struct {
		name  string
		edit  func(*AssistantInput)
		field string
	}{
		{"no name", func(in *AssistantInput) { in.Name = "  " }, "name"},
		{"a long name", func(in *AssistantInput) { in.Name = strings.Repeat("é", 41) }, "name"},
		{"a control character", func(in *AssistantInput) { in.Name = "a\x1bb" }, "name"},
		{"an unknown plan", func(in *AssistantInput) { in.PlanID = "gold" }, "plan"},
		{"a model the plan does not offer", func(in *AssistantInput) { in.PlanID = "pro"; in.Model = "openai/gpt-5.1" }, "model"},
		{"a telegram token of the wrong shape", func(in *AssistantInput) { in.Telegram, in.TelegramToken = true, "12345" }, "telegram_token"},
		{"telegram without a token", func(in *AssistantInput) { in.Telegram = true }, "telegram_token"},
		{"a phone number of the wrong shape", func(in *AssistantInput) { in.WhatsApp = "0151 1234" }, "whatsapp"},
		{"no channel", func(in *AssistantInput) { in.WebChat = false }, "channels"},
		{"no key mode", func(in *AssistantInput) { in.KeyMode = "" }, "key_mode"},
		{"credits where the platform has no key", func(in *AssistantInput) { in.Model = "openai/gpt-5.1" }, "key_mode"},
		{"an empty key", func(in *AssistantInput) { in.KeyMode = KeyBYOK }, "api_key"},
		{"an OpenAI key for an Anthropic model", func(in *AssistantInput) { in.KeyMode, in.APIKey = KeyBYOK, "sk-proj-0123456789abcdef0123" }, "api_key"},
	} {
		in := ok
		tc.edit(&in)
		var fe FieldErrors
		if err := e.svc.SaveAssistant(ctx, e.user, in); !errors.As(err, &fe) || fe[tc.field] == "" {
			t.Errorf("%s: %v, want an error on %s", tc.name, err, tc.field)
		} else if strings.Contains(fe.Error(), "sk-proj") || strings.Contains(fe.Error(), "AAHdq") {
			t.Errorf("%s: a secret in the error: %v", tc.name, fe)
		}
	}
	// Own key: kept sealed, shown by its last 4 characters only; an empty key keeps it.
	byok := ok
	byok.KeyMode, byok.APIKey, byok.Telegram, byok.TelegramToken, byok.WhatsApp = KeyBYOK, "sk-ant-api03-customer-own-key-wxyz", true, tg, "+49 151 12345678"
	if err := e.svc.SaveAssistant(ctx, e.user, byok); err != nil {
		t.Fatal(err)
	}
	byok.APIKey, byok.TelegramToken = "", ""
	if err := e.svc.SaveAssistant(ctx, e.user, byok); err != nil {
		t.Fatalf("saving again without retyping the secrets: %v", err)
	}
	a, err := e.st.GetAssistant(ctx, e.user)
	if err != nil || a.KeyLast4 != "wxyz" || a.WhatsApp != "+4915112345678" || strings.Contains(a.Secrets, "customer-own") {
		t.Fatalf("stored: %+v, %v", a, err)
	}
	sec, err := e.svc.openSecrets(a)
	if err != nil || sec.APIKey != "sk-ant-api03-customer-own-key-wxyz" || sec.TelegramToken != tg {
		t.Fatalf("sealed secrets: %v", err)
	}
	o, _ := e.svc.Overview(ctx, e.user)
	if o.Assistant.KeyLast4 != "wxyz" || o.CreditsLeft != "" {
		t.Fatalf("overview of a customer on their own key: %+v", o.Assistant)
	}
	// A number belongs to one customer.
	now := e.clock.Now()
	if err := e.st.CreateUser(ctx, store.User{ID: "u-2", Email: "bob@example.com", PasswordHash: "x", CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	var fe FieldErrors
	if err := e.svc.SaveAssistant(ctx, "u-2", AssistantInput{Name: "B", PlanID: "personal", Model: "anthropic/claude-sonnet-4-6",
		WhatsApp: "+4915112345678", KeyMode: KeyCredits}); !errors.As(err, &fe) || fe["whatsapp"] == "" {
		t.Fatalf("a number of another customer: %v", err)
	}
}

func TestSubscribeWithStripe(t *testing.T) {
	e := newEnv(t, backends()["sqlite"](t), false)
	ctx := t.Context()
	first, err := e.svc.Subscribe(ctx, e.user)
	if err != nil || !strings.HasPrefix(first, "https://checkout.stripe.test/") {
		t.Fatalf("Subscribe = %q, %v", first, err)
	}
	// A double click, and a click much later, go to the same open checkout.
	second, err := e.svc.Subscribe(ctx, e.user)
	if err != nil || second != first || e.stripe.made != 1 {
		t.Fatalf("second Subscribe = %q, %v; %d checkouts made", second, err, e.stripe.made)
	}
	u, _ := e.st.GetUser(ctx, e.user)
	if u.StripeCustomerID != "cus_"+e.user {
		t.Fatalf("the Stripe customer was not recorded: %+v", u)
	}
	// Back from Checkout: the subscription is read at once, before any webhook.
	for k, co := range e.stripe.checkouts {
		co.SubscriptionID = "sub_1"
		e.stripe.checkouts[k] = co
	}
	e.stripe.set(e.sub("sub_1", "active", e.clock.Now()))
	if err := e.svc.CheckoutReturned(ctx, e.user, "cs_1"); err != nil {
		t.Fatal(err)
	}
	if got := e.state(t); got.status != "active" || got.bots != 1 || got.grants != 1 {
		t.Fatalf("after the return from Checkout: %+v", got)
	}
	if err := e.svc.CheckoutReturned(ctx, "u-other", "cs_1"); !isWire(err, wire.CodePermissionDenied) {
		t.Fatalf("another customer's checkout: %v", err)
	}
	// The webhook that follows changes nothing.
	e.handle(t, e.event("evt_1", "checkout.session.completed", "sub_1"))
	if got := e.state(t); got.bots != 1 || got.grants != 1 || got.subs != 1 {
		t.Fatalf("after the webhook: %+v", got)
	}
	if link, err := e.svc.Portal(ctx, e.user, ""); err != nil || link == "" {
		t.Fatalf("Portal = %q, %v", link, err)
	}
	if err := e.svc.Cancel(ctx, e.user); err != nil {
		t.Fatal(err)
	}
	if x, _ := e.st.GetSubscriptionByStripeID(ctx, "sub_1"); !x.CancelAtPeriodEnd {
		t.Fatalf("Cancel did not reach Stripe's state: %+v", x)
	}
	// Deleting the account cancels at Stripe at once.
	if err := e.svc.DeleteCustomer(ctx, e.user); err != nil {
		t.Fatal(err)
	}
	if len(e.stripe.canceled) != 1 || e.stripe.canceled[0] != "sub_1" {
		t.Fatalf("Stripe subscription not canceled with the account: %v", e.stripe.canceled)
	}
}

func TestStageOf(t *testing.T) {
	active := store.Subscription{Status: "active"}
	for _, tc := range []struct {
		bot       wire.Bot
		sub       store.Subscription
		stage, in string
	}{
		{wire.Bot{Status: wire.BotWaiting, Waiting: "no host has room"}, active, StagePreparing, "as soon as a server has room"},
		{wire.Bot{Status: wire.BotWaiting, Waiting: "waiting for a dedicated host"}, active, StagePreparing, "own server"},
		{wire.Bot{Status: wire.BotPending}, active, StagePending, "on its way"},
		{wire.Bot{Status: wire.BotPulling}, active, StagePulling, "downloading"},
		{wire.Bot{Status: wire.BotStarting}, active, StageStarting, "starting"},
		{wire.Bot{Status: wire.BotRunning, Health: wire.HealthHealthy}, active, StageRunning, "is running."},
		{wire.Bot{Status: wire.BotRunning, Health: wire.HealthUnhealthy}, active, StageRunning, "health check"},
		{wire.Bot{Status: wire.BotRunning, Health: wire.HealthDegraded}, active, StageRunning, "channels"},
		{wire.Bot{Status: wire.BotRunning, Health: wire.HealthHealthy}, store.Subscription{Status: "past_due"}, StageRunning, "payment failed"},
		{wire.Bot{Status: wire.BotRunning, Desired: store.DesiredStopped}, store.Subscription{Status: "past_due"}, StageStopped, "payment failed"},
		{wire.Bot{Status: wire.BotFailed}, active, StageFailed, "could not start"},
		{wire.Bot{Status: wire.BotUnknown}, active, StageUnknown, "cannot reach"},
	} {
		stage, text := stageOf(tc.bot, tc.sub)
		if stage != tc.stage || !strings.Contains(text, tc.in) {
			t.Errorf("stageOf(%s/%s, %s) = %s %q, want %s with %q", tc.bot.Status, tc.bot.Health, tc.sub.Status, stage, text, tc.stage, tc.in)
		}
	}
}

// TestNoOnlineSales: without Stripe and without test billing nothing is sold online, and
// operators' grants still give plans.
func TestNoOnlineSales(t *testing.T) {
	e := newEnv(t, backends()["sqlite"](t), true)
	e.svc.cfg.TestMode = false
	ctx := t.Context()
	if e.svc.TestMode() {
		t.Fatal("test mode without it configured")
	}
	if _, err := e.svc.Subscribe(ctx, e.user); !isWire(err, wire.CodeUnavailable) {
		t.Fatalf("Subscribe = %v, want unavailable", err)
	}
	if got := e.state(t); got.subs != 0 {
		t.Fatalf("a refused Subscribe left %+v", got)
	}
	if _, err := e.svc.Portal(ctx, e.user, ""); !isWire(err, wire.CodeInvalidArgument) {
		t.Fatalf("Portal = %v", err)
	}
	if _, err := e.svc.Grant(ctx, "admin:ops", e.user, "personal", 30); err != nil {
		t.Fatalf("Grant = %v", err)
	}
}

// TestSettingsReachTheBot: a new model, key or Telegram token saved on the dashboard is
// applied to the customer's bot at once (a new spec version, which its host re-creates).
func TestSettingsReachTheBot(t *testing.T) {
	e := newEnv(t, backends()["sqlite"](t), true)
	ctx := t.Context()
	if _, err := e.svc.Subscribe(ctx, e.user); err != nil {
		t.Fatal(err)
	}
	before, _ := e.st.ListBots(ctx)
	in := AssistantInput{Name: "Jeeves", PlanID: "personal", Model: "openai/gpt-5.1", WebChat: true,
		Telegram: true, TelegramToken: "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw0",
		KeyMode: KeyBYOK, APIKey: "sk-proj-customer-openai-key-0123"}
	if err := e.svc.SaveAssistant(ctx, e.user, in); err != nil {
		t.Fatal(err)
	}
	after, _ := e.st.ListBots(ctx)
	if len(after) != 1 || after[0].ID != before[0].ID || after[0].SpecVersion <= before[0].SpecVersion {
		t.Fatalf("bot before %+v, after %+v: want the same bot at a new spec version", before, after)
	}
	b, err := e.bots.Get(ctx, after[0].ID)
	if err != nil || b.Model != "openai/gpt-5.1" || !b.Telegram {
		t.Fatalf("the bot after the change: %+v, %v", b, err)
	}
	audit, _ := e.st.ListAudit(ctx, 20)
	for _, a := range audit {
		if strings.Contains(a.Detail, "sk-proj") || strings.Contains(a.Detail, "AAHdq") {
			t.Fatalf("a secret in the audit log: %+v", a)
		}
	}
}
