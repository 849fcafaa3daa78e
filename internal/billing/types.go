package billing

import (
	"sort"
	"strings"
	"time"
)

// Key modes: who pays for the assistant's model calls.
const (
	KeyCredits = "credits" // the plan's included credits, on the platform's key
	KeyBYOK    = "byok"    // the customer's own Anthropic or OpenAI key
)

// AssistantInput is what a customer fills in at onboarding, or changes later on the
// dashboard.
type AssistantInput struct {
	Name   string
	PlanID string
	Model  string
	// Telegram turns the Telegram channel on; TelegramToken "" keeps the token already stored.
	Telegram      bool
	TelegramToken string
	// WhatsApp is the customer's own number in E.164 form ("+4915112345678"), "" for none.
	WhatsApp string
	WebChat  bool
	KeyMode  string
	// APIKey is the customer's own key (KeyBYOK); "" keeps the key already stored.
	APIKey string
}

// FieldErrors says, per form field, what to fix. Fields: name, plan, model, telegram_token,
// whatsapp, channels, key_mode, api_key.
type FieldErrors map[string]string

func (e FieldErrors) Error() string {
	fields := make([]string, 0, len(e))
	for f := range e {
		fields = append(fields, f)
	}
	sort.Strings(fields)
	parts := make([]string, 0, len(fields))
	for _, f := range fields {
		parts = append(parts, f+": "+e[f])
	}
	return strings.Join(parts, "; ")
}

// Stages of a customer's assistant, as the page shows it.
const (
	StageOnboarding     = "onboarding"      // nothing chosen yet
	StageWaitingPayment = "waiting_payment" // chosen, not paid
	StagePreparing      = "preparing"       // paid; waiting for a host with room (or a dedicated one)
	StagePending        = "pending"         // placed, not yet on its host
	StagePulling        = "pulling"
	StageStarting       = "starting"
	StageRunning        = "running"
	StageStopped        = "stopped" // subscription ended, unpaid or past its grace
	StageFailed         = "failed"
	StageUnknown        = "unknown" // its host is out of touch
)

// Overview is everything the customer's dashboard shows.
type Overview struct {
	UserID   string
	Email    string
	TestMode bool
	// Assistant is nil before onboarding; Subscription before paying; Bot before it is made.
	Assistant    *AssistantView
	Subscription *SubscriptionView
	Bot          *BotView
	// Stage and StageText say where the assistant is, in the customer's words.
	Stage     string
	StageText string
	// CreditsLeft is the balance ("$9.42"); "" for a customer on their own key.
	CreditsLeft string
}

// AssistantView is an assistant's settings without its secrets: only the last 4 characters
// of the customer's own key.
type AssistantView struct {
	Name, PlanID, PlanName, Model string
	Telegram                      bool
	WhatsApp                      string
	WebChat                       bool
	KeyMode, KeyLast4             string
}

// SubscriptionView is a subscription as its customer sees it.
type SubscriptionView struct {
	ID, PlanID, Status, Source string
	PeriodEnd                  *time.Time
	CancelAtPeriodEnd          bool
	// PastDue is true while a payment failed and the grace period runs.
	PastDue bool
}

// BotView is the assistant's bot as its customer sees it.
type BotView struct {
	ID, Name, Status, Health, Reason string
	StartedAt                        *time.Time
}

// AssistantSecretsAD is the associated data that binds an assistant's sealed secrets to its
// customer's row.
func AssistantSecretsAD(userID string) string { return "assistants/" + userID + "/secrets" }
