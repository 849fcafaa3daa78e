package store

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

func adminCert(serial, name string, notBefore time.Time) Certificate {
	c := cert(serial, "", notBefore)
	c.Kind, c.Subject = KindAdmin, name
	c.NotAfter = notBefore.Add(365 * 24 * time.Hour)
	return c
}

// pkiSuite is the part of the behaviour suite about issue 6's PKI: tokens that enroll a host
// once, renewals that supersede, and the last admin.
func pkiSuite(t *testing.T, open func(t *testing.T) *Store) {
	t.Run("enroll invalidates the host's other tokens", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		mustOK(t, s.CreateHost(ctx, host("h1")))
		mustOK(t, s.CreateHost(ctx, host("h2")))
		for _, id := range []string{"t1", "t2", "t3"} {
			mustOK(t, s.CreateToken(ctx, token(id, "h1")))
		}
		mustOK(t, s.CreateToken(ctx, token("other", "h2")))
		now := ts(time.Minute)
		mustOK(t, s.Enroll(ctx, "t2", now, cert("01", "", now)))

		toks, err := s.ListTokens(ctx, "h1")
		mustOK(t, err)
		for _, tok := range toks {
			switch tok.ID {
			case "t2":
				mustEqual(t, "used_at of t2", tok.UsedAt, &now)
				mustEqual(t, "invalidated_at of t2", tok.InvalidatedAt, nil)
			default:
				mustEqual(t, "used_at of "+tok.ID, tok.UsedAt, nil)
				mustEqual(t, "invalidated_at of "+tok.ID, tok.InvalidatedAt, &now)
			}
		}
		other, err := s.GetToken(ctx, "other")
		mustOK(t, err)
		mustEqual(t, "another host's token", other.InvalidatedAt, nil)

		// The others enroll nothing, and say why; nothing changes.
		hostBefore, _, certsBefore := snapshotCerts(t, s)
		for _, id := range []string{"t1", "t3"} {
			mustIs(t, s.Enroll(ctx, id, ts(2*time.Minute), cert("02", "", now)), ErrHostEnrolled)
		}
		hostAfter, _, certsAfter := snapshotCerts(t, s)
		mustEqual(t, "hosts", hostAfter, hostBefore)
		mustEqual(t, "certs", certsAfter, certsBefore)
	})

	t.Run("a token of an enrolled or revoked host enrolls nothing", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		enrolled := host("h1")
		enrolled.EnrolledAt = ptr(ts(0))
		mustOK(t, s.CreateHost(ctx, enrolled))
		revoked := host("h2")
		revoked.RevokedAt = ptr(ts(0))
		mustOK(t, s.CreateHost(ctx, revoked))
		// Tokens made by hand, as a race with CreateToken could leave them.
		mustOK(t, s.CreateToken(ctx, token("t1", "h1")))
		mustOK(t, s.CreateToken(ctx, token("t2", "h2")))
		mustIs(t, s.Enroll(ctx, "t1", ts(time.Minute), cert("01", "", ts(0))), ErrHostEnrolled)
		mustIs(t, s.Enroll(ctx, "t2", ts(time.Minute), cert("02", "", ts(0))), ErrHostRevoked)
		for _, id := range []string{"t1", "t2"} {
			tok, err := s.GetToken(ctx, id)
			mustOK(t, err)
			mustEqual(t, "used_at of "+id, tok.UsedAt, nil)
		}
		mustIs(t, second(s.GetCert(ctx, "01")), ErrNotFound)
	})

	t.Run("concurrent enroll with several tokens of one host", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		mustOK(t, s.CreateHost(ctx, host("h1")))
		const tokens, each = 4, 3
		for i := range tokens {
			mustOK(t, s.CreateToken(ctx, token(fmt.Sprint("t", i), "h1")))
		}
		errs := make([]error, tokens*each)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range errs {
			wg.Go(func() {
				<-start
				errs[i] = s.Enroll(ctx, fmt.Sprint("t", i%tokens), ts(time.Minute), cert(fmt.Sprintf("%02x", i), "h1", ts(0)))
			})
		}
		close(start)
		wg.Wait()
		won := 0
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case errors.Is(err, ErrTokenUsed), errors.Is(err, ErrHostEnrolled):
			default:
				t.Errorf("Enroll: %v", err)
			}
		}
		if won != 1 {
			t.Fatalf("%d enrollments succeeded, want 1", won)
		}
		certs, err := s.ListCerts(ctx)
		mustOK(t, err)
		if len(certs) != 1 {
			t.Fatalf("%d certificates, want 1", len(certs))
		}
		toks, err := s.ListTokens(ctx, "h1")
		mustOK(t, err)
		used := 0
		for _, tok := range toks {
			if tok.UsedAt != nil {
				used++
			} else if tok.InvalidatedAt == nil {
				t.Errorf("token %s is still usable", tok.ID)
			}
		}
		mustEqual(t, "used tokens", used, 1)
	})

	t.Run("renewal supersedes", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		mustOK(t, s.CreateHost(ctx, host("h1")))
		mustOK(t, s.CreateHost(ctx, host("h2")))
		mustOK(t, s.CreateToken(ctx, token("t1", "h1")))
		mustOK(t, s.Enroll(ctx, "t1", ts(0), cert("a0", "", ts(0))))
		mustOK(t, s.InsertCert(ctx, cert("b0", "h2", ts(0))))

		// The session uses a0; three renewals over it.
		for i, serial := range []string{"a1", "a2", "a3"} {
			mustOK(t, s.RenewCert(ctx, "h1", "a0", cert(serial, "", ts(time.Duration(i+1)*time.Minute)), ts(time.Duration(i+1)*time.Minute)))
		}
		h, err := s.GetHost(ctx, "h1")
		mustOK(t, err)
		mustEqual(t, "newest", h.CertSerial, "a3")
		want := map[string]struct{ revoked, superseded *time.Time }{
			"a0": {nil, ptr(ts(time.Minute))}, // the session's: superseded at the first renewal
			"a1": {ptr(ts(2 * time.Minute)), nil},
			"a2": {ptr(ts(3 * time.Minute)), nil},
			"a3": {nil, nil},
			"b0": {nil, nil}, // another host's
		}
		for serial, w := range want {
			c, err := s.GetCert(ctx, serial)
			mustOK(t, err)
			mustEqual(t, "revoked_at of "+serial, c.RevokedAt, w.revoked)
			mustEqual(t, "superseded_at of "+serial, c.SupersededAt, w.superseded)
		}

		// A session opened with an older certificate retires nothing.
		n, err := s.RetireOlderCerts(ctx, "h1", "a0", ts(time.Hour))
		mustOK(t, err)
		mustEqual(t, "retired by an older certificate", n, int64(0))
		// One opened with the newest retires the rest.
		n, err = s.RetireOlderCerts(ctx, "h1", "a3", ts(time.Hour))
		mustOK(t, err)
		mustEqual(t, "retired by the newest", n, int64(1))
		c, err := s.GetCert(ctx, "a0")
		mustOK(t, err)
		mustEqual(t, "a0 after the newest was used", c.RevokedAt, ptr(ts(time.Hour)))
		c, err = s.GetCert(ctx, "b0")
		mustOK(t, err)
		mustEqual(t, "another host's certificate", c.RevokedAt, nil)
	})

	t.Run("renewal of a revoked or unknown host changes nothing", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		mustOK(t, s.CreateHost(ctx, host("h1")))
		mustOK(t, s.InsertCert(ctx, cert("a0", "h1", ts(0))))
		mustOK(t, s.RevokeHost(ctx, "h1", ts(time.Minute)))
		_, _, before := snapshotCerts(t, s)
		mustIs(t, s.RenewCert(ctx, "h1", "a0", cert("a1", "", ts(time.Hour)), ts(time.Hour)), ErrHostRevoked)
		mustIs(t, s.RenewCert(ctx, "nope", "a0", cert("a2", "", ts(time.Hour)), ts(time.Hour)), ErrNotFound)
		_, _, after := snapshotCerts(t, s)
		mustEqual(t, "certs", after, before)
	})

	t.Run("the last admin cannot be revoked", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		expired := adminCert("e1", "old", ts(-400*24*time.Hour))
		mustOK(t, s.InsertCert(ctx, expired))
		mustOK(t, s.InsertCert(ctx, adminCert("a1", "alice", ts(0))))
		mustOK(t, s.InsertCert(ctx, adminCert("a2", "alice", ts(time.Hour))))
		mustOK(t, s.InsertCert(ctx, adminCert("b1", "bob", ts(0))))
		at := ts(2 * time.Hour)

		// By name: alice's two go; bob is then the last.
		revoked, err := s.RevokeAdmin(ctx, "alice", at)
		mustOK(t, err)
		mustEqual(t, "revoked", len(revoked), 2)
		_, err = s.RevokeAdmin(ctx, "alice", at)
		mustIs(t, err, ErrNotFound)
		mustIs(t, second(s.RevokeAdmin(ctx, "bob", at)), ErrLastAdmin)
		// By serial alike.
		mustIs(t, second(s.RevokeCert(ctx, "b1", at)), ErrLastAdmin)
		c, err := s.GetCert(ctx, "b1")
		mustOK(t, err)
		mustEqual(t, "bob's certificate after the refusals", c.RevokedAt, nil)
		// The expired one does not count, and revoking it is no loss.
		mustOK(t, second(s.RevokeCert(ctx, "e1", at)))
		mustIs(t, second(s.RevokeAdmin(ctx, "old", at)), ErrNotFound) // nothing left to revoke

		// With another valid admin, bob can go.
		mustOK(t, s.InsertCert(ctx, adminCert("c1", "carol", ts(0))))
		mustOK(t, second(s.RevokeCert(ctx, "b1", at)))
		list, err := s.ListAdminCerts(ctx)
		mustOK(t, err)
		var names []string
		for _, c := range list {
			names = append(names, c.Subject+"/"+c.Serial)
		}
		mustEqual(t, "ListAdminCerts", names, []string{"alice/a2", "alice/a1", "bob/b1", "carol/c1", "old/e1"})
	})

	t.Run("concurrent revocations leave one admin", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		const n = 6
		for i := range n {
			mustOK(t, s.InsertCert(ctx, adminCert(fmt.Sprint("s", i), fmt.Sprint("op", i), ts(0))))
		}
		errs := make([]error, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				if i%2 == 0 {
					_, errs[i] = s.RevokeAdmin(ctx, fmt.Sprint("op", i), ts(time.Hour))
				} else {
					_, errs[i] = s.RevokeCert(ctx, fmt.Sprint("s", i), ts(time.Hour))
				}
			})
		}
		close(start)
		wg.Wait()
		refused := 0
		for _, err := range errs {
			switch {
			case errors.Is(err, ErrLastAdmin):
				refused++
			case err != nil:
				t.Errorf("revoke: %v", err)
			}
		}
		mustEqual(t, "refused revocations", refused, 1)
		valid, err := s.countValidAdmins(ctx, ts(time.Hour), "")
		mustOK(t, err)
		mustEqual(t, "valid admins left", valid, 1)
	})

	t.Run("revoked server serials", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		server := func(serial string, notBefore time.Time, revoked *time.Time) Certificate {
			c := cert(serial, "", notBefore)
			c.Kind, c.RevokedAt = KindServer, revoked
			return c
		}
		mustOK(t, s.InsertCert(ctx, server("s1", ts(-48*time.Hour), ptr(ts(-47*time.Hour))))) // expired
		mustOK(t, s.InsertCert(ctx, server("s2", ts(-time.Hour), ptr(ts(-30*time.Minute)))))
		mustOK(t, s.InsertCert(ctx, server("s3", ts(-time.Hour), ptr(ts(-10*time.Minute)))))
		mustOK(t, s.InsertCert(ctx, server("s4", ts(0), nil)))
		agent := cert("a1", "", ts(0))
		agent.RevokedAt = ptr(ts(0))
		mustOK(t, s.InsertCert(ctx, agent))
		got, err := s.RevokedServerSerials(ctx, ts(0), 10)
		mustOK(t, err)
		mustEqual(t, "revoked servers", got, []string{"s3", "s2"})
		got, err = s.RevokedServerSerials(ctx, ts(0), 1)
		mustOK(t, err)
		mustEqual(t, "limited", got, []string{"s3"})
	})
}

// snapshotCerts reads hosts and certificates, for tests without snapshot's two tokens.
func snapshotCerts(t *testing.T, s *Store) ([]Host, []Token, []Certificate) {
	t.Helper()
	hosts, err := s.ListHosts(t.Context())
	mustOK(t, err)
	certs, err := s.ListCerts(t.Context())
	mustOK(t, err)
	return hosts, nil, certs
}
