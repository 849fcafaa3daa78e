package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/standinprovider"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

const modelToken = "pm-model-token-for-the-test"

// upstreamConfig is the config the platform writes for a bot whose primary model is
// provider/model, its provider pointed at baseURL with the bot's model token.
func upstreamConfig(provider, model, baseURL, extra string) string {
	api := map[string]string{"anthropic": "anthropic-messages", "openai": "openai-completions"}[provider]
	return fmt.Sprintf(`{
  "gateway": {"mode": "local", "auth": {"mode": "token", "token": %q},
              "http": {"endpoints": {"chatCompletions": {"enabled": true}}}},
  "models": {"providers": {%q: {"baseUrl": %q, "apiKey": "${PM_MODEL_TOKEN}", "api": %q %s}}},
  "agents": {"defaults": {"model": {"primary": "%s/%s"}}}
}`, testToken, provider, baseURL, api, extra, provider, model)
}

// startUpstreamGateway serves a started gateway configured by cfgText, with PM_MODEL_TOKEN set.
func startUpstreamGateway(t *testing.T, cfgText string) *httptest.Server {
	t.Helper()
	cfg, err := parseConfig([]byte(cfgText), mapLookup(map[string]string{wire.EnvModelToken: modelToken}))
	if err != nil {
		t.Fatalf("parse config: %v", err)
	}
	if cfg.Upstream == nil {
		t.Fatal("the config has no upstream")
	}
	gw := newGateway(cfg, "token", testToken, nil, slog.New(slog.NewTextHandler(io.Discard, nil)), time.Now)
	gw.markStarted()
	srv := httptest.NewServer(gw)
	t.Cleanup(srv.Close)
	return srv
}

func startProvider(t *testing.T) *standinprovider.Server {
	t.Helper()
	p, err := standinprovider.Start(t.Context(), "127.0.0.1:0", standinprovider.Options{
		Keys: map[string]string{wire.ProviderAnthropic: modelToken, wire.ProviderOpenAI: modelToken}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// baseFor is the baseUrl the platform would write for provider, pointed at the stand-in.
func baseFor(p *standinprovider.Server, provider string) string {
	if provider == "openai" {
		return p.URL() + "/v1"
	}
	return p.URL()
}

// clientAnswer reads the text and usage of a chat answer, streamed or not, and whether a
// stream ended in [DONE].
func clientAnswer(t *testing.T, b []byte, stream bool) (text string, u usage, done bool, errMsg string) {
	t.Helper()
	if !stream {
		var c chatCompletion
		if err := json.Unmarshal(b, &c); err != nil {
			t.Fatalf("answer %s: %v", b, err)
		}
		return c.Choices[0].Message.Content, c.Usage, true, ""
	}
	var sb strings.Builder
	for _, line := range strings.Split(string(b), "\n") {
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			continue
		}
		if data == "[DONE]" {
			done = true
			continue
		}
		var c struct {
			chunk
			Error *errorDetail `json:"error"`
		}
		if err := json.Unmarshal([]byte(data), &c); err != nil {
			t.Fatalf("chunk %s: %v", data, err)
		}
		if c.Error != nil {
			errMsg = c.Error.Message
		}
		for _, ch := range c.Choices {
			sb.WriteString(ch.Delta.Content)
		}
		if c.Usage != nil {
			u = *c.Usage
		}
	}
	return sb.String(), u, done, errMsg
}

// TestUpstreamChat sends two turns of one session through the gateway to the stand-in
// provider, for both providers, streaming and not: the answer and usage are the provider's,
// the key the provider got is the expanded ${PM_MODEL_TOKEN}, the history goes upstream.
func TestUpstreamChat(t *testing.T) {
	for _, provider := range []string{"anthropic", "openai"} {
		for _, stream := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/stream=%t", provider, stream), func(t *testing.T) {
				p := startProvider(t)
				model := map[string]string{"anthropic": "claude-sonnet-4-6", "openai": "gpt-5"}[provider]
				srv := startUpstreamGateway(t, upstreamConfig(provider, model, baseFor(p, provider), ""))
				session := map[string]string{"X-Openclaw-Session-Key": "cust1"}
				for i, input := range []string{"hello there", "and once more"} {
					body := fmt.Sprintf(`{"model":"openclaw","messages":[{"role":"user","content":%q}],"stream":%t,"stream_options":{"include_usage":true}}`, input, stream)
					resp, b := do(t, srv, chat(body, session))
					if resp.StatusCode != 200 {
						t.Fatalf("turn %d: %d %s", i, resp.StatusCode, b)
					}
					text, u, done, _ := clientAnswer(t, b, stream)
					calls := p.Calls()
					if len(calls) != i+1 {
						t.Fatalf("the provider got %d calls, want %d", len(calls), i+1)
					}
					c := calls[i]
					wantText, tok, err := standinprovider.Predict(c.Path, []byte(c.Body))
					if err != nil {
						t.Fatal(err)
					}
					prompt := int(tok.Input + tok.CacheRead + tok.CacheWrite)
					want := usage{PromptTokens: prompt, CompletionTokens: int(tok.Output), TotalTokens: prompt + int(tok.Output)}
					if text != wantText || u != want || !done {
						t.Errorf("turn %d: %q %+v done=%t, want %q %+v", i, text, u, done, wantText, want)
					}
					if c.APIKey != modelToken || c.Model != model || c.Stream != stream || c.Status != 200 {
						t.Errorf("the provider recorded %+v", c)
					}
					if i == 1 && (!strings.Contains(c.Body, "stand-in "+model+": hello there") || tok.CacheRead == 0) {
						t.Errorf("the second turn did not carry the first: %s", c.Body)
					}
				}
			})
		}
	}
}

