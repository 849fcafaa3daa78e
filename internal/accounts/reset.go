package accounts

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/store"
)

// ResetPath is the page reset links open: <public url>/reset?token=….
const ResetPath = "/reset"

// RequestReset sends a reset link to email if it has an account, and answers the same
// whether or not it has: nil. A malformed email is a FieldErrors ("email"); too many
// requests from clientIP a rate_limited *wire.Error. More than ResetMailsPerAccount emails
// to one address are not sent (and not reported), so nobody can flood a mailbox. A mail
// server that fails is logged, not reported, so the answer stays the same.
func (s *Service) RequestReset(ctx context.Context, email, clientIP string) error {
	norm, err := NormalizeEmail(email)
	if err != nil {
		return FieldErrors{"email": err.Error()}
	}
	now := s.clock()
	if err := allow(s.resetIP, ipKey(clientIP), now, "reset requests"); err != nil {
		return err
	}
	u, err := s.store.GetUserByEmail(ctx, norm)
	if errors.Is(err, store.ErrNotFound) {
		s.log.InfoContext(ctx, "password reset asked for an unknown email")
		return nil
	}
	if err != nil {
		return fmt.Errorf("request reset: %w", err)
	}
	if ok, _ := s.resetMail.Allow(u.ID, now); !ok {
		s.log.InfoContext(ctx, "password reset email not sent: too many for this account lately", "user_id", u.ID)
		return nil
	}
	link, _, err := s.newReset(ctx, s.store, u.ID)
	if err != nil {
		return fmt.Errorf("request reset: %w", err)
	}
	body := "Hello,\n\n" +
		"Someone (we hope you) asked to reset the password of your PocketMolt account.\n" +
		"Open this link within the hour to choose a new one:\n\n" + link + "\n\n" +
		"If it was not you, ignore this email: your password stays as it is.\n\n" +
		"— PocketMolt\n"
	if err := s.mailer.Send(ctx, u.Email, "Reset your PocketMolt password", body); err != nil {
		s.log.ErrorContext(ctx, "send password reset email failed", "user_id", u.ID, "error", err.Error())
		return nil
	}
	s.log.InfoContext(ctx, "password reset email sent", "user_id", u.ID)
	return nil
}

// ResetLink makes a reset link for the user ref names (an id or an email) and returns it,
// with its expiry, without sending it: for operators (pmctl users reset-link), audited under
// actor in the transaction that makes it. store.ErrNotFound when there is no such user.
func (s *Service) ResetLink(ctx context.Context, actor, ref string) (string, time.Time, error) {
	var link string
	var expires time.Time
	err := s.store.InTx(ctx, func(tx *store.Store) error {
		u, err := lookupUser(ctx, tx, ref)
		if err != nil {
			return err
		}
		if link, expires, err = s.newReset(ctx, tx, u.ID); err != nil {
			return err
		}
		_, err = tx.AppendAudit(ctx, store.AuditEntry{Time: s.clock(), Actor: actor, Action: "user.reset-link", Target: u.ID, Detail: u.Email})
		return err
	})
	if err != nil {
		return "", time.Time{}, fmt.Errorf("reset link: %w", err)
	}
	return link, expires, nil
}

func (s *Service) newReset(ctx context.Context, st *store.Store, userID string) (string, time.Time, error) {
	token, hash := newToken()
	now := s.clock()
	exp := now.Add(s.resetTTL)
	if err := st.CreatePasswordReset(ctx, store.PasswordReset{TokenHash: hash, UserID: userID, CreatedAt: now, ExpiresAt: exp}); err != nil {
		return "", time.Time{}, err
	}
	return s.publicURL + ResetPath + "?token=" + url.QueryEscape(token), exp, nil
}

// errPeek rolls back the transaction that looks at a reset token without using it.
var errPeek = errors.New("peek")

// Reset sets a new password with a reset token, once: the token is used, and every session
// of the user ends. It returns ErrResetInvalid, ErrResetExpired or ErrResetUsed for a bad
// token; a FieldErrors ("password") for a password the policy refuses, leaving the token
// unused so the person can try another; a rate_limited *wire.Error when clientIP tries too
// often.
func (s *Service) Reset(ctx context.Context, token, newPassword, clientIP string) error {
	if err := allow(s.resetIP, ipKey(clientIP), s.clock(), "reset attempts"); err != nil {
		return err
	}
	raw, err := ParseToken(token)
	if err != nil {
		return ErrResetInvalid
	}
	hash := hashToken(raw)
	if err := CheckPasswordPolicy(newPassword, ""); err != nil {
		return FieldErrors{"password": err.Error()}
	}
	// Look first, in a transaction that is rolled back: the policy also needs the email, and
	// a refused password must not use up the token. Hashing happens outside any transaction.
	err = s.store.InTx(ctx, func(tx *store.Store) error {
		u, err := useReset(ctx, tx, hash, s.clock())
		if err != nil {
			return err
		}
		if err := CheckPasswordPolicy(newPassword, u.Email); err != nil {
			return FieldErrors{"password": err.Error()}
		}
		return errPeek
	})
	if !errors.Is(err, errPeek) {
		return err
	}
	pwHash, err := s.hash(ctx, newPassword)
	if err != nil {
		return fmt.Errorf("reset password: %w", err)
	}
	var userID string
	err = s.store.InTx(ctx, func(tx *store.Store) error {
		u, err := useReset(ctx, tx, hash, s.clock())
		if err != nil {
			return err
		}
		userID = u.ID
		if err := tx.SetUserPassword(ctx, u.ID, pwHash, s.clock()); err != nil {
			return fmt.Errorf("reset password: %w", err)
		}
		if err := tx.DeleteUserWebSessions(ctx, u.ID); err != nil {
			return fmt.Errorf("reset password: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.log.InfoContext(ctx, "password reset", "user_id", userID)
	return nil
}

// useReset uses the token in tx and returns its user, mapping the store's answers to Reset's.
func useReset(ctx context.Context, tx *store.Store, hash string, now time.Time) (store.User, error) {
	pr, err := tx.UsePasswordReset(ctx, hash, now)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return store.User{}, ErrResetInvalid
	case errors.Is(err, store.ErrTokenUsed):
		return store.User{}, ErrResetUsed
	case errors.Is(err, store.ErrTokenExpired):
		return store.User{}, ErrResetExpired
	case err != nil:
		return store.User{}, fmt.Errorf("reset password: %w", err)
	}
	u, err := tx.GetUser(ctx, pr.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return store.User{}, ErrResetInvalid
	}
	if err != nil {
		return store.User{}, fmt.Errorf("reset password: %w", err)
	}
	return u, nil
}
