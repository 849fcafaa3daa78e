package e2e_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/agent"
	"github.com/pocketmolt/pocketmolt/internal/fleet"
	"github.com/pocketmolt/pocketmolt/internal/pki"
	"github.com/pocketmolt/pocketmolt/internal/pmd"
	"github.com/pocketmolt/pocketmolt/internal/tunnel"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// Two tokens made for one host before it enrolled: once the first has enrolled a machine,
// the second enrolls nothing. Before the fix it enrolled a second machine as the same host,
// whose session then received the host's bots and their secrets.
func TestSecondTokenOfAHostEnrollsNothing(t *testing.T) {
	t.Parallel()
	p := startPMD(t, nil)
	first, second := p.token("edge-1"), p.token("edge-1")

	st, err := agent.Enroll(t.Context(), agent.EnrollOptions{Server: p.D.AgentAddr, Token: first, StateDir: filepath.Join(t.TempDir(), "one")})
	if err != nil {
		t.Fatal(err)
	}
	a := runAgent(t, st)
	p.waitStatus("edge-1", wire.HostOnline)
	before := p.snapshot()

	dir := filepath.Join(t.TempDir(), "two")
	_, refused := agent.Enroll(t.Context(), agent.EnrollOptions{Server: p.D.AgentAddr, Token: second, StateDir: dir})
	if refused == nil {
		t.Fatal("a second machine enrolled as edge-1 with the host's second token")
	}
	if wire.CodeOf(refused) != wire.CodeConflict || !contains(refused.Error(), "already enrolled") {
		t.Fatalf("second token: %v (code %s), want %s saying the host is already enrolled", refused, wire.CodeOf(refused), wire.CodeConflict)
	}
	if _, err := agent.LoadState(dir); !errors.Is(err, agent.ErrNotEnrolled) {
		t.Fatalf("the refused machine's state dir: %v, want not enrolled", err)
	}
	if after := p.snapshot(); after != before {
		t.Fatalf("the refused enrollment changed pmd:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	// The host's one session is still the first machine's.
	hc, err := p.D.Fleet.Client(a.hostID())
	if err != nil {
		t.Fatal(err)
	}
	resp, err := hc.Get("http://agent/v1/info")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if n := sessionCount(a); n != 1 {
		t.Fatalf("the first machine dialled %d times, want 1: its session was replaced", n)
	}
	p.noSecrets([]string{secretOf(second)}, refused.Error())

	t.Run("two tokens at once: exactly one machine wins", func(t *testing.T) {
		toks := []string{p.token("edge-2"), p.token("edge-2"), p.token("edge-2")}
		errs := make([]error, len(toks))
		var wg sync.WaitGroup
		for i, tok := range toks {
			wg.Go(func() {
				_, errs[i] = agent.Enroll(t.Context(), agent.EnrollOptions{
					Server: p.D.AgentAddr, Token: tok, StateDir: filepath.Join(t.TempDir(), strconv.Itoa(i)),
				})
			})
		}
		wg.Wait()
		won := 0
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case wire.CodeOf(err) != wire.CodeConflict:
				t.Errorf("a losing enrollment: %v (code %s), want %s", err, wire.CodeOf(err), wire.CodeConflict)
			}
		}
		if won != 1 {
			t.Fatalf("%d machines enrolled as edge-2, want 1", won)
		}
	})
}

