package bots

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/pocketmolt/pocketmolt/internal/wire"
)

func TestValidImage(t *testing.T) {
	digest := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		ref  string
		ok   bool
		want string
	}{
		{"ghcr.io/openclaw/openclaw:2026.9.6", true, ""},
		{"openclaw/openclaw", true, ""},
		{"pocketmolt/standin-gateway:dev", true, ""},
		{"localhost:5000/team/bot:v1", true, ""},
		{"ghcr.io/openclaw/openclaw@sha256:" + digest, true, ""},
		{"ghcr.io/openclaw/openclaw:2026.9.6@sha256:" + digest, true, ""},
		{"pocketmolt/standin-gateway@sha256:zzz", false, "digest"},
		{"x@sha256:" + digest[:10], false, "digest"},
		{"x@md5:" + digest, false, "digest"},
		{"UPPER/case", false, "not a valid reference"},
		{"", false, "not a valid reference"},
		{"a b", false, "not a valid reference"},
		{"name:tag:extra", false, "not a valid reference"},
		{strings.Repeat("a", 600), false, "not a valid reference"},
	} {
		err := ValidImage(tc.ref)
		if (err == nil) != tc.ok || err != nil && !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ValidImage(%q) = %v, want ok=%t mentioning %q", tc.ref, err, tc.ok, tc.want)
		}
	}
}

func TestReportSame(t *testing.T) {
	a := report{raw: []byte(`[{"id":"b1"}]`), complete: true, gen: 3}
	for _, tc := range []struct {
		name string
		b    report
		same bool
	}{
		{"identical", report{raw: []byte(`[{"id":"b1"}]`), complete: true, gen: 3}, true},
		{"bots changed since", report{raw: a.raw, complete: true, gen: 4}, false},
		{"different states", report{raw: []byte(`[]`), complete: true, gen: 3}, false},
		{"no longer complete", report{raw: a.raw, complete: false, gen: 3}, false},
	} {
		if got := a.same(tc.b); got != tc.same {
			t.Errorf("%s: same = %t", tc.name, got)
		}
	}
}

func TestValidDisk(t *testing.T) {
	for n, ok := range map[int64]bool{MinDisk: true, MinDisk - 1: false, 0: false, -1: false, DefaultDiskLimit: true, MaxDisk: true, MaxDisk + 1: false} {
		if err := ValidDisk(n); (err == nil) != ok {
			t.Errorf("ValidDisk(%d) = %v", n, err)
		}
	}
}
func TestAgentError(t *testing.T) {
	long := strings.Repeat("✓", maxAgentMessage)
	for _, tc := range []struct {
		in       wire.Error
		code     string
		contains string
	}{
		{wire.Error{Code: wire.CodeNotFound, Message: "bot b-1 has no container on this host"}, wire.CodeNotFound, "no container"},
		{wire.Error{Code: wire.CodeUnauthenticated, Message: "your admin certificate expired"}, wire.CodeUnavailable, "expired"},
		{wire.Error{Code: wire.CodePermissionDenied, Message: "x"}, wire.CodeUnavailable, "x"},
		{wire.Error{Code: "made-up", Message: "x"}, wire.CodeUnavailable, "x"},
		{wire.Error{Code: wire.CodeInternal, Message: "\x1b]0;pwned\x07\nsecond line\u202e"}, wire.CodeUnavailable, `\x1b]0;pwned\x07\nsecond line\u202e`},
		{wire.Error{Code: wire.CodeConflict, Message: long}, wire.CodeConflict, "…"},
	} {
		got := agentError(&tc.in)
		if got.Code != tc.code || got.Status != wire.HTTPStatus(tc.code) || !strings.Contains(got.Message, tc.contains) {
			t.Errorf("agentError(%+v) = %+v, want code %s with %q", tc.in, got, tc.code, tc.contains)
		}
		if !utf8.ValidString(got.Message) || len(got.Message) > maxAgentMessage+len("…") || strings.ContainsAny(got.Message, "\x1b\n\u202e") {
			t.Errorf("agentError(%.20q) message %.40q…", tc.in.Message, got.Message)
		}
	}
}
