package billing

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v86"

	"github.com/pocketmolt/pocketmolt/internal/stripemock"
)

// stripeTestKey is a key stripe-mock accepts ("sk_test_" and anything).
const stripeTestKey = "sk_test_pocketmolt"

// stripeSeenRequest is one request as it left the client.
type stripeSeenRequest struct {
	method, path, idemKey string
	form                  url.Values
}

// stripeRecorder is an http.RoundTripper that notes every request and passes it on to the real
// transport, so a test can check what was sent as well as what stripe-mock made of it.
type stripeRecorder struct {
	mu   sync.Mutex
	seen []stripeSeenRequest
}

func (r *stripeRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		body = b
		req.Body = io.NopCloser(bytes.NewReader(b))
	}
	form, _ := url.ParseQuery(string(body))
	r.mu.Lock()
	r.seen = append(r.seen, stripeSeenRequest{req.Method, req.URL.Path, req.Header.Get("Idempotency-Key"), form})
	r.mu.Unlock()
	return http.DefaultTransport.RoundTrip(req)
}

// last returns the last request and how many there were.
func (r *stripeRecorder) last() (stripeSeenRequest, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.seen) == 0 {
		return stripeSeenRequest{}, 0
	}
	return r.seen[len(r.seen)-1], len(r.seen)
}

func (r *stripeRecorder) count() int { _, n := r.last(); return n }

// newStripeTestClient starts a stripe-mock and returns a client of it with a recorder.
func newStripeTestClient(t *testing.T, key string) (*StripeClient, *stripeRecorder, string) {
	t.Helper()
	base := stripemock.Start(t)
	rec := &stripeRecorder{}
	c, err := NewStripeClient(StripeClientConfig{SecretKey: key, APIBase: base, HTTPClient: &http.Client{Transport: rec}})
	if err != nil {
		t.Fatalf("new stripe client: %v", err)
	}
	return c, rec, base
}

func wantForm(t *testing.T, got url.Values, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if g := got.Get(k); g != v {
			t.Errorf("sent %s = %q, want %q (form %v)", k, g, v, got)
		}
	}
}

