package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/store/storetest"
)

// A backend makes a URL for a fresh, empty database per test.
type backend struct {
	name   string
	newURL func(t *testing.T) string
}

func backends() []backend {
	return []backend{
		{"sqlite", sqliteURL},
		{"postgres", postgresURL},
	}
}

func sqliteURL(t *testing.T) string {
	return "sqlite:" + filepath.Join(t.TempDir(), "pm.db")
}

// postgresURL is a fresh PostgreSQL database for one test.
func postgresURL(t *testing.T) string { return storetest.PostgresURL(t) }

func openURL(t *testing.T, rawURL string) *Store {
	t.Helper()
	s, err := Open(t.Context(), rawURL)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestStore(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			runSuite(t, func(t *testing.T) *Store { return openURL(t, b.newURL(t)) })
		})
	}
}

// ts is a fixed, UTC, microsecond-precision instant plus d.
func ts(d time.Duration) time.Time {
	return time.Date(2026, 11, 22, 10, 0, 0, 123456000, time.UTC).Add(d)
}

func ptr[T any](v T) *T { return &v }

func mustEqual[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

func mustIs(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error = %v, want %v", err, target)
	}
}

func mustOK(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func host(id string) Host {
	return Host{ID: id, Name: "name-" + id, CreatedAt: ts(0)}
}

func cert(serial, hostID string, notBefore time.Time) Certificate {
	return Certificate{
		Serial: serial, Kind: KindAgent, Subject: "CN=" + serial, HostID: hostID,
		Fingerprint: strings.Repeat("ab", 32), NotBefore: notBefore, NotAfter: notBefore.Add(24 * time.Hour),
	}
}

func token(id, hostID string) Token {
	return Token{ID: id, HostID: hostID, Hash: []byte("0123456789abcdef0123456789abcdef"), CreatedAt: ts(0), ExpiresAt: ts(time.Hour)}
}

// runSuite is the behaviour suite every backend must pass; open returns a
// Store on a fresh, empty database.
func runSuite(t *testing.T, open func(t *testing.T) *Store) {
	t.Run("Dialect and Ping", func(t *testing.T) {
		s := open(t)
		if d := s.Dialect(); d != DialectSQLite && d != DialectPostgres {
			t.Fatalf("Dialect() = %q", d)
		}
		mustOK(t, s.Ping(t.Context()))
	})

	t.Run("hosts create get list", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		full := Host{
			ID: "h1", Name: "zeta", CreatedAt: ts(0), EnrolledAt: ptr(ts(time.Minute)),
			LastSeenAt: ptr(ts(2 * time.Minute)), RevokedAt: ptr(ts(3 * time.Minute)), Draining: true,
			Facts: []byte(`{"cpus":4}`), SessionID: "sess-1", CertSerial: "0a0b",
			MemoryBytes: 8 << 30, CapacityBots: 3, CapacityMemoryBytes: 6 << 30,
		}
		bare := Host{ID: "h2", Name: "alpha", CreatedAt: ts(time.Second)}
		mustOK(t, s.CreateHost(ctx, full))
		mustOK(t, s.CreateHost(ctx, bare))

		got, err := s.GetHost(ctx, "h1")
		mustOK(t, err)
		mustEqual(t, "GetHost h1", got, full)
		got, err = s.GetHost(ctx, "h2")
		mustOK(t, err)
		mustEqual(t, "GetHost h2", got, bare)
		if got.Facts != nil {
			t.Fatalf("Facts = %#v, want nil", got.Facts)
		}
		got, err = s.GetHostByName(ctx, "zeta")
		mustOK(t, err)
		mustEqual(t, "GetHostByName", got, full)

		list, err := s.ListHosts(ctx)
		mustOK(t, err)
		mustEqual(t, "ListHosts", list, []Host{bare, full})
	})

	t.Run("bots", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		mustOK(t, s.CreateHost(ctx, host("h1")))
		mustOK(t, s.CreateHost(ctx, host("h2")))
		b := Bot{
			ID: "b1", Name: "alice", HostID: "h1", Owner: Owner{Kind: OwnerOperator}, Placement: PlacementShared,
			Spec: []byte(`{"image":"x"}`), Secrets: "v1:k1:sealed",
			SpecVersion: 1, Desired: DesiredRunning, CreatedAt: ts(0), UpdatedAt: ts(0),
		}
		mustOK(t, s.CreateBot(ctx, b))
		got, err := s.GetBot(ctx, "b1")
		mustOK(t, err)
		mustEqual(t, "GetBot", got, b)
		got, err = s.GetBotByName(ctx, "alice")
		mustOK(t, err)
		mustEqual(t, "GetBotByName", got, b)

		dup := b
		dup.ID = "b2"
		if err := s.CreateBot(ctx, dup); !errors.Is(err, ErrConflict) {
			t.Fatalf("duplicate name: %v, want ErrConflict", err)
		}
		orphan := b
		orphan.ID, orphan.Name, orphan.HostID = "b3", "bob", "nowhere"
		if err := s.CreateBot(ctx, orphan); !errors.Is(err, ErrNotFound) {
			t.Fatalf("unknown host: %v, want ErrNotFound", err)
		}
		bad := b
		bad.ID, bad.Name, bad.Desired = "b4", "carol", "paused"
		if err := s.CreateBot(ctx, bad); err == nil {
			t.Fatal("a desired state outside running/stopped/deleted was accepted")
		}

		mustOK(t, s.SetBotSpec(ctx, "b1", []byte(`{"image":"img:2"}`), ts(30*time.Second)))
		got, err = s.GetBot(ctx, "b1")
		mustOK(t, err)
		if string(got.Spec) != `{"image":"img:2"}` || got.SpecVersion != b.SpecVersion || !got.UpdatedAt.Equal(ts(30*time.Second)) {
			t.Fatalf("after SetBotSpec: %+v", got)
		}
		mustOK(t, s.SetBotDesired(ctx, "b1", DesiredDeleted, true, ts(time.Minute)))
		mustOK(t, s.SetBotObserved(ctx, "b1", []byte(`{"status":"running"}`), ts(2*time.Minute)))
		got, err = s.GetBot(ctx, "b1")
		mustOK(t, err)
		if got.Desired != DesiredDeleted || !got.Purge || string(got.Observed) != `{"status":"running"}` ||
			!got.UpdatedAt.Equal(ts(time.Minute)) || got.ObservedAt == nil || !got.ObservedAt.Equal(ts(2*time.Minute)) {
			t.Fatalf("after updates: %+v", got)
		}
		onH1, err := s.ListBotsByHost(ctx, "h1")
		mustOK(t, err)
		onH2, err := s.ListBotsByHost(ctx, "h2")
		mustOK(t, err)
		if len(onH1) != 1 || len(onH2) != 0 {
			t.Fatalf("by host: %d on h1, %d on h2", len(onH1), len(onH2))
		}
		if err := s.DeleteHost(ctx, "h1"); err == nil {
			t.Fatal("a host with bots was deleted")
		}
		mustOK(t, s.DeleteBot(ctx, "b1"))
		if err := s.DeleteBot(ctx, "b1"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("second delete: %v, want ErrNotFound", err)
		}
		if err := s.SetBotDesired(ctx, "b1", DesiredRunning, false, ts(0)); !errors.Is(err, ErrNotFound) {
			t.Fatalf("desired of a deleted bot: %v, want ErrNotFound", err)
		}
		if err := s.SetBotSpec(ctx, "b1", []byte(`{}`), ts(0)); !errors.Is(err, ErrNotFound) {
			t.Fatalf("spec of a deleted bot: %v, want ErrNotFound", err)
		}
		all, err := s.ListBots(ctx)
		mustOK(t, err)
		if len(all) != 0 {
			t.Fatalf("bots left: %d", len(all))
		}
		mustOK(t, s.DeleteHost(ctx, "h1"))
	})

	t.Run("hosts errors", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		mustOK(t, s.CreateHost(ctx, host("h1")))
		for _, tc := range []struct {
			name string
			err  error
			want error
		}{
			{"duplicate id", s.CreateHost(ctx, Host{ID: "h1", Name: "other", CreatedAt: ts(0)}), ErrConflict},
			{"duplicate name", s.CreateHost(ctx, Host{ID: "h2", Name: "name-h1", CreatedAt: ts(0)}), ErrConflict},
			{"get unknown", second(s.GetHost(ctx, "nope")), ErrNotFound},
			{"get unknown name", second(s.GetHostByName(ctx, "nope")), ErrNotFound},
			{"set session unknown", s.SetSession(ctx, "nope", "s", ts(0)), ErrNotFound},
			{"heartbeat unknown", s.RecordHeartbeat(ctx, "nope", ts(0), nil, 0), ErrNotFound},
			{"memory unknown", s.SetHostMemory(ctx, "nope", 1<<30), ErrNotFound},
			{"capacity unknown", s.SetHostCapacity(ctx, "nope", 1, 0), ErrNotFound},
			{"revoke unknown", s.RevokeHost(ctx, "nope", ts(0)), ErrNotFound},
			{"draining unknown", s.SetDraining(ctx, "nope", true), ErrNotFound},
			{"set cert unknown", s.SetHostCert(ctx, "nope", "01"), ErrNotFound},
			{"delete unknown", s.DeleteHost(ctx, "nope"), ErrNotFound},
		} {
			t.Run(tc.name, func(t *testing.T) {
				mustIs(t, tc.err, tc.want)
				if !strings.Contains(tc.err.Error(), "h1") && !strings.Contains(tc.err.Error(), "h2") && !strings.Contains(tc.err.Error(), "nope") {
					t.Errorf("error %q does not name what it was about", tc.err)
				}
			})
		}
		list, err := s.ListHosts(ctx)
		mustOK(t, err)
		mustEqual(t, "hosts after failed writes", list, []Host{host("h1")})
	})

	t.Run("sessions", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		mustOK(t, s.CreateHost(ctx, host("h1")))
		mustOK(t, s.CreateHost(ctx, host("h2")))
		mustOK(t, s.SetSession(ctx, "h1", "s1", ts(time.Minute)))
		mustOK(t, s.SetSession(ctx, "h2", "s2", ts(time.Minute)))
		h, err := s.GetHost(ctx, "h1")
		mustOK(t, err)
		mustEqual(t, "session", h.SessionID, "s1")
		mustEqual(t, "last seen", h.LastSeenAt, ptr(ts(time.Minute)))

		// A newer session replaces the old; the old one's disconnect must not clear it.
		mustOK(t, s.SetSession(ctx, "h1", "s1b", ts(2*time.Minute)))
		for _, tc := range []struct {
			host, session string
			want          bool
		}{
			{"h1", "s1", false},
			{"h1", "s1b", true},
			{"h1", "s1b", false},
			{"nope", "s1", false},
		} {
			ok, err := s.ClearSession(ctx, tc.host, tc.session)
			mustOK(t, err)
			if ok != tc.want {
				t.Fatalf("ClearSession(%s, %s) = %v, want %v", tc.host, tc.session, ok, tc.want)
			}
		}
		h, err = s.GetHost(ctx, "h1")
		mustOK(t, err)
		mustEqual(t, "session after clear", h.SessionID, "")
		mustEqual(t, "last seen after clear", h.LastSeenAt, ptr(ts(2*time.Minute)))

		mustOK(t, s.ClearAllSessions(ctx))
		list, err := s.ListHosts(ctx)
		mustOK(t, err)
		for _, h := range list {
			if h.SessionID != "" {
				t.Fatalf("host %s still has session %q", h.ID, h.SessionID)
			}
		}
	})

	t.Run("heartbeat and draining", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		mustOK(t, s.CreateHost(ctx, host("h1")))
		mustOK(t, s.RecordHeartbeat(ctx, "h1", ts(time.Minute), []byte(`{"a":1}`), 0))
		mustOK(t, s.SetDraining(ctx, "h1", true))
		h, err := s.GetHost(ctx, "h1")
		mustOK(t, err)
		want := host("h1")
		want.LastSeenAt, want.Facts, want.Draining = ptr(ts(time.Minute)), []byte(`{"a":1}`), true
		mustEqual(t, "host", h, want)

		mustOK(t, s.RecordHeartbeat(ctx, "h1", ts(2*time.Minute), nil, 0))
		mustOK(t, s.SetDraining(ctx, "h1", false))
		h, err = s.GetHost(ctx, "h1")
		mustOK(t, err)
		want.LastSeenAt, want.Facts, want.Draining = ptr(ts(2*time.Minute)), nil, false
		mustEqual(t, "host", h, want)
	})

	t.Run("memory and capacity limits", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		mustOK(t, s.CreateHost(ctx, host("h1")))
		mustOK(t, s.CreateHost(ctx, host("h2")))
		get := func(id string) Host {
			t.Helper()
			h, err := s.GetHost(ctx, id)
			mustOK(t, err)
			return h
		}
		// Enrollment records the memory; a heartbeat does not change it once known.
		mustOK(t, s.SetHostMemory(ctx, "h1", 8<<30))
		mustOK(t, s.RecordHeartbeat(ctx, "h1", ts(time.Minute), []byte(`{}`), 1<<50))
		mustEqual(t, "h1 memory after a heartbeat", get("h1").MemoryBytes, int64(8<<30))
		// A host whose memory is unknown takes the first heartbeat's, and only the first.
		mustOK(t, s.RecordHeartbeat(ctx, "h2", ts(time.Minute), []byte(`{}`), 0))
		mustEqual(t, "h2 memory after a heartbeat without memory", get("h2").MemoryBytes, int64(0))
		mustOK(t, s.RecordHeartbeat(ctx, "h2", ts(time.Minute), []byte(`{}`), 4<<30))
		mustOK(t, s.RecordHeartbeat(ctx, "h2", ts(2*time.Minute), []byte(`{}`), 1<<50))
		mustEqual(t, "h2 memory", get("h2").MemoryBytes, int64(4<<30))

		mustOK(t, s.SetHostCapacity(ctx, "h1", 5, 0))
		if h := get("h1"); h.CapacityBots != 5 || h.CapacityMemoryBytes != 0 {
			t.Fatalf("after setting bots: %+v", h)
		}
		mustOK(t, s.SetHostCapacity(ctx, "h1", 5, 16<<30))
		if h := get("h1"); h.CapacityBots != 5 || h.CapacityMemoryBytes != 16<<30 {
			t.Fatalf("after setting memory: %+v", h)
		}
		mustOK(t, s.SetHostCapacity(ctx, "h1", 0, 0))
		if h := get("h1"); h.CapacityBots != 0 || h.CapacityMemoryBytes != 0 || h.MemoryBytes != 8<<30 {
			t.Fatalf("after clearing: %+v", h)
		}
	})

	t.Run("concurrent heartbeats", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		const hosts, beats = 8, 25
		for i := range hosts {
			mustOK(t, s.CreateHost(ctx, host(fmt.Sprint("h", i))))
		}
		var wg sync.WaitGroup
		errs := make(chan error, hosts*beats)
		for i := range hosts {
			wg.Go(func() {
				for j := range beats {
					id := fmt.Sprint("h", i)
					if err := s.RecordHeartbeat(ctx, id, ts(time.Duration(j)*time.Second), []byte(`{}`), 0); err != nil {
						errs <- err
					}
					if _, err := s.GetHost(ctx, id); err != nil {
						errs <- err
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		list, err := s.ListHosts(ctx)
		mustOK(t, err)
		for _, h := range list {
			mustEqual(t, "last seen of "+h.ID, h.LastSeenAt, ptr(ts((beats-1)*time.Second)))
		}
	})

	t.Run("revoke host", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		mustOK(t, s.CreateHost(ctx, host("h1")))
		mustOK(t, s.CreateHost(ctx, host("h2")))
		mustOK(t, s.SetSession(ctx, "h1", "s1", ts(0)))
		old := cert("01", "h1", ts(0))
		old.RevokedAt = ptr(ts(time.Second))
		mustOK(t, s.InsertCert(ctx, old))
		mustOK(t, s.InsertCert(ctx, cert("02", "h1", ts(time.Minute))))
		mustOK(t, s.InsertCert(ctx, cert("03", "h2", ts(time.Minute))))
		mustOK(t, s.CreateToken(ctx, token("t1", "h1")))
		mustOK(t, s.CreateToken(ctx, token("t2", "h2")))

		mustOK(t, s.RevokeHost(ctx, "h1", ts(time.Hour)))
		// Its tokens are gone; other hosts' stay.
		mustIs(t, second(s.GetToken(ctx, "t1")), ErrNotFound)
		mustOK(t, second(s.GetToken(ctx, "t2")))
		h, err := s.GetHost(ctx, "h1")
		mustOK(t, err)
		mustEqual(t, "revoked_at", h.RevokedAt, ptr(ts(time.Hour)))
		mustEqual(t, "session", h.SessionID, "")
		for serial, want := range map[string]*time.Time{"01": ptr(ts(time.Second)), "02": ptr(ts(time.Hour)), "03": nil} {
			c, err := s.GetCert(ctx, serial)
			mustOK(t, err)
			mustEqual(t, "revoked_at of "+serial, c.RevokedAt, want)
		}
		// Revoking again keeps the first time.
		mustOK(t, s.RevokeHost(ctx, "h1", ts(2*time.Hour)))
		h, err = s.GetHost(ctx, "h1")
		mustOK(t, err)
		mustEqual(t, "revoked_at after second revoke", h.RevokedAt, ptr(ts(time.Hour)))
	})

	t.Run("delete host keeps certificates", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		mustOK(t, s.CreateHost(ctx, host("h1")))
		mustOK(t, s.CreateToken(ctx, token("t1", "h1")))
		c := cert("01", "h1", ts(0))
		mustOK(t, s.InsertCert(ctx, c))
		mustOK(t, s.DeleteHost(ctx, "h1"))

		mustIs(t, second(s.GetHost(ctx, "h1")), ErrNotFound)
		mustIs(t, second(s.GetToken(ctx, "t1")), ErrNotFound)
		got, err := s.GetCert(ctx, "01")
		mustOK(t, err)
		c.HostID = ""
		mustEqual(t, "cert after host delete", got, c)
		// The certificate can still be revoked.
		got, err = s.RevokeCert(ctx, "01", ts(time.Hour))
		mustOK(t, err)
		mustEqual(t, "revoked_at", got.RevokedAt, ptr(ts(time.Hour)))
	})

	t.Run("tokens", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		mustOK(t, s.CreateHost(ctx, host("h1")))
		tok := token("t1", "h1")
		mustOK(t, s.CreateToken(ctx, tok))
		got, err := s.GetToken(ctx, "t1")
		mustOK(t, err)
		mustEqual(t, "token", got, tok)

		mustIs(t, s.CreateToken(ctx, token("t1", "h1")), ErrConflict)
		mustIs(t, s.CreateToken(ctx, token("t2", "nope")), ErrNotFound)
		mustIs(t, second(s.GetToken(ctx, "nope")), ErrNotFound)
	})

	t.Run("enroll", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		mustOK(t, s.CreateHost(ctx, host("h1")))
		mustOK(t, s.CreateToken(ctx, token("t1", "h1")))
		c := cert("01", "", ts(time.Minute))
		now := ts(time.Minute)
		mustOK(t, s.Enroll(ctx, "t1", now, c))

		tok, err := s.GetToken(ctx, "t1")
		mustOK(t, err)
		mustEqual(t, "used_at", tok.UsedAt, &now)
		h, err := s.GetHost(ctx, "h1")
		mustOK(t, err)
		mustEqual(t, "enrolled_at", h.EnrolledAt, &now)
		mustEqual(t, "cert_serial", h.CertSerial, "01")
		mustEqual(t, "cert_expires_at", h.CertExpiresAt, &c.NotAfter)
		hs, err := s.ListHosts(ctx)
		mustOK(t, err)
		mustEqual(t, "listed cert_expires_at", hs[0].CertExpiresAt, &c.NotAfter)
		got, err := s.GetCert(ctx, "01")
		mustOK(t, err)
		c.HostID = "h1"
		mustEqual(t, "cert", got, c)
	})

	t.Run("enroll errors change nothing", func(t *testing.T) {
		for _, tc := range []struct {
			name  string
			token string
			now   time.Time
			cert  Certificate
			want  error
		}{
			{"unknown token", "nope", ts(time.Minute), cert("new", "h1", ts(0)), ErrNotFound},
			{"used token", "used", ts(time.Minute), cert("new", "h1", ts(0)), ErrTokenUsed},
			{"expired at expiry", "fresh", ts(time.Hour), cert("new", "h1", ts(0)), ErrTokenExpired},
			{"expired after expiry", "fresh", ts(2 * time.Hour), cert("new", "h1", ts(0)), ErrTokenExpired},
			{"serial taken", "fresh", ts(time.Minute), cert("taken", "h1", ts(0)), ErrConflict},
		} {
			t.Run(tc.name, func(t *testing.T) {
				s, ctx := open(t), t.Context()
				mustOK(t, s.CreateHost(ctx, host("h1")))
				used := token("used", "h1")
				used.UsedAt = ptr(ts(time.Second))
				mustOK(t, s.CreateToken(ctx, used))
				mustOK(t, s.CreateToken(ctx, token("fresh", "h1")))
				mustOK(t, s.InsertCert(ctx, cert("taken", "", ts(0))))
				hostBefore, tokensBefore, certsBefore := snapshot(t, s)

				err := s.Enroll(ctx, tc.token, tc.now, tc.cert)
				mustIs(t, err, tc.want)
				if !strings.Contains(err.Error(), tc.token) {
					t.Errorf("error %q does not name the token", err)
				}
				hostAfter, tokensAfter, certsAfter := snapshot(t, s)
				mustEqual(t, "host", hostAfter, hostBefore)
				mustEqual(t, "tokens", tokensAfter, tokensBefore)
				mustEqual(t, "certs", certsAfter, certsBefore)
			})
		}
	})

	t.Run("enroll wrong host", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		mustOK(t, s.CreateHost(ctx, host("h1")))
		mustOK(t, s.CreateHost(ctx, host("h2")))
		mustOK(t, s.CreateToken(ctx, token("t1", "h1")))
		if err := s.Enroll(ctx, "t1", ts(time.Minute), cert("01", "h2", ts(0))); err == nil {
			t.Fatal("Enroll with a certificate for another host succeeded")
		}
		tok, err := s.GetToken(ctx, "t1")
		mustOK(t, err)
		mustEqual(t, "used_at", tok.UsedAt, nil)
	})

	t.Run("concurrent enroll", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		mustOK(t, s.CreateHost(ctx, host("h1")))
		mustOK(t, s.CreateToken(ctx, token("t1", "h1")))
		const n = 10
		errs := make([]error, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				errs[i] = s.Enroll(ctx, "t1", ts(time.Minute), cert(fmt.Sprintf("%02x", i), "h1", ts(0)))
			})
		}
		close(start)
		wg.Wait()
		var won int
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case errors.Is(err, ErrTokenUsed):
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
		h, err := s.GetHost(ctx, "h1")
		mustOK(t, err)
		mustEqual(t, "cert_serial", h.CertSerial, certs[0].Serial)
	})

	t.Run("certificates", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		mustOK(t, s.CreateHost(ctx, host("h1")))
		root := cert("01", "", ts(0))
		root.Kind = KindRoot
		agent := cert("02", "h1", ts(time.Hour))
		server := cert("03", "", ts(time.Minute))
		server.Kind = KindServer
		for _, c := range []Certificate{root, agent, server} {
			mustOK(t, s.InsertCert(ctx, c))
		}
		got, err := s.GetCert(ctx, "02")
		mustOK(t, err)
		mustEqual(t, "GetCert", got, agent)
		list, err := s.ListCerts(ctx)
		mustOK(t, err)
		mustEqual(t, "ListCerts", list, []Certificate{agent, server, root})

		mustIs(t, s.InsertCert(ctx, cert("01", "", ts(0))), ErrConflict)
		mustIs(t, s.InsertCert(ctx, cert("04", "nope", ts(0))), ErrNotFound)
		mustIs(t, second(s.GetCert(ctx, "nope")), ErrNotFound)
		mustIs(t, second(s.RevokeCert(ctx, "nope", ts(0))), ErrNotFound)
		bad := cert("05", "", ts(0))
		bad.Kind = "bogus"
		if err := s.InsertCert(ctx, bad); err == nil {
			t.Fatal("InsertCert with kind bogus succeeded")
		}

		got, err = s.RevokeCert(ctx, "02", ts(2*time.Hour))
		mustOK(t, err)
		agent.RevokedAt = ptr(ts(2 * time.Hour))
		mustEqual(t, "RevokeCert", got, agent)
		got, err = s.RevokeCert(ctx, "02", ts(3*time.Hour))
		mustOK(t, err)
		mustEqual(t, "RevokeCert again", got, agent)

		mustOK(t, s.SetHostCert(ctx, "h1", "02"))
		h, err := s.GetHost(ctx, "h1")
		mustOK(t, err)
		mustEqual(t, "cert_serial", h.CertSerial, "02")
	})

	t.Run("key pairs", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		kp := KeyPair{Name: "root", CertPEM: []byte("-----BEGIN CERTIFICATE-----\n"), KeySealed: "sealed:1"}
		mustOK(t, s.PutKeyPair(ctx, kp))
		got, err := s.GetKeyPair(ctx, "root")
		mustOK(t, err)
		mustEqual(t, "GetKeyPair", got, kp)
		kp.CertPEM, kp.KeySealed = []byte("other"), "sealed:2"
		mustOK(t, s.PutKeyPair(ctx, kp))
		got, err = s.GetKeyPair(ctx, "root")
		mustOK(t, err)
		mustEqual(t, "GetKeyPair after replace", got, kp)
		mustIs(t, second(s.GetKeyPair(ctx, "nope")), ErrNotFound)
	})

	t.Run("sealed values", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		none, err := s.ListSealed(ctx)
		mustOK(t, err)
		mustEqual(t, "sealed values in an empty database", len(none), 0)

		mustOK(t, s.CreateHost(ctx, host("h1")))
		root := KeyPair{Name: "root", CertPEM: []byte("root cert"), KeySealed: "v1:k1:root"}
		server := KeyPair{Name: "server", CertPEM: []byte("server cert"), KeySealed: "v1:k1:server"}
		mustOK(t, s.PutKeyPair(ctx, server))
		mustOK(t, s.PutKeyPair(ctx, root))
		// A key pair whose key is kept elsewhere (an offline root) seals nothing.
		mustOK(t, s.PutKeyPair(ctx, KeyPair{Name: "offline", CertPEM: []byte("cert"), KeySealed: ""}))
		bot := func(id string) Bot {
			return Bot{ID: id, Name: "name-" + id, HostID: "h1", Owner: Owner{Kind: OwnerOperator}, Placement: PlacementShared,
				Spec: []byte(`{}`), Secrets: "v1:k1:" + id, SpecVersion: 1, Desired: DesiredRunning, CreatedAt: ts(0), UpdatedAt: ts(0)}
		}
		b1, b2 := bot("b1"), bot("b2")
		mustOK(t, s.CreateBot(ctx, b2))
		mustOK(t, s.CreateBot(ctx, b1))

		want := []SealedValue{
			{"key_pairs", "key_sealed", "root", "v1:k1:root"},
			{"key_pairs", "key_sealed", "server", "v1:k1:server"},
			{"bots", "secrets", "b1", "v1:k1:b1"},
			{"bots", "secrets", "b2", "v1:k1:b2"},
		}
		list, err := s.ListSealed(ctx)
		mustOK(t, err)
		mustEqual(t, "ListSealed", list, want)
		if got := fmt.Sprint(list[2]); strings.Contains(got, "v1:k1") || !strings.Contains(got, "b1") {
			t.Errorf("a sealed value prints as %q: want its place, not its value", got)
		}

		// A transaction that fails half way changes nothing.
		boom := errors.New("boom")
		err = s.InTx(ctx, func(tx *Store) error {
			vs, err := tx.ListSealed(ctx)
			mustOK(t, err)
			mustOK(t, tx.ReplaceSealed(ctx, vs[0], "v1:k2:root"))
			mustOK(t, tx.ReplaceSealed(ctx, vs[2], "v1:k2:b1"))
			return boom
		})
		mustIs(t, err, boom)
		list, err = s.ListSealed(ctx)
		mustOK(t, err)
		mustEqual(t, "ListSealed after rollback", list, want)

		// Every value replaced at once; the rows' other columns stay as they were.
		mustOK(t, s.InTx(ctx, func(tx *Store) error {
			vs, err := tx.ListSealed(ctx)
			if err != nil {
				return err
			}
			for _, v := range vs {
				if err := tx.ReplaceSealed(ctx, v, "v1:k2:"+v.Row); err != nil {
					return err
				}
			}
			return nil
		}))
		for i := range want {
			want[i].Value = "v1:k2:" + want[i].Row
		}
		list, err = s.ListSealed(ctx)
		mustOK(t, err)
		mustEqual(t, "ListSealed after replace", list, want)
		gotRoot, err := s.GetKeyPair(ctx, "root")
		mustOK(t, err)
		root.KeySealed = "v1:k2:root"
		mustEqual(t, "root key pair", gotRoot, root)
		gotB1, err := s.GetBot(ctx, "b1")
		mustOK(t, err)
		b1.Secrets = "v1:k2:b1"
		mustEqual(t, "bot b1", gotB1, b1)

		// A stale read, a row that is gone and a place that is not sealed are refused.
		stale := SealedValue{"bots", "secrets", "b2", "v1:k1:b2"}
		mustIs(t, s.ReplaceSealed(ctx, stale, "v1:k3:b2"), ErrConflict)
		mustOK(t, s.DeleteBot(ctx, "b2"))
		mustIs(t, s.ReplaceSealed(ctx, want[3], "v1:k3:b2"), ErrConflict)
		for _, v := range []SealedValue{
			{"bots", "name", "b1", "name-b1"},
			{"hosts", "name", "h1", "name-h1"},
			{"bots; DROP TABLE bots; --", "secrets", "b1", "v1:k2:b1"},
		} {
			err := s.ReplaceSealed(ctx, v, "x")
			if err == nil || errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "not a sealed column") {
				t.Errorf("ReplaceSealed(%s.%s) = %v, want a refusal", v.Table, v.Column, err)
			}
		}
		list, err = s.ListSealed(ctx)
		mustOK(t, err)
		mustEqual(t, "ListSealed after refusals", list, want[:3])
	})

	t.Run("every sealed column is listed", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		q := `SELECT m.name, p.name FROM sqlite_master m JOIN pragma_table_info(m.name) p
			WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' ORDER BY 1, 2`
		if s.Dialect() == DialectPostgres {
			q = `SELECT table_name, column_name FROM information_schema.columns
				WHERE table_schema = current_schema() ORDER BY 1, 2`
		}
		rows, err := s.query(ctx, q)
		mustOK(t, err)
		defer rows.Close()
		columns := map[string]bool{}
		for rows.Next() {
			var table, column string
			mustOK(t, rows.Scan(&table, &column))
			columns[table+"."+column] = true
		}
		mustOK(t, rows.Err())
		listed := map[string]bool{}
		for _, c := range sealedColumns {
			listed[c.table+"."+c.column] = true
			for _, col := range []string{c.column, c.key} {
				if !columns[c.table+"."+col] {
					t.Errorf("sealedColumns names %s.%s, which the schema does not have", c.table, col)
				}
			}
		}
		for col := range columns {
			name := strings.ToLower(col[strings.Index(col, ".")+1:])
			if (strings.Contains(name, "sealed") || strings.Contains(name, "secret")) && !listed[col] {
				t.Errorf("column %s looks sealed but is not in sealedColumns: master key rotation would miss it", col)
			}
		}
	})

	t.Run("audit", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		var want []AuditEntry
		mustOK(t, s.InTx(ctx, func(tx *Store) error {
			for i := range 105 {
				e := AuditEntry{Time: ts(time.Duration(i) * time.Second), Actor: "admin", Action: "host.create", Target: fmt.Sprint("h", i), Detail: "{}"}
				id, err := tx.AppendAudit(ctx, e)
				if err != nil {
					return err
				}
				if len(want) > 0 && id <= want[0].ID {
					t.Errorf("id %d not above previous %d", id, want[0].ID)
				}
				e.ID = id
				want = append([]AuditEntry{e}, want...)
			}
			return nil
		}))
		for _, tc := range []struct {
			limit, want int
		}{{0, 100}, {-1, 100}, {3, 3}, {1000, 105}} {
			got, err := s.ListAudit(ctx, tc.limit)
			mustOK(t, err)
			mustEqual(t, fmt.Sprint("ListAudit ", tc.limit), got, want[:tc.want])
		}
	})

	t.Run("transactions", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		boom := errors.New("boom")
		err := s.InTx(ctx, func(tx *Store) error {
			mustOK(t, tx.CreateHost(ctx, host("h1")))
			mustOK(t, tx.CreateToken(ctx, token("t1", "h1")))
			if _, err := tx.GetHost(ctx, "h1"); err != nil {
				t.Errorf("read own write in tx: %v", err)
			}
			// Nested InTx joins the outer transaction.
			mustOK(t, tx.InTx(ctx, func(tx2 *Store) error {
				_, err := tx2.AppendAudit(ctx, AuditEntry{Time: ts(0), Action: "x"})
				return err
			}))
			return boom
		})
		mustIs(t, err, boom)
		mustIs(t, second(s.GetHost(ctx, "h1")), ErrNotFound)
		mustIs(t, second(s.GetToken(ctx, "t1")), ErrNotFound)
		audit, err := s.ListAudit(ctx, 0)
		mustOK(t, err)
		mustEqual(t, "audit after rollback", len(audit), 0)

		func() {
			defer func() {
				if recover() == nil {
					t.Error("panic did not propagate")
				}
			}()
			_ = s.InTx(ctx, func(tx *Store) error {
				mustOK(t, tx.CreateHost(ctx, host("h2")))
				panic("boom")
			})
		}()
		mustIs(t, second(s.GetHost(ctx, "h2")), ErrNotFound)

		mustOK(t, s.InTx(ctx, func(tx *Store) error { return tx.CreateHost(ctx, host("h3")) }))
		_, err = s.GetHost(ctx, "h3")
		mustOK(t, err)
	})

	pkiSuite(t, open)

	t.Run("time round trip", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		zone := time.FixedZone("UTC+5:30", 5*3600+1800)
		in := time.Date(2026, 3, 4, 5, 6, 7, 891234567, zone)
		h := Host{ID: "h1", Name: "h1", CreatedAt: in, EnrolledAt: &in, LastSeenAt: ptr(time.Now())}
		mustOK(t, s.CreateHost(ctx, h))
		got, err := s.GetHost(ctx, "h1")
		mustOK(t, err)
		for name, pair := range map[string][2]time.Time{
			"created_at":   {got.CreatedAt, in},
			"enrolled_at":  {*got.EnrolledAt, in},
			"last_seen_at": {*got.LastSeenAt, *h.LastSeenAt},
		} {
			out, in := pair[0], pair[1]
			if out.Location() != time.UTC {
				t.Errorf("%s location = %v, want UTC", name, out.Location())
			}
			if !out.Equal(in.Truncate(time.Microsecond)) {
				t.Errorf("%s = %v, want %v", name, out, in.Truncate(time.Microsecond))
			}
			if !out.Truncate(time.Millisecond).Equal(in.Truncate(time.Millisecond)) {
				t.Errorf("%s = %v, want %v at millisecond precision", name, out, in)
			}
		}
	})
}

