package store

import (
	"context"
	"fmt"
	"time"
)

// User is a customer's account. Email is stored as the caller normalised it (lower case).
type User struct {
	ID               string
	Email            string
	PasswordHash     string
	Disabled         bool
	StripeCustomerID string // "" until the customer first goes to Checkout
	CreatedAt        time.Time
	UpdatedAt        time.Time
}

const userCols = `id, email, password_hash, disabled, stripe_customer_id, created_at, updated_at`

func scanUser(r rowScanner) (User, error) {
	var u User
	var cust *string
	err := r.Scan(&u.ID, &u.Email, &u.PasswordHash, &u.Disabled, &cust, timeCol{&u.CreatedAt}, timeCol{&u.UpdatedAt})
	if cust != nil {
		u.StripeCustomerID = *cust
	}
	return u, err
}

// CreateUser inserts u; ErrConflict if the id or email is taken.
func (s *Store) CreateUser(ctx context.Context, u User) error {
	_, err := s.exec(ctx, `INSERT INTO users (`+userCols+`) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		u.ID, u.Email, u.PasswordHash, u.Disabled, nullString(u.StripeCustomerID), u.CreatedAt, u.UpdatedAt)
	if err != nil {
		return fmt.Errorf("create user: %w", dbErr(err))
	}
	return nil
}

// GetUser returns the user with the given id, or ErrNotFound.
func (s *Store) GetUser(ctx context.Context, id string) (User, error) {
	u, err := scanUser(s.queryRow(ctx, `SELECT `+userCols+` FROM users WHERE id = ?`, id))
	if err != nil {
		return User{}, fmt.Errorf("get user %s: %w", id, dbErr(err))
	}
	return u, nil
}

// GetUserByEmail returns the user with the given (normalised) email, or ErrNotFound.
func (s *Store) GetUserByEmail(ctx context.Context, email string) (User, error) {
	u, err := scanUser(s.queryRow(ctx, `SELECT `+userCols+` FROM users WHERE email = ?`, email))
	if err != nil {
		return User{}, fmt.Errorf("get user by email: %w", dbErr(err))
	}
	return u, nil
}

// GetUserByStripeCustomer returns the user Stripe knows as customerID, or ErrNotFound.
func (s *Store) GetUserByStripeCustomer(ctx context.Context, customerID string) (User, error) {
	u, err := scanUser(s.queryRow(ctx, `SELECT `+userCols+` FROM users WHERE stripe_customer_id = ?`, customerID))
	if err != nil {
		return User{}, fmt.Errorf("get user by stripe customer %s: %w", customerID, dbErr(err))
	}
	return u, nil
}

// ListUsers returns every user, oldest first.
func (s *Store) ListUsers(ctx context.Context) ([]User, error) {
	rows, err := s.query(ctx, `SELECT `+userCols+` FROM users ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", dbErr(err))
	}
	defer rows.Close()
	var out []User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("list users: %w", err)
		}
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list users: %w", dbErr(err))
	}
	return out, nil
}

// SetUserPassword replaces a user's password hash; ErrNotFound if the user is gone.
func (s *Store) SetUserPassword(ctx context.Context, id, hash string, at time.Time) error {
	if err := mustAffect(s.execCount(ctx, `UPDATE users SET password_hash = ?, updated_at = ? WHERE id = ?`, hash, at, id)); err != nil {
		return fmt.Errorf("set password of user %s: %w", id, err)
	}
	return nil
}

// SetUserDisabled disables or enables a user; ErrNotFound if the user is gone.
func (s *Store) SetUserDisabled(ctx context.Context, id string, disabled bool, at time.Time) error {
	if err := mustAffect(s.execCount(ctx, `UPDATE users SET disabled = ?, updated_at = ? WHERE id = ?`, disabled, at, id)); err != nil {
		return fmt.Errorf("set disabled of user %s: %w", id, err)
	}
	return nil
}

// SetUserStripeCustomer records the user's Stripe customer; ErrConflict if another user has it.
func (s *Store) SetUserStripeCustomer(ctx context.Context, id, customerID string, at time.Time) error {
	err := mustAffect(s.execCount(ctx, `UPDATE users SET stripe_customer_id = ?, updated_at = ? WHERE id = ?`, customerID, at, id))
	if err != nil {
		return fmt.Errorf("set stripe customer of user %s: %w", id, err)
	}
	return nil
}

// DeleteUser deletes a user and, with it, their sessions, resets, assistant, subscriptions,
// checkouts and credit ledger. ErrNotFound if the user is gone.
func (s *Store) DeleteUser(ctx context.Context, id string) error {
	if err := mustAffect(s.execCount(ctx, `DELETE FROM users WHERE id = ?`, id)); err != nil {
		return fmt.Errorf("delete user %s: %w", id, err)
	}
	return nil
}

