// Package metrics is pmd's Prometheus instrumentation: request counts and latencies of every
// HTTP surface (public, admin, agent enrollment, and the agent's calls over its tunnel),
// tunnel sessions and bot events as they happen, and the fleet's state — hosts by status,
// bots by status and health, capacity per host — read at scrape time.
//
// Everything registers on a registry passed in, never the global one. A nil *Metrics is
// valid and records nothing, so packages take one without caring whether metrics are on.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pocketmolt/pocketmolt/internal/wire"
)

const namespace = "pocketmolt"

// Metrics holds pmd's event metrics.
type Metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	sessions *prometheus.CounterVec
	events   *prometheus.CounterVec
	stripe   *prometheus.CounterVec
	tunnel   tunnelMetrics
	usage    usageMetrics
}

// NewRegistry returns a registry holding the Go runtime and process collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// New makes pmd's event metrics and registers them on reg.
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "http_requests_total",
			Help: "HTTP requests pmd answered, by server (public, admin, agent, tunnel), method, route and status code.",
		}, []string{"server", "method", "route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "http_request_duration_seconds",
			Help:    "Time pmd took to answer HTTP requests, by server, method and route (streams count until they end).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"server", "method", "route"}),
		sessions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "tunnel_sessions_total",
			Help: "Agent tunnel sessions, by event: opened or closed.",
		}, []string{"event"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "bot_events_total",
			Help: "Bot events agents reported as they happened (died, oom, health changes…), by action.",
		}, []string{"action"}),
	}
	m.stripe = newStripeCounter()
	reg.MustRegister(m.requests, m.duration, m.sessions, m.events, m.stripe)
	m.tunnel = newTunnelMetrics(reg)
	m.usage = newUsageMetrics(reg)
	return m
}

// Handler serves the registry's metrics in the Prometheus exposition format.
func Handler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}

// HTTP counts and times the requests next answers, labelled with server and the route
// pattern that matched (next is normally an http.ServeMux; unmatched requests count under
// the pattern of the mux's catch-all, or "unmatched").
func (m *Metrics) HTTP(server string, next http.Handler) http.Handler {
	if m == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(rec, r)
		// ServeMux sets r.Pattern on the request it was given, so it is known only now.
		route := r.Pattern
		if route == "" {
			route = "unmatched"
		}
		method := r.Method
		if !knownMethods[method] {
			method = "other" // the public listener takes any method: keep the label set bounded
		}
		m.requests.WithLabelValues(server, method, route, strconv.Itoa(rec.code)).Inc()
		m.duration.WithLabelValues(server, method, route).Observe(time.Since(start).Seconds())
	})
}

var knownMethods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true, http.MethodPatch: true,
	http.MethodDelete: true, http.MethodOptions: true, http.MethodConnect: true, http.MethodTrace: true,
}

// SessionOpened and SessionClosed count agent tunnel sessions.
func (m *Metrics) SessionOpened() { m.session("opened") }

// SessionClosed counts a tunnel session's end.
func (m *Metrics) SessionClosed() { m.session("closed") }

func (m *Metrics) session(event string) {
	if m != nil {
		m.sessions.WithLabelValues(event).Inc()
	}
}

// BotEvent counts one bot event an agent reported. An action pmd does not know counts as
// "other", so an agent cannot grow the label set.
func (m *Metrics) BotEvent(action string) {
	if m == nil {
		return
	}
	if !wire.KnownEvent(action) {
		action = "other"
	}
	m.events.WithLabelValues(action).Inc()
}

// statusRecorder remembers the status code; it passes Flush and the rest through Unwrap
// (http.ResponseController), so streamed logs and proxied upgrades keep working.
type statusRecorder struct {
	http.ResponseWriter
	code        int
	wroteHeader bool
}

func (r *statusRecorder) WriteHeader(code int) {
	if !r.wroteHeader {
		r.code, r.wroteHeader = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(p []byte) (int, error) {
	r.wroteHeader = true
	return r.ResponseWriter.Write(p)
}

// Flush implements http.Flusher for handlers that assert it rather than use a
// ResponseController.
func (r *statusRecorder) Flush() {
	r.wroteHeader = true
	_ = http.NewResponseController(r.ResponseWriter).Flush()
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
