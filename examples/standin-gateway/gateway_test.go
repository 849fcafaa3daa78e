package main

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"
)

const testToken = "test-token"

type testOpt func(*config, *gateway)

// startGateway serves a started gateway with token auth and chat completions on.
func startGateway(t *testing.T, opts ...testOpt) (*gateway, *httptest.Server) {
	t.Helper()
	cfg := &config{Mode: "local", ChatCompletions: true, TerminalEnabled: true, KnownModels: map[string]bool{}}
	gw := newGateway(cfg, "token", testToken, nil, slog.New(slog.NewTextHandler(io.Discard, nil)), time.Now)
	for _, o := range opts {
		o(cfg, gw)
	}
	gw.markStarted()
	srv := httptest.NewServer(gw)
	t.Cleanup(srv.Close)
	return gw, srv
}

type call struct {
	method, path, body string
	header             map[string]string
}

func do(t *testing.T, srv *httptest.Server, c call) (*http.Response, []byte) {
	t.Helper()
	if c.method == "" {
		c.method = http.MethodGet
	}
	req, err := http.NewRequestWithContext(t.Context(), c.method, srv.URL+c.path, strings.NewReader(c.body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range c.header {
		req.Header.Set(k, v)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func chat(body string, header map[string]string) call {
	h := map[string]string{"Authorization": "Bearer " + testToken}
	for k, v := range header {
		h[k] = v
	}
	return call{method: http.MethodPost, path: "/v1/chat/completions", body: body, header: h}
}

// TestChatDeterministic pins the stand-in's own answers: reply text, turn numbers per
// session and word-count usage.
func TestChatDeterministic(t *testing.T) {
	type turnCase struct {
		call        call
		wantReply   string
		wantPrompt  int
		wantComplet int
	}
	tests := []struct {
		name  string
		turns []turnCase
	}{
		{"no session key is a fresh session each time", []turnCase{
			{chat(`{"model":"openclaw","messages":[{"role":"user","content":"Say hello."}]}`, nil), "echo: Say hello. (turn 1)", 2, 5},
			{chat(`{"model":"openclaw","messages":[{"role":"user","content":"Say hello."}]}`, nil), "echo: Say hello. (turn 1)", 2, 5},
		}},
		{"session key continues and counts history", []turnCase{
			{chat(`{"model":"openclaw","messages":[{"role":"user","content":"one two"}]}`, map[string]string{"x-openclaw-session-key": "k"}), "echo: one two (turn 1)", 2, 5},
			// history: "one two" (2) + "echo: one two (turn 1)" (5), plus "three" (1);
			// then + "three" (1) + "echo: three (turn 2)" (4), plus "four" (1)
			{chat(`{"model":"openclaw/main","messages":[{"role":"user","content":"three"}]}`, map[string]string{"x-openclaw-session-key": "k"}), "echo: three (turn 2)", 8, 4},
			{chat(`{"model":"openclaw/default","messages":[{"role":"user","content":"four"}]}`, map[string]string{"x-openclaw-session-key": "k"}), "echo: four (turn 3)", 13, 4},
		}},
		{"user field keeps its own sessions", []turnCase{
			{chat(`{"model":"openclaw","user":"k","messages":[{"role":"user","content":"a"}]}`, nil), "echo: a (turn 1)", 1, 4},
			{chat(`{"model":"openclaw","user":"k","messages":[{"role":"user","content":"b"}]}`, nil), "echo: b (turn 2)", 6, 4},
			{chat(`{"model":"openclaw","user":"other","messages":[{"role":"user","content":"c"}]}`, nil), "echo: c (turn 1)", 1, 4},
		}},
		{"last user message, array content, every message counted", []turnCase{
			{chat(`{"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"first"},{"role":"assistant","content":"ok"},{"role":"user","content":[{"type":"text","text":"second part"}]}]}`, nil), "echo: second part (turn 1)", 6, 5},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, srv := startGateway(t)
			for i, tc := range tt.turns {
				resp, body := do(t, srv, tc.call)
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("turn %d: status %d: %s", i, resp.StatusCode, body)
				}
				var got chatCompletion
				if err := json.Unmarshal(body, &got); err != nil {
					t.Fatal(err)
				}
				if c := got.Choices[0].Message.Content; c != tc.wantReply {
					t.Errorf("turn %d: reply %q, want %q", i, c, tc.wantReply)
				}
				want := usage{tc.wantPrompt, tc.wantComplet, tc.wantPrompt + tc.wantComplet}
				if got.Usage != want {
					t.Errorf("turn %d: usage %+v, want %+v", i, got.Usage, want)
				}
				if !strings.HasPrefix(got.ID, "chatcmpl_") || len(got.ID) != len("chatcmpl_")+36 {
					t.Errorf("turn %d: id %q", i, got.ID)
				}
			}
		})
	}
}

func TestStreamUsage(t *testing.T) {
	_, srv := startGateway(t)
	resp, body := do(t, srv, chat(`{"model":"openclaw/main","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Say hello."}]}`, nil))
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream; charset=utf-8" {
		t.Fatalf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	events := parseSSE(t, string(body))
	var kinds []string
	for _, e := range events {
		kinds = append(kinds, e.kind)
	}
	want := "role content content content content content finish usage done"
	if strings.Join(kinds, " ") != want {
		t.Fatalf("events %v, want %s", kinds, want)
	}
	u := events[len(events)-2].chunk["usage"].(map[string]any)
	if u["prompt_tokens"] != 2.0 || u["completion_tokens"] != 5.0 || u["total_tokens"] != 7.0 {
		t.Errorf("usage %v", u)
	}
	if m := events[0].chunk["model"]; m != "openclaw/main" {
		t.Errorf("model %v, want the requested openclaw/main", m)
	}
}

// TestProbes walks the phases: starting, started, a failing channel, draining.
func TestProbes(t *testing.T) {
	tests := []struct {
		name          string
		phase         phase
		readyFail     []string
		startupStatus int
		startupState  string
		readyStatus   int
		failing       string
	}{
		{"starting", phaseStarting, nil, 503, "starting", 503, "startup-sidecars"},
		{"started", phaseStarted, nil, 200, "started", 200, ""},
		{"broken channel", phaseStarted, []string{"telegram"}, 200, "started", 503, "telegram"},
		{"draining", phaseDraining, nil, 503, "draining", 503, "gateway-draining"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gw, srv := startGateway(t, func(_ *config, g *gateway) { g.readyFail = tt.readyFail })
			gw.phase.Store(int32(tt.phase))

			resp, body := do(t, srv, call{path: "/healthz"})
			if resp.StatusCode != 200 || string(body) != `{"ok":true,"status":"live"}` {
				t.Errorf("healthz %d %s", resp.StatusCode, body)
			}
			resp, body = do(t, srv, call{path: "/startupz"})
			var st startupBody
			_ = json.Unmarshal(body, &st)
			if resp.StatusCode != tt.startupStatus || st.Status != tt.startupState || st.Version != version {
				t.Errorf("startupz %d %s", resp.StatusCode, body)
			}
			resp, body = do(t, srv, call{path: "/readyz"})
			var rd readyBody
			_ = json.Unmarshal(body, &rd)
			if resp.StatusCode != tt.readyStatus || strings.Join(rd.Failing, ",") != tt.failing || rd.Ready != (tt.failing == "") {
				t.Errorf("readyz %d %s", resp.StatusCode, body)
			}
		})
	}
}

func TestDrainingRefusesChats(t *testing.T) {
	gw, srv := startGateway(t)
	gw.drain()
	resp, body := do(t, srv, chat(`{"model":"openclaw","messages":[{"role":"user","content":"hi"}]}`, nil))
	want := `{"error":{"message":"Gateway is temporarily unavailable while suspending or restarting","type":"service_unavailable","code":"gateway_unavailable"}}`
	if resp.StatusCode != 503 || string(body) != want || resp.Header.Get("Retry-After") != "1" {
		t.Errorf("%d %s (Retry-After %q)", resp.StatusCode, body, resp.Header.Get("Retry-After"))
	}
}

func TestForwardedHeaders(t *testing.T) {
	tests := []struct {
		name    string
		trusted string
		header  string
		path    string
		want    int
	}{
		{"untrusted XFF on models", "", "X-Forwarded-For", "/v1/models", 403},
		{"untrusted X-Real-IP on readyz", "", "X-Real-IP", "/readyz", 403},
		{"untrusted Forwarded on startupz", "", "Forwarded", "/startupz", 403},
		{"untrusted XFF on an unknown v1 path", "", "X-Forwarded-For", "/v1/responses", 403},
		{"healthz ignores XFF", "", "X-Forwarded-For", "/healthz", 200},
		{"UI ignores XFF", "", "X-Forwarded-For", "/", 200},
		{"trusted loopback proxy", "127.0.0.1", "X-Forwarded-For", "/v1/models", 200},
		{"trusted CIDR", "127.0.0.0/8", "X-Real-IP", "/readyz", 200},
		{"other CIDR is not trusted", "10.0.0.0/8", "X-Forwarded-For", "/v1/models", 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, srv := startGateway(t, func(c *config, _ *gateway) {
				if tt.trusted != "" {
					p, err := parsePrefix(tt.trusted)
					if err != nil {
						t.Fatal(err)
					}
					c.TrustedProxies = []netip.Prefix{p}
				}
			})
			resp, body := do(t, srv, call{path: tt.path, header: map[string]string{
				tt.header: "172.17.0.1", "Authorization": "Bearer " + testToken}})
			if resp.StatusCode != tt.want {
				t.Errorf("status %d, want %d: %s", resp.StatusCode, tt.want, body)
			}
			if tt.want == 403 && !strings.Contains(string(body), `"type":"proxy_attribution_required"`) {
				t.Errorf("body %s", body)
			}
		})
	}
}

func TestEndpointsAndAuthConfig(t *testing.T) {
	tests := []struct {
		name     string
		opt      testOpt
		call     call
		want     int
		wantType string
	}{
		{"chat disabled: POST is not found", func(c *config, _ *gateway) { c.ChatCompletions = false },
			chat(`{"model":"openclaw","messages":[{"role":"user","content":"hi"}]}`, nil), 404, "text/plain; charset=utf-8"},
		{"chat disabled: models falls back to the UI", func(c *config, _ *gateway) { c.ChatCompletions = false },
			call{path: "/v1/models", header: map[string]string{"Authorization": "Bearer " + testToken}}, 200, "text/html; charset=utf-8"},
		{"auth none needs no token", func(_ *config, g *gateway) { g.authMode, g.secret = "none", "" },
			chat(`{"model":"openclaw","messages":[{"role":"user","content":"hi"}]}`, map[string]string{"Authorization": ""}), 200, "application/json; charset=utf-8"},
		{"password mode takes the password as bearer", func(_ *config, g *gateway) { g.authMode, g.secret = "password", "pw" },
			chat(`{"model":"openclaw","messages":[{"role":"user","content":"hi"}]}`, map[string]string{"Authorization": "Bearer pw"}), 200, "application/json; charset=utf-8"},
		{"lower-case bearer scheme", nil,
			call{path: "/v1/models", header: map[string]string{"Authorization": "bearer " + testToken}}, 200, "application/json; charset=utf-8"},
		{"configured agent", func(c *config, _ *gateway) { c.Agents = []string{"support"} },
			chat(`{"model":"openclaw/support","messages":[{"role":"user","content":"hi"}]}`, nil), 200, "application/json; charset=utf-8"},
		{"known model override", func(c *config, _ *gateway) { c.KnownModels["mock/mock-1"] = true },
			chat(`{"model":"openclaw","messages":[{"role":"user","content":"hi"}]}`, map[string]string{"x-openclaw-model": "mock/mock-1"}), 200, "application/json; charset=utf-8"},
		{"non-object body", nil, chat(`[1]`, nil), 400, "application/json; charset=utf-8"},
		{"POST to the UI", nil, call{method: http.MethodPost, path: "/"}, 404, "text/plain; charset=utf-8"},
		{"PUT models", nil, call{method: http.MethodPut, path: "/v1/models", header: map[string]string{"Authorization": "Bearer " + testToken}}, 405, "text/plain; charset=utf-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var opts []testOpt
			if tt.opt != nil {
				opts = append(opts, tt.opt)
			}
			_, srv := startGateway(t, opts...)
			resp, body := do(t, srv, tt.call)
			if resp.StatusCode != tt.want || resp.Header.Get("Content-Type") != tt.wantType {
				t.Errorf("%d %q, want %d %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), tt.want, tt.wantType, body)
			}
		})
	}
}

func TestControlUITerminalFlag(t *testing.T) {
	_, srv := startGateway(t, func(c *config, _ *gateway) { c.TerminalEnabled = false })
	_, body := do(t, srv, call{path: "/anything"})
	if !strings.Contains(string(body), `data-openclaw-terminal-enabled="false"`) {
		t.Errorf("UI does not reflect gateway.terminal.enabled=false: %.200s", body)
	}
}

// TestJSONSyntaxError pins the V8-style messages for malformed bodies.
func TestJSONSyntaxError(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{"model":"openclaw","messages":[{"role":"user","content":"hi"}`, "Expected ',' or ']' after array element in JSON at position 62 (line 1 column 63)"},
		{`{"a":1`, "Expected ',' or '}' after property value in JSON at position 6 (line 1 column 7)"},
		{`{"a"`, "Expected ':' after property name in JSON at position 4 (line 1 column 5)"},
		{`{`, "Expected property name or '}' in JSON at position 1 (line 1 column 2)"},
		{`{"a":1,`, "Expected double-quoted property name in JSON at position 7 (line 1 column 8)"},
		{"{\n\"a\":1 x}", "Expected ',' or '}' after property value in JSON at position 8 (line 2 column 7)"},
		{`{"a":1}x`, "Unexpected non-whitespace character after JSON in JSON at position 7 (line 1 column 8)"},
		{`{} {}`, "Unexpected non-whitespace character after JSON in JSON at position 3 (line 1 column 4)"},
		{`[`, "Unexpected end of JSON input"},
		{`{"a":`, "Unexpected end of JSON input"},
		{``, "Unexpected end of JSON input"},
		{`{"a":"x`, "Unterminated string in JSON at position 7 (line 1 column 8)"},
		{`x`, `Unexpected token 'x', "x" is not valid JSON`},
		{`[1 x]`, "Expected ',' or ']' after array element in JSON at position 3 (line 1 column 4)"},
		{`[1,x]`, `Unexpected token 'x', "[1,x]" is not valid JSON`},
		{`{"a":x}`, `Unexpected token 'x', "{"a":x}" is not valid JSON`},
		{`{"a":[1,{"b":null}],"c":"d"}`, ""},
		{` "just a string" `, ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := jsonSyntaxError([]byte(tt.in)); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestRequestLog checks one line per request with method, path and status, and neither the
// token nor the message text.
func TestRequestLog(t *testing.T) {
	var buf strings.Builder
	gw, srv := startGateway(t)
	gw.log = slog.New(slog.NewJSONHandler(&lockedWriter{w: &buf}, nil))
	do(t, srv, chat(`{"model":"openclaw","messages":[{"role":"user","content":"very-private-words"}]}`, nil))
	out := buf.String()
	for _, want := range []string{`"method":"POST"`, `"path":"/v1/chat/completions"`, `"status":200`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s: %s", want, out)
		}
	}
	for _, secret := range []string{testToken, "very-private-words"} {
		if strings.Contains(out, secret) {
			t.Errorf("log leaks %q: %s", secret, out)
		}
	}
}
