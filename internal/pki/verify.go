package pki

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"time"
)

// ErrPinMismatch is returned by VerifyPinned when no certificate in the chain is a self-signed
// root with the pinned fingerprint: the peer is not the pmd the token was made by.
var ErrPinMismatch = errors.New("no root in the chain matches the pinned fingerprint")

// VerifyPinned checks a server's chain on the agent's first contact, before it has the CA: the
// chain (leaf first, as sent in a TLS handshake, e.g. tls.ConnectionState.PeerCertificates or
// the rawCerts of VerifyPeerCertificate) must contain a self-signed CA root whose Fingerprint
// is fp, and the leaf must verify to that root for serverName (a DNS name or an IP literal)
// with ExtKeyUsageServerAuth at now. It returns the root, which the agent then trusts.
//
// The server must send the root in its chain for this to work: pmd's enrollment listener
// serves Issued.CertPEM followed by CA.RootPEM.
func VerifyPinned(chain []*x509.Certificate, fp, serverName string, now time.Time) (*x509.Certificate, error) {
	if len(chain) == 0 {
		return nil, errors.New("verify pinned: empty chain")
	}
	if !validFingerprint(fp) {
		return nil, errors.New("verify pinned: fingerprint must be 64 lower-case hex characters")
	}
	if serverName == "" {
		return nil, errors.New("verify pinned: empty server name")
	}
	var root *x509.Certificate
	for _, c := range chain {
		if Fingerprint(c) == fp {
			root = c
			break
		}
	}
	if root == nil {
		return nil, fmt.Errorf("verify pinned: %w", ErrPinMismatch)
	}
	if !root.IsCA || !bytes.Equal(root.RawIssuer, root.RawSubject) || root.CheckSignatureFrom(root) != nil {
		return nil, fmt.Errorf("verify pinned: pinned certificate is not a self-signed CA: %w", ErrPinMismatch)
	}
	roots := x509.NewCertPool()
	roots.AddCert(root)
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		if c != root {
			inter.AddCert(c)
		}
	}
	_, err := chain[0].Verify(x509.VerifyOptions{
		DNSName:       serverName,
		Roots:         roots,
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return nil, fmt.Errorf("verify pinned: %w", err)
	}
	return root, nil
}

func validFingerprint(fp string) bool {
	if len(fp) != 64 {
		return false
	}
	for i := 0; i < len(fp); i++ {
		if c := fp[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
