package metrics

import "github.com/prometheus/client_golang/prometheus"

// tunnelMetrics count what pmd refused or cut to hold hosts to the tunnel's limits.
type tunnelMetrics struct {
	streamsRefused *prometheus.CounterVec
	sessionsCut    *prometheus.CounterVec
	sessionsRefuse *prometheus.CounterVec
	handshakesShed *prometheus.CounterVec
}

func newTunnelMetrics(reg prometheus.Registerer) tunnelMetrics {
	t := tunnelMetrics{
		streamsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "tunnel_streams_refused_total",
			Help: "Streams an agent opened past a limit (streams: too many open at once; stream_rate: opened too fast); each one cut its session.",
		}, []string{"reason"}),
		sessionsCut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "tunnel_sessions_cut_total",
			Help: "Agent sessions pmd ended, by reason: streams or stream_rate (a limit), stale (no heartbeat), cert_expired, replaced (the host connected again), revoked.",
		}, []string{"reason"}),
		sessionsRefuse: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "tunnel_sessions_refused_total",
			Help: "Agent sessions refused after the handshake, by reason: penalty (the host's last session was cut for a limit), certificate, host.",
		}, []string{"reason"}),
		handshakesShed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "tls_handshakes_shed_total",
			Help: "Connections to the agent listener closed before their TLS handshake, by reason: queue_full, or waited (too long for a handshake worker); their agents retry.",
		}, []string{"reason"}),
	}
	reg.MustRegister(t.streamsRefused, t.sessionsCut, t.sessionsRefuse, t.handshakesShed)
	return t
}

// StreamRefused counts a stream refused for a tunnel limit (reason "streams" or
// "stream_rate").
func (m *Metrics) StreamRefused(reason string) {
	if m != nil {
		m.tunnel.streamsRefused.WithLabelValues(reason).Inc()
	}
}

// SessionCut counts an agent session pmd ended, by reason.
func (m *Metrics) SessionCut(reason string) {
	if m != nil {
		m.tunnel.sessionsCut.WithLabelValues(reason).Inc()
	}
}

// SessionRefused counts an agent session refused after its handshake, by reason.
func (m *Metrics) SessionRefused(reason string) {
	if m != nil {
		m.tunnel.sessionsRefuse.WithLabelValues(reason).Inc()
	}
}

// HandshakeShed counts a connection closed before its TLS handshake, by reason. Safe for
// concurrent use, as every method here.
func (m *Metrics) HandshakeShed(reason string) {
	if m != nil {
		m.tunnel.handshakesShed.WithLabelValues(reason).Inc()
	}
}
