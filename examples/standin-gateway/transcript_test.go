package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// transcriptToken is the fake gateway token the recordings used.
const transcriptToken = "fake-gw-token-0000-not-a-secret"

// transcriptDir locates the recordings of the real gateway (copied from shared/testdata).
func transcriptDir(t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Skip("cannot locate the test file")
	}
	dir := filepath.Join(filepath.Dir(file), "testdata", "openclaw-transcripts")
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("transcripts not available: %v", err)
	}
	return dir
}

// exchange is one recorded HTTP exchange with the real gateway.
type exchange struct {
	Method          string            `json:"method"`
	Path            string            `json:"path"`
	RequestHeaders  map[string]string `json:"request_headers"`
	RequestBody     *string           `json:"request_body"`
	Status          int               `json:"status"`
	ResponseHeaders map[string]string `json:"response_headers"`
	ResponseBody    string            `json:"response_body"`
	Case            string            `json:"case"`
}

// probeSample is a probe answer recorded in a measurement file.
type probeSample struct {
	Path   string  `json:"path"`
	Status *int    `json:"status"`
	Body   *string `json:"body"`
}

// measurement holds the parts of 01_startup_timeline, 05a and 05b the stand-in can replay.
type measurement struct {
	Timeline []struct {
		Result json.RawMessage `json:"result"`
		Body   *string         `json:"body"`
	} `json:"timeline"`
	ProbesDuringShutdown []probeSample `json:"probes_during_shutdown"`
	Extra                *exchange     `json:"extra"`
}

// newTestGateway builds a gateway from the recordings' own gateway-config.json.
func newTestGateway(t *testing.T, dir string) *gateway {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "gateway-config.json"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := parseConfig(data, mapLookup(map[string]string{"OPENCLAW_GATEWAY_TOKEN": transcriptToken}))
	if err != nil {
		t.Fatalf("parse the recordings' config: %v", err)
	}
	// The recordings' mock provider is not running: the replay checks the stand-in's own
	// answers, so its chat turns stay with the echo.
	cfg.Upstream = nil
	return newGateway(cfg, "token", cfg.Token, nil, slog.New(slog.NewTextHandler(io.Discard, nil)), time.Now)
}

func mapLookup(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// phaseFor says in which phase the real gateway was when a case was recorded.
func phaseFor(name string) phase {
	switch {
	case strings.HasPrefix(name, "01a"):
		return phaseStarting
	case strings.HasPrefix(name, "05") && !strings.HasSuffix(name, "_stream.json"):
		return phaseDraining
	}
	return phaseStarted
}

// runFor groups cases by the gateway process that answered them, so session state carries
// over exactly where it did: run 1 = 01–04, run 2 = 07, the drain runs = 05.
func runFor(name string) string {
	switch {
	case strings.HasPrefix(name, "07"):
		return "run2"
	case strings.HasPrefix(name, "05"):
		return "drain"
	}
	return "run1"
}

// notReplayed are files the stand-in does not answer by design.
var notReplayed = map[string]string{
	"06_rss.json": "memory measurement of the Node process",
}

// TestTranscripts replays every recorded exchange against the stand-in and compares status,
// headers, content type and the deterministic parts of the body.
func TestTranscripts(t *testing.T) {
	dir := transcriptDir(t)
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no transcripts in %s: %v", dir, err)
	}
	gateways := map[string]*gateway{}
	servers := map[string]*httptest.Server{}
	parent := t
	for _, f := range files {
		name := filepath.Base(f)
		if name == "gateway-config.json" {
			continue
		}
		t.Run(strings.TrimSuffix(name, ".json"), func(t *testing.T) {
			if why, skip := notReplayed[name]; skip {
				t.Skip(why)
			}
			run := runFor(name)
			if gateways[run] == nil {
				gateways[run] = newTestGateway(t, dir)
				servers[run] = httptest.NewServer(gateways[run])
				parent.Cleanup(servers[run].Close)
			}
			gw, srv := gateways[run], servers[run]
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var ex exchange
			if err := json.Unmarshal(data, &ex); err != nil {
				t.Fatal(err)
			}
			if ex.Method != "" {
				gw.phase.Store(int32(phaseFor(name)))
				replay(t, srv, ex)
				return
			}
			var m measurement
			if err := json.Unmarshal(data, &m); err != nil {
				t.Fatal(err)
			}
			replayMeasurement(t, gw, srv, m)
		})
	}
}

