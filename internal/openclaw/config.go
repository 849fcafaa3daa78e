// Package openclaw knows what the platform writes for an OpenClaw gateway:
// the one function that renders a bot's openclaw.json, and the checks on the
// platform's inputs that OpenClaw consumes (model, Telegram token, API key).
//
// The gateway validates its config strictly: an unknown key at the root,
// under gateway or under a channel stops it from starting. Everything here is
// therefore checked in tests against the JSON Schema that
// `openclaw config schema` prints for the pinned gateway version.
//
// Secrets never enter the config: it refers to them as "${VAR}" and the
// gateway fills them from its environment, so the file can be hashed, logged
// and stored without leaking anything.
package openclaw

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// DefaultPort is the gateway's HTTP and WebSocket port when Options.Port is 0.
const DefaultPort = 18789

// Environment variables the generated config refers to as "${NAME}".
const (
	// EnvGatewayToken holds the gateway's bearer token (gateway.auth.token).
	EnvGatewayToken = "OPENCLAW_GATEWAY_TOKEN"
	// EnvTelegramToken holds the Telegram bot token (channels.telegram.botToken).
	EnvTelegramToken = "TELEGRAM_BOT_TOKEN"
	// EnvModelToken holds the bot's model token, which the gateway sends to the model
	// endpoint as its provider API key (models.providers.<p>.apiKey).
	EnvModelToken = "PM_MODEL_TOKEN"
)

// Tool profiles accepted by tools.profile.
const (
	ToolsMinimal   = "minimal"
	ToolsCoding    = "coding"
	ToolsMessaging = "messaging"
	ToolsFull      = "full"
)

// DefaultToolsProfile is used when Options.ToolsProfile is empty.
const DefaultToolsProfile = ToolsMessaging

// ToolsProfiles returns the accepted tool profiles, in a fixed order.
func ToolsProfiles() []string {
	return []string{ToolsMinimal, ToolsCoding, ToolsMessaging, ToolsFull}
}

// Workspace is the agent workspace written to agents.defaults.workspace. It
// is the gateway's own default, written out so the config does not depend on
// what a future version defaults to.
const Workspace = "~/.openclaw/workspace"

// Options is what the platform decides about one bot's gateway.
type Options struct {
	Model        string // provider/model, e.g. "anthropic/claude-sonnet-4-6"
	Telegram     bool   // a Telegram bot token is configured (value comes from env TELEGRAM_BOT_TOKEN)
	ToolsProfile string // minimal|coding|messaging|full ("" = messaging)
	Terminal     bool   // gateway.terminal.enabled; false for hosted customers unless the plan allows
	ControlUI    bool   // gateway.controlUi.enabled
	Browser      bool   // browser.enabled
	Port         int    // 0 = DefaultPort
	// ModelEndpoint is the root URL of the host's model endpoint ("http://pocketmolt-models:18790"):
	// the model's provider is pointed at it, with the bot's model token for a key, instead of
	// the provider's own API. Required: a bot never holds a provider key.
	ModelEndpoint string
}

