package wire_test

import (
	"strings"
	"testing"

	"github.com/pocketmolt/pocketmolt/internal/wire"
)

func TestValidName(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want bool
	}{
		{"one letter", "a", true},
		{"one digit", "7", true},
		{"letters and digits", "web01", true},
		{"inner dash", "eu-west-1", true},
		{"double inner dash", "a--b", true},
		{"starts with digit", "1host", true},
		{"63 characters", strings.Repeat("a", 63), true},
		{"63 characters with dashes", "a" + strings.Repeat("-", 61) + "z", true},

		{"empty", "", false},
		{"64 characters", strings.Repeat("a", 64), false},
		{"leading dash", "-a", false},
		{"trailing dash", "a-", false},
		{"only a dash", "-", false},
		{"upper case", "Web", false},
		{"underscore", "a_b", false},
		{"dot", "a.b", false},
		{"space", "a b", false},
		{"leading space", " a", false},
		{"trailing newline", "a\n", false},
		{"non-ascii letter", "café", false},
		{"slash", "a/b", false},
		{"NUL byte", "a\x00b", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := wire.ValidName(tt.in); got != tt.want {
				t.Errorf("ValidName(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

// TestNameRuleStatesTheLimits keeps the message users see in step with what ValidName enforces.
func TestNameRuleStatesTheLimits(t *testing.T) {
	if !wire.ValidName(strings.Repeat("a", 63)) || wire.ValidName(strings.Repeat("a", 64)) {
		t.Fatal("ValidName no longer allows exactly 63 characters; update NameRule and this test")
	}
	for _, want := range []string{"1-63", "lower-case", "digits", "dash"} {
		if !strings.Contains(wire.NameRule, want) {
			t.Errorf("NameRule = %q, want it to mention %q", wire.NameRule, want)
		}
	}
}

func TestLowerHex(t *testing.T) {
	for _, tt := range []struct {
		s        string
		min, max int
		want     bool
	}{
		{"0123456789abcdef", 16, 64, true},
		{"0123456789ABCDEF", 16, 64, false},
		{"0123456789abcde", 16, 64, false},
		{"", 1, 64, false},
		{"g", 1, 64, false},
		{"a\x00", 1, 64, false},
		{strings.Repeat("f", 65), 1, 64, false},
	} {
		if got := wire.LowerHex(tt.s, tt.min, tt.max); got != tt.want {
			t.Errorf("LowerHex(%q, %d, %d) = %v", tt.s, tt.min, tt.max, got)
		}
	}
}