func TestStripeClientAgainstStripeMock(t *testing.T) {
	c, rec, _ := newStripeTestClient(t, stripeTestKey)
	ctx := t.Context()

	t.Run("EnsureCustomer keeps an existing id without a request", func(t *testing.T) {
		before := rec.count()
		id, err := c.EnsureCustomer(ctx, "u1", "a@example.com", "cus_existing")
		if err != nil || id != "cus_existing" {
			t.Fatalf("EnsureCustomer = %q, %v", id, err)
		}
		if rec.count() != before {
			t.Fatal("EnsureCustomer with a customer id called Stripe")
		}
	})

	t.Run("EnsureCustomer creates one with a key derived from the user", func(t *testing.T) {
		id, err := c.EnsureCustomer(ctx, "user-42", "ada@example.com", "")
		if err != nil {
			t.Fatalf("EnsureCustomer: %v", err)
		}
		if !strings.HasPrefix(id, "cus_") {
			t.Fatalf("customer id %q", id)
		}
		first, _ := rec.last()
		if first.method != http.MethodPost || first.path != "/v1/customers" {
			t.Fatalf("sent %s %s", first.method, first.path)
		}
		wantForm(t, first.form, map[string]string{"email": "ada@example.com", "metadata[user_id]": "user-42"})
		if first.idemKey == "" {
			t.Fatal("no Idempotency-Key sent")
		}
		// A retry or a double click sends the same key, so Stripe makes one customer.
		if _, err := c.EnsureCustomer(ctx, "user-42", "ada@example.com", ""); err != nil {
			t.Fatal(err)
		}
		again, _ := rec.last()
		if again.idemKey != first.idemKey {
			t.Fatalf("idempotency key changed between calls for one user: %q, %q", first.idemKey, again.idemKey)
		}
		if _, err := c.EnsureCustomer(ctx, "user-43", "bob@example.com", ""); err != nil {
			t.Fatal(err)
		}
		other, _ := rec.last()
		if other.idemKey == first.idemKey {
			t.Fatal("two users share an idempotency key")
		}
	})

	t.Run("CreateCheckout", func(t *testing.T) {
		co, err := c.CreateCheckout(ctx, CheckoutParams{
			UserID: "user-42", PlanID: "starter", CustomerID: "cus_42", PriceID: "price_starter",
			SuccessURL: "https://pm.example/billing/done?session={CHECKOUT_SESSION_ID}",
			CancelURL:  "https://pm.example/plans", IdempotencyKey: "checkout-user-42-starter-1",
		})
		if err != nil {
			t.Fatalf("CreateCheckout: %v", err)
		}
		if !strings.HasPrefix(co.ID, "cs_") || co.URL == "" {
			t.Fatalf("checkout %+v: want an id and a URL", co)
		}
		// stripe-mock reflects client_reference_id and customer into its fixture.
		if co.UserID != "user-42" || co.CustomerID != "cus_42" || co.Status != "open" {
			t.Fatalf("checkout %+v", co)
		}
		sent, _ := rec.last()
		if sent.method != http.MethodPost || sent.path != "/v1/checkout/sessions" {
			t.Fatalf("sent %s %s", sent.method, sent.path)
		}
		if sent.idemKey != "checkout-user-42-starter-1" {
			t.Fatalf("Idempotency-Key %q", sent.idemKey)
		}
		wantForm(t, sent.form, map[string]string{
			"mode":                                 "subscription",
			"client_reference_id":                  "user-42",
			"customer":                             "cus_42",
			"line_items[0][price]":                 "price_starter",
			"line_items[0][quantity]":              "1",
			"metadata[user_id]":                    "user-42",
			"metadata[plan_id]":                    "starter",
			"subscription_data[metadata][user_id]": "user-42",
			"subscription_data[metadata][plan_id]": "starter",
			"success_url":                          "https://pm.example/billing/done?session={CHECKOUT_SESSION_ID}",
			"cancel_url":                           "https://pm.example/plans",
		})
	})

	t.Run("CreateCheckout without a customer lets Stripe make one", func(t *testing.T) {
		_, err := c.CreateCheckout(ctx, CheckoutParams{UserID: "u", PlanID: "p", PriceID: "price_1", SuccessURL: "https://x/s"})
		if err != nil {
			t.Fatalf("CreateCheckout: %v", err)
		}
		sent, _ := rec.last()
		if _, ok := sent.form["customer"]; ok {
			t.Fatalf("sent customer %q though none was given", sent.form.Get("customer"))
		}
	})

	t.Run("GetCheckout", func(t *testing.T) {
		co, err := c.GetCheckout(ctx, "cs_test_abc")
		if err != nil {
			t.Fatalf("GetCheckout: %v", err)
		}
		if co.ID != "cs_test_abc" || co.Status == "" {
			t.Fatalf("checkout %+v", co)
		}
		sent, _ := rec.last()
		if sent.method != http.MethodGet || sent.path != "/v1/checkout/sessions/cs_test_abc" {
			t.Fatalf("sent %s %s", sent.method, sent.path)
		}
	})

	t.Run("Portal", func(t *testing.T) {
		u, err := c.Portal(ctx, "cus_42", "https://pm.example/account")
		if err != nil {
			t.Fatalf("Portal: %v", err)
		}
		if u == "" {
			t.Fatal("no portal URL")
		}
		sent, _ := rec.last()
		if sent.path != "/v1/billing_portal/sessions" {
			t.Fatalf("sent %s %s", sent.method, sent.path)
		}
		wantForm(t, sent.form, map[string]string{"customer": "cus_42", "return_url": "https://pm.example/account"})
	})

	t.Run("GetSubscription", func(t *testing.T) {
		s, err := c.GetSubscription(ctx, "sub_42")
		if err != nil {
			t.Fatalf("GetSubscription: %v", err)
		}
		// The fixture's subscription has one item with a price and a period.
		if s.ID != "sub_42" || s.Status == "" || s.CustomerID == "" || s.PriceID == "" ||
			s.PeriodStart.IsZero() || s.PeriodEnd.IsZero() {
			t.Fatalf("subscription %+v", s)
		}
		if s.PeriodStart.Location() != time.UTC {
			t.Fatalf("period start %v is not UTC", s.PeriodStart)
		}
	})

	for _, cancel := range []bool{true, false} {
		t.Run("CancelAtPeriodEnd "+map[bool]string{true: "sets", false: "clears"}[cancel], func(t *testing.T) {
			s, err := c.CancelAtPeriodEnd(ctx, "sub_42", cancel)
			if err != nil {
				t.Fatalf("CancelAtPeriodEnd: %v", err)
			}
			sent, _ := rec.last()
			if sent.method != http.MethodPost || sent.path != "/v1/subscriptions/sub_42" {
				t.Fatalf("sent %s %s", sent.method, sent.path)
			}
			want := map[bool]string{true: "true", false: "false"}[cancel]
			wantForm(t, sent.form, map[string]string{"cancel_at_period_end": want})
			if s.ID != "sub_42" || s.CancelAtPeriodEnd != cancel {
				t.Fatalf("subscription %+v, want cancel_at_period_end %v", s, cancel)
			}
		})
	}

	t.Run("CancelNow", func(t *testing.T) {
		s, err := c.CancelNow(ctx, "sub_42")
		if err != nil {
			t.Fatalf("CancelNow: %v", err)
		}
		sent, _ := rec.last()
		if sent.method != http.MethodDelete || sent.path != "/v1/subscriptions/sub_42" {
			t.Fatalf("sent %s %s", sent.method, sent.path)
		}
		if s.ID != "sub_42" || s.CanceledAt == nil {
			t.Fatalf("subscription %+v", s)
		}
	})

	t.Run("missing arguments fail before any request", func(t *testing.T) {
		calls := map[string]func() error{
			"EnsureCustomer no user": func() error { _, err := c.EnsureCustomer(ctx, "", "a@b.c", ""); return err },
			"CreateCheckout no user": func() error {
				_, err := c.CreateCheckout(ctx, CheckoutParams{PlanID: "p", PriceID: "price", SuccessURL: "https://x"})
				return err
			},
			"CreateCheckout no plan": func() error {
				_, err := c.CreateCheckout(ctx, CheckoutParams{UserID: "u", PriceID: "price", SuccessURL: "https://x"})
				return err
			},
			"CreateCheckout no price": func() error {
				_, err := c.CreateCheckout(ctx, CheckoutParams{UserID: "u", PlanID: "p", SuccessURL: "https://x"})
				return err
			},
			"CreateCheckout no success url": func() error {
				_, err := c.CreateCheckout(ctx, CheckoutParams{UserID: "u", PlanID: "p", PriceID: "price"})
				return err
			},
			"GetCheckout":       func() error { _, err := c.GetCheckout(ctx, ""); return err },
			"Portal":            func() error { _, err := c.Portal(ctx, "", "https://x"); return err },
			"GetSubscription":   func() error { _, err := c.GetSubscription(ctx, ""); return err },
			"CancelAtPeriodEnd": func() error { _, err := c.CancelAtPeriodEnd(ctx, "", true); return err },
			"CancelNow":         func() error { _, err := c.CancelNow(ctx, ""); return err },
		}
		before := rec.count()
		for name, call := range calls {
			if err := call(); err == nil {
				t.Errorf("%s: no error", name)
			}
		}
		if rec.count() != before {
			t.Fatalf("%d requests sent for invalid calls", rec.count()-before)
		}
	})

	t.Run("a parameter stripe-mock rejects is an error naming the operation", func(t *testing.T) {
		// Our methods only send well-formed parameters, so send a bad one through the same
		// client and the same error path.
		_, err := c.api.V1CheckoutSessions.Create(ctx, &stripe.CheckoutSessionCreateParams{Mode: stripe.String("bogus")})
		if err == nil {
			t.Fatal("stripe-mock accepted mode=bogus")
		}
		got := c.fail("create stripe checkout", "for user u", err)
		msg := got.Error()
		for _, want := range []string{"create stripe checkout for user u", "invalid_request_error", "http 400", "mode"} {
			if !strings.Contains(msg, want) {
				t.Errorf("error %q lacks %q", msg, want)
			}
		}
		if errors.Is(got, ErrStripeNotFound) {
			t.Error("a validation error is ErrStripeNotFound")
		}
	})

	t.Run("a cancelled context is reported as such", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, err := c.GetSubscription(cctx, "sub_42")
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		if !strings.Contains(err.Error(), "get stripe subscription sub_42") {
			t.Fatalf("err %q does not name the operation", err)
		}
	})
}

