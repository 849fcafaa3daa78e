package cmdutil

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/pocketmolt/pocketmolt/internal/output"
)

// memoryUnits are the suffixes ParseMemory accepts, lower-cased. Every multiple is binary,
// as in docker run --memory: "2G", "2GB" and "2GiB" all mean 2×1024³ bytes.
var memoryUnits = map[string]float64{
	"": 1, "b": 1,
	"k": 1 << 10, "kb": 1 << 10, "ki": 1 << 10, "kib": 1 << 10,
	"m": 1 << 20, "mb": 1 << 20, "mi": 1 << 20, "mib": 1 << 20,
	"g": 1 << 30, "gb": 1 << 30, "gi": 1 << 30, "gib": 1 << 30,
	"t": 1 << 40, "tb": 1 << 40, "ti": 1 << 40, "tib": 1 << 40,
}

// ParseMemory reads a memory size: bytes ("2147483648") or a number and a binary unit
// ("2GiB", "1536MiB", "2G", "1.5 GiB"). It refuses zero, negative and fractional-byte sizes;
// its errors do not repeat s, which the flag parser already quotes.
func ParseMemory(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := strings.IndexFunc(t, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if i < 0 {
		i = len(t)
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	mult, ok := memoryUnits[unit]
	if num == "" || !ok {
		return 0, errors.New("not a memory size: want bytes or a number with a unit, like 2GiB or 1536MiB")
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("not a memory size: %w", errors.Unwrap(err))
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

// MemoryFlag is a pflag.Value holding a size in bytes, read by ParseMemory; zero means unset.
type MemoryFlag int64

func (m *MemoryFlag) String() string {
	if *m == 0 {
		return ""
	}
	return output.Bytes(uint64(*m))
}

func (m *MemoryFlag) Set(s string) error {
	n, err := ParseMemory(s)
	if err != nil {
		return err
	}
	*m = MemoryFlag(n)
	return nil
}

func (m *MemoryFlag) Type() string { return "size" }
