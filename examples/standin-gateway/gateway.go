package main

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// version is the OpenClaw release the stand-in imitates and reports in /startupz.
const version = "2026.9.6"

// maxBodyBytes bounds a chat request body.
const maxBodyBytes = 5 << 20

// Bounds on the in-memory conversation store so a long demo cannot grow without limit.
const (
	maxSessions        = 10000
	maxTurnsPerSession = 100
)

type phase int32

const (
	phaseStarting phase = iota
	phaseStarted
	phaseDraining
)

// gateway is the HTTP side of the stand-in. It is safe for concurrent use.
type gateway struct {
	cfg       *config
	authMode  string // "token", "password" or "none", resolved by run
	secret    string // the token or password callers must present
	readyFail []string
	log       *slog.Logger
	now       func() time.Time
	started   time.Time
	phase     atomic.Int32

	// client calls the model provider (cfg.Upstream); it never uses a proxy from the
	// environment, as the provider is the platform's own endpoint on the bot's network.
	client *http.Client

	mu       sync.Mutex
	sessions map[string]*session
}

// session is one conversation, kept per agent and session key.
type session struct {
	count int    // turns so far, including dropped ones
	turns []turn // the newest maxTurnsPerSession turns
}

type turn struct{ user, assistant string }

func newGateway(cfg *config, authMode, secret string, readyFail []string, log *slog.Logger, now func() time.Time) *gateway {
	return &gateway{
		cfg:       cfg,
		authMode:  authMode,
		secret:    secret,
		readyFail: readyFail,
		log:       log,
		now:       now,
		started:   now(),
		sessions:  map[string]*session{},
		client:    newModelClient(),
	}
}

// markStarted ends the "starting" phase unless the gateway is already draining.
func (g *gateway) markStarted() { g.phase.CompareAndSwap(int32(phaseStarting), int32(phaseStarted)) }

// drain moves the gateway to "draining": probes fail and new chats get 503.
func (g *gateway) drain() { g.phase.Store(int32(phaseDraining)) }

func (g *gateway) currentPhase() phase { return phase(g.phase.Load()) }

func (g *gateway) uptimeMs() int64 { return g.now().Sub(g.started).Milliseconds() }

