package billing

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/httpapi"
	"github.com/pocketmolt/pocketmolt/internal/store"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// maxWebhookBody bounds a webhook's body; Stripe's events are a few KiB.
const maxWebhookBody = 256 << 10

// Webhook is POST /webhooks/stripe: it verifies the signature, records the event and
// applies it exactly once. A bad signature is 400 with nothing written; an event it cannot
// apply now (Stripe out of reach, the database busy) is 5xx, and Stripe sends it again.
func (s *Service) Webhook() http.Handler {
	return httpapi.Handle(s.log, func(w http.ResponseWriter, r *http.Request) error {
		if s.cfg.WebhookSecret == "" {
			return wire.Errorf(wire.CodeNotFound, "stripe webhooks are not configured on this server")
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxWebhookBody))
		if err != nil {
			return wire.Errorf(wire.CodePayloadTooLarge, "webhook body: at most %d bytes", maxWebhookBody)
		}
		ev, err := ParseEvent(body, r.Header.Get("Stripe-Signature"), s.cfg.WebhookSecret, s.cfg.WebhookTolerance, s.now())
		if errors.Is(err, ErrBadSignature) {
			return wire.Errorf(wire.CodeInvalidArgument, "the Stripe-Signature header is missing, invalid or too old")
		}
		if err != nil {
			return wire.Errorf(wire.CodeInvalidArgument, "the event cannot be read: %v", err)
		}
		res, err := s.HandleEvent(r.Context(), ev)
		if err != nil {
			return err
		}
		wire.WriteJSON(w, http.StatusOK, map[string]string{"result": res})
		return nil
	})
}

// Results of HandleEvent.
const (
	ResultApplied   = "applied"
	ResultDuplicate = "duplicate"
	ResultIgnored   = "ignored"
)

