package output

import (
	"fmt"
	"math"
	"time"
)

// Timestamp is the absolute form of t in tables: RFC 3339 in UTC, second precision.
func Timestamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// Ago says how long before now t was, roughly ("just now", "2s ago", "3m ago", "5h ago",
// "4d ago"); a time in the future reads "in 5m".
func Ago(now, t time.Time) string {
	d := now.Sub(t)
	if d < 0 {
		return "in " + roughly(-d)
	}
	if d < time.Second {
		return "just now"
	}
	return roughly(d) + " ago"
}

func roughly(d time.Duration) string {
	// Round at the unit shown, so a token valid for 9m59s more reads "in 10m".
	switch {
	case d < time.Minute-time.Second/2:
		d = d.Round(time.Second)
	case d < time.Hour-30*time.Second:
		d = d.Round(time.Minute)
	case d < 48*time.Hour-30*time.Minute:
		d = d.Round(time.Hour)
	default:
		d = d.Round(24 * time.Hour)
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", max(1, int(d/time.Second)))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d/time.Hour))
	default:
		return fmt.Sprintf("%dd", int(d/(24*time.Hour)))
	}
}

// Bytes formats n with binary units: "512 B", "7.8 GiB".
func Bytes(n uint64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	units := []string{"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	v := float64(n)
	i := -1
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	if v >= 100 || v == math.Trunc(v) {
		return fmt.Sprintf("%.0f %s", v, units[i])
	}
	return fmt.Sprintf("%.1f %s", v, units[i])
}
