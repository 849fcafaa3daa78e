package wire

import "time"

// The model gateway: every model call of a bot goes through its host's agent, which swaps
// the bot's model token for the real provider key, forwards the call, and meters the
// provider's own usage. These are the types that cross the tunnel for it, and the admin
// API's views of usage.

// Providers the model endpoint speaks to.
const (
	ProviderAnthropic = "anthropic" // the Messages API
	ProviderOpenAI    = "openai"    // Chat Completions and Responses
)

// ModelProviders are the providers the model endpoint forwards to, in a fixed order.
func ModelProviders() []string { return []string{ProviderAnthropic, ProviderOpenAI} }

// EnvModelToken is the variable holding a bot's model token in its container: the gateway
// sends it as its provider API key (the config says "${PM_MODEL_TOKEN}").
const EnvModelToken = "PM_MODEL_TOKEN"

// ModelAccess is how one bot reaches its models through its host's model endpoint. It holds
// provider keys: it crosses only the tunnel, lives in the agent's memory only, and is never
// logged.
type ModelAccess struct {
	// Token is the bot's model token; the agent knows the bot by it.
	Token string `json:"token"`
	// Providers are what the bot may call, by provider (ProviderAnthropic, ProviderOpenAI).
	Providers map[string]ProviderAccess `json:"providers"`
	// Credits is true when the bot's calls are paid from its customer's included credits (the
	// platform's key): only then does Allowance refuse calls. BYOK and operators' bots are
	// metered and never refused for credits.
	Credits   bool      `json:"credits"`
	Allowance Allowance `json:"allowance"`
	// Limits bound the bot's calls per minute and per day; 0 is no limit.
	Limits CallLimits `json:"limits"`
	// Prices are the price table (by "provider/model") and the price of a model it lacks,
	// for the agent's estimate of what it has spent since pmd last counted.
	Prices       map[string]Price `json:"prices,omitempty"`
	DefaultPrice Price            `json:"default_price"`
}

// ProviderAccess is one provider as a bot may call it.
type ProviderAccess struct {
	// BaseURL is the provider's API root: "https://api.anthropic.com" (the path /v1/messages
	// follows) or "https://api.openai.com/v1" (/chat/completions, /responses follow).
	BaseURL string `json:"base_url"`
	// Key is the API key sent upstream: the platform's, or the customer's own.
	Key string `json:"key"`
	// BYOK is true when Key is the bot owner's own.
	BYOK bool `json:"byok,omitempty"`
}

// Allowance is what a bot on credits may still spend, as pmd counted at AsOf. The agent
// subtracts what it metered since and refuses calls once nothing is left.
type Allowance struct {
	// Remaining is in millionths of a credit; 0 or less refuses every call.
	Remaining int64     `json:"remaining"`
	AsOf      time.Time `json:"as_of"`
	// Message is what a refused call tells the customer, e.g. "Your included credits for this
	// month are used up — add your own key or wait until 1 March".
	Message string `json:"message,omitempty"`
}

// CallLimits are a bot's model calls allowed per minute and per day; 0 is no limit.
type CallLimits struct {
	PerMinute int `json:"per_minute,omitempty"`
	PerDay    int `json:"per_day,omitempty"`
}

// Price is a model's price in millionths of a credit per million tokens.
type Price struct {
	Input      int64 `json:"input"`
	Output     int64 `json:"output"`
	CacheRead  int64 `json:"cache_read"`
	CacheWrite int64 `json:"cache_write"`
}

// Tokens are what one model call used, as its provider reported.
type Tokens struct {
	Input      int64 `json:"input" yaml:"input"`
	Output     int64 `json:"output" yaml:"output"`
	CacheRead  int64 `json:"cache_read" yaml:"cache_read"`
	CacheWrite int64 `json:"cache_write" yaml:"cache_write"`
}

// Usage record outcomes.
const (
	OutcomeOK    = "ok"    // the provider answered 2xx and the whole answer reached the bot
	OutcomeError = "error" // the provider answered an error status; passed through as it was
	OutcomeCut   = "cut"   // the answer broke off (upstream or the bot went away); metered for what it carried
)