// snapshot reads everything Enroll could touch.
func snapshot(t *testing.T, s *Store) ([]Host, []Token, []Certificate) {
	t.Helper()
	ctx := t.Context()
	hosts, err := s.ListHosts(ctx)
	mustOK(t, err)
	var tokens []Token
	for _, id := range []string{"used", "fresh"} {
		tok, err := s.GetToken(ctx, id)
		mustOK(t, err)
		tokens = append(tokens, tok)
	}
	certs, err := s.ListCerts(ctx)
	mustOK(t, err)
	return hosts, tokens, certs
}

func second[T any](_ T, err error) error { return err }

func TestReopenMigratesAsNoop(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			u := b.newURL(t)
			s, err := Open(t.Context(), u)
			mustOK(t, err)
			mustOK(t, s.CreateHost(t.Context(), host("h1")))
			mustOK(t, s.Close())

			s = openURL(t, u)
			_, err = s.GetHost(t.Context(), "h1")
			mustOK(t, err)
			entries, err := migrations.ReadDir("migrations/" + s.Dialect())
			mustOK(t, err)
			var applied int
			mustOK(t, s.queryRow(t.Context(), `SELECT COUNT(*) FROM goose_db_version WHERE version_id > 0`).Scan(&applied))
			mustEqual(t, "applied migrations", applied, len(entries))
		})
	}
}

