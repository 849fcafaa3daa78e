package metrics

import (
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// usageMetrics count the model calls agents metered, as pmd committed them: each record once,
// however often its agent sent it.
type usageMetrics struct {
	calls     *prometheus.CounterVec
	tokens    *prometheus.CounterVec
	refusals  *prometheus.CounterVec
	cost      *prometheus.CounterVec
	committed prometheus.Counter
}

func newUsageMetrics(reg prometheus.Registerer) usageMetrics {
	u := usageMetrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "model_calls_total",
			Help: "Model calls bots made through their hosts' model endpoints, by provider and outcome (ok, error: the provider answered an error, cut: the answer broke off).",
		}, []string{"provider", "outcome"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "model_tokens_total",
			Help: "Tokens model calls used as their providers reported (or the agent estimated), by provider and kind (input, output, cache_read, cache_write).",
		}, []string{"provider", "kind"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "model_refusals_total",
			Help: "Model calls an agent refused itself, by provider and reason (credits, rate, provider, token, upstream).",
		}, []string{"provider", "reason"}),
		cost: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "model_cost_credits_total",
			Help: "What model calls cost at pmd's prices, in credits, by provider; BYOK and operators' bots included, though never debited.",
		}, []string{"provider"}),
		committed: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "usage_records_committed_total",
			Help: "Usage records pmd committed; a record an agent sent again is not counted twice.",
		}),
	}
	reg.MustRegister(u.calls, u.tokens, u.refusals, u.cost, u.committed)
	return u
}

// knownReasons are the refusal reasons agents report; others count as "other".
var knownReasons = []string{wire.RefusedCredits, wire.RefusedRate, wire.RefusedProvider, wire.RefusedToken, wire.RefusedUpstream}

// bounded is v if it is one of known, else "other": an agent cannot grow a label set.
func bounded(v string, known []string) string {
	if slices.Contains(known, v) {
		return v
	}
	return "other"
}

// ModelCall counts one newly committed usage record: the call, its tokens and its cost in
// millionths of a credit. Safe for concurrent use, as every method here.
func (m *Metrics) ModelCall(provider, outcome string, tok wire.Tokens, cost int64) {
	if m == nil {
		return
	}
	provider = bounded(provider, wire.ModelProviders())
	outcome = bounded(outcome, []string{wire.OutcomeOK, wire.OutcomeError, wire.OutcomeCut})
	m.usage.calls.WithLabelValues(provider, outcome).Inc()
	for _, k := range []struct {
		kind string
		n    int64
	}{{"input", tok.Input}, {"output", tok.Output}, {"cache_read", tok.CacheRead}, {"cache_write", tok.CacheWrite}} {
		if k.n > 0 {
			m.usage.tokens.WithLabelValues(provider, k.kind).Add(float64(k.n))
		}
	}
	if cost > 0 {
		m.usage.cost.WithLabelValues(provider).Add(float64(cost) / 1e6)
	}
	m.usage.committed.Inc()
}

// ModelRefusals counts n calls an agent refused itself, by provider and reason.
func (m *Metrics) ModelRefusals(provider, reason string, n int64) {
	if m == nil || n <= 0 {
		return
	}
	m.usage.refusals.WithLabelValues(bounded(provider, wire.ModelProviders()), bounded(reason, knownReasons)).Add(float64(n))
}
