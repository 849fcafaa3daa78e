package standinprovider

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// bearer returns the token of an Authorization: Bearer header.
func bearer(r *http.Request) string {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(tok)
}

// openaiErrors are OpenAI's error bodies by status: message, type and code.
var openaiErrors = map[int][3]string{
	400: {"", "invalid_request_error", ""},
	401: {"Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.", "invalid_request_error", "invalid_api_key"},
	403: {"You are not allowed to sample from this model", "invalid_request_error", "model_not_allowed"},
	404: {"", "invalid_request_error", ""},
	429: {"Rate limit reached for requests (stand-in fault). Please try again in 2s.", "requests", "rate_limit_exceeded"},
	500: {"The server had an error while processing your request. Sorry about that!", "server_error", ""},
	503: {"The engine is currently overloaded, please try again later.", "server_error", ""},
}

// writeOpenAIError writes {"error":{"message","type","param":null,"code"}}.
func writeOpenAIError(w http.ResponseWriter, status int, msg string) {
	e, ok := openaiErrors[status]
	if !ok {
		e = [3]string{"", "server_error", ""}
		if status < 500 {
			e[1] = "invalid_request_error"
		}
	}
	if msg == "" {
		msg = e[0]
	}
	if msg == "" {
		msg = http.StatusText(status)
	}
	var code any
	if e[2] != "" {
		code = e[2]
	}
	h := http.Header{"X-Request-Id": {"req_standin_error"}}
	if status == http.StatusTooManyRequests {
		h.Set("Retry-After", "2")
	}
	if status == http.StatusMethodNotAllowed {
		h.Set("Allow", "POST")
	}
	writeJSON(w, status, h, map[string]any{"error": map[string]any{
		"message": msg, "type": e[1], "param": nil, "code": code}})
}

// openaiMessages reads chat messages (and Responses input items): system and developer text
// goes to the system prompt, user and assistant text to the conversation; other roles (tool)
// count as conversation text under their own role.
func openaiMessages(raw []json.RawMessage) (conversation, error) {
	var c conversation
	var system []string
	for _, item := range raw {
		var m struct {
			Type    string          `json:"type"`
			Role    string          `json:"role"`
			Content json.RawMessage `json:"content"`
		}
		if err := json.Unmarshal(item, &m); err != nil {
			return c, errors.New("messages: each message must be an object")
		}
		if m.Type != "" && m.Type != "message" {
			continue // a Responses item that is not a message (function call output…)
		}
		if m.Role == "" {
			return c, errors.New("messages: role is required")
		}
		text, err := contentText(m.Content)
		if err != nil {
			return c, errors.New("messages: " + err.Error())
		}
		if m.Role == "system" || m.Role == "developer" {
			system = append(system, text)
			continue
		}
		c.msgs = append(c.msgs, message{m.Role, text})
	}
	c.system = strings.Join(system, "\n")
	return c, nil
}

// requestError is a 400 message in the provider's own words, which are not Go's error style.
type requestError string

func (e requestError) Error() string { return string(e) }

// chatAPI is Chat Completions: POST /v1/chat/completions with a bearer key.
type chatAPI struct{}

func (chatAPI) provider() string                                  { return wire.ProviderOpenAI }
func (chatAPI) key(r *http.Request) string                        { return bearer(r) }
func (chatAPI) check(*http.Request) string                        { return "" }
func (chatAPI) writeError(w http.ResponseWriter, s int, m string) { writeOpenAIError(w, s, m) }

