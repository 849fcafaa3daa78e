package store

import (
	"context"
	"fmt"
)

// KeyPair is CA or server key material: a PEM certificate and its private
// key, sealed by the caller before it reaches the store.
type KeyPair struct {
	Name      string
	CertPEM   []byte
	KeySealed string
}

// PutKeyPair inserts kp, or replaces the key pair of the same name.
func (s *Store) PutKeyPair(ctx context.Context, kp KeyPair) error {
	_, err := s.exec(ctx, `INSERT INTO key_pairs (name, cert_pem, key_sealed) VALUES (?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET cert_pem = excluded.cert_pem, key_sealed = excluded.key_sealed`,
		kp.Name, kp.CertPEM, kp.KeySealed)
	if err != nil {
		return fmt.Errorf("put key pair %s: %w", kp.Name, dbErr(err))
	}
	return nil
}

// GetKeyPair returns the key pair with the given name, or ErrNotFound.
func (s *Store) GetKeyPair(ctx context.Context, name string) (KeyPair, error) {
	var kp KeyPair
	err := s.queryRow(ctx, `SELECT name, cert_pem, key_sealed FROM key_pairs WHERE name = ?`, name).
		Scan(&kp.Name, &kp.CertPEM, &kp.KeySealed)
	if err != nil {
		return KeyPair{}, fmt.Errorf("get key pair %s: %w", name, dbErr(err))
	}
	return kp, nil
}
