package modelgate

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/pocketmolt/pocketmolt/internal/prices"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// fuzzStream reads in as a stream of api and checks what must hold for any bytes: they pass
// through unchanged (up to where the reader stops), and no count is negative.
func fuzzStream(t *testing.T, api string, in []byte) {
	m := &meter{api: api}
	sr := newSSEReader(bytes.NewReader(in), 64<<10)
	var passed bytes.Buffer
	for {
		raw, data, err := sr.next()
		passed.Write(raw)
		if data != nil && !m.terminal {
			m.event(data)
		}
		if err != nil {
			if err == io.EOF && !bytes.Equal(passed.Bytes(), in) {
				t.Fatalf("bytes changed on the way through")
			}
			break
		}
	}
	if !bytes.HasPrefix(in, passed.Bytes()) {
		t.Fatalf("passed bytes are not the input's")
	}
	tok, _ := m.tokens(len(in))
	if tok.Input < 0 || tok.Output < 0 || tok.CacheRead < 0 || tok.CacheWrite < 0 {
		t.Fatalf("negative tokens %+v", tok)
	}
}

func FuzzAnthropicStream(f *testing.F) {
	f.Add([]byte(strings.Join(streamEvents(apiMessages, true), "")))
	f.Add([]byte(strings.Join(streamEvents(apiMessages, false), "")))
	f.Add([]byte("event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\"}}\n\n"))
	f.Add([]byte("event: message_delta\r\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":-3}}\r\n\r\n"))
	f.Add([]byte(": ping\n\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":1e99}}}\n\n"))
	f.Fuzz(func(t *testing.T, in []byte) { fuzzStream(t, apiMessages, in) })
}

func FuzzOpenAIStream(f *testing.F) {
	f.Add([]byte(strings.Join(streamEvents(apiChat, true), "")), false)
	f.Add([]byte(strings.Join(streamEvents(apiChat, false), "")), false)
	f.Add([]byte(strings.Join(streamEvents(apiResponses, true), "")), true)
	f.Add([]byte("data: {\"error\":{\"message\":\"x\"}}\n\ndata: [DONE]\n\n"), false)
	f.Add([]byte("event: response.failed\ndata: {\"type\":\"response.failed\",\"response\":{\"usage\":{\"input_tokens\":8,\"input_tokens_details\":{\"cached_tokens\":99}}}}\n\n"), true)
	f.Fuzz(func(t *testing.T, in []byte, responses bool) {
		api := apiChat
		if responses {
			api = apiResponses
		}
		fuzzStream(t, api, in)
	})
}

func FuzzUsage(f *testing.F) {
	for _, b := range []string{anthropicWhole, chatWhole, responsesWhole,
		`{"usage":{"prompt_tokens":9,"completion_tokens":4,"prompt_tokens_details":{"cached_tokens":50}}}`,
		`{"usage":{"input_tokens":-1}}`, `{"choices":[{"message":{"content":null}}]}`, `[]`, `null`,
		`{"model":"m","max_tokens":1e400}`, `{"max_completion_tokens":-0.5,"max_tokens":"9"}`, `{"max_output_tokens":{"a":1}}`} {
		f.Add([]byte(b), uint8(0))
		f.Add([]byte(b), uint8(1))
		f.Add([]byte(b), uint8(2))
	}
	f.Fuzz(func(t *testing.T, body []byte, which uint8) {
		api := []string{apiMessages, apiChat, apiResponses}[which%3]
		m := &meter{api: api}
		m.body(body)
		tok, est := m.tokens(len(body))
		if tok.Input < 0 || tok.Output < 0 || tok.CacheRead < 0 || tok.CacheWrite < 0 {
			t.Fatalf("negative tokens %+v", tok)
		}
		if !est && (!m.inputSeen || !m.outputSeen) {
			t.Fatalf("not estimated with a part missing")
		}
		ci := readCallInfo(body)
		if n := ci.outputBound(api); n <= 0 {
			t.Fatalf("output bound %d", n)
		}
		if c := ci.reservation(prices.Table{Default: wire.Price{Input: 3_000_000, Output: 15_000_000}}, "anthropic", api, len(body)); c <= 0 {
			t.Fatalf("reservation %d", c)
		}
		withStreamUsage(body)
	})
}