// replayMeasurement replays the probe answers in a measurement file in the phase they show.
func replayMeasurement(t *testing.T, gw *gateway, srv *httptest.Server, m measurement) {
	t.Helper()
	n := 0
	for _, s := range m.Timeline {
		status, err := strconv.Atoi(string(s.Result))
		if err != nil || s.Body == nil {
			continue // "ConnectionRefusedError": before the port opened
		}
		gw.phase.Store(int32(phaseStarted))
		if status == http.StatusServiceUnavailable {
			gw.phase.Store(int32(phaseStarting))
		}
		replay(t, srv, exchange{Method: "GET", Path: "/startupz", Status: status,
			ResponseHeaders: map[string]string{"Content-Type": "application/json; charset=utf-8"}, ResponseBody: *s.Body})
		n++
	}
	for _, p := range m.ProbesDuringShutdown {
		if p.Status == nil || p.Body == nil {
			continue // the port had closed
		}
		gw.phase.Store(int32(phaseDraining))
		replay(t, srv, exchange{Method: "GET", Path: p.Path, Status: *p.Status,
			ResponseHeaders: map[string]string{"Content-Type": "application/json; charset=utf-8"}, ResponseBody: *p.Body})
		n++
	}
	if m.Extra != nil {
		gw.phase.Store(int32(phaseDraining))
		replay(t, srv, *m.Extra)
		n++
	}
	if n == 0 {
		t.Fatal("measurement file has nothing to replay")
	}
}

// Headers that describe the connection or the body's size rather than the gateway's answer.
var transportHeaders = []string{"Date", "Connection", "Keep-Alive", "Transfer-Encoding", "Content-Length"}

