package httpapi_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/pocketmolt/pocketmolt/internal/httpapi"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// secret stands for anything a handler or a client must never see echoed in a response: an
// API key, a token, a database password.
const secret = "sk-live-7f3c9d2e1b0a"

// logRecorder collects what a handler logs, as parsed JSON records.
type logRecorder struct{ buf bytes.Buffer }

func (l *logRecorder) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(&l.buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func (l *logRecorder) records(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	dec := json.NewDecoder(&l.buf)
	for dec.More() {
		var r map[string]any
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("log is not JSON lines: %v", err)
		}
		out = append(out, r)
	}
	return out
}

// errorBody checks that resp carries exactly {"code","message"} as JSON and returns it.
func errorBody(t *testing.T, rec *httptest.ResponseRecorder) wire.Error {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(rec.Body.Bytes(), &fields); err != nil {
		t.Fatalf("body %q is not a JSON object: %v", rec.Body.String(), err)
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if !slices.Equal(keys, []string{"code", "message"}) {
		t.Errorf("body has keys %v, want exactly [code message]", keys)
	}
	var e wire.Error
	if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil {
		t.Fatal(err)
	}
	return e
}

var hexID = regexp.MustCompile(`^[0-9a-f]{16}$`)

func TestHandle(t *testing.T) {
	tests := []struct {
		name       string
		handler    httpapi.HandlerFunc
		wantStatus int
		wantCode   string // "" when the handler's own response goes out
		wantMsg    string // exact message; for internal errors see below
		wantLevel  string // level of the one log record, "" for none
	}{
		{
			name: "success is left alone",
			handler: func(w http.ResponseWriter, r *http.Request) error {
				w.WriteHeader(http.StatusNoContent)
				return nil
			},
			wantStatus: http.StatusNoContent,
		},
		{
			name: "client error",
			handler: func(w http.ResponseWriter, r *http.Request) error {
				return wire.Errorf(wire.CodeNotFound, "no bot %q", "b1")
			},
			wantStatus: http.StatusNotFound, wantCode: wire.CodeNotFound, wantMsg: `no bot "b1"`,
			wantLevel: "below error",
		},
		{
			name: "wrapped client error sends the wire message, not the wrapping",
			handler: func(w http.ResponseWriter, r *http.Request) error {
				return fmt.Errorf("create bot in store (dsn password=%s): %w", secret, wire.Errorf(wire.CodeConflict, "name taken"))
			},
			wantStatus: http.StatusConflict, wantCode: wire.CodeConflict, wantMsg: "name taken",
			wantLevel: "below error",
		},
		{
			name: "token error",
			handler: func(w http.ResponseWriter, r *http.Request) error {
				return wire.Errorf(wire.CodeTokenExpired, "token expired")
			},
			wantStatus: http.StatusUnauthorized, wantCode: wire.CodeTokenExpired, wantMsg: "token expired",
			wantLevel: "below error",
		},
		{
			name: "server-side wire error",
			handler: func(w http.ResponseWriter, r *http.Request) error {
				return wire.Errorf(wire.CodeUnavailable, "host offline")
			},
			wantStatus: http.StatusServiceUnavailable, wantCode: wire.CodeUnavailable, wantMsg: "host offline",
			wantLevel: "ERROR",
		},
		{
			name: "any other error is internal with no detail",
			handler: func(w http.ResponseWriter, r *http.Request) error {
				return fmt.Errorf("query hosts: connect postgres://pmd:%s@db/pm: refused", secret)
			},
			wantStatus: http.StatusInternalServerError, wantCode: wire.CodeInternal,
			wantLevel: "ERROR",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs logRecorder
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodPost, "/v1/bots", nil)
			httpapi.Handle(logs.logger(), tt.handler).ServeHTTP(rec, req)

			if rec.Code != tt.wantStatus {
				t.Errorf("status = %d, want %d", rec.Code, tt.wantStatus)
			}
			id := rec.Header().Get(httpapi.RequestIDHeader)
			if !hexID.MatchString(id) {
				t.Errorf("%s = %q, want a fresh 16-hex-digit id", httpapi.RequestIDHeader, id)
			}
			if strings.Contains(rec.Body.String(), secret) {
				t.Errorf("response body leaks the secret: %s", rec.Body.String())
			}
			if tt.wantCode != "" {
				e := errorBody(t, rec)
				want := tt.wantMsg
				if tt.wantCode == wire.CodeInternal {
					want = "internal error (request " + id + ")"
				}
				if e.Code != tt.wantCode || e.Message != want {
					t.Errorf("body = %+v, want code %q message %q", e, tt.wantCode, want)
				}
			}

			records := logs.records(t)
			if tt.wantLevel == "" {
				if len(records) != 0 {
					t.Errorf("logged %v, want nothing", records)
				}
				return
			}
			if len(records) != 1 {
				t.Fatalf("logged %d records, want exactly one: %v", len(records), records)
			}
			r := records[0]
			switch level := r["level"]; tt.wantLevel {
			case "below error":
				if level != "DEBUG" && level != "INFO" {
					t.Errorf("a 4xx was logged at %v, want below ERROR", level)
				}
			default:
				if level != tt.wantLevel {
					t.Errorf("logged at %v, want %s", level, tt.wantLevel)
				}
			}
			if r["request_id"] != id || r["method"] != http.MethodPost || r["path"] != "/v1/bots" {
				t.Errorf("log record %v lacks the request's id, method or path", r)
			}
			if tt.wantCode == wire.CodeInternal {
				// The detail kept out of the response is in the log, for the operator.
				if s, _ := r["error"].(string); !strings.Contains(s, "query hosts") {
					t.Errorf("log record's error = %q, want the handler's error", s)
				}
			}
		})
	}
}

