package modelgate

import (
	"net/http"
	"strings"

	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// APIs of usage records.
const (
	apiMessages  = "messages"
	apiChat      = "chat"
	apiResponses = "responses"
)

// endpoint is one call the gate forwards.
type endpoint struct {
	provider string
	// rest is the path after the provider's BaseURL.
	rest string
	// api is the metered API, or "" for a call that costs nothing (listing models, counting
	// tokens): forwarded as it is, not recorded, not refused for credits.
	api string
}

// route finds the endpoint of r. The provider is known whenever the path starts with one
// (so that a refusal speaks its shape); found is false for anything not on the allow-list:
//
//	anthropic: POST /anthropic/v1/messages, POST /anthropic/v1/messages/count_tokens,
//	           GET /anthropic/v1/models, GET /anthropic/v1/models/{id}
//	openai:    POST /openai/v1/chat/completions, POST /openai/v1/responses,
//	           GET /openai/v1/models, GET /openai/v1/models/{id}
func route(r *http.Request) (ep endpoint, found bool) {
	p := r.URL.Path
	switch {
	case strings.HasPrefix(p, "/anthropic/"):
		ep.provider = wire.ProviderAnthropic
		ep.rest = p[len("/anthropic"):]
		switch {
		case r.Method == http.MethodPost && ep.rest == "/v1/messages":
			ep.api = apiMessages
			return ep, true
		case r.Method == http.MethodPost && ep.rest == "/v1/messages/count_tokens":
			return ep, true
		case r.Method == http.MethodGet && (ep.rest == "/v1/models" || modelID(ep.rest, "/v1/models/")):
			return ep, true
		}
	case strings.HasPrefix(p, "/openai/"):
		ep.provider = wire.ProviderOpenAI
		if !strings.HasPrefix(p, "/openai/v1/") {
			return ep, false
		}
		ep.rest = p[len("/openai/v1"):]
		switch {
		case r.Method == http.MethodPost && ep.rest == "/chat/completions":
			ep.api = apiChat
			return ep, true
		case r.Method == http.MethodPost && ep.rest == "/responses":
			ep.api = apiResponses
			return ep, true
		case r.Method == http.MethodGet && (ep.rest == "/models" || modelID(ep.rest, "/models/")):
			return ep, true
		}
	}
	return ep, false
}

// modelID reports whether p is prefix followed by one path segment that is a plausible model
// id, so that nothing but a model lookup can be formed from it upstream.
func modelID(p, prefix string) bool {
	id, ok := strings.CutPrefix(p, prefix)
	if !ok || id == "" || len(id) > 200 || id == "." || id == ".." {
		return false
	}
	for _, c := range []byte(id) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.', c == ':', c == '@':
		default:
			return false
		}
	}
	return true
}
