package standinprovider

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/wire"
)

const (
	antKey = "sk-ant-test-key"
	oaiKey = "sk-openai-test-key"
)

func start(t *testing.T) *Server {
	t.Helper()
	s, err := Start(t.Context(), "127.0.0.1:0", Options{
		Keys: map[string]string{wire.ProviderAnthropic: antKey, wire.ProviderOpenAI: oaiKey},
		Now:  func() time.Time { return time.Unix(1_800_000_000, 0) },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// post sends body to path with the provider's auth headers for key.
func post(t *testing.T, s *Server, path, key, body string) (*http.Response, []byte, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, s.URL()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if path == "/v1/messages" {
		req.Header.Set("x-api-key", key)
		req.Header.Set("anthropic-version", "2023-06-01")
	} else {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

type sseEvent struct{ name, data string }

func parseSSE(t *testing.T, b []byte) []sseEvent {
	t.Helper()
	var out []sseEvent
	var cur sseEvent
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if cur.data != "" {
				out = append(out, cur)
			}
			cur = sseEvent{}
		case strings.HasPrefix(line, "event: "):
			cur.name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			cur.data = strings.TrimPrefix(line, "data: ")
		}
	}
	return out
}

const (
	antFirst  = `{"model":"claude-sonnet-4-6","max_tokens":100,"system":"be brief","messages":[{"role":"user","content":"hello there world"}]}`
	antLater  = `{"model":"claude-sonnet-4-6","max_tokens":100,"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":[{"type":"text","text":"stand-in claude-sonnet-4-6: hi"}]},{"role":"user","content":[{"type":"text","text":"and again"}]}]}`
	chatFirst = `{"model":"gpt-5","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hello there world"}]}`
	chatLater = `{"model":"gpt-5","messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"stand-in gpt-5: hi"},{"role":"user","content":"and again"}]}`
	respFirst = `{"model":"gpt-5","instructions":"be brief","input":"hello there world"}`
	respLater = `{"model":"gpt-5","input":[{"role":"user","content":"hi"},{"type":"message","role":"assistant","content":[{"type":"output_text","text":"stand-in gpt-5: hi"}]},{"role":"user","content":[{"type":"input_text","text":"and again"}]}]}`
)

// withStream turns on streaming in a request body (and, for chat, include_usage).
func withStream(body string, includeUsage bool) string {
	extra := `"stream":true,`
	if includeUsage {
		extra += `"stream_options":{"include_usage":true},`
	}
	return "{" + extra + body[1:]
}

func TestPredict(t *testing.T) {
	tests := []struct {
		path, body, answer string
		want               wire.Tokens
	}{
		// 8 overhead + 2 system + 3 words; Anthropic writes the overhead to the cache.
		{"/v1/messages", antFirst, "stand-in claude-sonnet-4-6: hello there world", wire.Tokens{Input: 5, CacheWrite: 8, Output: 5}},
		// 8 + 1 + 3 + 2 = 14; the last message's 2 words are new, the rest is read from cache.
		{"/v1/messages", antLater, "stand-in claude-sonnet-4-6: and again", wire.Tokens{Input: 2, CacheRead: 12, Output: 4}},
		{"/v1/chat/completions", chatFirst, "stand-in gpt-5: hello there world", wire.Tokens{Input: 13, Output: 5}},
		{"/v1/chat/completions", chatLater, "stand-in gpt-5: and again", wire.Tokens{Input: 2, CacheRead: 12, Output: 4}},
		{"/v1/responses", respFirst, "stand-in gpt-5: hello there world", wire.Tokens{Input: 13, Output: 5}},
		{"/v1/responses", respLater, "stand-in gpt-5: and again", wire.Tokens{Input: 2, CacheRead: 12, Output: 4}},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			answer, got, err := Predict(tt.path, []byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if answer != tt.answer || got != tt.want {
				t.Errorf("Predict = %q %+v, want %q %+v", answer, got, tt.answer, tt.want)
			}
		})
	}
}

// answerOf extracts the text and usage a client sees from an answer of path.
func answerOf(t *testing.T, path string, stream bool, b []byte) (string, wire.Tokens) {
	t.Helper()
	var text strings.Builder
	var u wire.Tokens
	if !stream {
		var v struct {
			Content []struct{ Text string } `json:"content"`
			Choices []struct {
				Message struct{ Content string } `json:"message"`
			} `json:"choices"`
			Output []struct {
				Content []struct{ Text string } `json:"content"`
			} `json:"output"`
			Usage json.RawMessage `json:"usage"`
		}
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatalf("answer %s: %v", b, err)
		}
		for _, c := range v.Content {
			text.WriteString(c.Text)
		}
		for _, c := range v.Choices {
			text.WriteString(c.Message.Content)
		}
		for _, o := range v.Output {
			for _, c := range o.Content {
				text.WriteString(c.Text)
			}
		}
		return text.String(), usageOf(t, path, v.Usage)
	}
	for _, e := range parseSSE(t, b) {
		if e.data == "[DONE]" {
			continue
		}
		var v struct {
			Type    string `json:"type"`
			Message struct {
				Usage json.RawMessage `json:"usage"`
			} `json:"message"`
			Delta   json.RawMessage `json:"delta"`
			Choices []struct {
				Delta struct{ Content string } `json:"delta"`
			} `json:"choices"`
			Usage    json.RawMessage `json:"usage"`
			Response struct {
				Usage json.RawMessage `json:"usage"`
			} `json:"response"`
		}
		if err := json.Unmarshal([]byte(e.data), &v); err != nil {
			t.Fatalf("event %q: %v", e.data, err)
		}
		switch {
		case e.name == "message_start":
			u = usageOf(t, path, v.Message.Usage)
		case e.name == "content_block_delta":
			var d struct{ Text string }
			_ = json.Unmarshal(v.Delta, &d)
			text.WriteString(d.Text)
		case e.name == "message_delta":
			u.Output = usageOf(t, path, v.Usage).Output
		case e.name == "response.output_text.delta":
			var d struct{ Delta string }
			_ = json.Unmarshal([]byte(e.data), &d)
			text.WriteString(d.Delta)
		case e.name == "response.completed":
			u = usageOf(t, path, v.Response.Usage)
		case e.name == "":
			for _, c := range v.Choices {
				text.WriteString(c.Delta.Content)
			}
			if len(v.Usage) > 0 && string(v.Usage) != "null" {
				u = usageOf(t, path, v.Usage)
			}
		}
	}
	return text.String(), u
}

// usageOf maps a usage object of path to wire.Tokens the way the gateway meters it.
func usageOf(t *testing.T, path string, raw json.RawMessage) wire.Tokens {
	t.Helper()
	var u struct {
		InputTokens         int64 `json:"input_tokens"`
		OutputTokens        int64 `json:"output_tokens"`
		CacheRead           int64 `json:"cache_read_input_tokens"`
		CacheWrite          int64 `json:"cache_creation_input_tokens"`
		PromptTokens        int64 `json:"prompt_tokens"`
		CompletionTokens    int64 `json:"completion_tokens"`
		PromptTokensDetails struct {
			CachedTokens int64 `json:"cached_tokens"`
		} `json:"prompt_tokens_details"`
		InputTokensDetails struct {
			CachedTokens int64 `json:"cached_tokens"`
		} `json:"input_tokens_details"`
	}
	if err := json.Unmarshal(raw, &u); err != nil {
		t.Fatalf("usage %s: %v", raw, err)
	}
	switch path {
	case "/v1/messages":
		return wire.Tokens{Input: u.InputTokens, Output: u.OutputTokens, CacheRead: u.CacheRead, CacheWrite: u.CacheWrite}
	case "/v1/chat/completions":
		c := u.PromptTokensDetails.CachedTokens
		return wire.Tokens{Input: u.PromptTokens - c, CacheRead: c, Output: u.CompletionTokens}
	default:
		c := u.InputTokensDetails.CachedTokens
		return wire.Tokens{Input: u.InputTokens - c, CacheRead: c, Output: u.OutputTokens}
	}
}

func TestAnswers(t *testing.T) {
	s := start(t)
	keys := map[string]string{"/v1/messages": antKey, "/v1/chat/completions": oaiKey, "/v1/responses": oaiKey}
	want := map[string]wire.Tokens{}
	for _, body := range []struct{ path, body string }{
		{"/v1/messages", antFirst}, {"/v1/messages", antLater},
		{"/v1/chat/completions", chatFirst}, {"/v1/chat/completions", chatLater},
		{"/v1/responses", respFirst}, {"/v1/responses", respLater},
	} {
		for _, stream := range []bool{false, true} {
			name := body.path
			if stream {
				name += "/stream"
			}
			t.Run(name, func(t *testing.T) {
				reqBody := body.body
				if stream {
					reqBody = withStream(body.body, body.path == "/v1/chat/completions")
				}
				wantText, wantUsage, err := Predict(body.path, []byte(reqBody))
				if err != nil {
					t.Fatal(err)
				}
				resp, b, err := post(t, s, body.path, keys[body.path], reqBody)
				if err != nil || resp.StatusCode != 200 {
					t.Fatalf("status %d err %v: %s", resp.StatusCode, err, b)
				}
				wantType := "application/json"
				if stream {
					wantType = "text/event-stream; charset=utf-8"
				}
				if ct := resp.Header.Get("Content-Type"); ct != wantType {
					t.Errorf("content type %q, want %q", ct, wantType)
				}
				text, u := answerOf(t, body.path, stream, b)
				if text != wantText || u != wantUsage {
					t.Errorf("answer %q %+v, want %q %+v", text, u, wantText, wantUsage)
				}
				if stream && body.path == "/v1/chat/completions" && !strings.HasSuffix(string(b), "data: [DONE]\n\n") {
					t.Errorf("chat stream does not end in [DONE]: %q", b)
				}
				calls := s.Calls()
				last := calls[len(calls)-1]
				if last.APIKey != keys[body.path] || last.Status != 200 || last.Stream != stream || last.Usage != wantUsage || last.Cut || last.Body != reqBody {
					t.Errorf("recorded %+v", last)
				}
				want[keys[body.path]] = addTokens(want[keys[body.path]], wantUsage)
			})
		}
	}
	got := s.Reported()
	if len(got) != len(want) || got[antKey] != want[antKey] || got[oaiKey] != want[oaiKey] {
		t.Errorf("Reported() = %+v, want %+v", got, want)
	}
}

func TestChatStreamWithoutUsage(t *testing.T) {
	s := start(t)
	resp, b, err := post(t, s, "/v1/chat/completions", oaiKey, withStream(chatFirst, false))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("%d %v", resp.StatusCode, err)
	}
	if bytes.Contains(b, []byte(`"usage"`)) {
		t.Errorf("a stream without include_usage carries usage: %s", b)
	}
	if got := s.Reported()[oaiKey]; got.Input != 0 || got.Output != 0 {
		t.Errorf("reported %+v for a stream that reported nothing", got)
	}
}

