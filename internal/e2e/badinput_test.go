package e2e_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/agent"
	"github.com/pocketmolt/pocketmolt/internal/ctlconfig"
	"github.com/pocketmolt/pocketmolt/internal/pki"
	"github.com/pocketmolt/pocketmolt/internal/pmd"
	"github.com/pocketmolt/pocketmolt/internal/store"
	"github.com/pocketmolt/pocketmolt/internal/token"
	"github.com/pocketmolt/pocketmolt/internal/tunnel"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// enrollState enrolls a host called name without running its agent, so a test can use its
// certificate by hand.
func (p *testPMD) enrollState(name string) *agent.State {
	p.t.Helper()
	st, err := agent.Enroll(p.t.Context(), agent.EnrollOptions{
		Server: p.D.AgentAddr, Token: p.token(name), StateDir: filepath.Join(p.t.TempDir(), name),
	})
	if err != nil {
		p.t.Fatalf("enroll %s: %v", name, err)
	}
	return st
}

// snapshot describes what a refused request must not change: every host's enrollment and
// certificate, and every certificate's revocation. Statuses are left out; callers check the
// ones they care about.
func (p *testPMD) snapshot() string {
	p.t.Helper()
	ctx := p.t.Context()
	hs, err := p.D.Store.ListHosts(ctx)
	if err != nil {
		p.t.Fatal(err)
	}
	cs, err := p.D.Store.ListCerts(ctx)
	if err != nil {
		p.t.Fatal(err)
	}
	var lines []string
	for _, h := range hs {
		lines = append(lines, fmt.Sprintf("host %s %s enrolled=%v revoked=%v cert=%s", h.Name, h.ID, h.EnrolledAt != nil, h.RevokedAt != nil, h.CertSerial))
	}
	for _, c := range cs {
		lines = append(lines, fmt.Sprintf("cert %s %s host=%s revoked=%v", c.Serial, c.Kind, c.HostID, c.RevokedAt != nil))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// tokenUnused fails the test unless the token with this id exists and is unused.
func (p *testPMD) tokenUnused(id string) {
	p.t.Helper()
	tok, err := p.D.Store.GetToken(p.t.Context(), id)
	if err != nil {
		p.t.Fatalf("token %s: %v", id, err)
	}
	if tok.UsedAt != nil {
		p.t.Fatalf("token %s was used at %s", id, tok.UsedAt)
	}
}

// noSecrets fails the test if any of secrets appears in pmd's logs or in texts.
func (p *testPMD) noSecrets(secrets []string, texts ...string) {
	p.t.Helper()
	logs := p.Logs.String()
	for _, s := range append(secrets, "PRIVATE KEY") {
		if s == "" {
			continue
		}
		if strings.Contains(logs, s) {
			p.t.Errorf("pmd's logs hold the secret %.8s…", s)
		}
		for _, txt := range texts {
			if strings.Contains(txt, s) {
				p.t.Errorf("%q holds the secret %.8s…", txt, s)
			}
		}
	}
}

// secretOf is the secret part of an encoded token, or "" if it has none.
func secretOf(tok string) string {
	parts := strings.Split(tok, ".")
	if len(parts) != 4 {
		return ""
	}
	return parts[2]
}

// tlsClient is a client of pmd's listeners that trusts pmd's CA and presents cert, if any.
func (p *testPMD) tlsClient(cert *tls.Certificate, protos ...string) *tls.Config {
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS13,
		RootCAs:    p.D.CA.Pool(),
		ServerName: "127.0.0.1",
		NextProtos: protos,
	}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return cfg
}

// postEnroll sends body to POST /v1/enroll as a host without a certificate would.
func (p *testPMD) postEnroll(body []byte) (int, wire.Error) {
	p.t.Helper()
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: p.tlsClient(nil, wire.ProtoEnroll)}}
	defer hc.CloseIdleConnections()
	req, err := http.NewRequestWithContext(p.t.Context(), http.MethodPost, "https://"+p.D.AgentAddr+"/v1/enroll", bytes.NewReader(body))
	if err != nil {
		p.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		p.t.Fatalf("post enroll: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return resp.StatusCode, wire.Error{}
	}
	return resp.StatusCode, *wire.DecodeError(resp)
}

