package wire

import (
	"encoding/json"
	"time"
)

// Bot statuses, as the admin API reports them.
const (
	BotPending  = "pending"  // recorded, not yet on its host
	BotPulling  = "pulling"  // the host is pulling the image
	BotStarting = "starting" // container running, the gateway's /startupz not yet passing
	BotRunning  = "running"
	BotStopped  = "stopped"
	BotFailed   = "failed"   // did not start, or cannot run (see last_error)
	BotUnknown  = "unknown"  // its host is offline or its container engine is down
	BotDeleting = "deleting" // delete recorded; done when the host confirms
	// BotWaiting is a bot with no host yet: none has room for it, or it waits for its
	// dedicated host. Bot.Waiting says why.
	BotWaiting = "waiting"
)

// Placements of a bot.
const (
	PlacementShared    = "shared"    // on any shared host with room
	PlacementDedicated = "dedicated" // alone, on a host enrolled for it (pmctl hosts token create --for-bot)
)

// Health values of a running bot, from the gateway's probes.
const (
	HealthHealthy   = "healthy"   // /healthz and /readyz pass
	HealthDegraded  = "degraded"  // live, but /readyz fails (e.g. a broken channel)
	HealthUnhealthy = "unhealthy" // /healthz fails
)

// KnownBotStatus reports whether status is one a host may report for a bot: every status
// above but deleting and waiting, which only pmd derives. A status added above must be added here too, or
// pmd refuses the heartbeats that carry it.
func KnownBotStatus(status string) bool {
	switch status {
	case BotPending, BotPulling, BotStarting, BotRunning, BotStopped, BotFailed, BotUnknown:
		return true
	}
	return false
}

// KnownHealth reports whether health is one of the values above, or empty (no verdict).
func KnownHealth(health string) bool {
	switch health {
	case "", HealthHealthy, HealthDegraded, HealthUnhealthy:
		return true
	}
	return false
}

// Desired states.
const (
	DesiredRunning = "running"
	DesiredStopped = "stopped"
)

// Resources are a bot's limits.
type Resources struct {
	MemoryBytes int64   `json:"memory_bytes" yaml:"memory_bytes"`
	CPUs        float64 `json:"cpus" yaml:"cpus"`
	PIDs        int64   `json:"pids" yaml:"pids"`
	// DiskBytes bounds what the bot's state and workspace take on its host, as its agent
	// measures them; 0 in a request means pmd's default (bot-disk-limit).
	DiskBytes int64 `json:"disk_bytes,omitempty" yaml:"disk_bytes,omitempty"`
}

// Capacity is how much a host offers to bots.
type Capacity struct {
	Bots        int   `json:"bots" yaml:"bots"`
	MemoryBytes int64 `json:"memory_bytes" yaml:"memory_bytes"`
}

// CreateBotRequest is the body of POST /v1/bots. Secrets travel only in this request and
// are sealed at once; no response ever carries them.
type CreateBotRequest struct {
	Name string `json:"name"`
	// Host is a host name or id; empty lets pmd place the bot.
	Host          string    `json:"host,omitempty"`
	Model         string    `json:"model"`
	Image         string    `json:"image,omitempty"`
	ToolsProfile  string    `json:"tools_profile,omitempty"`
	TelegramToken string    `json:"telegram_token,omitempty"`
	APIKey        string    `json:"api_key"`
	Resources     Resources `json:"resources"`
	// Force allows memory below the gateway's minimum.
	Force bool `json:"force,omitempty"`
	// Placement is PlacementShared (the default) or PlacementDedicated; a dedicated bot waits
	// for a host enrolled for it and cannot name a host.
	Placement string `json:"placement,omitempty"`
}

