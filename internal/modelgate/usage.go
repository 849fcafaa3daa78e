package modelgate

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"

	"github.com/pocketmolt/pocketmolt/internal/prices"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// bytesPerToken is the estimate's ratio when a provider reports no usage: about four bytes
// of text a token, for English prose and code alike.
const bytesPerToken = 4

// estimate is the tokens of n bytes of text, rounded up.
func estimate(n int) int64 { return int64((n + bytesPerToken - 1) / bytesPerToken) }

// defaultOutputBound is the output tokens a call is reserved for when its request sets no
// bound of its own (Chat Completions and Responses may omit it): a long answer of an agent,
// twice Anthropic's old default of 2,048. It is an estimate, not a cap: the call's record
// replaces it when the call ends. The model's own maximum (16k to 128k) would instead hold a
// bot with plenty of credits left to one call at a time, or refuse it outright.
const defaultOutputBound = 4096

// callInfo is what the gate reads of a call's request body. The output bounds are kept raw
// so that a bound of a type the gate does not expect (the provider will refuse it) costs
// neither the model nor the stream flag.
type callInfo struct {
	Model  string `json:"model"`
	Stream bool   `json:"stream"`
	// MaxTokens bounds the output of Messages and (deprecated) Chat Completions;
	// MaxCompletionTokens of Chat Completions, MaxOutputTokens of Responses.
	MaxTokens           json.RawMessage `json:"max_tokens"`
	MaxCompletionTokens json.RawMessage `json:"max_completion_tokens"`
	MaxOutputTokens     json.RawMessage `json:"max_output_tokens"`
}

// outputBound is the most output tokens the request of api asks for: its own bound where it
// sets one (the larger, when Chat Completions gets both), else defaultOutputBound.
func (ci callInfo) outputBound(api string) int64 {
	var n int64
	switch api {
	case apiMessages:
		n = tokenCount(ci.MaxTokens)
	case apiChat:
		n = max(tokenCount(ci.MaxTokens), tokenCount(ci.MaxCompletionTokens))
	case apiResponses:
		n = tokenCount(ci.MaxOutputTokens)
	}
	if n <= 0 {
		return defaultOutputBound
	}
	return n
}

// tokenCount is a positive JSON number of tokens, rounded up and at most maxInt64; 0 for
// anything else.
func tokenCount(raw json.RawMessage) int64 {
	var f float64
	if len(raw) == 0 || json.Unmarshal(raw, &f) != nil || !(f > 0) {
		return 0
	}
	if f >= 1<<63 {
		return 1<<63 - 1
	}
	return int64(math.Ceil(f))
}

// reservation is what a call of api may cost at most, as far as the gate can tell before it
// is made: its request body of reqBytes as input (cache reads counted at the full input
// price) and its output bound, at the price of its model in t.
func (ci callInfo) reservation(t prices.Table, provider, api string, reqBytes int) int64 {
	p, _ := t.Lookup(provider, ci.Model)
	return prices.Cost(p, wire.Tokens{Input: estimate(reqBytes), Output: ci.outputBound(api)})
}

// readCallInfo reads the model, stream flag and output bounds of a request body; a body that
// is not a JSON object gives none of them (the provider will say what is wrong with it).
func readCallInfo(body []byte) callInfo {
	var ci callInfo
	if json.Unmarshal(body, &ci) != nil {
		return callInfo{}
	}
	if len(ci.Model) > 200 {
		ci.Model = ci.Model[:200]
	}
	return ci
}

// withStreamUsage returns an OpenAI Chat Completions body that asks for usage in its stream
// (stream_options.include_usage), and whether it changed it. A body it cannot read is left
// alone.
func withStreamUsage(body []byte) ([]byte, bool) {
	var top map[string]json.RawMessage
	if json.Unmarshal(body, &top) != nil || top == nil {
		return body, false
	}
	opts := map[string]json.RawMessage{}
	if raw, ok := top["stream_options"]; ok && !bytes.Equal(raw, []byte("null")) {
		if json.Unmarshal(raw, &opts) != nil || opts == nil {
			return body, false
		}
	}
	var on bool
	if json.Unmarshal(opts["include_usage"], &on) == nil && on {
		return body, false
	}
	opts["include_usage"] = json.RawMessage("true")
	raw, err := json.Marshal(opts)
	if err != nil {
		return body, false
	}
	top["stream_options"] = raw
	out, err := json.Marshal(top)
	if err != nil {
		return body, false
	}
	return out, true
}

