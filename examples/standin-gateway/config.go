package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
)

// errConfig marks every problem with the configuration; run maps it to exit code 78
// (EX_CONFIG), as OpenClaw does.
var errConfig = errors.New("invalid config")

// Keys OpenClaw 2026.9.6 accepts, from the schema `openclaw config schema` prints. Validation
// is strict there: any other key at these levels makes the gateway refuse to start.
var (
	rootKeys = []string{"$schema", "accessGroups", "acp", "agents", "approvals", "attachments",
		"auth", "bindings", "broadcast", "browser", "channels", "cloudWorkers", "commands", "cron",
		"desktop", "diagnostics", "discovery", "env", "gateway", "hooks", "logging", "mcp", "memory",
		"messages", "meta", "models", "nodeHost", "plugins", "proxy", "secrets", "security",
		"session", "skills", "surfaces", "talk", "telemetry", "tools", "transcripts", "tts", "ui",
		"update", "wizard", "worktreeAcceleration", "worktreeRoot"}
	gatewayKeys = []string{"allowRealIpFallback", "auth", "bind", "cliAgents", "controlUi",
		"customBindHost", "http", "mode", "nodes", "port", "portals", "publicOrigin", "push",
		"reload", "remote", "roles", "tailscale", "terminal", "tls", "tools", "trustedProxies"}
	gatewayAuthKeys = []string{"allowTailscale", "identityScopes", "mode", "password",
		"rateLimit", "token", "trustedProxy"}
	gatewayHTTPKeys      = []string{"endpoints", "securityHeaders"}
	gatewayEndpointsKeys = []string{"chatCompletions", "responses"}
	chatCompletionsKeys  = []string{"enabled", "images"}
	bindModes            = []string{"auto", "lan", "loopback", "custom", "tailnet"}
	authModes            = []string{"none", "token", "password", "trusted-proxy"}
	modelsKeys           = []string{"mode", "providers", "catalogRefresh"}
	providerKeys         = []string{"baseUrl", "apiKey", "auth", "api", "maxTokens", "timeoutSeconds",
		"region", "injectNumCtxForOpenAICompat", "params", "agentRuntime", "localService", "headers",
		"authHeader", "request", "models"}
	providerAPIs = []string{"openai-completions", "openai-responses", "openai-chatgpt-responses",
		"anthropic-messages", "google-generative-ai", "google-vertex", "github-copilot",
		"bedrock-converse-stream", "ollama", "pi-messages", "azure-openai-responses"}
)

// config is the part of openclaw.json the stand-in acts on.
type config struct {
	Mode            string // gateway.mode; "" when unset
	Port            int    // gateway.port; 0 when unset
	Bind            string // gateway.bind; "" when unset
	CustomBindHost  string
	AuthMode        string // gateway.auth.mode; "" when unset
	Token           string // gateway.auth.token after ${VAR} expansion
	Password        string
	TrustedProxies  []netip.Prefix
	ChatCompletions bool
	TerminalEnabled bool
	Agents          []string        // ids under agents.entries
	KnownModels     map[string]bool // "provider/model" ids from models.providers and agents.defaults
	// Upstream is the model provider chat turns go to: the provider of
	// agents.defaults.model.primary when models.providers has a baseUrl for it. nil keeps the
	// stand-in's own echo.
	Upstream *upstream
}

// stateDir returns OPENCLAW_STATE_DIR or ~/.openclaw. HOME may be unset in a FROM scratch
// image, where the real image's home /home/node is the right answer; os/user is never used
// because there is no /etc/passwd.
func stateDir(getenv func(string) string) string {
	if d := getenv("OPENCLAW_STATE_DIR"); d != "" {
		return expandHome(d, getenv)
	}
	return filepath.Join(homeDir(getenv), ".openclaw")
}

func homeDir(getenv func(string) string) string {
	if h := getenv("HOME"); h != "" {
		return h
	}
	return "/home/node"
}

func expandHome(p string, getenv func(string) string) string {
	if p == "~" || strings.HasPrefix(p, "~/") {
		return filepath.Join(homeDir(getenv), p[1:])
	}
	return p
}

// configPath returns OPENCLAW_CONFIG_PATH or <state dir>/openclaw.json.
func configPath(getenv func(string) string) string {
	if p := getenv("OPENCLAW_CONFIG_PATH"); p != "" {
		return expandHome(p, getenv)
	}
	return filepath.Join(stateDir(getenv), "openclaw.json")
}

