package modelgate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/prices"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// apiCase is one API shape: where the bot calls it, and what it sends.
type apiCase struct {
	name, path, upstreamPath, provider, api, model string
}

var apiCases = []apiCase{
	{"anthropic", "/anthropic/v1/messages", "/anthropic/v1/messages", wire.ProviderAnthropic, apiMessages, "claude-sonnet-4-6"},
	{"chat", "/openai/v1/chat/completions", "/openai/v1/chat/completions", wire.ProviderOpenAI, apiChat, "gpt-4o"},
	{"responses", "/openai/v1/responses", "/openai/v1/responses", wire.ProviderOpenAI, apiResponses, "gpt-4o"},
}

func (c apiCase) body(stream bool) string {
	if c.api == apiResponses {
		return fmt.Sprintf(`{"model":%q,"input":"Say hello","stream":%t}`, c.model, stream)
	}
	return fmt.Sprintf(`{"model":%q,"max_tokens":256,"messages":[{"role":"user","content":"Say hello"}],"stream":%t}`, c.model, stream)
}

func (c apiCase) token() string { return tokenA }

// wantTokens is what every fake answer used, as the gate must record it.
func (c apiCase) wantTokens(stream bool) wire.Tokens {
	t := wire.Tokens{Input: 25, Output: 12, CacheRead: 100}
	if c.api == apiMessages && stream {
		t.CacheWrite = 7
	}
	return t
}

func TestForward(t *testing.T) {
	for _, ac := range apiCases {
		for _, stream := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/stream=%t", ac.name, stream), func(t *testing.T) {
				r := newRig(t, nil)
				got := r.call(t, t.Context(), ac.path+"?beta=true", ac.token(), ac.body(stream), "X-Bot-Header", "kept")
				if got.status != 200 || got.readErr != nil {
					t.Fatalf("status %d, read error %v: %s", got.status, got.readErr, got.body)
				}
				want := wholeBody(ac.api, true)
				if stream {
					want = strings.Join(streamEvents(ac.api, true), "")
				}
				if got.body != want {
					t.Errorf("the bot got\n%s\nwant the provider's answer unchanged\n%s", got.body, want)
				}
				if got.header.Get("X-Upstream") != "yes" {
					t.Errorf("provider's header not passed through: %v", got.header)
				}
				reqs := r.p.received()
				if len(reqs) != 1 {
					t.Fatalf("provider got %d requests", len(reqs))
				}
				up := reqs[0]
				if up.path != ac.upstreamPath || up.query != "beta=true" {
					t.Errorf("upstream path %s?%s, want %s?beta=true", up.path, up.query, ac.upstreamPath)
				}
				if ac.provider == wire.ProviderAnthropic {
					if up.header.Get("X-Api-Key") != anthropicKey || up.header.Get("Authorization") != "" {
						t.Errorf("anthropic got x-api-key %q, authorization %q", up.header.Get("X-Api-Key"), up.header.Get("Authorization"))
					}
					if up.header.Get("Anthropic-Version") != "2023-06-01" {
						t.Errorf("anthropic-version not passed")
					}
				} else if up.header.Get("Authorization") != "Bearer "+openaiKey || up.header.Get("X-Api-Key") != "" {
					t.Errorf("openai got authorization %q", up.header.Get("Authorization"))
				}
				if up.header.Get("X-Bot-Header") != "kept" {
					t.Errorf("bot's header not passed")
				}
				if v := up.header.Get("X-Forwarded-For"); v != "" {
					t.Errorf("X-Forwarded-For added: %q", v)
				}
				if strings.Contains(fmt.Sprint(up.header), tokenA) {
					t.Errorf("the bot's token reached the provider")
				}
				if ac.api == apiChat && stream {
					var b struct {
						StreamOptions struct {
							IncludeUsage bool `json:"include_usage"`
						} `json:"stream_options"`
						Messages []any `json:"messages"`
					}
					if err := json.Unmarshal(up.body, &b); err != nil || !b.StreamOptions.IncludeUsage || len(b.Messages) != 1 {
						t.Errorf("stream_options.include_usage not set (or the body damaged): %s", up.body)
					}
				} else if string(up.body) != ac.body(stream) {
					t.Errorf("request body changed: %s", up.body)
				}
				recs := r.sink.records()
				if len(recs) != 1 {
					t.Fatalf("%d records", len(recs))
				}
				rec := recs[0]
				want2 := wire.UsageRecord{ID: rec.ID, BotID: "bot-a", Provider: ac.provider, Model: ac.model, API: ac.api,
					Stream: stream, Status: 200, Outcome: wire.OutcomeOK, Tokens: ac.wantTokens(stream),
					BYOK: ac.provider == wire.ProviderOpenAI, Time: r.now.Now(), Millis: rec.Millis}
				if rec != want2 {
					t.Errorf("record\n%+v\nwant\n%+v", rec, want2)
				}
				if len(rec.ID) != 32 {
					t.Errorf("record id %q is not 128 bits of hex", rec.ID)
				}
			})
		}
	}
}

