package pmd

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/pki"
	"github.com/pocketmolt/pocketmolt/internal/secret"
	"github.com/pocketmolt/pocketmolt/internal/store"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// serverCertCheck is how often a running pmd looks at its server certificate: it renews it
// when a third of its life is left, and picks up one that `pmd rotate-server-cert` (or
// another pmd sharing the database) stored.
const serverCertCheck = time.Minute

// serverCerts is the server certificate pmd's TLS listeners present, swapped without a
// restart when it is renewed or rotated. It is safe for concurrent use.
type serverCerts struct {
	st  *store.Store
	kr  *secret.Keyring
	ca  *pki.CA
	log *slog.Logger
	cur atomic.Pointer[tls.Certificate]
}

// Get is a tls.Config GetCertificate: the current certificate.
func (s *serverCerts) Get(*tls.ClientHelloInfo) (*tls.Certificate, error) { return s.cur.Load(), nil }

// refresh loads the stored server certificate, renewing it first when it is due at now, and
// serves it from now on. It reports whether it changed.
func (s *serverCerts) refresh(ctx context.Context, now time.Time) (bool, error) {
	c, err := serverCert(ctx, s.st, s.kr, s.ca, now)
	if err != nil {
		return false, err
	}
	old := s.cur.Load()
	if old != nil && old.Leaf.Equal(c.Leaf) {
		return false, nil
	}
	s.cur.Store(&c)
	if old != nil {
		s.log.Info("server certificate replaced", "serial", pki.SerialString(c.Leaf),
			"old_serial", pki.SerialString(old.Leaf), "not_after", c.Leaf.NotAfter.UTC())
	}
	return true, nil
}

// serial is the serial of the certificate being served.
func (s *serverCerts) serial() string {
	if c := s.cur.Load(); c != nil {
		return pki.SerialString(c.Leaf)
	}
	return ""
}

// RefreshServerCert brings the served server certificate up to date at now: it renews the
// stored one if it is due, serves what is stored, and tells the fleet which revoked server
// serials to pass on to agents — never the one pmd serves itself, so that an agent does not
// learn of a rotation before pmd presents the new certificate. A running pmd calls it every
// minute.
func (d *Daemon) RefreshServerCert(ctx context.Context, now time.Time) error {
	if _, err := d.certs.refresh(ctx, now); err != nil {
		return fmt.Errorf("refresh server certificate: %w", err)
	}
	revoked, err := d.Store.RevokedServerSerials(ctx, now, wire.MaxRevokedServers+1)
	if err != nil {
		return fmt.Errorf("refresh server certificate: %w", err)
	}
	serving := d.certs.serial()
	revoked = slices.DeleteFunc(revoked, func(s string) bool { return s == serving })
	d.Fleet.SetRevokedServers(revoked)
	return nil
}

// ServerCertificate is the server certificate pmd presents now.
func (d *Daemon) ServerCertificate() *tls.Certificate { return d.certs.cur.Load() }

// runServerCert refreshes the server certificate every serverCertCheck until ctx ends. A
// failure (the database out of reach) is logged and tried again at the next tick; the
// certificate being served stays.
func (d *Daemon) runServerCert(ctx context.Context) {
	t := time.NewTicker(serverCertCheck)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := d.RefreshServerCert(ctx, time.Now()); err != nil && ctx.Err() == nil {
				d.log.Warn("server certificate check failed", "error", err.Error())
			}
		}
	}
}