func replay(t *testing.T, srv *httptest.Server, ex exchange) {
	t.Helper()
	var body io.Reader
	if ex.RequestBody != nil {
		body = strings.NewReader(*ex.RequestBody)
	}
	req, err := http.NewRequestWithContext(t.Context(), ex.Method, srv.URL+ex.Path, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range ex.RequestHeaders {
		if k != "Host" && k != "Content-Length" {
			req.Header.Set(k, v)
		}
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	label := ex.Method + " " + ex.Path
	if resp.StatusCode != ex.Status {
		t.Fatalf("%s: status %d, want %d (body %s)", label, resp.StatusCode, ex.Status, got)
	}
	for k, want := range ex.ResponseHeaders {
		if slices.Contains(transportHeaders, k) {
			continue
		}
		if g := resp.Header.Get(k); g != want {
			t.Errorf("%s: header %s = %q, want %q", label, k, g, want)
		}
	}

	ct := ex.ResponseHeaders["Content-Type"]
	switch {
	case ex.Method == http.MethodHead:
		if len(got) != 0 {
			t.Errorf("%s: body %q, want none", label, got)
		}
	case strings.HasPrefix(ct, "application/json"):
		var want, have any
		if err := json.Unmarshal([]byte(ex.ResponseBody), &want); err != nil {
			t.Fatalf("transcript body: %v", err)
		}
		if err := json.Unmarshal(got, &have); err != nil {
			t.Fatalf("%s: body is not JSON: %v: %s", label, err, got)
		}
		c := &jsonCompare{t: t, label: label}
		c.compare("", want, have)
		if !c.varied && string(got) != ex.ResponseBody {
			t.Errorf("%s: body\n got %s\nwant %s", label, got, ex.ResponseBody)
		}
		if !c.varied && resp.Header.Get("Content-Length") != ex.ResponseHeaders["Content-Length"] && ex.ResponseHeaders["Content-Length"] != "" {
			t.Errorf("%s: Content-Length %s, want %s", label, resp.Header.Get("Content-Length"), ex.ResponseHeaders["Content-Length"])
		}
		if strings.Contains(ex.ResponseBody, "upstream_user_messages=") {
			checkOwnReply(t, ex, have)
		}
	case strings.HasPrefix(ct, "text/event-stream"):
		compareStreams(t, label, ex, string(got))
	case strings.HasPrefix(ct, "text/html"):
		// The real UI is 18 KB of bundled app; the stand-in matches its opening up to the
		// build id, which is where tools look for the terminal flag.
		prefix := ex.ResponseBody[:strings.Index(ex.ResponseBody, `data-openclaw-control-ui-build-id="`)+len(`data-openclaw-control-ui-build-id="2026.9.6`)]
		if !strings.HasPrefix(string(got), prefix) {
			t.Errorf("%s: HTML starts %q, want prefix %q", label, got[:min(len(got), len(prefix))], prefix)
		}
	default:
		if string(got) != ex.ResponseBody {
			t.Errorf("%s: body %q, want %q", label, got, ex.ResponseBody)
		}
	}
}

// jsonCompare compares a recorded body with the stand-in's. Values that vary between runs or
// come from the real model (ids, times, reply text, token counts, event-loop samples) only
// need the same type; everything else must be equal, keys included.
type jsonCompare struct {
	t      *testing.T
	label  string
	varied bool // a varying value was seen, so bytes may differ
}

var varyingPaths = []string{"id", "created", "uptimeMs", "choices.*.message.content",
	"choices.*.delta.content", "usage.prompt_tokens", "usage.completion_tokens", "usage.total_tokens"}

func (c *jsonCompare) compare(path string, want, got any) {
	c.t.Helper()
	if path == "eventLoop" {
		// A sample of the Node event loop. The real gateway sometimes omits it (late in a
		// drain); the stand-in always sends a calm one.
		c.varied = true
		if got != nil {
			if _, ok := got.(map[string]any); !ok {
				c.t.Errorf("%s: eventLoop is %T, want an object", c.label, got)
			}
		}
		return
	}
	if slices.Contains(varyingPaths, path) {
		c.varied = true
		if fmt.Sprintf("%T", want) != fmt.Sprintf("%T", got) {
			c.t.Errorf("%s: %s is %T, want %T", c.label, path, got, want)
		}
		return
	}
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			c.t.Errorf("%s: %s is %T, want an object", c.label, path, got)
			return
		}
		for k := range w {
			if _, ok := g[k]; !ok && join(path, k) != "eventLoop" {
				c.t.Errorf("%s: missing key %s", c.label, join(path, k))
			}
		}
		for k, gv := range g {
			wv, ok := w[k]
			if !ok && join(path, k) != "eventLoop" {
				c.t.Errorf("%s: extra key %s", c.label, join(path, k))
				continue
			}
			c.compare(join(path, k), wv, gv)
		}
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			c.t.Errorf("%s: %s = %v, want %v", c.label, path, got, want)
			return
		}
		for i := range w {
			c.compare(join(path, "*"), w[i], g[i])
		}
	default:
		if want != got {
			c.t.Errorf("%s: %s = %v, want %v", c.label, path, got, want)
		}
	}
}

var upstreamCount = regexp.MustCompile(`upstream_user_messages=(\d+)`)