func TestFreeEndpoints(t *testing.T) {
	r := newRig(t, func(a *wire.ModelAccess) { a.Credits = true }) // no allowance: metered calls refused
	for _, path := range []string{"/anthropic/v1/models", "/anthropic/v1/models/claude-sonnet-4-6", "/openai/v1/models"} {
		got := r.call(t, t.Context(), path, tokenA, "")
		if got.status != 200 || got.body != `{"data":[{"id":"m1"}]}` {
			t.Errorf("%s: %d %s", path, got.status, got.body)
		}
	}
	if n := len(r.sink.records()); n != 0 {
		t.Errorf("%d records for calls that cost nothing", n)
	}
	for _, c := range []struct{ method, path string }{
		{"GET", "/anthropic/v1/files"}, {"POST", "/openai/v1/embeddings"}, {"GET", "/openai/v1/models/../files"},
		{"GET", "/anthropic/v1/messages"}, {"POST", "/openai/v2/chat/completions"}, {"GET", "/other"},
	} {
		req, _ := http.NewRequest(c.method, r.srv.URL+c.path, strings.NewReader("{}"))
		req.Header.Set("X-Api-Key", tokenA)
		req.Header.Set("Authorization", "Bearer "+tokenA)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 404 {
			t.Errorf("%s %s: %d, want 404", c.method, c.path, resp.StatusCode)
		}
	}
	if n := len(r.p.received()); n != 3 {
		t.Errorf("provider got %d requests, want the 3 allowed", n)
	}
}

func TestEstimateWithoutUsage(t *testing.T) {
	for _, ac := range apiCases {
		for _, stream := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/stream=%t", ac.name, stream), func(t *testing.T) {
				r := newRig(t, nil)
				body := ac.body(stream)
				got := r.call(t, t.Context(), ac.path, tokenA, body, "X-Test-Mode", "nousage")
				if got.status != 200 || got.readErr != nil {
					t.Fatalf("%d %v", got.status, got.readErr)
				}
				recs := r.sink.records()
				if len(recs) != 1 {
					t.Fatalf("%d records", len(recs))
				}
				reqLen := len(body)                                            // as the bot sent it
				want := wire.Tokens{Input: int64((reqLen + 3) / 4), Output: 3} // "Hello there!" is 12 bytes
				if recs[0].Tokens != want || !recs[0].Estimated {
					t.Errorf("tokens %+v estimated %t, want %+v estimated", recs[0].Tokens, recs[0].Estimated, want)
				}
			})
		}
	}
}

func TestUpstreamErrorsPassThrough(t *testing.T) {
	for _, ac := range apiCases {
		for _, mode := range []string{"401", "429", "500"} {
			t.Run(ac.name+"/"+mode, func(t *testing.T) {
				r := newRig(t, nil)
				got := r.call(t, t.Context(), ac.path, tokenA, ac.body(true), "X-Test-Mode", mode)
				if fmt.Sprint(got.status) != mode || !strings.Contains(got.body, "upstream says "+mode) {
					t.Errorf("got %d %s", got.status, got.body)
				}
				if got.header.Get("Request-Id") != "req_upstream_1" {
					t.Errorf("provider's headers not passed")
				}
				if mode == "429" && got.header.Get("Retry-After") != "17" {
					t.Errorf("retry-after %q", got.header.Get("Retry-After"))
				}
				recs := r.sink.records()
				if len(recs) != 1 || recs[0].Outcome != wire.OutcomeError || recs[0].Tokens != (wire.Tokens{}) ||
					fmt.Sprint(recs[0].Status) != mode || recs[0].Estimated {
					t.Errorf("records %+v, want one error with no tokens", recs)
				}
			})
		}
	}
}

