package token

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

const fp = "3b2f6c1e9a0d4f7e8b5c2a1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f"

func newToken(t *testing.T) Token {
	t.Helper()
	tok, err := New(fp)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return tok
}

func TestNewAndRoundTrip(t *testing.T) {
	tok := newToken(t)
	if !isLowerHex(tok.ID, 16) {
		t.Errorf("ID = %q, want 16 lower-case hex characters", tok.ID)
	}
	raw, err := base64.RawURLEncoding.DecodeString(tok.Secret.Reveal())
	if err != nil || len(raw) != 32 {
		t.Errorf("secret decodes to %d bytes (%v), want 32", len(raw), err)
	}
	if tok.RootFingerprint != fp {
		t.Errorf("RootFingerprint = %q", tok.RootFingerprint)
	}
	s := tok.Encode()
	if want := "pmt1." + tok.ID + "." + tok.Secret.Reveal() + "." + fp; s != want {
		t.Errorf("Encode = %q, want %q", s, want)
	}
	for _, in := range []string{s, "  " + s + "\n", "\t" + s + "\r\n"} {
		got, err := Parse(in)
		if err != nil {
			t.Fatalf("Parse(%q): %v", in, err)
		}
		if got != tok {
			t.Errorf("Parse(Encode()) = %#v, want the same token", got)
		}
	}
	other := newToken(t)
	if other.ID == tok.ID || other.Secret == tok.Secret {
		t.Error("two tokens share an id or a secret")
	}
}

func TestNewRejectsBadFingerprint(t *testing.T) {
	for _, in := range []string{"", fp[:63], fp + "0", strings.ToUpper(fp), strings.Replace(fp, "3", "g", 1)} {
		if _, err := New(in); err == nil {
			t.Errorf("New(%q) succeeded, want error", in)
		}
	}
}

func TestHashAndMatches(t *testing.T) {
	tok := newToken(t)
	raw, _ := base64.RawURLEncoding.DecodeString(tok.Secret.Reveal())
	sum := sha256.Sum256(raw)
	if !bytes.Equal(tok.Hash(), sum[:]) {
		t.Error("Hash is not the SHA-256 of the secret bytes")
	}
	other := newToken(t)
	tests := []struct {
		name string
		tok  Token
		hash []byte
		want bool
	}{
		{"own hash", tok, tok.Hash(), true},
		{"parsed copy", mustParse(t, tok.Encode()), tok.Hash(), true},
		{"other token's hash", other, tok.Hash(), false},
		{"same id, other secret", Token{ID: tok.ID, Secret: other.Secret, RootFingerprint: fp}, tok.Hash(), false},
		{"truncated hash", tok, tok.Hash()[:16], false},
		{"nil hash", tok, nil, false},
		{"zero token, nil hash", Token{}, nil, false},
		{"zero token, empty-secret hash", Token{}, func() []byte { s := sha256.Sum256(nil); return s[:] }(), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.tok.Matches(tt.hash); got != tt.want {
				t.Errorf("Matches = %v, want %v", got, tt.want)
			}
		})
	}
	if (Token{}).Hash() != nil {
		t.Error("Hash of a token without a valid secret is not nil")
	}
}

