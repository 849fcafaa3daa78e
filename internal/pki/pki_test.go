package pki

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"math/big"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"go.step.sm/crypto/keyutil"
)

func newTestCA(t *testing.T, name string, now time.Time) *CA {
	t.Helper()
	ca, err := NewCA(name, now)
	if err != nil {
		t.Fatalf("NewCA: %v", err)
	}
	return ca
}

// verify checks c against ca's root with the intermediates in chainPEM for one key usage.
func verify(t *testing.T, pool *x509.CertPool, chainPEM []byte, name string, usage x509.ExtKeyUsage, now time.Time) error {
	t.Helper()
	cs, err := ParseCertsPEM(chainPEM)
	if err != nil {
		t.Fatalf("ParseCertsPEM: %v", err)
	}
	inter := x509.NewCertPool()
	for _, c := range cs[1:] {
		inter.AddCert(c)
	}
	_, err = cs[0].Verify(x509.VerifyOptions{
		DNSName:       name,
		Roots:         pool,
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{usage},
	})
	return err
}

func TestNewCA(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	ca := newTestCA(t, "PocketMolt", now)

	tests := []struct {
		name        string
		cert        *x509.Certificate
		maxPathLen  int
		lifetime    time.Duration
		commonName  string
		parent      *x509.Certificate
		wantPathLen bool
	}{
		{"root", ca.Root, 1, RootLifetime, "PocketMolt Root CA", ca.Root, false},
		{"intermediate", ca.Intermediate, 0, IntermediateLifetime, "PocketMolt Intermediate CA", ca.Root, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.cert
			if !c.IsCA || !c.BasicConstraintsValid {
				t.Errorf("IsCA = %v, BasicConstraintsValid = %v", c.IsCA, c.BasicConstraintsValid)
			}
			if c.MaxPathLen != tt.maxPathLen || c.MaxPathLenZero != tt.wantPathLen {
				t.Errorf("MaxPathLen = %d (zero %v), want %d", c.MaxPathLen, c.MaxPathLenZero, tt.maxPathLen)
			}
			if c.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
				t.Errorf("KeyUsage = %v", c.KeyUsage)
			}
			if c.Subject.CommonName != tt.commonName {
				t.Errorf("CommonName = %q, want %q", c.Subject.CommonName, tt.commonName)
			}
			if !c.NotBefore.Equal(now.Add(-time.Minute)) {
				t.Errorf("NotBefore = %s, want %s", c.NotBefore, now.Add(-time.Minute))
			}
			if !c.NotAfter.Equal(now.Add(tt.lifetime)) {
				t.Errorf("NotAfter = %s, want %s", c.NotAfter, now.Add(tt.lifetime))
			}
			pub, ok := c.PublicKey.(*ecdsa.PublicKey)
			if !ok || pub.Curve != elliptic.P256() {
				t.Errorf("public key is %T, want ECDSA P-256", c.PublicKey)
			}
			if err := c.CheckSignatureFrom(tt.parent); err != nil {
				t.Errorf("not signed by %s: %v", tt.parent.Subject.CommonName, err)
			}
			if c.SerialNumber.Sign() <= 0 || c.SerialNumber.BitLen() > 128 {
				t.Errorf("serial %s is not a positive 128-bit number", c.SerialNumber)
			}
		})
	}
	if ca.Root.SerialNumber.Cmp(ca.Intermediate.SerialNumber) == 0 {
		t.Error("root and intermediate share a serial number")
	}

	for _, bad := range []struct {
		name string
		ca   string
		now  time.Time
	}{{"empty name", "", now}, {"zero time", "x", time.Time{}}} {
		t.Run(bad.name, func(t *testing.T) {
			if _, err := NewCA(bad.ca, bad.now); err == nil {
				t.Error("NewCA succeeded, want error")
			}
		})
	}
}

