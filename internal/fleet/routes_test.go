package fleet

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/pocketmolt/pocketmolt/internal/wire"
)

func TestHandleAgent(t *testing.T) {
	f := New(nil, nil, Config{}, slog.New(slog.DiscardHandler))
	f.HandleAgent("POST /v1/usage", func(w http.ResponseWriter, r *http.Request, hostID string) error {
		if r.URL.Query().Get("fail") != "" {
			return wire.Errorf(wire.CodePermissionDenied, "bot b-2 is not on this host")
		}
		if r.URL.Query().Get("crash") != "" {
			return io.ErrUnexpectedEOF // an internal error: its text must not reach the agent
		}
		io.WriteString(w, "hello "+hostID)
		return nil
	})
	srv := httptest.NewServer(f.agentAPI(&conn{hostID: "h-1"}, f.log))
	defer srv.Close()

	for _, tc := range []struct {
		name, method, path string
		status             int
		body, code         string
	}{
		{"the route answers with the session's host", "POST", "/v1/usage", 200, "hello h-1", ""},
		{"its errors are the API's", "POST", "/v1/usage?fail=1", 403, "", wire.CodePermissionDenied},
		{"internal errors say nothing", "POST", "/v1/usage?crash=1", 500, "", wire.CodeInternal},
		{"another method is not found", "GET", "/v1/usage", 404, "", wire.CodeNotFound},
		{"other paths are still not found", "POST", "/v1/nope", 404, "", wire.CodeNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, srv.URL+tc.path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d (%s)", resp.StatusCode, tc.status, b)
			}
			if tc.body != "" && string(b) != tc.body {
				t.Errorf("body %q, want %q", b, tc.body)
			}
			if tc.code != "" {
				var we wire.Error
				if err := json.Unmarshal(b, &we); err != nil || we.Code != tc.code {
					t.Errorf("body %s, want code %s", b, tc.code)
				}
				if strings.Contains(string(b), "unexpected EOF") {
					t.Errorf("an internal error reached the agent: %s", b)
				}
			}
		})
	}
}

func TestHandleAgentClash(t *testing.T) {
	f := New(nil, nil, Config{}, slog.New(slog.DiscardHandler))
	defer func() {
		if recover() == nil {
			t.Fatal("a route clashing with the heartbeat was accepted")
		}
	}()
	f.HandleAgent("POST /v1/heartbeat", func(http.ResponseWriter, *http.Request, string) error { return nil })
}