func TestCutStream(t *testing.T) {
	// The fake breaks off after three events: Anthropic's message_start (25 in, 100 cache
	// read, 7 written) and no text yet; chat's first chunk and "Hello" and " there!";
	// responses' "Hello".
	want := map[string]wire.Tokens{
		apiMessages:  {Input: 25, CacheRead: 100, CacheWrite: 7, Output: 1}, // message_start's count
		apiChat:      {Output: 3},
		apiResponses: {Output: 2},
	}
	for _, ac := range apiCases {
		t.Run(ac.name, func(t *testing.T) {
			r := newRig(t, nil)
			got := r.call(t, t.Context(), ac.path, tokenA, ac.body(true), "X-Test-Mode", "cut")
			if got.status != 200 || !isAbort(got.readErr) {
				t.Errorf("status %d, read error %v: the bot's stream must be cut too", got.status, got.readErr)
			}
			recs := r.sink.records()
			if len(recs) != 1 {
				t.Fatalf("%d records", len(recs))
			}
			w := want[ac.api]
			if ac.api != apiMessages {
				w.Input = int64((len(ac.body(true)) + 3) / 4)
			}
			if recs[0].Outcome != wire.OutcomeCut || recs[0].Tokens != w || !recs[0].Estimated {
				t.Errorf("record %+v, want cut with %+v estimated", recs[0], w)
			}
		})
	}
	t.Run("whole", func(t *testing.T) {
		r := newRig(t, nil)
		got := r.call(t, t.Context(), "/anthropic/v1/messages", tokenA, apiCases[0].body(false), "X-Test-Mode", "cut")
		if got.status != 502 || !strings.Contains(got.body, `"type":"api_error"`) {
			t.Errorf("%d %s", got.status, got.body)
		}
		recs := r.sink.records()
		if len(recs) != 1 || recs[0].Outcome != wire.OutcomeCut || recs[0].Tokens.Output != 0 {
			t.Errorf("records %+v", recs)
		}
	})
}

