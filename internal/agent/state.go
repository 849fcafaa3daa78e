package agent

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/pocketmolt/pocketmolt/internal/pki"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// The state dir holds the host's identity. The key never leaves it.
const (
	identityFile = "identity.json"
	caFile       = "ca.pem"
	// hostFile holds the host's private key and its certificate chain together, so that one
	// rename replaces both: a crash can leave the old pair or the new one, never half of each.
	hostFile = "host.pem"
	// certFile and keyFile are where agents before issue 6 kept the pair. They are still read
	// when hostFile is absent, and removed by the first save.
	certFile = "cert.pem"
	keyFile  = "key.pem"
	// revokedServersFile lists the serials of pmd server certificates pmd has revoked.
	revokedServersFile = "revoked-servers.json"
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

// TunnelTLS is the client configuration of a tunnel to pmd: TLS 1.3, the host's certificate,
// pmd's name checked against the pinned root, ALPN wire.ProtoTunnel.
func (s *State) TunnelTLS() (*tls.Config, error) {
	pool, err := s.RootPool()
	if err != nil {
		return nil, err
	}
	cert, _, err := s.Certificate()
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		RootCAs:      pool,
		ServerName:   s.Identity.ServerName,
		Certificates: []tls.Certificate{cert},
		NextProtos:   []string{wire.ProtoTunnel},
	}, nil
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
// renewal is picked up by the next connection: host.pem, or the cert.pem and key.pem of a
// state dir no renewal has saved into since issue 6.
func (s *State) Certificate() (tls.Certificate, *x509.Certificate, error) {
	var (
		c   tls.Certificate
		err error
	)
	b, rerr := os.ReadFile(filepath.Join(s.Dir, hostFile))
	switch {
	case rerr == nil:
		c, err = tls.X509KeyPair(b, b)
	case errors.Is(rerr, os.ErrNotExist):
		c, err = tls.LoadX509KeyPair(filepath.Join(s.Dir, certFile), filepath.Join(s.Dir, keyFile))
	default:
		err = rerr
	}
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

// saveCertificate replaces the host's key and certificate chain. Both go into one file,
// written to a temporary file, synced and renamed into place, and the directory synced: a
// failed write (a full disk) changes nothing, and a crash at any point leaves the old pair or
// the new one. A pair whose key does not match its certificate is refused. The files of the
// two-file layout are removed once the new file is in place.
func (s *State) saveCertificate(certPEM []byte, key []byte) error {
	if _, err := tls.X509KeyPair(certPEM, key); err != nil {
		return fmt.Errorf("save host certificate: %w", err)
	}
	data := append(append(append([]byte{}, key...), '\n'), certPEM...)
	err := replaceFile(s.Dir, hostFile, data)
	clear(data)
	if err != nil {
		return fmt.Errorf("save host certificate: %w", err)
	}
	for _, old := range []string{certFile, keyFile} {
		if err := os.Remove(filepath.Join(s.Dir, old)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("save host certificate: remove %s: %w", old, err)
		}
	}
	return nil
}

// revokedServers are the serials of server certificates pmd revoked, as it last said.
type revokedServers struct {
	Serials []string `json:"serials"`
}

// RevokedServers returns the serials of pmd server certificates that pmd said it revoked: the
// agent refuses a server that presents one. A state dir without the list has none.
func (s *State) RevokedServers() ([]string, error) {
	b, err := os.ReadFile(filepath.Join(s.Dir, revokedServersFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read revoked server certificates: %w", err)
	}
	var rs revokedServers
	if err := json.Unmarshal(b, &rs); err != nil {
		return nil, fmt.Errorf("%s is damaged: %w", filepath.Join(s.Dir, revokedServersFile), err)
	}
	return rs.Serials, nil
}

// saveRevokedServers stores serials (sorted) as the revoked server certificates.
func (s *State) saveRevokedServers(serials []string) error {
	serials = slices.Clone(serials)
	slices.Sort(serials)
	b, err := json.Marshal(revokedServers{Serials: serials})
	if err != nil {
		return err
	}
	if err := replaceFile(s.Dir, revokedServersFile, b); err != nil {
		return fmt.Errorf("save revoked server certificates: %w", err)
	}
	return nil
}

// replaceFile replaces dir/name with data (mode 0600) atomically: a temporary file in dir is
// written, synced and renamed over name, and dir is synced so that the rename survives a
// power cut. On any error the temporary file is removed and name is unchanged. Temporary
// files of name left behind by a crash are removed first.
func replaceFile(dir, name string, data []byte) error {
	if stale, err := filepath.Glob(filepath.Join(dir, "."+name+".tmp-*")); err == nil {
		for _, f := range stale {
			os.Remove(f)
		}
	}
	f, err := os.CreateTemp(dir, "."+name+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	tmp := f.Name()
	done := false
	defer func() {
		if !done {
			os.Remove(tmp)
		}
	}()
	err = f.Chmod(0o600)
	if err == nil {
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
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	done = true
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// syncDir flushes a directory's entries (a rename in it) to disk.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
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