// apiError is an error a handler returns; ServeHTTP writes it in OpenClaw's shape
// {"error":{"message","type"[,"code"]}}.
type apiError struct {
	status  int
	typ     string
	message string
	code    string
	header  http.Header
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s: %s", e.status, e.typ, e.message) }

func invalidRequest(msg string) *apiError {
	return &apiError{status: http.StatusBadRequest, typ: "invalid_request_error", message: msg}
}

var (
	errUnauthorized = &apiError{status: http.StatusUnauthorized, typ: "unauthorized", message: "Unauthorized"}
	errProxy        = &apiError{status: http.StatusForbidden, typ: "proxy_attribution_required",
		message: "Proxy client attribution is required. Configure gateway.trustedProxies narrowly and make the proxy overwrite or safely rebuild forwarded client headers."}
	errDraining = &apiError{status: http.StatusServiceUnavailable, typ: "service_unavailable",
		message: "Gateway is temporarily unavailable while suspending or restarting", code: "gateway_unavailable",
		header: http.Header{"Retry-After": {"1"}, "Cache-Control": {"no-store"}}}
	errNoUserMessage = invalidRequest("Missing user message in `messages`.")
	errInvalidModel  = invalidRequest("Invalid `model`. Use `openclaw` or `openclaw/<agentId>`.")
	errReservedKey   = invalidRequest("`x-openclaw-session-key` cannot use reserved internal session namespaces.")
	errBodyTooLarge  = &apiError{status: http.StatusRequestEntityTooLarge, typ: "invalid_request_error", message: "Request body too large."}
)

// errMethod is a wrong method: 405 text/plain with Allow, as OpenClaw answers it.
type errMethod struct{ allow string }

func (e errMethod) Error() string { return "method not allowed" }

// errNotFound is answered 404 text/plain.
var errNotFound = errors.New("not found")

// ServeHTTP adds OpenClaw's security headers, routes, turns handler errors into responses
// and logs one line per request (never the token or any message text).
func (g *gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	begin := g.now()
	rec := &statusRecorder{ResponseWriter: w}
	h := rec.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Permissions-Policy", "camera=(), microphone=(self), geolocation=()")

	if err := g.route(rec, r); err != nil {
		g.writeError(rec, err)
	}
	g.log.Info("request", "method", r.Method, "path", r.URL.Path, "status", rec.statusCode(),
		"duration_ms", g.now().Sub(begin).Milliseconds())
}

func (g *gateway) route(w http.ResponseWriter, r *http.Request) error {
	path := r.URL.Path
	switch {
	case path == "/healthz" || path == "/health":
		if err := allow(r, "GET", "HEAD"); err != nil {
			return err
		}
		return g.healthz(w)
	case path == "/startupz":
		return g.probe(w, r, g.startupz)
	case path == "/readyz" || path == "/ready":
		return g.probe(w, r, g.readyz)
	case path == "/v1/chat/completions" && g.cfg.ChatCompletions:
		return g.api(w, r, []string{"POST"}, g.chatCompletions)
	case path == "/v1/models" && g.cfg.ChatCompletions:
		return g.api(w, r, []string{"GET", "HEAD"}, g.listModels)
	case strings.HasPrefix(path, "/v1/models/") && g.cfg.ChatCompletions:
		return g.api(w, r, []string{"GET", "HEAD"}, g.getModel)
	case strings.HasPrefix(path, "/v1/") && g.forwardedUntrusted(r):
		return errProxy
	default:
		return g.controlUI(w, r)
	}
}

func allow(r *http.Request, methods ...string) error {
	if slices.Contains(methods, r.Method) {
		return nil
	}
	return errMethod{allow: strings.Join(methods, ", ")}
}

// probe guards /startupz and /readyz: forwarded headers from an untrusted peer are refused,
// as on /v1/*.
func (g *gateway) probe(w http.ResponseWriter, r *http.Request, h func(http.ResponseWriter, *http.Request) error) error {
	if g.forwardedUntrusted(r) {
		return errProxy
	}
	if err := allow(r, "GET", "HEAD"); err != nil {
		return err
	}
	return h(w, r)
}

// api guards the OpenAI-compatible endpoints: proxy attribution, method, bearer auth and
// draining, in that order.
func (g *gateway) api(w http.ResponseWriter, r *http.Request, methods []string, h func(http.ResponseWriter, *http.Request) error) error {
	if g.forwardedUntrusted(r) {
		return errProxy
	}
	if err := allow(r, methods...); err != nil {
		return err
	}
	if !g.authorized(r) {
		return errUnauthorized
	}
	if g.currentPhase() == phaseDraining {
		return errDraining
	}
	return h(w, r)
}

// forwardedUntrusted reports a request that carries forwarding headers from a peer that
// gateway.trustedProxies does not list.
func (g *gateway) forwardedUntrusted(r *http.Request) bool {
	h := r.Header
	if h.Get("X-Forwarded-For") == "" && h.Get("X-Real-IP") == "" && h.Get("Forwarded") == "" {
		return false
	}
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return true
	}
	ip := peer.Addr().Unmap()
	for _, p := range g.cfg.TrustedProxies {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

func (g *gateway) authorized(r *http.Request) bool {
	if g.authMode == "none" {
		return true
	}
	scheme, cred, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	cred = strings.TrimSpace(cred)
	return subtle.ConstantTimeCompare([]byte(cred), []byte(g.secret)) == 1
}

func (g *gateway) healthz(w http.ResponseWriter) error {
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, struct {
		OK     bool   `json:"ok"`
		Status string `json:"status"`
	}{true, "live"})
	return nil
}

type startupBody struct {
	OK            bool   `json:"ok"`
	Status        string `json:"status"`
	Version       string `json:"version"`
	UptimeMs      int64  `json:"uptimeMs"`
	PendingReason string `json:"pendingReason,omitempty"`
}

func (g *gateway) startupz(w http.ResponseWriter, _ *http.Request) error {
	w.Header().Set("Cache-Control", "no-store")
	body := startupBody{Version: version, UptimeMs: g.uptimeMs()}
	status := http.StatusServiceUnavailable
	switch g.currentPhase() {
	case phaseStarting:
		body.Status, body.PendingReason = "starting", "startup-sidecars"
	case phaseStarted:
		body.OK, body.Status, status = true, "started", http.StatusOK
	case phaseDraining:
		body.Status = "draining"
	}
	writeJSON(w, status, body)
	return nil
}

type readyBody struct {
	Ready     bool       `json:"ready"`
	Failing   []string   `json:"failing"`
	UptimeMs  int64      `json:"uptimeMs"`
	EventLoop *eventLoop `json:"eventLoop,omitempty"`
}

// eventLoop mirrors the diagnostics block of the real /readyz with a calm, fixed sample:
// the stand-in has no event loop to measure.
type eventLoop struct {
	Degraded        bool         `json:"degraded"`
	DegradedSinceMs *int64       `json:"degradedSinceMs"`
	Reasons         []string     `json:"reasons"`
	IntervalMs      float64      `json:"intervalMs"`
	DelayP99Ms      float64      `json:"delayP99Ms"`
	DelayMaxMs      float64      `json:"delayMaxMs"`
	Utilization     float64      `json:"utilization"`
	CPUCoreRatio    float64      `json:"cpuCoreRatio"`
	CPUBreakdown    cpuBreakdown `json:"cpuBreakdown"`
}

type cpuBreakdown struct {
	MainThreadCoreRatio   float64 `json:"mainThreadCoreRatio"`
	HostUtilization       float64 `json:"hostUtilization"`
	HostCPUCount          int     `json:"hostCpuCount"`
	WorkerCoreRatio       float64 `json:"workerCoreRatio"`
	OtherThreadsCoreRatio float64 `json:"otherThreadsCoreRatio"`
}

func (g *gateway) readyz(w http.ResponseWriter, _ *http.Request) error {
	w.Header().Set("Cache-Control", "no-store")
	body := readyBody{
		Failing:  []string{},
		UptimeMs: g.uptimeMs(),
		EventLoop: &eventLoop{Reasons: []string{}, IntervalMs: 1000,
			CPUBreakdown: cpuBreakdown{HostCPUCount: runtime.NumCPU()}},
	}
	switch g.currentPhase() {
	case phaseStarting:
		body.Failing = []string{"startup-sidecars"}
	case phaseDraining:
		body.Failing = []string{"gateway-draining"}
	default:
		body.Failing = append(body.Failing, g.readyFail...)
	}
	body.Ready = len(body.Failing) == 0
	status := http.StatusOK
	if !body.Ready {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, body)
	return nil
}

type model struct {
	ID         string `json:"id"`
	Object     string `json:"object"`
	Created    int64  `json:"created"`
	OwnedBy    string `json:"owned_by"`
	Permission []any  `json:"permission"`
}

// modelIDs lists the agent targets: openclaw, openclaw/default and openclaw/main, then one
// per agents.entries id.
func (g *gateway) modelIDs() []string {
	ids := []string{"openclaw", "openclaw/default", "openclaw/main"}
	for _, a := range g.cfg.Agents {
		if a != "main" && a != "default" {
			ids = append(ids, "openclaw/"+a)
		}
	}
	return ids
}

func newModel(id string) model {
	return model{ID: id, Object: "model", OwnedBy: "openclaw", Permission: []any{}}
}

func (g *gateway) listModels(w http.ResponseWriter, _ *http.Request) error {
	data := []model{}
	for _, id := range g.modelIDs() {
		data = append(data, newModel(id))
	}
	writeJSON(w, http.StatusOK, struct {
		Object string  `json:"object"`
		Data   []model `json:"data"`
	}{"list", data})
	return nil
}

func (g *gateway) getModel(w http.ResponseWriter, r *http.Request) error {
	id := strings.TrimPrefix(r.URL.Path, "/v1/models/")
	if !slices.Contains(g.modelIDs(), id) {
		return invalidRequest("Invalid model id.")
	}
	writeJSON(w, http.StatusOK, newModel(id))
	return nil
}

// resolveAgent maps a chat `model` to an agent id: openclaw, openclaw/default and
// openclaw/main are the main agent; openclaw/<id> must name an agents.entries id.
func (g *gateway) resolveAgent(m string) (string, error) {
	if m == "openclaw" {
		return "main", nil
	}
	id, ok := strings.CutPrefix(m, "openclaw/")
	if !ok || id == "" {
		return "", errInvalidModel
	}
	if id == "main" || id == "default" || slices.Contains(g.cfg.Agents, id) {
		if id == "default" {
			id = "main"
		}
		return id, nil
	}
	return "", invalidRequest(fmt.Sprintf("Unknown agent '%s'.", id))
}

type chatMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

// text returns the message's text: a string content, or the text parts of an array content.
func (m chatMessage) text() string {
	var s string
	if json.Unmarshal(m.Content, &s) == nil {
		return s
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if json.Unmarshal(m.Content, &parts) != nil {
		return ""
	}
	var texts []string
	for _, p := range parts {
		if (p.Type == "text" || p.Type == "input_text") && p.Text != "" {
			texts = append(texts, p.Text)
		}
	}
	return strings.Join(texts, "\n")
}

type chatRequest struct {
	model         string
	messages      []chatMessage
	stream        bool
	includeUsage  bool
	user          string
	modelOverride string
	sessionHeader string
}

// decodeChat validates the body the way OpenClaw does: JSON syntax (with V8's error text),
// then `model`, then a user message in `messages`. Fields of the wrong type count as absent.
func (g *gateway) decodeChat(r *http.Request) (*chatRequest, error) {
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBodyBytes))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return nil, errBodyTooLarge
	}
	if err != nil {
		return nil, invalidRequest("Could not read the request body.")
	}
	if msg := jsonSyntaxError(body); msg != "" {
		return nil, invalidRequest(msg)
	}
	var fields map[string]json.RawMessage
	_ = json.Unmarshal(body, &fields) // a non-object body leaves fields empty
	req := &chatRequest{model: "openclaw"}
	if raw, ok := fields["model"]; ok && string(raw) != "null" {
		if json.Unmarshal(raw, &req.model) != nil {
			return nil, errInvalidModel
		}
	}
	_ = json.Unmarshal(fields["messages"], &req.messages)
	_ = json.Unmarshal(fields["stream"], &req.stream)
	_ = json.Unmarshal(fields["user"], &req.user)
	var opts struct {
		IncludeUsage bool `json:"include_usage"`
	}
	_ = json.Unmarshal(fields["stream_options"], &opts)
	req.includeUsage = opts.IncludeUsage
	req.modelOverride = strings.TrimSpace(r.Header.Get("X-Openclaw-Model"))
	req.sessionHeader = strings.TrimSpace(r.Header.Get("X-Openclaw-Session-Key"))
	return req, nil
}

