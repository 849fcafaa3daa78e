// Package spool is the agent's durable spool of usage records: every metered model call is
// written and fsynced here before the bot's answer finishes, shipped to pmd in batches, and
// forgotten only once pmd has committed it.
//
// Records live in numbered segment files (00000000000000000001.seg, …) of checksummed
// frames (see frame.go). Appends go to the last segment, which rotates at
// Config.SegmentBytes; concurrent Appends share one write and one fsync (group commit). Acks
// are kept in memory only, never written: a segment is deleted once every record in it is
// acked and it is no longer the one being written, and when the segment being written is
// fully acked the spool rotates so that it can go too. After a crash, every record still
// on disk is shipped again, acked or not; pmd commits each record id once, so a re-sent
// record is never counted twice.
//
// Recovery (Open) keeps every frame whose checksum holds. A torn tail (a write cut short)
// is cut off so that appends continue after the last good record; a damaged run in the
// middle (a flipped bit) loses the record it hits, and the frames after it are found again
// by their magic and kept. A crash can leave whole frames of a group whose fsync never
// returned: they are kept, since they are calls that really happened; nothing is kept that
// was not appended.
//
// Memory is bounded: at most Config.MemRecords unacked records are held in memory; the rest
// stay on disk and are read back as the oldest ones are acked. Disk is bounded:
// Config.MaxBytes of segments, after which Append returns ErrFull and the caller refuses
// calls rather than losing records.
package spool

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/pocketmolt/pocketmolt/internal/wire"
)

// ErrFull is returned by Append when the spool has reached Config.MaxBytes, or the disk
// under it is out of space: the record was not written.
var ErrFull = errors.New("usage spool is full")

// ErrClosed is returned by Append and Ack after Close.
var ErrClosed = errors.New("usage spool is closed")

// Defaults for Config's zero fields.
const (
	DefaultMaxBytes     = 256 << 20
	DefaultSegmentBytes = 4 << 20
	DefaultMemRecords   = 10_000
)

// LockFile is the file in the spool dir that the process using the spool holds an
// exclusive flock on; a second Open of the same dir fails while it is held.
const LockFile = "spool.lock"

// Config tunes a spool; zero fields take the defaults.
type Config struct {
	// MaxBytes bounds the bytes of all segments, acked records in live segments included.
	MaxBytes int64
	// SegmentBytes is the size at which the segment being written rotates.
	SegmentBytes int64
	// MemRecords bounds the unacked records held in memory; Batch returns at most this many.
	MemRecords int
}

func (c Config) withDefaults() Config {
	if c.MaxBytes <= 0 {
		c.MaxBytes = DefaultMaxBytes
	}
	if c.SegmentBytes <= 0 {
		c.SegmentBytes = DefaultSegmentBytes
	}
	if c.MemRecords <= 0 {
		c.MemRecords = DefaultMemRecords
	}
	return c
}

// Damage is a run of bytes in a segment that Open found holding no good record.
type Damage struct {
	File   string `json:"file"`
	Offset int64  `json:"offset"`
	Bytes  int64  `json:"bytes"`
}

// Recovery is what Open found on disk.
type Recovery struct {
	// Segments and Records are the segment files and the good records in them.
	Segments int `json:"segments"`
	Records  int `json:"records"`
	// BadTails are damaged or torn ends of segments (a write cut short by a crash, say);
	// Open cut them off, so appends continue after the last good record.
	BadTails []Damage `json:"bad_tails,omitempty"`
	// Skipped are damaged runs with good records after them (a flipped bit, say): the
	// damaged record is lost, the records after it are kept, and the bytes stay in place
	// (skipped on every read) until the segment is deleted.
	Skipped []Damage `json:"skipped,omitempty"`
	// Undecodable counts frames whose checksum held but that are not a usage record; they
	// are skipped.
	Undecodable int `json:"undecodable,omitempty"`
}

