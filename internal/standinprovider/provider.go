// Package standinprovider is a stand-in model provider for tests and the offline demo: the
// Anthropic Messages API and the OpenAI Chat Completions and Responses APIs on one loopback
// server, with deterministic answers and usage, switchable faults (an error status, a stream
// cut in the middle) and a record of every call it received.
//
// Layout: Anthropic clients use the server's URL as their base (POST <url>/v1/messages);
// OpenAI clients use <url>/v1 (POST <url>/v1/chat/completions, <url>/v1/responses).
//
// The answer to a conversation is "stand-in <model>: <the last user text>". Usage is a
// function of the request that tests can compute with Predict: see Predict for the rule.
//
// A control API on the same handler serves tests that cannot call Go (through containers):
//
//	POST /_standin/fault   body: a Fault as JSON ({"status":429,"cut_after":0,"count":1});
//	                       {} clears it. Answers 204.
//	GET  /_standin/calls   answers 200 {"calls":[Call…],"reported":{key: Tokens},
//	                       "reported_cut":{key: Tokens}}.
//	DELETE /_standin/calls forgets the calls and the sums. Answers 204.
package standinprovider

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// SystemOverhead is the fixed number of input tokens every request costs on top of its words,
// standing in for a provider's own framing.
const SystemOverhead = 8

// maxBody bounds a request body.
const maxBody = 10 << 20

// Options configure a Provider.
type Options struct {
	// Keys are the one valid API key per provider (wire.ProviderAnthropic,
	// wire.ProviderOpenAI). A provider missing here, or with "", accepts any non-empty key.
	Keys map[string]string
	// Log gets one line per call (never the key or any text); nil discards.
	Log *slog.Logger
	// Now stamps answers; nil is time.Now.
	Now func() time.Time
}

// Fault is what the provider does wrong, to the next calls that pass its key check.
type Fault struct {
	// Status, when not 0, answers every call with that status in the provider's error shape
	// (401, 429 with retry-after, 500, 529…).
	Status int `json:"status,omitempty"`
	// CutAfter, when not 0 (and Status is 0), cuts the connection after that many events of
	// a stream; a non-streaming answer is cut halfway through its body.
	CutAfter int `json:"cut_after,omitempty"`
	// Count is how many calls the fault applies to; 0 applies it until it is cleared.
	Count int `json:"count,omitempty"`
}

// Call is one model call the provider received and what it answered.
type Call struct {
	Provider string `json:"provider"` // wire.ProviderAnthropic or wire.ProviderOpenAI
	Path     string `json:"path"`
	// APIKey is the key the call carried (x-api-key or the bearer token).
	APIKey string `json:"api_key"`
	Model  string `json:"model"`
	Stream bool   `json:"stream"`
	Body   string `json:"body"`
	Status int    `json:"status"`
	// Usage is what the answer reported: everything for a complete answer, and for a cut
	// stream what the events sent before the cut carried. OpenAI's prompt tokens are split
	// as the gateway meters them: Input excludes the cached tokens, CacheRead holds them.
	Usage wire.Tokens `json:"usage"`
	// Cut is true when the answer was cut off by a fault.
	Cut bool   `json:"cut,omitempty"`
	ID  string `json:"id,omitempty"`
}

// Provider is the stand-in provider, an http.Handler. It is safe for concurrent use.
type Provider struct {
	keys map[string]string
	log  *slog.Logger
	now  func() time.Time

	mu          sync.Mutex
	fault       Fault
	calls       []Call
	reported    map[string]wire.Tokens
	reportedCut map[string]wire.Tokens
	seq         int
	// inflight counts the calls being answered: a call is recorded after its last byte is
	// written, which its client may read first; readers wait for them (see settle).
	inflight atomic.Int64
}

// New returns a provider with no fault and no calls.
func New(opts Options) *Provider {
	p := &Provider{
		keys:        map[string]string{},
		log:         opts.Log,
		now:         opts.Now,
		reported:    map[string]wire.Tokens{},
		reportedCut: map[string]wire.Tokens{},
	}
	for k, v := range opts.Keys {
		p.keys[k] = v
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.now == nil {
		p.now = time.Now
	}
	return p
}

// SetFault replaces the current fault; Fault{} clears it.
func (p *Provider) SetFault(f Fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fault = f
}

// settleWait bounds how long a reader waits for the calls in flight to be recorded.
const settleWait = 2 * time.Second

// settle waits until no call is being answered, or settleWait has passed: a client that has
// read a whole answer then finds its call recorded.
func (p *Provider) settle() {
	for deadline := time.Now().Add(settleWait); p.inflight.Load() > 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
}

// Calls returns a copy of the calls received so far, oldest first, once those being answered
// are recorded (waiting at most 2 s for them).
func (p *Provider) Calls() []Call {
	p.settle()
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Call(nil), p.calls...)
}

