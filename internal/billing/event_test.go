package billing

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v86"
	"github.com/stripe/stripe-go/v86/webhook"
)

const stripeTestWebhookSecret = "whsec_test_pocketmolt"

// stripeTestNow is the clock of the webhook tests: 2026-11-25T10:00:00Z.
var stripeTestNow = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

// Real-shaped event payloads, trimmed to a realistic subset of fields (as Stripe sends them for
// the API version of stripe-go v86, unless the name says otherwise).
var stripeTestEvents = map[string]string{
	"checkout.session.completed": `{
  "id": "evt_1QcheckoutCompleted",
  "object": "event",
  "api_version": "` + stripe.APIVersion + `",
  "created": 1795600000,
  "data": {
    "object": {
      "id": "cs_test_a1b2c3",
      "object": "checkout.session",
      "amount_total": 2900,
      "client_reference_id": "usr_42",
      "currency": "eur",
      "customer": "cus_Qabc",
      "customer_details": {"email": "ada@example.com", "name": null},
      "metadata": {"plan_id": "starter", "user_id": "usr_42"},
      "mode": "subscription",
      "payment_status": "paid",
      "status": "complete",
      "subscription": "sub_1Qxyz",
      "success_url": "https://pm.example/billing/done",
      "url": null
    }
  },
  "livemode": false,
  "pending_webhooks": 1,
  "request": {"id": null, "idempotency_key": null},
  "type": "checkout.session.completed"
}`,
	"customer.subscription.updated": `{
  "id": "evt_1QsubUpdated",
  "object": "event",
  "api_version": "` + stripe.APIVersion + `",
  "created": 1795600100,
  "data": {
    "object": {
      "id": "sub_1Qxyz",
      "object": "subscription",
      "cancel_at_period_end": true,
      "canceled_at": 1795600100,
      "customer": "cus_Qabc",
      "items": {
        "object": "list",
        "data": [{
          "id": "si_1",
          "object": "subscription_item",
          "current_period_end": 1798192000,
          "current_period_start": 1795600000,
          "price": {"id": "price_starter", "object": "price", "unit_amount": 2900}
        }]
      },
      "metadata": {"plan_id": "starter", "user_id": "usr_42"},
      "status": "active"
    },
    "previous_attributes": {"cancel_at_period_end": false, "canceled_at": null}
  },
  "livemode": false,
  "pending_webhooks": 1,
  "request": {"id": "req_abc", "idempotency_key": "k"},
  "type": "customer.subscription.updated"
}`,
	"customer.subscription.deleted": `{
  "id": "evt_1QsubDeleted",
  "object": "event",
  "api_version": "` + stripe.APIVersion + `",
  "created": 1798192001,
  "data": {
    "object": {
      "id": "sub_1Qxyz",
      "object": "subscription",
      "customer": {"id": "cus_Qabc", "object": "customer", "email": "ada@example.com"},
      "ended_at": 1798192001,
      "metadata": {"plan_id": "starter", "user_id": "usr_42"},
      "status": "canceled"
    }
  },
  "livemode": false,
  "pending_webhooks": 1,
  "request": {"id": null, "idempotency_key": null},
  "type": "customer.subscription.deleted"
}`,
	"invoice.paid": `{
  "id": "evt_1QinvoicePaid",
  "object": "event",
  "api_version": "` + stripe.APIVersion + `",
  "created": 1798192100,
  "data": {
    "object": {
      "id": "in_1Qpaid",
      "object": "invoice",
      "amount_paid": 2900,
      "billing_reason": "subscription_cycle",
      "customer": "cus_Qabc",
      "lines": {
        "object": "list",
        "data": [{
          "id": "il_1",
          "object": "line_item",
          "amount": 2900,
          "parent": {"type": "subscription_item_details", "subscription_item_details": {"subscription": "sub_1Qxyz", "subscription_item": "si_1"}},
          "period": {"end": 1800870400, "start": 1798192000}
        }],
        "has_more": false
      },
      "parent": {
        "type": "subscription_details",
        "quote_details": null,
        "subscription_details": {"metadata": {"plan_id": "starter", "user_id": "usr_42"}, "subscription": "sub_1Qxyz"}
      },
      "status": "paid"
    }
  },
  "livemode": false,
  "pending_webhooks": 1,
  "request": {"id": null, "idempotency_key": null},
  "type": "invoice.paid"
}`,
	// An endpoint pinned to an API version before 2025-03-31 still sends the subscription at
	// the invoice's top level.
	"invoice.payment_failed (2024-06-20)": `{
  "id": "evt_1QinvoiceFailed",
  "object": "event",
  "api_version": "2024-06-20",
  "created": 1798192200,
  "data": {
    "object": {
      "id": "in_1Qfailed",
      "object": "invoice",
      "attempt_count": 1,
      "billing_reason": "subscription_cycle",
      "customer": "cus_Qabc",
      "lines": {"object": "list", "data": [{"id": "il_2", "object": "line_item", "period": {"end": 1800870400, "start": 1798192000}}]},
      "status": "open",
      "subscription": "sub_1Qxyz",
      "subscription_details": {"metadata": {"plan_id": "starter", "user_id": "usr_42"}}
    }
  },
  "livemode": false,
  "pending_webhooks": 1,
  "request": {"id": null, "idempotency_key": null},
  "type": "invoice.payment_failed"
}`,
	"charge.refunded (unknown to billing)": `{
  "id": "evt_1Qcharge",
  "object": "event",
  "api_version": "` + stripe.APIVersion + `",
  "created": 1798192300,
  "data": {
    "object": {
      "id": "ch_1Q",
      "object": "charge",
      "amount_refunded": 2900,
      "customer": "cus_Qabc",
      "metadata": {"user_id": 42},
      "lines": 7
    }
  },
  "livemode": false,
  "pending_webhooks": 1,
  "request": {"id": null, "idempotency_key": null},
  "type": "charge.refunded"
}`,
}

