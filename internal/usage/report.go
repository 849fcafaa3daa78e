package usage

import (
	"context"
	"fmt"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/credits"
	"github.com/pocketmolt/pocketmolt/internal/store"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// Top is the usage of [since, until) by owner, bot and model, the costliest first; limit > 0
// keeps that many rows.
func (s *Service) Top(ctx context.Context, since, until time.Time, limit int) (wire.UsageReport, error) {
	ts, err := s.cfg.Store.UsageTop(ctx, since, until, limit)
	if err != nil {
		return wire.UsageReport{}, err
	}
	return report(since, until, ts), nil
}

// Bot is one bot's usage of [since, until) by day (UTC) and model, oldest day first.
func (s *Service) Bot(ctx context.Context, botID string, since, until time.Time) (wire.UsageReport, error) {
	ts, err := s.cfg.Store.UsageByDay(ctx, botID, since, until)
	if err != nil {
		return wire.UsageReport{}, err
	}
	return report(since, until, ts), nil
}

func report(since, until time.Time, ts []store.UsageTotal) wire.UsageReport {
	rep := wire.UsageReport{Since: since.UTC(), Until: until.UTC(), Rows: make([]wire.UsageRow, len(ts))}
	for i, t := range ts {
		rep.Rows[i] = wire.UsageRow{
			Day: t.Day, Owner: ownerRef(t.Owner), Email: t.Email, BotID: t.BotID, BotName: t.BotName,
			Provider: t.Provider, Model: t.Model, Calls: t.Calls, Errors: t.Errors, Tokens: t.Tokens, Estimated: t.Estimated,
			Cost: credits.Amount(t.Cost).String(), Debited: credits.Amount(t.Debited).String(),
		}
	}
	return rep
}

// ownerRef is an owner as reports show it: customer:<id> or operator:<name>; "" for a bot
// pmd no longer knew when its usage arrived.
func ownerRef(o store.Owner) string {
	if o.Kind == "" {
		return ""
	}
	return o.Kind + ":" + o.ID
}

// Totals sum a customer's usage over a time: calls, tokens, what they cost and what of it was
// taken from their credits.
type Totals struct {
	Calls   int64
	Tokens  wire.Tokens
	Cost    credits.Amount
	Debited credits.Amount
}

// CustomerUsage is what the dashboard shows a customer: their usage today (since midnight
// UTC) and since the start of their period.
type CustomerUsage struct {
	Today, Period Totals
	PeriodStart   time.Time
}

// Customer is a customer's usage today and since periodStart.
func (s *Service) Customer(ctx context.Context, userID string, periodStart time.Time) (CustomerUsage, error) {
	owner := store.Owner{Kind: store.OwnerCustomer, ID: userID}
	today, err := s.cfg.Store.UsageOfOwner(ctx, owner, s.now().Truncate(24*time.Hour))
	if err != nil {
		return CustomerUsage{}, fmt.Errorf("usage of customer %s: %w", userID, err)
	}
	period, err := s.cfg.Store.UsageOfOwner(ctx, owner, periodStart)
	if err != nil {
		return CustomerUsage{}, fmt.Errorf("usage of customer %s: %w", userID, err)
	}
	return CustomerUsage{Today: totals(today), Period: totals(period), PeriodStart: periodStart.UTC()}, nil
}

func totals(t store.UsageTotal) Totals {
	return Totals{Calls: t.Calls, Tokens: t.Tokens, Cost: credits.Amount(t.Cost), Debited: credits.Amount(t.Debited)}
}
