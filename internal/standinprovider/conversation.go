package standinprovider

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// conversation is a request's text: the system prompt and the messages in order.
type conversation struct {
	system string
	msgs   []message
}

type message struct{ role, text string }

// words counts whitespace-separated words, the stand-in's token.
func words(s string) int64 { return int64(len(strings.Fields(s))) }

// lastUser is the newest user message's text.
func (c conversation) lastUser() string {
	for i := len(c.msgs) - 1; i >= 0; i-- {
		if c.msgs[i].role == "user" {
			return strings.TrimSpace(c.msgs[i].text)
		}
	}
	return ""
}

// earlierTurns reports a conversation that has an assistant answer before its last message.
func (c conversation) earlierTurns() bool {
	for _, m := range c.msgs {
		if m.role == "assistant" {
			return true
		}
	}
	return false
}

// answerText is the stand-in's answer to c, its words separated by single spaces so that a
// stream's deltas join to exactly the same text.
func answerText(model string, c conversation) string {
	u := strings.Join(strings.Fields(c.lastUser()), " ")
	if u == "" {
		u = "(no user text)"
	}
	return fmt.Sprintf("stand-in %s: %s", model, u)
}

// usage is the deterministic usage of answering c (see Predict), in wire.Tokens terms.
func usage(provider string, c conversation, answer string) wire.Tokens {
	total := int64(SystemOverhead) + words(c.system)
	for _, m := range c.msgs {
		total += words(m.text)
	}
	var last int64
	if n := len(c.msgs); n > 0 {
		last = words(c.msgs[n-1].text)
	}
	t := wire.Tokens{Output: words(answer)}
	switch {
	case c.earlierTurns():
		t.CacheRead, t.Input = total-last, last
	case provider == wire.ProviderAnthropic:
		t.CacheWrite, t.Input = SystemOverhead, total-SystemOverhead
	default:
		t.Input = total
	}
	return t
}

// Predict returns the answer text and the usage the provider reports for body sent to path
// ("/v1/messages", "/v1/chat/completions" or "/v1/responses"). The rule, with words counted
// as whitespace-separated fields of every text part:
//
//   - total input = SystemOverhead + words of the system prompt (Anthropic "system", OpenAI
//     system/developer messages, Responses "instructions") + words of every message;
//   - when the conversation has an assistant message (earlier turns): cache read = total
//     minus the last message's words, input = the last message's words;
//   - otherwise, Anthropic: cache write = SystemOverhead, input = the rest; OpenAI: input =
//     total, nothing cached;
//   - output = words of the answer "stand-in <model>: <last user text>".
//
// OpenAI reports prompt_tokens = Input + CacheRead with cached_tokens = CacheRead.
func Predict(path string, body []byte) (answer string, t wire.Tokens, err error) {
	var a api
	switch path {
	case "/v1/messages":
		a = anthropicAPI{}
	case "/v1/chat/completions":
		a = chatAPI{}
	case "/v1/responses":
		a = responsesAPI{}
	default:
		return "", wire.Tokens{}, fmt.Errorf("predict: unknown path %s", path)
	}
	req, err := a.parse(body)
	if err != nil {
		return "", wire.Tokens{}, fmt.Errorf("predict: %w", err)
	}
	answer = answerText(req.model, req.conv)
	return answer, usage(a.provider(), req.conv, answer), nil
}

// contentText reads a message content: a string, or an array of parts whose text parts
// ("text", "input_text", "output_text") are joined by newlines. Other parts are ignored.
func contentText(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		return "", errors.New("content must be a string or an array of content blocks")
	}
	var texts []string
	for _, p := range parts {
		switch p.Type {
		case "text", "input_text", "output_text":
			texts = append(texts, p.Text)
		}
	}
	return strings.Join(texts, "\n"), nil
}

// answerDeltas splits an answer into the pieces a stream sends: one per word, " word" after
// the first.
func answerDeltas(answer string) []string {
	ws := strings.Fields(answer)
	for i := 1; i < len(ws); i++ {
		ws[i] = " " + ws[i]
	}
	return ws
}
