package pmd

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/fleet"
	"github.com/pocketmolt/pocketmolt/internal/pki"
	"github.com/pocketmolt/pocketmolt/internal/secret"
	"github.com/pocketmolt/pocketmolt/internal/store"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// Key pair names in the store.
const (
	kpRoot         = "root"
	kpIntermediate = "intermediate"
	kpServer       = "server"
)

// Lifetimes of pmd's own certificates.
const (
	serverCertTTL = 365 * 24 * time.Hour
	adminCertTTL  = 365 * 24 * time.Hour
)

// keyAD binds a sealed private key to its key pair's row.
func keyAD(name string) string { return "keypairs/" + name + "/key" }

// putKeyPair seals key and stores it with its certificate chain.
func putKeyPair(ctx context.Context, st *store.Store, kr *secret.Keyring, name string, certPEM, keyPEM []byte) error {
	sealed, err := kr.Seal(keyPEM, keyAD(name))
	if err != nil {
		return err
	}
	return st.PutKeyPair(ctx, store.KeyPair{Name: name, CertPEM: certPEM, KeySealed: sealed})
}

// getKeyPair loads a key pair and opens its key. A key pair stored without its key (the root
// of `pmd init --offline-root`) has a nil keyPEM.
func getKeyPair(ctx context.Context, st *store.Store, kr *secret.Keyring, name string) (certPEM, keyPEM []byte, err error) {
	kp, err := st.GetKeyPair(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, fmt.Errorf("the database holds no %s certificate: is it the one `pmd init` made?", name)
	}
	if err != nil {
		return nil, nil, err
	}
	if kp.KeySealed == "" {
		return kp.CertPEM, nil, nil
	}
	key, err := kr.Open(kp.KeySealed, keyAD(name))
	if err != nil {
		return nil, nil, fmt.Errorf("open the %s key: %w (is this the master key `pmd init` made for this database?)", name, err)
	}
	return kp.CertPEM, key, nil
}

// openCA opens cfg's master key, store and CA, for the commands that work on a data dir with
// no running API (admin-cert, rotate-server-cert). The caller closes the store.
func openCA(ctx context.Context, cfg Config) (*secret.Keyring, *store.Store, *pki.CA, error) {
	kr, err := secret.LoadKeyring(cfg.KeyFile(), os.Getenv("PMD_MASTER_KEY"))
	if err != nil {
		return nil, nil, nil, err
	}
	st, err := store.Open(ctx, cfg.DatabaseURL())
	if err != nil {
		return nil, nil, nil, err
	}
	ca, err := loadCA(ctx, st, kr)
	if err != nil {
		st.Close()
		return nil, nil, nil, err
	}
	return kr, st, ca, nil
}

// loadCA reads the CA from the store.
func loadCA(ctx context.Context, st *store.Store, kr *secret.Keyring) (*pki.CA, error) {
	rc, rk, err := getKeyPair(ctx, st, kr, kpRoot)
	if err != nil {
		return nil, err
	}
	ic, ik, err := getKeyPair(ctx, st, kr, kpIntermediate)
	if err != nil {
		return nil, err
	}
	if ik == nil {
		return nil, errors.New("the database holds the intermediate CA without its key")
	}
	ca, err := pki.LoadCA(rc, rk, ic, ik)
	if err != nil {
		return nil, fmt.Errorf("load CA: %w", err)
	}
	return ca, nil
}

// issueServer makes pmd's server certificate for names, records it and returns it.
func issueServer(ctx context.Context, st *store.Store, kr *secret.Keyring, ca *pki.CA, names []string, now time.Time) (*pki.Issued, error) {
	iss, err := ca.IssueServer(names, serverCertTTL, now)
	if err != nil {
		return nil, fmt.Errorf("server certificate: %w", err)
	}
	if err := putKeyPair(ctx, st, kr, kpServer, iss.CertPEM, iss.KeyPEM); err != nil {
		return nil, err
	}
	if err := st.InsertCert(ctx, fleet.CertRecord(iss.Cert, wire.CertServer, "")); err != nil {
		return nil, err
	}
	return iss, nil
}

// certNames are the DNS names and IP addresses a certificate is valid for.
func certNames(c *x509.Certificate) []string {
	names := append([]string{}, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	return names
}

// renewDue reports whether a certificate has less than a third of its life left at now.
func renewDue(c *x509.Certificate, now time.Time) bool {
	return now.After(c.NotAfter.Add(-c.NotAfter.Sub(c.NotBefore) / 3))
}

// serverCert loads pmd's server certificate as presented on its TLS listeners: leaf,
// intermediate and root, so that an enrolling host can pin the root. A certificate with less
// than a third of its life left is renewed first, for the same names, in a transaction that
// reads it again; pmd processes sharing a database that renew it at the same moment each
// make a valid certificate, and the one stored last is what all of them load next.
func serverCert(ctx context.Context, st *store.Store, kr *secret.Keyring, ca *pki.CA, now time.Time) (tls.Certificate, error) {
	certPEM, keyPEM, err := getKeyPair(ctx, st, kr, kpServer)
	if err != nil {
		return tls.Certificate{}, err
	}
	certs, err := pki.ParseCertsPEM(certPEM)
	if err != nil || len(certs) == 0 || keyPEM == nil {
		return tls.Certificate{}, fmt.Errorf("server certificate in the database is damaged")
	}
	leaf := certs[0]
	if renewDue(leaf, now) {
		err := st.InTx(ctx, func(tx *store.Store) error {
			certPEM, _, err := getKeyPair(ctx, tx, kr, kpServer)
			if err != nil {
				return err
			}
			if cs, err := pki.ParseCertsPEM(certPEM); err == nil && !renewDue(cs[0], now) {
				return nil // renewed meanwhile
			}
			iss, err := issueServer(ctx, tx, kr, ca, certNames(leaf), now)
			if err != nil {
				return err
			}
			_, err = tx.AppendAudit(ctx, store.AuditEntry{Time: now.UTC(), Actor: "pmd", Action: "cert.renew", Target: pki.SerialString(iss.Cert),
				Detail: "server certificate renewed; replaces " + pki.SerialString(leaf)})
			return err
		})
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("renew server certificate: %w", err)
		}
		if certPEM, keyPEM, err = getKeyPair(ctx, st, kr, kpServer); err != nil {
			return tls.Certificate{}, err
		}
		if certs, err = pki.ParseCertsPEM(certPEM); err != nil || len(certs) == 0 || keyPEM == nil {
			return tls.Certificate{}, fmt.Errorf("server certificate in the database is damaged")
		}
		leaf = certs[0]
	}
	c, err := tls.X509KeyPair(append(certPEM, ca.RootPEM()...), keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("server certificate: %w", err)
	}
	c.Leaf = leaf
	return c, nil
}
