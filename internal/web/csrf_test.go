package web

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"testing"
	"time"
)

func TestFormTokenVerify(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	ttl := 12 * time.Hour
	tok := signForm(key, "/app/subscribe", now)
	if len(tok) != formTokenChars {
		t.Fatalf("token of %d characters, want %d", len(tok), formTokenChars)
	}
	for _, tc := range []struct {
		name   string
		key    []byte
		action string
		tok    string
		at     time.Time
		ok     bool
	}{
		{"good", key, "/app/subscribe", tok, now, true},
		{"good near its end", key, "/app/subscribe", tok, now.Add(ttl), true},
		{"expired", key, "/app/subscribe", tok, now.Add(ttl + time.Second), false},
		{"from the future, within skew", key, "/app/subscribe", tok, now.Add(-30 * time.Second), true},
		{"from the future", key, "/app/subscribe", tok, now.Add(-2 * time.Minute), false},
		{"another action", key, "/app/cancel", tok, now, false},
		{"another key", bytes.Repeat([]byte{8}, 32), "/app/subscribe", tok, now, false},
		{"no key", nil, "/app/subscribe", tok, now, false},
		{"empty", key, "/app/subscribe", "", now, false},
		{"padded", key, "/app/subscribe", tok + "=", now, false},
		{"truncated", key, "/app/subscribe", tok[:len(tok)-1], now, false},
		{"one character changed", key, "/app/subscribe", flip(tok, 20), now, false},
		{"issued time changed", key, "/app/subscribe", flip(tok, 3), now, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := verifyForm(tc.key, tc.action, tc.tok, tc.at, ttl)
			if (err == nil) != tc.ok {
				t.Fatalf("verifyForm = %v, want ok=%v", err, tc.ok)
			}
		})
	}
	// The action is bound whole: "/app/sub" + "scribe" is not "/app/subscribe".
	if verifyForm(key, "/app/sub", tok, now, ttl) == nil {
		t.Error("a prefix of the action verified")
	}
}

func flip(s string, i int) string {
	b := []byte(s)
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

// FuzzVerifyForm: form tokens come from the browser. Whatever arrives, verifyForm neither
// panics nor accepts anything but a token signed with the key for the action.
func FuzzVerifyForm(f *testing.F) {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	good := signForm(key, "/login", now)
	f.Add(good, "/login", int64(0))
	f.Add("", "/login", int64(0))
	f.Add(strings.Repeat("A", formTokenChars), "/login", int64(0))
	f.Add(good[:10], "/signup", int64(-1<<62))
	f.Add(base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{0xff}, 40)), "/x", int64(1<<62))
	f.Fuzz(func(t *testing.T, tok, action string, offset int64) {
		at := now.Add(time.Duration(offset % int64(24*time.Hour)))
		err := verifyForm(key, action, tok, at, 12*time.Hour)
		if err != nil {
			return
		}
		// Accepted: it must be exactly a token signed for action at some second.
		raw, derr := base64.RawURLEncoding.Strict().DecodeString(tok)
		if derr != nil || len(raw) != formIssuedBytes+formMACBytes {
			t.Fatalf("accepted a malformed token %q", tok)
		}
		if !bytes.Equal(raw[formIssuedBytes:], formMAC(key, action, raw[:formIssuedBytes])) {
			t.Fatalf("accepted %q for %q without the right MAC", tok, action)
		}
	})
}
