package mail

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// smtpServer is a tiny SMTP server on loopback that speaks enough of the protocol for a
// client: EHLO, STARTTLS (when it has a certificate), AUTH PLAIN, MAIL, RCPT, DATA, QUIT.
type smtpServer struct {
	t        *testing.T
	ln       net.Listener
	tls      *tls.Config // nil: no STARTTLS offered
	auth     bool        // offer AUTH PLAIN
	rejectTo string      // answer RCPT TO for this address with 550
	silent   bool        // accept connections and never answer

	mu   sync.Mutex
	got  []received
	cmds []string // every command, in order, AUTH's argument elided
}

type received struct {
	from, to string
	data     []byte
	tls      bool   // the message came over TLS
	authUser string // who logged in, "" for nobody
	authPass string
}

func startSMTP(t *testing.T, configure func(*smtpServer)) *smtpServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &smtpServer{t: t, ln: ln}
	if configure != nil {
		configure(s)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { s.serve(c) })
		}
	})
	return s
}

func (s *smtpServer) port() int { return s.ln.Addr().(*net.TCPAddr).Port }

func (s *smtpServer) messages() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.got...)
}

func (s *smtpServer) commands() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.cmds...)
}

func (s *smtpServer) serve(conn net.Conn) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if s.silent {
		_, _ = io.Copy(io.Discard, conn)
		return
	}
	r := bufio.NewReader(conn)
	say := func(line string) { _, _ = io.WriteString(conn, line+"\r\n") }
	say("220 test.local ESMTP ready")
	var cur received
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		verb, arg, _ := strings.Cut(line, " ")
		verb = strings.ToUpper(verb)
		s.mu.Lock()
		if verb == "AUTH" {
			s.cmds = append(s.cmds, "AUTH")
		} else {
			s.cmds = append(s.cmds, line)
		}
		s.mu.Unlock()
		switch verb {
		case "EHLO", "HELO":
			var ext []string
			if s.tls != nil && !cur.tls {
				ext = append(ext, "STARTTLS")
			}
			if s.auth {
				ext = append(ext, "AUTH PLAIN")
			}
			ext = append(ext, "8BITMIME")
			say("250-test.local hello")
			for i, e := range ext {
				if i == len(ext)-1 {
					say("250 " + e)
				} else {
					say("250-" + e)
				}
			}
		case "STARTTLS":
			if s.tls == nil {
				say("502 not offered")
				continue
			}
			say("220 go ahead")
			tc := tls.Server(conn, s.tls)
			if err := tc.Handshake(); err != nil {
				return
			}
			conn, r = tc, bufio.NewReader(tc)
			cur = received{tls: true}
		case "AUTH":
			mech, resp, _ := strings.Cut(arg, " ")
			raw, err := base64.StdEncoding.DecodeString(resp)
			parts := strings.Split(string(raw), "\x00")
			if mech != "PLAIN" || err != nil || len(parts) != 3 {
				say("535 bad auth")
				continue
			}
			cur.authUser, cur.authPass = parts[1], parts[2]
			say("235 ok")
		case "MAIL":
			cur.from = pathArg(arg, "FROM:")
			say("250 ok")
		case "RCPT":
			to := pathArg(arg, "TO:")
			if to == s.rejectTo {
				say("550 no such mailbox")
				continue
			}
			cur.to = to
			say("250 ok")
		case "DATA":
			say("354 end with .")
			var data bytes.Buffer
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				data.WriteString(strings.TrimPrefix(l, ".")) // undo dot-stuffing
			}
			cur.data = data.Bytes()
			s.mu.Lock()
			s.got = append(s.got, cur)
			s.mu.Unlock()
			cur = received{tls: cur.tls}
			say("250 queued")
		case "RSET", "NOOP":
			say("250 ok")
		case "QUIT":
			say("221 bye")
			return
		default:
			say("500 unknown command")
		}
	}
}

// pathArg reads the address of "FROM:<a@b> BODY=8BITMIME" or "TO:<a@b>".
func pathArg(arg, prefix string) string {
	if len(arg) < len(prefix) || !strings.EqualFold(arg[:len(prefix)], prefix) {
		return ""
	}
	path, _, _ := strings.Cut(arg[len(prefix):], " ")
	return strings.Trim(path, "<>")
}

// selfSigned makes a certificate for 127.0.0.1 and a pool that trusts it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "test smtp"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

func newSMTP(t *testing.T, cfg Config) *SMTP {
	t.Helper()
	m, err := NewSMTP(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m.Timeout = 5 * time.Second
	return m
}

// parse reads a received message and its decoded body.
func parse(t *testing.T, data []byte) (*mail.Message, string) {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("the message does not parse: %v\n%s", err, data)
	}
	if msg.Header.Get("Content-Transfer-Encoding") != "quoted-printable" {
		t.Fatalf("Content-Transfer-Encoding = %q", msg.Header.Get("Content-Transfer-Encoding"))
	}
	body, err := io.ReadAll(quotedprintable.NewReader(msg.Body))
	if err != nil {
		t.Fatal(err)
	}
	return msg, string(body)
}