// lastUserText is the newest user message with text, the turn's input.
func lastUserText(msgs []chatMessage) string {
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].Role == "user" {
			if t := strings.TrimSpace(msgs[i].text()); t != "" {
				return t
			}
		}
	}
	return ""
}

// reservedSessionPrefixes are internal namespaces a client may not address. Only subagent:
// is confirmed against the real gateway.
var reservedSessionPrefixes = []string{"subagent:"}

type usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

// chatCompletions answers with "echo: <last user message> (turn N)", N counting the turns of
// the session. Usage counts words: prompt = the session's earlier turns plus every message of
// this request, completion = the reply.
func (g *gateway) chatCompletions(w http.ResponseWriter, r *http.Request) error {
	req, err := g.decodeChat(r)
	if err != nil {
		return err
	}
	agent, err := g.resolveAgent(req.model)
	if err != nil {
		return err
	}
	input := lastUserText(req.messages)
	if input == "" {
		return errNoUserMessage
	}
	key := ""
	switch {
	case req.sessionHeader != "":
		lower := strings.ToLower(req.sessionHeader)
		for _, p := range reservedSessionPrefixes {
			if strings.HasPrefix(lower, p) {
				return errReservedKey
			}
		}
		key = agent + "\x00key\x00" + req.sessionHeader
	case req.user != "":
		key = agent + "\x00user\x00" + req.user
	}
	if req.modelOverride != "" && !g.cfg.KnownModels[req.modelOverride] {
		provider, _, _ := strings.Cut(req.modelOverride, "/")
		return &apiError{status: http.StatusNotFound, typ: "invalid_request_error", message: fmt.Sprintf(
			"Unknown model: %s. Run `openclaw models list --refresh --provider %s` to inspect this provider's model choices, then retry with a model supported by your account.",
			req.modelOverride, provider)}
	}

	if g.cfg.Upstream != nil {
		return g.upstreamChat(w, r, req, key, input)
	}

	prompt := 0
	for _, m := range req.messages {
		prompt += wordCount(m.text())
	}
	turnNo, history := g.recordTurn(key, input)
	reply := replyText(input, turnNo)
	u := usage{PromptTokens: prompt + history, CompletionTokens: wordCount(reply)}
	u.TotalTokens = u.PromptTokens + u.CompletionTokens

	id := "chatcmpl_" + newUUID()
	created := g.now().Unix()
	if req.stream {
		return g.streamChat(w, id, created, req.model, reply, req.includeUsage, u)
	}
	writeJSON(w, http.StatusOK, chatCompletion{
		ID: id, Object: "chat.completion", Created: created, Model: req.model,
		Choices: []chatChoice{{Message: chatReply{Role: "assistant", Content: reply}, FinishReason: "stop"}},
		Usage:   u,
	})
	return nil
}