var stripeTestWant = map[string]Event{
	"checkout.session.completed": {
		ID: "evt_1QcheckoutCompleted", Type: "checkout.session.completed", Created: time.Unix(1795600000, 0).UTC(),
		ObjectID: "cs_test_a1b2c3", CheckoutID: "cs_test_a1b2c3", UserID: "usr_42", PlanID: "starter",
		CustomerID: "cus_Qabc", SubscriptionID: "sub_1Qxyz",
	},
	"customer.subscription.updated": {
		ID: "evt_1QsubUpdated", Type: "customer.subscription.updated", Created: time.Unix(1795600100, 0).UTC(),
		ObjectID: "sub_1Qxyz", UserID: "usr_42", PlanID: "starter", CustomerID: "cus_Qabc", SubscriptionID: "sub_1Qxyz",
	},
	"customer.subscription.deleted": {
		ID: "evt_1QsubDeleted", Type: "customer.subscription.deleted", Created: time.Unix(1798192001, 0).UTC(),
		ObjectID: "sub_1Qxyz", UserID: "usr_42", PlanID: "starter", CustomerID: "cus_Qabc", SubscriptionID: "sub_1Qxyz",
	},
	"invoice.paid": {
		ID: "evt_1QinvoicePaid", Type: "invoice.paid", Created: time.Unix(1798192100, 0).UTC(),
		ObjectID: "in_1Qpaid", UserID: "usr_42", PlanID: "starter", CustomerID: "cus_Qabc", SubscriptionID: "sub_1Qxyz",
		InvoiceID: "in_1Qpaid", PeriodStart: time.Unix(1798192000, 0).UTC(), PeriodEnd: time.Unix(1800870400, 0).UTC(),
		BillingReason: "subscription_cycle",
	},
	"invoice.payment_failed (2024-06-20)": {
		ID: "evt_1QinvoiceFailed", Type: "invoice.payment_failed", Created: time.Unix(1798192200, 0).UTC(),
		ObjectID: "in_1Qfailed", UserID: "usr_42", PlanID: "starter", CustomerID: "cus_Qabc", SubscriptionID: "sub_1Qxyz",
		InvoiceID: "in_1Qfailed", PeriodStart: time.Unix(1798192000, 0).UTC(), PeriodEnd: time.Unix(1800870400, 0).UTC(),
		BillingReason: "subscription_cycle",
	},
	// Unknown types parse: the id, type and object id, nothing else, however odd its fields.
	"charge.refunded (unknown to billing)": {
		ID: "evt_1Qcharge", Type: "charge.refunded", Created: time.Unix(1798192300, 0).UTC(), ObjectID: "ch_1Q",
	},
}

// stripeSign returns a Stripe-Signature header for payload made at t with secret.
func stripeSign(payload []byte, secret string, t time.Time) string {
	return webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: secret, Timestamp: t}).Header
}