func mustParse(t *testing.T, s string) Token {
	t.Helper()
	tok, err := Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestParseErrors(t *testing.T) {
	good := newToken(t)
	id, sec := good.ID, good.Secret.Reveal()
	join := func(parts ...string) string { return strings.Join(parts, ".") }
	// The last of 43 characters carries 6 bits of which only 4 are used: setting an unused
	// bit gives a string that decodes leniently to the same bytes, so it is not canonical.
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	lastBits := sec[:42] + string(alphabet[strings.IndexByte(alphabet, sec[42])|1])

	tests := []struct {
		name string
		in   string
		want string
	}{
		{"empty", "", "empty"},
		{"only spaces", " \n\t ", "empty"},
		{"too long", strings.Repeat("a", 513), "too long"},
		{"no prefix", join("abc", id, sec, fp), "does not start with pmt1"},
		{"secret alone", sec, "does not start with pmt1"},
		{"upper-case prefix", join("PMT1", id, sec, fp), "does not start with pmt1"},
		{"future version", join("pmt2", id, sec, fp), "unsupported version"},
		{"prefix only", "pmt1", "got 1"},
		{"three parts", join("pmt1", sec, fp), "got 3"},
		{"missing id", join("pmt1", "", sec, fp), "id must be"},
		{"five parts", join("pmt1", id, sec, fp, "x"), "got 5"},
		{"trailing dot", join("pmt1", id, sec, fp) + ".", "got 5"},
		{"short id", join("pmt1", id[:15], sec, fp), "id must be 16"},
		{"long id", join("pmt1", id+"0", sec, fp), "id must be 16"},
		{"upper-case id", join("pmt1", "ABCDEF0123456789", sec, fp), "id must be 16"},
		{"non-hex id", join("pmt1", "0123456789abcdeg", sec, fp), "id must be 16"},
		{"secret in id position", join("pmt1", sec, id, fp), "id must be 16"},
		{"short secret", join("pmt1", id, sec[:42], fp), "secret must be 43"},
		{"long secret", join("pmt1", id, sec+"A", fp), "secret must be 43"},
		{"padded secret", join("pmt1", id, sec[:42]+"=", fp), "secret must be 43"},
		{"standard base64 secret", join("pmt1", id, "+"+sec[1:], fp), "secret must be 43"},
		{"newline in secret", join("pmt1", id, sec[:20]+"\n"+sec[21:], fp), "secret must be 43"},
		{"space in secret", join("pmt1", id, sec[:20]+" "+sec[21:], fp), "secret must be 43"},
		{"non-canonical secret", join("pmt1", id, lastBits, fp), "not canonical"},
		{"short fingerprint", join("pmt1", id, sec, fp[:63]), "root fingerprint must be 64"},
		{"upper-case fingerprint", join("pmt1", id, sec, strings.ToUpper(fp)), "root fingerprint must be 64"},
		{"colon fingerprint", join("pmt1", id, sec, fp[:62]+":0"), "root fingerprint must be 64"},
		{"missing fingerprint", join("pmt1", id, sec, ""), "root fingerprint must be 64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.in)
			if err == nil {
				t.Fatal("Parse succeeded, want error")
			}
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("error %v does not wrap ErrMalformed", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %q, want it to contain %q", err, tt.want)
			}
			if leaks(err.Error(), sec) {
				t.Errorf("error %q contains part of the secret", err)
			}
		})
	}
}

// leaks reports whether msg contains any 8-character piece of sec.
func leaks(msg, sec string) bool {
	for i := 0; i+8 <= len(sec); i++ {
		if strings.Contains(msg, sec[i:i+8]) {
			return true
		}
	}
	return false
}

func TestNoSecretInOutput(t *testing.T) {
	tok := newToken(t)
	sec := tok.Secret.Reveal()
	var logBuf, jsonLogBuf bytes.Buffer
	slog.New(slog.NewTextHandler(&logBuf, nil)).Info("token made", "token", tok)
	slog.New(slog.NewJSONHandler(&jsonLogBuf, nil)).Info("token made", "token", tok, "secret", tok.Secret)
	js, err := json.Marshal(tok)
	if err != nil {
		t.Fatal(err)
	}
	outputs := map[string]string{
		"String":    tok.String(),
		"%v":        fmt.Sprintf("%v", tok),
		"%s":        fmt.Sprintf("%s", tok), //lint:ignore S1025 how %s prints it is what is tested
		"%+v":       fmt.Sprintf("%+v", tok),
		"%#v":       fmt.Sprintf("%#v", tok),
		"%v of &":   fmt.Sprintf("%v", &tok),
		"%v slice":  fmt.Sprintf("%v", []Token{tok}),
		"%q":        fmt.Sprintf("%q", tok),
		"slog":      logBuf.String(),
		"slog json": jsonLogBuf.String(),
		"json":      string(js),
	}
	for name, out := range outputs {
		t.Run(name, func(t *testing.T) {
			if strings.Contains(out, sec) || leaks(out, sec) {
				t.Errorf("%s output contains the secret: %s", name, out)
			}
		})
	}
	if want := "pmt1." + tok.ID + ".[redacted]"; tok.String() != want {
		t.Errorf("String = %q, want %q", tok.String(), want)
	}
	if !strings.Contains(logBuf.String(), tok.ID) {
		t.Errorf("log does not name the token id: %s", logBuf.String())
	}
}