func TestSMTPPlain(t *testing.T) {
	srv := startSMTP(t, nil)
	m := newSMTP(t, Config{Host: "127.0.0.1", Port: srv.port(), From: "PocketMolt <no-reply@pocketmolt.test>"})
	m.Now = func() time.Time { return time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC) }
	body := "Hello Ada,\n\nReset your password: https://pm.test/reset?token=abc_DEF-123\n.a line that starts with a dot\nGrüße — the team\n" + strings.Repeat("x", 120)
	if err := m.Send(t.Context(), "Ada@Example.com", "Reset your PocketMolt password — ünïcode", body); err != nil {
		t.Fatal(err)
	}
	got := srv.messages()
	if len(got) != 1 {
		t.Fatalf("%d messages delivered, want 1", len(got))
	}
	if got[0].from != "no-reply@pocketmolt.test" || got[0].to != "Ada@Example.com" {
		t.Errorf("envelope from %q to %q", got[0].from, got[0].to)
	}
	if got[0].tls || got[0].authUser != "" {
		t.Errorf("tls=%v auth=%q on a server that offers neither", got[0].tls, got[0].authUser)
	}
	msg, text := parse(t, got[0].data)
	// Lines end in CRLF on the wire, and the last one gets its line end.
	if text != strings.ReplaceAll(body, "\n", "\r\n")+"\r\n" {
		t.Errorf("body arrived as %q\nwant %q", text, body)
	}
	subj, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	if err != nil || subj != "Reset your PocketMolt password — ünïcode" {
		t.Errorf("Subject = %q (%v)", subj, err)
	}
	if from := msg.Header.Get("From"); from != `"PocketMolt" <no-reply@pocketmolt.test>` {
		t.Errorf("From = %q", from)
	}
	if d, err := msg.Header.Date(); err != nil || !d.Equal(m.Now()) {
		t.Errorf("Date = %v, %v", d, err)
	}
	if id := msg.Header.Get("Message-ID"); !strings.HasSuffix(id, "@pocketmolt.test>") {
		t.Errorf("Message-ID = %q", id)
	}
	if ct := msg.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
		t.Errorf("Content-Type = %q", ct)
	}
	if cmds := srv.commands(); cmds[len(cmds)-1] != "QUIT" {
		t.Errorf("the client did not say QUIT: %q", cmds)
	}
}

func TestSMTPStartTLSAndAuth(t *testing.T) {
	cert, pool := selfSigned(t)
	srv := startSMTP(t, func(s *smtpServer) {
		s.tls = &tls.Config{Certificates: []tls.Certificate{cert}}
		s.auth = true
	})
	pwFile := filepath.Join(t.TempDir(), "smtp-password")
	if err := os.WriteFile(pwFile, []byte("s3cret pass\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	m := newSMTP(t, Config{Host: "127.0.0.1", Port: srv.port(), Username: "pm", PasswordFile: pwFile, From: "no-reply@pocketmolt.test"})
	m.TLSConfig = &tls.Config{RootCAs: pool}
	if err := m.Send(t.Context(), "bob@example.com", "Hi", "text"); err != nil {
		t.Fatal(err)
	}
	got := srv.messages()
	if len(got) != 1 {
		t.Fatalf("%d messages delivered, want 1", len(got))
	}
	if !got[0].tls {
		t.Error("the message was sent before STARTTLS")
	}
	if got[0].authUser != "pm" || got[0].authPass != "s3cret pass" {
		t.Errorf("logged in as %q with %q, want pm with the file's password (newline trimmed)", got[0].authUser, got[0].authPass)
	}
	// The password went only after STARTTLS: the command list shows STARTTLS before AUTH.
	cmds := strings.Join(srv.commands(), "|")
	if !strings.Contains(cmds, "STARTTLS") || strings.Index(cmds, "STARTTLS") > strings.Index(cmds, "AUTH") {
		t.Errorf("commands %q: AUTH must follow STARTTLS", cmds)
	}

	// A certificate the client does not trust: nothing is sent, and the error says TLS.
	m2 := newSMTP(t, Config{Host: "127.0.0.1", Port: srv.port(), Username: "pm", PasswordFile: pwFile, From: "no-reply@pocketmolt.test"})
	err := m2.Send(t.Context(), "bob@example.com", "Hi", "text")
	if err == nil || !strings.Contains(err.Error(), "starttls") {
		t.Fatalf("an untrusted certificate: %v, want a starttls error", err)
	}
	if len(srv.messages()) != 1 {
		t.Error("a message was delivered over an untrusted connection")
	}
}

func TestSMTPRefusesPasswordInTheClear(t *testing.T) {
	srv := startSMTP(t, func(s *smtpServer) { s.auth = true }) // AUTH but no STARTTLS
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte("hunter2hunter2"), 0o600); err != nil {
		t.Fatal(err)
	}
	m := newSMTP(t, Config{Host: "127.0.0.1", Port: srv.port(), Username: "pm", PasswordFile: pwFile, From: "no-reply@pocketmolt.test"})
	err := m.Send(t.Context(), "bob@example.com", "Hi", "text")
	if !errors.Is(err, ErrNoTLS) {
		t.Fatalf("Send = %v, want ErrNoTLS", err)
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("the error holds the password: %v", err)
	}
	for _, c := range srv.commands() {
		if c == "AUTH" || strings.HasPrefix(c, "MAIL") {
			t.Errorf("the client sent %q to a server without TLS", c)
		}
	}
}

func TestSMTPErrors(t *testing.T) {
	srv := startSMTP(t, func(s *smtpServer) { s.rejectTo = "nobody@example.com" })
	m := newSMTP(t, Config{Host: "127.0.0.1", Port: srv.port(), From: "no-reply@pocketmolt.test"})

	err := m.Send(t.Context(), "nobody@example.com", "Hi", "text")
	if err == nil || !strings.Contains(err.Error(), "rcpt to") || !strings.Contains(err.Error(), "550") {
		t.Errorf("a refused recipient: %v, want the rcpt step and the server's 550", err)
	}
	for _, tc := range []struct{ name, to, subject string }{
		{"header injection in the recipient", "bob@example.com\r\nBcc: eve@example.com", "Hi"},
		{"header injection in the subject", "bob@example.com", "Hi\nBcc: eve@example.com"},
		{"not an address", "bob", "Hi"},
		{"empty subject", "bob@example.com", " "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(srv.commands())
			if err := m.Send(t.Context(), tc.to, tc.subject, "text"); err == nil {
				t.Fatal("Send succeeded")
			}
			if n := len(srv.commands()); n != before {
				t.Errorf("the client talked to the server (%d commands) before refusing", n-before)
			}
		})
	}
	if len(srv.messages()) != 0 {
		t.Errorf("%d messages delivered, want none", len(srv.messages()))
	}

	// Nothing listening.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	m2 := newSMTP(t, Config{Host: "127.0.0.1", Port: port, From: "no-reply@pocketmolt.test"})
	if err := m2.Send(t.Context(), "bob@example.com", "Hi", "text"); err == nil || !strings.Contains(err.Error(), "dial") {
		t.Errorf("no server: %v, want a dial error", err)
	}
}