// recordTurn appends a turn to the session named by key (none: a fresh one-off session) and
// returns the turn's number and the word count of the session's earlier turns.
func (g *gateway) recordTurn(key, input string) (turnNo, historyWords int) {
	if key == "" {
		return 1, 0
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.sessionLocked(key)
	for _, t := range s.turns {
		historyWords += wordCount(t.user) + wordCount(t.assistant)
	}
	s.count++
	s.turns = append(s.turns, turn{user: input, assistant: replyText(input, s.count)})
	if len(s.turns) > maxTurnsPerSession {
		s.turns = s.turns[1:]
	}
	return s.count, historyWords
}

// sessionLocked is the session named by key, made (evicting an arbitrary one when there
// are maxSessions) if there is none. g.mu is held.
func (g *gateway) sessionLocked(key string) *session {
	s, ok := g.sessions[key]
	if !ok {
		if len(g.sessions) >= maxSessions {
			for k := range g.sessions {
				delete(g.sessions, k)
				break
			}
		}
		s = &session{}
		g.sessions[key] = s
	}
	return s
}

// history returns a copy of the turns kept for the session named by key (none for "").
func (g *gateway) history(key string) []turn {
	if key == "" {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if s, ok := g.sessions[key]; ok {
		return append([]turn(nil), s.turns...)
	}
	return nil
}

// appendTurn keeps a turn the model answered in the session named by key (none for "").
func (g *gateway) appendTurn(key, user, assistant string) {
	if key == "" {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.sessionLocked(key)
	s.count++
	s.turns = append(s.turns, turn{user: user, assistant: assistant})
	if len(s.turns) > maxTurnsPerSession {
		s.turns = s.turns[1:]
	}
}

// replyText is the stand-in's deterministic answer to input on turn n of a session.
func replyText(input string, n int) string { return fmt.Sprintf("echo: %s (turn %d)", input, n) }

func wordCount(s string) int { return len(strings.Fields(s)) }

type chatCompletion struct {
	ID      string       `json:"id"`
	Object  string       `json:"object"`
	Created int64        `json:"created"`
	Model   string       `json:"model"`
	Choices []chatChoice `json:"choices"`
	Usage   usage        `json:"usage"`
}

type chatChoice struct {
	Index        int       `json:"index"`
	Message      chatReply `json:"message"`
	FinishReason string    `json:"finish_reason"`
}

type chatReply struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type chunk struct {
	ID      string        `json:"id"`
	Object  string        `json:"object"`
	Created int64         `json:"created"`
	Model   string        `json:"model"`
	Choices []chunkChoice `json:"choices"`
	Usage   *usage        `json:"usage,omitempty"`
}

type chunkChoice struct {
	Index        int     `json:"index"`
	Delta        delta   `json:"delta"`
	FinishReason *string `json:"finish_reason"`
}

type delta struct {
	Role    string `json:"role,omitempty"`
	Content string `json:"content,omitempty"`
}

// startStream answers 200 with OpenClaw's SSE headers and returns what sends one event
// ("data: <json>") and flushes it, and what ends the stream with "data: [DONE]".
func startStream(w http.ResponseWriter) (send func(v any) error, done func()) {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	send = func(v any) error {
		if _, err := fmt.Fprintf(w, "data: %s\n\n", marshal(v)); err != nil {
			return fmt.Errorf("write stream chunk: %w", err)
		}
		return rc.Flush()
	}
	done = func() {
		_, _ = io.WriteString(w, "data: [DONE]\n\n")
		_ = rc.Flush()
	}
	return send, done
}

// streamChat writes the reply as OpenClaw's SSE: a role delta, one content delta per word
// (" word" after the first), a finish chunk, a usage chunk when asked, then [DONE].
func (g *gateway) streamChat(w http.ResponseWriter, id string, created int64, modelID, reply string, includeUsage bool, u usage) error {
	send, done := startStream(w)
	base := func(choices ...chunkChoice) chunk {
		return chunk{ID: id, Object: "chat.completion.chunk", Created: created, Model: modelID, Choices: choices}
	}
	if err := send(base(chunkChoice{Delta: delta{Role: "assistant"}})); err != nil {
		return nil // the client went away; nothing more to say
	}
	for i, word := range strings.Fields(reply) {
		if i > 0 {
			word = " " + word
		}
		if err := send(base(chunkChoice{Delta: delta{Content: word}})); err != nil {
			return nil
		}
	}
	stop := "stop"
	if err := send(base(chunkChoice{FinishReason: &stop})); err != nil {
		return nil
	}
	if includeUsage {
		c := base()
		c.Choices = []chunkChoice{}
		c.Usage = &u
		if err := send(c); err != nil {
			return nil
		}
	}
	done()
	return nil
}

// controlUIHTML stands in for the Control UI's index.html. Its opening matches the real one
// up to the build id; the rest is a short notice.
const controlUIHTML = `<!doctype html>
<html data-openclaw-control-ui-base-path="" data-openclaw-terminal-enabled="%t" data-openclaw-control-ui-build-id="%s-standin" lang="en">
  <head>
    <meta charset="UTF-8" />
    <title>OpenClaw Control (stand-in)</title>
  </head>
  <body>
    <p>This is the OpenClaw stand-in gateway used for tests and offline demos. It has no Control UI.</p>
  </body>
</html>
`

const controlUICSP = "default-src 'self'; base-uri 'none'; object-src 'none'; frame-ancestors 'none'; frame-src 'self' http: https:; script-src 'self' 'sha256-g30CWRMlZumMHvjOkMce6NnzY9k1/zZU+9vzyMq8ETQ=' 'sha256-L6xeA4XnuquPxjSq0zkDDAXzWgCngcLdAr9Hgdf/GYU=' 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline' https://fonts.googleapis.com; img-src 'self' data: blob: https:; media-src 'self' data: blob:; font-src 'self' https://fonts.gstatic.com; worker-src 'self'; connect-src 'self' ws: wss: data: https://api.openai.com https://tweakcn.com http://127.0.0.1:* https://127.0.0.1:*"

// controlUI is the SPA fallback: "/" and every unknown path answer the UI's HTML with 200.
func (g *gateway) controlUI(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return errNotFound
	}
	body := fmt.Sprintf(controlUIHTML, g.cfg.TerminalEnabled, version)
	h := w.Header()
	h.Set("Permissions-Policy", "camera=(self), microphone=*, geolocation=*, clipboard-write=*")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", controlUICSP)
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("Vary", "Accept-Encoding")
	h.Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, body)
	return nil
}

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Message string `json:"message"`
	Type    string `json:"type"`
	Code    string `json:"code,omitempty"`
}

