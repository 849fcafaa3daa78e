package usage

import (
	"testing"

	"github.com/pocketmolt/pocketmolt/internal/wire"
)

func TestTotal(t *testing.T) {
	tests := []struct {
		name          string
		costs         []string
		cost, debited string
		ok            bool
	}{
		{"same places", []string{"0.10", "0.25"}, "0.35", "0.35", true},
		{"widest places win", []string{"1.3", "1.0145", "2"}, "4.3145", "4.3145", true},
		{"negative", []string{"1.00", "-0.25"}, "0.75", "0.75", true},
		{"exponent", []string{"1e3"}, "", "", false},
		{"fraction", []string{"1/3"}, "", "", false},
		{"empty", []string{"0.1", ""}, "", "", false},
		{"word", []string{"free"}, "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rows []wire.UsageRow
			for _, c := range tt.costs {
				rows = append(rows, wire.UsageRow{Calls: 2, Errors: 1, Tokens: wire.Tokens{Input: 10, Output: 5, CacheRead: 3, CacheWrite: 1}, Cost: c, Debited: c})
			}
			got, ok := total(rows)
			if ok != tt.ok {
				t.Fatalf("ok %v, want %v (%+v)", ok, tt.ok, got)
			}
			if !ok {
				return
			}
			n := int64(len(rows))
			if got.Cost != tt.cost || got.Debited != tt.debited || got.Calls != 2*n || got.Errors != n ||
				got.Tokens != (wire.Tokens{Input: 10 * n, Output: 5 * n, CacheRead: 3 * n, CacheWrite: n}) {
				t.Errorf("total %+v, want cost %s", got, tt.cost)
			}
		})
	}
}

func TestCheckPeriod(t *testing.T) {
	for _, s := range []string{"1h", "24h", "7d", "366d", "8784h"} {
		if err := checkPeriod(s); err != nil {
			t.Errorf("checkPeriod(%q): %v", s, err)
		}
	}
	for _, s := range []string{"", "0h", "0d", "367d", "8785h", "7", "d", "7D", "1w", "-1d", "+1d", "1.5d", "99999999d", "1h30m"} {
		if err := checkPeriod(s); err == nil {
			t.Errorf("checkPeriod(%q) accepted it", s)
		}
	}
}