// Reported returns, per API key, the sum of the usage reported in complete answers (2xx and
// not cut), like Calls once those being answered are recorded. Tests compare a ledger
// against it.
func (p *Provider) Reported() map[string]wire.Tokens {
	p.settle()
	p.mu.Lock()
	defer p.mu.Unlock()
	return copyTokens(p.reported)
}

// ReportedCut returns, per API key, the sum of the usage that cut streams carried before the
// cut, like Calls once those being answered are recorded.
func (p *Provider) ReportedCut() map[string]wire.Tokens {
	p.settle()
	p.mu.Lock()
	defer p.mu.Unlock()
	return copyTokens(p.reportedCut)
}

// Reset forgets the calls and the sums; the fault stays.
func (p *Provider) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = nil
	p.reported = map[string]wire.Tokens{}
	p.reportedCut = map[string]wire.Tokens{}
}

func copyTokens(m map[string]wire.Tokens) map[string]wire.Tokens {
	out := make(map[string]wire.Tokens, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// takeFault returns the fault that applies to this call and counts it.
func (p *Provider) takeFault() Fault {
	p.mu.Lock()
	defer p.mu.Unlock()
	f := p.fault
	if f.Count > 0 {
		p.fault.Count--
		if p.fault.Count == 0 {
			p.fault = Fault{}
		}
	}
	return f
}

// nextID numbers answers so ids are deterministic within a provider.
func (p *Provider) nextID(prefix string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seq++
	return fmt.Sprintf("%s_standin%06d", prefix, p.seq)
}

// record keeps a finished call and adds its usage to the sums.
func (p *Provider) record(c Call) {
	p.mu.Lock()
	p.calls = append(p.calls, c)
	switch {
	case c.Cut:
		p.reportedCut[c.APIKey] = addTokens(p.reportedCut[c.APIKey], c.Usage)
	case c.Status >= 200 && c.Status < 300:
		p.reported[c.APIKey] = addTokens(p.reported[c.APIKey], c.Usage)
	}
	p.mu.Unlock()
	p.log.Info("model call", "provider", c.Provider, "path", c.Path, "model", c.Model,
		"stream", c.Stream, "status", c.Status, "cut", c.Cut, "input_tokens", c.Usage.Input,
		"output_tokens", c.Usage.Output)
}

func addTokens(a, b wire.Tokens) wire.Tokens {
	return wire.Tokens{Input: a.Input + b.Input, Output: a.Output + b.Output,
		CacheRead: a.CacheRead + b.CacheRead, CacheWrite: a.CacheWrite + b.CacheWrite}
}

// ServeHTTP routes the model APIs and the control API. A cut answer aborts the connection
// with http.ErrAbortHandler, which net/http's server handles.
func (p *Provider) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/v1/messages":
		p.serveModel(w, r, anthropicAPI{})
	case "/v1/chat/completions":
		p.serveModel(w, r, chatAPI{})
	case "/v1/responses":
		p.serveModel(w, r, responsesAPI{})
	case "/_standin/fault":
		p.controlFault(w, r)
	case "/_standin/calls":
		p.controlCalls(w, r)
	default:
		if strings.HasPrefix(r.URL.Path, "/v1/") && r.Header.Get("x-api-key") != "" {
			anthropicAPI{}.writeError(w, http.StatusNotFound, "Not Found")
			return
		}
		chatAPI{}.writeError(w, http.StatusNotFound, fmt.Sprintf("Invalid URL (%s %s)", r.Method, r.URL.Path))
	}
}

// api is one of the provider's API shapes.
type api interface {
	provider() string
	// key returns the API key the request carries.
	key(r *http.Request) string
	// check validates headers beyond the key; a non-empty message is a 400.
	check(r *http.Request) string
	// parse reads the body into a request the answer is made from.
	parse(body []byte) (*request, error)
	// answer writes the 200 answer through the stream s.
	answer(s *answerer, req *request)
	// writeError writes an error in the API's shape.
	writeError(w http.ResponseWriter, status int, message string)
}

// request is a model call reduced to what the stand-in answers from.
type request struct {
	model        string
	stream       bool
	includeUsage bool // OpenAI chat: stream_options.include_usage
	conv         conversation
}

