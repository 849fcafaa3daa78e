package credits_test

import (
	"math/big"
	"regexp"
	"strings"
	"testing"

	"github.com/pocketmolt/pocketmolt/internal/pmctl/credits"
)

func TestParseAmount(t *testing.T) {
	for in, want := range map[string]string{
		"5": "5", "+5": "5", "-2.50": "-2.50", ".5": "0.5", "-.000001": "-0.000001", "1.": "1",
		"007": "7", "-02.50": "-2.50", " 3.25\t": "3.25", "999999999999.999999": "999999999999.999999",
		"0.10": "0.10",
	} {
		got, err := credits.ParseAmount(in)
		if err != nil || got != want {
			t.Errorf("ParseAmount(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, tc := range []struct{ in, err string }{
		{"", "want a number"}, {"-", "want a number"}, {".", "want a number"}, {"+-1", "want a number"},
		{"ten", "want a number"}, {"1e3", "want a number"}, {"1_000", "want a number"}, {"1,5", "want a number"},
		{"0x10", "want a number"}, {"1.2.3", "want a number"}, {"١", "want a number"}, {"- 1", "want a number"},
		{"1.2345678", "at most 6 decimals"}, {"1000000000000", "too large"},
		{"0", "zero changes nothing"}, {"-0.000", "zero changes nothing"}, {"+.0", "zero changes nothing"}, {"000", "zero changes nothing"},
	} {
		got, err := credits.ParseAmount(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("ParseAmount(%q) = %q, %v; want an error saying %q", tc.in, got, err, tc.err)
		}
	}
}

// amountRE is the grammar ParseAmount accepts, written apart from it to check it.
var amountRE = regexp.MustCompile(`^[+-]?([0-9]*)(\.([0-9]*))?$`)

func FuzzParseAmount(f *testing.F) {
	for _, s := range []string{"5", "-2.50", "+.5", "1.", "0", "-0.0000001", "1e3", "١", " 7 ", "0000000000000000001", "9999999999999", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := credits.ParseAmount(s)
		trimmed := strings.TrimSpace(s)
		m := amountRE.FindStringSubmatch(trimmed)
		valid := m != nil && m[1]+m[3] != "" && len(m[3]) <= 6 && len(strings.TrimLeft(m[1], "0")) <= 12 &&
			strings.Trim(m[1]+m[3], "0") != ""
		if valid != (err == nil) {
			t.Fatalf("ParseAmount(%q) = %q, %v; the grammar says valid=%v", s, got, err, valid)
		}
		if err != nil {
			return
		}
		// The plain form means the same number, is already plain, and pmd's grammar reads it.
		want, ok := new(big.Rat).SetString(strings.TrimPrefix(strings.TrimSuffix(trimmed, "."), "+"))
		have, ok2 := new(big.Rat).SetString(got)
		if !ok || !ok2 || want.Cmp(have) != 0 {
			t.Fatalf("ParseAmount(%q) = %q, a different number", s, got)
		}
		if again, err := credits.ParseAmount(got); err != nil || again != got {
			t.Fatalf("ParseAmount(%q) = %q, which parses to %q, %v", s, got, again, err)
		}
		if !amountRE.MatchString(got) || strings.HasPrefix(got, "+") || strings.HasSuffix(got, ".") {
			t.Fatalf("ParseAmount(%q) = %q, not plain", s, got)
		}
	})
}
