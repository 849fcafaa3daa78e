// Package pki is pmd's certificate authority: a root and an intermediate CA that issue the
// server certificate of pmd's listeners, admin client certificates for pmctl and short-lived
// agent client certificates for pmagent, from the x509util templates in package certs.
//
// Every leaf carries its identity as one URI SAN (see IdentityOf):
//
//	pocketmolt://server
//	pocketmolt://admin/<name>
//	pocketmolt://agent/<host-id>
//
// Keys and certificates go in and out as PEM; sealing keys at rest is the caller's job.
// Revocation is not in the certificates (no CRL or OCSP): pmd checks the serial of the peer's
// certificate against its store on every handshake.
package pki

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"

	"go.step.sm/crypto/keyutil"
	"go.step.sm/crypto/x509util"

	"github.com/pocketmolt/pocketmolt/certs"
)

// Lifetimes of the CA certificates made by NewCA.
const (
	RootLifetime         = 10 * 365 * 24 * time.Hour
	IntermediateLifetime = 5 * 365 * 24 * time.Hour
)

// DefaultAgentTTL is the usual lifetime of an agent certificate; agents renew well before it.
const DefaultAgentTTL = 24 * time.Hour

// clockSkew is how far NotBefore is backdated so that a peer whose clock is a little behind
// still accepts a certificate issued a moment ago.
const clockSkew = time.Minute

// CA is a root and an intermediate certificate with their keys. The intermediate signs all
// leaves; the root key is needed only to make a new intermediate, and is nil when it is kept
// offline. A CA is read-only after it is made and safe for concurrent use.
type CA struct {
	Root            *x509.Certificate
	Intermediate    *x509.Certificate
	RootKey         crypto.Signer // nil when kept offline
	IntermediateKey crypto.Signer
}

// RootKeyOffline reports whether the CA was loaded without its root key.
func (ca *CA) RootKeyOffline() bool { return ca.RootKey == nil }

// Issued is a certificate made by the CA.
type Issued struct {
	Cert *x509.Certificate
	// CertPEM is the leaf followed by the intermediate: what a TLS peer sends.
	CertPEM []byte
	// Key is the private key when the CA made it (server, admin); nil for a CSR-signed
	// certificate, whose key never leaves its host.
	Key crypto.Signer
	// KeyPEM is Key as PKCS#8 PEM, or nil.
	KeyPEM []byte
}

// NewCA makes a root CA (10 years) and an intermediate CA (5 years, path length 0) with fresh
// ECDSA P-256 keys. name appears in both subjects, for example "PocketMolt".
func NewCA(name string, now time.Time) (*CA, error) {
	if name == "" {
		return nil, errors.New("new ca: empty name")
	}
	if now.IsZero() {
		return nil, errors.New("new ca: zero time")
	}
	rootKey, err := NewKey()
	if err != nil {
		return nil, fmt.Errorf("new ca: %w", err)
	}
	intKey, err := NewKey()
	if err != nil {
		return nil, fmt.Errorf("new ca: %w", err)
	}

	rootSubject := x509util.Subject{CommonName: name + " Root CA", Organization: []string{name}}
	tpl, err := render(certs.Root(), rootSubject, nil, rootKey.Public())
	if err != nil {
		return nil, fmt.Errorf("new ca: root: %w", err)
	}
	if err := setValidity(tpl, now, RootLifetime); err != nil {
		return nil, fmt.Errorf("new ca: root: %w", err)
	}
	root, err := x509util.CreateCertificate(tpl, tpl, rootKey.Public(), rootKey)
	if err != nil {
		return nil, fmt.Errorf("new ca: sign root: %w", err)
	}

	intSubject := x509util.Subject{CommonName: name + " Intermediate CA", Organization: []string{name}}
	tpl, err = render(certs.Intermediate(), intSubject, nil, intKey.Public())
	if err != nil {
		return nil, fmt.Errorf("new ca: intermediate: %w", err)
	}
	if err := setValidity(tpl, now, IntermediateLifetime); err != nil {
		return nil, fmt.Errorf("new ca: intermediate: %w", err)
	}
	intermediate, err := x509util.CreateCertificate(tpl, root, intKey.Public(), rootKey)
	if err != nil {
		return nil, fmt.Errorf("new ca: sign intermediate: %w", err)
	}
	return &CA{Root: root, Intermediate: intermediate, RootKey: rootKey, IntermediateKey: intKey}, nil
}