func TestSMTPSilentServerEndsWithContext(t *testing.T) {
	srv := startSMTP(t, func(s *smtpServer) { s.silent = true })
	m := newSMTP(t, Config{Host: "127.0.0.1", Port: srv.port(), From: "no-reply@pocketmolt.test"})
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := m.Send(ctx, "bob@example.com", "Hi", "text")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Send = %v, want it to end with the context's deadline", err)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("Send took %v after the context's deadline of 200ms", d)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string // "" for valid
	}{
		{"empty is valid: no mail server", Config{}, ""},
		{"host only with a sender", Config{Host: "smtp.example.com", From: "a@example.com"}, ""},
		{"all set", Config{Host: "smtp.example.com", Port: 465, Username: "u", PasswordFile: "/p", From: "PM <a@example.com>"}, ""},
		{"ipv6 host", Config{Host: "::1", From: "a@example.com"}, ""},
		{"username without host", Config{Username: "u"}, "host is empty"},
		{"host with port", Config{Host: "smtp.example.com:587", From: "a@example.com"}, "without a port"},
		{"bad port", Config{Host: "smtp.example.com", Port: 70000, From: "a@example.com"}, "port 70000"},
		{"username without password", Config{Host: "smtp.example.com", Username: "u", From: "a@example.com"}, "both username and password_file"},
		{"no sender", Config{Host: "smtp.example.com"}, "from is empty"},
		{"bad sender", Config{Host: "smtp.example.com", From: "not an address"}, "not an email address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("Validate = %v, want %q", err, tc.want)
			}
		})
	}
	if _, err := NewSMTP(Config{Host: "h.example.com", Username: "u", PasswordFile: filepath.Join(t.TempDir(), "missing"), From: "a@example.com"}); err == nil {
		t.Error("NewSMTP with a missing password file succeeded")
	}
	empty := filepath.Join(t.TempDir(), "empty")
	_ = os.WriteFile(empty, []byte("\n"), 0o600)
	if _, err := NewSMTP(Config{Host: "h.example.com", Username: "u", PasswordFile: empty, From: "a@example.com"}); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("NewSMTP with an empty password file: %v", err)
	}
	if m, err := NewSMTP(Config{Host: "h.example.com", From: "a@example.com"}); err != nil || m.port != DefaultPort {
		t.Errorf("NewSMTP without a port: %v, port %d, want %d", err, m.port, DefaultPort)
	}
}

func TestLogMailer(t *testing.T) {
	var buf bytes.Buffer
	l := &Log{Logger: slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	link := "https://pm.test/reset?token=tok_" + strconv.Itoa(42)
	if err := l.Send(t.Context(), "ada@example.com", "Reset your password", "Open "+link); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{`"level":"INFO"`, "not sent", `"to":"ada@example.com"`, link} {
		if !strings.Contains(out, want) {
			t.Errorf("the log lacks %q:\n%s", want, out)
		}
	}
	if err := l.Send(t.Context(), "ada@example.com\nBcc: x@y", "s", "b"); err == nil {
		t.Error("a recipient with a line break was accepted")
	}
}
