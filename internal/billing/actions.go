package billing

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/store"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// Subscribe starts paying for the customer's plan. With Stripe it returns the Checkout URL
// to send them to — the same one again for a second click while it is open; in test billing
// mode it activates the plan at once and returns "/app".
func (s *Service) Subscribe(ctx context.Context, userID string) (string, error) {
	u, err := s.store.GetUser(ctx, userID)
	if err != nil {
		return "", err
	}
	a, err := s.store.GetAssistant(ctx, userID)
	if errors.Is(err, store.ErrNotFound) {
		return "", wire.Errorf(wire.CodeInvalidArgument, "set up your assistant first")
	}
	if err != nil {
		return "", err
	}
	plan, ok := s.Plan(a.PlanID)
	if !ok {
		return "", wire.Errorf(wire.CodeInvalidArgument, "your plan is no longer offered; pick another in settings")
	}
	if cur, err := s.CurrentSubscription(ctx, userID); err == nil && live(cur) {
		return "", wire.Errorf(wire.CodeConflict, "you already have a subscription")
	} else if err != nil && !errors.Is(err, store.ErrNotFound) {
		return "", err
	}
	if s.TestMode() {
		return "/app", s.activateWithoutStripe(ctx, userID, plan, store.SourceTest, s.cfg.TestPeriod, customerActor(userID))
	}
	if s.cfg.Stripe == nil {
		return "", wire.Errorf(wire.CodeUnavailable, "plans are not sold online here yet; write to us and we turn yours on")
	}
	if plan.StripePriceID == "" {
		return "", wire.Errorf(wire.CodeUnavailable, "this plan cannot be bought online yet; contact us")
	}
	now := s.now()
	if c, err := s.store.GetCheckout(ctx, userID); err == nil && c.PlanID == plan.ID && now.Before(c.ExpiresAt) {
		return c.URL, nil
	}
	cust, err := s.cfg.Stripe.EnsureCustomer(ctx, userID, u.Email, u.StripeCustomerID)
	if err != nil {
		return "", s.stripeFailed("start checkout", err)
	}
	if cust != u.StripeCustomerID {
		if err := s.store.SetUserStripeCustomer(ctx, userID, cust, now); err != nil {
			return "", err
		}
	}
	// One checkout per customer, plan and half hour: a double click gets the same session.
	slot := now.Truncate(30 * time.Minute).Unix()
	co, err := s.cfg.Stripe.CreateCheckout(ctx, CheckoutParams{
		UserID: userID, PlanID: plan.ID, CustomerID: cust, PriceID: plan.StripePriceID,
		SuccessURL:     s.cfg.PublicURL + "/app/checkout/return?session_id={CHECKOUT_SESSION_ID}",
		CancelURL:      s.cfg.PublicURL + "/app",
		IdempotencyKey: fmt.Sprintf("checkout:%s:%s:%d", userID, plan.ID, slot),
	})
	if err != nil {
		return "", s.stripeFailed("start checkout", err)
	}
	if err := s.store.PutCheckout(ctx, store.Checkout{UserID: userID, PlanID: plan.ID, StripeID: co.ID, URL: co.URL,
		ExpiresAt: now.Add(23 * time.Hour)}); err != nil {
		return "", err
	}
	s.log.Info("checkout started", "user_id", userID, "plan", plan.ID, "checkout_id", co.ID)
	return co.URL, nil
}

// stripeFailed logs a failed Stripe call and tells the customer to try again.
func (s *Service) stripeFailed(what string, err error) error {
	s.log.Error("stripe call failed", "op", what, "err", err)
	return wire.Errorf(wire.CodeUnavailable, "we could not reach our payment provider; try again in a minute")
}

