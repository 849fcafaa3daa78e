package billing

import (
	"context"
	"errors"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/store"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// Run keeps bots in step with subscriptions as time passes, until ctx ends: a grace period
// that ran out stops the bot; a period without Stripe (a grant, test billing) that ended
// ends its subscription — or renews, in test billing mode; an ended subscription's bot is
// deleted with its workspace after the retention period. Everything it does is recorded
// state, so a pmd that restarts picks up where this one left off.
func (s *Service) Run(ctx context.Context) {
	t := time.NewTicker(s.cfg.SweepInterval)
	defer t.Stop()
	for {
		if err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("billing sweep failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Sweep runs one pass of Run.
func (s *Service) Sweep(ctx context.Context) error {
	now := s.now()
	subs, err := s.store.ListSubscriptions(ctx, "")
	if err != nil {
		return err
	}
	for _, x := range subs {
		if x.Source != store.SourceStripe && live(x) && x.PeriodEnd != nil && !now.Before(*x.PeriodEnd) {
			if err := s.endOrRenew(ctx, x); err != nil {
				s.log.Error("end a period", "subscription_id", x.ID, "err", err)
			}
			continue
		}
		if x.BotID != "" {
			s.converge(ctx, x.ID)
		}
	}
	return nil
}

// endOrRenew ends a period that Stripe does not bill: renewed in test billing mode unless
// canceled; otherwise ended.
func (s *Service) endOrRenew(ctx context.Context, x store.Subscription) error {
	now := s.now()
	plan, ok := s.Plan(x.PlanID)
	renew := x.Source == store.SourceTest && !x.CancelAtPeriodEnd && ok
	err := s.store.InTx(ctx, func(tx *store.Store) error {
		if renew {
			start, end := *x.PeriodEnd, x.PeriodEnd.Add(s.cfg.TestPeriod)
			x.PeriodStart, x.PeriodEnd = &start, &end
			if _, err := s.ledger.GrantPeriod(ctx, tx, x.UserID, x.ID, plan.Credits(), start, end); err != nil {
				return err
			}
		} else {
			x.Status, x.EndedAt = "canceled", x.PeriodEnd
		}
		x.UpdatedAt = now
		return tx.PutSubscription(ctx, x)
	})
	if err != nil {
		return err
	}
	s.log.Info("subscription period ended", "subscription_id", x.ID, "renewed", renew)
	s.converge(ctx, x.ID)
	if renew {
		s.bots.CreditsChanged(ctx, x.UserID) // the new period's credits reach the bot's host
	}
	return nil
}

// want is what a subscription's bot should be now: running, stopped, or gone.
func (s *Service) want(x store.Subscription, now time.Time) string {
	switch {
	case x.Status == "active" || x.Status == "trialing":
		return store.DesiredRunning
	case x.Status == "past_due":
		if x.PastDueSince != nil && now.Sub(*x.PastDueSince) > s.cfg.GracePeriod {
			return store.DesiredStopped
		}
		return store.DesiredRunning
	case x.EndedAt != nil && now.Sub(*x.EndedAt) > s.cfg.Retention:
		return store.DesiredDeleted
	default:
		return store.DesiredStopped
	}
}

// converge brings one subscription's bot to what the subscription says. Failures are
// logged; the next sweep tries again.
func (s *Service) converge(ctx context.Context, subID string) {
	ctx, cancel := context.WithTimeout(ctx, convergeTimeout)
	defer cancel()
	x, err := s.store.GetSubscription(ctx, subID)
	if err != nil || x.BotID == "" {
		return
	}
	b, err := s.bots.Get(ctx, x.BotID)
	if isWire(err, wire.CodeNotFound) {
		// Deleted (after the retention, or by an operator): forget it, so a resubscription
		// makes a new one.
		x.BotID, x.UpdatedAt = "", s.now()
		if err := s.store.PutSubscription(ctx, x); err != nil {
			s.log.Error("forget a deleted bot", "subscription_id", x.ID, "err", err)
		}
		return
	}
	if err != nil {
		s.log.Error("read a subscription's bot", "subscription_id", x.ID, "bot_id", x.BotID, "err", err)
		return
	}
	want := s.want(x, s.now())
	switch {
	case b.Desired == store.DesiredDeleted || b.Desired == want:
		return
	case want == store.DesiredDeleted:
		_, err = s.bots.Delete(ctx, "billing", x.BotID, true)
	case want == store.DesiredStopped:
		_, err = s.bots.SetDesired(ctx, "billing", x.BotID, store.DesiredStopped)
	case want == store.DesiredRunning && b.Desired == store.DesiredStopped && !x.UpdatedAt.Before(b.UpdatedAt):
		// Started again only by a change of the subscription since the bot was stopped, so
		// an operator's stop holds until billing has news.
		_, err = s.bots.SetDesired(ctx, "billing", x.BotID, store.DesiredRunning)
	default:
		return
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		s.log.Error("bring a bot in step with its subscription", "subscription_id", x.ID, "bot_id", x.BotID, "want", want, "err", err)
		return
	}
	s.log.Info("bot follows its subscription", "subscription_id", x.ID, "bot_id", x.BotID, "status", x.Status, "desired", want)
}
