package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"go.step.sm/crypto/x509util"

	"github.com/pocketmolt/pocketmolt/certs"
)

// maxCSRSize bounds the CSR input; a P-256 CSR is well under 1 KiB.
const maxCSRSize = 64 << 10

// IssueServer makes a key and a server certificate (ExtKeyUsage serverAuth) for pmd's
// listeners, valid for ttl. Each name is a DNS name ("pmd.example.com", "localhost") or an IP
// literal ("10.0.0.1", "::1"), which becomes an IP SAN; the identity URI pocketmolt://server
// is added. The common name is the first name, normalized (lower case, IPs without brackets).
func (ca *CA) IssueServer(names []string, ttl time.Duration, now time.Time) (*Issued, error) {
	if len(names) == 0 {
		return nil, errors.New("issue server certificate: no names")
	}
	var sans []x509util.SubjectAlternativeName
	seen := map[string]bool{}
	for _, n := range names {
		san, err := serverSAN(n)
		if err != nil {
			return nil, fmt.Errorf("issue server certificate: %w", err)
		}
		if !seen[san.Type+" "+san.Value] {
			seen[san.Type+" "+san.Value] = true
			sans = append(sans, san)
		}
	}
	sans = append(sans, x509util.SubjectAlternativeName{Type: x509util.URIType, Value: identityURI(KindServer, "")})
	iss, err := ca.issueWithKey(certs.Server(), sans[0].Value, sans, ttl, now)
	if err != nil {
		return nil, fmt.Errorf("issue server certificate: %w", err)
	}
	return iss, nil
}

// IssueAdmin makes a key and a client certificate (ExtKeyUsage clientAuth) for the operator
// name, valid for ttl, with the identity pocketmolt://admin/<name>. name must pass
// ValidateName. The key is made here because the result is handed to the operator as a bundle.
func (ca *CA) IssueAdmin(name string, ttl time.Duration, now time.Time) (*Issued, error) {
	if err := ValidateName(name); err != nil {
		return nil, fmt.Errorf("issue admin certificate: admin %w", err)
	}
	sans := []x509util.SubjectAlternativeName{{Type: x509util.URIType, Value: identityURI(KindAdmin, name)}}
	iss, err := ca.issueWithKey(certs.Admin(), name, sans, ttl, now)
	if err != nil {
		return nil, fmt.Errorf("issue admin certificate %s: %w", name, err)
	}
	return iss, nil
}

// SignAgent signs a host's CSR (PEM) as an agent client certificate (ExtKeyUsage clientAuth)
// for hostID, valid for ttl, with the identity pocketmolt://agent/<hostID>. It checks the
// CSR's signature and key (ECDSA P-256/P-384/P-521 or RSA of at least 2048 bits) and uses only
// its public key: the subject and SANs the host asked for are ignored. The result has no Key.
func (ca *CA) SignAgent(csrPEM []byte, hostID string, ttl time.Duration, now time.Time) (*Issued, error) {
	if err := ValidateName(hostID); err != nil {
		return nil, fmt.Errorf("sign agent certificate: host id %w", err)
	}
	csr, err := parseCSR(csrPEM)
	if err != nil {
		return nil, fmt.Errorf("sign agent certificate for %s: %w", hostID, err)
	}
	sans := []x509util.SubjectAlternativeName{{Type: x509util.URIType, Value: identityURI(KindAgent, hostID)}}
	iss, err := ca.issue(certs.Agent(), hostID, sans, csr.PublicKey, ttl, now)
	if err != nil {
		return nil, fmt.Errorf("sign agent certificate for %s: %w", hostID, err)
	}
	return iss, nil
}

// issueWithKey makes a key and issues a certificate for it.
func (ca *CA) issueWithKey(tmpl, cn string, sans []x509util.SubjectAlternativeName, ttl time.Duration, now time.Time) (*Issued, error) {
	key, err := NewKey()
	if err != nil {
		return nil, err
	}
	keyPEM, err := MarshalKey(key)
	if err != nil {
		return nil, err
	}
	iss, err := ca.issue(tmpl, cn, sans, key.Public(), ttl, now)
	if err != nil {
		return nil, err
	}
	iss.Key, iss.KeyPEM = key, keyPEM
	return iss, nil
}

