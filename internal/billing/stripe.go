package billing

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v86"

	"github.com/pocketmolt/pocketmolt/internal/secret"
)

// ErrStripeNotFound reports that Stripe has no such object (its "resource_missing" error code):
// a deleted customer, an unknown subscription or checkout session. Callers branch on it with
// errors.Is.
var ErrStripeNotFound = errors.New("stripe object not found")

// StripeAPI is what billing needs of Stripe; *StripeClient implements it, tests of the
// state machine fake it.
type StripeAPI interface {
	// EnsureCustomer returns customerID if it is not "", else creates a customer for the user
	// (email, metadata user_id) with an idempotency key derived from userID, so a retry or a
	// double click makes one customer.
	EnsureCustomer(ctx context.Context, userID, email, customerID string) (string, error)
	// CreateCheckout makes a Checkout Session, mode subscription, for one price; the user id
	// goes in client_reference_id and in metadata (user_id, plan_id) of the session AND of the
	// subscription (subscription_data.metadata). idempotencyKey makes a double click one session.
	CreateCheckout(ctx context.Context, p CheckoutParams) (Checkout, error)
	// GetCheckout reads a session back (client_reference_id, customer, subscription, metadata, status).
	GetCheckout(ctx context.Context, id string) (Checkout, error)
	// Portal makes a Customer Portal session and returns its URL.
	Portal(ctx context.Context, customerID, returnURL string) (string, error)
	// GetSubscription reads the current state of a subscription from Stripe.
	GetSubscription(ctx context.Context, id string) (Subscription, error)
	// CancelAtPeriodEnd sets cancel_at_period_end (true) or clears it (false, "resume").
	CancelAtPeriodEnd(ctx context.Context, id string, cancel bool) (Subscription, error)
	// CancelNow cancels at once (account deletion).
	CancelNow(ctx context.Context, id string) (Subscription, error)
}

// CheckoutParams is what CreateCheckout sends. UserID, PlanID, PriceID and SuccessURL are
// required; CustomerID is the user's Stripe customer (from EnsureCustomer), so one person is one
// customer however often they subscribe; IdempotencyKey, when set, makes a repeated request (a
// double click, a retry) return the first session instead of a second one.
type CheckoutParams struct {
	UserID, PlanID, CustomerID, PriceID, SuccessURL, CancelURL, IdempotencyKey string
}

// Checkout is a Checkout Session as billing sees it. URL is where to send the customer (empty
// once the session is complete or expired); Status is Stripe's "open", "complete" or "expired";
// SubscriptionID is set once the customer has paid.
type Checkout struct {
	ID, URL, UserID, PlanID, CustomerID, SubscriptionID, Status string
}

// Subscription is the state of a Stripe subscription that billing acts on.
type Subscription struct {
	ID, CustomerID, Status, PriceID, UserID, PlanID string    // UserID/PlanID from metadata
	PeriodStart, PeriodEnd                          time.Time // from the first item (current API versions keep them on items)
	CancelAtPeriodEnd                               bool
	CanceledAt, EndedAt                             *time.Time
}

// Metadata keys that tie Stripe objects to our records. The webhook reads them back, so they
// are part of the contract with Stripe's stored data: do not rename them.
const (
	stripeMetaUserID = "user_id"
	stripeMetaPlanID = "plan_id"
)

// StripeClientConfig configures NewStripeClient.
type StripeClientConfig struct {
	// SecretKey is the Stripe secret (or restricted) API key. It never appears in an error,
	// a log line or String's output.
	SecretKey string
	// APIBase is the API's base URL; "" is Stripe's own. Tests set it to a stripe-mock.
	APIBase string
	// HTTPClient makes the requests; nil is stripe-go's default (80 s timeout).
	HTTPClient *http.Client
}

// String describes the configuration without its secret key.
func (c StripeClientConfig) String() string {
	base := c.APIBase
	if base == "" {
		base = stripe.APIURL
	}
	return "stripe api " + base + " key [redacted]"
}

// GoString keeps %#v from printing the secret key.
func (c StripeClientConfig) GoString() string { return c.String() }

// LogValue keeps slog from printing the secret key.
func (c StripeClientConfig) LogValue() slog.Value {
	return slog.GroupValue(slog.String("api_base", c.APIBase), slog.String("secret_key", "[redacted]"))
}