// loadConfig reads and validates the config at path. found is false when the file does not
// exist, which OpenClaw treats as "unconfigured". Every error wraps errConfig.
func loadConfig(path string, lookup func(string) (string, bool)) (cfg *config, found bool, err error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &config{TerminalEnabled: true, KnownModels: map[string]bool{}}, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("%w: read %s: %v", errConfig, path, err)
	}
	cfg, err = parseConfig(data, lookup)
	if err != nil {
		return nil, true, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, true, nil
}

// parseConfig parses JSON with JSON5-style comments and trailing commas, expands ${VAR}
// strings from lookup and applies OpenClaw's strict key checks.
func parseConfig(data []byte, lookup func(string) (string, bool)) (*config, error) {
	dec := json.NewDecoder(bytes.NewReader(stripJSON5(data)))
	dec.UseNumber()
	var raw any
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("%w: parse: %v", errConfig, err)
	}
	root, ok := raw.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: the root must be an object", errConfig)
	}
	expanded, err := expandEnv(root, "", lookup)
	if err != nil {
		return nil, err
	}
	root = expanded.(map[string]any)

	if err := checkKeys(root, "", rootKeys); err != nil {
		return nil, err
	}
	cfg := &config{TerminalEnabled: true, KnownModels: map[string]bool{}}
	gw, err := object(root, "gateway", "")
	if err != nil {
		return nil, err
	}
	if err := checkKeys(gw, "gateway", gatewayKeys); err != nil {
		return nil, err
	}
	if cfg.Mode, err = str(gw, "mode", "gateway", []string{"local", "remote"}); err != nil {
		return nil, err
	}
	if cfg.Bind, err = str(gw, "bind", "gateway", bindModes); err != nil {
		return nil, err
	}
	if cfg.CustomBindHost, err = str(gw, "customBindHost", "gateway", nil); err != nil {
		return nil, err
	}
	if v, ok := gw["port"]; ok {
		n, isNum := v.(json.Number)
		p, perr := n.Int64()
		if !isNum || perr != nil || p < 1 || p > 65535 {
			return nil, fmt.Errorf("%w: gateway.port must be an integer from 1 to 65535", errConfig)
		}
		cfg.Port = int(p)
	}

	auth, err := object(gw, "auth", "gateway")
	if err != nil {
		return nil, err
	}
	if err := checkKeys(auth, "gateway.auth", gatewayAuthKeys); err != nil {
		return nil, err
	}
	if cfg.AuthMode, err = str(auth, "mode", "gateway.auth", authModes); err != nil {
		return nil, err
	}
	if cfg.Token, err = secret(auth, "token", "gateway.auth", lookup); err != nil {
		return nil, err
	}
	if cfg.Password, err = secret(auth, "password", "gateway.auth", lookup); err != nil {
		return nil, err
	}

	if v, ok := gw["trustedProxies"]; ok {
		list, isList := v.([]any)
		if !isList {
			return nil, fmt.Errorf("%w: gateway.trustedProxies must be an array of IPs or CIDRs", errConfig)
		}
		for _, e := range list {
			s, _ := e.(string)
			p, err := parsePrefix(s)
			if err != nil {
				return nil, fmt.Errorf("%w: gateway.trustedProxies: %q is not an IP or CIDR", errConfig, s)
			}
			cfg.TrustedProxies = append(cfg.TrustedProxies, p)
		}
	}

	httpCfg, err := object(gw, "http", "gateway")
	if err != nil {
		return nil, err
	}
	if err := checkKeys(httpCfg, "gateway.http", gatewayHTTPKeys); err != nil {
		return nil, err
	}
	endpoints, err := object(httpCfg, "endpoints", "gateway.http")
	if err != nil {
		return nil, err
	}
	if err := checkKeys(endpoints, "gateway.http.endpoints", gatewayEndpointsKeys); err != nil {
		return nil, err
	}
	cc, err := object(endpoints, "chatCompletions", "gateway.http.endpoints")
	if err != nil {
		return nil, err
	}
	if err := checkKeys(cc, "gateway.http.endpoints.chatCompletions", chatCompletionsKeys); err != nil {
		return nil, err
	}
	if cfg.ChatCompletions, err = boolean(cc, "enabled", "gateway.http.endpoints.chatCompletions", false); err != nil {
		return nil, err
	}
	terminal, err := object(gw, "terminal", "gateway")
	if err != nil {
		return nil, err
	}
	if cfg.TerminalEnabled, err = boolean(terminal, "enabled", "gateway.terminal", true); err != nil {
		return nil, err
	}

	// Agents only feed the model and agent checks of the chat endpoint; their own shape is not
	// validated here.
	agents, _ := root["agents"].(map[string]any)
	if entries, ok := agents["entries"].(map[string]any); ok {
		for id := range entries {
			cfg.Agents = append(cfg.Agents, id)
		}
		sort.Strings(cfg.Agents)
	}
	primary := ""
	if defaults, ok := agents["defaults"].(map[string]any); ok {
		switch m := defaults["model"].(type) {
		case string:
			primary = m
		case map[string]any:
			primary, _ = m["primary"].(string)
		}
	}
	if primary != "" {
		cfg.KnownModels[primary] = true
	}
	providers, err := parseModels(root, cfg.KnownModels, lookup)
	if err != nil {
		return nil, err
	}
	if name, modelID, ok := strings.Cut(primary, "/"); ok && modelID != "" {
		if p, ok := providers[name]; ok && p.BaseURL != "" {
			p.Provider, p.Model = name, modelID
			cfg.Upstream = p
		}
	}
	return cfg, nil
}