func TestUpstreamErrors(t *testing.T) {
	tests := []struct {
		name     string
		fault    standinprovider.Fault
		stream   bool
		status   int
		contains string
	}{
		{"429", standinprovider.Fault{Status: 429}, false, 502, "(stand-in fault)"},
		{"500 streaming", standinprovider.Fault{Status: 500}, true, 502, "answered 500"},
		{"401", standinprovider.Fault{Status: 401}, false, 502, "answered 401"},
		{"cut whole answer", standinprovider.Fault{CutAfter: 1}, false, 502, "broke off"},
		{"cut stream", standinprovider.Fault{CutAfter: 4}, true, 200, "broke off"},
	}
	for _, provider := range []string{"anthropic", "openai"} {
		for _, tt := range tests {
			t.Run(provider+"/"+tt.name, func(t *testing.T) {
				p := startProvider(t)
				srv := startUpstreamGateway(t, upstreamConfig(provider, "m1", baseFor(p, provider), ""))
				p.SetFault(tt.fault)
				body := fmt.Sprintf(`{"model":"openclaw","messages":[{"role":"user","content":"one two three four five"}],"stream":%t}`, tt.stream)
				resp, b := do(t, srv, chat(body, nil))
				if resp.StatusCode != tt.status {
					t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, b)
				}
				var msg string
				if tt.status == 200 {
					_, _, done, errMsg := clientAnswer(t, b, true)
					if done {
						t.Errorf("a cut stream ended in [DONE]: %s", b)
					}
					msg = errMsg
				} else {
					var e errorBody
					if err := json.Unmarshal(b, &e); err != nil {
						t.Fatalf("%s: %v", b, err)
					}
					if e.Error.Type != "upstream_error" {
						t.Errorf("type %q", e.Error.Type)
					}
					msg = e.Error.Message
				}
				if !strings.Contains(msg, tt.contains) {
					t.Errorf("message %q does not contain %q", msg, tt.contains)
				}
				if strings.Contains(string(b), modelToken) {
					t.Errorf("the answer carries the model token: %s", b)
				}
			})
		}
	}
}

func TestUpstreamUnreachableAndSlow(t *testing.T) {
	// A port nothing listens on: a listener opened and closed.
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()

	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(release)

	tests := []struct {
		name, base, extra string
		status            int
		typ               string
	}{
		{"unreachable", deadURL, "", 502, "upstream_error"},
		{"timeout", slow.URL, `, "timeoutSeconds": 1`, 504, "timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startUpstreamGateway(t, upstreamConfig("anthropic", "m1", tt.base, tt.extra))
			begin := time.Now()
			resp, b := do(t, srv, chat(`{"messages":[{"role":"user","content":"hi"}]}`, nil))
			var e errorBody
			_ = json.Unmarshal(b, &e)
			if resp.StatusCode != tt.status || e.Error.Type != tt.typ {
				t.Errorf("%d %s, want %d %s", resp.StatusCode, b, tt.status, tt.typ)
			}
			if d := time.Since(begin); d > 10*time.Second {
				t.Errorf("the answer took %s", d)
			}
		})
	}
}

