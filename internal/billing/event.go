package billing

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v86"
	"github.com/stripe/stripe-go/v86/webhook"
)

// ErrBadSignature reports a webhook whose Stripe-Signature header is missing, malformed, does
// not match the payload under the secret, or was made outside the tolerance (a replay). The
// webhook answers it with 400 and writes nothing.
var ErrBadSignature = errors.New("bad stripe signature")

// Event is a Stripe webhook event reduced to what billing acts on. The fields of the event's
// object are set according to the object's kind, whatever the event type, and are zero when
// the object has none:
//
//   - a checkout session (checkout.session.*): CheckoutID, UserID (client_reference_id, else
//     metadata user_id), PlanID (metadata), CustomerID, SubscriptionID;
//   - a subscription (customer.subscription.*): SubscriptionID, CustomerID, UserID and PlanID
//     from its metadata;
//   - an invoice (invoice.*): InvoiceID, CustomerID, SubscriptionID, UserID and PlanID from the
//     subscription's metadata as the invoice recorded it, PeriodStart/PeriodEnd of its first
//     line, BillingReason.
//
// Times are UTC.
type Event struct {
	ID, Type string
	Created  time.Time
	ObjectID string
	// Per type, what the state machine needs (zero when absent):
	CheckoutID, UserID, PlanID, CustomerID, SubscriptionID string // checkout.session.completed, subscription.*, invoice.*
	InvoiceID                                              string
	PeriodStart, PeriodEnd                                 time.Time // invoice.paid / payment_failed: the invoice line's period
	BillingReason                                          string    // invoice.billing_reason
}

// ParseEvent verifies the Stripe-Signature header (HMAC-SHA256, scheme v1) over payload with
// secret and decodes the event. The signature's timestamp must be within tolerance of now, in
// either direction, so a captured delivery cannot be replayed later; tolerance <= 0 means
// Stripe's default of 5 minutes. Any v1 signature in the header may match, as Stripe sends two
// while a secret is being rolled.
//
// It returns an error wrapping ErrBadSignature for a missing, invalid or old signature, and a
// plain error for a signed body that is not an event (malformed JSON, no id or type). Unknown
// event types parse fine: Type is set and the per-type fields are empty. The event's
// api_version is not checked: only fields that are stable across versions are read.
func ParseEvent(payload []byte, sigHeader, secret string, tolerance time.Duration, now time.Time) (Event, error) {
	const op = "parse stripe event"
	if secret == "" {
		// An empty secret would make the HMAC a function of the payload alone, which anyone
		// can compute. The caller should never get here, so refuse loudly.
		return Event{}, fmt.Errorf("%s: no webhook secret configured", op)
	}
	if tolerance <= 0 {
		tolerance = webhook.DefaultTolerance
	}
	signedAt, err := stripeSignatureTime(sigHeader)
	if err != nil {
		return Event{}, fmt.Errorf("%s: %w: %w", op, ErrBadSignature, err)
	}
	// stripe-go measures age against the wall clock; the caller's clock decides here, and a
	// timestamp far in the future is refused as well as an old one.
	if age := now.Sub(signedAt); age > tolerance || age < -tolerance {
		return Event{}, fmt.Errorf("%s: %w: signed at %s, outside %s of now (%s)",
			op, ErrBadSignature, signedAt.UTC().Format(time.RFC3339), tolerance, now.UTC().Format(time.RFC3339))
	}
	se, err := webhook.ConstructEventWithOptions(payload, sigHeader, secret, webhook.ConstructEventOptions{
		IgnoreTolerance:          true, // checked above, against now
		IgnoreAPIVersionMismatch: true,
	})
	if err != nil {
		if errors.Is(err, webhook.ErrNotSigned) || errors.Is(err, webhook.ErrInvalidHeader) ||
			errors.Is(err, webhook.ErrNoValidSignature) || errors.Is(err, webhook.ErrTooOld) {
			return Event{}, fmt.Errorf("%s: %w: %w", op, ErrBadSignature, err)
		}
		return Event{}, fmt.Errorf("%s: %w", op, err)
	}
	ev, err := stripeEventFrom(&se)
	if err != nil {
		return Event{}, fmt.Errorf("%s: %w", op, err)
	}
	return ev, nil
}

// ParseEventUnsigned decodes an event without checking any signature. It exists for test
// billing mode (no Stripe account, events made up by pmd itself or a test) and must never be
// reachable from the webhook when a secret is configured.
func ParseEventUnsigned(payload []byte) (Event, error) {
	const op = "parse unsigned stripe event"
	var se stripe.Event
	if err := json.Unmarshal(payload, &se); err != nil {
		return Event{}, fmt.Errorf("%s: %w", op, err)
	}
	if se.Object != "event" {
		return Event{}, fmt.Errorf("%s: object is %q, not an event", op, se.Object)
	}
	ev, err := stripeEventFrom(&se)
	if err != nil {
		return Event{}, fmt.Errorf("%s: %w", op, err)
	}
	return ev, nil
}

