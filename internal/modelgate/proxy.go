package modelgate

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// Bounds on what the gate holds in memory for one call.
const (
	// maxRequestBody bounds a request body: Anthropic's own limit for a Messages request.
	maxRequestBody = 32 << 20
	// maxResponseBody bounds a non-streaming answer, read whole to meter it before it is
	// sent on; a model's longest answer is a small fraction of it.
	maxResponseBody = 32 << 20
	// maxEvent bounds one stream event (response.completed repeats the whole answer).
	maxEvent = 32 << 20
	// appendTimeout bounds the wait for the Sink, which goes on when the bot has gone.
	appendTimeout = 30 * time.Second
)

// hopHeaders are a connection's own headers, never forwarded either way.
var hopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// call is one model call on its way through the gate.
type call struct {
	botID   string
	b       *bot
	ep      endpoint
	up      upstream
	info    callInfo
	reqLen  int
	started time.Time // the gate's clock, for the record
	mono    time.Time // the real clock, for Millis
	// reserved is what the call holds of its bot's allowance while held (see Gate.release).
	reserved int64
	held     bool
}

func (g *Gate) serve(w http.ResponseWriter, r *http.Request, botID string) {
	mono := time.Now()
	ep, found := route(r)
	if ep.provider == "" {
		errNotFound().write(w, wire.ProviderOpenAI)
		return
	}
	b := g.bot(botID, false)
	var a *access
	if b != nil {
		b.mu.Lock()
		a = b.access
		b.mu.Unlock()
	}
	if !g.tokenOK(r, botID, a) {
		g.refused(botID, ep.provider, wire.RefusedToken)
		errToken().write(w, ep.provider)
		return
	}
	up, ok := a.providers[ep.provider]
	if !ok {
		g.refused(botID, ep.provider, wire.RefusedProvider)
		g.log.Info("model call to a provider not allowed", "bot_id", botID, "provider", ep.provider)
		errProvider(ep.provider).write(w, ep.provider)
		return
	}
	if !found {
		errNotFound().write(w, ep.provider)
		return
	}
	c := &call{botID: botID, b: b, ep: ep, up: up, started: g.now(), mono: mono}
	var body []byte
	if r.Method == http.MethodPost {
		var err error
		body, err = io.ReadAll(io.LimitReader(r.Body, maxRequestBody+1))
		if err != nil {
			errBadRequest("could not read the request body").write(w, ep.provider)
			return
		}
		if len(body) > maxRequestBody {
			errTooLarge().write(w, ep.provider)
			return
		}
		c.reqLen = len(body)
		if ep.api != "" {
			c.info = readCallInfo(body)
			if ep.api == apiChat && c.info.Stream {
				body, _ = withStreamUsage(body)
			}
		}
	}
	var cost int64
	if ep.api != "" && a.credits {
		cost = c.info.reservation(a.table, ep.provider, ep.api, c.reqLen)
	}
	adm := b.admit(a, c.started, ep.api != "", cost)
	if adm.reason != "" {
		g.refused(botID, ep.provider, adm.reason)
		adm.answer.write(w, ep.provider)
		return
	}
	if adm.reserved {
		c.reserved, c.held = cost, true
		// Every way out, a panic to cut a stream too, ends here; commit releases it first
		// when the call's record is written.
		defer g.release(c)
	}
	if !up.valid {
		g.refused(botID, ep.provider, wire.RefusedUpstream)
		errUpstream().write(w, ep.provider)
		return
	}
	g.forward(w, r, c, body)
}

// tokenOK reports whether r carries a's token (x-api-key, or Authorization: Bearer),
// compared in constant time. A token of another bot the gate knows is logged with both bots.
func (g *Gate) tokenOK(r *http.Request, botID string, a *access) bool {
	tok := r.Header.Get("X-Api-Key")
	if tok == "" {
		if v, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			tok = strings.TrimSpace(v)
		}
	}
	if tok == "" {
		g.log.Info("model call without a token", "bot_id", botID)
		return false
	}
	if a != nil && a.token != nil && subtle.ConstantTimeCompare([]byte(tok), a.token) == 1 {
		return true
	}
	h := sha256.Sum256([]byte(tok))
	g.mu.RLock()
	other, known := g.byToken[h]
	g.mu.RUnlock()
	if known && other != botID {
		g.log.Warn("model call with another bot's token", "bot_id", botID, "token_bot_id", other)
	} else {
		g.log.Warn("model call with a wrong token", "bot_id", botID)
	}
	return false
}

