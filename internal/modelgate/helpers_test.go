package modelgate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// Keys and tokens the tests look for wherever they must not be.
const (
	anthropicKey = "sk-ant-api03-REALKEY-never-in-a-container"
	openaiKey    = "sk-proj-REALKEY-never-in-a-container"
	tokenA       = "pmt_bot_a_token_0123456789"
	tokenB       = "pmt_bot_b_token_9876543210"
)

// memSink keeps records in memory; err, when set, fails every Append.
type memSink struct {
	mu   sync.Mutex
	recs []wire.UsageRecord
	err  error
}

func (s *memSink) Append(_ context.Context, rec wire.UsageRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	s.recs = append(s.recs, rec)
	return nil
}

func (s *memSink) records() []wire.UsageRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]wire.UsageRecord(nil), s.recs...)
}

// logBuf is a concurrency-safe buffer for a JSON slog handler.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// got is one request as the fake provider received it.
type got struct {
	method, path, query string
	header              http.Header
	body                []byte
}

// provider is a fake Anthropic and OpenAI on loopback speaking their real shapes. The test
// client picks its behaviour with an X-Test-Mode header (which must pass through the gate):
// "" answers, "401"/"429"/"500" fail as the providers do, "cut" breaks a stream (or a body)
// off, "nousage" answers without usage, "hang" streams the start and waits for the caller
// to go away.
type provider struct {
	srv      *httptest.Server
	mu       sync.Mutex
	reqs     []got
	canceled chan struct{}
}

func newProvider(t testing.TB) *provider {
	p := &provider{canceled: make(chan struct{}, 16)}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *provider) received() []got {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]got(nil), p.reqs...)
}

