package wire_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/wire"
)

func TestErrorJSONShape(t *testing.T) {
	e := &wire.Error{Code: wire.CodeConflict, Message: "name taken", Status: http.StatusConflict}
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), `{"code":"conflict","message":"name taken"}`; got != want {
		t.Errorf("Marshal = %s, want %s (Status must not be serialised)", got, want)
	}
	if e.Error() != "name taken" {
		t.Errorf("Error() = %q, want the message", e.Error())
	}
}

func TestErrorf(t *testing.T) {
	e := wire.Errorf(wire.CodeNotFound, "no host %q (%d tries)", "web1", 3)
	if e.Code != wire.CodeNotFound || e.Message != `no host "web1" (3 tries)` || e.Status != 0 {
		t.Errorf("Errorf = %+v", *e)
	}
}

func TestHTTPStatus(t *testing.T) {
	tests := []struct {
		code string
		want int
	}{
		{wire.CodeInvalidArgument, http.StatusBadRequest},
		{wire.CodeNotFound, http.StatusNotFound},
		{wire.CodeConflict, http.StatusConflict},
		{wire.CodeUnauthenticated, http.StatusUnauthorized},
		{wire.CodeTokenInvalid, http.StatusUnauthorized},
		{wire.CodeTokenExpired, http.StatusUnauthorized},
		{wire.CodeTokenUsed, http.StatusUnauthorized},
		{wire.CodePermissionDenied, http.StatusForbidden},
		{wire.CodePayloadTooLarge, http.StatusRequestEntityTooLarge},
		{wire.CodeMethodNotAllowed, http.StatusMethodNotAllowed},
		{wire.CodeUnavailable, http.StatusServiceUnavailable},
		{wire.CodeRateLimited, http.StatusTooManyRequests},
		{wire.CodeInternal, http.StatusInternalServerError},
		{"", http.StatusInternalServerError},
		{"no_such_code", http.StatusInternalServerError},
		{"NOT_FOUND", http.StatusInternalServerError},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			if got := wire.HTTPStatus(tt.code); got != tt.want {
				t.Errorf("HTTPStatus(%q) = %d, want %d", tt.code, got, tt.want)
			}
		})
	}
}

func TestCodeOf(t *testing.T) {
	notFound := wire.Errorf(wire.CodeNotFound, "no such bot")
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"wire error", notFound, wire.CodeNotFound},
		{"wrapped", fmt.Errorf("get bot b1: %w", notFound), wire.CodeNotFound},
		{"wrapped twice", fmt.Errorf("sync: %w", fmt.Errorf("get bot: %w", notFound)), wire.CodeNotFound},
		{"joined", errors.Join(io.EOF, notFound), wire.CodeNotFound},
		{"plain error", errors.New("disk full"), wire.CodeInternal},
		{"sentinel", io.EOF, wire.CodeInternal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := wire.CodeOf(tt.err); got != tt.want {
				t.Errorf("CodeOf(%v) = %q, want %q", tt.err, got, tt.want)
			}
		})
	}
}

func TestWriteJSON(t *testing.T) {
	rec := httptest.NewRecorder()
	wire.WriteJSON(rec, http.StatusCreated, map[string]int{"n": 1})
	if rec.Code != http.StatusCreated {
		t.Errorf("status = %d, want 201", rec.Code)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	if got := strings.TrimSpace(rec.Body.String()); got != `{"n":1}` {
		t.Errorf("body = %s", got)
	}
}

func TestWriteErrorThenDecodeError(t *testing.T) {
	codes := []string{
		wire.CodeInvalidArgument, wire.CodeNotFound, wire.CodeConflict, wire.CodeUnauthenticated,
		wire.CodePermissionDenied, wire.CodePayloadTooLarge, wire.CodeTokenInvalid, wire.CodeTokenExpired,
		wire.CodeTokenUsed, wire.CodeUnavailable, wire.CodeMethodNotAllowed, wire.CodeRateLimited, wire.CodeInternal,
	}
	for _, code := range codes {
		t.Run(code, func(t *testing.T) {
			rec := httptest.NewRecorder()
			// Status on the way out is ignored: the code decides the status.
			wire.WriteError(rec, &wire.Error{Code: code, Message: "because", Status: http.StatusTeapot})
			resp := rec.Result()
			if resp.StatusCode != wire.HTTPStatus(code) {
				t.Errorf("status = %d, want %d", resp.StatusCode, wire.HTTPStatus(code))
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", ct)
			}
			var body map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatalf("body %q: %v", rec.Body.String(), err)
			}
			if want := map[string]any{"code": code, "message": "because"}; !reflect.DeepEqual(body, want) {
				t.Errorf("body = %v, want exactly %v", body, want)
			}

			got := wire.DecodeError(resp)
			want := &wire.Error{Code: code, Message: "because", Status: wire.HTTPStatus(code)}
			if *got != *want {
				t.Errorf("DecodeError = %+v, want %+v", *got, *want)
			}
		})
	}
}

