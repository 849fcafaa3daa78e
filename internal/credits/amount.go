// Package credits keeps each customer's append-only credit ledger: a paid period's included
// credits, operators' adjustments, and debits for metered model usage. A credit is worth one
// US dollar of model usage; amounts are kept in millionths of a credit, so a single model call
// costs a whole number of them.
package credits

import (
	"fmt"
	"strconv"
	"strings"
)

// Amount is a number of credits in millionths.
type Amount int64

// Micro is one credit in Amount's units.
const Micro Amount = 1_000_000

// Parse reads an amount written with up to six decimals ("10", "9.5", "-0.000001").
func Parse(s string) (Amount, error) {
	t := strings.TrimSpace(s)
	neg := strings.HasPrefix(t, "-")
	t = strings.TrimPrefix(strings.TrimPrefix(t, "-"), "+")
	whole, frac, _ := strings.Cut(t, ".")
	if whole == "" && frac == "" || len(frac) > 6 || strings.ContainsAny(whole+frac, "+-_ ") || len(whole) > 12 {
		return 0, fmt.Errorf("amount %q: want a number such as 10.00 with at most 6 decimals", s)
	}
	if whole == "" {
		whole = "0"
	}
	w, err := strconv.ParseInt(whole, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("amount %q: want a number such as 10.00", s)
	}
	var f int64
	if frac != "" {
		f, err = strconv.ParseInt(frac+strings.Repeat("0", 6-len(frac)), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("amount %q: want a number such as 10.00", s)
		}
	}
	a := Amount(w)*Micro + Amount(f)
	if neg {
		a = -a
	}
	return a, nil
}

// String writes the amount with two decimals, or more when it needs them: "10.00", "-0.0042".
func (a Amount) String() string {
	sign := ""
	if a < 0 {
		sign, a = "-", -a
	}
	frac := strings.TrimRight(fmt.Sprintf("%06d", int64(a%Micro)), "0")
	for len(frac) < 2 {
		frac += "0"
	}
	return fmt.Sprintf("%s%d.%s", sign, int64(a/Micro), frac)
}

// Dollars is the amount as a customer reads it: "$9.42" (rounded down to the cent).
func (a Amount) Dollars() string {
	sign := ""
	if a < 0 {
		sign, a = "-", -a
	}
	cents := int64(a / (Micro / 100))
	return fmt.Sprintf("%s$%d.%02d", sign, cents/100, cents%100)
}
