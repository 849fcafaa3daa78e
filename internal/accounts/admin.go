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
func (s *Service) Disable(ctx context.Context, ref string) (User, error) {
	return s.setDisabled(ctx, ref, true)
}

// Enable lets a disabled user log in again.
func (s *Service) Enable(ctx context.Context, ref string) (User, error) {
	return s.setDisabled(ctx, ref, false)
}

func (s *Service) setDisabled(ctx context.Context, ref string, disabled bool) (User, error) {
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
		return nil
	})
	verb := map[bool]string{true: "disable", false: "enable"}[disabled]
	if err != nil {
		return User{}, fmt.Errorf("%s user: %w", verb, err)
	}
	s.log.InfoContext(ctx, "user "+verb+"d", "user_id", out.ID)
	return userOf(out), nil
}