// activateWithoutStripe makes a live subscription that Stripe does not know: test billing
// mode, or an operator's grant. Its credits and bot are made with it.
func (s *Service) activateWithoutStripe(ctx context.Context, userID string, plan Plan, source string, period time.Duration, actor string) error {
	now := s.now()
	end := now.Add(period)
	x := store.Subscription{ID: newID("s-"), UserID: userID, PlanID: plan.ID, Source: source, Status: "active",
		PeriodStart: &now, PeriodEnd: &end, CreatedAt: now, UpdatedAt: now}
	var hostID string
	err := s.store.InTx(ctx, func(tx *store.Store) error {
		if cur, err := currentSubIn(ctx, tx, userID); err == nil && live(cur) {
			return wire.Errorf(wire.CodeConflict, "%s already has a live subscription (%s)", userID, cur.ID)
		}
		var err error
		if hostID, err = s.ensureBot(ctx, tx, &x); err != nil {
			return err
		}
		if err := tx.PutSubscription(ctx, x); err != nil {
			return err
		}
		if _, err := s.ledger.GrantPeriod(ctx, tx, userID, x.ID, plan.Credits(), now, end); err != nil {
			return err
		}
		_, err = tx.AppendAudit(ctx, store.AuditEntry{Time: now, Actor: actor, Action: "subscription." + source, Target: userID,
			Detail: fmt.Sprintf("%s, plan %s, until %s", x.ID, plan.ID, end.Format(time.RFC3339))})
		return err
	})
	if err != nil {
		return fmt.Errorf("activate subscription: %w", err)
	}
	s.log.Info("subscription activated", "user_id", userID, "subscription_id", x.ID, "source", source, "plan", plan.ID, "bot_id", x.BotID)
	s.kick(hostID)
	s.converge(ctx, x.ID)
	return nil
}

func (s *Service) kick(hostID string) {
	if hostID != "" {
		s.bots.Kick(hostID)
	}
}

// Grant gives a customer a plan for days without Stripe: for friends, tests and
// self-hosters. It is audited under actor. A customer who has not set up their assistant yet
// gets their bot when they do.
func (s *Service) Grant(ctx context.Context, actor, userID, planID string, days int) (store.Subscription, error) {
	plan, ok := s.Plan(planID)
	if !ok {
		return store.Subscription{}, wire.Errorf(wire.CodeInvalidArgument, "no plan %q", planID)
	}
	if days < 1 || days > 3660 {
		return store.Subscription{}, wire.Errorf(wire.CodeInvalidArgument, "days %d: use 1 to 3660", days)
	}
	if _, err := s.store.GetUser(ctx, userID); errors.Is(err, store.ErrNotFound) {
		return store.Subscription{}, wire.Errorf(wire.CodeNotFound, "no user %s", userID)
	}
	if err := s.activateWithoutStripe(ctx, userID, plan, store.SourceGrant, time.Duration(days)*24*time.Hour, actor); err != nil {
		return store.Subscription{}, err
	}
	return s.CurrentSubscription(ctx, userID)
}

// CheckoutReturned is the customer back from Checkout: their subscription is read from
// Stripe at once, so the page need not wait for the webhook (which still comes, and changes
// nothing then).
func (s *Service) CheckoutReturned(ctx context.Context, userID, sessionID string) error {
	if s.cfg.Stripe == nil || sessionID == "" {
		return nil
	}
	co, err := s.cfg.Stripe.GetCheckout(ctx, sessionID)
	if err != nil {
		return s.stripeFailed("read checkout", err)
	}
	if co.UserID != userID {
		return wire.Errorf(wire.CodePermissionDenied, "that checkout belongs to another account")
	}
	if co.SubscriptionID == "" {
		return nil
	}
	sub, err := s.cfg.Stripe.GetSubscription(ctx, co.SubscriptionID)
	if err != nil {
		return s.stripeFailed("read subscription", err)
	}
	var hostID, rowID string
	err = s.store.InTx(ctx, func(tx *store.Store) error {
		var err error
		hostID, rowID, err = s.applySubscription(ctx, tx, sub, userID)
		return err
	})
	if err != nil {
		return err
	}
	_ = s.store.DeleteCheckout(ctx, userID)
	s.kick(hostID)
	if rowID != "" {
		s.converge(ctx, rowID)
	}
	return nil
}

// Portal returns a Stripe Customer Portal link for the customer.
func (s *Service) Portal(ctx context.Context, userID, returnURL string) (string, error) {
	if s.cfg.Stripe == nil {
		return "", wire.Errorf(wire.CodeInvalidArgument, "there is no online billing to manage here")
	}
	u, err := s.store.GetUser(ctx, userID)
	if err != nil {
		return "", err
	}
	if u.StripeCustomerID == "" {
		return "", wire.Errorf(wire.CodeInvalidArgument, "you have not paid for anything yet")
	}
	if _, err := url.Parse(returnURL); err != nil || returnURL == "" {
		returnURL = s.cfg.PublicURL + "/app"
	}
	link, err := s.cfg.Stripe.Portal(ctx, u.StripeCustomerID, returnURL)
	if err != nil {
		return "", s.stripeFailed("open billing portal", err)
	}
	return link, nil
}

