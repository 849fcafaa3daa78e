package openclaw_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/pocketmolt/pocketmolt/internal/openclaw"
)

var testModels = []string{
	"anthropic/claude-sonnet-4-6",
	"openai/gpt-5.1",
	"anthropic/claude-haiku-4-5@20251001",
	"openai/ft:gpt-4o-mini:acme:custom:abc123",
}

// endpoint is the model endpoint every test config points its provider at.
const endpoint = "http://pocketmolt-models:18790"

// allOptions is every combination of the boolean options × every tools
// profile (and the empty default) × testModels, with both port forms.
func allOptions() []openclaw.Options {
	var out []openclaw.Options
	profiles := append([]string{""}, openclaw.ToolsProfiles()...)
	for _, model := range testModels {
		for _, profile := range profiles {
			for bits := range 16 {
				for _, port := range []int{0, 28000} {
					out = append(out, openclaw.Options{
						Model:         model,
						ToolsProfile:  profile,
						Telegram:      bits&1 != 0,
						Terminal:      bits&2 != 0,
						ControlUI:     bits&4 != 0,
						Browser:       bits&8 != 0,
						Port:          port,
						ModelEndpoint: endpoint,
					})
				}
			}
		}
	}
	return out
}

func mustConfig(t *testing.T, o openclaw.Options) []byte {
	t.Helper()
	if o.ModelEndpoint == "" {
		o.ModelEndpoint = endpoint
	}
	b, err := openclaw.Config(o)
	if err != nil {
		t.Fatalf("Config(%+v): %v", o, err)
	}
	return b
}

func decode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("config is not JSON: %v\n%s", err, b)
	}
	return m
}

// at follows a dotted path through decoded JSON objects.
func at(m map[string]any, path string) (any, bool) {
	var v any = m
	for key := range strings.SplitSeq(path, ".") {
		obj, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = obj[key]; !ok {
			return nil, false
		}
	}
	return v, true
}

func TestConfigEveryCombinationValidatesAgainstSchema(t *testing.T) {
	s := loadSchema(t)
	for _, o := range allOptions() {
		name := fmt.Sprintf("%s/%q/tg=%t,term=%t,ui=%t,browser=%t,port=%d",
			o.Model, o.ToolsProfile, o.Telegram, o.Terminal, o.ControlUI, o.Browser, o.Port)
		t.Run(name, func(t *testing.T) {
			b := mustConfig(t, o)
			if err := validateJSON(t, s, b); err != nil {
				t.Fatalf("generated config fails the gateway schema: %v\n%s", err, b)
			}
		})
	}
}

func TestConfigReflectsOptions(t *testing.T) {
	for _, o := range allOptions() {
		m := decode(t, mustConfig(t, o))
		wantPort := float64(o.Port)
		if o.Port == 0 {
			wantPort = openclaw.DefaultPort
		}
		wantProfile := o.ToolsProfile
		if wantProfile == "" {
			wantProfile = "messaging"
		}
		want := map[string]any{
			"gateway.mode":       "local",
			"gateway.port":       wantPort,
			"gateway.bind":       "lan",
			"gateway.auth.mode":  "token",
			"gateway.auth.token": "${OPENCLAW_GATEWAY_TOKEN}",
			"gateway.http.endpoints.chatCompletions.enabled": true,
			"gateway.terminal.enabled":                       o.Terminal,
			"gateway.controlUi.enabled":                      o.ControlUI,
			"agents.defaults.workspace":                      "~/.openclaw/workspace",
			"agents.defaults.model.primary":                  o.Model,
			"tools.profile":                                  wantProfile,
			"browser.enabled":                                o.Browser,
		}
		if o.Telegram {
			want["channels.telegram.enabled"] = true
			want["channels.telegram.botToken"] = "${TELEGRAM_BOT_TOKEN}"
			want["channels.telegram.dmPolicy"] = "pairing"
			want["channels.telegram.groupPolicy"] = "allowlist"
		} else if _, ok := m["channels"]; ok {
			t.Errorf("%+v: channels written without Telegram", o)
		}
		for path, w := range want {
			if got, ok := at(m, path); !ok || got != w {
				t.Errorf("%+v: %s = %v (present %t), want %v", o, path, got, ok, w)
			}
		}
	}
}