func TestErrors(t *testing.T) {
	s := start(t)
	tests := []struct {
		name, path, key, body string
		fault                 Fault
		status                int
		errType, retryAfter   string
	}{
		{"anthropic wrong key", "/v1/messages", "sk-wrong", antFirst, Fault{}, 401, "authentication_error", ""},
		{"openai wrong key", "/v1/chat/completions", "sk-wrong", chatFirst, Fault{}, 401, "invalid_request_error", ""},
		{"anthropic 429", "/v1/messages", antKey, antFirst, Fault{Status: 429, Count: 1}, 429, "rate_limit_error", "2"},
		{"openai 429", "/v1/chat/completions", oaiKey, chatFirst, Fault{Status: 429, Count: 1}, 429, "requests", "2"},
		{"anthropic 500", "/v1/messages", antKey, antFirst, Fault{Status: 500, Count: 1}, 500, "api_error", ""},
		{"anthropic 529", "/v1/messages", antKey, antFirst, Fault{Status: 529, Count: 1}, 529, "overloaded_error", ""},
		{"responses 500", "/v1/responses", oaiKey, respFirst, Fault{Status: 500, Count: 1}, 500, "server_error", ""},
		{"anthropic no max_tokens", "/v1/messages", antKey, `{"model":"m","messages":[{"role":"user","content":"x"}]}`, Fault{}, 400, "invalid_request_error", ""},
		{"openai malformed", "/v1/chat/completions", oaiKey, `{"model":`, Fault{}, 400, "invalid_request_error", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.SetFault(tt.fault)
			resp, b, err := post(t, s, tt.path, tt.key, tt.body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.status || resp.Header.Get("Retry-After") != tt.retryAfter {
				t.Fatalf("status %d retry-after %q, want %d %q", resp.StatusCode, resp.Header.Get("Retry-After"), tt.status, tt.retryAfter)
			}
			var v struct {
				Type  string `json:"type"`
				Error struct {
					Type    string `json:"type"`
					Message string `json:"message"`
					Param   any    `json:"param"`
				} `json:"error"`
			}
			if err := json.Unmarshal(b, &v); err != nil {
				t.Fatal(err)
			}
			if v.Error.Type != tt.errType || v.Error.Message == "" {
				t.Errorf("error %s, want type %s", b, tt.errType)
			}
			if tt.path == "/v1/messages" && v.Type != "error" {
				t.Errorf("anthropic error without type error: %s", b)
			}
			if strings.Contains(string(b), tt.key) {
				t.Errorf("the error body repeats the key: %s", b)
			}
			// A fault with Count 1 is spent: the next call succeeds.
			if tt.fault.Count == 1 {
				key := antKey
				if tt.path != "/v1/messages" {
					key = oaiKey
				}
				body := map[string]string{"/v1/messages": antFirst, "/v1/chat/completions": chatFirst, "/v1/responses": respFirst}[tt.path]
				if resp, _, _ := post(t, s, tt.path, key, body); resp.StatusCode != 200 {
					t.Errorf("after the fault: %d", resp.StatusCode)
				}
			}
		})
	}
	s.SetFault(Fault{})
	for _, c := range s.Calls() {
		if c.Status != 200 && c.Usage != (wire.Tokens{}) {
			t.Errorf("an error call reports usage: %+v", c)
		}
	}
}

