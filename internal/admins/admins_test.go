package admins_test

import (
	"crypto"
	"path/filepath"
	"testing"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/admins"
	"github.com/pocketmolt/pocketmolt/internal/pki"
	"github.com/pocketmolt/pocketmolt/internal/store"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

func newService(t *testing.T, now time.Time) *admins.Service {
	t.Helper()
	st, err := store.Open(t.Context(), "sqlite:"+filepath.Join(t.TempDir(), "pm.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ca, err := pki.NewCA("Test", now)
	if err != nil {
		t.Fatal(err)
	}
	return &admins.Service{Store: st, CA: ca, Now: func() time.Time { return now }}
}

func TestCreate(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	s := newService(t, now)
	b, err := s.Create(t.Context(), "admin:ops", "alice", 0)
	if err != nil {
		t.Fatal(err)
	}
	if b.Name != "alice" || b.Status != wire.CertValid || !b.NotAfter.Equal(now.Add(admins.DefaultTTL)) {
		t.Errorf("bundle = %+v", b.Admin)
	}
	certs, err := pki.ParseCertsPEM([]byte(b.Cert))
	if err != nil {
		t.Fatal(err)
	}
	if kind, id, err := pki.IdentityOf(certs[0]); err != nil || kind != pki.KindAdmin || id != "alice" {
		t.Errorf("identity %s %s %v", kind, id, err)
	}
	key, err := pki.ParseKey([]byte(b.Key))
	if err != nil || !certs[0].PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(key.Public()) {
		t.Errorf("the bundle's key does not belong to its certificate: %v", err)
	}
	es, err := s.Store.ListAudit(t.Context(), 10)
	if err != nil || len(es) != 1 || es[0].Actor != "admin:ops" || es[0].Action != "admin.create" || es[0].Target != "alice" {
		t.Fatalf("audit %+v %v", es, err)
	}

	for _, tt := range []struct {
		name string
		ttl  time.Duration
	}{
		{"Alice", 0}, {"", 0}, {"-a", 0}, {"a_b", 0}, {"alice", time.Minute}, {"alice", 6 * 365 * 24 * time.Hour},
	} {
		t.Run(tt.name+" "+tt.ttl.String(), func(t *testing.T) {
			_, err := s.Create(t.Context(), "admin:ops", tt.name, tt.ttl)
			if wire.CodeOf(err) != wire.CodeInvalidArgument {
				t.Errorf("Create(%q, %s) = %v, want invalid_argument", tt.name, tt.ttl, err)
			}
		})
	}
	if as, _ := s.List(t.Context()); len(as) != 1 {
		t.Errorf("refused creations left %d admins, want 1", len(as))
	}
}

func TestRevoke(t *testing.T) {
	now := time.Now().UTC()
	s := newService(t, now)
	for _, n := range []string{"alice", "alice", "bob"} {
		if _, err := s.Create(t.Context(), "pmd", n, 0); err != nil {
			t.Fatal(err)
		}
	}
	rev, err := s.Revoke(t.Context(), "admin:bob", "alice")
	if err != nil || len(rev.Revoked) != 2 || rev.Revoked[0].Status != wire.CertRevoked {
		t.Fatalf("revoke alice: %+v, %v", rev, err)
	}
	if _, err := s.Revoke(t.Context(), "admin:bob", "alice"); wire.CodeOf(err) != wire.CodeNotFound {
		t.Errorf("revoke alice again: %v, want not_found", err)
	}
	if _, err := s.Revoke(t.Context(), "admin:bob", "bob"); wire.CodeOf(err) != wire.CodeConflict {
		t.Errorf("revoke the last admin: %v, want conflict", err)
	}
	as, err := s.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(as) != 3 || as[2].Name != "bob" || as[2].Status != wire.CertValid {
		t.Errorf("admins %+v", as)
	}
}