func TestBotGoesAway(t *testing.T) {
	r := newRig(t, nil)
	ctx, cancel := context.WithCancel(t.Context())
	req, _ := http.NewRequestWithContext(ctx, "POST", r.srv.URL+"/anthropic/v1/messages", strings.NewReader(apiCases[0].body(true)))
	req.Header.Set("X-Api-Key", tokenA)
	req.Header.Set("X-Test-Mode", "hang")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	if _, err := resp.Body.Read(buf); err != nil {
		t.Fatal(err)
	}
	cancel()
	resp.Body.Close()
	select {
	case <-r.p.canceled:
	case <-time.After(10 * time.Second):
		t.Fatal("the provider's call was not canceled when the bot went away")
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(r.sink.records()) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	recs := r.sink.records()
	if len(recs) != 1 || recs[0].Outcome != wire.OutcomeCut || recs[0].Tokens.Input != 25 {
		t.Errorf("records %+v, want one cut with the input", recs)
	}
}

func TestTokens(t *testing.T) {
	r := newRig(t, nil)
	anth := apiCases[0].body(false)
	cases := []struct {
		name, path, body string
		hdr              []string
		status           int
		shape            string
		reason           string
	}{
		{"no token", "/anthropic/v1/messages", anth, nil, 401, `"type":"authentication_error"`, wire.RefusedToken},
		{"wrong token", "/anthropic/v1/messages", anth, []string{"X-Api-Key", "pmt_wrong"}, 401, `"type":"authentication_error"`, wire.RefusedToken},
		{"another bot's token", "/anthropic/v1/messages", anth, []string{"X-Api-Key", tokenB}, 401, `"type":"authentication_error"`, wire.RefusedToken},
		{"openai wrong bearer", "/openai/v1/chat/completions", apiCases[1].body(false), []string{"Authorization", "Bearer " + tokenB}, 401, `"code":"invalid_api_key"`, wire.RefusedToken},
		{"a token with more", "/openai/v1/chat/completions", apiCases[1].body(false), []string{"Authorization", "Bearer " + tokenA + "x"}, 401, `"code":"invalid_api_key"`, wire.RefusedToken},
		{"anthropic bearer", "/anthropic/v1/messages", anth, []string{"Authorization", "Bearer " + tokenA}, 200, `"type":"message"`, ""},
		{"openai x-api-key", "/openai/v1/chat/completions", apiCases[1].body(false), []string{"X-Api-Key", tokenA}, 200, `"object":"chat.completion"`, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := r.call(t, t.Context(), c.path, "", c.body, c.hdr...)
			if got.status != c.status || !strings.Contains(got.body, c.shape) {
				t.Errorf("%d %s, want %d with %s", got.status, got.body, c.status, c.shape)
			}
		})
	}
	if !strings.Contains(r.log.String(), `"level":"WARN","msg":"model call with another bot's token","bot_id":"bot-a","token_bot_id":"bot-b"`) {
		t.Errorf("borrowed token not logged with both ids:\n%s", r.log.String())
	}
	for _, tok := range []string{tokenA, tokenB, "pmt_wrong"} {
		if strings.Contains(r.log.String(), tok) {
			t.Errorf("a token is in the log")
		}
	}
	want := []wire.UsageRefusal{
		{BotID: "bot-a", Provider: "anthropic", Reason: wire.RefusedToken, Count: 3},
		{BotID: "bot-a", Provider: "openai", Reason: wire.RefusedToken, Count: 2},
	}
	if got := r.g.Refusals(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("refusals %+v, want %+v", got, want)
	}
	if got := r.g.Refusals(); len(got) != 0 {
		t.Errorf("refusals not reset: %+v", got)
	}

	// bot-b may call Anthropic only; the listener of bot-b refuses OpenAI.
	srvB := httptest.NewServer(r.g.Handler("bot-b"))
	defer srvB.Close()
	req, _ := http.NewRequest("POST", srvB.URL+"/openai/v1/chat/completions", strings.NewReader(apiCases[1].body(false)))
	req.Header.Set("Authorization", "Bearer "+tokenB)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Errorf("provider not allowed: %d", resp.StatusCode)
	}
	// Removed, bot-a's token is no longer any good.
	r.g.Set("bot-a", nil)
	if got := r.call(t, t.Context(), "/anthropic/v1/messages", tokenA, anth); got.status != 401 {
		t.Errorf("removed bot: %d", got.status)
	}
	want = []wire.UsageRefusal{
		{BotID: "bot-a", Provider: "anthropic", Reason: wire.RefusedToken, Count: 1},
		{BotID: "bot-b", Provider: "openai", Reason: wire.RefusedProvider, Count: 1},
	}
	if got := r.g.Refusals(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("refusals %+v, want %+v", got, want)
	}
}