// TestConfigDefaultGolden pins the exact bytes for the most common spec:
// callers hash them to version a bot, so a change here changes every bot.
func TestConfigDefaultGolden(t *testing.T) {
	got := mustConfig(t, openclaw.Options{Model: "anthropic/claude-sonnet-4-6", Telegram: true})
	want := `{
  "gateway": {
    "mode": "local",
    "port": 18789,
    "bind": "lan",
    "auth": {
      "mode": "token",
      "token": "${OPENCLAW_GATEWAY_TOKEN}"
    },
    "http": {
      "endpoints": {
        "chatCompletions": {
          "enabled": true
        }
      }
    },
    "terminal": {
      "enabled": false
    },
    "controlUi": {
      "enabled": false
    }
  },
  "agents": {
    "defaults": {
      "workspace": "~/.openclaw/workspace",
      "model": {
        "primary": "anthropic/claude-sonnet-4-6"
      }
    }
  },
  "models": {
    "mode": "merge",
    "providers": {
      "anthropic": {
        "baseUrl": "http://pocketmolt-models:18790/anthropic",
        "apiKey": "${PM_MODEL_TOKEN}",
        "api": "anthropic-messages"
      }
    }
  },
  "channels": {
    "telegram": {
      "enabled": true,
      "botToken": "${TELEGRAM_BOT_TOKEN}",
      "dmPolicy": "pairing",
      "groupPolicy": "allowlist"
    }
  },
  "tools": {
    "profile": "messaging"
  },
  "browser": {
    "enabled": false
  }
}
`
	if string(got) != want {
		t.Errorf("Config bytes changed:\n got: %s\nwant: %s", got, want)
	}
}

func TestConfigDeterministic(t *testing.T) {
	opts := allOptions()
	first := make([][]byte, len(opts))
	for i, o := range opts {
		first[i] = mustConfig(t, o)
	}
	for range 20 {
		for i, o := range opts {
			if b := mustConfig(t, o); !bytes.Equal(b, first[i]) {
				t.Fatalf("%+v: Config not deterministic:\n%s\nvs\n%s", o, first[i], b)
			}
		}
	}
	// And distinct specs give distinct bytes, so a hash tells them apart.
	seen := map[string]openclaw.Options{}
	for i, o := range opts {
		norm := o
		if norm.Port == 0 {
			norm.Port = openclaw.DefaultPort
		}
		if norm.ToolsProfile == "" {
			norm.ToolsProfile = "messaging"
		}
		if prev, ok := seen[string(first[i])]; ok && prev != norm {
			t.Fatalf("%+v and %+v render the same bytes", prev, norm)
		}
		seen[string(first[i])] = norm
	}
}