// EditBotRequest is the body of PATCH /v1/bots/{ref}: what to change in a bot. Fields left
// out stay as they are. A new disk limit is applied without recreating the container; a new
// model, API key or Telegram token bumps the spec version, and the host re-creates the
// container with them (the workspace stays). Secrets travel only in this request.
type EditBotRequest struct {
	// DiskBytes is the new disk limit of the bot's state and workspace; 0 leaves it.
	DiskBytes int64 `json:"disk_bytes,omitempty"`
	// Model is the new model, as provider/model. A model of another provider needs its
	// APIKey too.
	Model *string `json:"model,omitempty"`
	// APIKey replaces the bot owner's own key for the model's provider; "" drops it for the
	// platform's key.
	APIKey *string `json:"api_key,omitempty"`
	// TelegramToken replaces the Telegram bot token; "" removes Telegram.
	TelegramToken *string `json:"telegram_token,omitempty"`
}

// Bot is a bot as the admin API shows it.
type Bot struct {
	ID   string `json:"id" yaml:"id"`
	Name string `json:"name" yaml:"name"`
	// Owner is who the bot belongs to: "customer:<user id>" or "operator:<admin name>"
	// ("operator" alone for a bot made before owners were recorded).
	Owner string `json:"owner" yaml:"owner"`
	// Placement is PlacementShared or PlacementDedicated.
	Placement string `json:"placement" yaml:"placement"`
	// HostID and HostName are "" while the bot waits for a host (Status BotWaiting).
	HostID   string `json:"host_id" yaml:"host_id"`
	HostName string `json:"host" yaml:"host"`
	// Waiting says why the bot has no host yet, "" once it has one.
	Waiting      string    `json:"waiting,omitempty" yaml:"waiting,omitempty"`
	Image        string    `json:"image" yaml:"image"`
	Model        string    `json:"model" yaml:"model"`
	ToolsProfile string    `json:"tools_profile" yaml:"tools_profile"`
	Telegram     bool      `json:"telegram" yaml:"telegram"`
	Resources    Resources `json:"resources" yaml:"resources"`
	Desired      string    `json:"desired" yaml:"desired"`
	SpecVersion  int64     `json:"spec_version" yaml:"spec_version"`
	Status       string    `json:"status" yaml:"status"`
	Health       string    `json:"health,omitempty" yaml:"health,omitempty"`
	// Observed state, as the host last reported it.
	ContainerID     string     `json:"container_id,omitempty" yaml:"container_id,omitempty"`
	ObservedVersion int64      `json:"observed_version,omitempty" yaml:"observed_version,omitempty"`
	Restarts        int        `json:"restarts" yaml:"restarts"`
	StartedAt       *time.Time `json:"started_at,omitempty" yaml:"started_at,omitempty"`
	MemoryUsage     int64      `json:"memory_usage,omitempty" yaml:"memory_usage,omitempty"`
	// DiskUsage is what the bot's state and workspace take on its host, as last measured.
	DiskUsage int64     `json:"disk_usage,omitempty" yaml:"disk_usage,omitempty"`
	Progress  string    `json:"progress,omitempty" yaml:"progress,omitempty"`
	LastError string    `json:"last_error,omitempty" yaml:"last_error,omitempty"`
	Purge     bool      `json:"purge,omitempty" yaml:"purge,omitempty"`
	CreatedAt time.Time `json:"created_at" yaml:"created_at"`
	UpdatedAt time.Time `json:"updated_at" yaml:"updated_at"`
}

// Probe is one gateway probe's last answer.
type Probe struct {
	// Status is the HTTP status, 0 when the probe could not be made.
	Status int    `json:"status" yaml:"status"`
	Body   string `json:"body,omitempty" yaml:"body,omitempty"`
	Error  string `json:"error,omitempty" yaml:"error,omitempty"`
}

// Probes are a bot's /startupz, /healthz and /readyz as the gateway reports them.
type Probes struct {
	Startupz Probe     `json:"startupz" yaml:"startupz"`
	Healthz  Probe     `json:"healthz" yaml:"healthz"`
	Readyz   Probe     `json:"readyz" yaml:"readyz"`
	Checked  time.Time `json:"checked" yaml:"checked"`
}