func TestLoadCA(t *testing.T) {
	now := time.Now()
	ca := newTestCA(t, "PocketMolt", now)
	other := newTestCA(t, "Other", now)
	rootKey, err := MarshalKey(ca.RootKey)
	if err != nil {
		t.Fatal(err)
	}
	intKey, err := MarshalKey(ca.IntermediateKey)
	if err != nil {
		t.Fatal(err)
	}
	otherIntKey, err := MarshalKey(other.IntermediateKey)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("round trip", func(t *testing.T) {
		loaded, err := LoadCA(ca.RootPEM(), rootKey, ca.IntermediatePEM(), intKey)
		if err != nil {
			t.Fatalf("LoadCA: %v", err)
		}
		if !loaded.Root.Equal(ca.Root) || !loaded.Intermediate.Equal(ca.Intermediate) {
			t.Error("loaded certificates differ")
		}
		if !keyutil.Equal(loaded.RootKey, ca.RootKey) || !keyutil.Equal(loaded.IntermediateKey, ca.IntermediateKey) {
			t.Error("loaded keys differ")
		}
		// A certificate from the loaded CA verifies against the original's pool.
		iss, err := loaded.IssueAdmin("alice", time.Hour, now)
		if err != nil {
			t.Fatal(err)
		}
		if err := verify(t, ca.Pool(), iss.CertPEM, "", x509.ExtKeyUsageClientAuth, now); err != nil {
			t.Errorf("verify: %v", err)
		}
	})

	t.Run("root key offline", func(t *testing.T) {
		loaded, err := LoadCA(ca.RootPEM(), nil, ca.IntermediatePEM(), intKey)
		if err != nil {
			t.Fatalf("LoadCA without the root key: %v", err)
		}
		if !loaded.RootKeyOffline() || loaded.RootKey != nil {
			t.Fatal("a CA loaded without its root key says it has one")
		}
		if ca.RootKeyOffline() {
			t.Fatal("a CA with its root key says it is offline")
		}
		// Leaves still issue: the intermediate signs them.
		iss, err := loaded.IssueAdmin("alice", time.Hour, now)
		if err != nil {
			t.Fatal(err)
		}
		if err := verify(t, ca.Pool(), iss.CertPEM, "", x509.ExtKeyUsageClientAuth, now); err != nil {
			t.Errorf("verify: %v", err)
		}
		// The intermediate is still checked against the root.
		if _, err := LoadCA(ca.RootPEM(), nil, other.IntermediatePEM(), otherIntKey); err == nil {
			t.Error("LoadCA without the root key accepted another CA's intermediate")
		}
	})

	tests := []struct {
		name                        string
		rootCert, rootK, intC, intK []byte
		want                        string
	}{
		{"root key swapped", ca.RootPEM(), intKey, ca.IntermediatePEM(), rootKey, "root key does not match"},
		{"intermediate key from other CA", ca.RootPEM(), rootKey, ca.IntermediatePEM(), otherIntKey, "intermediate key does not match"},
		{"intermediate of other CA", ca.RootPEM(), rootKey, other.IntermediatePEM(), otherIntKey, "not signed by root"},
		{"intermediate as root", ca.IntermediatePEM(), intKey, ca.IntermediatePEM(), intKey, "not a self-signed CA"},
		{"root not PEM", []byte("nope"), rootKey, ca.IntermediatePEM(), intKey, "root certificate"},
		{"two roots", append(ca.RootPEM(), other.RootPEM()...), rootKey, ca.IntermediatePEM(), intKey, "want 1 certificate"},
		{"key not PEM", ca.RootPEM(), []byte("nope"), ca.IntermediatePEM(), intKey, "root key"},
		{"certificate as key", ca.RootPEM(), ca.RootPEM(), ca.IntermediatePEM(), intKey, "unexpected PEM block"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadCA(tt.rootCert, tt.rootK, tt.intC, tt.intK)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("LoadCA error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestIssueServer(t *testing.T) {
	now := time.Now()
	ca := newTestCA(t, "PocketMolt", now)
	iss, err := ca.IssueServer([]string{"pmd.example.com", "LOCALHOST", "127.0.0.1", "::1", "[2001:db8::1]", "localhost", "*.pmd.example.com"}, 24*time.Hour, now)
	if err != nil {
		t.Fatalf("IssueServer: %v", err)
	}
	c := iss.Cert
	if want := []string{"pmd.example.com", "localhost", "*.pmd.example.com"}; !slices.Equal(c.DNSNames, want) {
		t.Errorf("DNSNames = %q, want %q", c.DNSNames, want)
	}
	var ips []string
	for _, ip := range c.IPAddresses {
		ips = append(ips, ip.String())
	}
	if want := []string{"127.0.0.1", "::1", "2001:db8::1"}; !slices.Equal(ips, want) {
		t.Errorf("IPAddresses = %q, want %q", ips, want)
	}
	if len(c.URIs) != 1 || c.URIs[0].String() != "pocketmolt://server" {
		t.Errorf("URIs = %v, want [pocketmolt://server]", c.URIs)
	}
	if c.Subject.CommonName != "pmd.example.com" {
		t.Errorf("CommonName = %q", c.Subject.CommonName)
	}
	if !slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) {
		t.Errorf("ExtKeyUsage = %v, want serverAuth only", c.ExtKeyUsage)
	}
	if c.KeyUsage != x509.KeyUsageDigitalSignature || c.IsCA {
		t.Errorf("KeyUsage = %v, IsCA = %v", c.KeyUsage, c.IsCA)
	}
	if iss.Key == nil || !keyutil.Equal(iss.Key.Public(), c.PublicKey) {
		t.Error("Key does not match the certificate")
	}
	k, err := ParseKey(iss.KeyPEM)
	if err != nil || !keyutil.Equal(k, iss.Key) {
		t.Errorf("KeyPEM does not hold Key: %v", err)
	}
	if !c.NotBefore.Equal(now.Add(-time.Minute).UTC().Truncate(time.Second)) || !c.NotAfter.Equal(now.Add(24*time.Hour).UTC().Truncate(time.Second)) {
		t.Errorf("validity %s to %s", c.NotBefore, c.NotAfter)
	}
	chain, err := ParseCertsPEM(iss.CertPEM)
	if err != nil || len(chain) != 2 || !chain[0].Equal(c) || !chain[1].Equal(ca.Intermediate) {
		t.Errorf("CertPEM is not leaf + intermediate (%d certificates, %v)", len(chain), err)
	}
	for _, name := range []string{"pmd.example.com", "localhost", "api.pmd.example.com", "127.0.0.1", "::1", "2001:db8::1"} {
		t.Run("verifies for "+name, func(t *testing.T) {
			if err := verify(t, ca.Pool(), iss.CertPEM, name, x509.ExtKeyUsageServerAuth, now); err != nil {
				t.Errorf("verify: %v", err)
			}
		})
	}
	for _, name := range []string{"other.example.com", "10.0.0.1"} {
		t.Run("does not verify for "+name, func(t *testing.T) {
			if err := verify(t, ca.Pool(), iss.CertPEM, name, x509.ExtKeyUsageServerAuth, now); err == nil {
				t.Error("verify succeeded, want error")
			}
		})
	}

	errTests := []struct {
		name  string
		names []string
		ttl   time.Duration
		want  string
	}{
		{"no names", nil, time.Hour, "no names"},
		{"empty name", []string{"pmd.example.com", ""}, time.Hour, "empty name"},
		{"bad ip", []string{"10.0.0.300"}, time.Hour, "bad IP address"},
		{"bad ipv6", []string{"fe80::1::2"}, time.Hour, "bad IP address"},
		{"ip zone", []string{"fe80::1%eth0"}, time.Hour, "zones are not allowed"},
		{"space", []string{"pmd example.com"}, time.Hour, "bad DNS name"},
		{"url", []string{"https://pmd.example.com"}, time.Hour, "bad DNS name"},
		{"port", []string{"pmd.example.com:443"}, time.Hour, "bad DNS name"},
		{"leading dash", []string{"-pmd.example.com"}, time.Hour, "bad DNS name"},
		{"empty label", []string{"pmd..example.com"}, time.Hour, "bad DNS name"},
		{"underscore", []string{"pmd_1.example.com"}, time.Hour, "bad DNS name"},
		{"zero ttl", []string{"localhost"}, 0, "must be positive"},
		{"negative ttl", []string{"localhost"}, -time.Hour, "must be positive"},
	}
	for _, tt := range errTests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ca.IssueServer(tt.names, tt.ttl, now)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("IssueServer error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestLeafLifetime(t *testing.T) {
	now := time.Now()
	ca := newTestCA(t, "PocketMolt", now)
	t.Run("capped at the intermediate", func(t *testing.T) {
		iss, err := ca.IssueAdmin("alice", 20*365*24*time.Hour, now)
		if err != nil {
			t.Fatal(err)
		}
		if !iss.Cert.NotAfter.Equal(ca.Intermediate.NotAfter) {
			t.Errorf("NotAfter = %s, want intermediate's %s", iss.Cert.NotAfter, ca.Intermediate.NotAfter)
		}
	})
	t.Run("intermediate expired", func(t *testing.T) {
		if _, err := ca.IssueAdmin("alice", time.Hour, now.Add(6*365*24*time.Hour)); err == nil {
			t.Error("IssueAdmin after the intermediate expired succeeded")
		}
	})
	t.Run("expired leaf does not verify", func(t *testing.T) {
		iss, err := ca.IssueAdmin("alice", time.Hour, now)
		if err != nil {
			t.Fatal(err)
		}
		if err := verify(t, ca.Pool(), iss.CertPEM, "", x509.ExtKeyUsageClientAuth, now.Add(2*time.Hour)); err == nil {
			t.Error("verify of an expired certificate succeeded")
		}
		// Backdated a minute for clock skew, not more.
		if err := verify(t, ca.Pool(), iss.CertPEM, "", x509.ExtKeyUsageClientAuth, now.Add(-30*time.Second)); err != nil {
			t.Errorf("verify 30s before issue: %v", err)
		}
	})
}

// TestExtKeyUsage checks that each kind of leaf verifies for its own usage only.
func TestExtKeyUsage(t *testing.T) {
	now := time.Now()
	ca := newTestCA(t, "PocketMolt", now)
	server, err := ca.IssueServer([]string{"localhost"}, time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := ca.IssueAdmin("alice", time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	agent := signAgent(t, ca, "host-1", now)

	tests := []struct {
		name   string
		iss    *Issued
		usage  x509.ExtKeyUsage
		wantOK bool
	}{
		{"server for serverAuth", server, x509.ExtKeyUsageServerAuth, true},
		{"server for clientAuth", server, x509.ExtKeyUsageClientAuth, false},
		{"admin for clientAuth", admin, x509.ExtKeyUsageClientAuth, true},
		{"admin for serverAuth", admin, x509.ExtKeyUsageServerAuth, false},
		{"agent for clientAuth", agent, x509.ExtKeyUsageClientAuth, true},
		{"agent for serverAuth", agent, x509.ExtKeyUsageServerAuth, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := verify(t, ca.Pool(), tt.iss.CertPEM, "", tt.usage, now)
			if (err == nil) != tt.wantOK {
				t.Errorf("verify error = %v, want ok = %v", err, tt.wantOK)
			}
		})
	}
}

func signAgent(t *testing.T, ca *CA, hostID string, now time.Time) *Issued {
	t.Helper()
	key, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := NewCSR(key, hostID)
	if err != nil {
		t.Fatal(err)
	}
	iss, err := ca.SignAgent(csr, hostID, DefaultAgentTTL, now)
	if err != nil {
		t.Fatalf("SignAgent: %v", err)
	}
	iss.Key = key // the agent's own key, for TLS tests
	return iss
}

// csrWith makes a PEM CSR for key with an arbitrary subject and SANs, as a hostile host could.
func csrWith(t *testing.T, key any, cn string, dns []string, uris []string) []byte {
	t.Helper()
	var us []*url.URL
	for _, s := range uris {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		us = append(us, u)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:  pkix.Name{CommonName: cn, Organization: []string{"evil"}},
		DNSNames: dns,
		URIs:     us,
	}, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func TestSignAgent(t *testing.T) {
	now := time.Now()
	ca := newTestCA(t, "PocketMolt", now)
	hostKey, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}

	t.Run("keeps the host key and ignores the request's names", func(t *testing.T) {
		csr := csrWith(t, hostKey, "pmd.example.com", []string{"pmd.example.com"}, []string{"pocketmolt://admin/root", "pocketmolt://server"})
		iss, err := ca.SignAgent(csr, "host-1", DefaultAgentTTL, now)
		if err != nil {
			t.Fatalf("SignAgent: %v", err)
		}
		c := iss.Cert
		if !keyutil.Equal(c.PublicKey, hostKey.Public()) {
			t.Error("certificate key is not the CSR's key")
		}
		if iss.Key != nil || iss.KeyPEM != nil {
			t.Error("Key or KeyPEM set for a CSR-signed certificate")
		}
		if c.Subject.CommonName != "host-1" || len(c.Subject.Organization) != 0 {
			t.Errorf("Subject = %v, want CN=host-1 only", c.Subject)
		}
		if len(c.DNSNames) != 0 || len(c.IPAddresses) != 0 || len(c.EmailAddresses) != 0 {
			t.Errorf("SANs from the request leaked: %v %v %v", c.DNSNames, c.IPAddresses, c.EmailAddresses)
		}
		if len(c.URIs) != 1 || c.URIs[0].String() != "pocketmolt://agent/host-1" {
			t.Errorf("URIs = %v, want [pocketmolt://agent/host-1]", c.URIs)
		}
		kind, id, err := IdentityOf(c)
		if err != nil || kind != KindAgent || id != "host-1" {
			t.Errorf("IdentityOf = %q, %q, %v", kind, id, err)
		}
		if !slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) {
			t.Errorf("ExtKeyUsage = %v", c.ExtKeyUsage)
		}
		if got, want := c.NotAfter.Sub(c.NotBefore), DefaultAgentTTL+time.Minute; got < want-time.Second || got > want+time.Second {
			t.Errorf("lifetime = %s, want %s", got, want)
		}
		if err := verify(t, ca.Pool(), iss.CertPEM, "", x509.ExtKeyUsageClientAuth, now); err != nil {
			t.Errorf("verify: %v", err)
		}
	})

	t.Run("RSA 2048 accepted", func(t *testing.T) {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		iss, err := ca.SignAgent(csrWith(t, k, "x", nil, nil), "host-rsa", time.Hour, now)
		if err != nil {
			t.Fatalf("SignAgent: %v", err)
		}
		if iss.Cert.KeyUsage != x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment {
			t.Errorf("KeyUsage = %v", iss.Cert.KeyUsage)
		}
	})

	good := csrWith(t, hostKey, "host-aaaa", nil, nil)
	block, _ := pem.Decode(good)
	tampered := bytes.Replace(block.Bytes, []byte("host-aaaa"), []byte("host-bbbb"), 1)
	if bytes.Equal(tampered, block.Bytes) {
		t.Fatal("tampering did not change the CSR")
	}
	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}

	errTests := []struct {
		name   string
		csr    []byte
		hostID string
		ttl    time.Duration
		want   string
	}{
		{"tampered", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: tampered}), "host-1", time.Hour, "signature"},
		{"not PEM", []byte("hello"), "host-1", time.Hour, "not PEM"},
		{"DER", block.Bytes, "host-1", time.Hour, "not PEM"},
		{"wrong block", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: block.Bytes}), "host-1", time.Hour, "unexpected PEM block"},
		{"garbage in block", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: []byte{1, 2, 3}}), "host-1", time.Hour, "parse certificate request"},
		{"trailing data", append(slices.Clone(good), good...), "host-1", time.Hour, "trailing data"},
		{"P-224", csrWith(t, p224, "x", nil, nil), "host-1", time.Hour, "P-224"},
		{"RSA 1024", csrWith(t, rsa1024, "x", nil, nil), "host-1", time.Hour, "1024 bits"},
		{"Ed25519", csrWith(t, edKey, "x", nil, nil), "host-1", time.Hour, "not allowed"},
		{"too large", bytes.Repeat([]byte("a"), maxCSRSize+1), "host-1", time.Hour, "too large"},
		{"empty host id", good, "", time.Hour, "1-63"},
		{"upper-case host id", good, "Host-1", time.Hour, "a-z"},
		{"slash in host id", good, "a/b", time.Hour, "a-z"},
		{"dot in host id", good, "..", time.Hour, "a-z"},
		{"long host id", good, strings.Repeat("a", 64), time.Hour, "1-63"},
		{"zero ttl", good, "host-1", 0, "must be positive"},
	}
	for _, tt := range errTests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ca.SignAgent(tt.csr, tt.hostID, tt.ttl, now)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("SignAgent error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestIssueAdmin(t *testing.T) {
	now := time.Now()
	ca := newTestCA(t, "PocketMolt", now)
	iss, err := ca.IssueAdmin("alice", 90*24*time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	if kind, id, err := IdentityOf(iss.Cert); err != nil || kind != KindAdmin || id != "alice" {
		t.Errorf("IdentityOf = %q, %q, %v", kind, id, err)
	}
	if iss.Cert.Subject.CommonName != "alice" {
		t.Errorf("CommonName = %q", iss.Cert.Subject.CommonName)
	}
	for _, name := range []string{"", "Alice", "al ice", "alice@example.com", strings.Repeat("a", 64)} {
		t.Run("rejects "+name, func(t *testing.T) {
			if _, err := ca.IssueAdmin(name, time.Hour, now); err == nil {
				t.Error("IssueAdmin succeeded, want error")
			}
		})
	}
}

// selfSigned makes a certificate outside our CA, with the given URI SANs.
func selfSigned(t *testing.T, uris ...string) *x509.Certificate {
	t.Helper()
	key, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "foreign"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	for _, s := range uris {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		tpl.URIs = append(tpl.URIs, u)
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestIdentityOf(t *testing.T) {
	now := time.Now()
	ca := newTestCA(t, "PocketMolt", now)
	server, err := ca.IssueServer([]string{"localhost"}, time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := ca.IssueAdmin("ops-1", time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	agent := signAgent(t, ca, "0f3a-host", now)

	tests := []struct {
		name     string
		cert     *x509.Certificate
		kind, id string
		wantErr  error // checked with errors.Is when set
		wantAny  bool  // any error
	}{
		{name: "server", cert: server.Cert, kind: KindServer},
		{name: "admin", cert: admin.Cert, kind: KindAdmin, id: "ops-1"},
		{name: "agent", cert: agent.Cert, kind: KindAgent, id: "0f3a-host"},
		{name: "CA certificate", cert: ca.Intermediate, wantErr: ErrNoIdentity},
		{name: "foreign without URIs", cert: selfSigned(t), wantErr: ErrNoIdentity},
		{name: "foreign with other URIs", cert: selfSigned(t, "https://example.com/agent/x", "spiffe://example.org/agent"), wantErr: ErrNoIdentity},
		{name: "foreign with identity URI", cert: selfSigned(t, "https://example.com", "pocketmolt://agent/h1"), kind: KindAgent, id: "h1"},
		{name: "empty id", cert: selfSigned(t, "pocketmolt://agent/"), wantAny: true},
		{name: "no path", cert: selfSigned(t, "pocketmolt://admin"), wantAny: true},
		{name: "bad id chars", cert: selfSigned(t, "pocketmolt://agent/Host_1"), wantAny: true},
		{name: "nested path", cert: selfSigned(t, "pocketmolt://agent/a/b"), wantAny: true},
		{name: "escaped path", cert: selfSigned(t, "pocketmolt://agent/a%2Fb"), wantAny: true},
		{name: "query", cert: selfSigned(t, "pocketmolt://agent/a?b=c"), wantAny: true},
		{name: "fragment", cert: selfSigned(t, "pocketmolt://agent/a#b"), wantAny: true},
		{name: "port", cert: selfSigned(t, "pocketmolt://agent:1/a"), wantAny: true},
		{name: "user", cert: selfSigned(t, "pocketmolt://u@agent/a"), wantAny: true},
		{name: "unknown kind", cert: selfSigned(t, "pocketmolt://bot/a"), wantAny: true},
		{name: "server with id", cert: selfSigned(t, "pocketmolt://server/x"), wantAny: true},
		{name: "opaque", cert: selfSigned(t, "pocketmolt:agent/a"), wantAny: true},
		{name: "two identities", cert: selfSigned(t, "pocketmolt://agent/a", "pocketmolt://admin/b"), wantAny: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kind, id, err := IdentityOf(tt.cert)
			switch {
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Errorf("IdentityOf error = %v, want %v", err, tt.wantErr)
				}
			case tt.wantAny:
				if err == nil {
					t.Errorf("IdentityOf = %q, %q, want error", kind, id)
				} else if errors.Is(err, ErrNoIdentity) {
					t.Errorf("IdentityOf error = %v, want a malformed-URI error", err)
				}
			default:
				if err != nil || kind != tt.kind || id != tt.id {
					t.Errorf("IdentityOf = %q, %q, %v, want %q, %q", kind, id, err, tt.kind, tt.id)
				}
			}
		})
	}
}

func TestForeignCA(t *testing.T) {
	now := time.Now()
	ours := newTestCA(t, "PocketMolt", now)
	theirs := newTestCA(t, "PocketMolt", now) // same name, different keys
	for _, tt := range []struct {
		name  string
		iss   func() (*Issued, error)
		usage x509.ExtKeyUsage
	}{
		{"agent", func() (*Issued, error) { return signAgent(t, theirs, "host-1", now), nil }, x509.ExtKeyUsageClientAuth},
		{"admin", func() (*Issued, error) { return theirs.IssueAdmin("alice", time.Hour, now) }, x509.ExtKeyUsageClientAuth},
		{"server", func() (*Issued, error) { return theirs.IssueServer([]string{"localhost"}, time.Hour, now) }, x509.ExtKeyUsageServerAuth},
	} {
		t.Run(tt.name, func(t *testing.T) {
			iss, err := tt.iss()
			if err != nil {
				t.Fatal(err)
			}
			if err := verify(t, theirs.Pool(), iss.CertPEM, "", tt.usage, now); err != nil {
				t.Fatalf("does not verify against its own CA: %v", err)
			}
			err = verify(t, ours.Pool(), iss.CertPEM, "", tt.usage, now)
			var unknown x509.UnknownAuthorityError
			if !errors.As(err, &unknown) {
				t.Errorf("verify against our pool error = %v, want UnknownAuthorityError", err)
			}
		})
	}
}

func TestVerifyPinned(t *testing.T) {
	now := time.Now()
	ca := newTestCA(t, "PocketMolt", now)
	other := newTestCA(t, "Other", now)
	server, err := ca.IssueServer([]string{"pmd.example.com", "127.0.0.1"}, time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	otherServer, err := other.IssueServer([]string{"pmd.example.com"}, time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	agent := signAgent(t, ca, "host-1", now)
	fp := Fingerprint(ca.Root)
	full := []*x509.Certificate{server.Cert, ca.Intermediate, ca.Root}

	tests := []struct {
		name    string
		chain   []*x509.Certificate
		fp      string
		server  string
		now     time.Time
		wantErr error // errors.Is when set
		wantOK  bool
	}{
		{name: "dns name", chain: full, fp: fp, server: "pmd.example.com", now: now, wantOK: true},
		{name: "ip", chain: full, fp: fp, server: "127.0.0.1", now: now, wantOK: true},
		{name: "root first", chain: []*x509.Certificate{server.Cert, ca.Root, ca.Intermediate}, fp: fp, server: "pmd.example.com", now: now, wantOK: true},
		{name: "wrong fingerprint", chain: full, fp: Fingerprint(other.Root), server: "pmd.example.com", now: now, wantErr: ErrPinMismatch},
		{name: "upper-case fingerprint", chain: full, fp: strings.ToUpper(fp), server: "pmd.example.com", now: now},
		{name: "short fingerprint", chain: full, fp: fp[:40], server: "pmd.example.com", now: now},
		{name: "intermediate's fingerprint", chain: full, fp: Fingerprint(ca.Intermediate), server: "pmd.example.com", now: now, wantErr: ErrPinMismatch},
		{name: "wrong name", chain: full, fp: fp, server: "evil.example.com", now: now},
		{name: "wrong ip", chain: full, fp: fp, server: "127.0.0.2", now: now},
		{name: "empty name", chain: full, fp: fp, server: "", now: now},
		{name: "no root sent", chain: []*x509.Certificate{server.Cert, ca.Intermediate}, fp: fp, server: "pmd.example.com", now: now, wantErr: ErrPinMismatch},
		{name: "no intermediate sent", chain: []*x509.Certificate{server.Cert, ca.Root}, fp: fp, server: "pmd.example.com", now: now},
		{name: "other CA's server with our root appended", chain: []*x509.Certificate{otherServer.Cert, other.Intermediate, ca.Root}, fp: fp, server: "pmd.example.com", now: now},
		{name: "client certificate", chain: []*x509.Certificate{agent.Cert, ca.Intermediate, ca.Root}, fp: fp, server: "host-1", now: now},
		{name: "expired", chain: full, fp: fp, server: "pmd.example.com", now: now.Add(2 * time.Hour)},
		{name: "empty chain", chain: nil, fp: fp, server: "pmd.example.com", now: now},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root, err := VerifyPinned(tt.chain, tt.fp, tt.server, tt.now)
			switch {
			case tt.wantOK:
				if err != nil {
					t.Fatalf("VerifyPinned: %v", err)
				}
				if !root.Equal(ca.Root) {
					t.Error("returned certificate is not the root")
				}
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Errorf("VerifyPinned error = %v, want %v", err, tt.wantErr)
				}
			default:
				if err == nil {
					t.Error("VerifyPinned succeeded, want error")
				}
			}
		})
	}
}

func TestKeysAndHelpers(t *testing.T) {
	key, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	if k, ok := key.Public().(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
		t.Fatalf("NewKey made %T, want ECDSA P-256", key.Public())
	}
	p, err := MarshalKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(p, []byte("-----BEGIN PRIVATE KEY-----")) {
		t.Errorf("MarshalKey is not PKCS#8 PEM: %.30q", p)
	}
	back, err := ParseKey(p)
	if err != nil || !keyutil.Equal(back, key) {
		t.Errorf("ParseKey round trip: %v", err)
	}
	ecDER, err := x509.MarshalECPrivateKey(key.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	if back, err := ParseKey(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER})); err != nil || !keyutil.Equal(back, key) {
		t.Errorf("ParseKey of SEC 1: %v", err)
	}
	if _, err := MarshalKey(nil); err == nil {
		t.Error("MarshalKey(nil) succeeded")
	}
	for _, bad := range []struct {
		name string
		in   []byte
	}{
		{"not PEM", []byte("nope")},
		{"encrypted", pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1}})},
		{"public key", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte{1}})},
		{"garbage", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2}})},
	} {
		t.Run("ParseKey "+bad.name, func(t *testing.T) {
			if _, err := ParseKey(bad.in); err == nil {
				t.Error("ParseKey succeeded, want error")
			}
		})
	}

	csrPEM, err := NewCSR(key, "host-1")
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(csrPEM)
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		t.Fatalf("NewCSR is not a PEM CSR: %q", csrPEM)
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil || csr.CheckSignature() != nil || csr.Subject.CommonName != "host-1" || !keyutil.Equal(csr.PublicKey, key.Public()) {
		t.Errorf("NewCSR made a bad request: %v", err)
	}
	if _, err := NewCSR(nil, "x"); err == nil {
		t.Error("NewCSR(nil) succeeded")
	}

	ca := newTestCA(t, "PocketMolt", time.Now())
	sum := sha256.Sum256(ca.Root.Raw)
	if got := Fingerprint(ca.Root); got != hex.EncodeToString(sum[:]) || len(got) != 64 || strings.ToLower(got) != got {
		t.Errorf("Fingerprint = %q", got)
	}
	s := SerialString(ca.Root)
	n, ok := new(big.Int).SetString(s, 16)
	if !ok || n.Cmp(ca.Root.SerialNumber) != 0 || strings.ToLower(s) != s {
		t.Errorf("SerialString = %q, serial %s", s, ca.Root.SerialNumber)
	}
}

func TestParseCertsPEM(t *testing.T) {
	ca := newTestCA(t, "PocketMolt", time.Now())
	key, err := MarshalKey(ca.RootKey)
	if err != nil {
		t.Fatal(err)
	}
	bundle := slices.Concat(ca.IntermediatePEM(), key, ca.RootPEM())
	cs, err := ParseCertsPEM(bundle)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 2 || !cs[0].Equal(ca.Intermediate) || !cs[1].Equal(ca.Root) {
		t.Errorf("ParseCertsPEM returned %d certificates, want intermediate then root", len(cs))
	}
	for _, bad := range []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"DER", ca.Root.Raw},
		{"only a key", key},
		{"bad certificate", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1, 2, 3}})},
	} {
		t.Run(bad.name, func(t *testing.T) {
			if _, err := ParseCertsPEM(bad.in); err == nil {
				t.Error("ParseCertsPEM succeeded, want error")
			}
		})
	}
}
