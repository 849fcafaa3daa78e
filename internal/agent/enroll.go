package agent

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/hostfacts"
	"github.com/pocketmolt/pocketmolt/internal/pki"
	"github.com/pocketmolt/pocketmolt/internal/token"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// EnrollOptions are the inputs of Enroll.
type EnrollOptions struct {
	// Server is pmd's agent address, host:port.
	Server string
	// ServerName overrides the name pmd's certificate is checked against (default: the host
	// part of Server).
	ServerName string
	Token      string
	StateDir   string
	// Force enrolls again over an existing identity.
	Force bool
	Log   *slog.Logger
}

// Enroll joins this host to pmd with a one-time token: it makes a key here, pins pmd's root CA
// by the fingerprint the token carries, sends only a CSR and the host's facts (pmd records its
// memory), and writes the identity, the pinned root and the issued certificate into the state
// dir.
func Enroll(ctx context.Context, o EnrollOptions) (*State, error) {
	tok, err := token.Parse(o.Token)
	if err != nil {
		return nil, fmt.Errorf("enrollment token: %w", err)
	}
	host, _, err := net.SplitHostPort(o.Server)
	if err != nil {
		return nil, fmt.Errorf("--server %q: want host:port", o.Server)
	}
	serverName := o.ServerName
	if serverName == "" {
		serverName = host
	}
	dir, err := filepath.Abs(o.StateDir)
	if err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	o.StateDir = dir
	if err := os.MkdirAll(o.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	if st, err := LoadState(o.StateDir); err == nil && !o.Force {
		return nil, fmt.Errorf("state dir %s is already enrolled as host %s (%s); use --force to enroll again", o.StateDir, st.Identity.HostName, st.Identity.HostID)
	} else if err != nil && !errors.Is(err, ErrNotEnrolled) && !o.Force {
		return nil, err
	}

	keyPEM, csrPEM, err := newKeyAndCSR("pmagent")
	if err != nil {
		return nil, err
	}

	var root *x509.Certificate
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS13,
		NextProtos: []string{wire.ProtoEnroll},
		// The chain is checked by VerifyConnection against the root pinned by the token,
		// since this host has no CA yet.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			r, err := pki.VerifyPinned(cs.PeerCertificates, tok.RootFingerprint, serverName, time.Now())
			if err != nil {
				return fmt.Errorf("server does not match the CA pinned by the token: %w", err)
			}
			root = r
			return nil
		},
	}
	tr := &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: false, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Timeout: 30 * time.Second, Transport: tr}
	// pmd bounds the capacity this host may declare later by the memory it reports now.
	facts := hostfacts.Collector{DiskPath: o.StateDir}.Collect(ctx)
	body, _ := json.Marshal(wire.EnrollRequest{Token: tok.Encode(), CSR: string(csrPEM), Facts: &facts})
	var er wire.EnrollResponse
	for {
		err := postEnroll(ctx, hc, o.Server, body, &er)
		var we *wire.Error
		if !errors.As(err, &we) || we.Code != wire.CodeRateLimited || we.RetryAfter <= 0 || we.RetryAfter > maxEnrollWait {
			if err != nil {
				return nil, fmt.Errorf("enroll with %s: %w", o.Server, err)
			}
			break
		}
		// pmd is taking enrollments slower than they come (a fleet rolling out at once):
		// wait as it asks and try again, with the same token and request.
		if o.Log != nil {
			o.Log.Warn("pmd is busy enrolling; waiting", "server", o.Server, "retry_in", we.RetryAfter.String())
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("enroll with %s: %w (waiting after: %v)", o.Server, ctx.Err(), err)
		case <-time.After(jitter(we.RetryAfter) + we.RetryAfter/2):
		}
	}
	certs, err := pki.ParseCertsPEM([]byte(er.Cert))
	if err != nil || len(certs) == 0 {
		return nil, fmt.Errorf("enroll with %s: response holds no certificate", o.Server)
	}
	if _, err := certs[0].Verify(x509.VerifyOptions{
		Roots:         poolOf(root),
		Intermediates: poolOf(certs[1:]...),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}); err != nil {
		return nil, fmt.Errorf("enroll with %s: issued certificate does not chain to the pinned CA: %w", o.Server, err)
	}

	st := &State{Dir: o.StateDir, Identity: Identity{
		HostID: er.HostID, HostName: er.HostName, Server: o.Server, ServerName: serverName,
	}}
	id, _ := json.MarshalIndent(st.Identity, "", "  ")
	rootPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: root.Raw})
	if err := replaceFile(o.StateDir, caFile, rootPEM); err != nil {
		return nil, err
	}
	if err := st.saveCertificate([]byte(er.Cert), keyPEM); err != nil {
		return nil, err
	}
	// A list of revoked server certificates from an earlier enrollment means nothing here.
	if err := os.Remove(filepath.Join(o.StateDir, revokedServersFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	// The identity goes last: a state dir with an identity is a complete one.
	if err := replaceFile(o.StateDir, identityFile, id); err != nil {
		return nil, err
	}
	if o.Log != nil {
		o.Log.Info("host enrolled", "host_id", er.HostID, "host_name", er.HostName, "state_dir", filepath.Clean(o.StateDir))
	}
	return st, nil
}

// maxEnrollWait is the longest Retry-After that Enroll waits out; a longer one is an error.
const maxEnrollWait = 10 * time.Minute

// postEnroll sends one enrollment request and decodes the answer into er; a refusal is a
// *wire.Error.
func postEnroll(ctx context.Context, hc *http.Client, server string, body []byte, er *wire.EnrollResponse) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+server+"/v1/enroll", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return unwrapURLError(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return wire.DecodeError(resp)
	}
	if err := json.NewDecoder(http.MaxBytesReader(nil, resp.Body, 1<<20)).Decode(er); err != nil {
		return fmt.Errorf("bad response: %w", err)
	}
	return nil
}

func poolOf(certs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}