// ChatRequest is the body of POST /v1/bots/{ref}/chat: one chat-completions round trip.
type ChatRequest struct {
	Message string `json:"message"`
	// Session keeps a conversation; empty means pmctl's own session key.
	Session string `json:"session,omitempty"`
}

// Usage is token usage as the gateway reports it.
type Usage struct {
	PromptTokens     int `json:"prompt_tokens" yaml:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens" yaml:"completion_tokens"`
	TotalTokens      int `json:"total_tokens" yaml:"total_tokens"`
}

// ChatResponse is the gateway's reply.
type ChatResponse struct {
	Reply string `json:"reply" yaml:"reply"`
	Model string `json:"model" yaml:"model"`
	Usage Usage  `json:"usage" yaml:"usage"`
}

// --- pmd ↔ agent ---

// BotSpec is one bot as pmd wants it on its host. It carries the bot's secrets in Env, so
// it crosses only the tunnel and is never logged.
type BotSpec struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Version int64  `json:"version"`
	Image   string `json:"image"`
	Running bool   `json:"running"`
	// Config is the gateway's openclaw.json.
	Config       json.RawMessage   `json:"config"`
	Env          map[string]string `json:"env"`
	Resources    Resources         `json:"resources"`
	StartTimeout Duration          `json:"start_timeout,omitempty"`
	StopTimeout  Duration          `json:"stop_timeout,omitempty"`
	// Model is how the bot reaches its models through the host's model endpoint (provider
	// keys included); nil for a bot that calls none.
	Model *ModelAccess `json:"model,omitempty"`
}

// DesiredBots is the complete set of bots pmd wants on a host (PUT /v1/bots on the agent).
// A bot the host runs that is not in Bots is removed; its workspace too if its id is in Purge.
type DesiredBots struct {
	Bots  []BotSpec `json:"bots"`
	Purge []string  `json:"purge,omitempty"`
}

// BotState is one bot as its host observes it.
type BotState struct {
	ID          string     `json:"id"`
	ContainerID string     `json:"container_id,omitempty"`
	Version     int64      `json:"version"`
	Status      string     `json:"status"`
	Health      string     `json:"health,omitempty"`
	Probes      *Probes    `json:"probes,omitempty"`
	Restarts    int        `json:"restarts"`
	HostPort    int        `json:"host_port,omitempty"`
	StartedAt   *time.Time `json:"started_at,omitempty"`
	MemoryUsage int64      `json:"memory_usage,omitempty"`
	// DiskUsage is what the bot's state and workspace take, in bytes, as last measured.
	DiskUsage int64  `json:"disk_usage,omitempty"`
	Progress  string `json:"progress,omitempty"`
	LastError string `json:"last_error,omitempty"`
}

// BotEvent is something that happened to a bot's container (died, OOM-killed, health
// changed), sent by the agent as it happens (POST /v1/events on pmd).
type BotEvent struct {
	BotID  string    `json:"bot_id"`
	Action string    `json:"action"`
	Detail string    `json:"detail,omitempty"`
	Time   time.Time `json:"time"`
}

// BotEvent actions.
const (
	EventDied      = "died"
	EventOOMKilled = "oom-killed"
	EventRemoved   = "removed"
	// EventStatus is a change of status or health; Detail says from what to what.
	EventStatus = "status"
	// EventDiskLimit is a bot going over its disk limit (or its disk use becoming
	// unmeasurable): its agent stops it. Detail says how much it takes.
	EventDiskLimit = "disk-limit"
)

// KnownEvent reports whether action is one of the BotEvent actions above.
func KnownEvent(action string) bool {
	switch action {
	case EventDied, EventOOMKilled, EventRemoved, EventStatus, EventDiskLimit:
		return true
	}
	return false
}

// Events is the body of POST /v1/events: events plus the states they changed.
type Events struct {
	Events []BotEvent `json:"events"`
	Bots   []BotState `json:"bots"`
}