func TestCutStream(t *testing.T) {
	tests := []struct {
		path, body string
		cutAfter   int
		wantCut    wire.Tokens // the usage the events before the cut carried
	}{
		// message_start carries the input side and one output token.
		{"/v1/messages", withStream(antFirst, false), 3, wire.Tokens{Input: 5, CacheWrite: 8, Output: 1}},
		{"/v1/messages", withStream(antFirst, false), 0, wire.Tokens{}},
		{"/v1/chat/completions", withStream(chatFirst, true), 3, wire.Tokens{}},
		{"/v1/responses", withStream(respFirst, false), 5, wire.Tokens{}},
		{"/v1/messages", antFirst, 1, wire.Tokens{}}, // not streaming: cut halfway
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			s := start(t)
			key := antKey
			if tt.path != "/v1/messages" {
				key = oaiKey
			}
			if tt.cutAfter == 0 {
				// cut_after 0 is "no cut".
				s.SetFault(Fault{CutAfter: 0, Count: 1})
			} else {
				s.SetFault(Fault{CutAfter: tt.cutAfter, Count: 1})
			}
			resp, b, err := post(t, s, tt.path, key, tt.body)
			if tt.cutAfter == 0 {
				if err != nil || resp.StatusCode != 200 {
					t.Fatalf("no cut: %v %d", err, resp.StatusCode)
				}
				return
			}
			if err == nil {
				t.Fatalf("the answer was not cut: %s", b)
			}
			if resp.StatusCode != 200 {
				t.Errorf("status %d", resp.StatusCode)
			}
			if stream := strings.Contains(tt.body, `"stream":true`); stream {
				if n := len(parseSSE(t, append(b, '\n'))); n != tt.cutAfter {
					t.Errorf("%d events before the cut, want %d", n, tt.cutAfter)
				}
			}
			calls := s.Calls()
			if len(calls) != 1 || !calls[0].Cut || calls[0].Usage != tt.wantCut {
				t.Errorf("calls %+v", calls)
			}
			if got := s.ReportedCut()[key]; got != tt.wantCut {
				t.Errorf("ReportedCut = %+v, want %+v", got, tt.wantCut)
			}
			if got := s.Reported()[key]; got != (wire.Tokens{}) {
				t.Errorf("Reported = %+v for a cut answer", got)
			}
		})
	}
}

