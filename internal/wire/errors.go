package wire

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// Error codes. They cross the wire in {"code","message"} bodies; callers branch on Code,
// never on Message.
const (
	CodeInvalidArgument  = "invalid_argument"
	CodeNotFound         = "not_found"
	CodeConflict         = "conflict"
	CodeUnauthenticated  = "unauthenticated"
	CodePermissionDenied = "permission_denied"
	CodePayloadTooLarge  = "payload_too_large"
	CodeTokenInvalid     = "token_invalid"
	CodeTokenExpired     = "token_expired"
	CodeTokenUsed        = "token_used"
	CodeUnavailable      = "unavailable"
	CodeRateLimited      = "rate_limited"
	CodeMethodNotAllowed = "method_not_allowed"
	CodeInternal         = "internal"
)

// Error is the body of every error response: {"code","message"}.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// Status is the HTTP status the error travelled with; not serialised.
	Status int `json:"-"`
	// RetryAfter is how long the caller should wait before trying again, sent as the
	// Retry-After header (whole seconds, rounded up); zero when there is nothing to wait for.
	RetryAfter time.Duration `json:"-"`
}

func (e *Error) Error() string { return e.Message }

// Errorf makes an *Error with a code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// HTTPStatus is the status an error code travels with.
func HTTPStatus(code string) int {
	switch code {
	case CodeInvalidArgument:
		return http.StatusBadRequest
	case CodeNotFound:
		return http.StatusNotFound
	case CodeConflict:
		return http.StatusConflict
	case CodeUnauthenticated, CodeTokenInvalid, CodeTokenExpired, CodeTokenUsed:
		return http.StatusUnauthorized
	case CodePermissionDenied:
		return http.StatusForbidden
	case CodePayloadTooLarge:
		return http.StatusRequestEntityTooLarge
	case CodeMethodNotAllowed:
		return http.StatusMethodNotAllowed
	case CodeUnavailable:
		return http.StatusServiceUnavailable
	case CodeRateLimited:
		return http.StatusTooManyRequests
	default:
		return http.StatusInternalServerError
	}
}

// CodeOf returns the code of err if it is (or wraps) an *Error, and CodeInternal otherwise.
func CodeOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// WriteJSON writes v as JSON with the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// WriteError writes e as {"code","message"} with the status its code maps to, and a
// Retry-After header when e.RetryAfter is set.
func WriteError(w http.ResponseWriter, e *Error) {
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.FormatInt(int64((e.RetryAfter+time.Second-1)/time.Second), 10))
	}
	WriteJSON(w, HTTPStatus(e.Code), e)
}

// DecodeError reads an error response body. A body that is not {"code","message"} becomes an
// *Error with CodeInternal and the status text, so callers always get a typed error.
func DecodeError(resp *http.Response) *Error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e Error
	if err := json.Unmarshal(b, &e); err != nil || e.Code == "" {
		e = Error{Code: CodeInternal, Message: fmt.Sprintf("unexpected response: %s", resp.Status)}
	}
	e.Status = resp.StatusCode
	if s, err := strconv.ParseInt(resp.Header.Get("Retry-After"), 10, 32); err == nil && s > 0 {
		e.RetryAfter = time.Duration(s) * time.Second
	}
	return &e
}
