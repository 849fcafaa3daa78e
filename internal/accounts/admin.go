package accounts

import (
	"context"
	"fmt"
	"strings"

	"github.com/pocketmolt/pocketmolt/internal/store"
)

// Get returns the user ref names: a user id ("u-…") or an email. store.ErrNotFound (wrapped)
// when there is none.
func (s *Service) Get(ctx context.Context, ref string) (User, error) {
	u, err := lookupUser(ctx, s.store, ref)
	if err != nil {
		return User{}, err
	}
	return userOf(u), nil
}

// lookupUser finds the user ref names in st: an email when it has an @, else an id.
func lookupUser(ctx context.Context, st *store.Store, ref string) (store.User, error) {
	if strings.Contains(ref, "@") {
		norm, err := NormalizeEmail(ref)
		if err != nil {
			return store.User{}, fmt.Errorf("user %q: %w", ref, store.ErrNotFound)
		}
		return st.GetUserByEmail(ctx, norm)
	}
	return st.GetUser(ctx, ref)
}

// List returns every user, oldest first.
func (s *Service) List(ctx context.Context) ([]User, error) {
	us, err := s.store.ListUsers(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]User, 0, len(us))
	for _, u := range us {
		out = append(out, userOf(u))
	}
	return out, nil
}

// Disable stops the user ref names from logging in and ends their sessions; their
// subscription and bot are billing's business. Disabling a disabled user is not an error.
// It is in the audit log under actor, in the same transaction.
func (s *Service) Disable(ctx context.Context, actor, ref string) (User, error) {
	return s.setDisabled(ctx, actor, ref, true)
}

// Enable lets a disabled user log in again; audited as Disable is.
func (s *Service) Enable(ctx context.Context, actor, ref string) (User, error) {
	return s.setDisabled(ctx, actor, ref, false)
}

func (s *Service) setDisabled(ctx context.Context, actor, ref string, disabled bool) (User, error) {
	verb := map[bool]string{true: "disable", false: "enable"}[disabled]
	var out store.User
	err := s.store.InTx(ctx, func(tx *store.Store) error {
		u, err := lookupUser(ctx, tx, ref)
		if err != nil {
			return err
		}
		now := s.clock()
		if err := tx.SetUserDisabled(ctx, u.ID, disabled, now); err != nil {
			return err
		}
		if disabled {
			if err := tx.DeleteUserWebSessions(ctx, u.ID); err != nil {
				return err
			}
		}
		u.Disabled, u.UpdatedAt = disabled, now
		out = u
		_, err = tx.AppendAudit(ctx, store.AuditEntry{Time: now, Actor: actor, Action: "user." + verb, Target: u.ID, Detail: u.Email})
		return err
	})
	if err != nil {
		return User{}, fmt.Errorf("%s user: %w", verb, err)
	}
	s.log.InfoContext(ctx, "user "+verb+"d", "user_id", out.ID)
	return userOf(out), nil
}
