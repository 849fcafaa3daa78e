// Package usage is pmd's side of model usage: it commits the usage records agents send
// (POST /v1/usage over their tunnels) once each, debits customers' credits for them in the
// same transaction, answers with the allowances the agents enforce, and reports usage for
// pmctl and the dashboard.
package usage

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/credits"
	"github.com/pocketmolt/pocketmolt/internal/metrics"
	"github.com/pocketmolt/pocketmolt/internal/prices"
	"github.com/pocketmolt/pocketmolt/internal/store"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// Config is what a Service needs.
type Config struct {
	Store  *store.Store
	Ledger *credits.Ledger
	Prices prices.Table
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Log is where a refused batch and a missing price are told; nil logs nothing.
	Log *slog.Logger
	// Metrics counts calls, tokens, refusals and cost; nil counts nothing.
	Metrics *metrics.Metrics
}

// Service commits and reports usage. It is safe for concurrent use.
type Service struct {
	cfg Config
	log *slog.Logger

	mu sync.Mutex
	// unpriced are the models already warned about for lacking a price, at most
	// maxUnpriced of them (agents name models, so the set must stay bounded).
	unpriced map[string]bool
}

const maxUnpriced = 1000

// New returns a Service.
func New(cfg Config) *Service {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{cfg: cfg, log: log, unpriced: map[string]bool{}}
}

func (s *Service) now() time.Time { return s.cfg.Now().UTC() }

// Handle is POST /v1/usage, for fleet.HandleAgent: it decodes and commits the batch of the
// agent of hostID and answers wire.UsageReply.
func (s *Service) Handle(w http.ResponseWriter, r *http.Request, hostID string) error {
	b, err := DecodeBatch(w, r, s.now())
	if err != nil {
		return err
	}
	reply, err := s.Commit(r.Context(), hostID, b)
	if err != nil {
		return err
	}
	wire.WriteJSON(w, http.StatusOK, reply)
	return nil
}