func (p *provider) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	p.mu.Lock()
	p.reqs = append(p.reqs, got{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone(), body})
	p.mu.Unlock()
	mode := r.Header.Get("X-Test-Mode")
	anth := strings.HasPrefix(r.URL.Path, "/anthropic")
	if mode == "401" || mode == "429" || mode == "500" {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Request-Id", "req_upstream_1")
		if mode == "429" {
			w.Header().Set("Retry-After", "17")
		}
		code := map[string]int{"401": 401, "429": 429, "500": 500}[mode]
		w.WriteHeader(code)
		if anth {
			io.WriteString(w, `{"type":"error","error":{"type":"upstream_`+mode+`","message":"upstream says `+mode+`"}}`)
		} else {
			io.WriteString(w, `{"error":{"message":"upstream says `+mode+`","type":"upstream_`+mode+`","param":null,"code":null}}`)
		}
		return
	}
	var req struct {
		Stream        bool `json:"stream"`
		StreamOptions struct {
			IncludeUsage bool `json:"include_usage"`
		} `json:"stream_options"`
	}
	_ = json.Unmarshal(body, &req)
	var api string
	switch {
	case strings.HasSuffix(r.URL.Path, "/v1/messages"):
		api = apiMessages
	case strings.HasSuffix(r.URL.Path, "/chat/completions"):
		api = apiChat
	case strings.HasSuffix(r.URL.Path, "/responses"):
		api = apiResponses
	default:
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"data":[{"id":"m1"}]}`)
		return
	}
	w.Header().Set("X-Upstream", "yes")
	if !req.Stream {
		w.Header().Set("Content-Type", "application/json")
		b := wholeBody(api, mode != "nousage")
		if mode == "cut" {
			w.Header().Set("Content-Length", "100000")
			w.Write([]byte(b[:20]))
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}
		io.WriteString(w, b)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	events := streamEvents(api, mode != "nousage" && (api != apiChat || req.StreamOptions.IncludeUsage))
	f := w.(http.Flusher)
	for i, e := range events {
		if (mode == "cut" || mode == "hang") && i == 3 {
			f.Flush()
			if mode == "hang" {
				<-r.Context().Done()
				p.canceled <- struct{}{}
			}
			panic(http.ErrAbortHandler)
		}
		io.WriteString(w, e)
		f.Flush()
	}
}

// The answers, as the providers give them. Every one says "Hello there!" and used 25 input
// tokens, 100 cache read (Anthropic: and 7 cache written, streaming) and 12 output.
const (
	anthropicWhole = `{"id":"msg_01","type":"message","role":"assistant","model":"claude-sonnet-4-6","content":[{"type":"text","text":"Hello there!"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":25,"cache_creation_input_tokens":0,"cache_read_input_tokens":100,"output_tokens":12}}`
	chatWhole      = `{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"Hello there!"},"finish_reason":"stop"}],"usage":{"prompt_tokens":125,"completion_tokens":12,"total_tokens":137,"prompt_tokens_details":{"cached_tokens":100}}}`
	responsesWhole = `{"id":"resp_1","object":"response","status":"completed","model":"gpt-4o","output":[{"type":"message","id":"msg_1","status":"completed","role":"assistant","content":[{"type":"output_text","text":"Hello there!","annotations":[]}]}],"usage":{"input_tokens":125,"input_tokens_details":{"cached_tokens":100},"output_tokens":12,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":137}}`
)

func wholeBody(api string, usage bool) string {
	b := map[string]string{apiMessages: anthropicWhole, apiChat: chatWhole, apiResponses: responsesWhole}[api]
	if !usage {
		i := strings.Index(b, `,"usage"`)
		b = b[:i] + "}"
	}
	return b
}

func streamEvents(api string, usage bool) []string {
	switch api {
	case apiMessages:
		start := `{"type":"message_start","message":{"id":"msg_01","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-6","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,"cache_creation_input_tokens":7,"cache_read_input_tokens":100,"output_tokens":1}}}`
		delta := `{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":12}}`
		if !usage {
			start = `{"type":"message_start","message":{"id":"msg_01","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-6"}}`
			delta = `{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null}}`
		}
		return []string{
			"event: message_start\ndata: " + start + "\n\n",
			"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
			"event: ping\ndata: {\"type\": \"ping\"}\n\n",
			"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\n\n",
			"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\" there!\"}}\n\n",
			"event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
			"event: message_delta\ndata: " + delta + "\n\n",
			"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
		}
	case apiChat:
		c := `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[%s]%s}` + "\n\n"
		u := `,"usage":null`
		ev := []string{
			fmt.Sprintf(c, `{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}`, u),
			fmt.Sprintf(c, `{"index":0,"delta":{"content":"Hello"},"finish_reason":null}`, u),
			fmt.Sprintf(c, `{"index":0,"delta":{"content":" there!"},"finish_reason":null}`, u),
			fmt.Sprintf(c, `{"index":0,"delta":{},"finish_reason":"stop"}`, u),
		}
		if usage {
			ev = append(ev, fmt.Sprintf(c, ``, `,"usage":{"prompt_tokens":125,"completion_tokens":12,"total_tokens":137,"prompt_tokens_details":{"cached_tokens":100}}`))
		}
		return append(ev, "data: [DONE]\n\n")
	default:
		u := `,"usage":{"input_tokens":125,"input_tokens_details":{"cached_tokens":100},"output_tokens":12,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":137}`
		if !usage {
			u = ""
		}
		return []string{
			"event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_1\",\"status\":\"in_progress\",\"usage\":null}}\n\n",
			"event: response.output_item.added\ndata: {\"type\":\"response.output_item.added\",\"sequence_number\":1,\"output_index\":0,\"item\":{\"id\":\"msg_1\",\"type\":\"message\",\"status\":\"in_progress\",\"role\":\"assistant\",\"content\":[]}}\n\n",
			"event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":2,\"item_id\":\"msg_1\",\"output_index\":0,\"content_index\":0,\"delta\":\"Hello\"}\n\n",
			"event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":3,\"item_id\":\"msg_1\",\"output_index\":0,\"content_index\":0,\"delta\":\" there!\"}\n\n",
			"event: response.output_text.done\ndata: {\"type\":\"response.output_text.done\",\"sequence_number\":4,\"item_id\":\"msg_1\",\"output_index\":0,\"content_index\":0,\"text\":\"Hello there!\"}\n\n",
			"event: response.completed\ndata: {\"type\":\"response.completed\",\"sequence_number\":5,\"response\":{\"id\":\"resp_1\",\"status\":\"completed\",\"output\":[{\"type\":\"message\",\"content\":[{\"type\":\"output_text\",\"text\":\"Hello there!\"}]}]" + u + "}}\n\n",
		}
	}
}

// rig is a gate with bots "bot-a" (token A, both providers) and "bot-b" (token B, Anthropic
// only) in front of a fake provider, served on loopback for bot-a.
type rig struct {
	p    *provider
	sink *memSink
	log  *logBuf
	g    *Gate
	srv  *httptest.Server // bot-a's endpoint
	now  *clock
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func testAccess(p *provider, token string, providers ...string) *wire.ModelAccess {
	acc := &wire.ModelAccess{Token: token, Providers: map[string]wire.ProviderAccess{}}
	for _, name := range providers {
		switch name {
		case wire.ProviderAnthropic:
			acc.Providers[name] = wire.ProviderAccess{BaseURL: p.srv.URL + "/anthropic", Key: anthropicKey}
		case wire.ProviderOpenAI:
			acc.Providers[name] = wire.ProviderAccess{BaseURL: p.srv.URL + "/openai/v1/", Key: openaiKey, BYOK: true}
		}
	}
	return acc
}

func newRig(t *testing.T, edit func(a *wire.ModelAccess)) *rig {
	t.Helper()
	r := &rig{p: newProvider(t), sink: &memSink{}, log: &logBuf{},
		now: &clock{t: time.Date(2026, 2, 14, 23, 58, 30, 0, time.UTC)}}
	r.g = New(Config{Sink: r.sink, Now: r.now.Now, Log: slog.New(slog.NewJSONHandler(r.log, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	a := testAccess(r.p, tokenA, wire.ProviderAnthropic, wire.ProviderOpenAI)
	if edit != nil {
		edit(a)
	}
	r.g.Set("bot-a", a)
	r.g.Set("bot-b", testAccess(r.p, tokenB, wire.ProviderAnthropic))
	r.srv = httptest.NewServer(r.g.Handler("bot-a"))
	t.Cleanup(r.srv.Close)
	t.Cleanup(func() {
		for _, s := range []string{anthropicKey, openaiKey} {
			if strings.Contains(r.log.String(), s) {
				t.Errorf("a provider key is in the log")
			}
		}
	})
	return r
}

// reply is what the bot got.
type reply struct {
	status  int
	header  http.Header
	body    string
	readErr error
}

// call makes a call as a bot's SDK would: provider picks the path and the token header.
func (r *rig) call(t *testing.T, ctx context.Context, path, token, body string, hdr ...string) reply {
	t.Helper()
	method := http.MethodPost
	var rd io.Reader = strings.NewReader(body)
	if body == "" {
		method, rd = http.MethodGet, nil
	}
	req, err := http.NewRequestWithContext(ctx, method, r.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		if strings.HasPrefix(path, "/anthropic") {
			req.Header.Set("X-Api-Key", token)
			req.Header.Set("Anthropic-Version", "2023-06-01")
		} else {
			req.Header.Set("Authorization", "Bearer "+token)
		}
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("call %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	for _, s := range []string{anthropicKey, openaiKey} {
		if strings.Contains(string(b), s) || strings.Contains(strings.Join(headerValues(resp.Header), " "), s) {
			t.Errorf("a provider key reached the bot")
		}
	}
	return reply{resp.StatusCode, resp.Header, string(b), err}
}

func headerValues(h http.Header) []string {
	var out []string
	for k, vv := range h {
		out = append(out, k)
		out = append(out, vv...)
	}
	return out
}

func isAbort(err error) bool {
	return err != nil && (errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(err.Error(), "unexpected EOF"))
}
