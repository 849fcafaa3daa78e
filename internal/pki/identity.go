package pki

import (
	"crypto/x509"
	"errors"
	"fmt"
)

// Kinds of identity a certificate can carry.
const (
	KindServer = "server"
	KindAdmin  = "admin"
	KindAgent  = "agent"
)

// URIScheme is the scheme of identity URI SANs.
const URIScheme = "pocketmolt"

// ErrNoIdentity is returned by IdentityOf for a certificate without a pocketmolt URI SAN, such
// as one from another CA.
var ErrNoIdentity = errors.New("certificate has no pocketmolt identity")

// ValidateName checks a host id or admin name: 1 to 63 characters from a-z, 0-9 and '-'. Such
// names are safe in URIs, paths and log lines without escaping.
func ValidateName(s string) error {
	if len(s) == 0 || len(s) > 63 {
		return fmt.Errorf("%q must be 1-63 characters", s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return fmt.Errorf("%q may contain only a-z, 0-9 and '-'", s)
		}
	}
	return nil
}

// identityURI returns "pocketmolt://server", "pocketmolt://admin/<id>" or
// "pocketmolt://agent/<id>"; id is already validated.
func identityURI(kind, id string) string {
	if kind == KindServer {
		return URIScheme + "://" + KindServer
	}
	return URIScheme + "://" + kind + "/" + id
}

// IdentityOf returns the identity in the certificate's pocketmolt URI SAN: kind is KindAgent
// (id is the host id), KindAdmin (id is the admin name) or KindServer (id is ""). It fails with
// ErrNoIdentity if there is no such SAN and with another error if there are several or the URI
// is malformed. It does not verify the certificate: use it on a verified chain's leaf, such as
// tls.ConnectionState.VerifiedChains[0][0].
func IdentityOf(c *x509.Certificate) (kind, id string, err error) {
	var found []string
	for _, u := range c.URIs {
		if u.Scheme != URIScheme {
			continue
		}
		found = append(found, u.String())
		if u.Opaque != "" || u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.Port() != "" {
			return "", "", fmt.Errorf("malformed identity URI %q", u.String())
		}
		switch u.Host {
		case KindServer:
			if u.Path != "" {
				return "", "", fmt.Errorf("malformed identity URI %q", u.String())
			}
			kind, id = KindServer, ""
		case KindAdmin, KindAgent:
			name, ok := cutSlash(u.Path)
			if !ok || u.RawPath != "" || ValidateName(name) != nil {
				return "", "", fmt.Errorf("malformed identity URI %q", u.String())
			}
			kind, id = u.Host, name
		default:
			return "", "", fmt.Errorf("malformed identity URI %q: unknown kind", u.String())
		}
	}
	switch len(found) {
	case 0:
		return "", "", ErrNoIdentity
	case 1:
		return kind, id, nil
	default:
		return "", "", fmt.Errorf("certificate has %d identity URIs", len(found))
	}
}

func cutSlash(p string) (string, bool) {
	if len(p) < 2 || p[0] != '/' {
		return "", false
	}
	return p[1:], true
}