func (chatAPI) parse(body []byte) (*request, error) {
	var in struct {
		Model         string            `json:"model"`
		Messages      []json.RawMessage `json:"messages"`
		Stream        bool              `json:"stream"`
		StreamOptions *struct {
			IncludeUsage bool `json:"include_usage"`
		} `json:"stream_options"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, errors.New("We could not parse the JSON body of your request. (" + err.Error() + ")")
	}
	switch {
	case in.Model == "":
		return nil, errors.New("you must provide a model parameter")
	case len(in.Messages) == 0:
		return nil, errors.New("[] is too short - 'messages'")
	}
	conv, err := openaiMessages(in.Messages)
	if err != nil {
		return nil, err
	}
	req := &request{model: in.Model, stream: in.Stream, conv: conv}
	if in.StreamOptions != nil {
		req.includeUsage = in.StreamOptions.IncludeUsage
	}
	return req, nil
}

type chatUsage struct {
	PromptTokens            int64            `json:"prompt_tokens"`
	CompletionTokens        int64            `json:"completion_tokens"`
	TotalTokens             int64            `json:"total_tokens"`
	PromptTokensDetails     map[string]int64 `json:"prompt_tokens_details"`
	CompletionTokensDetails map[string]int64 `json:"completion_tokens_details"`
}

func newChatUsage(t wire.Tokens) *chatUsage {
	prompt := t.Input + t.CacheRead
	return &chatUsage{PromptTokens: prompt, CompletionTokens: t.Output, TotalTokens: prompt + t.Output,
		PromptTokensDetails:     map[string]int64{"cached_tokens": t.CacheRead, "audio_tokens": 0},
		CompletionTokensDetails: map[string]int64{"reasoning_tokens": 0, "audio_tokens": 0}}
}

func (chatAPI) answer(s *answerer, req *request) {
	id := "chatcmpl-" + s.p.nextID("c")
	s.call.ID = id
	text := answerText(req.model, req.conv)
	t := usage(wire.ProviderOpenAI, req.conv, text)
	created := s.p.now().Unix()
	hdr := http.Header{"X-Request-Id": {"req_" + id}}
	if !req.stream {
		s.whole(hdr, map[string]any{"id": id, "object": "chat.completion", "created": created,
			"model": req.model, "system_fingerprint": "fp_standin",
			"choices": []any{map[string]any{"index": 0, "logprobs": nil, "finish_reason": "stop",
				"message": map[string]any{"role": "assistant", "content": text, "refusal": nil}}},
			"usage": newChatUsage(t)}, id, t)
		return
	}
	s.start(hdr)
	chunk := func(delta map[string]any, finish any) []byte {
		c := map[string]any{"id": id, "object": "chat.completion.chunk", "created": created,
			"model": req.model, "system_fingerprint": "fp_standin",
			"choices": []any{map[string]any{"index": 0, "delta": delta, "logprobs": nil, "finish_reason": finish}}}
		if req.includeUsage {
			c["usage"] = nil
		}
		return mustJSON(c)
	}
	s.event("", chunk(map[string]any{"role": "assistant", "content": "", "refusal": nil}, nil), nil)
	for _, d := range answerDeltas(text) {
		s.event("", chunk(map[string]any{"content": d}, nil), nil)
	}
	s.event("", chunk(map[string]any{}, "stop"), nil)
	if req.includeUsage {
		s.event("", mustJSON(map[string]any{"id": id, "object": "chat.completion.chunk", "created": created,
			"model": req.model, "system_fingerprint": "fp_standin", "choices": []any{}, "usage": newChatUsage(t)}), &t)
	}
	// Without include_usage the stream reports no usage, and neither does the call's record.
	s.raw("data: [DONE]\n\n")
}

// responsesAPI is the Responses API: POST /v1/responses with a bearer key.
type responsesAPI struct{}

func (responsesAPI) provider() string                                  { return wire.ProviderOpenAI }
func (responsesAPI) key(r *http.Request) string                        { return bearer(r) }
func (responsesAPI) check(*http.Request) string                        { return "" }
func (responsesAPI) writeError(w http.ResponseWriter, s int, m string) { writeOpenAIError(w, s, m) }

func (responsesAPI) parse(body []byte) (*request, error) {
	var in struct {
		Model        string          `json:"model"`
		Input        json.RawMessage `json:"input"`
		Instructions string          `json:"instructions"`
		Stream       bool            `json:"stream"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, errors.New("We could not parse the JSON body of your request. (" + err.Error() + ")")
	}
	if in.Model == "" {
		return nil, requestError("Missing required parameter: 'model'.")
	}
	req := &request{model: in.Model, stream: in.Stream}
	var s string
	var items []json.RawMessage
	switch {
	case json.Unmarshal(in.Input, &s) == nil:
		req.conv.msgs = []message{{"user", s}}
	case json.Unmarshal(in.Input, &items) == nil && len(items) > 0:
		conv, err := openaiMessages(items)
		if err != nil {
			return nil, errors.New(strings.Replace(err.Error(), "messages", "input", 1))
		}
		req.conv = conv
	default:
		return nil, requestError("Missing required parameter: 'input'.")
	}
	if in.Instructions != "" {
		req.conv.system = strings.TrimSpace(in.Instructions + "\n" + req.conv.system)
	}
	return req, nil
}

