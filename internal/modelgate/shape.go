package modelgate

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// answer is an error the gate gives a bot itself, written in its provider's own error shape
// so that the bot's SDK shows the message as it would the provider's.
type answer struct {
	status int
	// anthropicStatus, when not 0, is the status for Anthropic instead.
	anthropicStatus int
	// anthropicType is error.type in {"type":"error","error":{"type","message"}}.
	anthropicType string
	// openaiType and openaiCode are error.type and error.code in
	// {"error":{"message","type","param","code"}}; an empty code is null.
	openaiType string
	openaiCode string
	message    string
	// retryAfter, in seconds, is sent as retry-after when above 0.
	retryAfter int64
}

func errToken() answer {
	return answer{status: http.StatusUnauthorized, anthropicType: "authentication_error",
		openaiType: "invalid_request_error", openaiCode: "invalid_api_key",
		message: "invalid model token for this bot"}
}

func errProvider(provider string) answer {
	return answer{status: http.StatusForbidden, anthropicType: "permission_error",
		openaiType: "invalid_request_error", openaiCode: "provider_not_allowed",
		message: "this bot may not call provider " + provider}
}

func errNotFound() answer {
	return answer{status: http.StatusNotFound, anthropicType: "not_found_error",
		openaiType: "invalid_request_error", openaiCode: "unknown_url",
		message: "this endpoint is not available through the model gateway"}
}

func errTooLarge() answer {
	return answer{status: http.StatusRequestEntityTooLarge, anthropicType: "request_too_large",
		openaiType: "invalid_request_error", openaiCode: "request_too_large",
		message: "request body too large (at most " + strconv.Itoa(maxRequestBody>>20) + " MiB)"}
}

func errBadRequest(msg string) answer {
	return answer{status: http.StatusBadRequest, anthropicType: "invalid_request_error",
		openaiType: "invalid_request_error", message: msg}
}

// errCredits is the refusal of a bot whose allowance is spent. Anthropic's SDKs show a 400's
// message and do not retry it; OpenAI's own answer for an empty account is 429
// insufficient_quota, which its SDKs do not retry either.
func errCredits(msg string) answer {
	return answer{status: http.StatusTooManyRequests, anthropicStatus: http.StatusBadRequest, anthropicType: "invalid_request_error",
		openaiType: "insufficient_quota", openaiCode: "insufficient_quota", message: msg}
}

func errRate(msg string, retryAfter int64) answer {
	return answer{status: http.StatusTooManyRequests, anthropicType: "rate_limit_error",
		openaiType: "requests", openaiCode: "rate_limit_exceeded", message: msg, retryAfter: retryAfter}
}

func errUpstream() answer {
	return answer{status: http.StatusBadGateway, anthropicType: "api_error",
		openaiType: "server_error", message: "the model provider could not be reached"}
}

func errUnavailable() answer {
	return answer{status: http.StatusServiceUnavailable, anthropicType: "api_error",
		openaiType: "server_error", message: "the model gateway could not record this call; try again"}
}

// write sends a in provider's shape (OpenAI's for anything not Anthropic).
func (a answer) write(w http.ResponseWriter, provider string) {
	status := a.status
	if provider == wire.ProviderAnthropic && a.anthropicStatus != 0 {
		status = a.anthropicStatus
	}
	var body []byte
	if provider == wire.ProviderAnthropic {
		body, _ = json.Marshal(anthropicError{Type: "error", Error: anthropicErrorBody{Type: a.anthropicType, Message: a.message}})
	} else {
		e := openaiErrorBody{Message: a.message, Type: a.openaiType}
		if a.openaiCode != "" {
			e.Code = &a.openaiCode
		}
		body, _ = json.Marshal(openaiError{Error: e})
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	if a.retryAfter > 0 {
		h.Set("Retry-After", strconv.FormatInt(a.retryAfter, 10))
	}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

type anthropicError struct {
	Type  string             `json:"type"`
	Error anthropicErrorBody `json:"error"`
}

type anthropicErrorBody struct {
	Type    string `json:"type"`
	Message string `json:"message"`
}

type openaiError struct {
	Error openaiErrorBody `json:"error"`
}

type openaiErrorBody struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}
