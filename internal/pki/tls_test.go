package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

func tlsCert(t *testing.T, iss *Issued, extra ...[]byte) tls.Certificate {
	t.Helper()
	chain := iss.CertPEM
	for _, e := range extra {
		chain = append(append([]byte(nil), chain...), e...)
	}
	keyPEM := iss.KeyPEM
	if keyPEM == nil { // CSR-signed: the host's own key
		var err error
		if keyPEM, err = MarshalKey(iss.Key); err != nil {
			t.Fatal(err)
		}
	}
	c, err := tls.X509KeyPair(chain, keyPEM)
	if err != nil {
		t.Fatalf("X509KeyPair: %v", err)
	}
	return c
}

type handshakeResult struct {
	serverErr, clientErr error
	// peer is the client's identity as the server sees it.
	kind, id string
}

// handshake runs one TLS connection over loopback: the server accepts, handshakes, reports
// the client's identity and writes one byte; the client handshakes and reads it (in TLS 1.3 a
// rejected client certificate shows up on the client's first read).
func handshake(t *testing.T, server, client *tls.Config) handshakeResult {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()

	type serverOut struct {
		err      error
		kind, id string
	}
	done := make(chan serverOut, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			done <- serverOut{err: err}
			return
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		tc := tls.Server(conn, server)
		if err := tc.HandshakeContext(t.Context()); err != nil {
			done <- serverOut{err: err}
			return
		}
		var out serverOut
		st := tc.ConnectionState()
		if len(st.VerifiedChains) > 0 {
			out.kind, out.id, out.err = IdentityOf(st.VerifiedChains[0][0])
		}
		if _, err := tc.Write([]byte{1}); err != nil && out.err == nil {
			out.err = err
		}
		done <- out
	}()

	var res handshakeResult
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	tc := tls.Client(conn, client)
	res.clientErr = tc.HandshakeContext(t.Context())
	if res.clientErr == nil {
		_, res.clientErr = io.ReadFull(tc, make([]byte, 1))
	}
	conn.Close()
	out := <-done
	res.serverErr, res.kind, res.id = out.err, out.kind, out.id
	return res
}

func TestTLSHandshake(t *testing.T) {
	now := time.Now()
	ca := newTestCA(t, "PocketMolt", now)
	foreign := newTestCA(t, "PocketMolt", now)
	server, err := ca.IssueServer([]string{"localhost", "127.0.0.1"}, time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := ca.IssueAdmin("alice", time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	agent := signAgent(t, ca, "host-1", now)
	foreignAgent := signAgent(t, foreign, "host-1", now)

	serverCfg := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{tlsCert(t, server, ca.RootPEM())},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    ca.Pool(),
	}
	client := func(certs ...tls.Certificate) *tls.Config {
		return &tls.Config{
			MinVersion:   tls.VersionTLS13,
			RootCAs:      ca.Pool(),
			ServerName:   "127.0.0.1",
			Certificates: certs,
		}
	}

	tests := []struct {
		name     string
		client   *tls.Config
		wantOK   bool
		kind, id string
	}{
		{name: "agent", client: client(tlsCert(t, agent)), wantOK: true, kind: KindAgent, id: "host-1"},
		{name: "admin", client: client(tlsCert(t, admin)), wantOK: true, kind: KindAdmin, id: "alice"},
		{name: "foreign CA's agent", client: client(tlsCert(t, foreignAgent))},
		{name: "server certificate as client", client: client(tlsCert(t, server))},
		{name: "no client certificate", client: client()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := handshake(t, serverCfg, tt.client)
			if !tt.wantOK {
				if res.serverErr == nil || res.clientErr == nil {
					t.Errorf("handshake: server error %v, client error %v; want both to fail", res.serverErr, res.clientErr)
				}
				t.Logf("server: %v; client: %v", res.serverErr, res.clientErr)
				return
			}
			if res.serverErr != nil || res.clientErr != nil {
				t.Fatalf("handshake: server error %v, client error %v", res.serverErr, res.clientErr)
			}
			if res.kind != tt.kind || res.id != tt.id {
				t.Errorf("server saw %s/%s, want %s/%s", res.kind, res.id, tt.kind, tt.id)
			}
		})
	}

	t.Run("client does not trust a foreign server", func(t *testing.T) {
		cfg := client(tlsCert(t, agent))
		cfg.RootCAs = foreign.Pool()
		res := handshake(t, serverCfg, cfg)
		var unknown x509.UnknownAuthorityError
		if !errors.As(res.clientErr, &unknown) {
			t.Errorf("client error = %v, want UnknownAuthorityError", res.clientErr)
		}
	})

	// First contact: the agent has only the token's fingerprint, and pins the root the server
	// sends. It has no client certificate yet, so this server does not ask for one.
	enrollServer := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{tlsCert(t, server, ca.RootPEM())},
	}
	pinned := func(fp string, got **x509.Certificate) *tls.Config {
		return &tls.Config{
			MinVersion:         tls.VersionTLS13,
			ServerName:         "localhost",
			InsecureSkipVerify: true, // replaced by VerifyPinned in VerifyConnection
			VerifyConnection: func(cs tls.ConnectionState) error {
				root, err := VerifyPinned(cs.PeerCertificates, fp, cs.ServerName, time.Now())
				*got = root
				return err
			},
		}
	}
	t.Run("pinned first contact", func(t *testing.T) {
		var root *x509.Certificate
		res := handshake(t, enrollServer, pinned(Fingerprint(ca.Root), &root))
		if res.clientErr != nil || res.serverErr != nil {
			t.Fatalf("handshake: client %v, server %v", res.clientErr, res.serverErr)
		}
		if root == nil || !root.Equal(ca.Root) {
			t.Error("pinned root is not the CA's root")
		}
	})
	t.Run("pinned first contact with the wrong fingerprint", func(t *testing.T) {
		var root *x509.Certificate
		res := handshake(t, enrollServer, pinned(Fingerprint(foreign.Root), &root))
		if !errors.Is(res.clientErr, ErrPinMismatch) {
			t.Errorf("client error = %v, want ErrPinMismatch", res.clientErr)
		}
	})
}
