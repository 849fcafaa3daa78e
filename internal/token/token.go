// Package token makes and parses one-time enrollment tokens for pmagent.
//
// A token is printable and safe to copy and paste:
//
//	pmt1.<id>.<secret>.<root-fingerprint>
//
// where id is 16 lower-case hex characters (random; the store's key for the token), secret is
// 32 random bytes in unpadded base64url (43 characters; pmd stores only its SHA-256, see
// Hash), and root-fingerprint is the SHA-256 of the CA root's DER as 64 lower-case hex
// characters (pki.Fingerprint), which the agent pins on first contact. Expiry and single use
// are the store's business.
package token

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/pocketmolt/pocketmolt/internal/secret"
)

// Prefix is the version tag every token starts with.
const Prefix = "pmt1"

const (
	idBytes      = 8
	idLen        = 2 * idBytes
	secretBytes  = 32
	secretLen    = 43 // base64.RawURLEncoding.EncodedLen(secretBytes)
	fpLen        = 2 * sha256.Size
	maxTokenSize = 512
)

// ErrMalformed is wrapped by every error Parse returns. Its messages never contain any part of
// the input, so they are safe to log and to show.
var ErrMalformed = errors.New("malformed enrollment token")

// Token is an enrollment token. Its String, GoString and LogValue show only the id.
type Token struct {
	ID              string
	Secret          secret.Secret
	RootFingerprint string
}

// New makes a token with a random id and secret for the root with the given fingerprint (64
// lower-case hex characters).
func New(rootFingerprint string) (Token, error) {
	if !isLowerHex(rootFingerprint, fpLen) {
		return Token{}, errors.New("new token: root fingerprint must be 64 lower-case hex characters")
	}
	var id [idBytes]byte
	var sec [secretBytes]byte
	if _, err := rand.Read(id[:]); err != nil {
		return Token{}, fmt.Errorf("new token: %w", err)
	}
	if _, err := rand.Read(sec[:]); err != nil {
		return Token{}, fmt.Errorf("new token: %w", err)
	}
	return Token{
		ID:              hex.EncodeToString(id[:]),
		Secret:          secret.Secret(base64.RawURLEncoding.EncodeToString(sec[:])),
		RootFingerprint: rootFingerprint,
	}, nil
}

// Parse reads a token, ignoring surrounding whitespace. Every error wraps ErrMalformed and
// says what is wrong without quoting the input.
func Parse(s string) (Token, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Token{}, malformed("empty")
	}
	if len(s) > maxTokenSize {
		return Token{}, malformed("too long")
	}
	parts := strings.Split(s, ".")
	if parts[0] != Prefix {
		if strings.HasPrefix(parts[0], "pmt") {
			return Token{}, malformed("unsupported version (this pmagent reads " + Prefix + ")")
		}
		return Token{}, malformed("does not start with " + Prefix)
	}
	if len(parts) != 4 {
		return Token{}, malformed(fmt.Sprintf("want 4 dot-separated parts, got %d", len(parts)))
	}
	id, sec, fp := parts[1], parts[2], parts[3]
	if !isLowerHex(id, idLen) {
		return Token{}, malformed(fmt.Sprintf("id must be %d lower-case hex characters", idLen))
	}
	if len(sec) != secretLen || !isBase64URL(sec) {
		return Token{}, malformed(fmt.Sprintf("secret must be %d base64url characters", secretLen))
	}
	// Strict rejects non-zero padding bits, so each secret has exactly one encoding.
	if _, err := base64.RawURLEncoding.Strict().DecodeString(sec); err != nil {
		return Token{}, malformed("secret is not canonical base64url")
	}
	if !isLowerHex(fp, fpLen) {
		return Token{}, malformed(fmt.Sprintf("root fingerprint must be %d lower-case hex characters", fpLen))
	}
	return Token{ID: id, Secret: secret.Secret(sec), RootFingerprint: fp}, nil
}

func malformed(why string) error { return fmt.Errorf("%w: %s", ErrMalformed, why) }

// Encode returns the token's full text, secret included: show it once, to the operator.
func (t Token) Encode() string {
	return Prefix + "." + t.ID + "." + t.Secret.Reveal() + "." + t.RootFingerprint
}

// Hash returns the SHA-256 of the decoded secret bytes: what pmd stores. The secret is 256
// random bits, so a plain hash is enough. It returns nil if the secret is not valid.
func (t Token) Hash() []byte {
	b, err := base64.RawURLEncoding.Strict().DecodeString(t.Secret.Reveal())
	if err != nil || len(b) != secretBytes {
		return nil
	}
	sum := sha256.Sum256(b)
	return sum[:]
}

// Matches reports, in constant time, whether the token's secret hashes to hash.
func (t Token) Matches(hash []byte) bool {
	h := t.Hash()
	if h == nil || len(hash) != sha256.Size {
		return false
	}
	return subtle.ConstantTimeCompare(h, hash) == 1
}

// String shows the token without its secret: "pmt1.<id>.[redacted]".
func (t Token) String() string { return Prefix + "." + t.ID + ".[redacted]" }

// GoString implements fmt.GoStringer like String, for %#v.
func (t Token) GoString() string { return t.String() }

// LogValue implements slog.LogValuer like String.
func (t Token) LogValue() slog.Value { return slog.StringValue(t.String()) }

func isLowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func isBase64URL(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