// Spool is a durable, bounded queue of usage records. All its methods are safe for
// concurrent use.
type Spool struct {
	dir  string
	cfg  Config
	log  *slog.Logger
	lock *os.File
	rec  Recovery

	kick    chan struct{} // wakes the writer; capacity 1
	quit    chan struct{} // closed by Close
	stopped chan struct{} // closed when the writer has drained and ended
	notify  chan struct{} // capacity 1; a value after records were committed

	// wmu is held while writing to, fsyncing or rotating the segment being written. It is
	// taken before mu.
	wmu sync.Mutex
	f   *os.File // the segment being written, open for append; guarded by wmu
	// fsyncs counts the fsyncs of records, for the benchmark's records per fsync.
	fsyncs atomic.Int64

	// readMu serializes reading records back from disk into the window. It is taken
	// before mu.
	readMu sync.Mutex

	mu   sync.Mutex
	segs []*segment // oldest first; the last is the one being written
	// window holds the oldest unacked records in order, up to cfg.MemRecords. Every unacked
	// record before the cursor (loadSeg, loadOff) is in it; every record at or after the
	// cursor is unacked and on disk only.
	window       []entry
	loadSeg      *segment
	loadOff      int64
	count        int   // unacked records
	diskBytes    int64 // bytes of all segments
	pending      *batch
	pendingBytes int64
	closed       bool
	broken       error // set when the disk can no longer be trusted (a failed fsync)
}

// segment is one segment file as the spool tracks it; guarded by Spool.mu.
type segment struct {
	seq     uint64
	path    string
	size    int64 // committed bytes: every frame in them is fsynced
	total   int   // good records in it
	loaded  int   // records read into the window (or appended straight into it)
	unacked int
}

type entry struct {
	seg *segment
	rec wire.UsageRecord
}

// batch is the group of Appends that one write and fsync commit.
type batch struct {
	buf  []byte
	recs []wire.UsageRecord
	done chan struct{}
	err  error // set before done is closed
}

// Open opens the spool in dir, creating dir (0700) if needed, and recovers what is on disk
// with the default Config. See OpenConfig.
func Open(dir string, log *slog.Logger) (*Spool, error) {
	return OpenConfig(dir, log, Config{})
}

// OpenConfig opens the spool in dir, creating dir (0700) if needed, and recovers every
// segment: good records are kept; a torn or damaged tail is logged (file, offset, bytes
// dropped) and cut off; a damaged run with good records after it is logged and skipped, and
// the records after it are kept. Open fails if another spool holds dir, or a segment cannot
// be read: it never drops a segment it could not look at.
func OpenConfig(dir string, log *slog.Logger, cfg Config) (*Spool, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create spool dir %s: %w", dir, err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	s := &Spool{
		dir:     dir,
		cfg:     cfg.withDefaults(),
		log:     log,
		lock:    lock,
		kick:    make(chan struct{}, 1),
		quit:    make(chan struct{}),
		stopped: make(chan struct{}),
		notify:  make(chan struct{}, 1),
	}
	if err := s.recover(); err != nil {
		lock.Close()
		return nil, err
	}
	if err := s.openCurrent(); err != nil {
		lock.Close()
		return nil, err
	}
	if s.rec.Records > 0 || len(s.rec.BadTails) > 0 || len(s.rec.Skipped) > 0 {
		log.Info("usage spool recovered", "dir", dir, "segments", s.rec.Segments, "records", s.rec.Records,
			"bad_tails", len(s.rec.BadTails), "skipped", len(s.rec.Skipped))
	}
	go s.run()
	return s, nil
}

// lockDir takes an exclusive, non-blocking flock on dir's LockFile; the kernel drops it when
// the process ends, however it ends.
func lockDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock spool dir %s: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("spool dir %s is in use by another process", dir)
		}
		return nil, fmt.Errorf("lock spool dir %s: %w", dir, err)
	}
	return f, nil
}

func segName(seq uint64) string { return fmt.Sprintf("%020d.seg", seq) }

// parseSegName returns the sequence number of a segment file name.
func parseSegName(name string) (uint64, bool) {
	digits, ok := strings.CutSuffix(name, ".seg")
	if !ok || len(digits) != 20 {
		return 0, false
	}
	seq, err := strconv.ParseUint(digits, 10, 64)
	return seq, err == nil
}

