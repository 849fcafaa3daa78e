package prices_test

import (
	"math"
	"testing"

	"github.com/pocketmolt/pocketmolt/internal/prices"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

func TestCost(t *testing.T) {
	sonnet := wire.Price{Input: 3_000_000, Output: 15_000_000, CacheRead: 300_000, CacheWrite: 3_750_000}
	for _, tc := range []struct {
		name string
		p    wire.Price
		tok  wire.Tokens
		want int64
	}{
		{"nothing used", sonnet, wire.Tokens{}, 0},
		{"a free model", wire.Price{}, wire.Tokens{Input: 1_000_000, Output: 5}, 0},
		{"one input token rounds up to a millionth", sonnet, wire.Tokens{Input: 1}, 3},
		{"one cache read: 0.3 millionths rounds up to 1", sonnet, wire.Tokens{CacheRead: 1}, 1},
		{"parts below a millionth are summed before rounding", sonnet, wire.Tokens{CacheRead: 3}, 1},
		{"a million of each", sonnet, wire.Tokens{Input: 1_000_000, Output: 1_000_000, CacheRead: 1_000_000, CacheWrite: 1_000_000}, 22_050_000},
		{"a typical call", sonnet, wire.Tokens{Input: 1234, Output: 567, CacheRead: 89, CacheWrite: 10}, 12_272},
		{"exact: no rounding", sonnet, wire.Tokens{Input: 1_000, Output: 100}, 4_500},
		{"negative counts count as zero", sonnet, wire.Tokens{Input: -5_000_000, Output: 1}, 15},
		{"negative prices count as zero", wire.Price{Input: -3_000_000, Output: 1_000_000}, wire.Tokens{Input: 10, Output: 10}, 10},
		{"huge counts do not overflow", sonnet, wire.Tokens{Input: math.MaxInt64, Output: math.MaxInt64}, math.MaxInt64},
		{"a billion tokens at Opus output", wire.Price{Output: 75_000_000}, wire.Tokens{Output: 1_000_000_000}, 75_000_000_000},
		{"large but representable", wire.Price{Input: 1_000_000}, wire.Tokens{Input: math.MaxInt64}, math.MaxInt64},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := prices.Cost(tc.p, tc.tok); got != tc.want {
				t.Errorf("Cost = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestLookup(t *testing.T) {
	tab := prices.Table{Models: map[string]wire.Price{"anthropic/a": {Input: 1}}, Default: wire.Price{Input: 9}}
	if p, ok := tab.Lookup("anthropic", "a"); !ok || p.Input != 1 {
		t.Errorf("Lookup(anthropic, a) = %+v, %t", p, ok)
	}
	if p, ok := tab.Lookup("openai", "a"); ok || p.Input != 9 {
		t.Errorf("Lookup(openai, a) = %+v, %t; want the default", p, ok)
	}
}
