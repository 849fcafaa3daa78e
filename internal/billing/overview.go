package billing

import (
	"context"
	"errors"
	"strings"

	"github.com/pocketmolt/pocketmolt/internal/store"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// Overview gathers what the customer's dashboard shows.
func (s *Service) Overview(ctx context.Context, userID string) (Overview, error) {
	u, err := s.store.GetUser(ctx, userID)
	if err != nil {
		return Overview{}, err
	}
	o := Overview{UserID: u.ID, Email: u.Email, TestMode: s.TestMode(), Stage: StageOnboarding,
		StageText: "Set up your assistant: give it a name, pick a model and how you want to talk to it."}
	a, err := s.store.GetAssistant(ctx, userID)
	if errors.Is(err, store.ErrNotFound) {
		return o, nil
	}
	if err != nil {
		return Overview{}, err
	}
	av := &AssistantView{Name: a.Name, PlanID: a.PlanID, Model: a.Model, Telegram: a.Telegram, WhatsApp: a.WhatsApp,
		WebChat: a.WebChat, KeyMode: a.KeyMode, KeyLast4: a.KeyLast4}
	if p, ok := s.Plan(a.PlanID); ok {
		av.PlanName = p.Name
	}
	o.Assistant = av
	if a.KeyMode == KeyCredits {
		bal, err := s.ledger.Balance(ctx, userID)
		if err != nil {
			return Overview{}, err
		}
		o.CreditsLeft = bal.Dollars()
	}
	o.Stage, o.StageText = StageWaitingPayment, "Subscribe to start your assistant."
	x, err := s.CurrentSubscription(ctx, userID)
	if errors.Is(err, store.ErrNotFound) {
		return o, nil
	}
	if err != nil {
		return Overview{}, err
	}
	o.Subscription = &SubscriptionView{ID: x.ID, PlanID: x.PlanID, Status: x.Status, Source: x.Source, PeriodEnd: x.PeriodEnd,
		CancelAtPeriodEnd: x.CancelAtPeriodEnd, PastDue: x.Status == "past_due"}
	if !live(x) {
		o.Stage, o.StageText = StageStopped, "Your subscription has ended, so your assistant is stopped. Subscribe again to bring it back with everything it knew."
		if x.Status == "incomplete" {
			o.Stage, o.StageText = StageWaitingPayment, "Your payment is not complete yet."
		}
		return o, nil
	}
	if x.BotID == "" {
		o.Stage, o.StageText = StagePreparing, "We are preparing your assistant."
		return o, nil
	}
	b, err := s.bots.Get(ctx, x.BotID)
	if isWire(err, wire.CodeNotFound) {
		o.Stage, o.StageText = StagePreparing, "We are preparing your assistant."
		return o, nil
	}
	if err != nil {
		return Overview{}, err
	}
	reason := b.LastError
	if b.Status == wire.BotWaiting {
		reason = b.Waiting
	}
	o.Bot = &BotView{ID: b.ID, Name: b.Name, Status: b.Status, Health: b.Health, Reason: reason, StartedAt: b.StartedAt}
	o.Stage, o.StageText = stageOf(b, x)
	return o, nil
}

// stageOf says where a bot is, in the customer's words.
func stageOf(b wire.Bot, x store.Subscription) (string, string) {
	if b.Desired == store.DesiredStopped {
		if x.Status == "past_due" {
			return StageStopped, "Your assistant is stopped because a payment failed. Update your payment method under Manage billing."
		}
		return StageStopped, "Your assistant is stopped."
	}
	switch b.Status {
	case wire.BotWaiting:
		if strings.Contains(b.Waiting, "dedicated") {
			return StagePreparing, "We are preparing your assistant's own server. This can take a few minutes."
		}
		return StagePreparing, "We are preparing your assistant. It starts as soon as a server has room."
	case wire.BotPending:
		return StagePending, "Your assistant is on its way to its server."
	case wire.BotPulling:
		return StagePulling, "Your assistant's server is downloading it."
	case wire.BotStarting:
		return StageStarting, "Your assistant is starting."
	case wire.BotRunning:
		if b.Health == wire.HealthDegraded {
			return StageRunning, "Your assistant is running, but one of its channels is not working: check your Telegram token in settings."
		}
		if b.Health != "" && b.Health != wire.HealthHealthy {
			return StageRunning, "Your assistant is running but does not answer its health check right now. It is restarted if it stays that way; try Restart, or write to us."
		}
		if x.Status == "past_due" {
			return StageRunning, "Your assistant is running, but your last payment failed. Update your payment method under Manage billing."
		}
		return StageRunning, "Your assistant is running."
	case wire.BotStopped:
		return StageStopped, "Your assistant is stopped."
	case wire.BotFailed:
		return StageFailed, "Your assistant could not start. We have been told; try Restart, or write to us."
	default:
		return StageUnknown, "We cannot reach your assistant's server right now. It keeps running if it can; we are on it."
	}
}
