package ctlconfig

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"strings"
)

// Host returns the host part of Server (Server may be host:port or a bare host).
func (c *Context) Host() string {
	s := strings.TrimPrefix(c.Server, "https://")
	if h, _, err := net.SplitHostPort(s); err == nil {
		return h
	}
	return strings.Trim(s, "[]")
}

// TLSConfig builds the client TLS configuration for the context: TLS 1.3 only, pmd's root CA
// from CAData as the only trusted root, the admin certificate from CertData and KeyData, and
// ServerName (or the host part of Server) as the name to verify.
func (c *Context) TLSConfig() (*tls.Config, error) {
	if c.Server == "" {
		return nil, fmt.Errorf("context %q: server is empty", c.Name)
	}
	if strings.TrimSpace(c.CAData) == "" {
		return nil, fmt.Errorf("context %q: ca-data is empty", c.Name)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM([]byte(c.CAData)) {
		return nil, fmt.Errorf("context %q: ca-data holds no PEM certificate", c.Name)
	}
	if strings.TrimSpace(c.CertData) == "" || strings.TrimSpace(c.KeyData) == "" {
		return nil, fmt.Errorf("context %q: cert-data and key-data are both required", c.Name)
	}
	cert, err := tls.X509KeyPair([]byte(c.CertData), []byte(c.KeyData))
	if err != nil {
		return nil, fmt.Errorf("context %q: cert-data/key-data: %w", c.Name, err)
	}
	name := c.ServerName
	if name == "" {
		name = c.Host()
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		RootCAs:      roots,
		Certificates: []tls.Certificate{cert},
		ServerName:   name,
	}, nil
}
