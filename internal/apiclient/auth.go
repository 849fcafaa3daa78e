package apiclient

import (
	"errors"
	"fmt"
	"net"
	"reflect"

	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// CertRejectedError reports that pmd refused our client certificate during the TLS handshake:
// it is revoked, expired, or was not issued by pmd's CA.
type CertRejectedError struct {
	// Alert is the TLS alert pmd sent, e.g. "bad certificate".
	Alert string
	Err   error
}

func (e *CertRejectedError) Error() string {
	return fmt.Sprintf("server rejected the admin certificate (%s): it may be revoked, expired or from another CA", e.Alert)
}

func (e *CertRejectedError) Unwrap() error { return e.Err }

// IsAuth reports whether err means the server did not accept our credentials: a
// *CertRejectedError, or a *wire.Error with code unauthenticated or permission_denied.
func IsAuth(err error) bool {
	var cr *CertRejectedError
	if errors.As(err, &cr) {
		return true
	}
	var we *wire.Error
	if errors.As(err, &we) {
		return we.Code == wire.CodeUnauthenticated || we.Code == wire.CodePermissionDenied
	}
	return false
}

// TLS alerts (RFC 8446 §6.2) a server sends when it does not accept a client certificate.
var certAlerts = map[uint64]string{
	42:  "bad certificate",
	43:  "unsupported certificate",
	44:  "certificate revoked",
	45:  "certificate expired",
	46:  "certificate unknown",
	48:  "unknown certificate authority",
	49:  "access denied",
	116: "certificate required",
}

// rejectedAlert recognises a TLS alert received from the peer that rejects our certificate.
// crypto/tls reports a received alert as a *net.OpError{Op: "remote error"} around a value of
// its unexported uint8 alert type, so the alert number is read by reflection rather than by
// matching message text.
func rejectedAlert(err error) (string, bool) {
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "remote error" || op.Err == nil {
		return "", false
	}
	v := reflect.ValueOf(op.Err)
	if v.Type().PkgPath() != "crypto/tls" || v.Kind() != reflect.Uint8 {
		return "", false
	}
	name, ok := certAlerts[v.Uint()]
	return name, ok
}
