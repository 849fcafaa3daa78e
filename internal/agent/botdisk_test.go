package agent

import (
	"context"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// measure runs one disk measurement of a bot, as the background loop does.
func (f *botsFixture) measure(t *testing.T, id string, limit int64) {
	t.Helper()
	n, err := f.m.measureDisk(id)
	f.m.recordDisk(id, n, err, diskLimit{limit, id}, -1)
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
	// It stays stopped, pass after pass, and a restart from pmd is refused.
	f.rt.reset()
	f.m.step(t.Context())
	srv := newBotsServer(t, f)
	resp := do(t, http.MethodPost, srv.URL+"/v1/bots/alpha/restart", nil, nil)
	assertAPIError(t, resp, http.StatusConflict, wire.CodeConflict)
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

// TestBotsDiskToMeasure: between measurements of every bot, a bot is measured again when the
// filesystem's free space has dropped by half the room it had left (at least diskSlack).
func TestBotsDiskToMeasure(t *testing.T) {
	const mib = 1 << 20
	f := newBotsFixture(t)
	now := f.clock.Now()
	readings := map[string]diskReading{
		"roomy":   {bytes: 90 * mib, at: now, free: 1000 * mib},          // limit 100: 10 MiB of room
		"tight":   {bytes: 100*mib - 100<<10, at: now, free: 1000 * mib}, // 100 KiB of room
		"over":    {bytes: 120 * mib, at: now, free: 1000 * mib},
		"nolimit": {bytes: 500 * mib, at: now, free: 1000 * mib},
		"nofree":  {bytes: 90 * mib, at: now, free: -1},
		"new":     {},
	}
	limits := map[string]diskLimit{}
	for id, r := range readings {
		limits[id] = diskLimit{bytes: 100 * mib}
		f.m.state(id).disk = r
	}
	limits["nolimit"] = diskLimit{}
	limits["nostate"] = diskLimit{bytes: 100 * mib}
	for _, tc := range []struct {
		free int64
		all  bool
		want []string
	}{
		{1000 * mib, false, []string{"new"}},
		{996 * mib, false, []string{"new", "tight"}},
		{995 * mib, false, []string{"new", "roomy", "tight"}},
		{999*mib + 768<<10, false, []string{"new"}},
		{999*mib + 512<<10, false, []string{"new"}},
		{999 * mib, false, []string{"new", "tight"}},
		{990 * mib, false, []string{"new", "roomy", "tight"}},
		{-1, false, []string{"new"}},
		{1000 * mib, true, []string{"new", "nofree", "nolimit", "over", "roomy", "tight"}},
	} {
		got := slices.Sorted(maps.Keys(f.m.toMeasure(limits, tc.free, tc.all)))
		if !slices.Equal(got, tc.want) {
			t.Errorf("free %d MiB, all %t: measure %v, want %v", tc.free/mib, tc.all, got, tc.want)
		}
	}
}

// The background loop measures a new bot at once and reports what it takes.
func TestBotsDiskLoop(t *testing.T) {
	f := newBotsFixture(t)
	f.m.SetInterval(10 * time.Millisecond)
	spec := testSpec("alpha", 1, true)
	spec.Resources.DiskBytes = 64 << 20
	f.want(spec)
	f.m.step(t.Context())
	if err := os.WriteFile(filepath.Join(f.dir, "bots", "alpha", "state", "db"), make([]byte, 3<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); f.m.disk(ctx) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(10 * time.Second)
	for f.state(t, "alpha").DiskUsage < 3<<20 {
		if time.Now().After(deadline) {
			t.Fatalf("disk use %d after 10 s, want at least 3 MiB", f.state(t, "alpha").DiskUsage)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
