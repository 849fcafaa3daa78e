package web

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"net/http"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/accounts"
)

// A form token is base64url(issued | mac): issued is the Unix second it was made (8 bytes, big
// endian), mac the HMAC-SHA256 of the form's action and issued under a key the attacker cannot
// read — the session's CSRF key, or the pre-session cookie's random value for logged-out
// forms. A token therefore works only for its form, in its browser, for formTTL.
const (
	formTokenDomain = "pocketmolt form v1\x00"
	formIssuedBytes = 8
	formMACBytes    = sha256.Size
)

var formTokenChars = base64.RawURLEncoding.EncodedLen(formIssuedBytes + formMACBytes)

// errFormToken is the one answer for a missing, malformed, forged, misdirected or expired
// form token; the page says to reload.
var errFormToken = errors.New("bad form token")

// skew is how far ahead of our clock an issued time may be: pmd replicas' clocks differ a
// little.
const skew = time.Minute

func formMAC(key []byte, action string, issued []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(formTokenDomain))
	m.Write([]byte(action))
	m.Write([]byte{0})
	m.Write(issued)
	return m.Sum(nil)
}

// signForm makes the token of the form that posts to action.
func signForm(key []byte, action string, now time.Time) string {
	var issued [formIssuedBytes]byte
	binary.BigEndian.PutUint64(issued[:], uint64(now.Unix()))
	return base64.RawURLEncoding.EncodeToString(append(issued[:], formMAC(key, action, issued[:])...))
}

// verifyForm checks a form token for action under key at now. Any failure is errFormToken.
func verifyForm(key []byte, action, token string, now time.Time, ttl time.Duration) error {
	if len(key) == 0 || len(token) != formTokenChars {
		return errFormToken
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(token)
	if err != nil || len(raw) != formIssuedBytes+formMACBytes {
		return errFormToken
	}
	issued := raw[:formIssuedBytes]
	if !hmac.Equal(raw[formIssuedBytes:], formMAC(key, action, issued)) {
		return errFormToken
	}
	// Compared in seconds: a forged issued time could not pass the MAC, but a huge one must
	// not overflow time arithmetic either.
	at := binary.BigEndian.Uint64(issued)
	nowS := now.Unix()
	if nowS < 0 || at > uint64(nowS)+uint64(skew/time.Second) || uint64(nowS)-min(at, uint64(nowS)) > uint64(ttl/time.Second) {
		return errFormToken
	}
	return nil
}

// cookie makes one of our cookies: HttpOnly, SameSite=Lax, Path=/, and Secure unless the
// public URL is plain http on loopback.
func (s *Server) cookie(name, value string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge, HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode}
}

// preKey returns the pre-session key of this browser, setting the cookie when it has none
// (or a malformed one). Logged-out forms are signed with it.
func (s *Server) preKey(w http.ResponseWriter, r *http.Request) []byte {
	if key, ok := s.preKeyOf(r); ok {
		return key
	}
	var raw [accounts.TokenBytes]byte
	_, _ = rand.Read(raw[:])
	// No Max-Age: it lasts as long as the browser session, which is all a form needs.
	http.SetCookie(w, s.cookie(s.preCookie, base64.RawURLEncoding.EncodeToString(raw[:]), 0))
	return raw[:]
}

func (s *Server) preKeyOf(r *http.Request) ([]byte, bool) {
	c, err := r.Cookie(s.preCookie)
	if err != nil {
		return nil, false
	}
	key, err := accounts.ParseToken(c.Value)
	return key, err == nil
}

// checkPublicForm verifies a logged-out form's token against the pre-session cookie.
func (s *Server) checkPublicForm(r *http.Request) error {
	key, ok := s.preKeyOf(r)
	if !ok {
		return errFormToken
	}
	return verifyForm(key, r.URL.Path, r.PostFormValue("csrf"), s.now(), s.formTTL)
}
