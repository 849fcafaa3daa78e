package httpapi_test

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/pocketmolt/pocketmolt/internal/httpapi"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

func TestDecode(t *testing.T) {
	const limit = 64 << 10
	// padded is a valid request whose body is exactly n bytes long.
	padded := func(n int) string {
		head, tail := `{"name":"b1","model":"`, `"}`
		return head + strings.Repeat("m", n-len(head)-len(tail)) + tail
	}
	tests := []struct {
		name     string
		body     string
		wantCode string // "" for success
		wantMsg  string // a substring of the message
	}{
		{name: "valid", body: `{"name":"b1","model":"m","api_key":"` + secret + `"}`},
		{name: "trailing whitespace", body: "{\"name\":\"b1\"}\n\t \r\n"},
		{name: "exactly at the limit", body: padded(limit)},

		{name: "empty", body: "", wantCode: wire.CodeInvalidArgument, wantMsg: "request body is empty"},
		{name: "only whitespace", body: "  \n", wantCode: wire.CodeInvalidArgument, wantMsg: "request body is empty"},
		{name: "truncated", body: `{"name":"b1"`, wantCode: wire.CodeInvalidArgument, wantMsg: "not valid JSON"},
		{name: "not JSON", body: "name=b1&api_key=" + secret, wantCode: wire.CodeInvalidArgument, wantMsg: "not valid JSON"},
		{name: "wrong type", body: `{"name":7}`, wantCode: wire.CodeInvalidArgument, wantMsg: "not valid JSON"},
		{name: "wrong type nested", body: `{"name":"b1","resources":{"memory_bytes":"1g"}}`, wantCode: wire.CodeInvalidArgument, wantMsg: "not valid JSON"},
		{name: "secret of the wrong type", body: `{"name":"b1","api_key":["` + secret + `"]}`, wantCode: wire.CodeInvalidArgument, wantMsg: "not valid JSON"},
		{name: "secret where an object belongs", body: `{"name":"b1","resources":"` + secret + `"}`, wantCode: wire.CodeInvalidArgument, wantMsg: "not valid JSON"},
		{name: "syntax error after a secret", body: `{"api_key":"` + secret + `" "model":"m"}`, wantCode: wire.CodeInvalidArgument, wantMsg: "not valid JSON"},
		{name: "bare secret", body: secret, wantCode: wire.CodeInvalidArgument, wantMsg: "not valid JSON"},
		{name: "array instead of object", body: `["b1"]`, wantCode: wire.CodeInvalidArgument, wantMsg: "not valid JSON"},
		{name: "two values", body: `{"name":"b1"}{"name":"b2"}`, wantCode: wire.CodeInvalidArgument, wantMsg: "more than one JSON value"},
		{name: "trailing scalar", body: `{"name":"b1"} 1`, wantCode: wire.CodeInvalidArgument, wantMsg: "more than one JSON value"},
		{name: "trailing secret", body: `{"name":"b1"} ` + secret, wantCode: wire.CodeInvalidArgument, wantMsg: "more than one JSON value"},
		{name: "trailing delimiter", body: `{"name":"b1"}]`, wantCode: wire.CodeInvalidArgument, wantMsg: "more than one JSON value"},

		{name: "one byte over the limit", body: padded(limit + 1), wantCode: wire.CodePayloadTooLarge, wantMsg: "larger than 65536 bytes"},
		{name: "10 MB value", body: padded(10 << 20), wantCode: wire.CodePayloadTooLarge, wantMsg: "larger than 65536 bytes"},
		{name: "10 MB of trailing whitespace", body: `{"name":"b1"}` + strings.Repeat(" ", 10<<20), wantCode: wire.CodePayloadTooLarge, wantMsg: "larger than 65536 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got wire.CreateBotRequest
			h := httpapi.Handle(slog.New(slog.DiscardHandler), func(w http.ResponseWriter, r *http.Request) error {
				if err := httpapi.Decode(w, r, limit, &got); err != nil {
					return err
				}
				w.WriteHeader(http.StatusNoContent)
				return nil
			})
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/bots", strings.NewReader(tt.body)))

			if tt.wantCode == "" {
				if rec.Code != http.StatusNoContent {
					t.Fatalf("status = %d, body %s; want success", rec.Code, rec.Body.String())
				}
				if got.Name != "b1" {
					t.Errorf("decoded name = %q, want b1", got.Name)
				}
				return
			}
			if want := wire.HTTPStatus(tt.wantCode); rec.Code != want {
				t.Errorf("status = %d, want %d", rec.Code, want)
			}
			if rec.Code < 400 || rec.Code > 499 {
				t.Errorf("status = %d, want a 4xx", rec.Code)
			}
			e := errorBody(t, rec)
			if e.Code != tt.wantCode || !strings.Contains(e.Message, tt.wantMsg) {
				t.Errorf("body = %+v, want code %q and a message containing %q", e, tt.wantCode, tt.wantMsg)
			}
			if strings.Contains(rec.Body.String(), secret) {
				t.Errorf("the refusal echoes the secret: %s", rec.Body.String())
			}
			if len(rec.Body.String()) > 1024 {
				t.Errorf("the refusal is %d bytes long; it should not echo the body", rec.Body.Len())
			}
		})
	}
}

// TestDecodeReturnsWireError lets callers that do not go through Handle branch on the code.
func TestDecodeReturnsWireError(t *testing.T) {
	var v struct{ N int }
	err := httpapi.Decode(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/", strings.NewReader(`{"N":"x"}`)), 1<<10, &v)
	if wire.CodeOf(err) != wire.CodeInvalidArgument {
		t.Errorf("Decode = %v (code %q), want an invalid_argument *wire.Error", err, wire.CodeOf(err))
	}
}

// TestDecodeStrict: the admin API's decoder names an unknown field (never its value); the
// lenient one, between pmd and agents of neighbouring versions, ignores it.
func TestDecodeStrict(t *testing.T) {
	type req struct {
		Name   string `json:"name"`
		Memory int64  `json:"memory_bytes"`
	}
	body := `{"name":"b1","memroy_bytes":"` + secret + `"}`
	var v req
	err := httpapi.DecodeStrict(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body)), 1<<10, &v)
	if wire.CodeOf(err) != wire.CodeInvalidArgument || !strings.Contains(err.Error(), `unknown field "memroy_bytes"`) || strings.Contains(err.Error(), secret) {
		t.Fatalf("DecodeStrict = %v", err)
	}
	if err := httpapi.DecodeStrict(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/", strings.NewReader(`{"name":"b1","memory_bytes":5}`)), 1<<10, &v); err != nil || v.Memory != 5 {
		t.Fatalf("DecodeStrict of a known body = %+v, %v", v, err)
	}
	v = req{}
	if err := httpapi.Decode(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body)), 1<<10, &v); err != nil || v.Name != "b1" {
		t.Fatalf("Decode = %+v, %v; want the unknown field ignored", v, err)
	}
}