func TestParseEventEachType(t *testing.T) {
	for name, body := range stripeTestEvents {
		t.Run(name, func(t *testing.T) {
			payload := []byte(body)
			got, err := ParseEvent(payload, stripeSign(payload, stripeTestWebhookSecret, stripeTestNow), stripeTestWebhookSecret, 5*time.Minute, stripeTestNow)
			if err != nil {
				t.Fatalf("ParseEvent: %v", err)
			}
			if want := stripeTestWant[name]; got != want {
				t.Fatalf("ParseEvent\n got %+v\nwant %+v", got, want)
			}
			unsigned, err := ParseEventUnsigned(payload)
			if err != nil || unsigned != got {
				t.Fatalf("ParseEventUnsigned = %+v, %v; want %+v", unsigned, err, got)
			}
		})
	}
}

func TestParseEventShapes(t *testing.T) {
	// Variants of the objects Stripe may send: expanded references, null references, and a
	// session whose user is only in its metadata.
	for _, tc := range []struct {
		name, object string
		want         Event
	}{
		{
			name:   "checkout with expanded customer and subscription",
			object: `{"id":"cs_1","object":"checkout.session","client_reference_id":"u1","customer":{"id":"cus_1","object":"customer"},"subscription":{"id":"sub_1","object":"subscription","status":"active"},"metadata":{"plan_id":"pro"}}`,
			want:   Event{ObjectID: "cs_1", CheckoutID: "cs_1", UserID: "u1", PlanID: "pro", CustomerID: "cus_1", SubscriptionID: "sub_1"},
		},
		{
			name:   "checkout still open: null customer and subscription",
			object: `{"id":"cs_2","object":"checkout.session","client_reference_id":null,"customer":null,"subscription":null,"metadata":{"user_id":"u2","plan_id":"pro"}}`,
			want:   Event{ObjectID: "cs_2", CheckoutID: "cs_2", UserID: "u2", PlanID: "pro"},
		},
		{
			name:   "invoice with expanded subscription under parent and no lines",
			object: `{"id":"in_1","object":"invoice","customer":"cus_1","billing_reason":"subscription_create","parent":{"subscription_details":{"subscription":{"id":"sub_9","object":"subscription"},"metadata":{}}}}`,
			want:   Event{ObjectID: "in_1", InvoiceID: "in_1", CustomerID: "cus_1", SubscriptionID: "sub_9", BillingReason: "subscription_create"},
		},
		{
			name:   "invoice not from a subscription",
			object: `{"id":"in_2","object":"invoice","customer":"cus_1","billing_reason":"manual","parent":null,"lines":{"data":[]}}`,
			want:   Event{ObjectID: "in_2", InvoiceID: "in_2", CustomerID: "cus_1", BillingReason: "manual"},
		},
		{
			name:   "subscription without metadata",
			object: `{"id":"sub_3","object":"subscription","customer":"cus_3","metadata":{}}`,
			want:   Event{ObjectID: "sub_3", SubscriptionID: "sub_3", CustomerID: "cus_3"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			payload := []byte(`{"id":"evt_x","object":"event","api_version":"` + stripe.APIVersion + `","created":1795600000,"type":"some.type","data":{"object":` + tc.object + `}}`)
			got, err := ParseEvent(payload, stripeSign(payload, stripeTestWebhookSecret, stripeTestNow), stripeTestWebhookSecret, time.Minute, stripeTestNow)
			if err != nil {
				t.Fatalf("ParseEvent: %v", err)
			}
			tc.want.ID, tc.want.Type, tc.want.Created = "evt_x", "some.type", time.Unix(1795600000, 0).UTC()
			if got != tc.want {
				t.Fatalf("ParseEvent\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestParseEventRejects(t *testing.T) {
	payload := []byte(stripeTestEvents["checkout.session.completed"])
	good := stripeSign(payload, stripeTestWebhookSecret, stripeTestNow)
	const tol = 5 * time.Minute
	tampered := []byte(strings.Replace(string(payload), `"usr_42"`, `"usr_43"`, 1))
	otherSig := hex.EncodeToString(webhook.ComputeSignature(stripeTestNow, payload, "whsec_other"))
	goodSig := strings.SplitN(good, "v1=", 2)[1]
	ts := stripeTestNow.Unix()

	for _, tc := range []struct {
		name    string
		payload []byte
		header  string
		secret  string
		tol     time.Duration
		badSig  bool // want ErrBadSignature; else a plain error
	}{
		{name: "tampered body", payload: tampered, header: good, badSig: true},
		{name: "wrong secret", payload: payload, header: stripeSign(payload, "whsec_other", stripeTestNow), badSig: true},
		{name: "old timestamp", payload: payload, header: stripeSign(payload, stripeTestWebhookSecret, stripeTestNow.Add(-tol-time.Second)), badSig: true},
		{name: "timestamp from the future", payload: payload, header: stripeSign(payload, stripeTestWebhookSecret, stripeTestNow.Add(tol+time.Second)), badSig: true},
		{name: "default tolerance is five minutes", payload: payload, header: stripeSign(payload, stripeTestWebhookSecret, stripeTestNow.Add(-6*time.Minute)), tol: -1, badSig: true},
		{name: "missing header", payload: payload, header: "", badSig: true},
		{name: "header without timestamp", payload: payload, header: "v1=" + goodSig, badSig: true},
		{name: "header with two timestamps", payload: payload, header: fmt.Sprintf("t=%d,t=%d,v1=%s", ts, ts, goodSig), badSig: true},
		{name: "timestamp not a number", payload: payload, header: "t=soon,v1=" + goodSig, badSig: true},
		{name: "no v1 signature", payload: payload, header: fmt.Sprintf("t=%d,v0=%s", ts, goodSig), badSig: true},
		{name: "v1 not hex", payload: payload, header: fmt.Sprintf("t=%d,v1=zz", ts), badSig: true},
		{name: "only another secret's signature", payload: payload, header: fmt.Sprintf("t=%d,v1=%s", ts, otherSig), badSig: true},
		{name: "garbage header", payload: payload, header: "hello", badSig: true},
		{name: "signed malformed JSON", payload: []byte(`{"id":"evt_1","object":"event",`)},
		{name: "signed JSON that is not an event", payload: []byte(`{"object":"list","data":[]}`)},
		{name: "signed event without id", payload: []byte(`{"object":"event","type":"invoice.paid","data":{"object":{"id":"in_1","object":"invoice"}}}`)},
		{name: "signed event without type", payload: []byte(`{"id":"evt_1","object":"event","data":{"object":{"id":"in_1","object":"invoice"}}}`)},
		{name: "signed event without data", payload: []byte(`{"id":"evt_1","object":"event","type":"invoice.paid"}`)},
		{name: "signed event with null object", payload: []byte(`{"id":"evt_1","object":"event","type":"invoice.paid","data":{"object":null}}`)},
		{name: "signed invoice with a number for customer", payload: []byte(`{"id":"evt_1","object":"event","type":"invoice.paid","data":{"object":{"id":"in_1","object":"invoice","customer":5}}}`)},
		{name: "signed session with a list for metadata", payload: []byte(`{"id":"evt_1","object":"event","type":"checkout.session.completed","data":{"object":{"id":"cs_1","object":"checkout.session","metadata":[]}}}`)},
		{name: "empty secret", payload: payload, header: good, secret: "-"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			header := tc.header
			if header == "" && !tc.badSig {
				header = stripeSign(tc.payload, stripeTestWebhookSecret, stripeTestNow)
			}
			secret := tc.secret
			switch secret {
			case "":
				secret = stripeTestWebhookSecret
			case "-":
				secret = ""
			}
			tl := tc.tol
			if tl == 0 {
				tl = tol
			}
			ev, err := ParseEvent(tc.payload, header, secret, tl, stripeTestNow)
			if err == nil {
				t.Fatalf("ParseEvent accepted it: %+v", ev)
			}
			if got := errors.Is(err, ErrBadSignature); got != tc.badSig {
				t.Fatalf("ParseEvent: %v; ErrBadSignature = %v, want %v", err, got, tc.badSig)
			}
			if ev != (Event{}) {
				t.Fatalf("ParseEvent returned %+v with its error", ev)
			}
			if !strings.HasPrefix(err.Error(), "parse stripe event: ") {
				t.Fatalf("error %q does not name the operation", err)
			}
			if strings.Contains(err.Error(), stripeTestWebhookSecret) {
				t.Fatalf("error shows the secret: %v", err)
			}
		})
	}
}

func TestParseEventAccepts(t *testing.T) {
	payload := []byte(stripeTestEvents["invoice.paid"])
	const tol = 5 * time.Minute
	for _, tc := range []struct {
		name   string
		header string
		tol    time.Duration
	}{
		{name: "at the edge of the tolerance", header: stripeSign(payload, stripeTestWebhookSecret, stripeTestNow.Add(-tol)), tol: tol},
		{name: "slightly ahead of our clock", header: stripeSign(payload, stripeTestWebhookSecret, stripeTestNow.Add(30*time.Second)), tol: tol},
		{name: "default tolerance", header: stripeSign(payload, stripeTestWebhookSecret, stripeTestNow.Add(-4*time.Minute)), tol: 0},
		{
			// While a secret is rolled Stripe signs with both; either may be ours.
			name: "two signatures, one ours",
			header: fmt.Sprintf("t=%d,v1=%s,v1=%s", stripeTestNow.Unix(),
				hex.EncodeToString(webhook.ComputeSignature(stripeTestNow, payload, "whsec_old")),
				hex.EncodeToString(webhook.ComputeSignature(stripeTestNow, payload, stripeTestWebhookSecret))),
			tol: tol,
		},
		{
			name:   "unknown schemes ignored",
			header: stripeSign(payload, stripeTestWebhookSecret, stripeTestNow) + ",v0=6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39",
			tol:    tol,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := ParseEvent(payload, tc.header, stripeTestWebhookSecret, tc.tol, stripeTestNow)
			if err != nil {
				t.Fatalf("ParseEvent: %v", err)
			}
			if ev != stripeTestWant["invoice.paid"] {
				t.Fatalf("ParseEvent = %+v", ev)
			}
		})
	}
}

func TestParseEventUnsignedRejects(t *testing.T) {
	for name, payload := range map[string]string{
		"malformed":    `{"id":`,
		"not an event": `{"id":"cs_1","object":"checkout.session"}`,
		"no id":        `{"object":"event","type":"invoice.paid","data":{"object":{"id":"in_1","object":"invoice"}}}`,
		"empty":        ``,
	} {
		if ev, err := ParseEventUnsigned([]byte(payload)); err == nil {
			t.Errorf("%s: ParseEventUnsigned accepted it: %+v", name, ev)
		}
	}
}

// FuzzParseEvent feeds arbitrary bodies and headers to ParseEvent. Each input is tried twice:
// with its own header, which must never be accepted unless it really signs the body, and
// re-signed with the secret, which drives arbitrary bytes through the decoder.
func FuzzParseEvent(f *testing.F) {
	for _, body := range stripeTestEvents {
		f.Add([]byte(body), stripeSign([]byte(body), stripeTestWebhookSecret, stripeTestNow))
	}
	f.Add([]byte(stripeTestEvents["invoice.paid"]), stripeSign([]byte(stripeTestEvents["invoice.paid"]), stripeTestWebhookSecret, stripeTestNow.Add(-time.Hour)))
	f.Add([]byte(`{"id":"evt_1","object":"event","type":"x","data":{"object":{"object":"invoice","lines":{"data":[{"period":null}]}}}}`), "t=1,v1=00")
	f.Add([]byte(`{"id":"evt_1","object":"event","type":"x","data":{"object":{"object":"subscription","customer":{"id":7}}}}`), "")
	f.Add([]byte(`null`), "t=,v1=")
	f.Add([]byte{}, "t=1795600000,t=1795600000,v1=zz,,=")

	f.Fuzz(func(t *testing.T, payload []byte, header string) {
		const tol = 5 * time.Minute
		ev, err := ParseEvent(payload, header, stripeTestWebhookSecret, tol, stripeTestNow)
		if err == nil {
			if webhook.ValidatePayloadIgnoringTolerance(payload, header, stripeTestWebhookSecret) != nil {
				t.Fatalf("accepted a payload its header does not sign: %q %q", payload, header)
			}
			checkFuzzedEvent(t, payload, ev)
		} else if ev != (Event{}) {
			t.Fatalf("returned %+v with error %v", ev, err)
		}

		resigned := stripeSign(payload, stripeTestWebhookSecret, stripeTestNow)
		ev, err = ParseEvent(payload, resigned, stripeTestWebhookSecret, tol, stripeTestNow)
		if errors.Is(err, ErrBadSignature) {
			t.Fatalf("a correctly signed payload failed the signature check: %v", err)
		}
		if err == nil {
			checkFuzzedEvent(t, payload, ev)
		}
	})
}

func checkFuzzedEvent(t *testing.T, payload []byte, ev Event) {
	t.Helper()
	if ev.ID == "" || ev.Type == "" {
		t.Fatalf("accepted an event without id or type: %+v", ev)
	}
	if u, err := ParseEventUnsigned(payload); err != nil || u != ev {
		t.Fatalf("ParseEventUnsigned disagrees: %+v, %v; signed gave %+v", u, err, ev)
	}
}

// BenchmarkParseEvent measures verifying and decoding one invoice.paid delivery, the work the
// webhook does before it touches the store.
func BenchmarkParseEvent(b *testing.B) {
	payload := []byte(stripeTestEvents["invoice.paid"])
	header := stripeSign(payload, stripeTestWebhookSecret, stripeTestNow)
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseEvent(payload, header, stripeTestWebhookSecret, 5*time.Minute, stripeTestNow); err != nil {
			b.Fatal(err)
		}
	}
}
