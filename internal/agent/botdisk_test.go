package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// measure runs one disk measurement of a bot, as the background loop does.
func (f *botsFixture) measure(t *testing.T, id string, limit int64) {
	t.Helper()
	n, err := f.m.measureDisk(id)
	f.m.recordDisk(id, n, err, diskLimit{limit, id})
}

func TestBotsDiskLimit(t *testing.T) {
	const limit = 1 << 20
	f := newBotsFixture(t)
	events := collectEvents(f.m)
	spec := testSpec("alpha", 1, true)
	spec.Resources.DiskBytes = limit
	f.want(spec)
	f.m.step(t.Context())
	f.measure(t, "alpha", limit)
	st := f.state(t, "alpha")
	assertStatus(t, st, wire.BotRunning, wire.HealthHealthy)
	if st.DiskUsage <= 0 || st.DiskUsage > 64<<10 {
		t.Errorf("a new bot's disk use = %d", st.DiskUsage)
	}

	// The bot writes 2 MiB: it is reported, stopped, and says why.
	big := filepath.Join(f.dir, "bots", "alpha", "workspace", "big")
	if err := os.WriteFile(big, make([]byte, 2<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	f.measure(t, "alpha", limit)
	ev := waitEvent(t, events, wire.EventDiskLimit)
	if ev.BotID != "alpha" || !strings.Contains(ev.Detail, "over its limit of 1MiB") {
		t.Fatalf("event %+v", ev)
	}
	f.rt.reset()
	f.m.step(t.Context())
	assertCalls(t, f.rt, "Stop alpha")
	st = f.state(t, "alpha")
	assertStatus(t, st, wire.BotFailed, "")
	if st.DiskUsage < 2<<20 {
		t.Errorf("disk use %d, want at least 2 MiB", st.DiskUsage)
	}
	for _, want := range []string{"disk limit", "take 2.0MiB", "limit of 1MiB", "pmctl bots edit alpha --disk", "pmctl bots delete alpha --purge"} {
		if !strings.Contains(st.LastError, want) {
			t.Errorf("last error %q does not say %q", st.LastError, want)
		}
	}
	// It stays stopped, pass after pass.
	f.rt.reset()
	f.m.step(t.Context())
	assertCalls(t, f.rt)
	assertStatus(t, f.state(t, "alpha"), wire.BotFailed, "")

	// A higher limit lets it run again.
	spec.Resources.DiskBytes = 4 << 20
	f.want(spec)
	f.m.step(t.Context())
	assertCalls(t, f.rt, "Start alpha")
	assertStatus(t, f.state(t, "alpha"), wire.BotRunning, wire.HealthHealthy)

	// Back to the small limit, then the file goes: under it again, it runs.
	spec.Resources.DiskBytes = limit
	f.want(spec)
	f.m.step(t.Context())
	assertStatus(t, f.state(t, "alpha"), wire.BotFailed, "")
	if err := os.Remove(big); err != nil {
		t.Fatal(err)
	}
	f.measure(t, "alpha", limit)
	f.m.step(t.Context())
	assertStatus(t, f.state(t, "alpha"), wire.BotRunning, wire.HealthHealthy)
}

// A bot whose disk use cannot be measured is kept stopped: it must not escape its limit by
// hiding its files.
func TestBotsDiskUnmeasurableFailsClosed(t *testing.T) {
	f := newBotsFixture(t)
	spec := testSpec("alpha", 1, true)
	spec.Resources.DiskBytes = 1 << 30
	f.want(spec)
	f.m.step(t.Context())
	// Deeper than the walk goes.
	p := filepath.Join(f.dir, "bots", "alpha", "state")
	for range 600 {
		p = filepath.Join(p, "d")
	}
	if err := os.MkdirAll(p, 0o700); err != nil {
		t.Fatal(err)
	}
	f.measure(t, "alpha", spec.Resources.DiskBytes)
	f.m.step(t.Context())
	st := f.state(t, "alpha")
	assertStatus(t, st, wire.BotFailed, "")
	if !strings.Contains(st.LastError, "cannot measure") || !strings.Contains(st.LastError, "too deep") {
		t.Errorf("last error %q", st.LastError)
	}
}

// waitEvent returns the first event with action the manager reports.
func waitEvent(t *testing.T, ch <-chan wire.Events, action string) wire.BotEvent {
	t.Helper()
	for {
		for _, e := range nextEvents(t, ch).Events {
			if e.Action == action {
				return e
			}
		}
	}
}
