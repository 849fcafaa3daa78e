package agent

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/pocketmolt/pocketmolt/internal/pki"
)

// The state dir holds the host's identity. The key never leaves it.
const (
	identityFile = "identity.json"
	caFile       = "ca.pem"
	certFile     = "cert.pem"
	keyFile      = "key.pem"
)

// Identity is who this host is and where its pmd lives, written by enroll.
type Identity struct {
	HostID   string `json:"host_id"`
	HostName string `json:"host_name"`
	// Server is pmd's agent address (host:port); ServerName is the name its certificate is
	// checked against.
	Server     string `json:"server"`
	ServerName string `json:"server_name"`
}

// ErrNotEnrolled means the state dir holds no identity yet.
var ErrNotEnrolled = errors.New("not enrolled")

// State is the contents of an agent's state dir.
type State struct {
	Dir      string
	Identity Identity
}

// LoadState reads a state dir written by Enroll.
func LoadState(dir string) (*State, error) {
	// Absolute, since bot directories under it are bind-mounted into containers.
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("state dir %s is not a directory", dir)
	}
	b, err := os.ReadFile(filepath.Join(dir, identityFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("state dir %s: %w: run pmagent enroll first", dir, ErrNotEnrolled)
	}
	if err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	var st State
	if err := json.Unmarshal(b, &st.Identity); err != nil || st.Identity.HostID == "" {
		return nil, fmt.Errorf("state dir %s: %s is damaged; enroll again", dir, identityFile)
	}
	st.Dir = dir
	return &st, nil
}

// RootPool is the pinned root CA.
func (s *State) RootPool() (*x509.CertPool, error) {
	b, err := os.ReadFile(filepath.Join(s.Dir, caFile))
	if err != nil {
		return nil, fmt.Errorf("read pinned CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("pinned CA %s is damaged; enroll again", filepath.Join(s.Dir, caFile))
	}
	return pool, nil
}

// Certificate is the host's current client certificate and key, read fresh from disk so a
// renewal is picked up by the next connection.
func (s *State) Certificate() (tls.Certificate, *x509.Certificate, error) {
	c, err := tls.LoadX509KeyPair(filepath.Join(s.Dir, certFile), filepath.Join(s.Dir, keyFile))
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("load host certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("parse host certificate: %w", err)
	}
	c.Leaf = leaf
	return c, leaf, nil
}

// saveCertificate replaces the host's certificate and key. Both are written to temporary files
// before either is renamed into place, so a failed write leaves the old pair.
func (s *State) saveCertificate(certPEM []byte, key []byte) error {
	return writeFiles(s.Dir, map[string][]byte{certFile: certPEM, keyFile: key})
}

func writeFiles(dir string, files map[string][]byte) error {
	tmp := map[string]string{}
	defer func() {
		for _, t := range tmp {
			os.Remove(t)
		}
	}()
	for name, data := range files {
		f, err := os.CreateTemp(dir, "."+name+".*")
		if err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
		tmp[name] = f.Name()
		if err := f.Chmod(0o600); err == nil {
			_, err = f.Write(data)
		}
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	for name, t := range tmp {
		if err := os.Rename(t, filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
		delete(tmp, name)
	}
	return nil
}

// newKeyAndCSR makes a fresh host key and a CSR for it.
func newKeyAndCSR(cn string) (keyPEM, csrPEM []byte, err error) {
	key, err := pki.NewKey()
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err = pki.MarshalKey(key)
	if err != nil {
		return nil, nil, err
	}
	csrPEM, err = pki.NewCSR(key, cn)
	if err != nil {
		return nil, nil, err
	}
	return keyPEM, csrPEM, nil
}
