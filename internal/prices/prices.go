// Package prices turns the tokens a model call used into what it costs, in millionths of a
// credit, from a per-model price table. pmd's count is the one debited; the agent uses the
// same arithmetic to estimate what a bot spent since pmd last counted.
package prices

import (
	"math/big"

	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// perMillion is the token count a Price is quoted for.
const perMillion = 1_000_000

// Table is the price of each model ("provider/model") and of a model it lacks.
type Table struct {
	Models  map[string]wire.Price
	Default wire.Price
}

// Lookup is model's price, and whether the table has it (otherwise it is the default).
func (t Table) Lookup(provider, model string) (wire.Price, bool) {
	if p, ok := t.Models[provider+"/"+model]; ok {
		return p, true
	}
	return t.Default, false
}

// Cost is what tok costs at p, in millionths of a credit, rounded up to a whole millionth:
// a call is never free because its parts are each below one. Negative counts count as zero.
func Cost(p wire.Price, tok wire.Tokens) int64 {
	var sum, x big.Int
	for _, part := range [...]struct{ n, price int64 }{
		{tok.Input, p.Input}, {tok.Output, p.Output}, {tok.CacheRead, p.CacheRead}, {tok.CacheWrite, p.CacheWrite},
	} {
		if part.n <= 0 || part.price <= 0 {
			continue
		}
		x.Mul(big.NewInt(part.n), big.NewInt(part.price))
		sum.Add(&sum, &x)
	}
	if sum.Sign() == 0 {
		return 0
	}
	q, r := new(big.Int).QuoRem(&sum, big.NewInt(perMillion), new(big.Int))
	if r.Sign() > 0 {
		q.Add(q, big.NewInt(1))
	}
	if !q.IsInt64() {
		return 1<<63 - 1
	}
	return q.Int64()
}
