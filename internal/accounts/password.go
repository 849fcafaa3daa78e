// Package accounts holds the customers' accounts: their password hashes and the password
// policy, sessions and sign-up.
package accounts

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	_ "embed"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// Params are argon2id's cost parameters.
type Params struct {
	Memory  uint32 // KiB
	Time    uint32 // passes over the memory
	Threads uint8  // lanes; also the parallelism written into the hash
	SaltLen uint32 // bytes of random salt
	KeyLen  uint32 // bytes of derived key
}

// DefaultParams are the parameters new hashes are made with: 24 MiB, 2 passes, 1 lane.
// BenchmarkHashPassword chose them (README.md has the table). One hash costs about 45 ms of
// CPU on this project's 2-core machine, so a login (one verification) takes about 45 ms, and a
// sign-up (a hash, then the login's verification) about 90 ms — under 150 ms even on a busy
// machine. That is OWASP's minimum (19 MiB, t=2, p=1) with the memory raised as far as that
// budget allows; memory is what makes guessing on GPUs expensive. One lane, because a second
// one only shortens a hash when a core is idle, and pmd's two cores are better spent on two
// logins at once. Changing them makes VerifyPassword report needsRehash for older hashes, so
// they are upgraded at their next login; dummyHash must be regenerated with them.
var DefaultParams = Params{Memory: 24 * 1024, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}

// The bounds of what HashPassword makes and VerifyPassword accepts. A hash is read from the
// database, which is outside bytes: without an upper bound a corrupted or planted row could make
// one login allocate gigabytes or spin for minutes.
const (
	minMemory  = 8 * 1024   // KiB; about OWASP's lowest setting (7 MiB, t=5): nothing we make is below it
	maxMemory  = 256 * 1024 // KiB
	maxTime    = 16
	maxThreads = 16
	minSaltLen = 8
	maxSaltLen = 64
	minKeyLen  = 16
	maxKeyLen  = 64
)

// ErrMalformedHash is wrapped by VerifyPassword's error when the stored encoding is not an
// argon2id PHC string it can verify. It never means a wrong password.
var ErrMalformedHash = errors.New("malformed password hash")

// b64 is the PHC string format's base64: the standard alphabet without padding, strict, so
// that a hash has exactly one spelling.
var b64 = base64.RawStdEncoding.Strict()

// check reports why p cannot be used, or nil.
func (p Params) check() error {
	switch {
	case p.Memory < minMemory || p.Memory > maxMemory:
		return fmt.Errorf("memory %d KiB is outside %d..%d", p.Memory, minMemory, maxMemory)
	case p.Time < 1 || p.Time > maxTime:
		return fmt.Errorf("time %d is outside 1..%d", p.Time, maxTime)
	case p.Threads < 1 || p.Threads > maxThreads:
		return fmt.Errorf("threads %d is outside 1..%d", p.Threads, maxThreads)
	case p.SaltLen < minSaltLen || p.SaltLen > maxSaltLen:
		return fmt.Errorf("salt length %d is outside %d..%d", p.SaltLen, minSaltLen, maxSaltLen)
	case p.KeyLen < minKeyLen || p.KeyLen > maxKeyLen:
		return fmt.Errorf("key length %d is outside %d..%d", p.KeyLen, minKeyLen, maxKeyLen)
	}
	return nil
}

// HashPassword hashes pw with argon2id under p and a fresh random salt, and returns the PHC
// string $argon2id$v=19$m=<KiB>,t=<time>,p=<threads>$<salt>$<key> (base64 without padding).
// It fails only when p is out of the bounds VerifyPassword accepts, or when the system's
// random source fails. It is safe for concurrent use; each call holds p.Memory KiB while it runs.
func HashPassword(pw string, p Params) (string, error) {
	if err := p.check(); err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	salt := make([]byte, p.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("hash password: read salt: %w", err)
	}
	return encodeHash(p, salt, deriveKey(pw, p, salt)), nil
}

// VerifyPassword reports whether pw matches the encoded hash (made by HashPassword), comparing
// in constant time. needsRehash is true when ok and the hash was made with parameters other
// than DefaultParams: the caller should store HashPassword(pw, DefaultParams) in its place. err
// (wrapping ErrMalformedHash) is returned only for an encoding it cannot verify; the error names
// the faulty field but never echoes the encoding. It is safe for concurrent use.
func VerifyPassword(pw, encoded string) (ok bool, needsRehash bool, err error) {
	p, salt, want, err := decodeHash(encoded)
	if err != nil {
		return false, false, fmt.Errorf("verify password: %w", err)
	}
	if subtle.ConstantTimeCompare(deriveKey(pw, p, salt), want) != 1 {
		return false, false, nil
	}
	return true, p != DefaultParams, nil
}

// dummyHash is a hash with DefaultParams of a random password nobody knows (it was thrown
// away). TestDummyHashHasDefaultParams fails when DefaultParams change without it.
const dummyHash = "$argon2id$v=19$m=24576,t=2,p=1$hCv5Y3EcbR2kOQKz9XDcWw$DlRSm+clq0eUYEBUgMb0sj9glp1W0t58f6Cup59c/90"

// DummyVerify does the work of VerifyPassword against a hash that matches nothing. Call it when
// a login names an unknown email, so that the answer takes as long as a wrong password for a
// known one and its timing does not tell which emails have accounts.
func DummyVerify(pw string) {
	// The result is always false and the hash is well-formed; only the time spent matters.
	_, _, _ = VerifyPassword(pw, dummyHash)
}

