// Package bytesize reads and writes sizes in bytes the way operators type them: bytes, or a
// number and a binary unit ("2GiB", "1536MiB", "2G" as in docker run --memory).
package bytesize

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// units are the suffixes Parse accepts, lower-cased. Every multiple is binary: "2G", "2GB"
// and "2GiB" all mean 2×1024³ bytes.
var units = map[string]float64{
	"": 1, "b": 1,
	"k": 1 << 10, "kb": 1 << 10, "ki": 1 << 10, "kib": 1 << 10,
	"m": 1 << 20, "mb": 1 << 20, "mi": 1 << 20, "mib": 1 << 20,
	"g": 1 << 30, "gb": 1 << 30, "gi": 1 << 30, "gib": 1 << 30,
	"t": 1 << 40, "tb": 1 << 40, "ti": 1 << 40, "tib": 1 << 40,
}

// Parse reads a size: bytes ("2147483648") or a number and a binary unit ("2GiB", "1536MiB",
// "2G", "1.5 GiB"). It refuses zero, negative and fractional-byte sizes; its errors do not
// repeat s, which callers quote with the setting's name.
func Parse(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := strings.IndexFunc(t, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if i < 0 {
		i = len(t)
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	mult, ok := units[unit]
	if num == "" || !ok {
		return 0, errors.New("not a size: want bytes or a number with a unit, like 2GiB or 1536MiB")
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("not a size: %w", errors.Unwrap(err))
	}
	n := v * mult
	switch {
	case n < 1:
		return 0, errors.New("must be more than zero")
	case n >= math.MaxInt64:
		return 0, errors.New("too large")
	case n != math.Trunc(n):
		return 0, errors.New("not a whole number of bytes")
	}
	return int64(n), nil
}

// Format writes n bytes in the largest binary unit it reaches, exactly when it can ("10GiB",
// "100B") and to a tenth otherwise ("1.5GiB").
func Format(n int64) string {
	if n < 0 {
		return "-" + Format(-n)
	}
	const names = "KMGTPE"
	unit, exp := int64(1), -1
	for exp < len(names)-1 && n/unit >= 1024 {
		unit *= 1024
		exp++
	}
	if exp < 0 {
		return strconv.FormatInt(n, 10) + "B"
	}
	suffix := string(names[exp]) + "iB"
	if n%unit == 0 {
		return strconv.FormatInt(n/unit, 10) + suffix
	}
	return strconv.FormatFloat(float64(n)/float64(unit), 'f', 1, 64) + suffix
}
