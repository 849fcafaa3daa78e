package mail

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/secret"
)

// Config is the smtp: section of pmd.yaml. An empty Host means there is no mail server and
// emails are logged instead (see Log).
type Config struct {
	Host string `mapstructure:"host" yaml:"host,omitempty"`
	// Port is the server's submission port: 587 (STARTTLS, the default) or 465 (TLS from the
	// first byte); any other port uses STARTTLS when the server offers it.
	Port     int    `mapstructure:"port" yaml:"port,omitempty"`
	Username string `mapstructure:"username" yaml:"username,omitempty"`
	// PasswordFile holds the password (a trailing newline is ignored); never the password
	// itself in the config, so it stays off command lines and out of config dumps.
	PasswordFile string `mapstructure:"password_file" yaml:"password_file,omitempty"`
	// From is the sender, with or without a name: "PocketMolt <no-reply@example.com>".
	From string `mapstructure:"from" yaml:"from,omitempty"`
}

// DefaultPort is the submission port used when Config.Port is 0.
const DefaultPort = 587

// Enabled reports whether a mail server is configured.
func (c Config) Enabled() bool { return c.Host != "" }

// Validate checks a configured section and says what to fix; an empty one is valid.
func (c Config) Validate() error {
	if !c.Enabled() {
		if c.Username != "" || c.PasswordFile != "" {
			return errors.New("smtp: username or password_file is set but host is empty")
		}
		return nil
	}
	if strings.ContainsAny(c.Host, " /:@") && net.ParseIP(c.Host) == nil {
		return fmt.Errorf("smtp: host %q: want a host name or address without a port (set port separately)", c.Host)
	}
	if c.Port < 0 || c.Port > 65535 {
		return fmt.Errorf("smtp: port %d: use 1 to 65535 (0 means %d)", c.Port, DefaultPort)
	}
	if (c.Username == "") != (c.PasswordFile == "") {
		return errors.New("smtp: set both username and password_file, or neither")
	}
	if c.From == "" {
		return errors.New("smtp: from is empty: set the sender address, such as PocketMolt <no-reply@example.com>")
	}
	if _, err := mail.ParseAddress(c.From); err != nil {
		return fmt.Errorf("smtp: from %q is not an email address: %v", c.From, err)
	}
	return nil
}

// SMTP is a Mailer that delivers through an SMTP server: one connection per email, STARTTLS
// whenever the server offers it (required before a password is sent), AUTH PLAIN when a
// username is configured. It is safe for concurrent use.
type SMTP struct {
	host     string
	port     int
	username string
	password secret.Secret
	from     *mail.Address

	// TLSConfig is used for STARTTLS and for port 465; nil verifies the server's certificate
	// for Host against the system's roots. Tests set their own roots here.
	TLSConfig *tls.Config
	// HelloName is the name given in EHLO; "" means "localhost", as net/smtp does.
	HelloName string
	// Timeout bounds one Send when ctx has no earlier deadline; 0 means 30 seconds.
	Timeout time.Duration
	// Now is the clock for the Date header; nil means time.Now.
	Now func() time.Time
}

var _ Mailer = (*SMTP)(nil)