// checkOwnReply asserts the stand-in's deterministic reply. The recording's mock model counts
// the user messages the gateway sent upstream, two per client message on a fresh session and
// one more per later turn, so its N is the stand-in's turn number plus one.
func checkOwnReply(t *testing.T, ex exchange, have any) {
	t.Helper()
	m := upstreamCount.FindStringSubmatch(ex.ResponseBody)
	n, _ := strconv.Atoi(m[1])
	var req struct {
		Messages []chatMessage `json:"messages"`
	}
	if err := json.Unmarshal([]byte(*ex.RequestBody), &req); err != nil {
		t.Fatal(err)
	}
	want := replyText(lastUserText(req.Messages), n-1)
	resp := have.(map[string]any)
	got := resp["choices"].([]any)[0].(map[string]any)["message"].(map[string]any)["content"]
	if got != want {
		t.Errorf("reply %q, want %q", got, want)
	}
	u := resp["usage"].(map[string]any)
	if u["prompt_tokens"].(float64)+u["completion_tokens"].(float64) != u["total_tokens"].(float64) {
		t.Errorf("usage %v does not add up", u)
	}
}

type sseEvent struct {
	kind  string // role, content, finish, usage, done
	chunk map[string]any
	raw   string
}

func parseSSE(t *testing.T, body string) []sseEvent {
	t.Helper()
	if !strings.HasSuffix(body, "\n\n") {
		t.Errorf("stream does not end with a blank line: %q", body[max(0, len(body)-20):])
	}
	var events []sseEvent
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			t.Fatalf("unexpected SSE line %q", line)
		}
		if data == "[DONE]" {
			events = append(events, sseEvent{kind: "done", raw: data})
			continue
		}
		var c map[string]any
		if err := json.Unmarshal([]byte(data), &c); err != nil {
			t.Fatalf("SSE data is not JSON: %v: %s", err, data)
		}
		ev := sseEvent{chunk: c, raw: data}
		choices, _ := c["choices"].([]any)
		switch {
		case c["usage"] != nil:
			ev.kind = "usage"
		case len(choices) > 0 && choices[0].(map[string]any)["finish_reason"] != nil:
			ev.kind = "finish"
		case len(choices) > 0 && choices[0].(map[string]any)["delta"].(map[string]any)["role"] != nil:
			ev.kind = "role"
		default:
			ev.kind = "content"
		}
		events = append(events, ev)
	}
	return events
}

// compareStreams checks the order of event kinds (runs of content deltas collapsed), each
// kind's chunk shape against the recording, one id per stream and the reassembled reply.
func compareStreams(t *testing.T, label string, ex exchange, got string) {
	t.Helper()
	want, have := parseSSE(t, ex.ResponseBody), parseSSE(t, got)
	kinds := func(evs []sseEvent) []string {
		var k []string
		for _, e := range evs {
			if len(k) > 0 && e.kind == "content" && k[len(k)-1] == "content" {
				continue
			}
			k = append(k, e.kind)
		}
		return k
	}
	if w, h := kinds(want), kinds(have); !slices.Equal(w, h) {
		t.Fatalf("%s: event kinds %v, want %v", label, h, w)
	}
	firstOf := map[string]sseEvent{}
	for _, e := range want {
		if _, ok := firstOf[e.kind]; !ok {
			firstOf[e.kind] = e
		}
	}
	ids := map[any]bool{}
	var text strings.Builder
	for _, e := range have {
		if e.kind == "done" {
			continue
		}
		c := &jsonCompare{t: t, label: label + " " + e.kind + " chunk"}
		c.compare("", firstOf[e.kind].chunk, e.chunk)
		ids[e.chunk["id"]] = true
		if e.kind == "content" {
			text.WriteString(e.chunk["choices"].([]any)[0].(map[string]any)["delta"].(map[string]any)["content"].(string))
		}
	}
	if len(ids) != 1 {
		t.Errorf("%s: %d chunk ids in one stream, want 1", label, len(ids))
	}
	var req struct {
		Messages []chatMessage `json:"messages"`
	}
	if err := json.Unmarshal([]byte(*ex.RequestBody), &req); err != nil {
		t.Fatal(err)
	}
	if want := replyText(lastUserText(req.Messages), 1); text.String() != want {
		t.Errorf("%s: streamed reply %q, want %q", label, text.String(), want)
	}
}
