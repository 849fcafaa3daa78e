// Package apitest starts a stand-in for pmd's admin API in tests: a real HTTPS server on
// loopback with TLS 1.3 and required client certificates, a throwaway CA made with crypto/x509,
// and a recorder of the requests it served.
package apitest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/ctlconfig"
)

// CA is a throwaway certificate authority.
type CA struct {
	Cert    *x509.Certificate
	Key     *ecdsa.PrivateKey
	CertPEM string
}

// NewCA makes a self-signed root valid for a day.
func NewCA(t testing.TB, name string) *CA {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &CA{Cert: cert, Key: key, CertPEM: encodePEM("CERTIFICATE", der)}
}

// Issue signs a leaf for cn: a server certificate for 127.0.0.1 and localhost when server is
// true, an admin client certificate otherwise. It returns the PEM certificate and key.
func (ca *CA) Issue(t testing.TB, cn string, server bool) (certPEM, keyPEM string) {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: serial(t),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.DNSNames = []string{"localhost"}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return encodePEM("CERTIFICATE", der), encodePEM("PRIVATE KEY", kder)
}

// ServerTLS is a server certificate for 127.0.0.1 and localhost from a fresh CA, and a pool
// that trusts that CA: enough TLS for a test of any listener.
func ServerTLS(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	ca := NewCA(t, "test CA")
	certPEM, keyPEM := ca.Issue(t, "test server", true)
	cert, err := tls.X509KeyPair([]byte(certPEM), []byte(keyPEM))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	return cert, pool
}

// Request is one request the server answered.
type Request struct {
	Method string
	// Path is the escaped path, as sent.
	Path  string
	Query string
	Body  string
}

// Server is a fake admin API.
type Server struct {
	*httptest.Server
	// CA signed the server certificate and the admin certificate of Context.
	CA *CA
	// Context reaches the server with a valid admin certificate.
	Context ctlconfig.Context

	mu       sync.Mutex
	requests []Request
}

// NewServer starts h behind TLS 1.3 with RequireAndVerifyClientCert and stops it when the
// test ends. opts may adjust the server's TLS configuration before it starts, e.g. to refuse
// a certificate the way pmd refuses a revoked one.
func NewServer(t testing.TB, h http.Handler, opts ...func(*tls.Config)) *Server {
	t.Helper()
	ca := NewCA(t, "test root")
	certPEM, keyPEM := ca.Issue(t, "pmd", true)
	serverCert, err := tls.X509KeyPair([]byte(certPEM), []byte(keyPEM))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	s := &Server{CA: ca}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(b))
		s.mu.Lock()
		s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.EscapedPath(), Query: r.URL.RawQuery, Body: string(b)})
		s.mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	s.Server.TLS = &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{serverCert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
	}
	for _, o := range opts {
		o(s.Server.TLS)
	}
	s.Server.Config.ErrorLog = log.New(io.Discard, "", 0) // handshake failures are expected in tests
	s.StartTLS()
	t.Cleanup(s.Close)

	adminCert, adminKey := ca.Issue(t, "admin", false)
	s.Context = ctlconfig.Context{
		Name:     "default",
		Server:   s.Listener.Addr().String(),
		CAData:   ca.CertPEM,
		CertData: adminCert,
		KeyData:  adminKey,
	}
	return s
}

// ForeignContext is Context with an admin certificate from another CA: the server refuses it
// during the handshake.
func (s *Server) ForeignContext(t testing.TB) ctlconfig.Context {
	t.Helper()
	other := NewCA(t, "other root")
	c := s.Context
	c.Name = "foreign"
	c.CertData, c.KeyData = other.Issue(t, "intruder", false)
	return c
}

// Requests returns the requests served so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// WriteConfig writes a pmctl config file in a fresh temporary directory holding contexts, the
// first being current, and returns its path.
func WriteConfig(t testing.TB, contexts ...ctlconfig.Context) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pmctl", "config.yaml")
	cfg := &ctlconfig.Config{Contexts: contexts}
	if len(contexts) > 0 {
		cfg.CurrentContext = contexts[0].Name
	}
	if err := ctlconfig.Write(path, cfg); err != nil {
		t.Fatal(err)
	}
	return path
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func serial(t testing.TB) *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func encodePEM(typ string, der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
}