// forward sends the call upstream and its answer back, metering it.
func (g *Gate) forward(w http.ResponseWriter, r *http.Request, c *call, body []byte) {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	target := c.up.base + c.ep.rest
	if r.URL.RawQuery != "" {
		target += "?" + r.URL.RawQuery
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	out, err := http.NewRequestWithContext(ctx, r.Method, target, rd)
	if err != nil {
		g.refused(c.botID, c.ep.provider, wire.RefusedUpstream)
		g.log.Warn("model call not forwarded", "bot_id", c.botID, "provider", c.ep.provider, "error", err.Error())
		errUpstream().write(w, c.ep.provider)
		return
	}
	copyHeaders(out.Header, r.Header)
	for _, k := range []string{"Authorization", "X-Api-Key", "Accept-Encoding", "Content-Length", "Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Real-Ip"} {
		out.Header.Del(k)
	}
	if !c.up.byok {
		// The platform's key may belong to several organizations: the bot does not choose.
		out.Header.Del("Openai-Organization")
		out.Header.Del("Openai-Project")
	}
	if _, ok := r.Header["User-Agent"]; !ok {
		out.Header["User-Agent"] = []string{""} // add none of our own
	}
	if c.ep.provider == wire.ProviderAnthropic {
		out.Header.Set("X-Api-Key", c.up.key)
	} else {
		out.Header.Set("Authorization", "Bearer "+c.up.key)
	}
	resp, err := g.client.Do(out)
	if err != nil {
		if r.Context().Err() != nil {
			g.log.Info("bot went away before the model provider answered", "bot_id", c.botID, "provider", c.ep.provider)
			return
		}
		g.refused(c.botID, c.ep.provider, wire.RefusedUpstream)
		g.log.Warn("model provider unreachable", "bot_id", c.botID, "provider", c.ep.provider,
			"error", redact(err.Error(), c.up.key))
		errUpstream().write(w, c.ep.provider)
		return
	}
	defer resp.Body.Close()
	copyHeaders(w.Header(), resp.Header)
	w.Header().Del("Content-Length")
	switch {
	case c.ep.api == "":
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	case resp.StatusCode < 300 && isEventStream(resp.Header.Get("Content-Type")):
		g.stream(w, r, c, resp, cancel)
	default:
		g.whole(w, r, c, resp)
	}
}

// whole meters an answer that does not stream: read in full (up to maxResponseBody), record
// it, then send it.
func (g *Gate) whole(w http.ResponseWriter, r *http.Request, c *call, resp *http.Response) {
	m := &meter{api: c.ep.api}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody+1))
	if err == nil && len(b) > maxResponseBody {
		err = errors.New("answer too large")
	}
	if err != nil {
		// Nothing reaches the bot; the input was spent.
		g.log.Warn("model provider's answer broke off", "bot_id", c.botID, "provider", c.ep.provider,
			"error", redact(err.Error(), c.up.key))
		rec := g.record(c, http.StatusBadGateway, wire.OutcomeCut, m)
		rec.Tokens.Output = 0
		if g.commit(r.Context(), c, rec) != nil {
			errUnavailable().write(w, c.ep.provider)
			return
		}
		errUpstream().write(w, c.ep.provider)
		return
	}
	var rec wire.UsageRecord
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		m.body(b)
		rec = g.record(c, resp.StatusCode, wire.OutcomeOK, m)
	} else {
		rec = g.record(c, resp.StatusCode, wire.OutcomeError, nil)
	}
	if g.commit(r.Context(), c, rec) != nil {
		for k := range w.Header() {
			delete(w.Header(), k)
		}
		errUnavailable().write(w, c.ep.provider)
		return
	}
	if c.up.key != "" && bytes.Contains(b, []byte(c.up.key)) {
		b = bytes.ReplaceAll(b, []byte(c.up.key), []byte("[redacted]"))
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(b)
}

