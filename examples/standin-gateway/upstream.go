package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Defaults for a provider the config leaves them unset for.
const (
	defaultModelTimeout = 120 * time.Second // OpenClaw's implicit model call watchdog
	defaultMaxTokens    = 4096
	anthropicVersion    = "2023-06-01"
	// systemPrompt stands in for OpenClaw's (much larger) agent system prompt.
	systemPrompt = "You are a stand-in OpenClaw agent."
)

// upstream is a model provider from models.providers, the one chat turns go to.
type upstream struct {
	Provider  string // the id under models.providers, e.g. "anthropic"
	Model     string // the model id after "provider/" in agents.defaults.model.primary
	API       string // models.providers.<id>.api; "" picks by Provider
	BaseURL   string
	APIKey    string // after ${VAR} expansion; never logged
	MaxTokens int
	Timeout   time.Duration
}

// wire returns the API the stand-in speaks to this provider: "anthropic-messages" or
// "openai-completions". Other adapters are sent Chat Completions, the shape most
// OpenAI-compatible servers take.
func (u *upstream) wire() string {
	switch {
	case u.API == "anthropic-messages", u.API == "" && u.Provider == "anthropic":
		return "anthropic-messages"
	}
	return "openai-completions"
}

func (u *upstream) timeout() time.Duration {
	if u.Timeout > 0 {
		return u.Timeout
	}
	return defaultModelTimeout
}

// modelReply is what a provider answered to one turn.
type modelReply struct {
	text  string
	usage usage
	done  bool // the answer ended as the API ends a whole answer
}

// errUpstream is a model call that failed; chat answers it as a 502 or 504.
type errUpstream struct {
	status  int    // the provider's status; 0 when it never answered
	message string // the provider's own error message, if it gave one
	timeout bool
	cut     bool // the provider answered 200 and its answer broke off or was not readable
	err     error
}

func (e *errUpstream) Error() string {
	switch {
	case e.timeout:
		return "model call timed out"
	case e.cut:
		return fmt.Sprintf("model answer broke off: %v", e.err)
	case e.status != 0:
		return fmt.Sprintf("model provider answered %d: %s", e.status, e.message)
	}
	return fmt.Sprintf("model call failed: %v", e.err)
}

func (e *errUpstream) Unwrap() error { return e.err }

// apiError turns a failed model call into the gateway's error answer: 504 for a timeout,
// 502 for everything else, saying what the provider said.
func (e *errUpstream) apiError(u *upstream) *apiError {
	switch {
	case e.timeout:
		return &apiError{status: http.StatusGatewayTimeout, typ: "timeout",
			message: fmt.Sprintf("The model call to %s timed out after %s.", u.Provider, u.timeout())}
	case e.cut:
		return &apiError{status: http.StatusBadGateway, typ: "upstream_error",
			message: fmt.Sprintf("The answer from the model provider %s broke off.", u.Provider)}
	case e.status != 0:
		msg := fmt.Sprintf("The model provider %s answered %d %s", u.Provider, e.status, http.StatusText(e.status))
		if e.message != "" {
			msg += ": " + e.message
		}
		return &apiError{status: http.StatusBadGateway, typ: "upstream_error", message: msg}
	}
	return &apiError{status: http.StatusBadGateway, typ: "upstream_error",
		message: fmt.Sprintf("The model provider %s could not be reached.", u.Provider)}
}

type upstreamMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// newModelRequest builds the provider call for the conversation msgs.
func newModelRequest(ctx context.Context, u *upstream, msgs []upstreamMessage, stream bool) (*http.Request, error) {
	base := strings.TrimRight(u.BaseURL, "/")
	var url string
	var body any
	maxTokens := u.MaxTokens
	if maxTokens == 0 {
		maxTokens = defaultMaxTokens
	}
	if u.wire() == "anthropic-messages" {
		url = base + "/v1/messages"
		body = map[string]any{"model": u.Model, "max_tokens": maxTokens, "system": systemPrompt,
			"messages": msgs, "stream": stream}
	} else {
		url = base + "/chat/completions"
		all := append([]upstreamMessage{{Role: "system", Content: systemPrompt}}, msgs...)
		b := map[string]any{"model": u.Model, "max_tokens": maxTokens, "messages": all, "stream": stream}
		if stream {
			b["stream_options"] = map[string]bool{"include_usage": true}
		}
		body = b
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(marshal(body)))
	if err != nil {
		return nil, fmt.Errorf("model request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if stream {
		req.Header.Set("Accept", "text/event-stream")
	}
	if u.wire() == "anthropic-messages" {
		req.Header.Set("X-Api-Key", u.APIKey)
		req.Header.Set("Anthropic-Version", anthropicVersion)
	} else {
		req.Header.Set("Authorization", "Bearer "+u.APIKey)
	}
	return req, nil
}

// upstreamErrorMessage reads the message of a provider's error body: Anthropic's
// {"type":"error","error":{"type","message"}} or OpenAI's {"error":{"message",…}}.
func upstreamErrorMessage(body []byte) string {
	var v struct {
		Error struct {
			Type    string `json:"type"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &v) != nil {
		return ""
	}
	msg := v.Error.Message
	if len(msg) > 500 {
		msg = msg[:500] + "…"
	}
	return msg
}

// anthropicUsage and chatUsage are the providers' usage objects; toUsage maps them to the
// OpenAI-compatible usage the gateway answers with (prompt = all input tokens, cached ones
// included).
type anthropicUsage struct {
	InputTokens              *int `json:"input_tokens"`
	OutputTokens             *int `json:"output_tokens"`
	CacheReadInputTokens     *int `json:"cache_read_input_tokens"`
	CacheCreationInputTokens *int `json:"cache_creation_input_tokens"`
}

// merge takes the fields set in n: message_delta carries only output_tokens.
func (a *anthropicUsage) merge(n anthropicUsage) {
	for _, f := range []struct{ dst, src **int }{{&a.InputTokens, &n.InputTokens},
		{&a.OutputTokens, &n.OutputTokens}, {&a.CacheReadInputTokens, &n.CacheReadInputTokens},
		{&a.CacheCreationInputTokens, &n.CacheCreationInputTokens}} {
		if *f.src != nil {
			*f.dst = *f.src
		}
	}
}

func val(p *int) int {
	if p == nil || *p < 0 {
		return 0
	}
	return *p
}

func (a anthropicUsage) toUsage() usage {
	u := usage{PromptTokens: val(a.InputTokens) + val(a.CacheReadInputTokens) + val(a.CacheCreationInputTokens),
		CompletionTokens: val(a.OutputTokens)}
	u.TotalTokens = u.PromptTokens + u.CompletionTokens
	return u
}

type chatUsage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
}

func (c chatUsage) toUsage() usage {
	u := usage{PromptTokens: max(c.PromptTokens, 0), CompletionTokens: max(c.CompletionTokens, 0)}
	u.TotalTokens = u.PromptTokens + u.CompletionTokens
	return u
}

// parseWholeAnswer reads a non-streaming 200 answer of api.
func parseWholeAnswer(api string, body []byte) (modelReply, error) {
	if api == "anthropic-messages" {
		var v struct {
			Content []struct {
				Type string `json:"type"`
				Text string `json:"text"`
			} `json:"content"`
			Usage anthropicUsage `json:"usage"`
		}
		if err := json.Unmarshal(body, &v); err != nil {
			return modelReply{}, fmt.Errorf("parse the model's answer: %w", err)
		}
		var text strings.Builder
		for _, c := range v.Content {
			if c.Type == "text" {
				text.WriteString(c.Text)
			}
		}
		return modelReply{text: text.String(), usage: v.Usage.toUsage(), done: true}, nil
	}
	var v struct {
		Choices []struct {
			Message struct {
				Content *string `json:"content"`
			} `json:"message"`
		} `json:"choices"`
		Usage chatUsage `json:"usage"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return modelReply{}, fmt.Errorf("parse the model's answer: %w", err)
	}
	r := modelReply{usage: v.Usage.toUsage(), done: true}
	if len(v.Choices) > 0 && v.Choices[0].Message.Content != nil {
		r.text = *v.Choices[0].Message.Content
	}
	return r, nil
}

// readModelStream reads a provider's SSE answer of api, calling onDelta with each piece of
// text as it arrives. The reply is done only when the stream ended as the API ends a whole
// answer (Anthropic message_stop, OpenAI [DONE]); otherwise the error says why it stopped. An
// error of onDelta (the client went away) stops the read and is returned.
func readModelStream(api string, r io.Reader, onDelta func(string) error) (modelReply, error) {
	sse := newSSEReader(r)
	var reply modelReply
	var text strings.Builder
	var au anthropicUsage
	for {
		ev, err := sse.next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF // the stream ended before its last event
			}
			reply.text = text.String()
			return reply, fmt.Errorf("read the model's stream: %w", err)
		}
		var delta string
		if api == "anthropic-messages" {
			var v struct {
				Type    string `json:"type"`
				Message struct {
					Usage anthropicUsage `json:"usage"`
				} `json:"message"`
				Delta struct {
					Type string `json:"type"`
					Text string `json:"text"`
				} `json:"delta"`
				Usage anthropicUsage `json:"usage"`
				Error struct {
					Type    string `json:"type"`
					Message string `json:"message"`
				} `json:"error"`
			}
			if json.Unmarshal([]byte(ev.data), &v) != nil {
				continue // not JSON: ignored, as unknown events are
			}
			switch v.Type {
			case "message_start":
				au.merge(v.Message.Usage)
			case "content_block_delta":
				if v.Delta.Type == "text_delta" {
					delta = v.Delta.Text
				}
			case "message_delta":
				au.merge(v.Usage)
			case "message_stop":
				reply.usage, reply.done = au.toUsage(), true
				reply.text = text.String()
				return reply, nil
			case "error":
				return reply, fmt.Errorf("the model's stream broke off: %s: %s", v.Error.Type, v.Error.Message)
			}
			reply.usage = au.toUsage()
		} else {
			if ev.data == "[DONE]" {
				reply.done = true
				reply.text = text.String()
				return reply, nil
			}
			var v struct {
				Choices []struct {
					Delta struct {
						Content string `json:"content"`
					} `json:"delta"`
				} `json:"choices"`
				Usage *chatUsage `json:"usage"`
				Error *struct {
					Message string `json:"message"`
				} `json:"error"`
			}
			if json.Unmarshal([]byte(ev.data), &v) != nil {
				continue
			}
			if v.Error != nil {
				return reply, fmt.Errorf("the model's stream broke off: %s", v.Error.Message)
			}
			if len(v.Choices) > 0 {
				delta = v.Choices[0].Delta.Content
			}
			if v.Usage != nil {
				reply.usage = v.Usage.toUsage()
			}
		}
		if delta != "" {
			if text.Len()+len(delta) > maxSSEEvent {
				return reply, fmt.Errorf("read the model's stream: %w: answer over %d bytes", errSSETooLong, maxSSEEvent)
			}
			text.WriteString(delta)
			if err := onDelta(delta); err != nil {
				return reply, err
			}
		}
	}
}

