package modelgate

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/pocketmolt/pocketmolt/internal/wire"
)

func TestUsageBodies(t *testing.T) {
	cases := []struct {
		name, api, body string
		want            wire.Tokens
		estimated       bool
	}{
		{"anthropic", apiMessages, anthropicWhole, wire.Tokens{Input: 25, Output: 12, CacheRead: 100}, false},
		{"anthropic cache write", apiMessages,
			`{"type":"message","content":[{"type":"tool_use","id":"t1","name":"get","input":{"city":"Paris"}}],"usage":{"input_tokens":3,"cache_creation_input_tokens":2048,"cache_read_input_tokens":0,"output_tokens":40,"service_tier":"standard"}}`,
			wire.Tokens{Input: 3, Output: 40, CacheWrite: 2048}, false},
		{"anthropic no usage", apiMessages, `{"type":"message","content":[{"type":"text","text":"12345678"},{"type":"thinking","thinking":"1234"}]}`,
			wire.Tokens{Input: 25, Output: 3}, true},
		{"anthropic negative", apiMessages, `{"usage":{"input_tokens":-5,"output_tokens":-1,"cache_read_input_tokens":-9}}`, wire.Tokens{}, false},
		{"chat", apiChat, chatWhole, wire.Tokens{Input: 25, Output: 12, CacheRead: 100}, false},
		{"chat no details", apiChat, `{"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":4,"total_tokens":13}}`, wire.Tokens{Input: 9, Output: 4}, false},
		{"chat cached above prompt", apiChat, `{"usage":{"prompt_tokens":9,"completion_tokens":4,"prompt_tokens_details":{"cached_tokens":50}}}`, wire.Tokens{Input: 0, CacheRead: 9, Output: 4}, false},
		{"chat tool call no usage", apiChat, `{"choices":[{"message":{"content":null,"tool_calls":[{"function":{"name":"f","arguments":"{\"a\":12345}"}}]}}]}`,
			wire.Tokens{Input: 25, Output: 3}, true},
		{"responses", apiResponses, responsesWhole, wire.Tokens{Input: 25, Output: 12, CacheRead: 100}, false},
		{"responses function call", apiResponses, `{"output":[{"type":"function_call","arguments":"{\"x\":1}"}],"usage":{"input_tokens":50,"output_tokens":7}}`,
			wire.Tokens{Input: 50, Output: 7}, false},
		{"not json", apiResponses, `<html>oops</html>`, wire.Tokens{Input: 25, Output: 5}, true},
		{"usage null", apiChat, `{"choices":[{"message":{"content":"abcd"}}],"usage":null}`, wire.Tokens{Input: 25, Output: 1}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := &meter{api: c.api}
			m.body([]byte(c.body))
			got, est := m.tokens(100)
			if got != c.want || est != c.estimated {
				t.Errorf("tokens %+v estimated %t, want %+v %t", got, est, c.want, c.estimated)
			}
		})
	}
}