func TestCredits(t *testing.T) {
	// Each call is 25 in, 100 cache read, 12 out: at these prices exactly 1,000 millionths.
	price := wire.Price{Input: 20_000_000, CacheRead: 2_000_000, Output: 25_000_000} // 500 + 200 + 300
	const perCall = 1000
	msg := "Your included credits for this month are used up — add your own key or wait until 1 March"
	for _, ac := range apiCases {
		for _, stream := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/stream=%t", ac.name, stream), func(t *testing.T) {
				p := price
				if ac.api == apiMessages && stream {
					p.CacheWrite = 0 // the streamed answer also wrote 7 to the cache
				}
				r := newRig(t, func(a *wire.ModelAccess) {
					a.Credits = true
					a.Prices = map[string]wire.Price{ac.provider + "/" + ac.model: p}
					a.DefaultPrice = wire.Price{Input: 1}
					a.Allowance = wire.Allowance{Remaining: 3*perCall + 1, AsOf: time.Unix(100, 0), Message: msg}
				})
				for i := range 4 {
					if got := r.call(t, t.Context(), ac.path, tokenA, ac.body(stream)); got.status != 200 {
						t.Fatalf("call %d: %d %s", i+1, got.status, got.body)
					}
				}
				// 3,001 - 4,000 left: the fifth is refused.
				got := r.call(t, t.Context(), ac.path, tokenA, ac.body(stream))
				wantStatus, wantShape := 429, `"code":"insufficient_quota"`
				if ac.provider == wire.ProviderAnthropic {
					wantStatus, wantShape = 400, `"type":"invalid_request_error"`
				}
				if got.status != wantStatus || !strings.Contains(got.body, wantShape) || !strings.Contains(got.body, msg) {
					t.Errorf("got %d %s, want %d %s with the message", got.status, got.body, wantStatus, wantShape)
				}
				if n := len(r.p.received()); n != 4 {
					t.Errorf("provider got %d calls", n)
				}
				recs := r.sink.records()
				var sum int64
				for _, rec := range recs {
					sum += prices.Cost(p, rec.Tokens)
				}
				if sum != 4*perCall {
					t.Errorf("recorded cost %d, want %d", sum, 4*perCall)
				}
				// pmd commits the first three and says 1 is left of its own count: one more call.
				r.g.Settled(recs[:3])
				r.g.SetAllowance("bot-a", wire.Allowance{Remaining: 1 + perCall, AsOf: time.Unix(200, 0), Message: msg})
				r.g.SetAllowance("bot-a", wire.Allowance{Remaining: 1e9, AsOf: time.Unix(150, 0)}) // older: ignored
				if got := r.call(t, t.Context(), ac.path, tokenA, ac.body(stream)); got.status != 200 {
					t.Errorf("after the new allowance: %d", got.status)
				}
				if got := r.call(t, t.Context(), ac.path, tokenA, ac.body(stream)); got.status != wantStatus {
					t.Errorf("after it is spent: %d", got.status)
				}
				want := []wire.UsageRefusal{{BotID: "bot-a", Provider: ac.provider, Reason: wire.RefusedCredits, Count: 2}}
				if got := r.g.Refusals(); fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("refusals %+v", got)
				}
			})
		}
	}
}

func TestCreditsExactBoundary(t *testing.T) {
	price := wire.Price{Input: 20_000_000, CacheRead: 2_000_000, Output: 25_000_000}
	for _, c := range []struct {
		remaining int64
		calls     int
	}{{0, 0}, {-5, 0}, {1, 1}, {1000, 1}, {1001, 2}, {3000, 3}} {
		t.Run(fmt.Sprint(c.remaining), func(t *testing.T) {
			r := newRig(t, func(a *wire.ModelAccess) {
				a.Credits = true
				a.DefaultPrice = price
				a.Allowance = wire.Allowance{Remaining: c.remaining, AsOf: time.Unix(1, 0)}
			})
			n := 0
			for range 5 {
				if r.call(t, t.Context(), "/anthropic/v1/messages", tokenA, apiCases[0].body(false)).status == 200 {
					n++
				}
			}
			if n != c.calls {
				t.Errorf("allowance %d let %d calls through, want %d", c.remaining, n, c.calls)
			}
		})
	}
	t.Run("pending at start", func(t *testing.T) {
		r := newRig(t, func(a *wire.ModelAccess) {
			a.Credits = true
			a.DefaultPrice = price
			a.Allowance = wire.Allowance{Remaining: 2000, AsOf: time.Unix(1, 0)}
		})
		spooled := []wire.UsageRecord{
			{ID: "r1", BotID: "bot-a", Provider: "anthropic", Model: "x", Tokens: wire.Tokens{Input: 25, CacheRead: 100, Output: 12}},
			{ID: "r2", BotID: "bot-a", Provider: "anthropic", Model: "x", Tokens: wire.Tokens{Input: 25, CacheRead: 100, Output: 12}},
		}
		r.g.Pending(spooled)
		r.g.Pending(spooled[:1]) // counted once
		if got := r.call(t, t.Context(), "/anthropic/v1/messages", tokenA, apiCases[0].body(false)); got.status != 400 {
			t.Errorf("with 2,000 spent of 2,000: %d", got.status)
		}
		r.g.Settled(spooled[1:])
		if got := r.call(t, t.Context(), "/anthropic/v1/messages", tokenA, apiCases[0].body(false)); got.status != 200 {
			t.Errorf("with 1,000 spent of 2,000: %d", got.status)
		}
	})
	t.Run("byok never refused", func(t *testing.T) {
		r := newRig(t, func(a *wire.ModelAccess) { a.DefaultPrice = price })
		for i := range 3 {
			if got := r.call(t, t.Context(), "/anthropic/v1/messages", tokenA, apiCases[0].body(false)); got.status != 200 {
				t.Errorf("call %d: %d", i, got.status)
			}
		}
	})
}