// deriveKey is argon2id of pw under p and salt.
func deriveKey(pw string, p Params, salt []byte) []byte {
	return argon2.IDKey([]byte(pw), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
}

// encodeHash writes the PHC string of a hash.
func encodeHash(p Params, salt, key []byte) string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.Memory, p.Time, p.Threads, b64.EncodeToString(salt), b64.EncodeToString(key))
}

// decodeHash parses a PHC string strictly: exactly the form encodeHash writes, so an accepted
// encoding re-encodes to itself, with parameters inside the bounds.
func decodeHash(encoded string) (Params, []byte, []byte, error) {
	malformed := func(format string, args ...any) (Params, []byte, []byte, error) {
		return Params{}, nil, nil, fmt.Errorf("%w: "+format, append([]any{ErrMalformedHash}, args...)...)
	}
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[0] != "" {
		return malformed("want 5 $-separated fields, got %d", len(parts)-1)
	}
	if parts[1] != "argon2id" {
		return malformed("algorithm is not argon2id")
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return malformed("version is not v=%d", argon2.Version)
	}
	m, t, threads, ok := parseCosts(parts[3])
	if !ok {
		return malformed("parameters are not m=<KiB>,t=<passes>,p=<threads>")
	}
	salt, ok := decodeB64(parts[4])
	if !ok {
		return malformed("salt is not canonical unpadded base64")
	}
	key, ok := decodeB64(parts[5])
	if !ok {
		return malformed("key is not canonical unpadded base64")
	}
	p := Params{Memory: m, Time: t, Threads: threads, SaltLen: uint32(len(salt)), KeyLen: uint32(len(key))}
	if err := p.check(); err != nil {
		return malformed("%v", err)
	}
	return p, salt, key, nil
}

// decodeB64 decodes s only if it is the one spelling b64 writes: the decoder alone skips
// line breaks, even when strict.
func decodeB64(s string) ([]byte, bool) {
	b, err := b64.DecodeString(s)
	if err != nil || b64.EncodeToString(b) != s {
		return nil, false
	}
	return b, true
}

// parseCosts reads "m=<u32>,t=<u32>,p=<u8>", each a decimal without sign or leading zeros.
func parseCosts(s string) (m, t uint32, p uint8, ok bool) {
	fields := strings.Split(s, ",")
	if len(fields) != 3 {
		return 0, 0, 0, false
	}
	var vals [3]uint64
	for i, name := range []string{"m=", "t=", "p="} {
		digits, found := strings.CutPrefix(fields[i], name)
		if !found || digits == "" || (digits[0] == '0' && len(digits) > 1) || digits[0] == '+' {
			return 0, 0, 0, false
		}
		v, err := strconv.ParseUint(digits, 10, 32)
		if err != nil {
			return 0, 0, 0, false
		}
		vals[i] = v
	}
	if vals[2] > 255 {
		return 0, 0, 0, false
	}
	return uint32(vals[0]), uint32(vals[1]), uint8(vals[2]), true
}

// The password policy's limits.
const (
	// MinPasswordChars is the fewest characters (not bytes) a password may have.
	MinPasswordChars = 10
	// MaxPasswordBytes bounds what is hashed and stored in a form; far above any real password.
	MaxPasswordBytes = 256
)

// The errors of CheckPasswordPolicy. Their messages are meant for the person choosing the
// password: each says what to change.
var (
	ErrPasswordTooShort = fmt.Errorf("use at least %d characters", MinPasswordChars)
	ErrPasswordTooLong  = fmt.Errorf("use at most %d bytes (a shorter password, or fewer accented letters and symbols)", MaxPasswordBytes)
	ErrPasswordNotText  = errors.New("use only ordinary text characters")
	ErrPasswordRepeated = errors.New("use more than one different character")
	ErrPasswordCommon   = errors.New("this password is one of the most common ones; choose one that is harder to guess")
	ErrPasswordHasEmail = errors.New("do not use your email address as your password")
)

//go:embed common_passwords.txt
var commonPasswordsText []byte

// commonPasswords is the embedded list as a set of lower-case entries, built on first use so
// that a program that never checks a password does not pay for it.
var commonPasswords = sync.OnceValue(func() map[string]struct{} {
	set := make(map[string]struct{}, 1024)
	sc := bufio.NewScanner(bytes.NewReader(commonPasswordsText))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		set[strings.ToLower(line)] = struct{}{}
	}
	return set
})

// CheckPasswordPolicy returns nil when pw may be used as the password of the account with
// this email, or else one of the ErrPassword… errors, whose message tells the person what
// to fix: at least MinPasswordChars characters, at most MaxPasswordBytes bytes, valid UTF-8,
// not one character repeated, not in the embedded list of common passwords (ignoring case),
// and not the email address or its part before the @ (ignoring case).
// It is safe for concurrent use.
func CheckPasswordPolicy(pw, email string) error {
	switch {
	case len(pw) > MaxPasswordBytes:
		return ErrPasswordTooLong
	case !utf8.ValidString(pw):
		return ErrPasswordNotText
	case utf8.RuneCountInString(pw) < MinPasswordChars:
		return ErrPasswordTooShort
	}
	first, _ := utf8.DecodeRuneInString(pw)
	if strings.Trim(pw, string(first)) == "" {
		return ErrPasswordRepeated
	}
	if _, common := commonPasswords()[strings.ToLower(pw)]; common {
		return ErrPasswordCommon
	}
	email = strings.TrimSpace(email)
	if email != "" && strings.EqualFold(pw, email) {
		return ErrPasswordHasEmail
	}
	if i := strings.LastIndexByte(email, '@'); i > 0 && strings.EqualFold(pw, email[:i]) {
		return ErrPasswordHasEmail
	}
	return nil
}