// WebSession is a customer's login, known by the hash of its cookie.
type WebSession struct {
	IDHash    string
	UserID    string
	CSRF      string // the per-session secret form tokens are derived from
	CreatedAt time.Time
	ExpiresAt time.Time
}

// CreateWebSession inserts a session.
func (s *Store) CreateWebSession(ctx context.Context, ws WebSession) error {
	_, err := s.exec(ctx, `INSERT INTO web_sessions (id_hash, user_id, csrf, created_at, expires_at) VALUES (?, ?, ?, ?, ?)`,
		ws.IDHash, ws.UserID, ws.CSRF, ws.CreatedAt, ws.ExpiresAt)
	if isForeignKey(err) {
		return fmt.Errorf("create web session: user %s: %w", ws.UserID, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("create web session: %w", dbErr(err))
	}
	return nil
}

// GetWebSession returns the session with the given hash, or ErrNotFound. Expiry is the
// caller's to check.
func (s *Store) GetWebSession(ctx context.Context, idHash string) (WebSession, error) {
	var ws WebSession
	err := s.queryRow(ctx, `SELECT id_hash, user_id, csrf, created_at, expires_at FROM web_sessions WHERE id_hash = ?`, idHash).
		Scan(&ws.IDHash, &ws.UserID, &ws.CSRF, timeCol{&ws.CreatedAt}, timeCol{&ws.ExpiresAt})
	if err != nil {
		return WebSession{}, fmt.Errorf("get web session: %w", dbErr(err))
	}
	return ws, nil
}

// DeleteWebSession deletes one session; deleting a missing one is not an error.
func (s *Store) DeleteWebSession(ctx context.Context, idHash string) error {
	if _, err := s.exec(ctx, `DELETE FROM web_sessions WHERE id_hash = ?`, idHash); err != nil {
		return fmt.Errorf("delete web session: %w", dbErr(err))
	}
	return nil
}

// DeleteUserWebSessions logs a user out everywhere (a password reset, a disabled account).
func (s *Store) DeleteUserWebSessions(ctx context.Context, userID string) error {
	if _, err := s.exec(ctx, `DELETE FROM web_sessions WHERE user_id = ?`, userID); err != nil {
		return fmt.Errorf("delete web sessions of user %s: %w", userID, dbErr(err))
	}
	return nil
}

// DeleteExpiredWebSessions removes sessions and reset tokens past their expiry at now.
func (s *Store) DeleteExpiredWebSessions(ctx context.Context, now time.Time) error {
	if _, err := s.exec(ctx, `DELETE FROM web_sessions WHERE expires_at < ?`, now); err != nil {
		return fmt.Errorf("delete expired web sessions: %w", dbErr(err))
	}
	if _, err := s.exec(ctx, `DELETE FROM password_resets WHERE expires_at < ?`, now); err != nil {
		return fmt.Errorf("delete expired password resets: %w", dbErr(err))
	}
	return nil
}

// PasswordReset is a one-time reset link, known by the hash of its token.
type PasswordReset struct {
	TokenHash string
	UserID    string
	CreatedAt time.Time
	ExpiresAt time.Time
	UsedAt    *time.Time
}

// CreatePasswordReset inserts a reset token.
func (s *Store) CreatePasswordReset(ctx context.Context, pr PasswordReset) error {
	_, err := s.exec(ctx, `INSERT INTO password_resets (token_hash, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)`,
		pr.TokenHash, pr.UserID, pr.CreatedAt, pr.ExpiresAt)
	if err != nil {
		return fmt.Errorf("create password reset: %w", dbErr(err))
	}
	return nil
}

// UsePasswordReset marks a reset token used and returns it: ErrNotFound if there is no such
// token, ErrTokenUsed if it was used, ErrTokenExpired if it is past its expiry at now.
func (s *Store) UsePasswordReset(ctx context.Context, tokenHash string, now time.Time) (PasswordReset, error) {
	var pr PasswordReset
	err := s.InTx(ctx, func(tx *Store) error {
		err := tx.queryRow(ctx, `SELECT token_hash, user_id, created_at, expires_at, used_at FROM password_resets WHERE token_hash = ?`, tokenHash).
			Scan(&pr.TokenHash, &pr.UserID, timeCol{&pr.CreatedAt}, timeCol{&pr.ExpiresAt}, nullTimeCol{&pr.UsedAt})
		switch {
		case err != nil:
			return dbErr(err)
		case pr.UsedAt != nil:
			return ErrTokenUsed
		case !now.Before(pr.ExpiresAt):
			return ErrTokenExpired
		}
		return mustAffect(tx.execCount(ctx, `UPDATE password_resets SET used_at = ? WHERE token_hash = ? AND used_at IS NULL`, now, tokenHash))
	})
	if err != nil {
		return PasswordReset{}, fmt.Errorf("use password reset: %w", err)
	}
	return pr, nil
}