func (p *Provider) serveModel(w http.ResponseWriter, r *http.Request, a api) {
	p.inflight.Add(1)
	defer p.inflight.Add(-1)
	call := Call{Provider: a.provider(), Path: r.URL.Path, APIKey: a.key(r)}
	fail := func(status int, msg string) {
		a.writeError(w, status, msg)
		call.Status = status
		p.record(call)
	}
	if r.Method != http.MethodPost {
		fail(http.StatusMethodNotAllowed, "Method Not Allowed")
		return
	}
	if want := p.keys[a.provider()]; call.APIKey == "" || (want != "" && call.APIKey != want) {
		fail(http.StatusUnauthorized, "")
		return
	}
	if msg := a.check(r); msg != "" {
		fail(http.StatusBadRequest, msg)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	call.Body = string(body)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			fail(http.StatusRequestEntityTooLarge, "request body too large")
			return
		}
		fail(http.StatusBadRequest, "could not read the request body")
		return
	}
	req, err := a.parse(body)
	if err != nil {
		fail(http.StatusBadRequest, err.Error())
		return
	}
	call.Model, call.Stream = req.model, req.stream
	f := p.takeFault()
	if f.Status != 0 {
		fail(f.Status, "")
		return
	}
	s := &answerer{w: w, rc: http.NewResponseController(w), cutAfter: f.CutAfter, call: &call, p: p}
	defer func() {
		if v := recover(); v != nil {
			if v == errCut {
				call.Cut = true
				p.record(call)
				panic(http.ErrAbortHandler)
			}
			panic(v)
		}
	}()
	a.answer(s, req)
	call.Status = http.StatusOK
	p.record(call)
}

// errCut is raised (as a panic value) by answerer when a fault cuts the answer.
var errCut = errors.New("stand-in fault: answer cut")

// answerer writes an answer, counts its events and cuts it where the fault says, keeping in
// the call the usage that the events sent so far carried.
type answerer struct {
	w        http.ResponseWriter
	rc       *http.ResponseController
	cutAfter int
	sent     int
	call     *Call
	p        *Provider
}

// start sends the status and headers of a stream.
func (s *answerer) start(h http.Header) {
	for k, v := range h {
		s.w.Header()[k] = v
	}
	s.w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
	s.w.Header().Set("Cache-Control", "no-cache")
	s.w.WriteHeader(http.StatusOK)
	_ = s.rc.Flush()
}

// event sends one SSE event (name may be "" for OpenAI chat chunks); usage, when not nil, is
// what the event reports, kept as the call's usage once it is sent.
func (s *answerer) event(name string, data []byte, usage *wire.Tokens) {
	if s.cutAfter > 0 && s.sent >= s.cutAfter {
		panic(errCut)
	}
	if name != "" {
		fmt.Fprintf(s.w, "event: %s\n", name)
	}
	fmt.Fprintf(s.w, "data: %s\n\n", data)
	_ = s.rc.Flush()
	s.sent++
	if usage != nil {
		s.call.Usage = *usage
	}
}

// done ends a stream with OpenAI's terminator (not an event that can be cut after it: a
// stream is whole once its last data event is sent).
func (s *answerer) raw(text string) {
	_, _ = io.WriteString(s.w, text)
	_ = s.rc.Flush()
}

// whole writes a non-streaming JSON answer, or its first half and a cut under a fault.
func (s *answerer) whole(h http.Header, v any, id string, usage wire.Tokens) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("standinprovider: marshal %T: %v", v, err)) // fixed types only
	}
	for k, vals := range h {
		s.w.Header()[k] = vals
	}
	s.w.Header().Set("Content-Type", "application/json")
	s.w.Header().Set("Content-Length", fmt.Sprint(len(b)))
	s.call.ID = id
	if s.cutAfter > 0 {
		s.w.WriteHeader(http.StatusOK)
		_, _ = s.w.Write(b[:len(b)/2])
		_ = s.rc.Flush()
		panic(errCut)
	}
	s.w.WriteHeader(http.StatusOK)
	_, _ = s.w.Write(b)
	s.call.Usage = usage
}

func writeJSON(w http.ResponseWriter, status int, h http.Header, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("standinprovider: marshal %T: %v", v, err))
	}
	for k, vals := range h {
		w.Header()[k] = vals
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", fmt.Sprint(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// controlFault is POST /_standin/fault.
func (p *Provider) controlFault(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	var f Fault
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		http.Error(w, "fault: "+err.Error(), http.StatusBadRequest)
		return
	}
	if f.Status != 0 && (f.Status < 400 || f.Status > 599) || f.CutAfter < 0 || f.Count < 0 {
		http.Error(w, "fault: status must be 400-599, cut_after and count not negative", http.StatusBadRequest)
		return
	}
	p.SetFault(f)
	w.WriteHeader(http.StatusNoContent)
}

// CallsReport is the body of GET /_standin/calls.
type CallsReport struct {
	Calls       []Call                 `json:"calls"`
	Reported    map[string]wire.Tokens `json:"reported"`
	ReportedCut map[string]wire.Tokens `json:"reported_cut"`
}

// controlCalls is GET and DELETE /_standin/calls.
func (p *Provider) controlCalls(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		p.mu.Lock()
		rep := CallsReport{Calls: append([]Call{}, p.calls...), Reported: copyTokens(p.reported),
			ReportedCut: copyTokens(p.reportedCut)}
		p.mu.Unlock()
		writeJSON(w, http.StatusOK, nil, rep)
	case http.MethodDelete:
		p.Reset()
		w.WriteHeader(http.StatusNoContent)
	default:
		w.Header().Set("Allow", "GET, DELETE")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

var _ http.Handler = (*Provider)(nil)