func TestSQLitePragmas(t *testing.T) {
	s := openURL(t, "sqlite://"+filepath.Join(t.TempDir(), "pm.db"))
	for _, tc := range []struct {
		pragma, want string
	}{
		{"journal_mode", "wal"},
		{"foreign_keys", "1"},
		{"busy_timeout", "5000"},
		{"synchronous", "1"}, // NORMAL
	} {
		var got string
		mustOK(t, s.db.QueryRowContext(t.Context(), "PRAGMA "+tc.pragma).Scan(&got))
		mustEqual(t, tc.pragma, got, tc.want)
	}
	if _, err := s.rdb.ExecContext(t.Context(), `DELETE FROM hosts`); err == nil {
		t.Error("the read pool accepted a write")
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	mustOK(t, os.WriteFile(file, nil, 0o600))
	for _, tc := range []struct {
		name, url, wantIn string
	}{
		{"empty", "", "unsupported database url"},
		{"mysql", "mysql://root@localhost/pm", "unsupported database url"},
		{"bare path", "/var/lib/pm.db", "unsupported database url"},
		{"sqlite no path", "sqlite:", "no file path"},
		{"sqlite host", "sqlite://host/pm.db", "must not name a host"},
		{"sqlite query", "sqlite:" + filepath.Join(dir, "pm.db") + "?_pragma=x", "must not contain"},
		{"sqlite missing dir", "sqlite:" + filepath.Join(dir, "missing", "pm.db"), "no such file or directory"},
		{"sqlite dir is file", "sqlite:" + filepath.Join(file, "pm.db"), "not a directory"},
		{"postgres unreachable", "postgres://pm:hunter2@127.0.0.1:1/pm?sslmode=disable&connect_timeout=2", "open store: postgres"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(t.Context(), tc.url)
			if err == nil {
				s.Close()
				t.Fatalf("Open(%q) succeeded", tc.url)
			}
			if !strings.Contains(err.Error(), tc.wantIn) {
				t.Errorf("Open(%q) = %v, want it to mention %q", tc.url, err, tc.wantIn)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error leaks the password: %v", err)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open created the missing directory (stat: %v)", err)
	}
}

func TestRebind(t *testing.T) {
	for _, tc := range []struct {
		dialect, in, want string
	}{
		{DialectSQLite, "a = ? AND b = ?", "a = ? AND b = ?"},
		{DialectPostgres, "a = ? AND b = ?", "a = $1 AND b = $2"},
		{DialectPostgres, "a = '?' AND b = ?", "a = '?' AND b = $1"},
		{DialectPostgres, `"we?rd" = ? -- why?` + "\n AND c = ?", `"we?rd" = $1 -- why?` + "\n AND c = $2"},
		{DialectPostgres, "a = 'it''s?' AND b = ?", "a = 'it''s?' AND b = $1"},
		{DialectPostgres, "no params", "no params"},
	} {
		if got := rebind(tc.dialect, tc.in); got != tc.want {
			t.Errorf("rebind(%s, %q) = %q, want %q", tc.dialect, tc.in, got, tc.want)
		}
	}
}