// A refusal that says when to come back carries it as Retry-After, in whole seconds rounded
// up, and the client reads it back.
func TestRetryAfter(t *testing.T) {
	for _, tt := range []struct {
		after  time.Duration
		header string
		back   time.Duration
	}{
		{0, "", 0},
		{time.Millisecond, "1", time.Second},
		{time.Second, "1", time.Second},
		{90*time.Second + time.Nanosecond, "91", 91 * time.Second},
	} {
		t.Run(tt.after.String(), func(t *testing.T) {
			rec := httptest.NewRecorder()
			wire.WriteError(rec, &wire.Error{Code: wire.CodeRateLimited, Message: "slow down", RetryAfter: tt.after})
			if got := rec.Header().Get("Retry-After"); got != tt.header {
				t.Errorf("Retry-After = %q, want %q", got, tt.header)
			}
			if got := wire.DecodeError(rec.Result()); got.RetryAfter != tt.back || got.Status != http.StatusTooManyRequests {
				t.Errorf("DecodeError = %+v, want RetryAfter %s and status 429", *got, tt.back)
			}
		})
	}
	for _, bad := range []string{"soon", "-3", "0", "Wed, 21 Oct 2015 07:28:00 GMT"} {
		resp := &http.Response{StatusCode: 429, Status: "429", Header: http.Header{"Retry-After": {bad}},
			Body: io.NopCloser(strings.NewReader(`{"code":"rate_limited","message":"x"}`))}
		if got := wire.DecodeError(resp); got.RetryAfter != 0 {
			t.Errorf("Retry-After %q read as %s, want none", bad, got.RetryAfter)
		}
	}
}

func TestDecodeError(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
		want   wire.Error
	}{
		{
			name: "error body", status: http.StatusConflict,
			body: `{"code":"conflict","message":"name taken"}`,
			want: wire.Error{Code: wire.CodeConflict, Message: "name taken", Status: http.StatusConflict},
		},
		{
			// The code is what the server said even when the status disagrees.
			name: "code and status disagree", status: http.StatusBadGateway,
			body: `{"code":"not_found","message":"gone"}`,
			want: wire.Error{Code: wire.CodeNotFound, Message: "gone", Status: http.StatusBadGateway},
		},
		{
			name: "html from a proxy", status: http.StatusBadGateway,
			body: "<html><body>502 Bad Gateway</body></html>",
			want: wire.Error{Code: wire.CodeInternal, Message: "unexpected response: 502 Bad Gateway", Status: http.StatusBadGateway},
		},
		{
			name: "empty body", status: http.StatusServiceUnavailable,
			body: "",
			want: wire.Error{Code: wire.CodeInternal, Message: "unexpected response: 503 Service Unavailable", Status: http.StatusServiceUnavailable},
		},
		{
			name: "json without a code", status: http.StatusBadRequest,
			body: `{"error":"bad","message":"bad"}`,
			want: wire.Error{Code: wire.CodeInternal, Message: "unexpected response: 400 Bad Request", Status: http.StatusBadRequest},
		},
		{
			name: "json of the wrong shape", status: http.StatusInternalServerError,
			body: `["internal"]`,
			want: wire.Error{Code: wire.CodeInternal, Message: "unexpected response: 500 Internal Server Error", Status: http.StatusInternalServerError},
		},
		{
			// Only the first 64 KiB are read, so a huge body cannot be decoded as an error.
			name: "body over 64 KiB", status: http.StatusBadRequest,
			body: `{"code":"invalid_argument","message":"` + strings.Repeat("x", 64<<10) + `"}`,
			want: wire.Error{Code: wire.CodeInternal, Message: "unexpected response: 400 Bad Request", Status: http.StatusBadRequest},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := &http.Response{
				StatusCode: tt.status,
				Status:     fmt.Sprintf("%d %s", tt.status, http.StatusText(tt.status)),
				Body:       io.NopCloser(strings.NewReader(tt.body)),
			}
			got := wire.DecodeError(resp)
			if *got != tt.want {
				t.Errorf("DecodeError = %+v, want %+v", *got, tt.want)
			}
			var target *wire.Error
			if !errors.As(error(got), &target) || wire.CodeOf(got) != tt.want.Code {
				t.Errorf("DecodeError's result does not work with errors.As/CodeOf")
			}
		})
	}
}

// FuzzDecodeError feeds DecodeError any status, Retry-After header and body: it always
// returns a typed error, never a negative wait, and reads back what WriteError wrote.
func FuzzDecodeError(f *testing.F) {
	for _, s := range []struct {
		status int
		after  string
		body   string
	}{
		{429, "30", `{"code":"rate_limited","message":"slow down"}`},
		{429, "0", `{"code":"rate_limited","message":"x"}`},
		{429, "-1", ``},
		{503, "Wed, 21 Oct 2015 07:28:00 GMT", `{"code":"unavailable","message":"later"}`},
		{429, "99999999999999999999", `{"code":"rate_limited"}`},
		{400, "", `{"code":"invalid_argument","message":"bad"}`},
		{500, "1", `<html>`},
	} {
		f.Add(s.status, s.after, s.body)
	}
	f.Fuzz(func(t *testing.T, status int, after, body string) {
		resp := &http.Response{StatusCode: status, Status: fmt.Sprint(status), Header: http.Header{"Retry-After": {after}},
			Body: io.NopCloser(strings.NewReader(body))}
		e := wire.DecodeError(resp)
		if e == nil || e.Code == "" || e.Status != status {
			t.Fatalf("DecodeError = %+v", e)
		}
		if e.RetryAfter < 0 {
			t.Fatalf("negative Retry-After %s from %q", e.RetryAfter, after)
		}
		rec := httptest.NewRecorder()
		wire.WriteError(rec, e)
		back := wire.DecodeError(rec.Result())
		if back.Code != e.Code || back.Message != e.Message || back.RetryAfter != e.RetryAfter {
			t.Fatalf("round trip of %+v gave %+v", *e, *back)
		}
	})
}