func TestStripeClientNeverShowsTheKey(t *testing.T) {
	// stripe-mock rejects a key not shaped like sk_test_… and echoes the Authorization header
	// in its message; the error that reaches us must not carry it.
	const key = "hunter2-do-not-print-me"
	c, _, _ := newStripeTestClient(t, key)
	for name, call := range map[string]func() error{
		"EnsureCustomer":  func() error { _, err := c.EnsureCustomer(t.Context(), "u1", "a@b.c", ""); return err },
		"GetSubscription": func() error { _, err := c.GetSubscription(t.Context(), "sub_1"); return err },
		"Portal":          func() error { _, err := c.Portal(t.Context(), "cus_1", ""); return err },
	} {
		err := call()
		if err == nil {
			t.Fatalf("%s with a bad key: no error", name)
		}
		if strings.Contains(err.Error(), key) {
			t.Fatalf("%s: error shows the key: %v", name, err)
		}
		if !strings.Contains(err.Error(), "http 401") || !strings.Contains(err.Error(), "[redacted]") {
			t.Fatalf("%s: error %q: want the 401 with the key redacted", name, err)
		}
	}
	cfg := StripeClientConfig{SecretKey: key, APIBase: "http://127.0.0.1:1"}
	for _, s := range []string{cfg.String(), cfg.GoString(), cfg.LogValue().String()} {
		if strings.Contains(s, key) {
			t.Fatalf("config prints the key: %s", s)
		}
	}
}