// StripeClient calls Stripe's API. It is safe for concurrent use.
type StripeClient struct {
	api *stripe.Client
	key secret.Secret // only to scrub it from error messages that might echo it
}

var _ StripeAPI = (*StripeClient)(nil)

// NewStripeClient makes a client for cfg. It checks the configuration only; it makes no request.
//
// Against Stripe itself stripe-go retries a failed network call twice (every POST carries an
// idempotency key, so a retry cannot make a second object); against another APIBase (a
// stripe-mock in tests) it does not retry, so a test sees the first failure.
func NewStripeClient(cfg StripeClientConfig) (*StripeClient, error) {
	if cfg.SecretKey == "" {
		return nil, errors.New("new stripe client: no secret key")
	}
	if strings.TrimSpace(cfg.SecretKey) != cfg.SecretKey || strings.ContainsAny(cfg.SecretKey, " \t\r\n") {
		// A key pasted with a newline would fail every call with a confusing 401.
		return nil, errors.New("new stripe client: the secret key contains white space")
	}
	bc := &stripe.BackendConfig{
		HTTPClient:        cfg.HTTPClient,
		MaxNetworkRetries: stripe.Int64(2),
		// stripe-go logs failed requests to stderr by default; errors are returned to the
		// caller, who logs them once through the daemon's own logger.
		LeveledLogger: &stripe.LeveledLogger{Level: stripe.LevelNull},
	}
	if cfg.APIBase != "" {
		u, err := url.Parse(cfg.APIBase)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("new stripe client: api base %q is not an http(s) URL", cfg.APIBase)
		}
		bc.URL = stripe.String(strings.TrimRight(cfg.APIBase, "/"))
		bc.MaxNetworkRetries = stripe.Int64(0)
	}
	api := stripe.NewClient(cfg.SecretKey, stripe.WithBackends(stripe.NewBackendsWithConfig(bc)))
	return &StripeClient{api: api, key: secret.Secret(cfg.SecretKey)}, nil
}

// stripeCustomerIdempotencyKey derives the idempotency key of a user's customer creation. It
// is a hash so that any user id fits Stripe's 255-character limit and its character set.
func stripeCustomerIdempotencyKey(userID string) string {
	sum := sha256.Sum256([]byte(userID))
	return "pocketmolt-customer-" + hex.EncodeToString(sum[:16])
}

// EnsureCustomer implements StripeAPI. Stripe keeps idempotency keys for 24 hours; the caller
// stores the returned id long before that, so later calls pass it and make no request.
func (c *StripeClient) EnsureCustomer(ctx context.Context, userID, email, customerID string) (string, error) {
	if customerID != "" {
		return customerID, nil
	}
	const op = "create stripe customer"
	if userID == "" {
		return "", fmt.Errorf("%s: no user id", op)
	}
	params := &stripe.CustomerCreateParams{
		Metadata: map[string]string{stripeMetaUserID: userID},
	}
	if email != "" {
		params.Email = stripe.String(email)
	}
	params.IdempotencyKey = stripe.String(stripeCustomerIdempotencyKey(userID))
	cust, err := c.api.V1Customers.Create(ctx, params)
	if err != nil {
		return "", c.fail(op, userID, err)
	}
	if cust.ID == "" {
		return "", fmt.Errorf("%s for user %s: stripe returned no id", op, userID)
	}
	return cust.ID, nil
}

