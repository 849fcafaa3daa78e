package credits

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/store"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// Ledger keeps the credit ledger in the store. It is safe for concurrent use.
type Ledger struct {
	Store *store.Store
	Now   func() time.Time
}

func (l *Ledger) now() time.Time {
	if l.Now != nil {
		return l.Now().UTC()
	}
	return time.Now().UTC()
}

// MaxAdjust bounds one operator adjustment, either way: a typo should not mint a fortune.
const MaxAdjust = 10_000 * Micro

// GrantPeriod grants a paid period's included credits, on tx (the caller's transaction, so
// the grant commits with what paid for it). They lapse at end. A period is granted once: a
// second call for the same subscription and period start adds nothing and returns false.
func (l *Ledger) GrantPeriod(ctx context.Context, tx *store.Store, userID, subID string, amount Amount, start, end time.Time) (bool, error) {
	if amount <= 0 {
		return false, nil
	}
	exp := end.UTC()
	ok, err := tx.AppendCredit(ctx, store.CreditEntry{
		UserID: userID, Kind: store.CreditGrant, Amount: int64(amount), Actor: "billing",
		Reason:         fmt.Sprintf("included credits for %s – %s", start.UTC().Format("2006-01-02"), exp.Format("2006-01-02")),
		IdempotencyKey: fmt.Sprintf("grant:%s:%d", subID, start.UTC().Unix()), ExpiresAt: &exp, CreatedAt: l.now(),
	})
	if err != nil {
		return false, fmt.Errorf("grant credits: %w", err)
	}
	return ok, nil
}

// Adjust adds amount (either sign) to a customer's credits with a reason, in the audit log
// under actor.
func (l *Ledger) Adjust(ctx context.Context, actor, userID string, amount Amount, reason string) error {
	reason = strings.TrimSpace(reason)
	switch {
	case amount == 0:
		return wire.Errorf(wire.CodeInvalidArgument, "amount is zero: give a positive amount to add or a negative one to take away")
	case amount > MaxAdjust || amount < -MaxAdjust:
		return wire.Errorf(wire.CodeInvalidArgument, "amount %s: adjust by at most %s at a time", amount, MaxAdjust)
	case reason == "":
		return wire.Errorf(wire.CodeInvalidArgument, "a reason is required: say why the credits change")
	case len(reason) > 500:
		return wire.Errorf(wire.CodeInvalidArgument, "reason: use at most 500 bytes")
	}
	now := l.now()
	err := l.Store.InTx(ctx, func(tx *store.Store) error {
		if _, err := tx.AppendCredit(ctx, store.CreditEntry{UserID: userID, Kind: store.CreditAdjust, Amount: int64(amount),
			Reason: reason, Actor: actor, CreatedAt: now}); err != nil {
			return err
		}
		_, err := tx.AppendAudit(ctx, store.AuditEntry{Time: now, Actor: actor, Action: "credits.adjust", Target: userID,
			Detail: fmt.Sprintf("%s: %s", amount, reason)})
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return wire.Errorf(wire.CodeNotFound, "no user %s", userID)
	}
	if err != nil {
		return fmt.Errorf("adjust credits: %w", err)
	}
	return nil
}

// Debit takes metered usage (amount > 0) from a customer's credits, once per key (a usage
// record's id): a second call with the same key takes nothing and returns false.
func (l *Ledger) Debit(ctx context.Context, userID string, amount Amount, key, reason string) (bool, error) {
	return l.DebitTx(ctx, l.Store, userID, amount, key, reason)
}

// DebitTx is Debit on tx, the caller's transaction, so the debit commits with the usage it
// pays for. ErrNotFound (wrapped) if the user is gone; on PostgreSQL that error also aborts
// tx, so callers check the user first.
func (l *Ledger) DebitTx(ctx context.Context, tx *store.Store, userID string, amount Amount, key, reason string) (bool, error) {
	if amount <= 0 || key == "" {
		return false, fmt.Errorf("debit credits: want a positive amount and a key, got %s and %q", amount, key)
	}
	ok, err := tx.AppendCredit(ctx, store.CreditEntry{UserID: userID, Kind: store.CreditDebit, Amount: -int64(amount),
		Reason: reason, Actor: "usage", IdempotencyKey: "debit:" + key, CreatedAt: l.now()})
	if err != nil {
		return false, fmt.Errorf("debit credits: %w", err)
	}
	return ok, nil
}

// Statement is a customer's ledger and what it leaves them at a moment.
type Statement struct {
	Balance Amount
	// Included is what is left of the current period's grants; the rest of Balance is
	// adjustments, which do not lapse.
	Included Amount
	Entries  []store.CreditEntry
}

// Statement reads a customer's ledger and works out their balance now.
func (l *Ledger) Statement(ctx context.Context, userID string) (Statement, error) {
	es, err := l.Store.ListCredits(ctx, userID)
	if err != nil {
		return Statement{}, err
	}
	bal, incl := Replay(es, l.now())
	return Statement{Balance: bal, Included: incl, Entries: es}, nil
}

// Balance is a customer's credits now.
func (l *Ledger) Balance(ctx context.Context, userID string) (Amount, error) {
	st, err := l.Statement(ctx, userID)
	return st.Balance, err
}

// Replay works out the balance of a ledger at now, and the part of it that is included
// credits. A grant lapses at its expiry with whatever is left of it; usage is taken from the
// grant that lapses first, then from adjustments, and past both it runs the balance negative.
func Replay(es []store.CreditEntry, now time.Time) (balance, included Amount) {
	type grant struct {
		left    Amount
		expires time.Time
	}
	var grants []grant
	var free Amount
	lapse := func(at time.Time) {
		grants = slices.DeleteFunc(grants, func(g grant) bool { return !at.Before(g.expires) })
	}
	for _, e := range es {
		lapse(e.CreatedAt)
		a := Amount(e.Amount)
		switch {
		case e.Kind == store.CreditGrant && e.ExpiresAt != nil:
			grants = append(grants, grant{a, *e.ExpiresAt})
			slices.SortStableFunc(grants, func(x, y grant) int { return x.expires.Compare(y.expires) })
		case a >= 0:
			free += a
		default:
			need := -a
			for i := range grants {
				take := min(need, grants[i].left)
				grants[i].left -= take
				need -= take
			}
			free -= need
		}
	}
	lapse(now)
	for _, g := range grants {
		included += g.left
	}
	return included + free, included
}