// decodeRecord is the one rule, at recovery and at read-back alike, for what a frame's
// payload must be to count as a record.
func decodeRecord(payload []byte) (wire.UsageRecord, error) {
	var rec wire.UsageRecord
	if err := json.Unmarshal(payload, &rec); err != nil {
		return rec, err
	}
	if rec.ID == "" {
		return rec, errors.New("usage record has no id")
	}
	return rec, nil
}

// recover reads every segment in dir, cuts off bad tails and counts the good records.
func (s *Spool) recover() error {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("read spool dir %s: %w", s.dir, err)
	}
	var seqs []uint64
	for _, e := range ents {
		if seq, ok := parseSegName(e.Name()); ok && e.Type().IsRegular() {
			seqs = append(seqs, seq)
		}
	}
	slices.Sort(seqs)
	for i, seq := range seqs {
		seg := &segment{seq: seq, path: filepath.Join(s.dir, segName(seq))}
		buf, err := os.ReadFile(seg.path)
		if err != nil {
			return fmt.Errorf("read spool segment %s: %w", seg.path, err)
		}
		_, skipped, tail := scan(buf, 0, func(off, _ int64, payload []byte) bool {
			if _, err := decodeRecord(payload); err != nil {
				s.rec.Undecodable++
				s.log.Warn("usage spool frame is not a usage record", "file", seg.path, "offset", off, "error", err)
				return true
			}
			seg.total++
			return true
		})
		for _, r := range skipped {
			s.log.Warn("usage spool damage skipped", "file", seg.path, "offset", r.off, "bytes_skipped", r.n)
			s.rec.Skipped = append(s.rec.Skipped, Damage{File: seg.path, Offset: r.off, Bytes: r.n})
		}
		seg.size = int64(len(buf))
		if tail.n > 0 {
			s.log.Warn("usage spool bad tail cut off", "file", seg.path, "offset", tail.off, "bytes_dropped", tail.n)
			s.rec.BadTails = append(s.rec.BadTails, Damage{File: seg.path, Offset: tail.off, Bytes: tail.n})
			if err := truncateSync(seg.path, tail.off); err != nil {
				return err
			}
			seg.size = tail.off
		}
		if seg.size == 0 && i < len(seqs)-1 {
			if err := os.Remove(seg.path); err != nil {
				return fmt.Errorf("remove empty spool segment: %w", err)
			}
			continue
		}
		seg.unacked = seg.total
		s.segs = append(s.segs, seg)
		s.diskBytes += seg.size
		s.count += seg.total
		s.rec.Segments++
		s.rec.Records += seg.total
	}
	return nil
}

func truncateSync(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("cut spool segment tail: %w", err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return fmt.Errorf("cut spool segment tail: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("cut spool segment tail: %w", err)
	}
	return nil
}

// openCurrent opens the last segment for appending, or starts a new one when there is
// none or it is full, and puts the read cursor at the start.
func (s *Spool) openCurrent() error {
	if n := len(s.segs); n > 0 && s.segs[n-1].size < s.cfg.SegmentBytes {
		f, err := os.OpenFile(s.segs[n-1].path, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return fmt.Errorf("open spool segment: %w", err)
		}
		s.f = f
	} else {
		seq := uint64(1)
		if n > 0 {
			seq = s.segs[n-1].seq + 1
		}
		seg, f, err := s.create(seq)
		if err != nil {
			return err
		}
		s.segs = append(s.segs, seg)
		s.f = f
	}
	s.loadSeg, s.loadOff = s.segs[0], 0
	s.normalizeLocked()
	return nil
}

// create makes a new, empty segment file and makes its name durable.
func (s *Spool) create(seq uint64) (*segment, *os.File, error) {
	path := filepath.Join(s.dir, segName(seq))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("create spool segment: %w", err)
	}
	// A record fsynced into a file whose name is not durable could vanish with the name.
	if err := syncDir(s.dir); err != nil {
		f.Close()
		os.Remove(path)
		return nil, nil, err
	}
	return &segment{seq: seq, path: path}, f, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync spool dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync spool dir: %w", err)
	}
	return nil
}