func (g *gateway) writeError(w http.ResponseWriter, err error) {
	var ae *apiError
	var em errMethod
	switch {
	case errors.As(err, &ae):
		for k, v := range ae.header {
			w.Header()[k] = v
		}
		writeJSON(w, ae.status, errorBody{errorDetail{ae.message, ae.typ, ae.code}})
	case errors.As(err, &em):
		w.Header().Set("Allow", em.allow)
		writeText(w, http.StatusMethodNotAllowed, "Method Not Allowed")
	case errors.Is(err, errNotFound):
		writeText(w, http.StatusNotFound, "Not Found")
	default:
		g.log.Error("request failed", "err", err)
		writeText(w, http.StatusInternalServerError, "Internal Server Error")
	}
}

// marshal encodes like JavaScript's JSON.stringify: no HTML escaping, no trailing newline.
func marshal(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(fmt.Sprintf("marshal %T: %v", v, err)) // only fixed, encodable types reach here
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b := marshal(v)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", fmt.Sprint(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func writeText(w http.ResponseWriter, status int, s string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Content-Length", fmt.Sprint(len(s)))
	w.WriteHeader(status)
	_, _ = io.WriteString(w, s)
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// statusRecorder remembers the status for the request log and lets
// http.ResponseController reach the underlying writer's Flush.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *statusRecorder) statusCode() int {
	if s.status == 0 {
		return http.StatusOK
	}
	return s.status
}