// parseModels validates the models section as OpenClaw's schema does (models and each
// models.providers.<id> allow no other keys), records every provider model in known and
// returns the providers by id.
func parseModels(root map[string]any, known map[string]bool, lookup func(string) (string, bool)) (map[string]*upstream, error) {
	models, err := object(root, "models", "")
	if err != nil {
		return nil, err
	}
	if err := checkKeys(models, "models", modelsKeys); err != nil {
		return nil, err
	}
	if _, err := str(models, "mode", "models", []string{"merge", "replace"}); err != nil {
		return nil, err
	}
	providers, err := object(models, "providers", "models")
	if err != nil {
		return nil, err
	}
	out := map[string]*upstream{}
	for name, v := range providers {
		at := "models.providers." + name
		pm, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%w: %s must be an object", errConfig, at)
		}
		if err := checkKeys(pm, at, providerKeys); err != nil {
			return nil, err
		}
		p := &upstream{}
		if p.BaseURL, err = str(pm, "baseUrl", at, nil); err != nil {
			return nil, err
		}
		if p.BaseURL != "" {
			if u, perr := url.Parse(p.BaseURL); perr != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return nil, fmt.Errorf("%w: %s.baseUrl must be an http(s) URL", errConfig, at)
			}
		}
		if p.APIKey, err = secret(pm, "apiKey", at, lookup); err != nil {
			return nil, err
		}
		if p.API, err = str(pm, "api", at, providerAPIs); err != nil {
			return nil, err
		}
		if p.MaxTokens, err = positive(pm, "maxTokens", at); err != nil {
			return nil, err
		}
		secs, err := positive(pm, "timeoutSeconds", at)
		if err != nil {
			return nil, err
		}
		p.Timeout = time.Duration(secs) * time.Second
		if v, ok := pm["models"]; ok {
			list, isList := v.([]any)
			if !isList {
				return nil, fmt.Errorf("%w: %s.models must be an array", errConfig, at)
			}
			for _, m := range list {
				if mm, ok := m.(map[string]any); ok {
					if id, ok := mm["id"].(string); ok {
						known[name+"/"+id] = true
					}
				}
			}
		}
		out[name] = p
	}
	return out, nil
}

// positive reads an optional positive integer (0 when absent).
func positive(m map[string]any, key, at string) (int, error) {
	v, ok := m[key]
	if !ok {
		return 0, nil
	}
	n, isNum := v.(json.Number)
	i, err := n.Int64()
	if !isNum || err != nil || i < 1 || i > 1<<31 {
		return 0, fmt.Errorf("%w: %s must be a positive integer", errConfig, join(at, key))
	}
	return int(i), nil
}

