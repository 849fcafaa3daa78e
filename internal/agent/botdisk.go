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
// Measuring walks every file, so it is not done on every pass. The host filesystem's free
// space is read on every pass instead (a statfs), and the bots are measured at once when it
// has dropped by half the smallest room any bot had left at the last measurement (so no bot
// can have passed its limit unseen by more than what it writes in one pass and one walk), or
// when it runs low; and every diskEvery in any case, which also sees files deleted.
const (
	diskEvery = time.Minute
	// diskReserve is the free space under which bots are measured every few passes.
	diskReserve = 1 << 30
)

// diskReading is a bot's last disk measurement.
type diskReading struct {
	bytes int64
	err   string // why it could not be measured; "" when it was
	at    time.Time
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
	var last time.Time
	var lastFree int64 = -1
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(m.interval):
		}
		free, total, statErr := freeSpace(m.dir)
		limits := m.diskLimits()
		if len(limits) == 0 {
			continue
		}
		now := m.now()
		need := now.Sub(last) >= diskEvery || m.unmeasured(limits)
		if !need && statErr == nil {
			room := m.smallestRoom(limits)
			drop := lastFree - free
			low := free < min(diskReserve, total/20)
			need = room >= 0 && drop > 0 && drop >= room/2 || low && now.Sub(last) >= 10*m.interval
		}
		if !need {
			continue
		}
		for id, l := range limits {
			if ctx.Err() != nil {
				return
			}
			n, err := m.measureDisk(id)
			m.recordDisk(id, n, err, l)
		}
		last, lastFree = now, free
	}
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

// unmeasured reports whether a bot of limits has no reading yet.
func (m *Bots) unmeasured(limits map[string]diskLimit) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for id := range limits {
		if s, ok := m.states[id]; !ok || s.disk.at.IsZero() {
			return true
		}
	}
	return false
}

// smallestRoom is the least any bot under its limit had left at its last reading; -1 when no
// bot has a limit it is under.
func (m *Bots) smallestRoom(limits map[string]diskLimit) int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	room := int64(-1)
	for id, l := range limits {
		limit := l.bytes
		s, ok := m.states[id]
		if !ok || limit <= 0 || s.disk.bytes > limit {
			continue
		}
		if r := limit - s.disk.bytes; room < 0 || r < room {
			room = r
		}
	}
	return room
}

// recordDisk stores a reading; a bot that went over its limit is reported and converged at
// once, as is one back under it.
func (m *Bots) recordDisk(id string, n int64, err error, l diskLimit) {
	limit := l.bytes
	m.mu.Lock()
	s, ok := m.states[id]
	if !ok {
		m.mu.Unlock()
		return
	}
	before := overLimit(s.disk, limit)
	s.disk = diskReading{bytes: n, at: m.now()}
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
