package pki

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"

	"go.step.sm/crypto/keyutil"
	"go.step.sm/crypto/pemutil"
	"go.step.sm/crypto/x509util"
)

// NewKey makes an ECDSA P-256 private key.
func NewKey() (crypto.Signer, error) {
	k, err := keyutil.GenerateSigner("EC", "P-256", 0)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	return k, nil
}

// MarshalKey encodes a private key as unencrypted PKCS#8 PEM ("PRIVATE KEY"). The caller seals
// it before it is stored.
func MarshalKey(key crypto.Signer) ([]byte, error) {
	if key == nil {
		return nil, errors.New("marshal key: nil key")
	}
	block, err := pemutil.Serialize(key, pemutil.WithPKCS8(true))
	if err != nil {
		return nil, fmt.Errorf("marshal key: %w", err)
	}
	return pem.EncodeToMemory(block), nil
}

// ParseKey decodes one unencrypted private key in PEM: PKCS#8 ("PRIVATE KEY"), SEC 1
// ("EC PRIVATE KEY") or PKCS#1 ("RSA PRIVATE KEY").
func ParseKey(b []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("parse key: not PEM")
	}
	switch block.Type {
	case "PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY":
	default:
		// Encrypted keys are refused here rather than prompting for a password.
		return nil, fmt.Errorf("parse key: unexpected PEM block %q", block.Type)
	}
	k, err := pemutil.ParseKey(b)
	if err != nil {
		return nil, fmt.Errorf("parse key: %w", err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("parse key: %T is not a private key", k)
	}
	return s, nil
}

// NewCSR makes a PEM certificate request for key. The CA ignores commonName and takes the
// identity from its own records; it is there for people reading the request.
func NewCSR(key crypto.Signer, commonName string) ([]byte, error) {
	if key == nil {
		return nil, errors.New("new certificate request: nil key")
	}
	cr, err := x509util.CreateCertificateRequest(commonName, nil, key)
	if err != nil {
		return nil, fmt.Errorf("new certificate request: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: cr.Raw}), nil
}

// ParseCertsPEM decodes every CERTIFICATE block in b, in order. It fails if b is not PEM or
// holds no certificate.
func ParseCertsPEM(b []byte) ([]*x509.Certificate, error) {
	if !bytes.Contains(b, []byte("-----BEGIN ")) {
		return nil, errors.New("parse certificates: not PEM")
	}
	cs, err := pemutil.ParseCertificateBundle(b)
	if err != nil {
		return nil, fmt.Errorf("parse certificates: %w", err)
	}
	return cs, nil
}

// Fingerprint returns the lower-case hex SHA-256 of the certificate's DER encoding (64
// characters), the form enrollment tokens carry.
func Fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

// SerialString returns the certificate's serial number in lower-case hex, without leading
// zeros: the key under which pmd records and revokes certificates.
func SerialString(c *x509.Certificate) string {
	return c.SerialNumber.Text(16)
}