func TestStripeNotFoundIsASentinel(t *testing.T) {
	// stripe-mock answers every id with a fixture, so it cannot say "no such object"; decode
	// the body Stripe documents for that case the way stripe-go does, and map it.
	body := []byte(`{"error":{"code":"resource_missing","doc_url":"https://stripe.com/docs/error-codes/resource-missing",
		"message":"No such subscription: 'sub_gone'","param":"id","request_log_url":"https://dashboard.stripe.com/test/logs/req_1",
		"type":"invalid_request_error"}}`)
	var raw struct{ Error *stripe.Error }
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatal(err)
	}
	raw.Error.HTTPStatusCode = http.StatusNotFound
	c, err := NewStripeClient(StripeClientConfig{SecretKey: stripeTestKey})
	if err != nil {
		t.Fatal(err)
	}
	got := c.fail("get stripe subscription", "sub_gone", raw.Error)
	if !errors.Is(got, ErrStripeNotFound) {
		t.Fatalf("%v is not ErrStripeNotFound", got)
	}
	if want := "get stripe subscription sub_gone: stripe invalid_request_error resource_missing (http 404, param id): No such subscription: 'sub_gone'"; got.Error() != want {
		t.Fatalf("error\n got %q\nwant %q", got, want)
	}
	raw.Error.Code = stripe.ErrorCodeParameterMissing
	if errors.Is(c.fail("x", "", raw.Error), ErrStripeNotFound) {
		t.Fatal("parameter_missing is ErrStripeNotFound")
	}
}

func TestNewStripeClientRejectsBadConfig(t *testing.T) {
	for name, cfg := range map[string]StripeClientConfig{
		"no key":             {},
		"key with newline":   {SecretKey: "sk_test_1\n"},
		"key with space":     {SecretKey: "sk_test 1"},
		"api base no scheme": {SecretKey: "sk_test_1", APIBase: "127.0.0.1:12111"},
		"api base ftp":       {SecretKey: "sk_test_1", APIBase: "ftp://127.0.0.1:12111"},
		"api base garbage":   {SecretKey: "sk_test_1", APIBase: "http://[::1"},
	} {
		c, err := NewStripeClient(cfg)
		if err == nil || c != nil {
			t.Errorf("%s: NewStripeClient = %v, %v; want an error", name, c, err)
			continue
		}
		if cfg.SecretKey != "" && strings.Contains(err.Error(), strings.TrimSpace(cfg.SecretKey)) {
			t.Errorf("%s: error shows the key: %v", name, err)
		}
	}
}

// BenchmarkStripeClientGetSubscription measures one call through stripe-go to stripe-mock on
// loopback: our overhead plus stripe-go's, not Stripe's latency.
func BenchmarkStripeClientGetSubscription(b *testing.B) {
	base := stripemock.Start(b)
	c, err := NewStripeClient(StripeClientConfig{SecretKey: stripeTestKey, APIBase: base})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.GetSubscription(b.Context(), "sub_42"); err != nil {
			b.Fatal(err)
		}
	}
}