// tunnelOf opens a tunnel session to pmd with the state dir's certificate, as an agent would,
// and answers pmd's calls with 404.
func (p *testPMD) tunnelOf(t *testing.T, cert tls.Certificate) *tunnel.Session {
	t.Helper()
	raw, err := net.DialTimeout("tcp", p.D.AgentAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c := tls.Client(raw, p.tlsClient(&cert, wire.ProtoTunnel))
	if err := c.HandshakeContext(t.Context()); err != nil {
		t.Fatal(err)
	}
	sess, err := tunnel.Client(c, discardLog())
	if err != nil {
		t.Fatal(err)
	}
	go sess.Serve(http.NotFoundHandler(), discardLog())
	t.Cleanup(func() { sess.Close() })
	return sess
}

// opens dials pmd's agent listener with cert for a tunnel and reports whether pmd accepts
// it: nil when the connection stays open or pmd starts talking (yamux, its first calls), the
// refusal otherwise — with TLS 1.3 a refused client certificate shows as an alert on the
// first read.
func (p *testPMD) opens(t *testing.T, cert tls.Certificate) error {
	t.Helper()
	raw, err := net.DialTimeout("tcp", p.D.AgentAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c := tls.Client(raw, p.tlsClient(&cert, wire.ProtoTunnel))
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(300 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if err := c.Handshake(); err != nil {
		return err
	}
	n, err := c.Read(make([]byte, 1))
	var ne net.Error
	if n > 0 || errors.As(err, &ne) && ne.Timeout() {
		return nil
	}
	return err
}

// renewal is one POST /v1/renew over a session.
type renewal struct {
	status     int
	code       string
	retryAfter string
	cert       tls.Certificate // when status is 200
	serial     string
}

func renew(t *testing.T, sess *tunnel.Session) renewal {
	t.Helper()
	key, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := pki.NewCSR(key, "pmagent")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(wire.RenewRequest{CSR: string(csr)})
	resp, err := sess.HTTPClient().Post("http://pmd/v1/renew", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := renewal{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After")}
	if resp.StatusCode != http.StatusOK {
		r.code = wire.DecodeError(resp).Code
		return r
	}
	var rr wire.RenewResponse
	if err := json.NewDecoder(resp.Body).Decode(&rr); err != nil {
		t.Fatal(err)
	}
	keyPEM, err := pki.MarshalKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if r.cert, err = tls.X509KeyPair([]byte(rr.Cert), keyPEM); err != nil {
		t.Fatal(err)
	}
	leaf, err := pki.ParseCertsPEM([]byte(rr.Cert))
	if err != nil {
		t.Fatal(err)
	}
	r.serial = pki.SerialString(leaf[0])
	return r
}

// A host that renews its certificate as fast as it can gets a few certificates and then 429s,
// and of all it got only the newest — and the one its session uses — stay valid. Before the
// fix 1,000 renewals in 2.3 s left 1,002 valid certificates for one host.
func TestRenewalFloodIsRefused(t *testing.T) {
	t.Parallel()
	// The session sends no heartbeats: a long interval keeps pmd from closing it meanwhile.
	p := startPMD(t, func(c *pmd.Config) { c.HeartbeatInterval = time.Minute })
	st := p.enrollState("edge-1")
	first := agentCert(t, st)
	sess := p.tunnelOf(t, first)
	firstSerial := serialOf(first.Leaf)

	const n = 60
	var issued []renewal
	refused := 0
	for range n {
		r := renew(t, sess)
		switch r.status {
		case http.StatusOK:
			issued = append(issued, r)
		case http.StatusTooManyRequests:
			refused++
			if r.code != wire.CodeRateLimited {
				t.Fatalf("429 with code %q, want %s", r.code, wire.CodeRateLimited)
			}
			if s, err := strconv.Atoi(r.retryAfter); err != nil || s < 1 {
				t.Fatalf("429 with Retry-After %q, want a number of seconds", r.retryAfter)
			}
		default:
			t.Fatalf("renewal answered %d %s", r.status, r.code)
		}
	}
	if len(issued) == 0 || len(issued) > 5 || refused != n-len(issued) {
		t.Fatalf("%d of %d renewals issued a certificate and %d were refused; want a few issued, the rest refused", len(issued), n, refused)
	}
	newest := issued[len(issued)-1]
	h, err := p.admin().GetHost(t.Context(), "edge-1")
	if err != nil {
		t.Fatal(err)
	}
	if h.CertSerial != newest.serial {
		t.Fatalf("host's certificate is %s, want the newest %s", h.CertSerial, newest.serial)
	}

	// Every certificate the flood got but the newest is refused at a handshake; the session's
	// own is still accepted (within its overlap), and so is the newest.
	for _, r := range issued[:len(issued)-1] {
		if err := p.opens(t, r.cert); err == nil {
			t.Errorf("superseded certificate %s still opens a session", r.serial)
		}
	}
	if err := p.opens(t, first); err != nil {
		t.Errorf("the session's own certificate %s was refused within its overlap: %v", firstSerial, err)
	}
	if err := p.opens(t, newest.cert); err != nil {
		t.Fatalf("the newest certificate %s was refused: %v", newest.serial, err)
	}
	// A session opened with the newest certificate retires every older one.
	eventually(t, 5*time.Second, "the first certificate refused once the newest was used", func() bool {
		return p.opens(t, first) != nil
	})

	certs, err := p.admin().ListCerts(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	valid := 0
	for _, c := range certs {
		if c.Kind == wire.CertAgent && c.HostID == h.ID && c.RevokedAt == nil {
			valid++
		}
	}
	if valid != 1 {
		t.Errorf("%d unrevoked certificates for edge-1, want 1 (the newest)", valid)
	}
}

// A certificate a renewal replaced is refused at new handshakes once the overlap has passed,
// even if the host never connects with the new one; the session that renewed is not cut.
func TestSupersededCertificateLastsTheOverlap(t *testing.T) {
	t.Parallel()
	p := startPMD(t, func(c *pmd.Config) {
		c.HeartbeatInterval = time.Minute
		c.AgentCertOverlap = time.Second
	})
	st := p.enrollState("edge-1")
	first := agentCert(t, st)
	sess := p.tunnelOf(t, first)
	if r := renew(t, sess); r.status != http.StatusOK {
		t.Fatalf("renewal: %d %s", r.status, r.code)
	}
	certs, err := p.admin().ListCerts(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range certs {
		if c.Serial == serialOf(first.Leaf) && (c.Status != wire.CertSuperseded || c.SupersededAt == nil) {
			t.Fatalf("the renewed certificate is listed as %s (superseded at %v), want superseded", c.Status, c.SupersededAt)
		}
	}
	// (A handshake that pmd accepts would replace the session, so wait on pmd's own check.)
	eventually(t, 10*time.Second, "the overlap to end", func() bool {
		return errors.Is(p.D.Fleet.CheckSerial(serialOf(first.Leaf)), fleet.ErrCertSuperseded)
	})
	if err := p.opens(t, first); err == nil {
		t.Fatal("the superseded certificate opens a session after its overlap")
	}
	if _, err := sess.Ping(); err != nil {
		t.Fatalf("the session on the superseded certificate was cut: %v", err)
	}
}

// copyState copies an enrolled state dir's identity files, leaving out the names in skip.
func copyState(t *testing.T, st *agent.State, skip ...string) *agent.State {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "copy")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"identity.json", "ca.pem", "host.pem", "revoked-servers.json"} {
		if slices.Contains(skip, f) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(st.Dir, f))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cp, err := agent.LoadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	return cp
}

// impostor serves TLS with cert on loopback as pmd would (the tunnel protocol) and counts the
// handshakes that complete.
type impostor struct {
	ln        net.Listener
	mu        sync.Mutex
	completed int
}

func newImpostor(t *testing.T, cert tls.Certificate) *impostor {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	im := &impostor{ln: ln}
	cfg := &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert},
		NextProtos: []string{wire.ProtoTunnel}, ClientAuth: tls.RequestClientCert}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				tc := tls.Server(c, cfg)
				tc.SetDeadline(time.Now().Add(5 * time.Second))
				if tc.Handshake() == nil {
					im.mu.Lock()
					im.completed++
					im.mu.Unlock()
					tc.Read(make([]byte, 1)) // hold it until the agent gives up
				}
			}()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return im
}

func (im *impostor) handshakes() int {
	im.mu.Lock()
	defer im.mu.Unlock()
	return im.completed
}

// pmd rotates its server certificate: a running pmd serves the new one without a restart,
// tells its agents the old serial, and they refuse a server that presents the old one — as
// one holding its leaked key would. Before the fix agents trusted any certificate that
// chained to the root.
func TestRotatedServerCertificateIsRefusedByAgents(t *testing.T) {
	clearEnv(t)
	p := startPMD(t, nil)
	a := p.enroll("edge-1")
	p.waitStatus("edge-1", wire.HostOnline)
	old := *p.D.ServerCertificate()
	oldSerial := serialOf(old.Leaf)

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	out, stderr, err := runCmd(ctx, "rotate-server-cert", "--data-dir", p.cfg.DataDir)
	if err != nil {
		t.Fatalf("pmd rotate-server-cert: %v\n%s", err, stderr)
	}
	if !strings.Contains(out, oldSerial) {
		t.Errorf("rotate-server-cert said %q", out)
	}
	// What the running pmd does every minute, now.
	if err := p.D.RefreshServerCert(t.Context(), time.Now()); err != nil {
		t.Fatal(err)
	}
	newSerial := serialOf(p.D.ServerCertificate().Leaf)
	if newSerial == oldSerial {
		t.Fatal("pmd still serves the rotated-out certificate")
	}
	// New connections get the new certificate; the agent reconnects fine and learns the
	// old serial in its heartbeats.
	c, err := tls.Dial("tcp", p.D.AgentAddr, p.tlsClient(nil, wire.ProtoEnroll))
	if err != nil {
		t.Fatal(err)
	}
	if got := serialOf(c.ConnectionState().PeerCertificates[0]); got != newSerial {
		t.Fatalf("pmd presents %s, want the new %s", got, newSerial)
	}
	c.Close()
	a.cut()
	p.waitStatus("edge-1", wire.HostOnline)
	eventually(t, 10*time.Second, "the agent to keep the revoked serial", func() bool {
		rs, err := a.A.State.RevokedServers()
		return err == nil && slices.Contains(rs, oldSerial)
	})
	certs, err := p.admin().ListCerts(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range certs {
		if c.Serial == oldSerial && c.Status != wire.CertRevoked {
			t.Errorf("the old server certificate is %s, want revoked", c.Status)
		}
	}

	// A server presenting the old certificate (its key leaked, say) is refused.
	im := newImpostor(t, old)
	fooled := runAgentAgainst(t, copyState(t, a.A.State), im.ln.Addr().String())
	eventually(t, 10*time.Second, "the agent to refuse the rotated-out certificate", func() bool {
		return contains(fooled.Logs.String(), "was revoked by pmd: refusing this server")
	})
	fooled.stop()
	if n := im.handshakes(); n != 0 {
		t.Fatalf("the agent completed %d handshakes with a server presenting the revoked certificate", n)
	}
	// The control: without the list, as before the fix, the same agent is fooled.
	naive := runAgentAgainst(t, copyState(t, a.A.State, "revoked-servers.json"), im.ln.Addr().String())
	eventually(t, 10*time.Second, "an agent without the list to take the impostor", func() bool { return im.handshakes() > 0 })
	naive.stop()
	p.waitStatus("edge-1", wire.HostOnline)
}

// A running pmd renews its own server certificate when a third of its life is left, without
// a restart, keeping its names; the old one is not revoked (it simply expires).
func TestServerCertificateRenewsItself(t *testing.T) {
	t.Parallel()
	p := startPMD(t, nil)
	old := p.D.ServerCertificate().Leaf
	// Ten months on, with two of twelve left.
	later := old.NotAfter.Add(-60 * 24 * time.Hour)
	if err := p.D.RefreshServerCert(t.Context(), later); err != nil {
		t.Fatal(err)
	}
	renewed := p.D.ServerCertificate().Leaf
	if renewed.Equal(old) {
		t.Fatal("the server certificate was not renewed")
	}
	if !slices.Equal(renewed.DNSNames, old.DNSNames) || len(renewed.IPAddresses) != len(old.IPAddresses) {
		t.Errorf("names changed: %v %v → %v %v", old.DNSNames, old.IPAddresses, renewed.DNSNames, renewed.IPAddresses)
	}
	if !renewed.NotAfter.After(old.NotAfter) {
		t.Errorf("renewed certificate ends %s, not after the old %s", renewed.NotAfter, old.NotAfter)
	}
	c, err := p.D.Store.GetCert(t.Context(), serialOf(old))
	if err != nil || c.RevokedAt != nil {
		t.Errorf("old server certificate after renewal: %+v, %v; want it kept valid", c, err)
	}
	// Again at the same moment: nothing to do.
	if err := p.D.RefreshServerCert(t.Context(), later); err != nil {
		t.Fatal(err)
	}
	if !p.D.ServerCertificate().Leaf.Equal(renewed) {
		t.Error("renewed twice")
	}
}

// pmd init --offline-root keeps the root key out of the database: pmd serves, enrolls and
// renews on the intermediate's key alone.
func TestOfflineRoot(t *testing.T) {
	t.Parallel()
	p := startPMD(t, func(c *pmd.Config) { c.OfflineRoot = true; c.AgentCertTTL = time.Minute })
	path := filepath.Join(p.cfg.DataDir, pmd.RootKeyFile)
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("root key file: %v, mode %v", err, fi.Mode())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	key, err := pki.ParseKey(b)
	if err != nil {
		t.Fatal(err)
	}
	if !p.D.CA.RootKeyOffline() {
		t.Fatal("pmd holds the root key")
	}
	if kp, err := p.D.Store.GetKeyPair(t.Context(), "root"); err != nil || kp.KeySealed != "" {
		t.Fatalf("the database's root key pair: %v, sealed key %q", err, kp.KeySealed)
	}
	if !p.D.CA.Root.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(key.Public()) {
		t.Fatal("the root key file does not hold the root's key")
	}
	sealed, err := p.D.Store.ListSealed(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range sealed {
		if v.Row == "root" {
			t.Errorf("a sealed root key is listed: %v", v)
		}
	}
	st := p.enrollState("edge-1")
	sess := p.tunnelOf(t, agentCert(t, st))
	if r := renew(t, sess); r.status != http.StatusOK {
		t.Fatalf("renewal with the root offline: %d %s", r.status, r.code)
	}
	// The master key rotates without it too.
	p.stop()
	if err := pmd.RotateKey(t.Context(), p.cfg, io.Discard); err != nil {
		t.Fatalf("rotate-key with the root offline: %v", err)
	}
	p.start()
	p.enroll("edge-2")
	p.waitStatus("edge-2", wire.HostOnline)
}

// Enrollment requests beyond the per-address limit are refused with 429 and Retry-After,
// and pmagent enroll waits as told and gets through. Before the fix they were unbounded.
func TestEnrollmentFloodIsRefused(t *testing.T) {
	t.Parallel()
	p := startPMD(t, func(c *pmd.Config) { c.EnrollRatePerAddress = 60 })
	garbage := enrollBody(t, "pmt1.not-a-token", "csr")
	limited := 0
	for range 80 {
		status, e := p.postEnroll(garbage)
		switch {
		case status == http.StatusTooManyRequests && e.Code == wire.CodeRateLimited:
			if e.RetryAfter < time.Second {
				t.Fatalf("429 with Retry-After %s", e.RetryAfter)
			}
			limited++
		case status == http.StatusUnauthorized || status == http.StatusBadRequest:
		default:
			t.Fatalf("enrollment answered %d %+v", status, e)
		}
	}
	if limited < 15 {
		t.Fatalf("%d of 80 enrollment requests from one address were refused, want at least 15", limited)
	}
	// A real host enrolling now waits for its turn and enrolls.
	st, err := agent.Enroll(t.Context(), agent.EnrollOptions{
		Server: p.D.AgentAddr, Token: p.token("edge-1"), StateDir: filepath.Join(t.TempDir(), "edge-1"), Log: discardLog(),
	})
	if err != nil {
		t.Fatalf("enroll after the flood: %v", err)
	}
	runAgent(t, st)
	p.waitStatus("edge-1", wire.HostOnline)
}

// The overall enrollment limit holds whatever the source address.
func TestEnrollmentsAreLimitedOverall(t *testing.T) {
	t.Parallel()
	p := startPMD(t, func(c *pmd.Config) { c.EnrollRate = 5 })
	garbage := enrollBody(t, "pmt1.not-a-token", "csr")
	var codes []string
	for range 8 {
		_, e := p.postEnroll(garbage)
		codes = append(codes, e.Code)
	}
	want := []string{wire.CodeTokenInvalid, wire.CodeTokenInvalid, wire.CodeTokenInvalid, wire.CodeTokenInvalid, wire.CodeTokenInvalid,
		wire.CodeRateLimited, wire.CodeRateLimited, wire.CodeRateLimited}
	if !slices.Equal(codes, want) {
		t.Fatalf("codes %v, want %v", codes, want)
	}
}