func newCSR(t *testing.T) []byte {
	t.Helper()
	key, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := pki.NewCSR(key, "pmagent")
	if err != nil {
		t.Fatal(err)
	}
	return csr
}

func enrollBody(t *testing.T, tok, csr string) []byte {
	t.Helper()
	b, err := json.Marshal(wire.EnrollRequest{Token: tok, CSR: csr})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// otherSecret returns a valid token secret that is not s.
func otherSecret(s string) string {
	b := []byte(s)
	if b[0] == 'A' {
		b[0] = 'B'
	} else {
		b[0] = 'A'
	}
	return string(b)
}

func TestBadEnrollmentChangesNothing(t *testing.T) {
	t.Parallel()
	p := startPMD(t, nil)
	p.enroll("edge-0")
	p.waitStatus("edge-0", wire.HostOnline)

	// edge-1 waits, pending, with a good token the bad attempts must leave usable.
	good := p.token("edge-1")
	gt, err := token.Parse(good)
	if err != nil {
		t.Fatal(err)
	}
	h1, err := p.admin().GetHost(t.Context(), "edge-1")
	if err != nil {
		t.Fatal(err)
	}
	fp := pki.Fingerprint(p.D.CA.Root)

	unknown, err := token.New(fp)
	if err != nil {
		t.Fatal(err)
	}
	expired, err := token.New(fp)
	if err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-2 * time.Hour).UTC()
	if err := p.D.Store.CreateToken(t.Context(), store.Token{
		ID: expired.ID, HostID: h1.ID, Hash: expired.Hash(), CreatedAt: past, ExpiresAt: past.Add(time.Hour),
	}); err != nil {
		t.Fatal(err)
	}
	elsewhere, err := pki.NewCA("Elsewhere", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	wrongSecret := token.Prefix + "." + gt.ID + "." + otherSecret(gt.Secret.Reveal()) + "." + fp
	// The good id and secret, pinned to another CA: were the agent to send it, pmd would
	// still refuse it, but the agent must not send it at all.
	wrongCA := token.Prefix + "." + gt.ID + "." + gt.Secret.Reveal() + "." + pki.Fingerprint(elsewhere.Root)

	tests := []struct {
		name  string
		token string
		code  string // the code pmd refuses it with; "" when the agent refuses it first
		text  string // what the error must say
	}{
		{"garbled", "pmt1.this-is-not.a-token", "", "malformed enrollment token"},
		{"garbled with a secret-looking part", "pmt1.zz." + gt.Secret.Reveal() + ".zz", "", "malformed enrollment token"},
		{"unknown id", unknown.Encode(), wire.CodeTokenInvalid, "unknown enrollment token " + unknown.ID},
		{"wrong secret", wrongSecret, wire.CodeTokenInvalid, "does not match"},
		{"expired", expired.Encode(), wire.CodeTokenExpired, "expired"},
		{"pinned to another CA", wrongCA, "", "pinned by the token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := p.snapshot()
			logsBefore := len(p.Logs.String())
			dir := filepath.Join(t.TempDir(), "state")
			_, err := agent.Enroll(t.Context(), agent.EnrollOptions{Server: p.D.AgentAddr, Token: tt.token, StateDir: dir})
			if err == nil {
				t.Fatal("enrolled with a bad token")
			}
			if tt.code != "" && wire.CodeOf(err) != tt.code {
				t.Errorf("code = %s (%v), want %s", wire.CodeOf(err), err, tt.code)
			}
			if !strings.Contains(err.Error(), tt.text) {
				t.Errorf("error %q does not say %q", err, tt.text)
			}
			if tt.code == "" && strings.Contains(p.Logs.String()[logsBefore:], "/v1/enroll") {
				t.Errorf("the agent sent a request pmd should never have seen:\n%s", p.Logs.String()[logsBefore:])
			}
			for _, f := range []string{"host.pem", "key.pem"} {
				if _, err := os.Stat(filepath.Join(dir, f)); !os.IsNotExist(err) {
					t.Errorf("a failed enrollment left a key in the state dir (%s): %v", f, err)
				}
			}
			if _, err := agent.LoadState(dir); !errors.Is(err, agent.ErrNotEnrolled) && !errors.Is(err, os.ErrNotExist) {
				t.Errorf("state dir after a failed enrollment: %v, want not enrolled", err)
			}
			if after := p.snapshot(); after != before {
				t.Errorf("a refused enrollment changed pmd:\nbefore:\n%s\nafter:\n%s", before, after)
			}
			p.tokenUnused(gt.ID)
			p.tokenUnused(expired.ID)
			if got := p.status("edge-1"); got != wire.HostPending {
				t.Errorf("edge-1 is %s, want pending", got)
			}
			p.noSecrets([]string{secretOf(tt.token), gt.Secret.Reveal()}, err.Error())
		})
	}

	t.Run("direct requests", func(t *testing.T) {
		csr := string(newCSR(t))
		tests := []struct {
			name   string
			body   []byte
			status int
			code   string
		}{
			{"not json", []byte(`{"token": "` + good + `", "csr": `), http.StatusBadRequest, wire.CodeInvalidArgument},
			{"json of the wrong shape", []byte(`{"token": ["` + good + `"], "csr": 7}`), http.StatusBadRequest, wire.CodeInvalidArgument},
			{"empty body", nil, http.StatusBadRequest, wire.CodeInvalidArgument},
			{"oversized body", enrollBody(t, good, strings.Repeat("A", 1<<20)), http.StatusRequestEntityTooLarge, wire.CodePayloadTooLarge},
			{"no csr", enrollBody(t, good, ""), http.StatusBadRequest, wire.CodeInvalidArgument},
			{"garbage csr", enrollBody(t, good, "-----BEGIN CERTIFICATE REQUEST-----\nbm90IGEgY3Ny\n-----END CERTIFICATE REQUEST-----\n"), http.StatusBadRequest, wire.CodeInvalidArgument},
			{"a certificate for a csr", enrollBody(t, good, string(p.D.CA.RootPEM())), http.StatusBadRequest, wire.CodeInvalidArgument},
			{"tampered csr", enrollBody(t, good, tamperCSR(t, csr)), http.StatusBadRequest, wire.CodeInvalidArgument},
			{"garbled token", enrollBody(t, "pmt1."+gt.Secret.Reveal(), csr), http.StatusUnauthorized, wire.CodeTokenInvalid},
			{"token for another CA", enrollBody(t, wrongCA, csr), http.StatusUnauthorized, wire.CodeTokenInvalid},
			{"wrong secret", enrollBody(t, wrongSecret, csr), http.StatusUnauthorized, wire.CodeTokenInvalid},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				before := p.snapshot()
				status, e := p.postEnroll(tt.body)
				if status != tt.status || e.Code != tt.code || e.Message == "" {
					t.Errorf("got %d %+v, want %d %s with a message", status, e, tt.status, tt.code)
				}
				if after := p.snapshot(); after != before {
					t.Errorf("a refused enrollment changed pmd:\nbefore:\n%s\nafter:\n%s", before, after)
				}
				p.tokenUnused(gt.ID)
				p.noSecrets([]string{gt.Secret.Reveal()}, e.Message)
			})
		}
	})

	t.Run("a token works once", func(t *testing.T) {
		// The good token still enrolls edge-1 after everything above.
		st, err := agent.Enroll(t.Context(), agent.EnrollOptions{Server: p.D.AgentAddr, Token: good, StateDir: filepath.Join(t.TempDir(), "edge-1")})
		if err != nil {
			t.Fatalf("enroll with the good token after the bad attempts: %v", err)
		}
		if st.Identity.HostID != h1.ID {
			t.Fatalf("enrolled as %s, want %s", st.Identity.HostID, h1.ID)
		}
		before := p.snapshot()
		_, err = agent.Enroll(t.Context(), agent.EnrollOptions{Server: p.D.AgentAddr, Token: good, StateDir: filepath.Join(t.TempDir(), "again")})
		if wire.CodeOf(err) != wire.CodeTokenUsed {
			t.Fatalf("second use: %v, want %s", err, wire.CodeTokenUsed)
		}
		if after := p.snapshot(); after != before {
			t.Errorf("a reused token changed pmd:\nbefore:\n%s\nafter:\n%s", before, after)
		}
		p.noSecrets([]string{gt.Secret.Reveal()}, err.Error())
	})

	p.waitStatus("edge-0", wire.HostOnline)
}

