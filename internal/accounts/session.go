package accounts

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/store"
)

// TokenBytes is the size of session and reset tokens: 32 random bytes, sent as 43 characters
// of base64url and stored only as their SHA-256, so a copy of the database logs nobody in.
const TokenBytes = 32

// tokenChars is the length of a token's base64url text (no padding).
var tokenChars = base64.RawURLEncoding.EncodedLen(TokenBytes)

// ParseToken decodes a session cookie or a reset token: exactly 43 characters of base64url
// without padding, in its one canonical spelling. Anything else is an error that says
// nothing about the input.
func ParseToken(s string) ([]byte, error) {
	if len(s) != tokenChars {
		return nil, errors.New("malformed token")
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil || len(raw) != TokenBytes {
		return nil, errors.New("malformed token")
	}
	return raw, nil
}

// newToken returns a fresh token's text and the hash it is stored under.
func newToken() (text, hash string) {
	var raw [TokenBytes]byte
	_, _ = rand.Read(raw[:]) // crypto/rand.Read does not fail
	return base64.RawURLEncoding.EncodeToString(raw[:]), hashToken(raw[:])
}

func hashToken(raw []byte) string {
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:])
}

// Session is a customer's login.
type Session struct {
	// Token is the cookie's value; set by Login and StartSession only (it is not stored).
	Token string
	User  User
	// CSRFKey is the session's secret that per-form tokens are derived from.
	CSRFKey   []byte
	ExpiresAt time.Time
}

// Login checks email and password and starts a session. It returns ErrBadCredentials for an
// unknown email, a wrong password, or a malformed email, with the same work done for each
// (an unknown email is verified against a dummy hash); ErrDisabled only after the right
// password of a disabled account; and a rate_limited *wire.Error when clientIP or the email
// made too many attempts. A hash made with older parameters is upgraded.
func (s *Service) Login(ctx context.Context, email, password, clientIP string) (Session, error) {
	now := s.clock()
	if err := allow(s.loginIP, ipKey(clientIP), now, "login attempts"); err != nil {
		return Session{}, err
	}
	norm, err := NormalizeEmail(email)
	if err != nil || len(password) > MaxPasswordBytes {
		return Session{}, ErrBadCredentials
	}
	if err := allow(s.loginAcct, norm, now, "login attempts for this account"); err != nil {
		return Session{}, err
	}
	u, err := s.store.GetUserByEmail(ctx, norm)
	if errors.Is(err, store.ErrNotFound) {
		if err := s.acquire(ctx); err != nil {
			return Session{}, err
		}
		DummyVerify(password)
		s.release()
		return Session{}, ErrBadCredentials
	}
	if err != nil {
		return Session{}, fmt.Errorf("log in: %w", err)
	}
	if err := s.acquire(ctx); err != nil {
		return Session{}, err
	}
	ok, rehash, err := VerifyPassword(password, u.PasswordHash)
	s.release()
	if err != nil {
		// A damaged hash is the operators' problem; the person sees what a wrong password gets.
		s.log.ErrorContext(ctx, "password hash unreadable", "user_id", u.ID, "error", err.Error())
		return Session{}, ErrBadCredentials
	}
	if !ok {
		return Session{}, ErrBadCredentials
	}
	if u.Disabled {
		return Session{}, ErrDisabled
	}
	// Only hashes below DefaultParams are upgraded: a Service configured with other Params
	// (tests) would otherwise rehash at every login.
	if rehash && s.params == DefaultParams {
		if h, err := s.hash(ctx, password); err != nil {
			s.log.WarnContext(ctx, "rehash password failed", "user_id", u.ID, "error", err.Error())
		} else if err := s.store.SetUserPassword(ctx, u.ID, h, s.clock()); err != nil {
			s.log.WarnContext(ctx, "store rehashed password failed", "user_id", u.ID, "error", err.Error())
		}
	}
	sess, err := s.startSession(ctx, u)
	if err != nil {
		return Session{}, err
	}
	s.log.InfoContext(ctx, "user logged in", "user_id", u.ID)
	return sess, nil
}

// StartSession logs the user in without a password: right after they signed up.
func (s *Service) StartSession(ctx context.Context, userID string) (Session, error) {
	u, err := s.store.GetUser(ctx, userID)
	if err != nil {
		return Session{}, fmt.Errorf("start session: %w", err)
	}
	if u.Disabled {
		return Session{}, ErrDisabled
	}
	return s.startSession(ctx, u)
}

func (s *Service) startSession(ctx context.Context, u store.User) (Session, error) {
	token, hash := newToken()
	var key [32]byte
	_, _ = rand.Read(key[:])
	now := s.clock()
	ws := store.WebSession{IDHash: hash, UserID: u.ID, CSRF: hex.EncodeToString(key[:]), CreatedAt: now, ExpiresAt: now.Add(s.sessionTTL)}
	if err := s.store.CreateWebSession(ctx, ws); err != nil {
		return Session{}, fmt.Errorf("start session: %w", err)
	}
	return Session{Token: token, User: userOf(u), CSRFKey: key[:], ExpiresAt: ws.ExpiresAt}, nil
}

// Authenticate returns the session whose cookie value is token. A malformed, unknown or
// expired token, or one of a disabled or deleted user, is ErrNoSession; an expired session
// is deleted on the way.
func (s *Service) Authenticate(ctx context.Context, token string) (Session, error) {
	raw, err := ParseToken(token)
	if err != nil {
		return Session{}, ErrNoSession
	}
	hash := hashToken(raw)
	ws, err := s.store.GetWebSession(ctx, hash)
	if errors.Is(err, store.ErrNotFound) {
		return Session{}, ErrNoSession
	}
	if err != nil {
		return Session{}, fmt.Errorf("authenticate: %w", err)
	}
	if !s.clock().Before(ws.ExpiresAt) {
		if err := s.store.DeleteWebSession(ctx, hash); err != nil {
			s.log.WarnContext(ctx, "delete expired session failed", "user_id", ws.UserID, "error", err.Error())
		}
		return Session{}, ErrNoSession
	}
	u, err := s.store.GetUser(ctx, ws.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return Session{}, ErrNoSession
	}
	if err != nil {
		return Session{}, fmt.Errorf("authenticate: %w", err)
	}
	if u.Disabled {
		// Disable deletes sessions; this covers one made in a race with it.
		_ = s.store.DeleteUserWebSessions(ctx, u.ID)
		return Session{}, ErrNoSession
	}
	key, err := hex.DecodeString(ws.CSRF)
	if err != nil || len(key) == 0 {
		return Session{}, fmt.Errorf("authenticate: session of user %s has an unreadable csrf key", u.ID)
	}
	return Session{User: userOf(u), CSRFKey: key, ExpiresAt: ws.ExpiresAt}, nil
}

// Logout ends the session whose cookie value is token; an unknown or malformed one is not an
// error (there is nothing to end).
func (s *Service) Logout(ctx context.Context, token string) error {
	raw, err := ParseToken(token)
	if err != nil {
		return nil
	}
	if err := s.store.DeleteWebSession(ctx, hashToken(raw)); err != nil {
		return fmt.Errorf("log out: %w", err)
	}
	return nil
}