// CreateCheckout implements StripeAPI.
func (c *StripeClient) CreateCheckout(ctx context.Context, p CheckoutParams) (Checkout, error) {
	const op = "create stripe checkout"
	for _, f := range []struct{ name, v string }{
		{"user id", p.UserID}, {"plan id", p.PlanID}, {"price id", p.PriceID}, {"success url", p.SuccessURL},
	} {
		if f.v == "" {
			return Checkout{}, fmt.Errorf("%s: no %s", op, f.name)
		}
	}
	meta := map[string]string{stripeMetaUserID: p.UserID, stripeMetaPlanID: p.PlanID}
	params := &stripe.CheckoutSessionCreateParams{
		Mode:              stripe.String(string(stripe.CheckoutSessionModeSubscription)),
		ClientReferenceID: stripe.String(p.UserID),
		LineItems: []*stripe.CheckoutSessionCreateLineItemParams{
			{Price: stripe.String(p.PriceID), Quantity: stripe.Int64(1)},
		},
		Metadata: meta,
		// The subscription outlives the session: its own copy of the metadata lets every later
		// customer.subscription.* and invoice.* event name the user and plan.
		SubscriptionData: &stripe.CheckoutSessionCreateSubscriptionDataParams{
			Metadata: map[string]string{stripeMetaUserID: p.UserID, stripeMetaPlanID: p.PlanID},
		},
		SuccessURL: stripe.String(p.SuccessURL),
	}
	if p.CancelURL != "" {
		params.CancelURL = stripe.String(p.CancelURL)
	}
	if p.CustomerID != "" {
		params.Customer = stripe.String(p.CustomerID)
	}
	if p.IdempotencyKey != "" {
		params.IdempotencyKey = stripe.String(p.IdempotencyKey)
	}
	s, err := c.api.V1CheckoutSessions.Create(ctx, params)
	if err != nil {
		return Checkout{}, c.fail(op, "for user "+p.UserID, err)
	}
	return stripeCheckoutFrom(s), nil
}

// GetCheckout implements StripeAPI.
func (c *StripeClient) GetCheckout(ctx context.Context, id string) (Checkout, error) {
	const op = "get stripe checkout"
	if id == "" {
		return Checkout{}, fmt.Errorf("%s: no id", op)
	}
	s, err := c.api.V1CheckoutSessions.Retrieve(ctx, id, nil)
	if err != nil {
		return Checkout{}, c.fail(op, id, err)
	}
	return stripeCheckoutFrom(s), nil
}

// Portal implements StripeAPI.
func (c *StripeClient) Portal(ctx context.Context, customerID, returnURL string) (string, error) {
	const op = "create stripe portal session"
	if customerID == "" {
		return "", fmt.Errorf("%s: no customer id", op)
	}
	params := &stripe.BillingPortalSessionCreateParams{Customer: stripe.String(customerID)}
	if returnURL != "" {
		params.ReturnURL = stripe.String(returnURL)
	}
	s, err := c.api.V1BillingPortalSessions.Create(ctx, params)
	if err != nil {
		return "", c.fail(op, "for "+customerID, err)
	}
	if s.URL == "" {
		return "", fmt.Errorf("%s for %s: stripe returned no url", op, customerID)
	}
	return s.URL, nil
}

// GetSubscription implements StripeAPI.
func (c *StripeClient) GetSubscription(ctx context.Context, id string) (Subscription, error) {
	const op = "get stripe subscription"
	if id == "" {
		return Subscription{}, fmt.Errorf("%s: no id", op)
	}
	s, err := c.api.V1Subscriptions.Retrieve(ctx, id, nil)
	if err != nil {
		return Subscription{}, c.fail(op, id, err)
	}
	return stripeSubscriptionFrom(s), nil
}

// CancelAtPeriodEnd implements StripeAPI. Setting the flag to the value it already has is not
// an error, so a retry is harmless.
func (c *StripeClient) CancelAtPeriodEnd(ctx context.Context, id string, cancel bool) (Subscription, error) {
	op := "cancel stripe subscription at period end"
	if !cancel {
		op = "resume stripe subscription"
	}
	if id == "" {
		return Subscription{}, fmt.Errorf("%s: no id", op)
	}
	s, err := c.api.V1Subscriptions.Update(ctx, id, &stripe.SubscriptionUpdateParams{
		CancelAtPeriodEnd: stripe.Bool(cancel),
	})
	if err != nil {
		return Subscription{}, c.fail(op, id, err)
	}
	return stripeSubscriptionFrom(s), nil
}

// CancelNow implements StripeAPI.
func (c *StripeClient) CancelNow(ctx context.Context, id string) (Subscription, error) {
	const op = "cancel stripe subscription"
	if id == "" {
		return Subscription{}, fmt.Errorf("%s: no id", op)
	}
	s, err := c.api.V1Subscriptions.Cancel(ctx, id, nil)
	if err != nil {
		return Subscription{}, c.fail(op, id, err)
	}
	return stripeSubscriptionFrom(s), nil
}