// ErrRootKeyOffline is returned by what needs the root CA's key when the CA was loaded without
// it (pmd init --offline-root): only making a new intermediate does.
var ErrRootKeyOffline = errors.New("the root CA's key is kept offline, not in pmd's database")

// LoadCA reads a CA from PEM: the root and intermediate certificates and their private keys.
// It checks that the root is a self-signed CA, that the intermediate is a CA signed by the
// root, and that each key belongs to its certificate. An empty rootKey loads the CA without
// it (the root key is kept offline): RootKey is then nil, and leaves are still issued, since
// the intermediate signs them.
func LoadCA(rootCert, rootKey, intCert, intKey []byte) (*CA, error) {
	root, err := parseOneCert(rootCert)
	if err != nil {
		return nil, fmt.Errorf("load ca: root certificate: %w", err)
	}
	intermediate, err := parseOneCert(intCert)
	if err != nil {
		return nil, fmt.Errorf("load ca: intermediate certificate: %w", err)
	}
	var rk crypto.Signer
	if len(rootKey) > 0 {
		if rk, err = ParseKey(rootKey); err != nil {
			return nil, fmt.Errorf("load ca: root key: %w", err)
		}
	}
	ik, err := ParseKey(intKey)
	if err != nil {
		return nil, fmt.Errorf("load ca: intermediate key: %w", err)
	}
	if !root.IsCA || !bytes.Equal(root.RawIssuer, root.RawSubject) || root.CheckSignatureFrom(root) != nil {
		return nil, errors.New("load ca: root certificate is not a self-signed CA")
	}
	if !intermediate.IsCA {
		return nil, errors.New("load ca: intermediate certificate is not a CA")
	}
	if err := intermediate.CheckSignatureFrom(root); err != nil {
		return nil, fmt.Errorf("load ca: intermediate is not signed by root: %w", err)
	}
	if rk != nil && !keyutil.Equal(root.PublicKey, rk.Public()) {
		return nil, errors.New("load ca: root key does not match root certificate")
	}
	if !keyutil.Equal(intermediate.PublicKey, ik.Public()) {
		return nil, errors.New("load ca: intermediate key does not match intermediate certificate")
	}
	return &CA{Root: root, Intermediate: intermediate, RootKey: rk, IntermediateKey: ik}, nil
}

// RootPEM returns the root certificate as PEM.
func (ca *CA) RootPEM() []byte { return certPEM(ca.Root) }

// IntermediatePEM returns the intermediate certificate as PEM.
func (ca *CA) IntermediatePEM() []byte { return certPEM(ca.Intermediate) }

// Pool returns a new pool holding only the root, for tls.Config RootCAs and ClientCAs. Peers
// send the intermediate in their chain (Issued.CertPEM does).
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Root)
	return p
}

// render runs a certs template with the given subject and SANs for pub and returns the
// certificate template to sign.
func render(text string, subject x509util.Subject, sans []x509util.SubjectAlternativeName, pub crypto.PublicKey) (*x509.Certificate, error) {
	data := x509util.NewTemplateData()
	data.SetSubject(subject)
	if sans != nil {
		data.SetSubjectAlternativeNames(sans...)
	}
	c, err := x509util.NewCertificateFromX509(&x509.Certificate{PublicKey: pub}, x509util.WithTemplate(text, data))
	if err != nil {
		return nil, fmt.Errorf("render template: %w", err)
	}
	tpl := c.GetCertificate()
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tpl.SerialNumber = serial
	return tpl, nil
}

// setValidity sets NotBefore (backdated for clock skew) and NotAfter.
func setValidity(c *x509.Certificate, now time.Time, ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("lifetime %s must be positive", ttl)
	}
	c.NotBefore = now.Add(-clockSkew).UTC().Truncate(time.Second)
	c.NotAfter = now.Add(ttl).UTC().Truncate(time.Second)
	return nil
}

// newSerial returns a random serial number of up to 128 bits, never zero.
func newSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	for {
		n, err := rand.Int(rand.Reader, limit)
		if err != nil {
			return nil, fmt.Errorf("generate serial number: %w", err)
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}

func certPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// parseOneCert parses PEM holding exactly one certificate.
func parseOneCert(b []byte) (*x509.Certificate, error) {
	cs, err := ParseCertsPEM(b)
	if err != nil {
		return nil, err
	}
	if len(cs) != 1 {
		return nil, fmt.Errorf("want 1 certificate, got %d", len(cs))
	}
	return cs[0], nil
}
