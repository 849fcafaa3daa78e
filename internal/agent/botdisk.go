package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pocketmolt/pocketmolt/internal/bytesize"
	"github.com/pocketmolt/pocketmolt/internal/nofollow"
	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// A bot's disk use is what its state and workspace directories take on the host (allocated
// blocks, a hard-linked file once, links never followed). It is measured apart from
// convergence, like memory, and held to the limit in the bot's spec by the agent: over it, the
// bot is stopped and stays stopped until it fits again. This is a limit the agent checks, not
// a filesystem quota: between two measurements a bot can write past it.
//
// Measuring walks every file, so it is not done often for every bot. The free space of the
// host filesystem is read every diskTick instead (a statfs), and a bot is measured at once
// when the free space has dropped, since its last measurement, by half the room it had left
// under its limit (at least diskSlack): it may have written that much. So no bot passes its
// limit unseen by more than diskSlack plus what it writes in a tick and a measurement — unless
// other writers free space on the same filesystem at the same time, which hides the drop
// until the next measurement of every bot, every diskEvery (which also sees files deleted).
// Every bot is measured more often when the filesystem runs low.
const (
	diskEvery = time.Minute
	diskTick  = 500 * time.Millisecond
	diskSlack = 1 << 20
	// diskReserve is the free space under which every bot is measured every diskLowEvery.
	diskReserve  = 1 << 30
	diskLowEvery = 10 * time.Second
)

// diskReading is a bot's last disk measurement.
type diskReading struct {
	bytes int64
	err   string // why it could not be measured; "" when it was
	at    time.Time
	// free is the filesystem's free space read before the measurement; -1 unknown.
	free int64
}

// measureDisk reports what bot id's writable directories take. Missing ones take nothing.
func (m *Bots) measureDisk(id string) (int64, error) {
	root, err := nofollow.Open(m.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer root.Close()
	bot, err := root.OpenDir(id)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer bot.Close()
	var u nofollow.Usage
	for _, name := range []string{stateDir, workspaceDir} {
		d, err := bot.OpenDir(name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return 0, err
		}
		err = u.Add(d)
		d.Close()
		if err != nil {
			return 0, err
		}
	}
	return u.Bytes, nil
}

// disk measures the desired bots' disk use in the background until ctx ends, and kicks
// convergence when a bot goes over its limit or back under it.
func (m *Bots) disk(ctx context.Context) {
	var lastAll time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(min(diskTick, m.interval)):
		}
		limits := m.diskLimits()
		if len(limits) == 0 {
			continue
		}
		free, total, err := freeSpace(m.dir)
		if err != nil {
			free = -1
		}
		now := m.now()
		every := diskEvery
		if free >= 0 && free < min(diskReserve, total/20) {
			every = diskLowEvery
		}
		all := now.Sub(lastAll) >= every
		for id, l := range m.toMeasure(limits, free, all) {
			if ctx.Err() != nil {
				return
			}
			n, err := m.measureDisk(id)
			m.recordDisk(id, n, err, l, free)
		}
		if all {
			lastAll = now
		}
	}
}

// toMeasure picks the bots of limits to measure now: all of them, or those not measured yet
// and those the drop of free space to free may have taken past their limit.
func (m *Bots) toMeasure(limits map[string]diskLimit, free int64, all bool) map[string]diskLimit {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]diskLimit{}
	for id, l := range limits {
		s, ok := m.states[id]
		if !ok {
			continue // measured once convergence has seen it
		}
		r := s.disk
		switch {
		case all, r.at.IsZero():
			out[id] = l
		case l.bytes > 0 && r.err == "" && r.bytes <= l.bytes && free >= 0 && r.free >= 0:
			if r.free-free >= max((l.bytes-r.bytes)/2, diskSlack) {
				out[id] = l
			}
		}
	}
	return out
}

// diskLimit is a bot's disk limit (0 for none) and its name, for messages.
type diskLimit struct {
	bytes int64
	name  string
}

// diskLimits are the desired bots' disk limits, by bot id.
func (m *Bots) diskLimits() map[string]diskLimit {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.desired == nil {
		return nil
	}
	out := make(map[string]diskLimit, len(m.desired.Bots))
	for _, b := range m.desired.Bots {
		if validID(b.ID) {
			out[b.ID] = diskLimit{b.Resources.DiskBytes, b.Name}
		}
	}
	return out
}

// recordDisk stores a reading; a bot that went over its limit is reported and converged at
// once, as is one back under it.
func (m *Bots) recordDisk(id string, n int64, err error, l diskLimit, free int64) {
	limit := l.bytes
	m.mu.Lock()
	s, ok := m.states[id]
	if !ok {
		m.mu.Unlock()
		return
	}
	before := overLimit(s.disk, limit)
	s.disk = diskReading{bytes: n, at: m.now(), free: free}
	if err != nil {
		s.disk.err = err.Error()
	}
	s.DiskUsage = n
	after := overLimit(s.disk, limit)
	m.mu.Unlock()
	if before == after {
		return
	}
	if after {
		msg := diskProblem(s.disk, limit, l.name)
		m.log.Warn("bot over its disk limit", "bot_id", id, "disk_usage", n, "disk_limit", limit, "error", s.disk.err)
		m.emit([]wire.BotEvent{{BotID: id, Action: wire.EventDiskLimit, Detail: msg, Time: m.now()}}, nil)
	} else {
		m.log.Info("bot back under its disk limit", "bot_id", id, "disk_usage", n, "disk_limit", limit)
	}
	m.Kick()
}

// heldForDisk says why bot id must not run for its disk use, or "" when it may.
func (m *Bots) heldForDisk(id string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.states[id]
	if !ok || m.desired == nil {
		return ""
	}
	for _, b := range m.desired.Bots {
		if b.ID == id {
			return diskProblem(s.disk, b.Resources.DiskBytes, b.Name)
		}
	}
	return ""
}

// overLimit reports whether a reading keeps the bot from running: over its limit, or not
// measurable (fail closed).
func overLimit(r diskReading, limit int64) bool {
	return r.err != "" || limit > 0 && r.bytes > limit
}

// diskProblem says why a reading keeps a bot stopped and what to do; "" when it does not.
func diskProblem(r diskReading, limit int64, name string) string {
	switch {
	case r.err != "":
		return "cannot measure the bot's disk use, so it is kept stopped: " + r.err
	case limit > 0 && r.bytes > limit:
		if name == "" {
			name = "<bot>"
		}
		return fmt.Sprintf("disk limit: its state and workspace take %s, over its limit of %s; it is stopped until they fit: raise its limit (pmctl bots edit %s --disk SIZE) or delete it with its files (pmctl bots delete %s --purge)",
			bytesize.Format(r.bytes), bytesize.Format(limit), name, name)
	}
	return ""
}

// freeSpace is the space left to unprivileged writers on the filesystem holding dir, and its
// size.
func freeSpace(dir string) (free, total int64, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, 0, err
	}
	return int64(st.Bavail) * st.Bsize, int64(st.Blocks) * st.Bsize, nil
}