func stripeCheckoutFrom(s *stripe.CheckoutSession) Checkout {
	co := Checkout{
		ID:     s.ID,
		URL:    s.URL,
		UserID: s.ClientReferenceID,
		PlanID: s.Metadata[stripeMetaPlanID],
		Status: string(s.Status),
	}
	if co.UserID == "" {
		co.UserID = s.Metadata[stripeMetaUserID]
	}
	if s.Customer != nil {
		co.CustomerID = s.Customer.ID
	}
	if s.Subscription != nil {
		co.SubscriptionID = s.Subscription.ID
	}
	return co
}

func stripeSubscriptionFrom(s *stripe.Subscription) Subscription {
	sub := Subscription{
		ID:                s.ID,
		Status:            string(s.Status),
		UserID:            s.Metadata[stripeMetaUserID],
		PlanID:            s.Metadata[stripeMetaPlanID],
		CancelAtPeriodEnd: s.CancelAtPeriodEnd,
		CanceledAt:        stripeTimePtr(s.CanceledAt),
		EndedAt:           stripeTimePtr(s.EndedAt),
	}
	if s.Customer != nil {
		sub.CustomerID = s.Customer.ID
	}
	if s.Items != nil && len(s.Items.Data) > 0 && s.Items.Data[0] != nil {
		it := s.Items.Data[0]
		sub.PeriodStart = stripeTime(it.CurrentPeriodStart)
		sub.PeriodEnd = stripeTime(it.CurrentPeriodEnd)
		if it.Price != nil {
			sub.PriceID = it.Price.ID
		}
	}
	return sub
}

// stripeTime converts Stripe's Unix seconds, where 0 means "not set", to UTC.
func stripeTime(sec int64) time.Time {
	if sec == 0 {
		return time.Time{}
	}
	return time.Unix(sec, 0).UTC()
}

func stripeTimePtr(sec int64) *time.Time {
	if sec == 0 {
		return nil
	}
	t := stripeTime(sec)
	return &t
}

// stripeCallError is a failed Stripe call. It keeps what a caller or a log needs (status, type,
// code, parameter, request id, message) but not stripe-go's error value, whose Error() is the
// whole JSON body and whose message can echo the Authorization header (stripe-mock does).
type stripeCallError struct {
	op, what                     string
	status                       int
	typ, code, param, reqID, msg string
	cause                        error // a transport or context error; nil for an API error
}

func (e *stripeCallError) Error() string {
	var b strings.Builder
	b.WriteString(e.op)
	if e.what != "" {
		b.WriteString(" ")
		b.WriteString(e.what)
	}
	b.WriteString(": ")
	if e.cause != nil {
		b.WriteString(e.msg)
		return b.String()
	}
	fmt.Fprintf(&b, "stripe %s", e.typ)
	if e.code != "" {
		fmt.Fprintf(&b, " %s", e.code)
	}
	fmt.Fprintf(&b, " (http %d", e.status)
	if e.param != "" {
		fmt.Fprintf(&b, ", param %s", e.param)
	}
	if e.reqID != "" {
		fmt.Fprintf(&b, ", request %s", e.reqID)
	}
	b.WriteString(")")
	if e.msg != "" {
		b.WriteString(": ")
		b.WriteString(e.msg)
	}
	return b.String()
}

// Unwrap lets callers see context.Canceled and DeadlineExceeded through a failed call.
func (e *stripeCallError) Unwrap() error { return e.cause }

// Is makes errors.Is(err, ErrStripeNotFound) true for Stripe's resource_missing.
func (e *stripeCallError) Is(target error) bool {
	return target == ErrStripeNotFound && e.code == string(stripe.ErrorCodeResourceMissing)
}

// fail turns an error from stripe-go into a *stripeCallError for op on what (an id, or "for
// user X"), with the secret key scrubbed from every message.
func (c *StripeClient) fail(op, what string, err error) error {
	e := &stripeCallError{op: op, what: what}
	var se *stripe.Error
	if errors.As(err, &se) {
		e.status, e.typ, e.code = se.HTTPStatusCode, string(se.Type), string(se.Code)
		e.param, e.reqID, e.msg = se.Param, se.RequestID, c.scrub(se.Msg)
		if e.typ == "" {
			e.typ = "error"
		}
		return e
	}
	e.msg, e.cause = c.scrub(err.Error()), err
	return e
}

func (c *StripeClient) scrub(s string) string {
	if k := c.key.Reveal(); k != "" {
		s = strings.ReplaceAll(s, k, "[redacted]")
	}
	return s
}