// tamperCSR flips a bit in the CSR's signature, so it parses but does not verify.
func tamperCSR(t *testing.T, csrPEM string) string {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(csrPEM), "\n")
	body := strings.Join(lines[1:len(lines)-1], "")
	der, err := base64.StdEncoding.DecodeString(body)
	if err != nil {
		t.Fatal(err)
	}
	der[len(der)-3] ^= 0x01 // inside the signature, the last field
	return lines[0] + "\n" + base64.StdEncoding.EncodeToString(der) + "\n" + lines[len(lines)-1] + "\n"
}

// refusal dials addr with cfg and returns the error that ends the connection before any
// application data: the handshake's own or, since with TLS 1.3 the server checks a client
// certificate after the client's side of the handshake is done, the alert on the first read.
// It returns nil if the connection stays open for wait.
func refusal(t *testing.T, addr string, cfg *tls.Config, wait time.Duration) error {
	t.Helper()
	raw, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c := tls.Client(raw, cfg)
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(wait)); err != nil {
		t.Fatal(err)
	}
	if err := c.Handshake(); err != nil {
		return err
	}
	_, err = c.Read(make([]byte, 1))
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return nil
	}
	if err == nil {
		return errors.New("pmd sent data")
	}
	return err
}

func adminCert(t *testing.T, p *testPMD) tls.Certificate {
	t.Helper()
	cfg, err := ctlconfig.Load(filepath.Join(p.cfg.DataDir, pmd.CtlConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	cc, err := cfg.Current()
	if err != nil {
		t.Fatal(err)
	}
	tc, err := cc.TLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	return tc.Certificates[0]
}

func agentCert(t *testing.T, st *agent.State) tls.Certificate {
	t.Helper()
	c, _, err := st.Certificate()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestWrongCertificatesAreRefused(t *testing.T) {
	t.Parallel()
	p := startPMD(t, nil)
	p.enroll("edge-0")
	p.waitStatus("edge-0", wire.HostOnline)
	valid := agentCert(t, p.enrollState("edge-a"))

	stR := p.enrollState("edge-r")
	revoked := agentCert(t, stR)
	if _, err := p.admin().RevokeCert(t.Context(), serialOf(revoked.Leaf)); err != nil {
		t.Fatal(err)
	}

	// A certificate for a real host id with the right identity URI, from another CA.
	elsewhere, err := pki.NewCA("PocketMolt", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	key, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := pki.NewCSR(key, "pmagent")
	if err != nil {
		t.Fatal(err)
	}
	iss, err := elsewhere.SignAgent(csr, valid.Leaf.Subject.CommonName, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := pki.MarshalKey(key)
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := tls.X509KeyPair(iss.CertPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	admin := adminCert(t, p)

	tests := []struct {
		name string
		addr string
		cfg  *tls.Config
	}{
		{"agent certificate from another CA", p.D.AgentAddr, p.tlsClient(&foreign, wire.ProtoTunnel)},
		{"agent certificate from another CA, enrolling", p.D.AgentAddr, p.tlsClient(&foreign, wire.ProtoEnroll)},
		{"revoked agent certificate", p.D.AgentAddr, p.tlsClient(&revoked, wire.ProtoTunnel)},
		{"admin certificate on the agent port", p.D.AgentAddr, p.tlsClient(&admin, wire.ProtoTunnel)},
		{"admin certificate on the agent port, enrolling", p.D.AgentAddr, p.tlsClient(&admin, wire.ProtoEnroll)},
		{"tunnel without a certificate", p.D.AgentAddr, p.tlsClient(nil, wire.ProtoTunnel)},
		{"agent certificate on the admin port", p.D.AdminAddr, p.tlsClient(&valid)},
		{"agent certificate from another CA on the admin port", p.D.AdminAddr, p.tlsClient(&foreign)},
		{"no certificate on the admin port", p.D.AdminAddr, p.tlsClient(nil)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := p.snapshot()
			err := refusal(t, tt.addr, tt.cfg, 5*time.Second)
			if err == nil {
				t.Fatal("pmd kept the connection open")
			}
			if !strings.Contains(err.Error(), "tls:") && !errors.Is(err, io.EOF) {
				t.Errorf("refused with %v, want a TLS alert", err)
			}
			if n := p.D.Fleet.Connected(); n > 1 {
				t.Errorf("%d sessions, want edge-0's alone", n)
			}
			if after := p.snapshot(); after != before {
				t.Errorf("a refused connection changed pmd:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
	p.noSecrets(nil)

	t.Run("the valid certificate still connects", func(t *testing.T) {
		c, err := tls.Dial("tcp", p.D.AgentAddr, p.tlsClient(&valid, wire.ProtoTunnel))
		if err != nil {
			t.Fatal(err)
		}
		sess, err := tunnel.Client(c, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		defer sess.Close()
		if _, err := sess.Ping(); err != nil {
			t.Fatalf("ping: %v", err)
		}
		eventually(t, 5*time.Second, "two sessions", func() bool { return p.D.Fleet.Connected() == 2 })
	})
	p.waitStatus("edge-0", wire.HostOnline)
}

// exchange writes payload to addr over plain TCP and reads until pmd closes the connection.
// It fails the test if pmd keeps it open for 5 s.
func exchange(t *testing.T, addr string, payload []byte) []byte {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(payload); err != nil {
		t.Fatalf("write: %v", err)
	}
	reply, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("pmd kept the connection open; it sent %q", reply)
	}
	// A reset after pmd's reply is as good as a close.
	return reply
}

func TestNonTLSAndOldTLSAreRefused(t *testing.T) {
	t.Parallel()
	p := startPMD(t, nil)
	p.enroll("edge-0")
	p.waitStatus("edge-0", wire.HostOnline)

	garbage := bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef}, 256)
	for _, port := range []struct{ name, addr string }{{"agent", p.D.AgentAddr}, {"admin", p.D.AdminAddr}} {
		t.Run(port.name+" port", func(t *testing.T) {
			t.Run("plain http", func(t *testing.T) {
				for _, req := range []string{
					"GET /v1/hosts HTTP/1.1\r\nHost: pmd\r\n\r\n",
					"POST /v1/enroll HTTP/1.1\r\nHost: pmd\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
					"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
				} {
					reply := exchange(t, port.addr, []byte(req))
					if len(reply) > 0 && !bytes.HasPrefix(reply, []byte("HTTP/1.0 400 ")) {
						t.Errorf("%.20q: reply %q, want a 400 or a closed connection", req, reply)
					}
				}
			})
			t.Run("garbage", func(t *testing.T) {
				if reply := exchange(t, port.addr, garbage); bytes.Contains(reply, []byte("HTTP/")) {
					t.Errorf("reply %q", reply)
				}
			})
			t.Run("tls 1.2", func(t *testing.T) {
				cert := adminCert(t, p)
				cfg := p.tlsClient(&cert, wire.ProtoTunnel, wire.ProtoEnroll)
				cfg.MinVersion = tls.VersionTLS12
				cfg.MaxVersion = tls.VersionTLS12
				err := refusal(t, port.addr, cfg, 5*time.Second)
				if err == nil || !strings.Contains(err.Error(), "protocol version") {
					t.Fatalf("tls 1.2 handshake: %v, want a protocol version error", err)
				}
			})
			if n := p.D.Fleet.Connected(); n > 1 {
				t.Errorf("%d sessions, want edge-0's alone", n)
			}
		})
	}
	p.waitStatus("edge-0", wire.HostOnline)
}

// yamuxHeader is a yamux frame header: version 0, type, flags, stream id, length.
func yamuxHeader(typ byte, flags uint16, stream, length uint32) []byte {
	h := make([]byte, 12)
	h[1] = typ
	binary.BigEndian.PutUint16(h[2:], flags)
	binary.BigEndian.PutUint32(h[4:], stream)
	binary.BigEndian.PutUint32(h[8:], length)
	return h
}

func TestGarbageInsteadOfYamux(t *testing.T) {
	t.Parallel()
	p := startPMD(t, nil)
	p.enroll("edge-0")
	p.waitStatus("edge-0", wire.HostOnline)
	st := p.enrollState("edge-g")
	cert := agentCert(t, st)
	hostID := st.Identity.HostID

	tests := []struct {
		name    string
		payload []byte
	}{
		{"random bytes", bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef}, 64)},
		{"bad yamux version", append([]byte{0x7f}, yamuxHeader(0, 1, 1, 0)[1:]...)},
		{"unknown frame type", yamuxHeader(9, 0, 1, 0)},
		{"data beyond the window", append(yamuxHeader(0, 1, 1, 64<<20), make([]byte, 1024)...)},
		{"http instead of yamux", []byte("GET /v1/heartbeat HTTP/1.1\r\nHost: pmd\r\n\r\n")},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tls.Dial("tcp", p.D.AgentAddr, p.tlsClient(&cert, wire.ProtoTunnel))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Write(tt.payload); err != nil {
				t.Fatalf("write: %v", err)
			}
			_, err = io.ReadAll(c)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("pmd kept the connection open")
			}
			eventually(t, 5*time.Second, "the session to end", func() bool { return p.D.Fleet.Connected() == 1 })
			eventually(t, 5*time.Second, "the end to be logged", func() bool {
				return countLogs(p.Logs.String(), "agent disconnected", hostID) == i+1
			})
			if n := countLogs(p.Logs.String(), "agent connected", hostID); n != i+1 {
				t.Errorf("%d sessions logged, want %d", n, i+1)
			}
		})
	}
	// Give the sweeper a few intervals: edge-0 is unaffected, and edge-g is not counted as
	// connected.
	time.Sleep(4 * beat)
	p.waitStatus("edge-0", wire.HostOnline)
	if got := p.status("edge-g"); got != wire.HostOffline {
		t.Errorf("edge-g is %s, want offline", got)
	}
	if n := countLogs(p.Logs.String(), "agent disconnected", hostID); n != len(tests) {
		t.Errorf("%d disconnections logged, want %d", n, len(tests))
	}
	p.noSecrets(nil)
}

// countLogs counts the JSON log lines whose message is msg and that carry hostID.
func countLogs(logs, msg, hostID string) int {
	n := 0
	for _, line := range strings.Split(logs, "\n") {
		var e struct {
			Msg    string `json:"msg"`
			HostID string `json:"host_id"`
		}
		if json.Unmarshal([]byte(line), &e) == nil && e.Msg == msg && e.HostID == hostID {
			n++
		}
	}
	return n
}

func TestOversizedAndInvalidHeartbeats(t *testing.T) {
	t.Parallel()
	// A long interval, so that pmd does not close this test's hand-made session as stale
	// while it sends large bodies.
	p := startPMD(t, func(c *pmd.Config) { c.HeartbeatInterval = 5 * time.Second })
	p.enroll("edge-0")
	a := p.enroll("edge-h")
	p.waitStatus("edge-h", wire.HostOnline)
	a.stop()
	eventually(t, 5*time.Second, "edge-h's session to end", func() bool {
		_, err := p.D.Fleet.Client(a.hostID())
		return err != nil
	})
	stored := func() []byte {
		h, err := p.D.Store.GetHost(t.Context(), a.hostID())
		if err != nil {
			t.Fatal(err)
		}
		return h.Facts
	}
	facts := stored()
	if len(facts) == 0 {
		t.Fatal("edge-h has no facts")
	}

	cert := agentCert(t, a.A.State)
	c, err := tls.Dial("tcp", p.D.AgentAddr, p.tlsClient(&cert, wire.ProtoTunnel))
	if err != nil {
		t.Fatal(err)
	}
	sess, err := tunnel.Client(c, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	post := func(t *testing.T, body io.Reader) (int, wire.Error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://pmd/v1/heartbeat", body)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := sess.HTTPClient().Do(req)
		if err != nil {
			t.Fatalf("post heartbeat: %v", err)
		}
		defer resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return resp.StatusCode, wire.Error{}
		}
		return resp.StatusCode, *wire.DecodeError(resp)
	}

	const tenMB = 10 << 20
	tests := []struct {
		name   string
		body   io.Reader
		status int
		code   string
	}{
		{"10 MB hostname", io.MultiReader(strings.NewReader(`{"facts":{"hostname":"`), strings.NewReader(strings.Repeat("a", tenMB)), strings.NewReader(`"}}`)), http.StatusRequestEntityTooLarge, wire.CodePayloadTooLarge},
		{"10 MB of whitespace", io.MultiReader(strings.NewReader(strings.Repeat(" ", tenMB)), strings.NewReader(`{}`)), http.StatusRequestEntityTooLarge, wire.CodePayloadTooLarge},
		{"not json", strings.NewReader(`facts`), http.StatusBadRequest, wire.CodeInvalidArgument},
		{"negative cpus", strings.NewReader(`{"facts":{"hostname":"evil","cpus":-4}}`), http.StatusBadRequest, wire.CodeInvalidArgument},
		{"long hostname", strings.NewReader(`{"facts":{"hostname":"` + strings.Repeat("h", 300) + `"}}`), http.StatusBadRequest, wire.CodeInvalidArgument},
		{"wrong type", strings.NewReader(`{"facts":{"memory_bytes":"lots"}}`), http.StatusBadRequest, wire.CodeInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, e := post(t, tt.body)
			if status != tt.status || e.Code != tt.code || e.Message == "" {
				t.Fatalf("got %d %+v, want %d %s with a message", status, e, tt.status, tt.code)
			}
			if got := stored(); !bytes.Equal(got, facts) {
				t.Fatalf("facts changed:\nbefore %s\nafter  %s", facts, got)
			}
		})
	}
	if n := len(p.Logs.String()); n > 1<<20 {
		t.Errorf("pmd logged %d bytes", n)
	}

	t.Run("the session still carries a good heartbeat", func(t *testing.T) {
		status, e := post(t, strings.NewReader(`{"facts":{"hostname":"edge-h.example","cpus":2,"agent_version":"hand"}}`))
		if status != http.StatusOK {
			t.Fatalf("good heartbeat: %d %+v", status, e)
		}
		h, err := p.admin().GetHost(t.Context(), "edge-h")
		if err != nil {
			t.Fatal(err)
		}
		if h.Facts == nil || h.Facts.Hostname != "edge-h.example" || h.Status != wire.HostOnline {
			t.Fatalf("after a good heartbeat: %s %+v", h.Status, h.Facts)
		}
	})
	p.waitStatus("edge-0", wire.HostOnline)
}