// Commit records the batch the agent of hostID sent, in one transaction: each record whose id
// is new is stored with its cost at pmd's prices, and what the new records of a customer's
// bot on credits cost is taken from that customer's credits in one ledger entry. A batch sent
// again commits and debits nothing. The batch is checked first (CheckBatch); records or
// refusals about another host's bots refuse it whole with permission_denied, and those about
// bots pmd no longer knows are kept without an owner and not debited.
//
// The reply carries the allowance of each customer's bot on credits the batch named.
func (s *Service) Commit(ctx context.Context, hostID string, b wire.UsageBatch) (wire.UsageReply, error) {
	now := s.now()
	b.Records = slices.Clone(b.Records) // CheckBatch works in place; the caller's batch stays as it was
	clamped, err := CheckBatch(&b, now)
	if err != nil {
		return wire.UsageReply{}, err
	}
	if clamped > 0 {
		s.log.Warn("usage records with times far from pmd's clock kept at the time they arrived", "host_id", hostID, "records", clamped)
	}
	ids := botIDs(b)
	bots, err := s.cfg.Store.UsageBots(ctx, ids)
	if err != nil {
		return wire.UsageReply{}, fmt.Errorf("commit usage: %w", err)
	}
	var foreign []string
	for _, id := range ids {
		if bot, ok := bots[id]; ok && bot.HostID != hostID {
			foreign = append(foreign, id)
		}
	}
	if len(foreign) > 0 {
		s.log.Warn("host reported usage of other hosts' bots", "host_id", hostID, "bot_ids", foreign)
		return wire.UsageReply{}, wire.Errorf(wire.CodePermissionDenied, "bot %s is not on this host", foreign[0])
	}

	recs := make([]store.UsageRecord, len(b.Records))
	var payers []string // customers whose records may be debited
	for i, r := range b.Records {
		owner := bots[r.BotID].Owner // zero for a bot pmd does not know
		recs[i] = store.UsageRecord{
			ID: r.ID, HostID: hostID, BotID: r.BotID, Owner: owner, Provider: r.Provider, Model: r.Model, API: r.API,
			Stream: r.Stream, Status: r.Status, Outcome: r.Outcome, Tokens: r.Tokens, Estimated: r.Estimated, BYOK: r.BYOK,
			Cost: prices.Cost(s.price(r.Provider, r.Model), r.Tokens), At: r.Time, Millis: r.Millis, RecordedAt: now,
		}
		if owner.Kind == store.OwnerCustomer && !r.BYOK {
			payers = append(payers, owner.ID)
		}
	}
	// The same order in every transaction, so two committing overlapping batches at once on
	// PostgreSQL wait for each other rather than deadlock.
	slices.SortFunc(recs, func(x, y store.UsageRecord) int { return cmp.Compare(x.ID, y.ID) })
	slices.Sort(payers)
	payers = slices.Compact(payers)

	var inserted map[string]bool
	err = s.cfg.Store.InTx(ctx, func(tx *store.Store) error {
		// A customer deleted since their bot's call leaves nothing to debit: the record is
		// kept, undebited, rather than stuck in its agent's spool.
		users, err := tx.ExistingUsers(ctx, payers)
		if err != nil {
			return err
		}
		for i := range recs {
			if r := &recs[i]; r.Owner.Kind == store.OwnerCustomer && !r.BYOK && users[r.Owner.ID] {
				r.Debited = r.Cost
			}
		}
		if inserted, err = tx.InsertUsage(ctx, recs); err != nil {
			return err
		}
		type debit struct {
			first  string
			calls  int
			amount credits.Amount
		}
		debits := map[string]*debit{}
		for _, r := range recs {
			if !inserted[r.ID] || r.Debited == 0 {
				continue
			}
			d := debits[r.Owner.ID]
			if d == nil {
				d = &debit{first: r.ID}
				debits[r.Owner.ID] = d
			}
			d.calls++
			d.amount += credits.Amount(r.Debited)
		}
		for _, user := range payers {
			d := debits[user]
			if d == nil {
				continue
			}
			calls := "calls"
			if d.calls == 1 {
				calls = "call"
			}
			if _, err := s.cfg.Ledger.DebitTx(ctx, tx, user, d.amount, "usage:"+d.first, fmt.Sprintf("model usage: %d %s", d.calls, calls)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return wire.UsageReply{}, fmt.Errorf("commit usage from host %s: %w", hostID, err)
	}
	for _, r := range recs {
		if inserted[r.ID] {
			s.cfg.Metrics.ModelCall(r.Provider, r.Outcome, r.Tokens, r.Cost)
		}
	}
	// Refusals are not kept and have no ids: a batch whose every record was committed
	// before is one sent again, and its refusals were counted then.
	if len(inserted) > 0 || len(b.Records) == 0 {
		for _, rf := range b.Refusals {
			s.cfg.Metrics.ModelRefusals(rf.Provider, rf.Reason, rf.Count)
		}
	}
	reply := wire.UsageReply{Committed: len(inserted)}
	if reply.Allowances, err = s.allowances(ctx, b, bots); err != nil {
		return wire.UsageReply{}, fmt.Errorf("commit usage from host %s: %w", hostID, err)
	}
	return reply, nil
}

// botIDs are the distinct bots a batch names, in order.
func botIDs(b wire.UsageBatch) []string {
	seen := map[string]bool{}
	var ids []string
	add := func(id string) {
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	for _, r := range b.Records {
		add(r.BotID)
	}
	for _, rf := range b.Refusals {
		add(rf.BotID)
	}
	return ids
}

// allowances are the new allowances of the customers' bots on credits a batch named: those
// with a record on the platform's key or refused for credits.
func (s *Service) allowances(ctx context.Context, b wire.UsageBatch, bots map[string]store.UsageBot) (map[string]wire.Allowance, error) {
	onCredits := map[string]bool{}
	for _, r := range b.Records {
		if !r.BYOK {
			onCredits[r.BotID] = true
		}
	}
	for _, rf := range b.Refusals {
		if rf.Reason == wire.RefusedCredits {
			onCredits[rf.BotID] = true
		}
	}
	var out map[string]wire.Allowance
	byUser := map[string]wire.Allowance{}
	for id := range onCredits {
		bot, ok := bots[id]
		if !ok || bot.Owner.Kind != store.OwnerCustomer {
			continue
		}
		a, ok := byUser[bot.Owner.ID]
		if !ok {
			var err error
			if a, err = s.Allowance(ctx, bot.Owner.ID); err != nil {
				return nil, err
			}
			byUser[bot.Owner.ID] = a
		}
		if out == nil {
			out = map[string]wire.Allowance{}
		}
		out[id] = a
	}
	return out, nil
}

// price is a model's price, warning once per model (up to maxUnpriced of them) when the
// table lacks it and the default is used.
func (s *Service) price(provider, model string) wire.Price {
	p, ok := s.cfg.Prices.Lookup(provider, model)
	if ok {
		return p
	}
	key := provider + "/" + model
	s.mu.Lock()
	warn := !s.unpriced[key] && len(s.unpriced) < maxUnpriced
	if warn {
		s.unpriced[key] = true
	}
	s.mu.Unlock()
	if warn {
		s.log.Warn("no price for model: its calls are charged at the default price; add it to the price table",
			"provider", provider, "model", model)
	}
	return p
}

// Allowance is what a customer's bots on credits may still spend: the customer's credits now,
// and the message a refused call gives them, which names the day their included credits
// come back (their current grant's end, else their subscription period's).
func (s *Service) Allowance(ctx context.Context, userID string) (wire.Allowance, error) {
	now := s.now()
	es, err := s.cfg.Store.ListCredits(ctx, userID)
	if err != nil {
		return wire.Allowance{}, fmt.Errorf("allowance of user %s: %w", userID, err)
	}
	bal, _ := credits.Replay(es, now)
	var until *time.Time
	for _, e := range es { // the newest grant still running
		if e.Kind == store.CreditGrant && e.ExpiresAt != nil && e.ExpiresAt.After(now) {
			until = e.ExpiresAt
		}
	}
	if until == nil {
		subs, err := s.cfg.Store.ListSubscriptions(ctx, userID)
		if err != nil {
			return wire.Allowance{}, fmt.Errorf("allowance of user %s: %w", userID, err)
		}
		for _, x := range subs { // newest first
			if x.EndedAt == nil && x.PeriodEnd != nil && x.PeriodEnd.After(now) {
				until = x.PeriodEnd
				break
			}
		}
	}
	return wire.Allowance{Remaining: int64(bal), AsOf: now, Message: SpentMessage(until)}, nil
}

// SpentMessage is what a call refused for credits tells the customer; until, if known, is
// when their included credits come back.
func SpentMessage(until *time.Time) string {
	const msg = "Your included credits for this month are used up — add your own key"
	if until == nil {
		return msg
	}
	return msg + " or wait until " + until.UTC().Format("2 January")
}
