package standinprovider

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// anthropicAPI is the Messages API: POST /v1/messages with x-api-key and anthropic-version.
type anthropicAPI struct{}

func (anthropicAPI) provider() string { return wire.ProviderAnthropic }

func (anthropicAPI) key(r *http.Request) string { return r.Header.Get("X-Api-Key") }

func (anthropicAPI) check(r *http.Request) string {
	if r.Header.Get("Anthropic-Version") == "" {
		return "anthropic-version: header is required"
	}
	return ""
}

func (anthropicAPI) parse(body []byte) (*request, error) {
	var in struct {
		Model     string `json:"model"`
		MaxTokens *int   `json:"max_tokens"`
		Messages  []struct {
			Role    string          `json:"role"`
			Content json.RawMessage `json:"content"`
		} `json:"messages"`
		System json.RawMessage `json:"system"`
		Stream bool            `json:"stream"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, errors.New("the request body is not valid JSON: " + err.Error())
	}
	switch {
	case in.Model == "":
		return nil, errors.New("model: Field required")
	case in.MaxTokens == nil:
		return nil, errors.New("max_tokens: Field required")
	case len(in.Messages) == 0:
		return nil, errors.New("messages: at least one message is required")
	}
	req := &request{model: in.Model, stream: in.Stream}
	var err error
	if req.conv.system, err = contentText(in.System); err != nil {
		return nil, errors.New("system: " + err.Error())
	}
	for _, m := range in.Messages {
		if m.Role != "user" && m.Role != "assistant" {
			return nil, errors.New("messages: roles must be user or assistant")
		}
		text, err := contentText(m.Content)
		if err != nil {
			return nil, errors.New("messages: " + err.Error())
		}
		req.conv.msgs = append(req.conv.msgs, message{m.Role, text})
	}
	return req, nil
}

type anthropicUsage struct {
	InputTokens              int64 `json:"input_tokens"`
	CacheCreationInputTokens int64 `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int64 `json:"cache_read_input_tokens"`
	OutputTokens             int64 `json:"output_tokens"`
}

type anthropicText struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

type anthropicMessage struct {
	ID           string          `json:"id"`
	Type         string          `json:"type"`
	Role         string          `json:"role"`
	Model        string          `json:"model"`
	Content      []anthropicText `json:"content"`
	StopReason   *string         `json:"stop_reason"`
	StopSequence *string         `json:"stop_sequence"`
	Usage        anthropicUsage  `json:"usage"`
}

func (anthropicAPI) answer(s *answerer, req *request) {
	id := s.p.nextID("msg")
	s.call.ID = id
	text := answerText(req.model, req.conv)
	t := usage(wire.ProviderAnthropic, req.conv, text)
	u := anthropicUsage{InputTokens: t.Input, CacheCreationInputTokens: t.CacheWrite,
		CacheReadInputTokens: t.CacheRead, OutputTokens: t.Output}
	hdr := http.Header{"Request-Id": {"req_" + id}}
	endTurn := "end_turn"
	if !req.stream {
		s.whole(hdr, anthropicMessage{ID: id, Type: "message", Role: "assistant", Model: req.model,
			Content: []anthropicText{{"text", text}}, StopReason: &endTurn, Usage: u}, id, t)
		return
	}
	s.start(hdr)
	// message_start carries the input side and a first output count, as the real API does;
	// message_delta carries the final output count.
	startUsage := u
	startUsage.OutputTokens = 1
	started := t
	started.Output = 1
	s.event("message_start", mustJSON(map[string]any{"type": "message_start", "message": anthropicMessage{
		ID: id, Type: "message", Role: "assistant", Model: req.model, Content: []anthropicText{}, Usage: startUsage}}), &started)
	s.event("content_block_start", mustJSON(map[string]any{"type": "content_block_start", "index": 0,
		"content_block": anthropicText{"text", ""}}), nil)
	s.event("ping", []byte(`{"type": "ping"}`), nil)
	for _, d := range answerDeltas(text) {
		s.event("content_block_delta", mustJSON(map[string]any{"type": "content_block_delta", "index": 0,
			"delta": map[string]string{"type": "text_delta", "text": d}}), nil)
	}
	s.event("content_block_stop", []byte(`{"type":"content_block_stop","index":0}`), nil)
	s.event("message_delta", mustJSON(map[string]any{"type": "message_delta",
		"delta": map[string]any{"stop_reason": endTurn, "stop_sequence": nil},
		"usage": map[string]int64{"output_tokens": t.Output}}), &t)
	s.event("message_stop", []byte(`{"type":"message_stop"}`), nil)
}

// anthropicErrorTypes are the API's error types by status.
var anthropicErrorTypes = map[int]string{
	400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
	403: "permission_error", 404: "not_found_error", 405: "invalid_request_error",
	413: "request_too_large", 429: "rate_limit_error", 500: "api_error", 529: "overloaded_error",
}

var anthropicMessages = map[int]string{
	401: "invalid x-api-key", 403: "Your API key does not have permission to use the specified resource.",
	404: "Not Found", 429: "This request would exceed the rate limit for your organization (stand-in fault). Please retry after 2 seconds.",
	500: "Internal server error", 529: "Overloaded",
}

func (anthropicAPI) writeError(w http.ResponseWriter, status int, msg string) {
	typ, ok := anthropicErrorTypes[status]
	if !ok {
		typ = "api_error"
		if status < 500 {
			typ = "invalid_request_error"
		}
	}
	if msg == "" {
		msg = anthropicMessages[status]
	}
	if msg == "" {
		msg = http.StatusText(status)
	}
	h := http.Header{"Request-Id": {"req_standin_error"}}
	if status == http.StatusTooManyRequests {
		h.Set("Retry-After", "2")
	}
	if status == http.StatusMethodNotAllowed {
		h.Set("Allow", "POST")
	}
	writeJSON(w, status, h, map[string]any{"type": "error",
		"error": map[string]string{"type": typ, "message": msg}, "request_id": "req_standin_error"})
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("standinprovider: marshal: " + err.Error()) // fixed shapes only
	}
	return b
}