func TestControlAPI(t *testing.T) {
	s := start(t)
	ctl := func(method, path, body string) (int, []byte) {
		req, _ := http.NewRequestWithContext(t.Context(), method, s.URL()+path, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	if code, b := ctl("POST", "/_standin/fault", `{"status":500,"count":2}`); code != 204 {
		t.Fatalf("set fault: %d %s", code, b)
	}
	for i, want := range []int{500, 500, 200} {
		if resp, _, _ := post(t, s, "/v1/chat/completions", oaiKey, chatFirst); resp.StatusCode != want {
			t.Errorf("call %d: %d, want %d", i, resp.StatusCode, want)
		}
	}
	for _, bad := range []string{`{"status":200}`, `{"bogus":1}`, `{"count":-1}`, `nope`} {
		if code, _ := ctl("POST", "/_standin/fault", bad); code != 400 {
			t.Errorf("fault %s: %d, want 400", bad, code)
		}
	}
	code, b := ctl("GET", "/_standin/calls", "")
	var rep CallsReport
	if err := json.Unmarshal(b, &rep); err != nil || code != 200 {
		t.Fatalf("%d %v %s", code, err, b)
	}
	if len(rep.Calls) != 3 || rep.Calls[2].APIKey != oaiKey || rep.Reported[oaiKey].Output != 5 {
		t.Errorf("report %+v", rep)
	}
	if code, _ := ctl("DELETE", "/_standin/calls", ""); code != 204 {
		t.Errorf("delete: %d", code)
	}
	if len(s.Calls()) != 0 || len(s.Reported()) != 0 {
		t.Errorf("calls survive DELETE")
	}
	if code, _ := ctl("PUT", "/_standin/calls", ""); code != 405 {
		t.Errorf("PUT calls: %d", code)
	}
}

func TestStartStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	s, err := Start(ctx, "127.0.0.1:0", Options{})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := http.Get(s.URL() + "/_standin/calls"); err != nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Error("the server still answers after its context ended")
}

func FuzzPredict(f *testing.F) {
	for _, seed := range []struct{ path, body string }{
		{"/v1/messages", antFirst}, {"/v1/messages", antLater},
		{"/v1/chat/completions", chatFirst}, {"/v1/chat/completions", chatLater},
		{"/v1/responses", respFirst}, {"/v1/responses", respLater},
		{"/v1/messages", `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"image"}]}]}`},
	} {
		f.Add(seed.path, []byte(seed.body))
	}
	f.Fuzz(func(t *testing.T, path string, body []byte) {
		answer, u, err := Predict(path, body)
		if err != nil {
			return
		}
		if !strings.HasPrefix(answer, "stand-in ") || u.Input < 0 || u.CacheRead < 0 || u.Output < 1 {
			t.Errorf("Predict(%q) = %q %+v", body, answer, u)
		}
		if u.Input+u.CacheRead+u.CacheWrite < SystemOverhead {
			t.Errorf("input %+v below the overhead", u)
		}
	})
}
