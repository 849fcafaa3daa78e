// Package mtls builds pmd's server-side TLS configurations: TLS 1.3 only, client certificates
// from pmd's own CA, one kind of identity per listener, and revocation checked at every
// handshake (and, when that check cannot be made, by the listener before it serves).
package mtls

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/pocketmolt/pocketmolt/internal/pki"
)

// CheckFunc reports whether the certificate with this serial may connect; it returns an error
// for a revoked or unknown one, and one wrapping ErrUnchecked when it cannot tell now.
type CheckFunc func(serial string) error

// ErrUnchecked, wrapped in a CheckFunc's error, means the certificate's status cannot be
// read now (its database is out of reach). The handshake then completes, and the listener
// must check again before it serves anything: it fails closed at the request, where the
// caller can be told why, rather than at the handshake, where a TLS alert can only say "bad
// certificate" — which would send an operator looking for a revoked certificate.
var ErrUnchecked = errors.New("certificate status cannot be checked now")

// Options describe one listener.
type Options struct {
	Cert tls.Certificate
	// GetCertificate, when set, picks the server certificate at each handshake instead of
	// Cert, so that a renewed certificate is served without a restart.
	GetCertificate func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	CA             *x509.CertPool
	// Kind is the identity kind ("agent" or "admin") a client certificate must carry.
	Kind string
	// Optional lets a client without a certificate complete the handshake (enrollment);
	// a client that presents one is still held to Kind and Check.
	Optional bool
	Check    CheckFunc
	// NextProtos are the ALPN protocols offered.
	NextProtos []string
}

// ServerConfig returns the TLS configuration for a listener.
func ServerConfig(o Options) *tls.Config {
	auth := tls.RequireAndVerifyClientCert
	if o.Optional {
		auth = tls.VerifyClientCertIfGiven
	}
	var certs []tls.Certificate
	if o.GetCertificate == nil {
		certs = []tls.Certificate{o.Cert}
	}
	return &tls.Config{
		MinVersion:     tls.VersionTLS13,
		Certificates:   certs,
		GetCertificate: o.GetCertificate,
		ClientCAs:      o.CA,
		ClientAuth:     auth,
		NextProtos:     o.NextProtos,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				if o.Optional {
					return nil
				}
				return errors.New("client certificate required")
			}
			return Verify(cs.PeerCertificates[0], o.Kind, o.Check)
		},
	}
}

// Verify checks that a verified client certificate has the wanted kind and passes check.
func Verify(leaf *x509.Certificate, kind string, check CheckFunc) error {
	k, id, err := pki.IdentityOf(leaf)
	if err != nil {
		return fmt.Errorf("client certificate: %w", err)
	}
	if k != kind {
		return fmt.Errorf("client certificate of %s %q is not accepted on the %s listener", k, id, kind)
	}
	if check != nil {
		if err := check(pki.SerialString(leaf)); err != nil && !errors.Is(err, ErrUnchecked) {
			return fmt.Errorf("client certificate of %s %q: %w", k, id, err)
		}
	}
	return nil
}

// Identity returns the kind and id of a connection's verified client certificate.
func Identity(cs *tls.ConnectionState) (kind, id, serial string, ok bool) {
	if cs == nil || len(cs.PeerCertificates) == 0 {
		return "", "", "", false
	}
	k, i, err := pki.IdentityOf(cs.PeerCertificates[0])
	if err != nil {
		return "", "", "", false
	}
	return k, i, pki.SerialString(cs.PeerCertificates[0]), true
}