// issue renders tmpl for pub and signs it with the intermediate. NotAfter is capped at the
// intermediate's NotAfter, since a leaf cannot outlive its issuer in any verifier.
func (ca *CA) issue(tmpl, cn string, sans []x509util.SubjectAlternativeName, pub crypto.PublicKey, ttl time.Duration, now time.Time) (*Issued, error) {
	if ttl <= 0 {
		return nil, fmt.Errorf("lifetime %s must be positive", ttl)
	}
	if now.IsZero() {
		return nil, errors.New("zero time")
	}
	if now.Before(ca.Intermediate.NotBefore) || now.After(ca.Intermediate.NotAfter) {
		return nil, fmt.Errorf("intermediate CA is not valid at %s (valid %s to %s)",
			now.UTC().Format(time.RFC3339), ca.Intermediate.NotBefore.Format(time.RFC3339), ca.Intermediate.NotAfter.Format(time.RFC3339))
	}
	tpl, err := render(tmpl, x509util.Subject{CommonName: cn}, sans, pub)
	if err != nil {
		return nil, err
	}
	if err := setValidity(tpl, now, ttl); err != nil {
		return nil, err
	}
	if tpl.NotAfter.After(ca.Intermediate.NotAfter) {
		tpl.NotAfter = ca.Intermediate.NotAfter
	}
	c, err := x509util.CreateCertificate(tpl, ca.Intermediate, pub, ca.IntermediateKey)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	chain := append(certPEM(c), certPEM(ca.Intermediate)...)
	return &Issued{Cert: c, CertPEM: chain}, nil
}

// serverSAN turns a server name into a DNS or IP SAN.
func serverSAN(name string) (x509util.SubjectAlternativeName, error) {
	if name == "" {
		return x509util.SubjectAlternativeName{}, errors.New("empty name")
	}
	if strings.HasPrefix(name, "[") && strings.HasSuffix(name, "]") {
		name = name[1 : len(name)-1] // "[::1]" as written in URLs
	}
	if ip, err := netip.ParseAddr(name); err == nil {
		if ip.Zone() != "" {
			return x509util.SubjectAlternativeName{}, fmt.Errorf("IP address %q: zones are not allowed", name)
		}
		return x509util.SubjectAlternativeName{Type: x509util.IPType, Value: ip.Unmap().String()}, nil
	}
	if err := validDNSName(name); err != nil {
		return x509util.SubjectAlternativeName{}, err
	}
	return x509util.SubjectAlternativeName{Type: x509util.DNSType, Value: strings.ToLower(name)}, nil
}

// validDNSName accepts a host name: dot-separated labels of letters, digits and '-', each
// 1-63 long and not starting or ending with '-'; an optional "*." wildcard prefix; at most 253
// characters. A name that looks like a malformed IP address is rejected as such.
func validDNSName(name string) error {
	if looksLikeIP(name) {
		return fmt.Errorf("bad IP address %q", name)
	}
	n := strings.TrimPrefix(name, "*.")
	if len(n) == 0 || len(n) > 253 {
		return fmt.Errorf("bad DNS name %q: length", name)
	}
	for _, label := range strings.Split(n, ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("bad DNS name %q", name)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("bad DNS name %q", name)
			}
		}
	}
	return nil
}

// looksLikeIP reports whether name can only have been meant as an IP address: digits and
// dots ("10.0.0.300"), or hex digits, dots and at least one colon ("fe80::1::2").
func looksLikeIP(name string) bool {
	numeric, v6 := true, strings.Contains(name, ":")
	for i := 0; i < len(name); i++ {
		c := name[i]
		if (c < '0' || c > '9') && c != '.' {
			numeric = false
		}
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' || c == '.' || c == ':' || c == '%') {
			v6 = false
		}
	}
	return numeric || v6
}

// parseCSR decodes one PEM CSR, checks its signature and that its key is acceptable.
func parseCSR(b []byte) (*x509.CertificateRequest, error) {
	if len(b) > maxCSRSize {
		return nil, fmt.Errorf("certificate request is too large (%d bytes)", len(b))
	}
	block, rest := pem.Decode(b)
	if block == nil {
		return nil, errors.New("certificate request is not PEM")
	}
	if block.Type != "CERTIFICATE REQUEST" && block.Type != "NEW CERTIFICATE REQUEST" {
		return nil, fmt.Errorf("certificate request: unexpected PEM block %q", block.Type)
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, errors.New("certificate request: trailing data after PEM block")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse certificate request: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("certificate request signature: %w", err)
	}
	if err := checkPublicKey(csr.PublicKey); err != nil {
		return nil, fmt.Errorf("certificate request: %w", err)
	}
	return csr, nil
}

// checkPublicKey accepts ECDSA keys on P-256, P-384 and P-521 and RSA keys of 2048 to 8192
// bits.
func checkPublicKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
			return nil
		}
		return fmt.Errorf("ECDSA curve %s is not allowed", k.Curve.Params().Name)
	case *rsa.PublicKey:
		if bits := k.N.BitLen(); bits < 2048 || bits > 8192 {
			return fmt.Errorf("RSA key of %d bits is not allowed (2048-8192)", bits)
		}
		return nil
	default:
		return fmt.Errorf("key type %T is not allowed (ECDSA or RSA only)", pub)
	}
}
