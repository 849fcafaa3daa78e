package store

import (
	"context"
	"fmt"
	"time"
)

// Assistant is what a customer chose for their assistant at onboarding. Secrets (their own
// model key, a Telegram token) are sealed by the caller.
type Assistant struct {
	UserID   string
	Name     string
	PlanID   string
	Model    string
	Telegram bool
	WhatsApp string // E.164, "" for none; unique among customers
	WebChat  bool
	KeyMode  string // "credits" or "byok"
	KeyLast4 string // of the customer's own key; "" on credits
	Secrets  string
	Updated  time.Time
}

const assistantCols = `user_id, name, plan_id, model, telegram, whatsapp, web_chat, key_mode, key_last4, secrets, updated_at`

func scanAssistant(r rowScanner) (Assistant, error) {
	var a Assistant
	var wa *string
	err := r.Scan(&a.UserID, &a.Name, &a.PlanID, &a.Model, &a.Telegram, &wa, &a.WebChat, &a.KeyMode, &a.KeyLast4, &a.Secrets, timeCol{&a.Updated})
	if wa != nil {
		a.WhatsApp = *wa
	}
	return a, err
}

// PutAssistant inserts or replaces a customer's assistant choices. ErrConflict if another
// customer has the WhatsApp number; ErrNotFound if the user is gone.
func (s *Store) PutAssistant(ctx context.Context, a Assistant) error {
	_, err := s.exec(ctx, `INSERT INTO assistants (`+assistantCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (user_id) DO UPDATE SET name = excluded.name, plan_id = excluded.plan_id, model = excluded.model,
		telegram = excluded.telegram, whatsapp = excluded.whatsapp, web_chat = excluded.web_chat,
		key_mode = excluded.key_mode, key_last4 = excluded.key_last4, secrets = excluded.secrets, updated_at = excluded.updated_at`,
		a.UserID, a.Name, a.PlanID, a.Model, a.Telegram, nullString(a.WhatsApp), a.WebChat, a.KeyMode, a.KeyLast4, a.Secrets, a.Updated)
	if isForeignKey(err) {
		return fmt.Errorf("put assistant: user %s: %w", a.UserID, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("put assistant: %w", dbErr(err))
	}
	return nil
}

// GetAssistant returns a customer's assistant choices, or ErrNotFound before onboarding.
func (s *Store) GetAssistant(ctx context.Context, userID string) (Assistant, error) {
	a, err := scanAssistant(s.queryRow(ctx, `SELECT `+assistantCols+` FROM assistants WHERE user_id = ?`, userID))
	if err != nil {
		return Assistant{}, fmt.Errorf("get assistant of user %s: %w", userID, dbErr(err))
	}
	return a, nil
}

// GetAssistantByWhatsApp returns the assistant of the customer with that number, or ErrNotFound.
func (s *Store) GetAssistantByWhatsApp(ctx context.Context, number string) (Assistant, error) {
	a, err := scanAssistant(s.queryRow(ctx, `SELECT `+assistantCols+` FROM assistants WHERE whatsapp = ?`, number))
	if err != nil {
		return Assistant{}, fmt.Errorf("get assistant by whatsapp number: %w", dbErr(err))
	}
	return a, nil
}

// Subscription sources.
const (
	SourceStripe = "stripe" // paid through Stripe
	SourceGrant  = "grant"  // given by an operator (pmctl users grant)
	SourceTest   = "test"   // test billing mode: no Stripe keys
)

// Subscription is a customer's plan over time. Status is Stripe's vocabulary (active,
// trialing, past_due, canceled, unpaid, incomplete, incomplete_expired, paused).
type Subscription struct {
	ID                   string
	UserID               string
	PlanID               string
	Source               string
	Status               string
	StripeSubscriptionID string // "" unless Source is stripe
	PeriodStart          *time.Time
	PeriodEnd            *time.Time
	CancelAtPeriodEnd    bool
	PastDueSince         *time.Time
	EndedAt              *time.Time
	BotID                string // "" until its bot is made; kept after it ends, for a resubscription
	CreatedAt            time.Time
	UpdatedAt            time.Time
}

const subCols = `id, user_id, plan_id, source, status, stripe_subscription_id, period_start, period_end,
	cancel_at_period_end, past_due_since, ended_at, bot_id, created_at, updated_at`

func scanSub(r rowScanner) (Subscription, error) {
	var x Subscription
	var stripeID, bot *string
	err := r.Scan(&x.ID, &x.UserID, &x.PlanID, &x.Source, &x.Status, &stripeID, nullTimeCol{&x.PeriodStart}, nullTimeCol{&x.PeriodEnd},
		&x.CancelAtPeriodEnd, nullTimeCol{&x.PastDueSince}, nullTimeCol{&x.EndedAt}, &bot, timeCol{&x.CreatedAt}, timeCol{&x.UpdatedAt})
	if stripeID != nil {
		x.StripeSubscriptionID = *stripeID
	}
	if bot != nil {
		x.BotID = *bot
	}
	return x, err
}

// PutSubscription inserts x or replaces the row with its id. ErrConflict if another row has
// its Stripe subscription id; ErrNotFound if the user is gone.
func (s *Store) PutSubscription(ctx context.Context, x Subscription) error {
	_, err := s.exec(ctx, `INSERT INTO subscriptions (`+subCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET plan_id = excluded.plan_id, source = excluded.source, status = excluded.status,
		stripe_subscription_id = excluded.stripe_subscription_id, period_start = excluded.period_start,
		period_end = excluded.period_end, cancel_at_period_end = excluded.cancel_at_period_end,
		past_due_since = excluded.past_due_since, ended_at = excluded.ended_at, bot_id = excluded.bot_id,
		updated_at = excluded.updated_at`,
		x.ID, x.UserID, x.PlanID, x.Source, x.Status, nullString(x.StripeSubscriptionID), x.PeriodStart, x.PeriodEnd,
		x.CancelAtPeriodEnd, x.PastDueSince, x.EndedAt, nullString(x.BotID), x.CreatedAt, x.UpdatedAt)
	if isForeignKey(err) {
		return fmt.Errorf("put subscription %s: user %s: %w", x.ID, x.UserID, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("put subscription %s: %w", x.ID, dbErr(err))
	}
	return nil
}

// GetSubscription returns a subscription by id, or ErrNotFound.
func (s *Store) GetSubscription(ctx context.Context, id string) (Subscription, error) {
	x, err := scanSub(s.queryRow(ctx, `SELECT `+subCols+` FROM subscriptions WHERE id = ?`, id))
	if err != nil {
		return Subscription{}, fmt.Errorf("get subscription %s: %w", id, dbErr(err))
	}
	return x, nil
}

// GetSubscriptionByStripeID returns the subscription Stripe knows by id, or ErrNotFound.
func (s *Store) GetSubscriptionByStripeID(ctx context.Context, stripeID string) (Subscription, error) {
	x, err := scanSub(s.queryRow(ctx, `SELECT `+subCols+` FROM subscriptions WHERE stripe_subscription_id = ?`, stripeID))
	if err != nil {
		return Subscription{}, fmt.Errorf("get subscription by stripe id %s: %w", stripeID, dbErr(err))
	}
	return x, nil
}

// ListSubscriptions returns every subscription, or a user's when userID is not "", newest
// first.
func (s *Store) ListSubscriptions(ctx context.Context, userID string) ([]Subscription, error) {
	q, args := `SELECT `+subCols+` FROM subscriptions ORDER BY created_at DESC, id`, []any{}
	if userID != "" {
		q, args = `SELECT `+subCols+` FROM subscriptions WHERE user_id = ? ORDER BY created_at DESC, id`, []any{userID}
	}
	return s.listSubs(ctx, q, args...)
}

// ListSubscriptionsToSweep returns subscriptions whose bot may need stopping or deleting:
// those not active or trialing, plus past-due ones.
func (s *Store) ListSubscriptionsToSweep(ctx context.Context) ([]Subscription, error) {
	return s.listSubs(ctx, `SELECT `+subCols+` FROM subscriptions WHERE status NOT IN ('active', 'trialing') AND bot_id IS NOT NULL ORDER BY id`)
}

func (s *Store) listSubs(ctx context.Context, q string, args ...any) ([]Subscription, error) {
	rows, err := s.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list subscriptions: %w", dbErr(err))
	}
	defer rows.Close()
	var out []Subscription
	for rows.Next() {
		x, err := scanSub(rows)
		if err != nil {
			return nil, fmt.Errorf("list subscriptions: %w", err)
		}
		out = append(out, x)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list subscriptions: %w", dbErr(err))
	}
	return out, nil
}

// Checkout is the Stripe Checkout a customer was last sent to.
type Checkout struct {
	UserID    string
	PlanID    string
	StripeID  string
	URL       string
	ExpiresAt time.Time
}

// PutCheckout records (or replaces) a customer's pending checkout.
func (s *Store) PutCheckout(ctx context.Context, c Checkout) error {
	_, err := s.exec(ctx, `INSERT INTO checkouts (user_id, plan_id, stripe_id, url, expires_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (user_id) DO UPDATE SET plan_id = excluded.plan_id, stripe_id = excluded.stripe_id,
		url = excluded.url, expires_at = excluded.expires_at`, c.UserID, c.PlanID, c.StripeID, c.URL, c.ExpiresAt)
	if err != nil {
		return fmt.Errorf("put checkout: %w", dbErr(err))
	}
	return nil
}

// GetCheckout returns a customer's pending checkout, or ErrNotFound.
func (s *Store) GetCheckout(ctx context.Context, userID string) (Checkout, error) {
	var c Checkout
	err := s.queryRow(ctx, `SELECT user_id, plan_id, stripe_id, url, expires_at FROM checkouts WHERE user_id = ?`, userID).
		Scan(&c.UserID, &c.PlanID, &c.StripeID, &c.URL, timeCol{&c.ExpiresAt})
	if err != nil {
		return Checkout{}, fmt.Errorf("get checkout: %w", dbErr(err))
	}
	return c, nil
}

// DeleteCheckout forgets a customer's pending checkout; a missing one is not an error.
func (s *Store) DeleteCheckout(ctx context.Context, userID string) error {
	if _, err := s.exec(ctx, `DELETE FROM checkouts WHERE user_id = ?`, userID); err != nil {
		return fmt.Errorf("delete checkout: %w", dbErr(err))
	}
	return nil
}

// RecordStripeEvent records that an event is being processed. It returns false, and records
// nothing, when the event was recorded before: the caller then does nothing. Call it in the
// transaction that applies the event, so the record and the effect commit together.
func (s *Store) RecordStripeEvent(ctx context.Context, id, typ string, at time.Time) (bool, error) {
	n, err := s.execCount(ctx, `INSERT INTO stripe_events (id, type, received_at) VALUES (?, ?, ?) ON CONFLICT (id) DO NOTHING`, id, typ, at)
	if err != nil {
		return false, fmt.Errorf("record stripe event %s: %w", id, dbErr(err))
	}
	return n == 1, nil
}

// Credit ledger entry kinds.
const (
	CreditGrant  = "grant"  // a paid period's included credits; expire at ExpiresAt
	CreditAdjust = "adjust" // an operator's adjustment, either sign
	CreditDebit  = "debit"  // metered model usage (negative)
)

// CreditEntry is one line of a customer's credit ledger. Amount is in millionths of a credit.
type CreditEntry struct {
	ID             int64
	UserID         string
	Kind           string
	Amount         int64
	Reason         string
	Actor          string
	IdempotencyKey string // "" for none; a second entry with the same key is not added
	ExpiresAt      *time.Time
	CreatedAt      time.Time
}

// AppendCredit appends e to the ledger. With an IdempotencyKey already used it appends
// nothing and returns false. ErrNotFound if the user is gone.
func (s *Store) AppendCredit(ctx context.Context, e CreditEntry) (bool, error) {
	n, err := s.execCount(ctx, `INSERT INTO credit_ledger (user_id, kind, amount, reason, actor, idempotency_key, expires_at, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (idempotency_key) DO NOTHING`,
		e.UserID, e.Kind, e.Amount, e.Reason, e.Actor, nullString(e.IdempotencyKey), e.ExpiresAt, e.CreatedAt)
	if isForeignKey(err) {
		return false, fmt.Errorf("append credit: user %s: %w", e.UserID, ErrNotFound)
	}
	if err != nil {
		return false, fmt.Errorf("append credit: %w", dbErr(err))
	}
	return n == 1, nil
}

// ListCredits returns a user's ledger, oldest first.
func (s *Store) ListCredits(ctx context.Context, userID string) ([]CreditEntry, error) {
	rows, err := s.query(ctx, `SELECT id, user_id, kind, amount, reason, actor, idempotency_key, expires_at, created_at
		FROM credit_ledger WHERE user_id = ? ORDER BY id`, userID)
	if err != nil {
		return nil, fmt.Errorf("list credits: %w", dbErr(err))
	}
	defer rows.Close()
	var out []CreditEntry
	for rows.Next() {
		var e CreditEntry
		var key *string
		if err := rows.Scan(&e.ID, &e.UserID, &e.Kind, &e.Amount, &e.Reason, &e.Actor, &key, nullTimeCol{&e.ExpiresAt}, timeCol{&e.CreatedAt}); err != nil {
			return nil, fmt.Errorf("list credits: %w", err)
		}
		if key != nil {
			e.IdempotencyKey = *key
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list credits: %w", dbErr(err))
	}
	return out, nil
}