// Append writes rec to the spool; when it returns nil the record is written and fsynced.
// Concurrent Appends share one write and fsync. It returns ErrFull (the record is not
// written) when the spool is at Config.MaxBytes or the disk is full, ErrClosed after Close,
// and an error for a record with no ID. If ctx ends first, Append returns ctx's error and
// the record may or may not become durable (it is then shipped like any other).
func (s *Spool) Append(ctx context.Context, rec wire.UsageRecord) error {
	if rec.ID == "" {
		return errors.New("spool usage record: no id")
	}
	payload, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("spool usage record %s: %w", rec.ID, err)
	}
	if len(payload) > maxPayload {
		return fmt.Errorf("spool usage record %s: %d bytes, more than %d", rec.ID, len(payload), maxPayload)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("spool usage record %s: %w", rec.ID, err)
	}
	frameLen := int64(headerLen + len(payload))

	s.mu.Lock()
	switch {
	case s.closed:
		s.mu.Unlock()
		return ErrClosed
	case s.broken != nil:
		err := s.broken
		s.mu.Unlock()
		return fmt.Errorf("spool usage record %s: %w", rec.ID, err)
	case s.diskBytes+s.pendingBytes+frameLen > s.cfg.MaxBytes:
		s.mu.Unlock()
		return fmt.Errorf("spool usage record %s: %w (%d bytes)", rec.ID, ErrFull, s.cfg.MaxBytes)
	}
	b := s.pending
	if b == nil {
		b = &batch{done: make(chan struct{})}
		s.pending = b
	}
	b.buf = appendFrame(b.buf, payload)
	b.recs = append(b.recs, rec)
	s.pendingBytes += frameLen
	s.mu.Unlock()

	select {
	case s.kick <- struct{}{}:
	default:
	}
	select {
	case <-b.done:
		if b.err != nil {
			return fmt.Errorf("spool usage record %s: %w", rec.ID, b.err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("spool usage record %s: %w", rec.ID, ctx.Err())
	}
}

// run is the writer: it commits pending batches until Close, then drains what is left.
func (s *Spool) run() {
	defer close(s.stopped)
	for {
		select {
		case <-s.kick:
			s.drain()
		case <-s.quit:
			s.drain()
			return
		}
	}
}

func (s *Spool) drain() {
	for {
		s.wmu.Lock()
		s.mu.Lock()
		b := s.pending
		s.pending = nil
		s.mu.Unlock()
		if b == nil {
			s.wmu.Unlock()
			return
		}
		s.commit(b)
		s.wmu.Unlock()
	}
}

// commit writes and fsyncs one batch, then makes its records visible. wmu is held.
func (s *Spool) commit(b *batch) {
	s.mu.Lock()
	err := s.broken
	full := s.segs[len(s.segs)-1].size >= s.cfg.SegmentBytes
	s.mu.Unlock()
	if err == nil && full {
		// A failed rotation is logged; the records then go to the current segment.
		_ = s.rotate()
	}
	if err == nil {
		err = s.write(b.buf)
	}

	s.mu.Lock()
	s.pendingBytes -= int64(len(b.buf))
	if err == nil {
		cur := s.segs[len(s.segs)-1]
		atEnd := s.atEndLocked()
		n := len(b.recs)
		cur.size += int64(len(b.buf))
		cur.total += n
		cur.unacked += n
		s.diskBytes += int64(len(b.buf))
		s.count += n
		// Straight into memory when nothing older waits on disk and there is room;
		// otherwise Batch reads them back in turn.
		if atEnd && len(s.window)+n <= s.cfg.MemRecords {
			for _, r := range b.recs {
				s.window = append(s.window, entry{seg: cur, rec: r})
			}
			cur.loaded += n
			s.loadOff = cur.size
		}
	}
	s.mu.Unlock()
	b.err = err
	close(b.done)
	if err == nil {
		select {
		case s.notify <- struct{}{}:
		default:
		}
	}
}

// write appends buf to the current segment and fsyncs it. On a failed write the segment is
// cut back to its last committed size; on a failed fsync the spool is broken: the kernel
// may have dropped the pages, so what is on disk is unknown until the spool is reopened.
// wmu is held.
func (s *Spool) write(buf []byte) error {
	s.mu.Lock()
	size := s.segs[len(s.segs)-1].size
	s.mu.Unlock()
	if _, err := s.f.Write(buf); err != nil {
		if terr := s.f.Truncate(size); terr != nil {
			s.setBroken(fmt.Errorf("cut back spool segment after a failed write: %w", terr))
		}
		if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
			return fmt.Errorf("write spool segment: %w: %w", ErrFull, err)
		}
		return fmt.Errorf("write spool segment: %w", err)
	}
	s.fsyncs.Add(1)
	if err := s.f.Sync(); err != nil {
		err = fmt.Errorf("fsync spool segment: %w", err)
		s.setBroken(err)
		return err
	}
	return nil
}

