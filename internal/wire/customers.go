package wire

import "time"

// User is a customer's account as the admin API shows it.
type User struct {
	ID               string    `json:"id" yaml:"id"`
	Email            string    `json:"email" yaml:"email"`
	Disabled         bool      `json:"disabled" yaml:"disabled"`
	StripeCustomerID string    `json:"stripe_customer_id,omitempty" yaml:"stripe_customer_id,omitempty"`
	CreatedAt        time.Time `json:"created_at" yaml:"created_at"`
	// Plan, Status and BotID are of the customer's current subscription ("" without one).
	Plan   string `json:"plan,omitempty" yaml:"plan,omitempty"`
	Status string `json:"subscription_status,omitempty" yaml:"subscription_status,omitempty"`
	BotID  string `json:"bot_id,omitempty" yaml:"bot_id,omitempty"`
	// Assistant is the name the customer gave their assistant ("" before onboarding).
	Assistant string `json:"assistant,omitempty" yaml:"assistant,omitempty"`
}

// Subscription is a customer's subscription as the admin API shows it.
type Subscription struct {
	ID                   string     `json:"id" yaml:"id"`
	UserID               string     `json:"user_id" yaml:"user_id"`
	Email                string     `json:"email" yaml:"email"`
	Plan                 string     `json:"plan" yaml:"plan"`
	Source               string     `json:"source" yaml:"source"` // stripe, grant or test
	Status               string     `json:"status" yaml:"status"`
	StripeSubscriptionID string     `json:"stripe_subscription_id,omitempty" yaml:"stripe_subscription_id,omitempty"`
	PeriodStart          *time.Time `json:"period_start,omitempty" yaml:"period_start,omitempty"`
	PeriodEnd            *time.Time `json:"period_end,omitempty" yaml:"period_end,omitempty"`
	CancelAtPeriodEnd    bool       `json:"cancel_at_period_end" yaml:"cancel_at_period_end"`
	PastDueSince         *time.Time `json:"past_due_since,omitempty" yaml:"past_due_since,omitempty"`
	EndedAt              *time.Time `json:"ended_at,omitempty" yaml:"ended_at,omitempty"`
	BotID                string     `json:"bot_id,omitempty" yaml:"bot_id,omitempty"`
	CreatedAt            time.Time  `json:"created_at" yaml:"created_at"`
	UpdatedAt            time.Time  `json:"updated_at" yaml:"updated_at"`
}

// GrantRequest is the body of POST /v1/users/{ref}/grant: a subscription without Stripe.
type GrantRequest struct {
	Plan string `json:"plan"`
	Days int    `json:"days"`
}

// ResetLink is a one-time password reset link (POST /v1/users/{ref}/reset-link).
type ResetLink struct {
	URL       string    `json:"url" yaml:"url"`
	ExpiresAt time.Time `json:"expires_at" yaml:"expires_at"`
}

// Credits is a customer's credit ledger and balance (GET /v1/users/{ref}/credits). Amounts
// are decimal strings of credits ("9.42"; a credit is one US dollar of model usage).
type Credits struct {
	UserID  string `json:"user_id" yaml:"user_id"`
	Email   string `json:"email" yaml:"email"`
	Balance string `json:"balance" yaml:"balance"`
	// Included is what is left of the current period's included credits; the rest of the
	// balance is adjustments, which do not lapse.
	Included string        `json:"included" yaml:"included"`
	Entries  []CreditEntry `json:"entries" yaml:"entries"`
}

// CreditEntry is one line of a credit ledger.
type CreditEntry struct {
	ID        int64      `json:"id" yaml:"id"`
	Kind      string     `json:"kind" yaml:"kind"` // grant, adjust or debit
	Amount    string     `json:"amount" yaml:"amount"`
	Reason    string     `json:"reason" yaml:"reason"`
	Actor     string     `json:"actor" yaml:"actor"`
	ExpiresAt *time.Time `json:"expires_at,omitempty" yaml:"expires_at,omitempty"`
	CreatedAt time.Time  `json:"created_at" yaml:"created_at"`
}

// AdjustCreditsRequest is the body of POST /v1/users/{ref}/credits: Amount is a decimal
// number of credits, negative to take away ("5", "-2.50"); Reason is required.
type AdjustCreditsRequest struct {
	Amount string `json:"amount"`
	Reason string `json:"reason"`
}