func TestModelsConfig(t *testing.T) {
	lookup := mapLookup(map[string]string{wire.EnvModelToken: modelToken})
	tests := []struct {
		name    string
		config  string
		wantErr string // "" parses
		want    *upstream
	}{
		{"platform's anthropic", upstreamConfig("anthropic", "claude-sonnet-4-6", "http://pocketmolt-models:18790/anthropic", ""), "",
			&upstream{Provider: "anthropic", Model: "claude-sonnet-4-6", API: "anthropic-messages", BaseURL: "http://pocketmolt-models:18790/anthropic", APIKey: modelToken}},
		{"platform's openai", upstreamConfig("openai", "gpt-5", "http://pocketmolt-models:18790/openai/v1", `, "timeoutSeconds": 30, "maxTokens": 100`), "",
			&upstream{Provider: "openai", Model: "gpt-5", API: "openai-completions", BaseURL: "http://pocketmolt-models:18790/openai/v1", APIKey: modelToken, Timeout: 30 * time.Second, MaxTokens: 100}},
		{"env secret ref", `{"models":{"providers":{"anthropic":{"baseUrl":"http://x","apiKey":{"source":"env","provider":"default","id":"PM_MODEL_TOKEN"}}}},"agents":{"defaults":{"model":"anthropic/m"}}}`, "",
			&upstream{Provider: "anthropic", Model: "m", BaseURL: "http://x", APIKey: modelToken}},
		{"no baseUrl", `{"models":{"providers":{"anthropic":{"apiKey":"k"}}},"agents":{"defaults":{"model":{"primary":"anthropic/m"}}}}`, "", nil},
		{"other provider's baseUrl", `{"models":{"providers":{"openai":{"baseUrl":"http://x"}}},"agents":{"defaults":{"model":{"primary":"anthropic/m"}}}}`, "", nil},
		{"unset variable", `{"models":{"providers":{"anthropic":{"baseUrl":"http://x","apiKey":"${NOT_SET_HERE}"}}}}`, "${NOT_SET_HERE}", nil},
		{"unknown provider key", `{"models":{"providers":{"anthropic":{"baseUrl":"http://x","bogus":1}}}}`, `unknown key "bogus" under models.providers.anthropic`, nil},
		{"unknown models key", `{"models":{"bogus":{}}}`, `unknown key "bogus" under models`, nil},
		{"bad api", `{"models":{"providers":{"anthropic":{"api":"smoke-signals"}}}}`, "models.providers.anthropic.api must be one of", nil},
		{"bad baseUrl", `{"models":{"providers":{"anthropic":{"baseUrl":"pocketmolt-models:18790"}}}}`, "baseUrl must be an http(s) URL", nil},
		{"bad timeout", `{"models":{"providers":{"anthropic":{"timeoutSeconds":0}}}}`, "timeoutSeconds must be a positive integer", nil},
		{"file secret ref", `{"models":{"providers":{"anthropic":{"apiKey":{"source":"file","provider":"f","id":"/k"}}}}}`, "only env secret refs", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := parseConfig([]byte(tt.config), lookup)
			if tt.wantErr != "" {
				if err == nil || !errors.Is(err, errConfig) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want errConfig with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tt.want == nil && cfg.Upstream != nil:
				t.Errorf("upstream %+v, want none", cfg.Upstream)
			case tt.want != nil && (cfg.Upstream == nil || *cfg.Upstream != *tt.want):
				t.Errorf("upstream %+v, want %+v", cfg.Upstream, tt.want)
			}
			if cfg.Upstream != nil && strings.Contains(fmt.Sprint(err), modelToken) {
				t.Error("an error carries the key")
			}
		})
	}
}

// TestNoBaseURLKeepsEcho: a config with providers but no baseUrl answers as before.
func TestNoBaseURLKeepsEcho(t *testing.T) {
	cfg, err := parseConfig([]byte(`{"gateway":{"mode":"local"},"models":{"providers":{"anthropic":{"apiKey":"k"}}},"agents":{"defaults":{"model":{"primary":"anthropic/m"}}}}`), mapLookup(nil))
	if err != nil {
		t.Fatal(err)
	}
	cfg.ChatCompletions = true
	gw := newGateway(cfg, "token", testToken, nil, slog.New(slog.DiscardHandler), time.Now)
	gw.markStarted()
	srv := httptest.NewServer(gw)
	defer srv.Close()
	resp, b := do(t, srv, chat(`{"messages":[{"role":"user","content":"hi"}]}`, nil))
	if resp.StatusCode != 200 || !bytes.Contains(b, []byte(`"echo: hi (turn 1)"`)) {
		t.Errorf("%d %s", resp.StatusCode, b)
	}
}