// HandleEvent applies one verified event exactly once. Where order matters it reads the
// subscription's current state from Stripe rather than trusting the event's copy, so events
// may come in any order and any number of times.
func (s *Service) HandleEvent(ctx context.Context, ev Event) (result string, err error) {
	if s.cfg.EventHandled != nil {
		defer func() {
			r := result
			if err != nil {
				r = "error"
			}
			s.cfg.EventHandled(ev.Type, r)
		}()
	}
	if s.cfg.Stripe == nil {
		return "", wire.Errorf(wire.CodeInvalidArgument, "billing runs without Stripe here: Stripe events are not accepted")
	}
	var subID string
	switch ev.Type {
	case "checkout.session.completed", "invoice.paid", "invoice.payment_failed":
		subID = ev.SubscriptionID
	case "customer.subscription.created", "customer.subscription.updated", "customer.subscription.deleted":
		subID = ev.ObjectID
	default:
		s.log.Info("stripe event ignored", "event_id", ev.ID, "type", ev.Type)
		return ResultIgnored, nil
	}
	// Read Stripe first, outside the transaction: a database transaction never waits on
	// the network.
	var sub *Subscription
	if subID != "" {
		got, err := s.cfg.Stripe.GetSubscription(ctx, subID)
		switch {
		case errors.Is(err, ErrStripeNotFound):
			s.log.Warn("stripe event names a subscription stripe does not know", "event_id", ev.ID, "subscription", subID)
		case err != nil:
			s.log.Error("stripe call failed", "op", "read subscription", "event_id", ev.ID, "err", err)
			return "", wire.Errorf(wire.CodeUnavailable, "stripe is out of reach; send the event again")
		default:
			sub = &got
		}
	}
	result = ResultApplied
	var hostID, rowID, orphan string
	err = s.store.InTx(ctx, func(tx *store.Store) error {
		fresh, err := tx.RecordStripeEvent(ctx, ev.ID, ev.Type, s.now())
		if err != nil {
			return err
		}
		if !fresh {
			result = ResultDuplicate
			return nil
		}
		if s.failAfterRecord != nil {
			if err := s.failAfterRecord(ev.ID); err != nil {
				return err
			}
		}
		userID := ev.UserID
		if ev.Type == "checkout.session.completed" && userID != "" {
			u, err := tx.GetUser(ctx, userID)
			if errors.Is(err, store.ErrNotFound) {
				// Paid, then deleted their account: nothing to run, and nothing to charge.
				orphan = subID
				return nil
			}
			if err != nil {
				return err
			}
			if u.StripeCustomerID == "" && ev.CustomerID != "" {
				if err := tx.SetUserStripeCustomer(ctx, u.ID, ev.CustomerID, s.now()); err != nil {
					return err
				}
			}
			if err := tx.DeleteCheckout(ctx, u.ID); err != nil {
				return err
			}
		}
		if sub == nil {
			return nil
		}
		hostID, rowID, err = s.applySubscription(ctx, tx, *sub, userID)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("apply stripe event %s (%s): %w", ev.ID, ev.Type, err)
	}
	if orphan != "" && sub != nil && live(store.Subscription{Status: sub.Status}) {
		if _, err := s.cfg.Stripe.CancelNow(ctx, orphan); err != nil {
			s.log.Error("cancel the subscription of a deleted customer", "subscription", orphan, "err", err)
		}
	}
	s.log.Info("stripe event", "event_id", ev.ID, "type", ev.Type, "result", result)
	s.kick(hostID)
	if rowID != "" {
		s.converge(ctx, rowID)
	}
	return result, nil
}

// applySubscription records Stripe's current state of a subscription in tx: the row (made if
// new), its period's credits, and its bot. userID is the customer when the caller knows them;
// otherwise they are found from the subscription's metadata or its Stripe customer. It returns
// the host to kick when a bot was made, and the subscription's row ("" when it has none).
func (s *Service) applySubscription(ctx context.Context, tx *store.Store, sub Subscription, userID string) (hostID, rowID string, err error) {
	now := s.now()
	x, err := tx.GetSubscriptionByStripeID(ctx, sub.ID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		uid := sub.UserID
		if uid == "" {
			uid = userID
		}
		if uid == "" && sub.CustomerID != "" {
			if u, err := tx.GetUserByStripeCustomer(ctx, sub.CustomerID); err == nil {
				uid = u.ID
			}
		}
		if uid == "" {
			s.log.Warn("stripe subscription of no known customer", "subscription", sub.ID)
			return "", "", nil
		}
		if _, err := tx.GetUser(ctx, uid); errors.Is(err, store.ErrNotFound) {
			s.log.Warn("stripe subscription of a deleted customer", "subscription", sub.ID, "user_id", uid)
			return "", "", nil
		} else if err != nil {
			return "", "", err
		}
		x = store.Subscription{ID: newID("s-"), UserID: uid, Source: store.SourceStripe, StripeSubscriptionID: sub.ID, CreatedAt: now}
	case err != nil:
		return "", "", err
	}
	plan, ok := s.planByPrice(sub.PriceID)
	if !ok {
		plan, ok = s.Plan(sub.PlanID)
	}
	if !ok {
		if x.PlanID == "" {
			return "", "", fmt.Errorf("subscription %s: its price %q is not any plan's stripe_price_id", sub.ID, sub.PriceID)
		}
		plan, _ = s.Plan(x.PlanID)
	}
	x.PlanID = plan.ID
	x.Status = sub.Status
	x.CancelAtPeriodEnd = sub.CancelAtPeriodEnd
	if !sub.PeriodStart.IsZero() {
		ps, pe := sub.PeriodStart.UTC(), sub.PeriodEnd.UTC()
		x.PeriodStart, x.PeriodEnd = &ps, &pe
	}
	switch {
	case sub.Status == "past_due" && x.PastDueSince == nil:
		x.PastDueSince = &now
	case sub.Status != "past_due":
		x.PastDueSince = nil
	}
	if live(x) {
		x.EndedAt = nil
	} else if x.EndedAt == nil {
		ended := now
		if sub.EndedAt != nil {
			ended = sub.EndedAt.UTC()
		}
		x.EndedAt = &ended
	}
	x.UpdatedAt = now
	hostID, err = s.ensureBot(ctx, tx, &x)
	if err != nil {
		return "", "", err
	}
	if err := tx.PutSubscription(ctx, x); err != nil {
		return "", "", err
	}
	// Each paid period's credits, once: keyed by the period, so invoice.paid, a renewal's
	// subscription.updated and the return from Checkout grant one period once between them.
	if (x.Status == "active" || x.Status == "trialing") && x.PeriodStart != nil {
		if _, err := s.ledger.GrantPeriod(ctx, tx, x.UserID, x.ID, plan.Credits(), *x.PeriodStart, *x.PeriodEnd); err != nil {
			return "", "", err
		}
	}
	return hostID, x.ID, nil
}

// convergeTimeout bounds converging one subscription after an event.
const convergeTimeout = 10 * time.Second