func TestLimits(t *testing.T) {
	r := newRig(t, func(a *wire.ModelAccess) { a.Limits = wire.CallLimits{PerMinute: 2, PerDay: 3} })
	// The clock starts at 23:58:30 UTC.
	call := func() reply {
		return r.call(t, t.Context(), "/openai/v1/chat/completions", tokenA, apiCases[1].body(false))
	}
	for i := range 2 {
		if got := call(); got.status != 200 {
			t.Fatalf("call %d: %d", i, got.status)
		}
		r.now.add(10 * time.Second)
	}
	// 23:58:50: two calls in the last minute, the first at 23:58:30 → 40 s to wait.
	got := call()
	if got.status != 429 || got.header.Get("Retry-After") != "40" || !strings.Contains(got.body, `"code":"rate_limit_exceeded"`) ||
		!strings.Contains(got.body, "2 model calls a minute; try again in 40 seconds") {
		t.Errorf("per minute: %d %v %s", got.status, got.header.Get("Retry-After"), got.body)
	}
	r.now.add(40 * time.Second) // 23:59:30
	if got := call(); got.status != 200 {
		t.Errorf("after waiting: %d", got.status)
	}
	r.now.add(time.Minute) // 00:00:30 next day? no: 23:59:30 + 1 min = 00:00:30
	r.now.add(-time.Minute + 20*time.Second)
	// 23:59:50, three calls today.
	got = call()
	if got.status != 429 || got.header.Get("Retry-After") != "10" || !strings.Contains(got.body, "3 model calls a day; try again after 00:00 UTC") {
		t.Errorf("per day: %d %v %s", got.status, got.header.Get("Retry-After"), got.body)
	}
	r.now.add(10 * time.Second)
	if got := call(); got.status != 200 {
		t.Errorf("next day: %d %s", got.status, got.body)
	}
	anth := r.call(t, t.Context(), "/anthropic/v1/messages", tokenA, apiCases[0].body(false))
	if anth.status != 429 || !strings.Contains(anth.body, `"type":"rate_limit_error"`) || anth.header.Get("Retry-After") == "" {
		t.Errorf("anthropic shape: %d %s", anth.status, anth.body)
	}
	want := []wire.UsageRefusal{
		{BotID: "bot-a", Provider: "anthropic", Reason: wire.RefusedRate, Count: 1},
		{BotID: "bot-a", Provider: "openai", Reason: wire.RefusedRate, Count: 2},
	}
	if got := r.g.Refusals(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("refusals %+v", got)
	}
}

func TestSinkFailure(t *testing.T) {
	for _, ac := range apiCases {
		for _, stream := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/stream=%t", ac.name, stream), func(t *testing.T) {
				r := newRig(t, nil)
				r.sink.err = errors.New("disk full")
				got := r.call(t, t.Context(), ac.path, tokenA, ac.body(stream))
				if stream {
					terminal := map[string]string{apiMessages: "message_stop", apiChat: "[DONE]", apiResponses: "response.completed"}[ac.api]
					if !isAbort(got.readErr) || strings.Contains(got.body, terminal) {
						t.Errorf("stream not cut before its end: %v\n%s", got.readErr, got.body)
					}
				} else if got.status != 503 || strings.Contains(got.body, "Hello") || got.header.Get("X-Upstream") != "" {
					t.Errorf("%d %s", got.status, got.body)
				}
				if !strings.Contains(r.log.String(), `"level":"ERROR","msg":"usage record not stored; the call is not completed"`) {
					t.Errorf("not logged at error:\n%s", r.log.String())
				}
			})
		}
	}
}

