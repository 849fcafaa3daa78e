// Package mail sends the few emails pmd writes to customers (password reset links): through an
// SMTP server when one is configured, or else into pmd's log at info level, which is the
// documented way for operators and tests to read them when there is no mail server.
package mail

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
)

// Mailer sends one plain-text email. Implementations are safe for concurrent use.
type Mailer interface {
	Send(ctx context.Context, to, subject, body string) error
}

// Log is a Mailer that sends nothing: it writes each email to its logger at info level and
// says so. pmd uses it when no SMTP host is configured.
type Log struct {
	Logger *slog.Logger
}

var _ Mailer = (*Log)(nil)

// Send logs the email. The body is logged as it is: a reset link in it is what an operator
// without a mail server needs to read.
func (l *Log) Send(ctx context.Context, to, subject, body string) error {
	if err := checkHeaderValue("recipient", to); err != nil {
		return err
	}
	if err := checkHeaderValue("subject", subject); err != nil {
		return err
	}
	l.Logger.InfoContext(ctx, "email not sent: no smtp host is configured, so it is logged instead",
		"to", to, "subject", subject, "body", body)
	return nil
}

// checkHeaderValue refuses a value that would end its header line early: a CR or LF in a
// recipient or subject could add headers (or recipients) of the caller's choosing.
func checkHeaderValue(what, v string) error {
	if strings.ContainsAny(v, "\r\n\x00") {
		return fmt.Errorf("send mail: %s contains a line break", what)
	}
	if strings.TrimSpace(v) == "" {
		return fmt.Errorf("send mail: %s is empty", what)
	}
	return nil
}

// ErrNoTLS is returned when the server does not offer STARTTLS but credentials are configured:
// they are never sent in the clear.
var ErrNoTLS = errors.New("the smtp server does not offer STARTTLS; refusing to send the password in the clear")
