package tunnel

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// Limits bound what a peer may ask of the side that serves it with ServeLimited: pmd holds
// every agent to them, since a host may be compromised. Zero fields take DefaultLimits'.
type Limits struct {
	// MaxStreams is how many streams the peer may have open at once. A well-behaved agent
	// has one to three (a heartbeat, bot events, a renewal).
	MaxStreams int
	// StreamRate is how many streams a second the peer may open, sustained, with bursts of
	// up to StreamBurst: a token bucket.
	StreamRate  float64
	StreamBurst int
	// ReadHeaderTimeout, ReadTimeout, WriteTimeout and IdleTimeout are the deadlines of
	// every request, as in http.Server: a request's header, its whole body, its response,
	// and the wait for a next request on a stream kept open.
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// Now is the rate's clock; nil means time.Now.
	Now func() time.Time
}

// DefaultLimits are what pmd holds an agent to: far above what the agent does (one heartbeat
// every interval, bot events one at a time, at most 64 queued), far below a flood.
func DefaultLimits() Limits {
	return Limits{
		MaxStreams:        16,
		StreamRate:        20,
		StreamBurst:       100,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       30 * time.Second,
		Now:               time.Now,
	}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxStreams <= 0 {
		l.MaxStreams = d.MaxStreams
	}
	if l.StreamRate <= 0 {
		l.StreamRate = d.StreamRate
	}
	if l.StreamBurst <= 0 {
		l.StreamBurst = d.StreamBurst
	}
	for _, f := range []struct{ v, def *time.Duration }{
		{&l.ReadHeaderTimeout, &d.ReadHeaderTimeout}, {&l.ReadTimeout, &d.ReadTimeout},
		{&l.WriteTimeout, &d.WriteTimeout}, {&l.IdleTimeout, &d.IdleTimeout},
	} {
		if *f.v <= 0 {
			*f.v = *f.def
		}
	}
	if l.Now == nil {
		l.Now = time.Now
	}
	return l
}

// Why ServeLimited cut a session, wrapped in a *LimitError.
var (
	ErrTooManyStreams = errors.New("too many streams open at once")
	ErrStreamRate     = errors.New("streams opened too fast")
)

// LimitError is ServeLimited's error when it cut the session because the peer went past a
// limit. Reason is a short label for metrics and logs ("streams" or "stream_rate").
type LimitError struct {
	Reason string
	err    error
	detail string
}

func (e *LimitError) Error() string { return e.err.Error() + " (" + e.detail + ")" }

func (e *LimitError) Unwrap() error { return e.err }

// ServeLimited is Serve for an untrusted peer: every request has read, write and idle
// deadlines, and a peer that opens more than lim.MaxStreams streams at once, or opens them
// faster than lim.StreamRate allows, has its session cut: the stream that crossed the line
// is refused, the session closed, and ServeLimited returns a *LimitError saying which limit
// it was. Otherwise it returns as Serve does.
func (s *Session) ServeLimited(h http.Handler, lim Limits, log *slog.Logger) error {
	lim = lim.withDefaults()
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: lim.ReadHeaderTimeout,
		ReadTimeout:       lim.ReadTimeout,
		WriteTimeout:      lim.WriteTimeout,
		IdleTimeout:       lim.IdleTimeout,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	l := &limiter{lim: lim, tokens: float64(lim.StreamBurst), last: lim.Now()}
	return s.serve(srv, &listener{s: s, lim: l})
}

// limiter counts a session's open peer streams and meters the rate they are opened at.
type limiter struct {
	lim Limits

	mu     sync.Mutex
	open   int
	tokens float64
	last   time.Time
}

// admit takes a stream in, or says which limit it would break.
func (l *limiter) admit() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.lim.Now()
	if elapsed := now.Sub(l.last); elapsed > 0 {
		l.tokens = min(float64(l.lim.StreamBurst), l.tokens+elapsed.Seconds()*l.lim.StreamRate)
	}
	l.last = now
	if l.open >= l.lim.MaxStreams {
		return &LimitError{Reason: "streams", err: ErrTooManyStreams,
			detail: fmt.Sprintf("%d open, at most %d", l.open+1, l.lim.MaxStreams)}
	}
	if l.tokens < 1 {
		return &LimitError{Reason: "stream_rate", err: ErrStreamRate,
			detail: fmt.Sprintf("more than %g a second after a burst of %d", l.lim.StreamRate, l.lim.StreamBurst)}
	}
	l.tokens--
	l.open++
	return nil
}

// release lets a closed stream out.
func (l *limiter) release() {
	l.mu.Lock()
	l.open--
	l.mu.Unlock()
}