func responsesUsage(t wire.Tokens) map[string]any {
	in := t.Input + t.CacheRead
	return map[string]any{"input_tokens": in, "input_tokens_details": map[string]int64{"cached_tokens": t.CacheRead},
		"output_tokens": t.Output, "output_tokens_details": map[string]int64{"reasoning_tokens": 0},
		"total_tokens": in + t.Output}
}

func (responsesAPI) answer(s *answerer, req *request) {
	id := s.p.nextID("resp")
	itemID := "msg_" + strings.TrimPrefix(id, "resp_")
	s.call.ID = id
	text := answerText(req.model, req.conv)
	t := usage(wire.ProviderOpenAI, req.conv, text)
	created := s.p.now().Unix()
	hdr := http.Header{"X-Request-Id": {"req_" + id}}
	part := func(text string) map[string]any {
		return map[string]any{"type": "output_text", "text": text, "annotations": []any{}}
	}
	item := func(status string, content ...any) map[string]any {
		if content == nil {
			content = []any{}
		}
		return map[string]any{"type": "message", "id": itemID, "status": status, "role": "assistant", "content": content}
	}
	response := func(status string, output []any, u any) map[string]any {
		return map[string]any{"id": id, "object": "response", "created_at": created, "status": status,
			"model": req.model, "output": output, "usage": u, "error": nil, "incomplete_details": nil}
	}
	if !req.stream {
		s.whole(hdr, response("completed", []any{item("completed", part(text))}, responsesUsage(t)), id, t)
		return
	}
	s.start(hdr)
	seq := 0
	ev := func(typ string, fields map[string]any, u *wire.Tokens) {
		fields["type"], fields["sequence_number"] = typ, seq
		seq++
		s.event(typ, mustJSON(fields), u)
	}
	ev("response.created", map[string]any{"response": response("in_progress", []any{}, nil)}, nil)
	ev("response.in_progress", map[string]any{"response": response("in_progress", []any{}, nil)}, nil)
	ev("response.output_item.added", map[string]any{"output_index": 0, "item": item("in_progress")}, nil)
	ev("response.content_part.added", map[string]any{"item_id": itemID, "output_index": 0, "content_index": 0, "part": part("")}, nil)
	for _, d := range answerDeltas(text) {
		ev("response.output_text.delta", map[string]any{"item_id": itemID, "output_index": 0, "content_index": 0, "delta": d}, nil)
	}
	ev("response.output_text.done", map[string]any{"item_id": itemID, "output_index": 0, "content_index": 0, "text": text}, nil)
	ev("response.content_part.done", map[string]any{"item_id": itemID, "output_index": 0, "content_index": 0, "part": part(text)}, nil)
	ev("response.output_item.done", map[string]any{"output_index": 0, "item": item("completed", part(text))}, nil)
	ev("response.completed", map[string]any{"response": response("completed",
		[]any{item("completed", part(text))}, responsesUsage(t))}, &t)
}
