package openclaw

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode"
)

// ValidationError says which input was rejected and why. Its message never
// contains the rejected value: inputs here are often secrets, and a model
// field may hold a pasted key by mistake. Callers map it to a user error
// (HTTP 400, exit 1) with errors.As.
type ValidationError struct {
	Field  string // the input, e.g. "model", "telegram bot token"
	Reason string // what is wrong and what is expected
}

func (e *ValidationError) Error() string { return "invalid " + e.Field + ": " + e.Reason }

func invalid(field, format string, args ...any) error {
	return &ValidationError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

const modelForm = `want "<provider>/<model>", e.g. "anthropic/claude-sonnet-4-6"`

// Longest model string accepted; real ones are well under 100.
const maxModelLen = 200

// ValidateModel checks that s has the form "<provider>/<model>": a provider
// of lower-case letters, digits, '-' and '_' (at most 64), then '/', then a
// model id of letters, digits and ". _ - : @ +" in one or more '/'-separated
// parts (routers such as openrouter name models "vendor/model"). It does not
// check that the provider is supported; Provider does.
func ValidateModel(s string) error {
	const field = "model"
	if s == "" {
		return invalid(field, "empty; %s", modelForm)
	}
	if len(s) > maxModelLen {
		return invalid(field, "longer than %d characters; %s", maxModelLen, modelForm)
	}
	provider, model, ok := strings.Cut(s, "/")
	if !ok {
		return invalid(field, "no provider; %s", modelForm)
	}
	if !validProvider(provider) {
		return invalid(field, "provider must be 1-64 of [a-z0-9_-] starting with a letter or digit; %s", modelForm)
	}
	if model == "" {
		return invalid(field, "no model after the provider; %s", modelForm)
	}
	for part := range strings.SplitSeq(model, "/") {
		if part == "" {
			return invalid(field, "empty path segment; %s", modelForm)
		}
		if !isAlnum(rune(part[0])) {
			return invalid(field, "model name parts must start with a letter or digit; %s", modelForm)
		}
		for _, r := range part {
			if !isAlnum(r) && !strings.ContainsRune("._-:@+", r) {
				return invalid(field, "model name may contain only letters, digits and . _ - : @ +; %s", modelForm)
			}
		}
	}
	return nil
}

func validProvider(p string) bool {
	if p == "" || len(p) > 64 {
		return false
	}
	for i, r := range p {
		lowerAlnum := r >= 'a' && r <= 'z' || r >= '0' && r <= '9'
		if !lowerAlnum && (i == 0 || r != '-' && r != '_') {
			return false
		}
	}
	return true
}

func isAlnum(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
}

// ValidateToolsProfile checks s is one of ToolsProfiles, or empty (which
// means DefaultToolsProfile).
func ValidateToolsProfile(s string) error {
	if s == "" || slices.Contains(ToolsProfiles(), s) {
		return nil
	}
	return invalid("tools profile", "want one of %s (empty means %s)",
		strings.Join(ToolsProfiles(), ", "), DefaultToolsProfile)
}

const telegramForm = `want "<bot id>:<secret>" as BotFather gives it: 5-12 digits, ':', 35 characters of A-Z a-z 0-9 _ -`

// ValidateTelegramToken checks the shape of a Telegram bot token,
// "<bot id>:<secret>" with a 5-12 digit bot id and a 35-character secret of
// [A-Za-z0-9_-]. It cannot tell whether Telegram accepts the token. The
// error never contains the token.
func ValidateTelegramToken(s string) error {
	const field = "telegram bot token"
	if strings.TrimSpace(s) == "" {
		return invalid(field, "empty; %s", telegramForm)
	}
	if strings.TrimSpace(s) != s {
		return invalid(field, "has leading or trailing whitespace; %s", telegramForm)
	}
	id, secret, ok := strings.Cut(s, ":")
	if !ok {
		return invalid(field, "no ':' between bot id and secret; %s", telegramForm)
	}
	if len(id) < 5 || len(id) > 12 || strings.TrimFunc(id, isDigit) != "" {
		return invalid(field, "bot id before ':' is not 5-12 digits; %s", telegramForm)
	}
	if len(secret) != 35 {
		return invalid(field, "secret after ':' has %d characters, not 35; %s", len(secret), telegramForm)
	}
	for _, r := range secret {
		if !isAlnum(r) && r != '_' && r != '-' {
			return invalid(field, "secret after ':' has a character outside A-Z a-z 0-9 _ -; %s", telegramForm)
		}
	}
	return nil
}

func isDigit(r rune) bool { return r >= '0' && r <= '9' }

// API key length bounds: shorter is a typo or a placeholder, longer is not
// a key (provider keys today are 40-200 characters).
const (
	minAPIKeyLen = 8
	maxAPIKeyLen = 512
)

// ValidateAPIKey checks that s looks like a provider API key: after
// trimming surrounding whitespace (which callers should also trim before
// storing it), 8-512 printable ASCII characters with no whitespace inside.
// It cannot tell whether the provider accepts the key. The error never
// contains the key or any part of it.
func ValidateAPIKey(s string) error {
	const field = "api key"
	k := strings.TrimSpace(s)
	if k == "" {
		return invalid(field, "empty")
	}
	for i, r := range k {
		switch {
		case unicode.IsSpace(r):
			return invalid(field, "contains whitespace at byte %d; paste the key on one line", i)
		case r < 0x21 || r > 0x7e:
			return invalid(field, "contains a non-printable or non-ASCII character at byte %d", i)
		}
	}
	if len(k) < minAPIKeyLen || len(k) > maxAPIKeyLen {
		return invalid(field, "%d characters; want %d-%d", len(k), minAPIKeyLen, maxAPIKeyLen)
	}
	return nil
}

// providerAPIs maps each provider the platform's model endpoint speaks to the API adapter
// the gateway uses for it (models.providers.<p>.api). It is never written to.
var providerAPIs = map[string]string{
	"anthropic": "anthropic-messages",
	"openai":    "openai-completions",
}

// providerPaths is where each provider's API lives under the model endpoint: the gateway
// appends the API's own path (/v1/messages; /chat/completions) to baseUrl.
var providerPaths = map[string]string{
	"anthropic": "/anthropic",
	"openai":    "/openai/v1",
}

// Providers returns the model providers the platform serves, sorted.
func Providers() []string {
	return slices.Sorted(maps.Keys(providerAPIs))
}

// Provider returns model's provider, e.g. "anthropic" for "anthropic/claude-sonnet-4-6". It
// returns a *ValidationError for a malformed model or a provider the platform's model
// endpoint does not serve, listing the ones it does.
func Provider(model string) (string, error) {
	if err := ValidateModel(model); err != nil {
		return "", err
	}
	provider, _, _ := strings.Cut(model, "/")
	if _, ok := providerAPIs[provider]; ok {
		return provider, nil
	}
	// The provider passed validProvider, so it is safe and short to echo.
	return "", invalid("model", "unsupported provider %q; supported: %s",
		provider, strings.Join(Providers(), ", "))
}