func TestSSEReader(t *testing.T) {
	tests := []struct {
		name, in string
		want     []serverEvent
		err      error
	}{
		{"named and unnamed", "event: a\ndata: 1\n\ndata: 2\n\n", []serverEvent{{"a", "1"}, {"", "2"}}, io.EOF},
		{"CRLF and CR", "event: a\r\ndata: x\r\n\r\ndata: y\r\r", []serverEvent{{"a", "x"}, {"", "y"}}, io.EOF},
		{"multi-line data, comments, no space", ": ping\ndata:a\ndata: b\nid: 7\n\n", []serverEvent{{"", "a\nb"}}, io.EOF},
		{"event without data is dropped", "event: ping\n\ndata: z\n\n", []serverEvent{{"", "z"}}, io.EOF},
		{"cut inside an event", "data: whole\n\ndata: half", []serverEvent{{"", "whole"}}, io.ErrUnexpectedEOF},
		{"cut before the blank line", "data: whole\n", nil, io.ErrUnexpectedEOF},
		{"line too long", "data: " + strings.Repeat("x", maxSSELine+1) + "\n\n", nil, errSSETooLong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newSSEReader(strings.NewReader(tt.in))
			var got []serverEvent
			for {
				ev, err := r.next()
				if err != nil {
					if !errors.Is(err, tt.err) {
						t.Errorf("err %v, want %v", err, tt.err)
					}
					break
				}
				got = append(got, ev)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("events %q, want %q", got, tt.want)
			}
		})
	}
}

// modelStreamSeeds are provider streams as the stand-in provider sends them, whole and cut.
var modelStreamSeeds = []struct {
	api, stream string
}{
	{"anthropic-messages", "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":5,\"cache_creation_input_tokens\":8,\"cache_read_input_tokens\":0,\"output_tokens\":1}}}\n\n" +
		"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"hi\"}}\n\n" +
		"event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":3}}\n\n" +
		"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"},
	{"anthropic-messages", "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n"},
	{"openai-completions", "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n" +
		"data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}],\"usage\":null}\n\n" +
		"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":13,\"completion_tokens\":5}}\n\ndata: [DONE]\n\n"},
	{"openai-completions", "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n"},
}

func TestReadModelStream(t *testing.T) {
	tests := []struct {
		seed int
		text string
		u    usage
		err  bool
	}{
		{0, "hi", usage{13, 3, 16}, false},
		{1, "", usage{}, true},
		{2, "hi", usage{13, 5, 18}, false},
		{3, "hi", usage{}, true},
	}
	for _, tt := range tests {
		s := modelStreamSeeds[tt.seed]
		var deltas strings.Builder
		reply, err := readModelStream(s.api, strings.NewReader(s.stream), func(d string) error { deltas.WriteString(d); return nil })
		if (err != nil) != tt.err || reply.done == tt.err || deltas.String() != tt.text {
			t.Errorf("seed %d: %+v %v, deltas %q", tt.seed, reply, err, deltas.String())
		}
		if !tt.err && (reply.text != tt.text || reply.usage != tt.u) {
			t.Errorf("seed %d: reply %+v, want %q %+v", tt.seed, reply, tt.text, tt.u)
		}
	}
}

// FuzzReadModelStream feeds provider streams of any bytes to the gateway's stream reader: it
// never panics, never reports negative usage, and the text it relays is the reply's text.
func FuzzReadModelStream(f *testing.F) {
	for _, s := range modelStreamSeeds {
		f.Add(s.api == "anthropic-messages", []byte(s.stream))
	}
	f.Add(true, []byte("data: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":-4}}\r\rdata: x\n"))
	f.Fuzz(func(t *testing.T, anthropic bool, data []byte) {
		api := "openai-completions"
		if anthropic {
			api = "anthropic-messages"
		}
		var deltas strings.Builder
		reply, err := readModelStream(api, bytes.NewReader(data), func(d string) error { deltas.WriteString(d); return nil })
		if reply.usage.PromptTokens < 0 || reply.usage.CompletionTokens < 0 {
			t.Errorf("negative usage %+v", reply.usage)
		}
		if err == nil && (!reply.done || reply.text != deltas.String()) {
			t.Errorf("reply %+v, deltas %q", reply, deltas.String())
		}
	})
}