func TestUpstreamUnreachable(t *testing.T) {
	r := newRig(t, nil)
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	a := testAccess(r.p, tokenA, wire.ProviderAnthropic, wire.ProviderOpenAI)
	a.Providers["openai"] = wire.ProviderAccess{BaseURL: dead.URL + "/v1", Key: openaiKey}
	r.g.Set("bot-a", a)
	got := r.call(t, t.Context(), "/openai/v1/chat/completions", tokenA, apiCases[1].body(false))
	if got.status != 502 || !strings.Contains(got.body, `"type":"server_error"`) {
		t.Errorf("%d %s", got.status, got.body)
	}
	if n := len(r.sink.records()); n != 0 {
		t.Errorf("%d records", n)
	}
	want := []wire.UsageRefusal{{BotID: "bot-a", Provider: "openai", Reason: wire.RefusedUpstream, Count: 1}}
	if got := r.g.Refusals(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("refusals %+v", got)
	}
}

func TestRedirectNotFollowed(t *testing.T) {
	r := newRig(t, nil)
	var leaked sync.Map
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		leaked.Store("key", req.Header.Get("X-Api-Key"))
	}))
	defer other.Close()
	redir := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		http.Redirect(w, req, other.URL+"/steal", http.StatusTemporaryRedirect)
	}))
	defer redir.Close()
	a := testAccess(r.p, tokenA, wire.ProviderAnthropic)
	a.Providers["anthropic"] = wire.ProviderAccess{BaseURL: redir.URL, Key: anthropicKey}
	r.g.Set("bot-a", a)
	req, _ := http.NewRequest("POST", r.srv.URL+"/anthropic/v1/messages", strings.NewReader(apiCases[0].body(false)))
	req.Header.Set("X-Api-Key", tokenA)
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 307 || !strings.HasSuffix(resp.Header.Get("Location"), "/steal") {
		t.Errorf("status %d, location %q: want the redirect passed to the bot", resp.StatusCode, resp.Header.Get("Location"))
	}
	if _, ok := leaked.Load("key"); ok {
		t.Errorf("the redirect was followed with the key")
	}
}

// TestConcurrent runs many bots' calls while their access and allowances change; run with
// -race. Every call that got 200 is recorded once.
func TestConcurrent(t *testing.T) {
	p := newProvider(t)
	sink := &memSink{}
	g := New(Config{Sink: sink})
	const bots = 8
	var srvs []*httptest.Server
	for i := range bots {
		id := fmt.Sprintf("bot-%d", i)
		g.Set(id, testAccess(p, fmt.Sprintf("tok-%d", i), wire.ProviderAnthropic, wire.ProviderOpenAI))
		s := httptest.NewServer(g.Handler(id))
		defer s.Close()
		srvs = append(srvs, s)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for i := range bots {
		for j := range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ac := apiCases[j%3]
				req, _ := http.NewRequest("POST", srvs[i].URL+ac.path, strings.NewReader(ac.body(j%2 == 0)))
				req.Header.Set("X-Api-Key", fmt.Sprintf("tok-%d", i))
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				defer resp.Body.Close()
				if _, err := io.ReadAll(resp.Body); err == nil && resp.StatusCode == 200 {
					mu.Lock()
					ok++
					mu.Unlock()
				}
			}()
		}
	}
	for k := range 50 {
		id := fmt.Sprintf("bot-%d", k%bots)
		g.Set(id, testAccess(p, fmt.Sprintf("tok-%d", k%bots), wire.ProviderAnthropic, wire.ProviderOpenAI))
		g.SetAllowance(id, wire.Allowance{Remaining: int64(k), AsOf: time.Unix(int64(k), 0)})
		g.Pending([]wire.UsageRecord{{ID: fmt.Sprint(k), BotID: id}})
		g.Settled([]wire.UsageRecord{{ID: fmt.Sprint(k), BotID: id}})
		_ = g.Refusals()
	}
	wg.Wait()
	if n := len(sink.records()); n != ok || ok != bots*6 {
		t.Errorf("%d calls answered, %d recorded, want %d", ok, n, bots*6)
	}
}