// Validate reports whether o can be rendered. Errors are *ValidationError.
func (o Options) Validate() error {
	if err := ValidateModel(o.Model); err != nil {
		return err
	}
	if err := ValidateToolsProfile(o.ToolsProfile); err != nil {
		return err
	}
	if _, err := Provider(o.Model); err != nil {
		return err
	}
	if u, err := url.Parse(o.ModelEndpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.User != nil {
		return &ValidationError{Field: "model endpoint", Reason: "want a root URL such as http://pocketmolt-models:18790"}
	}
	if o.Port < 0 || o.Port > 65535 {
		return &ValidationError{Field: "port", Reason: "must be 1..65535, or 0 for " + strconv.Itoa(DefaultPort)}
	}
	return nil
}

// The types below mirror the schema; encoding/json writes struct fields in
// declaration order, so the output is byte-for-byte stable for equal Options.
// Every field is written explicitly (no omitempty on booleans): several
// gateway defaults are "on" (the operator terminal is), and a bot must not
// change behaviour because a later gateway version changes a default.

type file struct {
	Gateway  gateway   `json:"gateway"`
	Agents   agents    `json:"agents"`
	Models   models    `json:"models"`
	Channels *channels `json:"channels,omitempty"`
	Tools    tools     `json:"tools"`
	Browser  toggle    `json:"browser"`
}

type gateway struct {
	Mode      string      `json:"mode"`
	Port      int         `json:"port"`
	Bind      string      `json:"bind"`
	Auth      gatewayAuth `json:"auth"`
	HTTP      gatewayHTTP `json:"http"`
	Terminal  toggle      `json:"terminal"`
	ControlUI toggle      `json:"controlUi"`
}

type gatewayAuth struct {
	Mode  string `json:"mode"`
	Token string `json:"token"`
}

type gatewayHTTP struct {
	Endpoints struct {
		ChatCompletions toggle `json:"chatCompletions"`
	} `json:"endpoints"`
}

type toggle struct {
	Enabled bool `json:"enabled"`
}

type agents struct {
	Defaults struct {
		Workspace string `json:"workspace"`
		Model     struct {
			Primary string `json:"primary"`
		} `json:"model"`
	} `json:"defaults"`
}

type models struct {
	// Mode "merge" keeps the gateway's built-in catalogue of each provider's models and
	// overlays where the provider is reached.
	Mode      string              `json:"mode"`
	Providers map[string]provider `json:"providers"`
}

type provider struct {
	BaseURL string `json:"baseUrl"`
	APIKey  string `json:"apiKey"`
	API     string `json:"api"`
}

type channels struct {
	Telegram telegram `json:"telegram"`
}

type telegram struct {
	Enabled  bool   `json:"enabled"`
	BotToken string `json:"botToken"`
	DMPolicy string `json:"dmPolicy"`
	// GroupPolicy is required by the schema (it is a defaulted field, and the
	// schema is the parsed form). "allowlist" is the gateway's default; with
	// no groupAllowFrom it keeps the bot out of group chats.
	GroupPolicy string `json:"groupPolicy"`
}

type tools struct {
	Profile string `json:"profile"`
}

// envRef is how the config names a secret held in the gateway's environment.
func envRef(name string) string { return "${" + name + "}" }

// Config renders the gateway's openclaw.json for o: indented JSON ending in a
// newline. It validates o first and returns a *ValidationError if o is not
// acceptable. Equal Options give equal bytes, so callers may hash the result
// to version a bot's spec. The output holds no secret: tokens are "${VAR}"
// references to EnvGatewayToken, EnvTelegramToken and EnvModelToken. No
// provider key is in the config or anywhere in the gateway's reach: the
// model's provider is pointed at o.ModelEndpoint, where the host's agent
// swaps the bot's model token for the key. Config is safe for concurrent use.
func Config(o Options) ([]byte, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	var f file

	f.Gateway.Mode = "local" // without it the gateway refuses to start
	f.Gateway.Port = o.Port
	if f.Gateway.Port == 0 {
		f.Gateway.Port = DefaultPort
	}
	// "lan" binds all interfaces inside the container; the platform publishes
	// the port on loopback only. Non-loopback binds require auth, hence token.
	f.Gateway.Bind = "lan"
	f.Gateway.Auth = gatewayAuth{Mode: "token", Token: envRef(EnvGatewayToken)}
	f.Gateway.HTTP.Endpoints.ChatCompletions.Enabled = true
	f.Gateway.Terminal.Enabled = o.Terminal
	f.Gateway.ControlUI.Enabled = o.ControlUI

	f.Agents.Defaults.Workspace = Workspace
	f.Agents.Defaults.Model.Primary = o.Model

	p, _ := Provider(o.Model) // checked by Validate
	f.Models = models{Mode: "merge", Providers: map[string]provider{p: {
		BaseURL: strings.TrimSuffix(o.ModelEndpoint, "/") + providerPaths[p],
		APIKey:  envRef(EnvModelToken),
		API:     providerAPIs[p],
	}}}

	if o.Telegram {
		f.Channels = &channels{Telegram: telegram{
			Enabled:     true,
			BotToken:    envRef(EnvTelegramToken),
			DMPolicy:    "pairing",
			GroupPolicy: "allowlist",
		}}
	}

	f.Tools.Profile = o.ToolsProfile
	if f.Tools.Profile == "" {
		f.Tools.Profile = DefaultToolsProfile
	}
	f.Browser.Enabled = o.Browser

	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode openclaw config: %w", err)
	}
	return append(b, '\n'), nil
}