// maxModelAnswer bounds a non-streaming answer read from the provider.
const maxModelAnswer = 8 << 20

// newModelClient is the HTTP client for model calls: no proxy, bounded connection set-up. The
// whole call is bounded by the provider's timeout through its context.
func newModelClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	return &http.Client{Transport: t}
}

// upstreamChat sends the turn to the configured provider, with the session's kept history, and
// answers with the provider's text and usage: a chat.completion, or when the client streams,
// the provider's deltas relayed as chat.completion.chunk events as they arrive. A provider
// error, an unreachable provider or a timeout is a 502/504 error answer; a stream that breaks
// off after it started ends with an error event and no [DONE]. Only whole answers are kept in
// the session.
func (g *gateway) upstreamChat(w http.ResponseWriter, r *http.Request, req *chatRequest, key, input string) error {
	u := g.cfg.Upstream
	var msgs []upstreamMessage
	for _, t := range g.history(key) {
		msgs = append(msgs, upstreamMessage{"user", t.user}, upstreamMessage{"assistant", t.assistant})
	}
	msgs = append(msgs, upstreamMessage{"user", input})

	ctx, cancel := context.WithTimeout(r.Context(), u.timeout())
	defer cancel()
	mreq, err := newModelRequest(ctx, u, msgs, req.stream)
	if err != nil {
		return err
	}
	failed := func(err error) error {
		var ue *errUpstream
		if !errors.As(err, &ue) {
			ue = &errUpstream{err: err}
		}
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			ue.timeout = true
		}
		g.log.Warn("model call failed", "provider", u.Provider, "model", u.Model,
			"upstream_status", ue.status, "timeout", ue.timeout)
		return ue.apiError(u)
	}
	resp, err := g.client.Do(mreq)
	if err != nil {
		return failed(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return failed(&errUpstream{status: resp.StatusCode, message: upstreamErrorMessage(body)})
	}

	id := "chatcmpl_" + newUUID()
	created := g.now().Unix()
	if !req.stream {
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxModelAnswer))
		if err != nil {
			return failed(&errUpstream{cut: true, err: err})
		}
		reply, err := parseWholeAnswer(u.wire(), body)
		if err != nil {
			return failed(&errUpstream{cut: true, err: err})
		}
		g.appendTurn(key, input, reply.text)
		writeJSON(w, http.StatusOK, chatCompletion{
			ID: id, Object: "chat.completion", Created: created, Model: req.model,
			Choices: []chatChoice{{Message: chatReply{Role: "assistant", Content: reply.text}, FinishReason: "stop"}},
			Usage:   reply.usage,
		})
		return nil
	}

	send, done := startStream(w)
	base := func(choices ...chunkChoice) chunk {
		return chunk{ID: id, Object: "chat.completion.chunk", Created: created, Model: req.model, Choices: choices}
	}
	if send(base(chunkChoice{Delta: delta{Role: "assistant"}})) != nil {
		return nil // the client went away
	}
	var clientGone error
	reply, err := readModelStream(u.wire(), resp.Body, func(d string) error {
		clientGone = send(base(chunkChoice{Delta: delta{Content: d}}))
		return clientGone
	})
	if clientGone != nil {
		return nil
	}
	if err != nil {
		ae := failed(&errUpstream{cut: true, err: err}).(*apiError)
		_ = send(errorBody{errorDetail{ae.message, ae.typ, ""}})
		return nil // no [DONE]: the client sees the answer did not finish
	}
	g.appendTurn(key, input, reply.text)
	stop := "stop"
	if send(base(chunkChoice{FinishReason: &stop})) != nil {
		return nil
	}
	if req.includeUsage {
		c := base()
		c.Choices = []chunkChoice{}
		c.Usage = &reply.usage
		if send(c) != nil {
			return nil
		}
	}
	done()
	return nil
}