func checkKeys(m map[string]any, at string, allowed []string) error {
	var unknown []string
	for k := range m {
		if !slices.Contains(allowed, k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	sort.Strings(unknown)
	where := "at the root"
	if at != "" {
		where = "under " + at
	}
	return fmt.Errorf("%w: unknown key %q %s (OpenClaw validates its config strictly)", errConfig, unknown[0], where)
}

func object(m map[string]any, key, at string) (map[string]any, error) {
	v, ok := m[key]
	if !ok || v == nil {
		return map[string]any{}, nil
	}
	o, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: %s must be an object", errConfig, join(at, key))
	}
	return o, nil
}

func str(m map[string]any, key, at string, oneOf []string) (string, error) {
	v, ok := m[key]
	if !ok {
		return "", nil
	}
	s, ok := v.(string)
	if !ok || (oneOf != nil && !slices.Contains(oneOf, s)) {
		if oneOf != nil {
			return "", fmt.Errorf("%w: %s must be one of %s", errConfig, join(at, key), strings.Join(oneOf, "|"))
		}
		return "", fmt.Errorf("%w: %s must be a string", errConfig, join(at, key))
	}
	return s, nil
}

func boolean(m map[string]any, key, at string, def bool) (bool, error) {
	v, ok := m[key]
	if !ok {
		return def, nil
	}
	b, ok := v.(bool)
	if !ok {
		return false, fmt.Errorf("%w: %s must be a boolean", errConfig, join(at, key))
	}
	return b, nil
}

// secret reads a string or an env SecretRef ({"source":"env","provider":…,"id":"VAR"}).
func secret(m map[string]any, key, at string, lookup func(string) (string, bool)) (string, error) {
	switch v := m[key].(type) {
	case nil:
		return "", nil
	case string:
		return v, nil
	case map[string]any:
		if v["source"] != "env" {
			return "", fmt.Errorf("%w: %s: the stand-in resolves only env secret refs", errConfig, join(at, key))
		}
		id, _ := v["id"].(string)
		val, ok := lookup(id)
		if !ok || val == "" {
			return "", fmt.Errorf("%w: %s: environment variable %s is not set", errConfig, join(at, key), id)
		}
		return val, nil
	default:
		return "", fmt.Errorf("%w: %s must be a string or a secret ref", errConfig, join(at, key))
	}
}

func join(at, key string) string {
	if at == "" {
		return key
	}
	return at + "." + key
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}

// envRef matches OpenClaw's config substitution: ${NAME} with an upper-case name; $${NAME}
// escapes it.
var envRef = regexp.MustCompile(`\$?\$\{([A-Z_][A-Z0-9_]*)\}`)

// expandEnv replaces ${VAR} in every string of v. A reference to an unset or empty variable
// is an error, as in OpenClaw, so a missing secret stops the start instead of becoming "".
func expandEnv(v any, at string, lookup func(string) (string, bool)) (any, error) {
	switch t := v.(type) {
	case string:
		var missing string
		out := envRef.ReplaceAllStringFunc(t, func(ref string) string {
			if strings.HasPrefix(ref, "$$") {
				return ref[1:]
			}
			name := ref[2 : len(ref)-1]
			val, ok := lookup(name)
			if (!ok || val == "") && missing == "" {
				missing = name
			}
			return val
		})
		if missing != "" {
			return nil, fmt.Errorf("%w: %s references ${%s}, which is not set in the environment", errConfig, at, missing)
		}
		return out, nil
	case map[string]any:
		for k, e := range t {
			x, err := expandEnv(e, join(at, k), lookup)
			if err != nil {
				return nil, err
			}
			t[k] = x
		}
		return t, nil
	case []any:
		for i, e := range t {
			x, err := expandEnv(e, fmt.Sprintf("%s[%d]", at, i), lookup)
			if err != nil {
				return nil, err
			}
			t[i] = x
		}
		return t, nil
	default:
		return v, nil
	}
}

// stripJSON5 removes // and /* */ comments and trailing commas outside strings, the JSON5
// features hand-written OpenClaw configs use most. Unquoted keys and single quotes stay
// unsupported.
func stripJSON5(in []byte) []byte {
	out := make([]byte, 0, len(in))
	inString, escaped := false, false
	for i := 0; i < len(in); i++ {
		c := in[i]
		if inString {
			out = append(out, c)
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch {
		case c == '"':
			inString = true
			out = append(out, c)
		case c == '/' && i+1 < len(in) && in[i+1] == '/':
			for i < len(in) && in[i] != '\n' {
				i++
			}
			i--
		case c == '/' && i+1 < len(in) && in[i+1] == '*':
			end := bytes.Index(in[i+2:], []byte("*/"))
			if end < 0 {
				i = len(in)
			} else {
				i += end + 3
			}
			out = append(out, ' ')
		case c == '}' || c == ']':
			// Drop a comma that only whitespace separates from this closing bracket.
			j := len(out) - 1
			for j >= 0 && (out[j] == ' ' || out[j] == '\t' || out[j] == '\n' || out[j] == '\r') {
				j--
			}
			if j >= 0 && out[j] == ',' {
				out = append(out[:j], out[j+1:]...)
			}
			out = append(out, c)
		default:
			out = append(out, c)
		}
	}
	return out
}