// stripeSignatureTime returns the timestamp of a Stripe-Signature header
// ("t=1700000000,v1=hex,v1=hex,v0=hex"). It demands exactly one t so that the time checked here
// is the one the HMAC covers: stripe-go takes the last of several, and signs a header with none
// as if made in year 1, which skipping its own tolerance check would otherwise accept.
func stripeSignatureTime(header string) (time.Time, error) {
	if header == "" {
		return time.Time{}, errors.New("no Stripe-Signature header")
	}
	var ts string
	n := 0
	for _, pair := range strings.Split(header, ",") {
		if v, ok := strings.CutPrefix(pair, "t="); ok {
			ts = v
			n++
		}
	}
	if n != 1 {
		return time.Time{}, fmt.Errorf("signature header has %d timestamps, want 1", n)
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || sec <= 0 {
		return time.Time{}, errors.New("signature header has an invalid timestamp")
	}
	return time.Unix(sec, 0), nil
}

func stripeEventFrom(se *stripe.Event) (Event, error) {
	if se.ID == "" {
		return Event{}, errors.New("event has no id")
	}
	if se.Type == "" {
		return Event{}, errors.New("event has no type")
	}
	ev := Event{ID: se.ID, Type: string(se.Type), Created: stripeTime(se.Created)}
	if se.Data == nil || len(bytes.TrimSpace(se.Data.Raw)) == 0 || bytes.Equal(bytes.TrimSpace(se.Data.Raw), []byte("null")) {
		return Event{}, errors.New("event has no data.object")
	}
	if err := stripeFillEvent(&ev, se.Data.Raw); err != nil {
		return Event{}, fmt.Errorf("event %s (%s): %w", ev.ID, ev.Type, err)
	}
	return ev, nil
}

// stripeFillEvent reads the event's object. The object's own "object" field names its kind, so
// every event about a checkout session, subscription or invoice gets its fields, including
// types billing does not handle yet. Objects of other kinds are not decoded further: their
// fields may have shapes this code does not expect, and an unknown event must still parse.
func stripeFillEvent(ev *Event, raw json.RawMessage) error {
	var head struct {
		Object string `json:"object"`
		ID     string `json:"id"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return fmt.Errorf("decode data.object: %w", err)
	}
	ev.ObjectID = head.ID
	switch head.Object {
	case "checkout.session":
		var o struct {
			ClientReferenceID string            `json:"client_reference_id"`
			Metadata          map[string]string `json:"metadata"`
			Customer          stripeRef         `json:"customer"`
			Subscription      stripeRef         `json:"subscription"`
		}
		if err := json.Unmarshal(raw, &o); err != nil {
			return fmt.Errorf("decode checkout session: %w", err)
		}
		ev.CheckoutID = head.ID
		ev.UserID = o.ClientReferenceID
		if ev.UserID == "" {
			ev.UserID = o.Metadata[stripeMetaUserID]
		}
		ev.PlanID = o.Metadata[stripeMetaPlanID]
		ev.CustomerID, ev.SubscriptionID = string(o.Customer), string(o.Subscription)
	case "subscription":
		var o struct {
			Metadata map[string]string `json:"metadata"`
			Customer stripeRef         `json:"customer"`
		}
		if err := json.Unmarshal(raw, &o); err != nil {
			return fmt.Errorf("decode subscription: %w", err)
		}
		ev.SubscriptionID = head.ID
		ev.CustomerID = string(o.Customer)
		ev.UserID, ev.PlanID = o.Metadata[stripeMetaUserID], o.Metadata[stripeMetaPlanID]
	case "invoice":
		type subDetails struct {
			Subscription stripeRef         `json:"subscription"`
			Metadata     map[string]string `json:"metadata"`
		}
		var o struct {
			Customer      stripeRef `json:"customer"`
			BillingReason string    `json:"billing_reason"`
			// API versions since 2025-03-31 (basil) name the subscription under parent.
			Parent *struct {
				SubscriptionDetails *subDetails `json:"subscription_details"`
			} `json:"parent"`
			// Older versions: a top-level subscription and subscription_details.
			Subscription        stripeRef   `json:"subscription"`
			SubscriptionDetails *subDetails `json:"subscription_details"`
			Lines               *struct {
				Data []struct {
					Period *struct {
						Start int64 `json:"start"`
						End   int64 `json:"end"`
					} `json:"period"`
				} `json:"data"`
			} `json:"lines"`
		}
		if err := json.Unmarshal(raw, &o); err != nil {
			return fmt.Errorf("decode invoice: %w", err)
		}
		ev.InvoiceID = head.ID
		ev.CustomerID = string(o.Customer)
		ev.BillingReason = o.BillingReason
		var meta map[string]string
		if o.Parent != nil && o.Parent.SubscriptionDetails != nil {
			ev.SubscriptionID = string(o.Parent.SubscriptionDetails.Subscription)
			meta = o.Parent.SubscriptionDetails.Metadata
		}
		if ev.SubscriptionID == "" {
			ev.SubscriptionID = string(o.Subscription)
		}
		if meta == nil && o.SubscriptionDetails != nil {
			meta = o.SubscriptionDetails.Metadata
		}
		ev.UserID, ev.PlanID = meta[stripeMetaUserID], meta[stripeMetaPlanID]
		if o.Lines != nil && len(o.Lines.Data) > 0 && o.Lines.Data[0].Period != nil {
			ev.PeriodStart = stripeTime(o.Lines.Data[0].Period.Start)
			ev.PeriodEnd = stripeTime(o.Lines.Data[0].Period.End)
		}
	}
	return nil
}

// stripeRef is an expandable Stripe field: an id string, the expanded object (whose id is
// kept), or null.
type stripeRef string

func (r *stripeRef) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case bytes.Equal(b, []byte("null")):
		*r = ""
		return nil
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*r = stripeRef(s)
		return nil
	case len(b) > 0 && b[0] == '{':
		var o struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(b, &o); err != nil {
			return err
		}
		*r = stripeRef(o.ID)
		return nil
	}
	return fmt.Errorf("want an id or an object, got %.20q", b)
}