func (s *Spool) setBroken(err error) {
	s.log.Error("usage spool broken; it refuses records until reopened", "dir", s.dir, "error", err)
	s.mu.Lock()
	if s.broken == nil {
		s.broken = err
	}
	s.mu.Unlock()
}

// rotate starts a new segment and deletes the old one if it is all acked. wmu is held.
func (s *Spool) rotate() error {
	s.mu.Lock()
	seq := s.segs[len(s.segs)-1].seq + 1
	s.mu.Unlock()
	seg, f, err := s.create(seq)
	if err != nil {
		s.log.Warn("usage spool segment rotation failed", "dir", s.dir, "error", err)
		return err
	}
	if err := s.f.Close(); err != nil {
		// Everything in it was fsynced already.
		s.log.Warn("close usage spool segment", "error", err)
	}
	s.f = f
	s.mu.Lock()
	s.segs = append(s.segs, seg)
	s.normalizeLocked()
	s.collectLocked()
	s.mu.Unlock()
	return nil
}

// atEndLocked reports whether every record on disk has been loaded.
func (s *Spool) atEndLocked() bool {
	last := s.segs[len(s.segs)-1]
	return s.loadSeg == last && s.loadOff >= last.size
}

// normalizeLocked moves the read cursor off the ends of segments that are no longer
// written, so that it always stands where the next unloaded record is or will be.
func (s *Spool) normalizeLocked() {
	for s.loadSeg != s.segs[len(s.segs)-1] && s.loadOff >= s.loadSeg.size {
		seg := s.loadSeg
		if diff := seg.total - seg.loaded; diff != 0 {
			// The segment changed on disk since Open counted it.
			s.log.Error("usage spool segment read back fewer records than counted", "file", seg.path,
				"counted", seg.total, "read", seg.loaded)
			seg.total -= diff
			seg.unacked -= diff
			s.count -= diff
		}
		i := slices.Index(s.segs, seg)
		s.loadSeg, s.loadOff = s.segs[i+1], 0
	}
}

// collectLocked deletes the segments whose records are all acked, except the one being
// written and the one the cursor is in.
func (s *Spool) collectLocked() {
	last := s.segs[len(s.segs)-1]
	kept := s.segs[:0]
	for _, seg := range s.segs {
		if seg != last && seg != s.loadSeg && seg.unacked <= 0 {
			err := os.Remove(seg.path)
			if err == nil || errors.Is(err, os.ErrNotExist) {
				s.diskBytes -= seg.size
				continue
			}
			// Kept, and tried again at the next Ack.
			s.log.Warn("remove acked usage spool segment", "file", seg.path, "error", err)
		}
		kept = append(kept, seg)
	}
	clear(s.segs[len(kept):])
	s.segs = kept
}

// Batch returns the oldest records not yet acked, at most max (and at most
// Config.MemRecords), in the order they were appended. It returns the same records again
// until they are acked. It reads records back from disk when fewer than max are in memory.
func (s *Spool) Batch(max int) []wire.UsageRecord {
	if max <= 0 {
		return nil
	}
	s.readMu.Lock()
	defer s.readMu.Unlock()
	for {
		s.mu.Lock()
		if len(s.window) >= max || len(s.window) >= s.cfg.MemRecords || s.atEndLocked() {
			out := make([]wire.UsageRecord, min(max, len(s.window)))
			for i := range out {
				out[i] = s.window[i].rec
			}
			s.mu.Unlock()
			return out
		}
		seg, off, end := s.loadSeg, s.loadOff, s.loadSeg.size
		want := s.cfg.MemRecords - len(s.window)
		s.mu.Unlock()

		// The cursor's segment is never deleted, and only this (under readMu) moves a
		// cursor that is not at the end, so it is still there when the lock is retaken.
		recs, next, err := s.readBack(seg.path, off, end, want)
		s.mu.Lock()
		if err != nil {
			s.log.Error("read back usage spool segment", "file", seg.path, "error", err)
			next = off
		}
		for _, r := range recs {
			s.window = append(s.window, entry{seg: seg, rec: r})
		}
		seg.loaded += len(recs)
		s.loadOff = next
		s.normalizeLocked()
		stuck := next == off && s.loadSeg == seg
		s.mu.Unlock()
		if stuck {
			s.mu.Lock()
			out := make([]wire.UsageRecord, min(max, len(s.window)))
			for i := range out {
				out[i] = s.window[i].rec
			}
			s.mu.Unlock()
			return out
		}
	}
}