func TestUsageStreams(t *testing.T) {
	cases := []struct {
		name, api string
		events    []string
		want      wire.Tokens
		estimated bool
		terminal  bool
		errored   bool
	}{
		{"anthropic", apiMessages, streamEvents(apiMessages, true), wire.Tokens{Input: 25, Output: 12, CacheRead: 100, CacheWrite: 7}, false, true, false},
		{"anthropic no usage", apiMessages, streamEvents(apiMessages, false), wire.Tokens{Input: 25, Output: 3}, true, true, false},
		{"anthropic delta with input", apiMessages, []string{
			"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":0,\"output_tokens\":1}}}\n\n",
			"event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"input_tokens\":30,\"cache_read_input_tokens\":5,\"output_tokens\":80}}\n\n",
			"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
		}, wire.Tokens{Input: 30, CacheRead: 5, Output: 80}, false, true, false},
		{"anthropic error event", apiMessages, []string{
			"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":10,\"output_tokens\":1}}}\n\n",
			"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"12345678\"}}\n\n",
			"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n",
		}, wire.Tokens{Input: 10, Output: 2}, true, false, true},
		{"chat", apiChat, streamEvents(apiChat, true), wire.Tokens{Input: 25, Output: 12, CacheRead: 100}, false, true, false},
		{"chat no usage", apiChat, streamEvents(apiChat, false), wire.Tokens{Input: 25, Output: 3}, true, true, false},
		{"chat crlf", apiChat, []string{
			"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":2}}\r\n\r\n", "data: [DONE]\r\n\r\n",
		}, wire.Tokens{Input: 4, Output: 2}, false, true, false},
		{"responses", apiResponses, streamEvents(apiResponses, true), wire.Tokens{Input: 25, Output: 12, CacheRead: 100}, false, true, false},
		{"responses failed", apiResponses, []string{
			"event: response.failed\ndata: {\"type\":\"response.failed\",\"response\":{\"status\":\"failed\",\"usage\":{\"input_tokens\":8,\"output_tokens\":0}}}\n\n",
		}, wire.Tokens{Input: 8}, false, true, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := &meter{api: c.api}
			in := strings.Join(c.events, "")
			var passed bytes.Buffer
			sr := newSSEReader(strings.NewReader(in), 1<<20)
			for {
				raw, data, err := sr.next()
				passed.Write(raw)
				if data != nil {
					m.event(data)
				}
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			if passed.String() != in {
				t.Errorf("events changed on the way through:\n%q\nwant\n%q", passed.String(), in)
			}
			got, est := m.tokens(100)
			if got != c.want || est != c.estimated || m.terminal != c.terminal || m.errored != c.errored {
				t.Errorf("tokens %+v estimated %t terminal %t errored %t, want %+v %t %t %t",
					got, est, m.terminal, m.errored, c.want, c.estimated, c.terminal, c.errored)
			}
		})
	}
}

func TestSSEReader(t *testing.T) {
	in := ": comment\n\nevent: a\ndata: one\ndata:two\n\n\n" + "data: " + strings.Repeat("x", 70000) + "\n\n" + "data: tail"
	sr := newSSEReader(strings.NewReader(in), 1<<20)
	var datas []string
	var all bytes.Buffer
	for {
		raw, data, err := sr.next()
		all.Write(raw)
		if data != nil {
			datas = append(datas, string(data))
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if all.String() != in {
		t.Errorf("bytes changed")
	}
	want := []string{"one\ntwo", strings.Repeat("x", 70000)}
	if len(datas) != 2 || datas[0] != want[0] || datas[1] != want[1] {
		t.Errorf("data %q", datas)
	}
	sr = newSSEReader(strings.NewReader("data: "+strings.Repeat("y", 5000)+"\n\n"), 1000)
	if _, _, err := sr.next(); err == nil || !strings.Contains(err.Error(), "too large") {
		t.Errorf("oversized event: %v", err)
	}
}

func TestWithStreamUsage(t *testing.T) {
	cases := []struct{ in, want string }{
		{`{"model":"m","stream":true}`, `{"model":"m","stream":true,"stream_options":{"include_usage":true}}`},
		{`{"stream":true,"stream_options":null}`, `{"stream":true,"stream_options":{"include_usage":true}}`},
		{`{"stream":true,"stream_options":{"include_usage":false,"x":1}}`, `{"stream":true,"stream_options":{"include_usage":true,"x":1}}`},
		{`{"stream":true,"stream_options":{"include_usage":true}}`, `{"stream":true,"stream_options":{"include_usage":true}}`},
		{`not json`, `not json`},
		{`{"stream_options":"bad"}`, `{"stream_options":"bad"}`},
	}
	for _, c := range cases {
		out, _ := withStreamUsage([]byte(c.in))
		var got, want any
		if json.Unmarshal(out, &got) != nil {
			if string(out) != c.want {
				t.Errorf("%s → %s, want %s", c.in, out, c.want)
			}
			continue
		}
		_ = json.Unmarshal([]byte(c.want), &want)
		if g, w := mustJSON(got), mustJSON(want); g != w {
			t.Errorf("%s → %s, want %s", c.in, g, w)
		}
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
