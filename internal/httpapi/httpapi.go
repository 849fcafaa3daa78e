// Package httpapi is the one place where pmd's HTTP handlers' errors become responses: a
// handler returns an error, and Handle writes {"code","message"} with the matching status and
// logs it once with the request's id. Internal errors never reach a response body.
package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// HandlerFunc is an HTTP handler that returns its error instead of writing it.
type HandlerFunc func(w http.ResponseWriter, r *http.Request) error

// RequestIDHeader carries a request's id; one is made when the caller sends none.
const RequestIDHeader = "X-Request-Id"

// Handle adapts h: an *wire.Error is sent as is (a 4xx is logged at info level, a 5xx at
// error), any other error is logged and sent as 500 internal with no detail. A panic in h is
// one too: logged with its stack (its value only when it is a runtime error, since a value
// may have been formatted from a secret) and answered 500 if nothing was written yet.
func Handle(log *slog.Logger, h HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(RequestIDHeader)
		if id == "" || len(id) > 64 {
			id = newRequestID()
		}
		w.Header().Set(RequestIDHeader, id)
		defer func() {
			v := recover()
			if v == nil || v == http.ErrAbortHandler {
				if v != nil {
					panic(v) // net/http's own way to abort a response
				}
				return
			}
			what := fmt.Sprintf("%T", v)
			if re, ok := v.(runtime.Error); ok {
				what = re.Error()
			}
			log.Error("handler panicked", "request_id", id, "method", r.Method, "path", r.URL.Path,
				"panic", what, "stack", string(debug.Stack()))
			wire.WriteError(w, &wire.Error{Code: wire.CodeInternal, Message: "internal error (request " + id + ")"})
		}()
		err := h(w, r)
		if err == nil {
			return
		}
		l := log.With("request_id", id, "method", r.Method, "path", r.URL.Path)
		var we *wire.Error
		if errors.As(err, &we) {
			status := wire.HTTPStatus(we.Code)
			if status >= 500 {
				l.Error("request failed", "code", we.Code, "error", err.Error())
			} else {
				l.Info("request refused", "code", we.Code, "error", we.Message)
			}
			wire.WriteError(w, we)
			return
		}
		l.Error("request failed", "error", err.Error())
		wire.WriteError(w, &wire.Error{Code: wire.CodeInternal, Message: "internal error (request " + id + ")"})
	})
}

// Decode reads a JSON body of at most limit bytes into v, refusing an empty, malformed or
// oversized body with a 4xx error. Fields v does not have are ignored, so that pmd and agents
// of neighbouring versions understand each other; the admin API uses DecodeStrict.
func Decode(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	return decode(w, r, limit, v, false)
}

// DecodeStrict is Decode that also refuses fields v does not have, naming the first, so a
// misspelt option is an error rather than a default silently applied.
func DecodeStrict(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	return decode(w, r, limit, v, true)
}

func decode(w http.ResponseWriter, r *http.Request, limit int64, v any, strict bool) error {
	body := http.MaxBytesReader(w, r.Body, limit)
	dec := json.NewDecoder(body)
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return wire.Errorf(wire.CodePayloadTooLarge, "request body is larger than %d bytes", limit)
		}
		if errors.Is(err, io.EOF) {
			return wire.Errorf(wire.CodeInvalidArgument, "request body is empty")
		}
		if field, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return wire.Errorf(wire.CodeInvalidArgument, "request body has unknown field %s", field)
		}
		return wire.Errorf(wire.CodeInvalidArgument, "request body is not valid JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return wire.Errorf(wire.CodePayloadTooLarge, "request body is larger than %d bytes", limit)
		}
		return wire.Errorf(wire.CodeInvalidArgument, "request body holds more than one JSON value")
	}
	return nil
}

// NotFound answers any request no route matched.
func NotFound(log *slog.Logger) http.Handler {
	return Handle(log, func(w http.ResponseWriter, r *http.Request) error {
		return wire.Errorf(wire.CodeNotFound, "no such endpoint: %s %s", r.Method, r.URL.Path)
	})
}

func newRequestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Serve runs srv on ln until ctx ends, then shuts it down, giving in-flight requests five
// seconds; it returns once they have finished or the five seconds are up. TLS is used when
// srv.TLSConfig is set. Stopping is not an error.
func Serve(ctx context.Context, srv *http.Server, ln net.Listener) error {
	done := make(chan struct{})
	stopped := make(chan struct{})
	defer func() { close(done); <-stopped }() // srv.Serve returns as Shutdown starts; wait for it
	go func() {
		defer close(stopped)
		select {
		case <-ctx.Done():
		case <-done:
			return
		}
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	var err error
	if srv.TLSConfig != nil {
		err = srv.ServeTLS(ln, "", "")
	} else {
		err = srv.Serve(ln)
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}