// jsonSyntaxError returns "" for valid JSON, else the message V8's JSON.parse gives for the
// common cases (the real gateway passes it through): "Expected ',' or ']' after array element
// in JSON at position 62 (line 1 column 63)" and friends.
func jsonSyntaxError(body []byte) string {
	type frame struct {
		array    bool
		afterKey bool // object: a key was read, its value is pending
	}
	var stack []frame
	seenValue := false
	dec := json.NewDecoder(bytes.NewReader(body))
	for {
		before := dec.InputOffset()
		tok, err := dec.Token()
		if err == io.EOF && len(stack) == 0 {
			if !seenValue {
				return "Unexpected end of JSON input"
			}
			return ""
		}
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return "Unterminated string" + at(body, len(body))
			}
			// The decoder's own offsets are inconsistent; find the offending byte from
			// where the failed token began, past a separator the state allows.
			pos := skipSpace(body, int(before))
			var se *json.SyntaxError
			eof := !errors.As(err, &se)
			if eof {
				pos = len(body)
			} else if pos < len(body) && len(stack) > 0 {
				top := stack[len(stack)-1]
				prev := lastSignificant(body[:pos])
				afterElem := top.array && prev != '[' && prev != ','
				afterValue := !top.array && !top.afterKey && prev != '{' && prev != ','
				if (body[pos] == ',' && (afterElem || afterValue)) || (body[pos] == ':' && !top.array && top.afterKey) {
					pos = skipSpace(body, pos+1)
				}
			}
			last := lastSignificant(body[:min(pos, len(body))])
			switch {
			case len(stack) == 0 && seenValue:
				return "Unexpected non-whitespace character after JSON" + at(body, pos)
			case len(stack) == 0:
			case stack[len(stack)-1].array && last != '[' && last != ',':
				return "Expected ',' or ']' after array element" + at(body, pos)
			case !stack[len(stack)-1].array && last == '{':
				return "Expected property name or '}'" + at(body, pos)
			case !stack[len(stack)-1].array && last == ',':
				return "Expected double-quoted property name" + at(body, pos)
			case !stack[len(stack)-1].array && stack[len(stack)-1].afterKey && last != ':':
				return "Expected ':' after property name" + at(body, pos)
			case !stack[len(stack)-1].array && !stack[len(stack)-1].afterKey:
				return "Expected ',' or '}' after property value" + at(body, pos)
			}
			if pos >= len(body) {
				return "Unexpected end of JSON input"
			}
			snippet := string(body)
			if len(snippet) > 40 {
				snippet = string(body[max(0, pos-10):min(len(body), pos+10)])
			}
			return fmt.Sprintf("Unexpected token '%c', \"%s\" is not valid JSON", body[pos], snippet)
		}
		if len(stack) == 0 && seenValue {
			return "Unexpected non-whitespace character after JSON" + at(body, skipSpace(body, int(before)))
		}
		// Record what the token did to the nesting state.
		isKey := len(stack) > 0 && !stack[len(stack)-1].array && !stack[len(stack)-1].afterKey
		switch tok {
		case json.Delim('{'), json.Delim('['):
			if len(stack) > 0 && !stack[len(stack)-1].array {
				stack[len(stack)-1].afterKey = false
			}
			stack = append(stack, frame{array: tok == json.Delim('[')})
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
			if len(stack) == 0 {
				seenValue = true
			}
		default:
			switch {
			case len(stack) == 0:
				seenValue = true
			case isKey:
				stack[len(stack)-1].afterKey = true
			case !stack[len(stack)-1].array:
				stack[len(stack)-1].afterKey = false
			}
		}
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

func lastSignificant(b []byte) byte {
	for i := len(b) - 1; i >= 0; i-- {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			continue
		}
		return b[i]
	}
	return 0
}

// at formats V8's " in JSON at position P (line L column C)".
func at(body []byte, pos int) string {
	line, col := 1, 1
	for _, c := range body[:min(pos, len(body))] {
		if c == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return fmt.Sprintf(" in JSON at position %d (line %d column %d)", pos, line, col)
}

var (
	_ http.Handler = (*gateway)(nil)
	_ error        = (*apiError)(nil)
)
