package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pocketmolt/pocketmolt/internal/wire"
)

func TestUsageMetrics(t *testing.T) {
	var none *Metrics
	none.ModelCall("anthropic", "ok", wire.Tokens{Input: 1}, 1)
	none.ModelRefusals("anthropic", "credits", 1)

	reg := prometheus.NewRegistry()
	m := &Metrics{usage: newUsageMetrics(reg)}
	m.ModelCall(wire.ProviderAnthropic, wire.OutcomeOK, wire.Tokens{Input: 100, Output: 20, CacheRead: 5}, 1_500_000)
	m.ModelCall(wire.ProviderAnthropic, wire.OutcomeCut, wire.Tokens{Output: 3}, 45)
	m.ModelCall("made-up", "whatever", wire.Tokens{}, 0)
	m.ModelRefusals(wire.ProviderOpenAI, wire.RefusedCredits, 4)
	m.ModelRefusals(wire.ProviderOpenAI, "made-up", 1)
	m.ModelRefusals(wire.ProviderOpenAI, wire.RefusedRate, 0)
	want := `
# HELP pocketmolt_model_calls_total Model calls bots made through their hosts' model endpoints, by provider and outcome (ok, error: the provider answered an error, cut: the answer broke off).
# TYPE pocketmolt_model_calls_total counter
pocketmolt_model_calls_total{outcome="cut",provider="anthropic"} 1
pocketmolt_model_calls_total{outcome="ok",provider="anthropic"} 1
pocketmolt_model_calls_total{outcome="other",provider="other"} 1
# HELP pocketmolt_model_tokens_total Tokens model calls used as their providers reported (or the agent estimated), by provider and kind (input, output, cache_read, cache_write).
# TYPE pocketmolt_model_tokens_total counter
pocketmolt_model_tokens_total{kind="cache_read",provider="anthropic"} 5
pocketmolt_model_tokens_total{kind="input",provider="anthropic"} 100
pocketmolt_model_tokens_total{kind="output",provider="anthropic"} 23
# HELP pocketmolt_model_refusals_total Model calls an agent refused itself, by provider and reason (credits, rate, provider, token, upstream).
# TYPE pocketmolt_model_refusals_total counter
pocketmolt_model_refusals_total{provider="openai",reason="credits"} 4
pocketmolt_model_refusals_total{provider="openai",reason="other"} 1
# HELP pocketmolt_model_cost_credits_total What model calls cost at pmd's prices, in credits, by provider; BYOK and operators' bots included, though never debited.
# TYPE pocketmolt_model_cost_credits_total counter
pocketmolt_model_cost_credits_total{provider="anthropic"} 1.500045
# HELP pocketmolt_usage_records_committed_total Usage records pmd committed; a record an agent sent again is not counted twice.
# TYPE pocketmolt_usage_records_committed_total counter
pocketmolt_usage_records_committed_total 3
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}
