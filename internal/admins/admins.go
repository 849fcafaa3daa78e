// Package admins issues and revokes operators' admin certificates: one for each person, so
// that the audit log names who did what (admin:<name>), and never the revocation of the last
// valid one, which would leave nobody able to use the admin API.
//
// pmd makes each certificate's key and hands it over once, in a bundle; only the
// certificate's record is kept.
package admins

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/pki"
	"github.com/pocketmolt/pocketmolt/internal/store"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// Lifetimes of admin certificates.
const (
	DefaultTTL = 365 * 24 * time.Hour
	MinTTL     = time.Hour
	// MaxTTL is a bound on what may be asked; no certificate outlives the intermediate CA.
	MaxTTL = 5 * 365 * 24 * time.Hour
)

// Service issues, lists and revokes admin certificates. It is safe for concurrent use.
type Service struct {
	Store *store.Store
	CA    *pki.CA
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

func (s *Service) now() time.Time {
	if s.Now == nil {
		return time.Now().UTC()
	}
	return s.Now().UTC()
}

// Create issues a certificate for the operator called name, valid for ttl (zero means
// DefaultTTL), records it with an audit entry by actor, and returns the bundle with its key.
// A name may hold several certificates.
func (s *Service) Create(ctx context.Context, actor, name string, ttl time.Duration) (wire.AdminBundle, error) {
	var b wire.AdminBundle
	err := s.Store.InTx(ctx, func(tx *store.Store) error {
		var err error
		b, err = Issue(ctx, tx, s.CA, name, ttl, s.now(), actor, "")
		return err
	})
	if err != nil {
		return wire.AdminBundle{}, fmt.Errorf("create admin %s: %w", name, err)
	}
	return b, nil
}

// Issue makes and records an admin certificate in st (a transaction, so that the record and
// its audit entry go together) and returns the bundle. detail is added to the audit entry.
func Issue(ctx context.Context, st *store.Store, ca *pki.CA, name string, ttl time.Duration, now time.Time, actor, detail string) (wire.AdminBundle, error) {
	if !wire.ValidName(name) {
		return wire.AdminBundle{}, wire.Errorf(wire.CodeInvalidArgument, "admin name %q: %s", name, wire.NameRule)
	}
	if ttl == 0 {
		ttl = DefaultTTL
	}
	if ttl < MinTTL || ttl > MaxTTL {
		return wire.AdminBundle{}, wire.Errorf(wire.CodeInvalidArgument, "admin certificate ttl %s: use between %s and %s", ttl, MinTTL, MaxTTL)
	}
	iss, err := ca.IssueAdmin(name, ttl, now)
	if err != nil {
		return wire.AdminBundle{}, err
	}
	rec := Record(iss)
	if err := st.InsertCert(ctx, rec); err != nil {
		return wire.AdminBundle{}, err
	}
	d := fmt.Sprintf("certificate %s, expires %s", rec.Serial, rec.NotAfter.Format(time.RFC3339))
	if detail != "" {
		d += "; " + detail
	}
	if _, err := st.AppendAudit(ctx, store.AuditEntry{Time: now, Actor: actor, Action: "admin.create", Target: name, Detail: d}); err != nil {
		return wire.AdminBundle{}, err
	}
	return wire.AdminBundle{
		Admin: toWire(rec, now), Cert: string(iss.CertPEM), Key: string(iss.KeyPEM), RootCA: string(ca.RootPEM()),
	}, nil
}

// Record is the store's record of an issued admin certificate.
func Record(iss *pki.Issued) store.Certificate {
	c := iss.Cert
	return store.Certificate{
		Serial: pki.SerialString(c), Kind: store.KindAdmin, Subject: c.Subject.CommonName,
		Fingerprint: pki.Fingerprint(c), NotBefore: c.NotBefore.UTC(), NotAfter: c.NotAfter.UTC(),
	}
}

// List returns every admin certificate, by name, newest first within a name.
func (s *Service) List(ctx context.Context) ([]wire.Admin, error) {
	cs, err := s.Store.ListAdminCerts(ctx)
	if err != nil {
		return nil, err
	}
	now := s.now()
	out := make([]wire.Admin, 0, len(cs))
	for _, c := range cs {
		out = append(out, toWire(c, now))
	}
	return out, nil
}

// Revoke revokes every certificate of the operator called name, with an audit entry by
// actor, unless that would leave no valid admin certificate: then it is a conflict and
// nothing changes. Their next request is refused (the admin API checks revocation on every
// request).
func (s *Service) Revoke(ctx context.Context, actor, name string) (wire.AdminRevocation, error) {
	now := s.now()
	var out wire.AdminRevocation
	err := s.Store.InTx(ctx, func(tx *store.Store) error {
		cs, err := tx.RevokeAdmin(ctx, name, now)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return wire.Errorf(wire.CodeNotFound, "no admin %q with a certificate that is not revoked", name)
		case errors.Is(err, store.ErrLastAdmin):
			return wire.Errorf(wire.CodeConflict, "admin %s holds the last valid admin certificate; revoking it would leave nobody able to use the admin API: create another admin first (pmctl admins create NAME)", name)
		case err != nil:
			return err
		}
		out.Name = name
		serials := ""
		for _, c := range cs {
			out.Revoked = append(out.Revoked, toWire(c, now))
			if serials != "" {
				serials += ", "
			}
			serials += c.Serial
		}
		_, err = tx.AppendAudit(ctx, store.AuditEntry{Time: now, Actor: actor, Action: "admin.revoke", Target: name, Detail: "certificates " + serials})
		return err
	})
	if err != nil {
		return wire.AdminRevocation{}, fmt.Errorf("revoke admin %s: %w", name, err)
	}
	return out, nil
}

func toWire(c store.Certificate, now time.Time) wire.Admin {
	status := wire.CertValid
	switch {
	case c.RevokedAt != nil:
		status = wire.CertRevoked
	case !now.Before(c.NotAfter):
		status = wire.CertExpired
	}
	return wire.Admin{Name: c.Subject, Serial: c.Serial, NotBefore: c.NotBefore, NotAfter: c.NotAfter, RevokedAt: c.RevokedAt, Status: status}
}
