package wire

import (
	"log/slog"
	"time"
)

// AdminRequest is the body of POST /v1/admins: a certificate for one operator.
type AdminRequest struct {
	// Name is the operator's name as the audit log will show it (admin:<name>): 1-63
	// lower-case letters, digits and dashes.
	Name string `json:"name"`
	// TTL is the certificate's lifetime; zero means pmd's default (a year).
	TTL Duration `json:"ttl,omitempty"`
}

// Admin is one admin certificate as the admin API shows it. An operator may hold several
// (a new one made before the old one expires, or by `pmd admin-cert`).
type Admin struct {
	Name      string     `json:"name" yaml:"name"`
	Serial    string     `json:"serial" yaml:"serial"`
	NotBefore time.Time  `json:"not_before" yaml:"not_before"`
	NotAfter  time.Time  `json:"not_after" yaml:"not_after"`
	RevokedAt *time.Time `json:"revoked_at,omitempty" yaml:"revoked_at,omitempty"`
	// Status is CertValid, CertRevoked or CertExpired.
	Status string `json:"status" yaml:"status"`
}

// AdminBundle is the answer to POST /v1/admins, shown once: pmd makes the key, hands it over
// here and keeps only the certificate's record.
type AdminBundle struct {
	Admin
	Cert   string `json:"cert"`    // PEM: leaf then intermediate
	Key    string `json:"key"`     // PEM private key
	RootCA string `json:"root_ca"` // PEM
}

// LogValue implements slog.LogValuer: the certificate's record, never the key.
func (b AdminBundle) LogValue() slog.Value {
	return slog.GroupValue(slog.String("name", b.Name), slog.String("serial", b.Serial), slog.String("key", "[redacted]"))
}

// AdminRevocation is the answer to POST /v1/admins/{name}/revoke: the certificates it revoked.
type AdminRevocation struct {
	Name    string  `json:"name" yaml:"name"`
	Revoked []Admin `json:"revoked" yaml:"revoked"`
}