func TestConfigConcurrent(t *testing.T) {
	o := openclaw.Options{Model: "openai/gpt-5.1", Telegram: true, Browser: true, ModelEndpoint: endpoint}
	want := mustConfig(t, o)
	errs := make(chan error, 16)
	for range 16 {
		go func() {
			b, err := openclaw.Config(o)
			if err == nil && !bytes.Equal(b, want) {
				err = errors.New("different bytes")
			}
			errs <- err
		}()
	}
	for range 16 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// secretish matches keys that would hold credentials in OpenClaw's config.
var secretish = regexp.MustCompile(`(?i)token|secret|password|apikey|api_key|key$`)

// envPlaceholder is the only form a credential may take in the config.
var envPlaceholder = regexp.MustCompile(`^\$\{[A-Z][A-Z0-9_]*\}$`)

func TestConfigHoldsNoSecrets(t *testing.T) {
	for _, o := range allOptions() {
		b := mustConfig(t, o)
		var walk func(path string, v any)
		walk = func(path string, v any) {
			switch v := v.(type) {
			case map[string]any:
				for k, child := range v {
					p := strings.TrimPrefix(path+"."+k, ".")
					if secretish.MatchString(k) {
						s, ok := child.(string)
						if !ok || !envPlaceholder.MatchString(s) {
							t.Errorf("%+v: %s = %v, want a ${VAR} placeholder", o, p, child)
						}
					}
					walk(p, child)
				}
			case string:
				if strings.Contains(v, "${") && !envPlaceholder.MatchString(v) {
					t.Errorf("%+v: %s = %q: malformed placeholder", o, path, v)
				}
			}
		}
		walk("", decode(t, b))
		// Nothing shaped like a credential anywhere in the bytes.
		for _, re := range []*regexp.Regexp{
			regexp.MustCompile(`\d{5,12}:[A-Za-z0-9_-]{35}`), // Telegram bot token
			regexp.MustCompile(`sk-[A-Za-z0-9_-]{8,}`),       // OpenAI/Anthropic keys
			regexp.MustCompile(`[0-9a-f]{32}`),               // a hex gateway token
		} {
			if loc := re.Find(b); loc != nil {
				t.Errorf("%+v: config contains something shaped like a secret: %s", o, loc)
			}
		}
	}
	m := decode(t, mustConfig(t, openclaw.Options{Model: "anthropic/x", Telegram: true}))
	if v, _ := at(m, "gateway.auth.token"); v != "${"+openclaw.EnvGatewayToken+"}" {
		t.Errorf("gateway.auth.token = %v", v)
	}
	if v, _ := at(m, "channels.telegram.botToken"); v != "${"+openclaw.EnvTelegramToken+"}" {
		t.Errorf("channels.telegram.botToken = %v", v)
	}
}

func TestConfigRejectsBadOptions(t *testing.T) {
	tests := []struct {
		name  string
		o     openclaw.Options
		field string
	}{
		{"no model", openclaw.Options{}, "model"},
		{"model without provider", openclaw.Options{Model: "claude-sonnet-4-6"}, "model"},
		{"unknown tools profile", openclaw.Options{Model: "anthropic/x", ToolsProfile: "admin"}, "tools profile"},
		{"profile wrong case", openclaw.Options{Model: "anthropic/x", ToolsProfile: "Full"}, "tools profile"},
		{"negative port", openclaw.Options{Model: "anthropic/x", Port: -1, ModelEndpoint: endpoint}, "port"},
		{"port too big", openclaw.Options{Model: "anthropic/x", Port: 65536, ModelEndpoint: endpoint}, "port"},
		{"provider the endpoint does not serve", openclaw.Options{Model: "google/gemini-2.5-pro", ModelEndpoint: endpoint}, "model"},
		{"no model endpoint", openclaw.Options{Model: "anthropic/x"}, "model endpoint"},
		{"model endpoint with a path", openclaw.Options{Model: "anthropic/x", ModelEndpoint: endpoint + "/v1"}, "model endpoint"},
		{"model endpoint not http", openclaw.Options{Model: "anthropic/x", ModelEndpoint: "ftp://pocketmolt-models"}, "model endpoint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := openclaw.Config(tt.o)
			var ve *openclaw.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Config = %s, %v; want *ValidationError", b, err)
			}
			if ve.Field != tt.field {
				t.Errorf("field = %q, want %q (%v)", ve.Field, tt.field, err)
			}
			if b != nil {
				t.Errorf("bytes returned with an error: %s", b)
			}
		})
	}
}

// docExample is the config openclaw.md says passes `openclaw config
// validate`, verbatim.
const docExample = `{
  "gateway": {
    "mode": "local", "port": 18789, "bind": "lan",
    "auth": { "mode": "token", "token": "${OPENCLAW_GATEWAY_TOKEN}" },
    "http": { "endpoints": { "chatCompletions": { "enabled": true } } }
  },
  "agents": { "defaults": {
    "workspace": "~/.openclaw/workspace",
    "model": { "primary": "anthropic/claude-sonnet-4-6" } } },
  "channels": { "telegram": {
    "enabled": true, "botToken": "${TELEGRAM_BOT_TOKEN}", "dmPolicy": "pairing" } }
}`

