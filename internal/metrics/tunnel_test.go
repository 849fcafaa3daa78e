package metrics

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestTunnelCounters(t *testing.T) {
	m := New(prometheus.NewRegistry())
	tests := []struct {
		name  string
		count func(reason string)
		vec   *prometheus.CounterVec
	}{
		{"streams refused", m.StreamRefused, m.tunnel.streamsRefused},
		{"sessions cut", m.SessionCut, m.tunnel.sessionsCut},
		{"sessions refused", m.SessionRefused, m.tunnel.sessionsRefuse},
		{"handshakes shed", m.HandshakeShed, m.tunnel.handshakesShed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.count("a")
			tt.count("a")
			tt.count("b")
			if got := testutil.ToFloat64(tt.vec.WithLabelValues("a")); got != 2 {
				t.Errorf("reason a = %v, want 2", got)
			}
			if got := testutil.ToFloat64(tt.vec.WithLabelValues("b")); got != 1 {
				t.Errorf("reason b = %v, want 1", got)
			}
		})
	}
	// A nil *Metrics counts nothing and does not panic, as everywhere in this package.
	var none *Metrics
	none.StreamRefused("streams")
	none.SessionCut("stale")
	none.SessionRefused("penalty")
	none.HandshakeShed("waited")
}
