package credits

import (
	"errors"
	"strings"
)

// MaxDecimals is the finest an amount can be: pmd keeps credits in millionths.
const MaxDecimals = 6

// maxWholeDigits bounds the whole part, as pmd does, so no amount overflows its millionths.
const maxWholeDigits = 12

// Errors of ParseAmount; the command puts the flag and the value in front of them.
var (
	errNotNumber = errors.New("want a number of credits such as 5 or -2.50")
	errDecimals  = errors.New("use at most 6 decimals (a millionth of a credit)")
	errTooLarge  = errors.New("too large")
	errZero      = errors.New("zero changes nothing: give a positive amount to add credits or a negative one to take them away")
)

// ParseAmount checks that s is a decimal number of credits — an optional sign, digits, and
// at most six decimals — that is not zero, and returns it in the plain form pmd reads: a
// minus when negative, the whole part without leading zeros, and the decimals as written
// ("+5" is "5", ".5" is "0.5", "-02.50" is "-2.50"). Exponents, digit separators and
// anything but ASCII digits are refused, so what is sent is what the operator meant.
func ParseAmount(s string) (string, error) {
	t := strings.TrimSpace(s)
	neg := false
	if t != "" && (t[0] == '+' || t[0] == '-') {
		neg = t[0] == '-'
		t = t[1:]
	}
	whole, frac, hasDot := strings.Cut(t, ".")
	if whole == "" && frac == "" || !digits(whole) || !digits(frac) {
		return "", errNotNumber
	}
	if len(frac) > MaxDecimals {
		return "", errDecimals
	}
	whole = strings.TrimLeft(whole, "0")
	if len(whole) > maxWholeDigits {
		return "", errTooLarge
	}
	if whole == "" && strings.Trim(frac, "0") == "" {
		return "", errZero
	}
	if whole == "" {
		whole = "0"
	}
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	b.WriteString(whole)
	if hasDot && frac != "" {
		b.WriteByte('.')
		b.WriteString(frac)
	}
	return b.String(), nil
}

// digits reports whether s is only ASCII digits (an empty s is).
func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// AmountFlag is a pflag.Value holding an amount checked by ParseAmount, in its plain form,
// so a bad --amount is refused while flags are parsed, before anything is sent.
type AmountFlag string

// String implements pflag.Value.
func (a *AmountFlag) String() string { return string(*a) }

// Set implements pflag.Value.
func (a *AmountFlag) Set(s string) error {
	v, err := ParseAmount(s)
	if err != nil {
		return err
	}
	*a = AmountFlag(v)
	return nil
}

// Type implements pflag.Value; it names the value in help ("--amount credits").
func (a *AmountFlag) Type() string { return "credits" }