func TestHandleRequestID(t *testing.T) {
	long := strings.Repeat("x", 65)
	tests := []struct {
		name string
		sent string
		want string // "" for a fresh id
	}{
		{"none sent", "", ""},
		{"kept", "req-42", "req-42"},
		{"64 characters kept", strings.Repeat("y", 64), strings.Repeat("y", 64)},
		{"over 64 characters replaced", long, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs logRecorder
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodGet, "/v1/hosts/h1", nil)
			if tt.sent != "" {
				req.Header.Set(httpapi.RequestIDHeader, tt.sent)
			}
			httpapi.Handle(logs.logger(), func(w http.ResponseWriter, r *http.Request) error {
				return errors.New("boom")
			}).ServeHTTP(rec, req)

			id := rec.Header().Get(httpapi.RequestIDHeader)
			if tt.want != "" && id != tt.want {
				t.Errorf("%s = %q, want %q", httpapi.RequestIDHeader, id, tt.want)
			}
			if tt.want == "" && !hexID.MatchString(id) {
				t.Errorf("%s = %q, want a fresh 16-hex-digit id", httpapi.RequestIDHeader, id)
			}
			// The same id is in the response header, the message and the log.
			if e := errorBody(t, rec); !strings.Contains(e.Message, "(request "+id+")") {
				t.Errorf("message %q does not name request %s", e.Message, id)
			}
			if r := logs.records(t); len(r) != 1 || r[0]["request_id"] != id {
				t.Errorf("log = %v, want one record with request_id %s", r, id)
			}
		})
	}
}

func TestHandleFreshIDsDiffer(t *testing.T) {
	h := httpapi.Handle(slog.New(slog.DiscardHandler), func(w http.ResponseWriter, r *http.Request) error { return nil })
	seen := map[string]bool{}
	for range 100 {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
		id := rec.Header().Get(httpapi.RequestIDHeader)
		if seen[id] {
			t.Fatalf("request id %s handed out twice", id)
		}
		seen[id] = true
	}
}

// TestHandlePanic: a panicking handler is a 500 with the request id, logged once with its
// stack, and the panic's value reaches neither the client nor the log.
func TestHandlePanic(t *testing.T) {
	var logs logRecorder
	h := httpapi.Handle(logs.logger(), func(w http.ResponseWriter, r *http.Request) error {
		panic("lost connection to postgres://pmd:" + secret + "@db")
	})
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/v1/hosts", nil)
	req.Header.Set(httpapi.RequestIDHeader, "req-1")
	h.ServeHTTP(rec, req)

	if rec.Code != http.StatusInternalServerError {
		t.Fatalf("status %d, want 500", rec.Code)
	}
	var e wire.Error
	if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Code != wire.CodeInternal || !strings.Contains(e.Message, "req-1") {
		t.Fatalf("body %s (%v)", rec.Body, err)
	}
	if strings.Contains(rec.Body.String(), secret) || strings.Contains(logs.buf.String(), secret) {
		t.Fatalf("the panic's value leaked: body %s, logs %s", rec.Body, logs.buf.String())
	}
	if !strings.Contains(logs.buf.String(), "handler panicked") || !strings.Contains(logs.buf.String(), "goroutine") {
		t.Fatalf("panic not logged with its stack: %s", logs.buf.String())
	}

	// A runtime error's message is safe and says what went wrong.
	logs = logRecorder{}
	h = httpapi.Handle(logs.logger(), func(w http.ResponseWriter, r *http.Request) error {
		var m map[string]int
		m["x"] = 1 //lint:ignore SA5000 the panic is what this handler is for
		return nil
	})
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	if !strings.Contains(logs.buf.String(), "nil map") {
		t.Fatalf("runtime error not named: %s", logs.buf.String())
	}

	// http.ErrAbortHandler still aborts the response the way net/http expects.
	defer func() {
		if v := recover(); v != http.ErrAbortHandler {
			t.Fatalf("recovered %v, want http.ErrAbortHandler re-panicked", v)
		}
	}()
	httpapi.Handle(logs.logger(), func(w http.ResponseWriter, r *http.Request) error {
		panic(http.ErrAbortHandler)
	}).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
}

func TestNotFound(t *testing.T) {
	var logs logRecorder
	mux := http.NewServeMux()
	mux.Handle("/", httpapi.NotFound(logs.logger()))

	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodDelete, "/v1/nope?token="+secret, nil))

	if rec.Code != http.StatusNotFound {
		t.Errorf("status = %d, want 404", rec.Code)
	}
	e := errorBody(t, rec)
	if e.Code != wire.CodeNotFound || e.Message != "no such endpoint: DELETE /v1/nope" {
		t.Errorf("body = %+v", e)
	}
	if strings.Contains(rec.Body.String(), secret) {
		t.Errorf("the query string reached the body: %s", rec.Body.String())
	}
	if !hexID.MatchString(rec.Header().Get(httpapi.RequestIDHeader)) {
		t.Errorf("no request id on a 404")
	}
	if r := logs.records(t); len(r) != 1 || r[0]["level"] == "ERROR" {
		t.Errorf("log = %v, want one record below ERROR", r)
	}
}