// TestSchemaDocumentedExample checks the validator against a known-good
// config. The schema is the gateway's parsed (output) form, in which fields
// with defaults are required: channels.telegram requires dmPolicy and
// groupPolicy, though the gateway fills groupPolicy in when it is missing.
// So the documented example passes once groupPolicy is written out, and
// verbatim fails on groupPolicy alone — which is why Config writes it.
func TestSchemaDocumentedExample(t *testing.T) {
	s := loadSchema(t)
	if doc, err := os.ReadFile("../../../shared/openclaw.md"); err == nil {
		if !bytes.Contains(bytes.Join(bytes.Fields(doc), nil), bytes.Join(bytes.Fields([]byte(docExample)), nil)) {
			t.Errorf("docExample no longer matches the example in shared/openclaw.md")
		}
	}
	withGroupPolicy := strings.Replace(docExample, `"dmPolicy": "pairing"`,
		`"dmPolicy": "pairing", "groupPolicy": "allowlist"`, 1)
	if err := validateJSON(t, s, []byte(withGroupPolicy)); err != nil {
		t.Fatalf("documented example (with groupPolicy) fails: %v", err)
	}
	err := validateJSON(t, s, []byte(docExample))
	if err == nil {
		t.Fatal("verbatim example validates; the schema no longer requires groupPolicy — Config may stop writing it")
	}
	if !strings.Contains(err.Error(), "groupPolicy") {
		t.Fatalf("verbatim example fails for another reason: %v", err)
	}
}

// TestSchemaIsStrict proves the validator refuses what the gateway
// refuses, so a passing config means something: unknown keys at the root,
// under gateway (and its objects), under agents.defaults and under a
// channel fail, as does the old root-level mcpServers. channels itself
// allows unknown keys (plugin channels), so it is not tested there.
func TestSchemaIsStrict(t *testing.T) {
	s := loadSchema(t)
	base := mustConfig(t, openclaw.Options{Model: "anthropic/claude-sonnet-4-6", Telegram: true})
	if err := validateJSON(t, s, base); err != nil {
		t.Fatalf("base config invalid: %v", err)
	}
	tests := []struct {
		name  string
		path  string // object to add the key to ("" = root)
		key   string
		value any
		valid bool
	}{
		{"unknown root key", "", "foo", true, false},
		{"root mcpServers", "", "mcpServers", map[string]any{"fs": map[string]any{"command": "npx"}}, false},
		{"mcp.servers is the place", "", "mcp", map[string]any{"servers": map[string]any{"fs": map[string]any{"command": "npx"}}}, true},
		{"root $schema allowed", "", "$schema", "https://example.com/openclaw.json", true},
		{"unknown gateway key", "gateway", "listen", "0.0.0.0:18789", false},
		{"gateway.host (an address) unknown", "gateway", "host", "0.0.0.0", false},
		{"trustedProxies known", "gateway", "trustedProxies", []any{"172.17.0.1"}, true},
		{"unknown gateway.auth key", "gateway.auth", "secret", "x", false},
		{"unknown gateway.terminal key", "gateway.terminal", "allow", true, false},
		{"unknown agents.defaults key", "agents.defaults", "provider", "anthropic", false},
		{"unknown telegram key", "channels.telegram", "token", "${TELEGRAM_BOT_TOKEN}", false},
		{"unknown tools key", "tools", "mode", "full", false},
		{"unknown browser key", "browser", "visible", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := decode(t, base)
			obj := m
			if tt.path != "" {
				v, ok := at(m, tt.path)
				if !ok {
					t.Fatalf("no %s in base config", tt.path)
				}
				obj = v.(map[string]any)
			}
			obj[tt.key] = tt.value
			b, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			err = validateJSON(t, s, b)
			if tt.valid && err != nil {
				t.Errorf("want valid, got %v", err)
			}
			if !tt.valid && err == nil {
				t.Errorf("%s.%s accepted; want the schema to refuse it", tt.path, tt.key)
			}
		})
	}
	bad := []struct{ name, path string }{
		{"bind as address", "gateway.bind"},
		{"wrong mode", "gateway.mode"},
		{"bad profile", "tools.profile"},
		{"bad dmPolicy", "channels.telegram.dmPolicy"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			m := decode(t, base)
			i := strings.LastIndex(tt.path, ".")
			parent, _ := at(m, tt.path[:i])
			parent.(map[string]any)[tt.path[i+1:]] = "0.0.0.0"
			b, _ := json.Marshal(m)
			if validateJSON(t, s, b) == nil {
				t.Errorf("%s = \"0.0.0.0\" accepted", tt.path)
			}
		})
	}
}

