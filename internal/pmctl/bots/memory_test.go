package bots

import (
	"testing"
	"time"
)

func TestUptime(t *testing.T) {
	for d, want := range map[time.Duration]string{
		-time.Second:                          "0s",
		0:                                     "0s",
		45*time.Second + 900*time.Millisecond: "45s",
		3*time.Minute + 12*time.Second:        "3m12s",
		2*time.Hour + 5*time.Minute + 59*time.Second: "2h5m",
		76 * time.Hour: "3d4h",
	} {
		if got := uptime(d); got != want {
			t.Errorf("uptime(%v) = %q, want %q", d, got, want)
		}
	}
}
