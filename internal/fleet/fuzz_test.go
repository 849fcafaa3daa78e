package fleet_test

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/pocketmolt/pocketmolt/internal/fleet"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// decodeHeartbeat runs fleet.DecodeHeartbeat on body as pmd's handler would see it.
func decodeHeartbeat(body []byte) (wire.Heartbeat, error) {
	w := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodPost, "/v1/heartbeat", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	return fleet.DecodeHeartbeat(w, r)
}

// checkDecoded holds DecodeHeartbeat to its contract: every error is a *wire.Error with a
// client-error code, and whatever is accepted is within the facts' bounds.
func checkDecoded(t *testing.T, hb wire.Heartbeat, err error) {
	t.Helper()
	if err != nil {
		var we *wire.Error
		if !errors.As(err, &we) {
			t.Fatalf("error %T %q is not a *wire.Error", err, err)
		}
		if s := wire.HTTPStatus(we.Code); s < 400 || s > 499 {
			t.Fatalf("error code %q maps to %d, want a 4xx", we.Code, s)
		}
		if we.Message == "" {
			t.Fatalf("error code %q has no message", we.Code)
		}
		return
	}
	f := hb.Facts
	for name, v := range map[string]string{
		"hostname": f.Hostname, "os": f.OS, "arch": f.Arch, "kernel": f.Kernel,
		"docker_version": f.DockerVersion, "agent_version": f.AgentVersion,
	} {
		if len(v) > 256 {
			t.Fatalf("accepted %s of %d bytes", name, len(v))
		}
	}
	if len(f.DockerError) > 1024 {
		t.Fatalf("accepted docker_error of %d bytes", len(f.DockerError))
	}
	if f.CPUs < 0 {
		t.Fatalf("accepted cpus %d", f.CPUs)
	}
}

func FuzzDecodeHeartbeat(f *testing.F) {
	for _, s := range []string{
		``,
		`{}`,
		`null`,
		`[]`,
		`"facts"`,
		`{"facts":{"hostname":"h1","os":"linux","arch":"amd64","cpus":4,"memory_bytes":1024,"agent_version":"v1"},"sent":"2025-01-02T03:04:05Z"}`,
		`{"facts":{"cpus":-1}}`,
		`{"facts":{"cpus":9223372036854775808}}`,
		`{"facts":{"memory_bytes":-1}}`,
		`{"facts":{"hostname":"` + strings.Repeat("a", 257) + `"}}`,
		`{"facts":{"kernel":"` + strings.Repeat("\\u00e9", 200) + `"}}`,
		`{"facts":{"docker_error":"` + strings.Repeat("x", 1025) + `"}}`,
		`{"facts":{"hostname":"\xff\xfe\xfd"}}`,
		`{"facts":{"hostname":1}}`,
		`{"facts":[]}`,
		`{"sent":"yesterday"}`,
		`{"facts":{}} trailing`,
		`{"facts":{"hostname":"`,
		"\x00\x01\x02",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		hb, err := decodeHeartbeat(body)
		checkDecoded(t, hb, err)
	})
}

func TestDecodeHeartbeat(t *testing.T) {
	huge := `{"facts":{"hostname":"` + strings.Repeat("a", wire.MaxHeartbeatBytes) + `"}}`
	tests := []struct {
		name string
		body string
		code string // "" means accepted
	}{
		{"complete", `{"facts":{"hostname":"h1","cpus":2,"agent_version":"v1"},"sent":"2025-01-02T03:04:05Z"}`, ""},
		{"empty body", ``, wire.CodeInvalidArgument},
		{"not json", `facts please`, wire.CodeInvalidArgument},
		{"wrong type", `{"facts":{"cpus":"four"}}`, wire.CodeInvalidArgument},
		{"negative memory", `{"facts":{"memory_bytes":-1}}`, wire.CodeInvalidArgument},
		{"negative cpus", `{"facts":{"cpus":-1}}`, wire.CodeInvalidArgument},
		{"long hostname", `{"facts":{"hostname":"` + strings.Repeat("a", 257) + `"}}`, wire.CodeInvalidArgument},
		{"long agent version", `{"facts":{"agent_version":"` + strings.Repeat("a", 257) + `"}}`, wire.CodeInvalidArgument},
		{"long docker error", `{"facts":{"docker_error":"` + strings.Repeat("a", 1025) + `"}}`, wire.CodeInvalidArgument},
		{"over the size limit", huge, wire.CodePayloadTooLarge},
		{"padding over the size limit", strings.Repeat(" ", wire.MaxHeartbeatBytes+1) + `{}`, wire.CodePayloadTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hb, err := decodeHeartbeat([]byte(tt.body))
			checkDecoded(t, hb, err)
			if got := codeOrEmpty(err); got != tt.code {
				t.Fatalf("code = %q (%v), want %q", got, err, tt.code)
			}
		})
	}
}

func codeOrEmpty(err error) string {
	if err == nil {
		return ""
	}
	return wire.CodeOf(err)
}