// stream passes a server-sent event stream through event by event, flushing each as it
// comes, and holds its terminal event until the call is recorded. A stream that breaks off
// (upstream, or the bot going away) is recorded as cut, for what it carried, and cut for the
// bot too.
func (g *Gate) stream(w http.ResponseWriter, r *http.Request, c *call, resp *http.Response, cancel context.CancelFunc) {
	rc := http.NewResponseController(w)
	w.WriteHeader(resp.StatusCode)
	flushErr := rc.Flush()
	m := &meter{api: c.ep.api}
	sr := newSSEReader(resp.Body, maxEvent)
	committed := false
	for flushErr == nil {
		raw, data, err := sr.next()
		if data != nil && !committed && m.event(data) {
			outcome := wire.OutcomeOK
			if m.errored {
				outcome = wire.OutcomeError
			}
			if g.commit(r.Context(), c, g.record(c, resp.StatusCode, outcome, m)) != nil {
				cancel()
				panic(http.ErrAbortHandler)
			}
			committed = true
		}
		if len(raw) > 0 {
			if _, werr := w.Write(raw); werr != nil {
				flushErr = werr
				break
			}
			if sr.buffered() == 0 || err != nil {
				flushErr = rc.Flush()
			}
		}
		if err == nil {
			continue
		}
		if committed {
			return
		}
		if err == io.EOF && (m.errored || (m.api == apiChat && m.outputSeen)) {
			// An error event ends a stream as the provider meant; an OpenAI-compatible
			// provider may end a chat stream after its usage without [DONE].
			outcome := wire.OutcomeOK
			if m.errored {
				outcome = wire.OutcomeError
			}
			if g.commit(r.Context(), c, g.record(c, resp.StatusCode, outcome, m)) != nil {
				panic(http.ErrAbortHandler)
			}
			return
		}
		if r.Context().Err() == nil {
			g.log.Warn("model provider's stream broke off", "bot_id", c.botID, "provider", c.ep.provider,
				"error", redact(err.Error(), c.up.key))
		}
		_ = g.commit(r.Context(), c, g.record(c, resp.StatusCode, wire.OutcomeCut, m))
		panic(http.ErrAbortHandler)
	}
	// The bot went away: stop the provider and record what was sent.
	cancel()
	if !committed {
		g.log.Info("bot went away mid-stream", "bot_id", c.botID, "provider", c.ep.provider)
		_ = g.commit(r.Context(), c, g.record(c, resp.StatusCode, wire.OutcomeCut, m))
	}
}

// record is the usage record of c; m nil records no tokens (an error answer).
func (g *Gate) record(c *call, status int, outcome string, m *meter) wire.UsageRecord {
	rec := wire.UsageRecord{
		ID:       NewRecordID(g.now()),
		BotID:    c.botID,
		Provider: c.ep.provider,
		Model:    c.info.Model,
		API:      c.ep.api,
		Stream:   c.info.Stream,
		Status:   status,
		Outcome:  outcome,
		BYOK:     c.up.byok,
		Time:     c.started.UTC(),
		Millis:   time.Since(c.mono).Milliseconds(),
	}
	if m != nil {
		rec.Tokens, rec.Estimated = m.tokens(c.reqLen)
	}
	return rec
}

// commit hands rec to the Sink, even when the bot has gone, and counts it as pending spend.
func (g *Gate) commit(ctx context.Context, c *call, rec wire.UsageRecord) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), appendTimeout)
	defer cancel()
	if err := g.sink.Append(ctx, rec); err != nil {
		g.log.Error("usage record not stored; the call is not completed", "bot_id", c.botID,
			"record_id", rec.ID, "provider", rec.Provider, "error", redact(err.Error(), c.up.key))
		return fmt.Errorf("append usage record %s: %w", rec.ID, err)
	}
	c.b.mu.Lock()
	c.b.addPending(rec)
	c.releaseLocked() // in the same critical section: the call is never counted as neither
	c.b.mu.Unlock()
	return nil
}

// release drops c's reservation if it still holds it: when the call ends without a record
// (refused upstream, the bot gone before an answer, the Sink failing).
func (g *Gate) release(c *call) {
	c.b.mu.Lock()
	c.releaseLocked()
	gone := c.b.idle()
	c.b.mu.Unlock()
	if gone {
		g.drop(c.botID, c.b)
	}
}

// releaseLocked drops c's reservation once; needs c.b.mu.
func (c *call) releaseLocked() {
	if !c.held {
		return
	}
	c.b.reserved -= c.reserved
	c.b.holds--
	c.held = false
}

// copyHeaders adds src's headers to dst but for the connection's own.
func copyHeaders(dst, src http.Header) {
	for k, vv := range src {
		dst[k] = append(dst[k], vv...)
	}
	for _, f := range src.Values("Connection") {
		for _, name := range strings.Split(f, ",") {
			if name = strings.TrimSpace(name); name != "" {
				dst.Del(name)
			}
		}
	}
	for _, k := range hopHeaders {
		dst.Del(k)
	}
}

func isEventStream(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	return strings.EqualFold(strings.TrimSpace(mt), "text/event-stream")
}

// redact takes key out of s.
func redact(s, key string) string {
	if key == "" {
		return s
	}
	return strings.ReplaceAll(s, key, "[redacted]")
}

// NewRecordID is the id of a usage record of a call at now: 128 bits in hex, 48 of them the
// time in milliseconds and 80 random. Random enough that no host can guess another's, and
// ordered by time, so pmd's index of records grows at its end instead of splitting pages all
// over (random ids committed half as fast by 100,000 records).
func NewRecordID(now time.Time) string {
	var b [16]byte
	ms := uint64(now.UnixMilli())
	for i := range 6 {
		b[i] = byte(ms >> (40 - 8*i))
	}
	_, _ = rand.Read(b[6:])
	return hex.EncodeToString(b[:])
}