// Cancel ends the customer's subscription at the end of the paid period; Resume takes that
// back.
func (s *Service) Cancel(ctx context.Context, userID string) error {
	return s.setCancel(ctx, userID, true)
}

// Resume undoes Cancel while the period lasts.
func (s *Service) Resume(ctx context.Context, userID string) error {
	return s.setCancel(ctx, userID, false)
}

func (s *Service) setCancel(ctx context.Context, userID string, cancel bool) error {
	x, err := s.CurrentSubscription(ctx, userID)
	if errors.Is(err, store.ErrNotFound) || err == nil && !live(x) {
		return wire.Errorf(wire.CodeInvalidArgument, "you have no subscription to change")
	}
	if err != nil {
		return err
	}
	action := map[bool]string{true: "subscription.cancel", false: "subscription.resume"}[cancel]
	if x.Source == store.SourceStripe {
		if s.cfg.Stripe == nil {
			return wire.Errorf(wire.CodeUnavailable, "your subscription is with Stripe, which this server no longer reaches; write to us")
		}
		sub, err := s.cfg.Stripe.CancelAtPeriodEnd(ctx, x.StripeSubscriptionID, cancel)
		if err != nil {
			return s.stripeFailed(action, err)
		}
		return s.store.InTx(ctx, func(tx *store.Store) error {
			if _, _, err := s.applySubscription(ctx, tx, sub, userID); err != nil {
				return err
			}
			_, err := tx.AppendAudit(ctx, store.AuditEntry{Time: s.now(), Actor: customerActor(userID), Action: action, Target: userID, Detail: x.ID})
			return err
		})
	}
	x.CancelAtPeriodEnd, x.UpdatedAt = cancel, s.now()
	return s.store.InTx(ctx, func(tx *store.Store) error {
		if err := tx.PutSubscription(ctx, x); err != nil {
			return err
		}
		_, err := tx.AppendAudit(ctx, store.AuditEntry{Time: s.now(), Actor: customerActor(userID), Action: action, Target: userID, Detail: x.ID})
		return err
	})
}

// Restart restarts the customer's bot.
func (s *Service) Restart(ctx context.Context, userID string) error {
	x, err := s.CurrentSubscription(ctx, userID)
	if err != nil || x.BotID == "" || !live(x) {
		return wire.Errorf(wire.CodeInvalidArgument, "your assistant is not running yet")
	}
	_, err = s.bots.Restart(ctx, customerActor(userID), x.BotID)
	if isWire(err, wire.CodeUnavailable) {
		return wire.Errorf(wire.CodeUnavailable, "your assistant's server is out of reach; it is restarted when it is back, or try again shortly")
	}
	return err
}

// DeleteCustomer removes a customer: their Stripe subscription is canceled now, their bot
// deleted with its workspace, and their account with everything recorded about them.
func (s *Service) DeleteCustomer(ctx context.Context, userID string) error {
	subs, err := s.store.ListSubscriptions(ctx, userID)
	if err != nil {
		return err
	}
	for _, x := range subs {
		if x.Source == store.SourceStripe && live(x) {
			if s.cfg.Stripe == nil {
				return wire.Errorf(wire.CodeUnavailable, "your subscription is with Stripe, which this server no longer reaches; write to us")
			}
			if _, err := s.cfg.Stripe.CancelNow(ctx, x.StripeSubscriptionID); err != nil && !errors.Is(err, ErrStripeNotFound) {
				return s.stripeFailed("cancel subscription", err)
			}
		}
		if x.BotID != "" {
			if _, err := s.bots.Delete(ctx, customerActor(userID), x.BotID, true); err != nil && !isWire(err, wire.CodeNotFound) {
				return fmt.Errorf("delete bot %s: %w", x.BotID, err)
			}
		}
	}
	now := s.now()
	err = s.store.InTx(ctx, func(tx *store.Store) error {
		if err := tx.DeleteUser(ctx, userID); err != nil {
			return err
		}
		_, err := tx.AppendAudit(ctx, store.AuditEntry{Time: now, Actor: customerActor(userID), Action: "user.delete", Target: userID,
			Detail: fmt.Sprintf("%d subscriptions", len(subs))})
		return err
	})
	if err != nil {
		return fmt.Errorf("delete account: %w", err)
	}
	s.log.Info("customer deleted", "user_id", userID)
	return nil
}