// NewSMTP checks cfg and reads its password file.
func NewSMTP(cfg Config) (*SMTP, error) {
	if !cfg.Enabled() {
		return nil, errors.New("smtp: host is empty")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	from, _ := mail.ParseAddress(cfg.From)
	m := &SMTP{host: cfg.Host, port: cfg.Port, username: cfg.Username, from: from}
	if m.port == 0 {
		m.port = DefaultPort
	}
	if cfg.PasswordFile != "" {
		b, err := os.ReadFile(cfg.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("smtp: read password_file: %w", err)
		}
		pw := strings.TrimRight(string(b), "\r\n")
		if pw == "" {
			return nil, fmt.Errorf("smtp: password_file %s is empty", cfg.PasswordFile)
		}
		m.password = secret.Secret(pw)
	}
	return m, nil
}

// Send delivers one email to one recipient. Errors name the SMTP step that failed (and the
// server's reply, which holds no secret of ours); the password never appears in them.
func (m *SMTP) Send(ctx context.Context, to, subject, body string) error {
	if err := checkHeaderValue("recipient", to); err != nil {
		return err
	}
	if err := checkHeaderValue("subject", subject); err != nil {
		return err
	}
	rcpt, err := mail.ParseAddress(to)
	if err != nil {
		return fmt.Errorf("send mail: recipient is not an email address: %w", err)
	}
	msg, err := m.message(rcpt, subject, body)
	if err != nil {
		return err
	}
	if err := m.deliver(ctx, rcpt.Address, msg); err != nil {
		return fmt.Errorf("send mail to %s via %s: %w", rcpt.Address, net.JoinHostPort(m.host, strconv.Itoa(m.port)), err)
	}
	return nil
}

func (m *SMTP) tlsConfig() *tls.Config {
	if m.TLSConfig != nil {
		c := m.TLSConfig.Clone()
		if c.ServerName == "" {
			c.ServerName = m.host
		}
		return c
	}
	return &tls.Config{ServerName: m.host, MinVersion: tls.VersionTLS12}
}

func (m *SMTP) deliver(ctx context.Context, rcpt string, msg []byte) error {
	timeout := m.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(m.host, strconv.Itoa(m.port)))
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer conn.Close()
	// net/smtp takes no context: an ended ctx sets a past deadline on the connection, which
	// ends the step waiting on the server. The connection's own deadline is a second later
	// than ctx's, only a backstop, so the error says it was ctx.
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline.Add(time.Second))
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	implicitTLS := m.port == 465
	if implicitTLS {
		tc := tls.Client(conn, m.tlsConfig())
		if err := tc.HandshakeContext(ctx); err != nil {
			return fmt.Errorf("tls handshake: %w", err)
		}
		conn = tc
	}
	c, err := smtp.NewClient(conn, m.host)
	if err != nil {
		return ctxErr(ctx, fmt.Errorf("greeting: %w", err))
	}
	defer c.Close()
	hello := m.HelloName
	if hello == "" {
		hello = "localhost"
	}
	if err := c.Hello(hello); err != nil {
		return ctxErr(ctx, fmt.Errorf("ehlo: %w", err))
	}
	if !implicitTLS {
		if ok, _ := c.Extension("STARTTLS"); ok {
			if err := c.StartTLS(m.tlsConfig()); err != nil {
				return ctxErr(ctx, fmt.Errorf("starttls: %w", err))
			}
		} else if m.username != "" {
			return ErrNoTLS
		}
	}
	if m.username != "" {
		if ok, _ := c.Extension("AUTH"); !ok {
			return errors.New("auth: the server does not offer AUTH but a username is configured")
		}
		if err := c.Auth(smtp.PlainAuth("", m.username, m.password.Reveal(), m.host)); err != nil {
			return ctxErr(ctx, fmt.Errorf("auth as %s: %w", m.username, err))
		}
	}
	if err := c.Mail(m.from.Address); err != nil {
		return ctxErr(ctx, fmt.Errorf("mail from: %w", err))
	}
	if err := c.Rcpt(rcpt); err != nil {
		return ctxErr(ctx, fmt.Errorf("rcpt to: %w", err))
	}
	w, err := c.Data()
	if err != nil {
		return ctxErr(ctx, fmt.Errorf("data: %w", err))
	}
	if _, err := w.Write(msg); err != nil {
		return ctxErr(ctx, fmt.Errorf("data: %w", err))
	}
	if err := w.Close(); err != nil {
		return ctxErr(ctx, fmt.Errorf("data: %w", err))
	}
	// The message is accepted once DATA's reply is 250; a failed QUIT loses nothing.
	_ = c.Quit()
	return nil
}

// ctxErr prefers the context's error when it ended the step: "context deadline exceeded"
// says more than the i/o timeout the connection's deadline produced.
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w (%w)", err, ctx.Err())
	}
	return err
}

// message renders the email: UTF-8 text, quoted-printable, with CRLF line ends.
func (m *SMTP) message(to *mail.Address, subject, body string) ([]byte, error) {
	now := time.Now
	if m.Now != nil {
		now = m.Now
	}
	var id [12]byte
	_, _ = rand.Read(id[:])
	domain := m.from.Address[strings.LastIndexByte(m.from.Address, '@')+1:]
	var b bytes.Buffer
	hdr := func(k, v string) { b.WriteString(k + ": " + v + "\r\n") }
	hdr("From", m.from.String())
	hdr("To", to.String())
	hdr("Subject", mime.QEncoding.Encode("utf-8", subject))
	hdr("Date", now().Format(time.RFC1123Z))
	hdr("Message-ID", "<"+hex.EncodeToString(id[:])+"@"+domain+">")
	hdr("MIME-Version", "1.0")
	hdr("Content-Type", "text/plain; charset=utf-8")
	hdr("Content-Transfer-Encoding", "quoted-printable")
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b)
	if _, err := qp.Write([]byte(strings.ReplaceAll(body, "\r\n", "\n"))); err != nil {
		return nil, fmt.Errorf("send mail: encode body: %w", err)
	}
	if err := qp.Close(); err != nil {
		return nil, fmt.Errorf("send mail: encode body: %w", err)
	}
	return b.Bytes(), nil
}