// TestSchemaRelaxedPatternsAreOffOurPaths shows that the lookaround
// patterns the test validator relaxes (see compileRegexp) do not apply to
// anything Config writes, so relaxing them cannot hide a bad config.
func TestSchemaRelaxedPatternsAreOffOurPaths(t *testing.T) {
	s := loadSchema(t)
	t.Logf("%d schema patterns checked without their lookaround groups; %d embedded schemas rebased: %v",
		len(s.relaxed), len(s.rebased), s.rebased)
	raw, err := os.ReadFile(schemaPath)
	if err != nil {
		t.Fatal(err)
	}
	var root map[string]any
	if err := json.Unmarshal(raw, &root); err != nil {
		t.Fatal(err)
	}
	m := decode(t, mustConfig(t, openclaw.Options{Model: "anthropic/x", Telegram: true}))
	var leaves []string
	var collect func(prefix string, v any)
	collect = func(prefix string, v any) {
		obj, ok := v.(map[string]any)
		if !ok {
			leaves = append(leaves, prefix)
			return
		}
		for k, child := range obj {
			collect(strings.TrimPrefix(prefix+"."+k, "."), child)
		}
	}
	collect("", m)
	for _, leaf := range leaves {
		subs := schemaAt(root, leaf)
		if len(subs) == 0 {
			t.Errorf("%s: not found in the schema", leaf)
		}
		for _, sub := range subs {
			for _, p := range patternsIn(sub) {
				if slices.Contains(s.relaxed, p) {
					t.Errorf("%s is checked by relaxed pattern %q", leaf, p)
				}
			}
		}
	}
}

// schemaAt returns the subschemas for a dotted path, following properties
// through anyOf/oneOf/allOf branches.
func schemaAt(root map[string]any, path string) []map[string]any {
	cur := []map[string]any{root}
	for key := range strings.SplitSeq(path, ".") {
		var next []map[string]any
		var visit func(s map[string]any)
		visit = func(s map[string]any) {
			props, _ := s["properties"].(map[string]any)
			if sub, ok := props[key].(map[string]any); ok {
				next = append(next, sub)
			} else if sub, ok := s["additionalProperties"].(map[string]any); ok {
				next = append(next, sub) // a map's entries, such as models.providers.<id>
			}
			for _, comb := range []string{"anyOf", "oneOf", "allOf"} {
				branches, _ := s[comb].([]any)
				for _, b := range branches {
					if bm, ok := b.(map[string]any); ok {
						visit(bm)
					}
				}
			}
		}
		for _, s := range cur {
			visit(s)
		}
		cur = next
	}
	return cur
}

func patternsIn(v any) []string {
	var out []string
	switch v := v.(type) {
	case map[string]any:
		for k, child := range v {
			if p, ok := child.(string); ok && k == "pattern" {
				out = append(out, p)
			}
			out = append(out, patternsIn(child)...)
		}
	case []any:
		for _, child := range v {
			out = append(out, patternsIn(child)...)
		}
	}
	return out
}

// TestConfigPointsTheProviderAtTheModelEndpoint shows that the bot's provider is reached
// through the host's model endpoint, with the bot's model token for a key, and that the
// config names no provider key variable at all.
func TestConfigPointsTheProviderAtTheModelEndpoint(t *testing.T) {
	for _, tt := range []struct{ model, provider, baseURL, api string }{
		{"anthropic/claude-sonnet-4-6", "anthropic", endpoint + "/anthropic", "anthropic-messages"},
		{"openai/gpt-5.1", "openai", endpoint + "/openai/v1", "openai-completions"},
	} {
		t.Run(tt.model, func(t *testing.T) {
			b := mustConfig(t, openclaw.Options{Model: tt.model})
			m := decode(t, b)
			models := m["models"].(map[string]any)
			providers := models["providers"].(map[string]any)
			if len(providers) != 1 || models["mode"] != "merge" {
				t.Fatalf("models = %v", models)
			}
			p := providers[tt.provider].(map[string]any)
			if p["baseUrl"] != tt.baseURL || p["apiKey"] != "${PM_MODEL_TOKEN}" || p["api"] != tt.api {
				t.Errorf("provider = %v", p)
			}
			if bytes.Contains(b, []byte("_API_KEY")) {
				t.Errorf("config names a provider key variable:\n%s", b)
			}
		})
	}
}