// Refusal reasons (the agent answered the bot itself, in the provider's error shape).
const (
	RefusedCredits  = "credits"  // the allowance is spent
	RefusedRate     = "rate"     // calls per minute or per day
	RefusedProvider = "provider" // a provider the bot may not call
	RefusedToken    = "token"    // no token, or not this bot's
	RefusedUpstream = "upstream" // the provider could not be reached
)

// MaxUsageBatch bounds the records in one POST /v1/usage.
const MaxUsageBatch = 1000

// UsageRecord is one model call as the agent metered it. ID is made on the host and is
// unique: pmd commits each record once, however often it is sent.
type UsageRecord struct {
	ID       string `json:"id"`
	BotID    string `json:"bot_id"`
	Provider string `json:"provider"`
	// Model is the provider's model id as the call named it ("claude-sonnet-4-6").
	Model string `json:"model"`
	// API is "messages", "chat" or "responses".
	API    string `json:"api"`
	Stream bool   `json:"stream,omitempty"`
	// Status is the HTTP status the bot got.
	Status  int    `json:"status"`
	Outcome string `json:"outcome"`
	Tokens  Tokens `json:"tokens"`
	// Estimated is true when the provider reported no usage and Tokens are the agent's
	// estimate from the bytes that passed.
	Estimated bool      `json:"estimated,omitempty"`
	BYOK      bool      `json:"byok,omitempty"`
	Time      time.Time `json:"time"`
	// Millis is how long the call took, from the bot's request to the answer's end.
	Millis int64 `json:"ms,omitempty"`
}

// UsageRefusal counts calls the agent refused itself; refusals are not spooled.
type UsageRefusal struct {
	BotID    string `json:"bot_id"`
	Provider string `json:"provider"`
	Reason   string `json:"reason"`
	Count    int64  `json:"count"`
}

// UsageBatch is the body of POST /v1/usage (agent → pmd).
type UsageBatch struct {
	Records  []UsageRecord  `json:"records"`
	Refusals []UsageRefusal `json:"refusals,omitempty"`
}

// UsageReply is pmd's answer once a batch is committed: the new allowances of the bots on
// credits that the batch touched.
type UsageReply struct {
	Committed  int                  `json:"committed"`
	Allowances map[string]Allowance `json:"allowances,omitempty"`
}

// UsageRow is one line of a usage report: calls, tokens and cost of one owner's bot and one
// model over the report's period (or one day of it).
type UsageRow struct {
	Day      string `json:"day,omitempty" yaml:"day,omitempty"` // YYYY-MM-DD, in per-day reports
	Owner    string `json:"owner" yaml:"owner"`                 // customer:<id> or operator:<name>
	Email    string `json:"email,omitempty" yaml:"email,omitempty"`
	BotID    string `json:"bot_id" yaml:"bot_id"`
	BotName  string `json:"bot" yaml:"bot"`
	Provider string `json:"provider" yaml:"provider"`
	Model    string `json:"model" yaml:"model"`
	Calls    int64  `json:"calls" yaml:"calls"`
	Errors   int64  `json:"errors" yaml:"errors"`
	Tokens   Tokens `json:"tokens" yaml:"tokens"`
	// Estimated counts the calls whose tokens were estimated.
	Estimated int64 `json:"estimated,omitempty" yaml:"estimated,omitempty"`
	// Cost is in credits, as a decimal string ("0.4210").
	Cost string `json:"cost" yaml:"cost"`
	// Debited is what of Cost was taken from the customer's credits (BYOK and operators'
	// bots are metered, never debited).
	Debited string `json:"debited" yaml:"debited"`
}

// UsageReport is GET /v1/usage/top and GET /v1/usage/bots/{ref}.
type UsageReport struct {
	Since time.Time  `json:"since" yaml:"since"`
	Until time.Time  `json:"until" yaml:"until"`
	Rows  []UsageRow `json:"rows" yaml:"rows"`
}