// meter gathers a call's usage from its answer: the provider's own counts where it gives
// them, and the bytes of answer text for an estimate where it does not. Not safe for
// concurrent use.
type meter struct {
	api string
	tok wire.Tokens
	// inputSeen and outputSeen are true once the provider reported the input (and cache)
	// tokens, and the output tokens.
	inputSeen, outputSeen bool
	// text counts the bytes of answer text (and tool call arguments, thinking) seen.
	text int
	// errored is true once the answer carried an error (an error event in a stream).
	errored bool
	// terminal is true once the stream's last event (message_stop, [DONE],
	// response.completed) was seen.
	terminal bool
}

// tokens is what the call used: the provider's counts, with any part it did not report
// estimated from reqBytes (the request body) and the answer text; estimated says whether
// any part was.
func (m *meter) tokens(reqBytes int) (wire.Tokens, bool) {
	t, est := m.tok, false
	if !m.inputSeen {
		t.Input, est = estimate(reqBytes), true
	}
	if !m.outputSeen {
		t.Output, est = max(t.Output, estimate(m.text)), true
	}
	return t, est
}

// nonNeg is n, or 0 for a hostile negative count.
func nonNeg(n int64) int64 { return max(n, 0) }

// anthropicUsage is the Messages API's usage object; absent fields are nil. In a stream,
// message_start carries the input and message_delta the output so far (cumulative) and,
// lately, the input again.
type anthropicUsage struct {
	InputTokens   *int64 `json:"input_tokens"`
	OutputTokens  *int64 `json:"output_tokens"`
	CacheRead     *int64 `json:"cache_read_input_tokens"`
	CacheCreation *int64 `json:"cache_creation_input_tokens"`
}

func (m *meter) anthropic(u *anthropicUsage) {
	if u == nil {
		return
	}
	if u.InputTokens != nil {
		m.tok.Input, m.inputSeen = nonNeg(*u.InputTokens), true
	}
	if u.CacheRead != nil {
		m.tok.CacheRead = nonNeg(*u.CacheRead)
	}
	if u.CacheCreation != nil {
		m.tok.CacheWrite = nonNeg(*u.CacheCreation)
	}
	if u.OutputTokens != nil {
		m.tok.Output, m.outputSeen = nonNeg(*u.OutputTokens), true
	}
}