// readBack decodes up to want records of the committed bytes [off, end) of a segment and
// returns them with the offset just past the last one it took (end when it took them all).
func (s *Spool) readBack(path string, off, end int64, want int) ([]wire.UsageRecord, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, off, err
	}
	defer f.Close()
	buf := make([]byte, end-off)
	if _, err := f.ReadAt(buf, off); err != nil && !(errors.Is(err, io.EOF) && len(buf) == 0) {
		return nil, off, err
	}
	var recs []wire.UsageRecord
	next := end
	scan(buf, off, func(o, e int64, payload []byte) bool {
		if rec, err := decodeRecord(payload); err == nil {
			recs = append(recs, rec)
		}
		if len(recs) >= want {
			next = e
			return false
		}
		return true
	})
	return recs, next, nil
}

// Ack forgets the records with these ids: pmd has committed them. Ids not among the records
// held in memory (unknown, acked already, or not yet read back from disk, so never handed
// out by Batch) are ignored. Segments left with no unacked record are
// deleted; when the segment being written is left so, the spool rotates to let it go. Ack
// returns ErrClosed after Close.
func (s *Spool) Ack(ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	set := make(map[string]struct{}, len(ids))
	for _, id := range ids {
		set[id] = struct{}{}
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	kept := s.window[:0]
	for _, e := range s.window {
		if _, ok := set[e.rec.ID]; ok {
			e.seg.unacked--
			s.count--
			continue
		}
		kept = append(kept, e)
	}
	clear(s.window[len(kept):])
	s.window = kept
	s.collectLocked()
	rotate := s.curAckedLocked()
	s.mu.Unlock()
	if !rotate {
		return nil
	}

	// The segment being written holds only acked records: start a new one so that this
	// one can go, and a crash does not make them be shipped again.
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	rotate = !s.closed && s.broken == nil && s.curAckedLocked() // the writer may have been first
	s.mu.Unlock()
	if rotate {
		if err := s.rotate(); err != nil {
			return fmt.Errorf("ack usage records: %w", err)
		}
	}
	return nil
}

// curAckedLocked reports whether the segment being written has records and all are acked.
func (s *Spool) curAckedLocked() bool {
	cur := s.segs[len(s.segs)-1]
	return cur.unacked == 0 && cur.size > 0
}

// Notify returns a channel that gets a value after records are committed; values are
// coalesced, so a shipper that wakes should ship until Batch is empty.
func (s *Spool) Notify() <-chan struct{} { return s.notify }

// Len returns the number of records not yet acked.
func (s *Spool) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count
}

// Recovered returns what Open found on disk.
func (s *Spool) Recovered() Recovery {
	r := s.rec
	r.BadTails = slices.Clone(r.BadTails)
	r.Skipped = slices.Clone(r.Skipped)
	return r
}

// Close waits for Appends already under way to be committed, then closes the files and
// releases the dir. Later Appends and Acks return ErrClosed; Batch and Len still answer.
// Closing twice is a no-op.
func (s *Spool) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	close(s.quit)
	<-s.stopped
	s.wmu.Lock()
	err := s.f.Close()
	s.wmu.Unlock()
	if lerr := s.lock.Close(); err == nil {
		err = lerr
	}
	if err != nil {
		return fmt.Errorf("close usage spool: %w", err)
	}
	return nil
}