// chatUsage is Chat Completions' usage: cached tokens are part of prompt_tokens.
type chatUsage struct {
	PromptTokens     *int64 `json:"prompt_tokens"`
	CompletionTokens *int64 `json:"completion_tokens"`
	Details          *struct {
		CachedTokens int64 `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
}

func (m *meter) chat(u *chatUsage) {
	if u == nil {
		return
	}
	var cached int64
	if u.Details != nil {
		cached = u.Details.CachedTokens
	}
	m.openAI(u.PromptTokens, u.CompletionTokens, cached)
}

// openAI meters an OpenAI answer's usage, whose cached tokens are part of its input.
func (m *meter) openAI(input, output *int64, cached int64) {
	if input != nil {
		in := nonNeg(*input)
		cached = min(nonNeg(cached), in)
		m.tok.Input, m.tok.CacheRead, m.inputSeen = in-cached, cached, true
	}
	if output != nil {
		m.tok.Output, m.outputSeen = nonNeg(*output), true
	}
}

// responsesUsage is the Responses API's usage: cached tokens are part of input_tokens.
type responsesUsage struct {
	InputTokens  *int64 `json:"input_tokens"`
	OutputTokens *int64 `json:"output_tokens"`
	Details      *struct {
		CachedTokens int64 `json:"cached_tokens"`
	} `json:"input_tokens_details"`
}

func (m *meter) responses(u *responsesUsage) {
	if u == nil {
		return
	}
	var cached int64
	if u.Details != nil {
		cached = u.Details.CachedTokens
	}
	m.openAI(u.InputTokens, u.OutputTokens, cached)
}

// anthropicMessage is a Messages API answer, as much as the meter reads of it.
type anthropicMessage struct {
	Content []struct {
		Text     string          `json:"text"`
		Thinking string          `json:"thinking"`
		Input    json.RawMessage `json:"input"`
	} `json:"content"`
	Usage *anthropicUsage `json:"usage"`
}

// chatCompletion is a Chat Completions answer.
type chatCompletion struct {
	Choices []struct {
		Message struct {
			Content   *string `json:"content"`
			ToolCalls []struct {
				Function struct {
					Arguments string `json:"arguments"`
				} `json:"function"`
			} `json:"tool_calls"`
		} `json:"message"`
	} `json:"choices"`
	Usage *chatUsage `json:"usage"`
}

// response is a Responses API answer.
type response struct {
	Output []struct {
		Arguments string `json:"arguments"`
		Content   []struct {
			Text string `json:"text"`
		} `json:"content"`
	} `json:"output"`
	Usage *responsesUsage `json:"usage"`
}

// body meters a whole (non-streaming) answer. An answer it cannot read counts as text.
func (m *meter) body(b []byte) {
	before := m.text
	switch m.api {
	case apiMessages:
		var a anthropicMessage
		if json.Unmarshal(b, &a) == nil {
			for _, c := range a.Content {
				m.text += len(c.Text) + len(c.Thinking) + len(c.Input)
			}
			m.anthropic(a.Usage)
		}
	case apiChat:
		var a chatCompletion
		if json.Unmarshal(b, &a) == nil {
			for _, c := range a.Choices {
				if c.Message.Content != nil {
					m.text += len(*c.Message.Content)
				}
				for _, tc := range c.Message.ToolCalls {
					m.text += len(tc.Function.Arguments)
				}
			}
			m.chat(a.Usage)
		}
	case apiResponses:
		var a response
		if json.Unmarshal(b, &a) == nil {
			for _, o := range a.Output {
				m.text += len(o.Arguments)
				for _, c := range o.Content {
					m.text += len(c.Text)
				}
			}
			m.responses(a.Usage)
		}
	}
	if m.text == before && !m.outputSeen {
		m.text += len(b)
	}
}

// anthropicEvent is a Messages API stream event.
type anthropicEvent struct {
	Type    string `json:"type"`
	Message *struct {
		Usage *anthropicUsage `json:"usage"`
	} `json:"message"`
	Delta *struct {
		Text        string `json:"text"`
		Thinking    string `json:"thinking"`
		PartialJSON string `json:"partial_json"`
	} `json:"delta"`
	Usage *anthropicUsage `json:"usage"`
}

// chatChunk is a Chat Completions stream chunk.
type chatChunk struct {
	Choices []struct {
		Delta struct {
			Content          string `json:"content"`
			ReasoningContent string `json:"reasoning_content"`
			ToolCalls        []struct {
				Function struct {
					Arguments string `json:"arguments"`
				} `json:"function"`
			} `json:"tool_calls"`
		} `json:"delta"`
	} `json:"choices"`
	Usage *chatUsage      `json:"usage"`
	Error json.RawMessage `json:"error"`
}

// responsesEvent is a Responses API stream event.
type responsesEvent struct {
	Type     string          `json:"type"`
	Delta    json.RawMessage `json:"delta"`
	Response *struct {
		Usage *responsesUsage `json:"usage"`
	} `json:"response"`
}

// event meters one stream event (its data, with data lines joined) and reports whether it is
// the stream's terminal event, the one the gate holds until the call is recorded.
func (m *meter) event(data []byte) (terminal bool) {
	switch m.api {
	case apiMessages:
		var e anthropicEvent
		if json.Unmarshal(data, &e) != nil {
			return false
		}
		switch e.Type {
		case "message_start":
			if e.Message != nil {
				m.anthropic(e.Message.Usage)
				m.outputSeen = false // a first count; message_delta has the real one
			}
		case "content_block_delta":
			if e.Delta != nil {
				m.text += len(e.Delta.Text) + len(e.Delta.Thinking) + len(e.Delta.PartialJSON)
			}
		case "message_delta":
			m.anthropic(e.Usage)
		case "error":
			m.errored = true
		case "message_stop":
			m.terminal = true
			return true
		}
	case apiChat:
		if bytes.Equal(bytes.TrimSpace(data), []byte("[DONE]")) {
			m.terminal = true
			return true
		}
		var c chatChunk
		if json.Unmarshal(data, &c) != nil {
			return false
		}
		for _, ch := range c.Choices {
			m.text += len(ch.Delta.Content) + len(ch.Delta.ReasoningContent)
			for _, tc := range ch.Delta.ToolCalls {
				m.text += len(tc.Function.Arguments)
			}
		}
		m.chat(c.Usage)
		if len(c.Error) > 0 && !bytes.Equal(c.Error, []byte("null")) {
			m.errored = true
		}
	case apiResponses:
		var e responsesEvent
		if json.Unmarshal(data, &e) != nil {
			return false
		}
		switch {
		case e.Type == "response.completed" || e.Type == "response.incomplete" || e.Type == "response.failed":
			if e.Response != nil {
				m.responses(e.Response.Usage)
			}
			m.errored = m.errored || e.Type == "response.failed"
			m.terminal = true
			return true
		case e.Type == "error":
			m.errored = true
		case strings.HasSuffix(e.Type, ".delta"):
			var s string
			if json.Unmarshal(e.Delta, &s) == nil {
				m.text += len(s)
			}
		}
	}
	return false
}
