package spool

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/wire"
)

var discard = slog.New(slog.DiscardHandler)

func rec(i int) wire.UsageRecord {
	return wire.UsageRecord{
		ID:       fmt.Sprintf("r%06d", i),
		BotID:    "bot-1",
		Provider: wire.ProviderAnthropic,
		Model:    "claude-sonnet-4-6",
		API:      "messages",
		Status:   200,
		Outcome:  wire.OutcomeOK,
		// Fixed-width numbers: every record frames to the same size.
		Tokens: wire.Tokens{Input: int64(100_000 + i), Output: int64(100_000 + i)},
		Time:   time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Second),
		Millis: int64(100_000 + i),
	}
}

func openT(t *testing.T, dir string, cfg Config) *Spool {
	t.Helper()
	s, err := OpenConfig(dir, discard, cfg)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func appendN(t *testing.T, s *Spool, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if err := s.Append(t.Context(), rec(i)); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
}

func ids(recs []wire.UsageRecord) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.ID
	}
	return out
}

func wantIDs(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, rec(i).ID)
	}
	return out
}

// drain ships everything: Batch, Ack, until empty; it returns the ids in order.
func drain(t *testing.T, s *Spool, max int) []string {
	t.Helper()
	var out []string
	for {
		b := s.Batch(max)
		if len(b) == 0 {
			return out
		}
		out = append(out, ids(b)...)
		if err := s.Ack(ids(b)); err != nil {
			t.Fatalf("ack: %v", err)
		}
	}
}

func segFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// frames returns the [start, end) offsets of the good frames in a segment file.
func frames(t *testing.T, path string) [][2]int64 {
	t.Helper()
	buf, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out [][2]int64
	scan(buf, 0, func(off, end int64, _ []byte) bool {
		out = append(out, [2]int64{off, end})
		return true
	})
	return out
}

func TestAppendReopenBatchAck(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	s := openT(t, dir, Config{})
	appendN(t, s, 0, 10)
	if got := ids(s.Batch(4)); !slices.Equal(got, wantIDs(0, 4)) {
		t.Fatalf("batch = %v", got)
	}
	if got := ids(s.Batch(4)); !slices.Equal(got, wantIDs(0, 4)) {
		t.Fatalf("batch again before ack = %v", got)
	}
	if err := s.Ack(wantIDs(0, 4)); err != nil {
		t.Fatal(err)
	}
	if s.Len() != 6 {
		t.Fatalf("len = %d, want 6", s.Len())
	}
	if got := ids(s.Batch(100)); !slices.Equal(got, wantIDs(4, 10)) {
		t.Fatalf("batch after ack = %v", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Acks are not written: the acked records of the live segment come back (pmd dedupes).
	s = openT(t, dir, Config{})
	if r := s.Recovered(); r.Records != 10 || len(r.BadTails) != 0 || len(r.Skipped) != 0 {
		t.Fatalf("recovered = %+v", r)
	}
	got := s.Batch(100)
	if !slices.Equal(ids(got), wantIDs(0, 10)) {
		t.Fatalf("after reopen = %v", ids(got))
	}
	if got[3] != rec(3) {
		t.Fatalf("record changed on the way: %+v != %+v", got[3], rec(3))
	}
	// All acked: the live segment rotates and goes, so nothing comes back.
	if err := s.Ack(wantIDs(0, 10)); err != nil {
		t.Fatal(err)
	}
	if n := len(segFiles(t, dir)); n != 1 {
		t.Fatalf("%d segment files after acking everything, want 1 (empty) one", n)
	}
	s.Close()
	s = openT(t, dir, Config{})
	if s.Len() != 0 {
		t.Fatalf("len after everything acked and reopen = %d", s.Len())
	}

	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("dir mode = %v, %v", fi.Mode(), err)
	}
	for _, p := range segFiles(t, dir) {
		fi, err := os.Stat(p)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("segment mode = %v, %v", fi.Mode(), err)
		}
	}
}

// TestTornTail cuts the last record of a segment at every byte offset, as a crash in the
// middle of its write would: every earlier record is kept, the tail is reported and cut,
// and appends continue after the last good record.
func TestTornTail(t *testing.T) {
	src := t.TempDir()
	s := openT(t, src, Config{})
	appendN(t, s, 0, 5)
	s.Close()
	files := segFiles(t, src)
	if len(files) != 1 {
		t.Fatalf("segments = %v", files)
	}
	orig, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	fr := frames(t, files[0])
	last := fr[len(fr)-1]
	for cut := last[0]; cut < last[1]; cut++ {
		dir := t.TempDir()
		path := filepath.Join(dir, filepath.Base(files[0]))
		if err := os.WriteFile(path, orig[:cut], 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := OpenConfig(dir, discard, Config{})
		if err != nil {
			t.Fatalf("cut %d: open: %v", cut, err)
		}
		r := s.Recovered()
		var wantTails []Damage
		if cut > last[0] {
			wantTails = []Damage{{File: path, Offset: last[0], Bytes: cut - last[0]}}
		}
		if r.Records != 4 || !slices.Equal(r.BadTails, wantTails) || len(r.Skipped) != 0 {
			t.Fatalf("cut %d: recovered %+v, want 4 records and tails %v", cut, r, wantTails)
		}
		if fi, _ := os.Stat(path); fi.Size() != last[0] {
			t.Fatalf("cut %d: file is %d bytes after recovery, want %d", cut, fi.Size(), last[0])
		}
		if err := s.Append(t.Context(), rec(99)); err != nil {
			t.Fatalf("cut %d: append: %v", cut, err)
		}
		s.Close()
		s, err = OpenConfig(dir, discard, Config{})
		if err != nil {
			t.Fatal(err)
		}
		r = s.Recovered()
		got := ids(s.Batch(100))
		s.Close()
		if want := append(wantIDs(0, 4), rec(99).ID); !slices.Equal(got, want) || len(r.BadTails) != 0 {
			t.Fatalf("cut %d: after append and reopen: %v (tails %v), want %v", cut, got, r.BadTails, want)
		}
	}
}

func TestDamage(t *testing.T) {
	src := t.TempDir()
	s := openT(t, src, Config{})
	appendN(t, s, 0, 6)
	s.Close()
	file := segFiles(t, src)[0]
	orig, _ := os.ReadFile(file)
	fr := frames(t, file)
	end := int64(len(orig))
	garbage := make([]byte, 777)
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := range garbage {
		garbage[i] = byte(rnd.Uint32())
	}
	flip := func(at int64) []byte {
		b := slices.Clone(orig)
		b[at] ^= 0x10
		return b
	}
	mid := fr[2]
	tests := []struct {
		name    string
		content []byte
		want    []string
		tails   []region
		skipped []region
	}{
		{"garbage appended", append(slices.Clone(orig), garbage...), wantIDs(0, 6), []region{{end, 777}}, nil},
		{"zeros appended", append(slices.Clone(orig), make([]byte, 4096)...), wantIDs(0, 6), []region{{end, 4096}}, nil},
		{"a half frame then zeros", append(slices.Clone(orig), append(slices.Clone(orig[fr[0][0]:fr[0][0]+20]), make([]byte, 100)...)...), wantIDs(0, 6), []region{{end, 120}}, nil},
		{"bit flipped in the middle record's magic", flip(mid[0] + 1), slices.Delete(wantIDs(0, 6), 2, 3), nil, []region{{mid[0], mid[1] - mid[0]}}},
		{"bit flipped in the middle record's length", flip(mid[0] + 5), slices.Delete(wantIDs(0, 6), 2, 3), nil, []region{{mid[0], mid[1] - mid[0]}}},
		{"bit flipped in the middle record's checksum", flip(mid[0] + 9), slices.Delete(wantIDs(0, 6), 2, 3), nil, []region{{mid[0], mid[1] - mid[0]}}},
		{"bit flipped in the middle record's payload", flip(mid[0] + 40), slices.Delete(wantIDs(0, 6), 2, 3), nil, []region{{mid[0], mid[1] - mid[0]}}},
		{"bit flipped in the last record", flip(end - 3), wantIDs(0, 5), []region{{fr[5][0], end - fr[5][0]}}, nil},
		{"garbage in the middle", slices.Concat(orig[:mid[0]], garbage, orig[mid[0]:]), wantIDs(0, 6), nil, []region{{mid[0], 777}}},
		{"garbage at the start", slices.Concat(garbage, orig), wantIDs(0, 6), nil, []region{{0, 777}}},
		{"only garbage", garbage, nil, []region{{0, 777}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, filepath.Base(file))
			if err := os.WriteFile(path, tt.content, 0o600); err != nil {
				t.Fatal(err)
			}
			s := openT(t, dir, Config{})
			r := s.Recovered()
			damage := func(rs []region) []Damage {
				var out []Damage
				for _, x := range rs {
					out = append(out, Damage{File: path, Offset: x.off, Bytes: x.n})
				}
				return out
			}
			if r.Records != len(tt.want) || !slices.Equal(r.BadTails, damage(tt.tails)) || !slices.Equal(r.Skipped, damage(tt.skipped)) {
				t.Fatalf("recovered %+v, want %d records, tails %v, skipped %v", r, len(tt.want), tt.tails, tt.skipped)
			}
			if got := ids(s.Batch(100)); !slices.Equal(got, tt.want) {
				t.Fatalf("records = %v, want %v", got, tt.want)
			}
			// Appends continue after the last good record; the damage in the middle is
			// skipped again, the tail is gone.
			if err := s.Append(t.Context(), rec(99)); err != nil {
				t.Fatal(err)
			}
			s.Close()
			s = openT(t, dir, Config{})
			r = s.Recovered()
			if got, want := ids(s.Batch(100)), append(slices.Clone(tt.want), rec(99).ID); !slices.Equal(got, want) {
				t.Fatalf("after reopen: %v, want %v", got, want)
			}
			if len(r.BadTails) != 0 || !slices.Equal(r.Skipped, damage(tt.skipped)) {
				t.Fatalf("after reopen: %+v", r)
			}
		})
	}
}

func TestRotationAndDeletion(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{SegmentBytes: 1024}
	s := openT(t, dir, cfg)
	appendN(t, s, 0, 60)
	files := segFiles(t, dir)
	if len(files) < 5 {
		t.Fatalf("%d segments for 60 records of ~250 bytes at 1 KiB each", len(files))
	}
	for _, f := range files[:len(files)-1] {
		if fi, _ := os.Stat(f); fi.Size() < 1024 || fi.Size() > 1024+400 {
			t.Fatalf("%s is %d bytes; rotation is at 1024", f, fi.Size())
		}
	}
	// Ack the first 30: the segments holding only those go, the others stay.
	if got := ids(s.Batch(30)); !slices.Equal(got, wantIDs(0, 30)) {
		t.Fatalf("batch = %v", got)
	}
	if err := s.Ack(wantIDs(0, 30)); err != nil {
		t.Fatal(err)
	}
	left := segFiles(t, dir)
	if len(left) >= len(files) || left[len(left)-1] != files[len(files)-1] {
		t.Fatalf("segments after acking half: %v (before %v)", left, files)
	}
	// Unacked records out of order: a segment stays while one record in it is unacked.
	if err := s.Ack(wantIDs(31, 60)); err != nil {
		t.Fatal(err)
	}
	if s.Len() != 1 {
		t.Fatalf("len = %d", s.Len())
	}
	if got := ids(s.Batch(10)); !slices.Equal(got, wantIDs(30, 31)) {
		t.Fatalf("batch = %v", got)
	}
	s.Close()
	s = openT(t, dir, cfg)
	// r000030 comes back, and so do the acked records that share its segment (pmd
	// dedupes them); the segments that were all acked do not.
	got := ids(s.Batch(100))
	perSeg := int(cfg.SegmentBytes/int64(len(appendFrame(nil, mustJSON(t, rec(0)))))) + 1
	if !slices.Contains(got, rec(30).ID) || len(got) > perSeg {
		t.Fatalf("after reopen: %v; want r000030 and at most the %d records of its segment", got, perSeg)
	}
	drain(t, s, 100)
	if n := len(segFiles(t, dir)); n != 1 || s.Len() != 0 {
		t.Fatalf("after draining: %d segments, len %d", n, s.Len())
	}
}

// TestMemoryBound keeps at most MemRecords in memory and reads the rest back from disk, in
// order, across rotations and a reopen.
func TestMemoryBound(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{SegmentBytes: 2048, MemRecords: 10}
	s := openT(t, dir, cfg)
	appendN(t, s, 0, 100)
	s.mu.Lock()
	held := len(s.window)
	s.mu.Unlock()
	if held > 10 {
		t.Fatalf("%d records in memory, bound is 10", held)
	}
	if got := ids(s.Batch(1000)); !slices.Equal(got, wantIDs(0, 10)) {
		t.Fatalf("batch = %v", got)
	}
	if got := drain(t, s, 7); !slices.Equal(got, wantIDs(0, 100)) {
		t.Fatalf("drained %v", got)
	}
	s.Close()

	dir = t.TempDir()
	s = openT(t, dir, cfg)
	appendN(t, s, 0, 100)
	first := ids(s.Batch(25))
	if err := s.Ack(first); err != nil {
		t.Fatal(err)
	}
	appendN(t, s, 100, 150)
	s.Close()
	s = openT(t, dir, cfg)
	all := drain(t, s, 7)
	// Acked records may come back (those of segments not yet deleted), but the unacked ones
	// all do, in order, after them.
	i := slices.Index(all, rec(25).ID)
	if i < 0 || !slices.Equal(all[i:], wantIDs(25, 150)) {
		t.Fatalf("after reopen: %v", all)
	}
	if s.Len() != 0 {
		t.Fatalf("len %d", s.Len())
	}
}

func TestFull(t *testing.T) {
	dir := t.TempDir()
	frame := int64(len(appendFrame(nil, mustJSON(t, rec(0)))))
	cfg := Config{MaxBytes: 10*frame + frame/2, SegmentBytes: 3 * frame}
	s := openT(t, dir, cfg)
	appendN(t, s, 0, 10)
	err := s.Append(t.Context(), rec(10))
	if !errors.Is(err, ErrFull) {
		t.Fatalf("append past the limit: %v, want ErrFull", err)
	}
	if s.Len() != 10 || diskUse(t, dir) > cfg.MaxBytes {
		t.Fatalf("len %d, disk %d bytes of %d", s.Len(), diskUse(t, dir), cfg.MaxBytes)
	}
	// Shipping frees room, the segment being written included.
	if err := s.Ack(ids(s.Batch(10))); err != nil {
		t.Fatal(err)
	}
	appendN(t, s, 10, 20)
	if err := s.Append(t.Context(), rec(20)); !errors.Is(err, ErrFull) {
		t.Fatalf("append past the limit again: %v", err)
	}
	if got := ids(s.Batch(100)); !slices.Equal(got, wantIDs(10, 20)) {
		t.Fatalf("records = %v", got)
	}
}

func mustJSON(t *testing.T, r wire.UsageRecord) []byte {
	t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func diskUse(t *testing.T, dir string) int64 {
	var n int64
	for _, f := range segFiles(t, dir) {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		n += fi.Size()
	}
	return n
}

func TestClosedAndLocked(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, discard)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, discard); err == nil {
		t.Fatal("a second Open of a dir in use succeeded")
	}
	appendN(t, s, 0, 3)
	select {
	case <-s.Notify():
	default:
		t.Fatal("no notification after appends")
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.Append(ctx, rec(3)); !errors.Is(err, context.Canceled) {
		t.Fatalf("append with a cancelled context: %v", err)
	}
	if err := s.Append(t.Context(), wire.UsageRecord{}); err == nil {
		t.Fatal("a record with no id was taken")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if err := s.Append(t.Context(), rec(4)); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}
	if err := s.Ack([]string{rec(0).ID}); !errors.Is(err, ErrClosed) {
		t.Fatalf("ack after close: %v", err)
	}
	if s.Len() != 3 || len(s.Batch(10)) != 3 {
		t.Fatalf("len after close %d", s.Len())
	}
	s2, err := Open(dir, discard)
	if err != nil {
		t.Fatalf("open after close: %v", err)
	}
	defer s2.Close()
	if s2.Len() != 3 {
		t.Fatalf("len after reopen %d", s2.Len())
	}
}

// TestConcurrent appends from many goroutines while a shipper ships, with rotation and
// read-back from disk in play; run it with -race.
func TestConcurrent(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Config{SegmentBytes: 4096, MemRecords: 50})
	const writers, each = 8, 150
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				r := rec(w*each + i)
				r.BotID = fmt.Sprintf("bot-%d", w)
				if err := s.Append(t.Context(), r); err != nil {
					t.Errorf("append: %v", err)
					return
				}
			}
		})
	}
	done := make(chan struct{})
	var shipped []wire.UsageRecord
	go func() {
		defer close(done)
		seen := map[string]bool{}
		for len(seen) < writers*each {
			b := s.Batch(64)
			if len(b) == 0 {
				select {
				case <-s.Notify():
				case <-time.After(100 * time.Millisecond):
				}
				continue
			}
			for _, r := range b {
				if seen[r.ID] {
					t.Errorf("%s shipped twice without a restart", r.ID)
				}
				seen[r.ID] = true
				shipped = append(shipped, r)
			}
			if err := s.Ack(ids(b)); err != nil {
				t.Errorf("ack: %v", err)
			}
			_ = s.Len()
		}
	}()
	wg.Wait()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("shipper did not get every record")
	}
	// Each writer's records come in the order it appended them.
	last := map[string]string{}
	for _, r := range shipped {
		if r.ID <= last[r.BotID] {
			t.Fatalf("%s after %s for %s", r.ID, last[r.BotID], r.BotID)
		}
		last[r.BotID] = r.ID
	}
	if s.Len() != 0 {
		t.Fatalf("len %d", s.Len())
	}
	if n := len(segFiles(t, dir)); n > 2 {
		t.Fatalf("%d segments left after everything was acked", n)
	}
}

// BenchmarkAppend appends from many goroutines at once, with real fsyncs in a temp dir;
// records/s is what group commit sustains, fsyncs/op how many records share one.
func BenchmarkAppend(b *testing.B) {
	for _, par := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("goroutines=%d", par*runtime.GOMAXPROCS(0)), func(b *testing.B) {
			s, err := OpenConfig(b.TempDir(), discard, Config{MaxBytes: 4 << 30})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			var n atomic.Int64
			b.SetParallelism(par)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := s.Append(context.Background(), rec(int(n.Add(1)))); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric(float64(b.N)/float64(s.fsyncs.Load()), "records/fsync")
		})
	}
}

// TestCloseDuringAppends closes the spool while Appends are under way: each returns nil
// (and is then on disk) or ErrClosed (and is not).
func TestCloseDuringAppends(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, discard)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var ok []string
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := 0; ; i++ {
				r := rec(w*100_000 + i)
				err := s.Append(t.Context(), r)
				if errors.Is(err, ErrClosed) {
					return
				}
				if err != nil {
					t.Errorf("append: %v", err)
					return
				}
				mu.Lock()
				ok = append(ok, r.ID)
				mu.Unlock()
			}
		})
	}
	time.Sleep(50 * time.Millisecond)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	s = openT(t, dir, Config{})
	got := ids(s.Batch(s.Len()))
	slices.Sort(got)
	slices.Sort(ok)
	if len(ok) == 0 || !slices.Equal(got, ok) {
		t.Fatalf("%d appends returned nil, %d records on disk", len(ok), len(got))
	}
}

// BenchmarkOpen recovers a spool of 100,000 records (about 27 MB in 4 MiB segments), as an
// agent does at start after pmd was away for long.
func BenchmarkOpen(b *testing.B) {
	dir := b.TempDir()
	const n = 100_000
	var buf []byte
	seq := uint64(1)
	for i := range n {
		p, _ := json.Marshal(rec(i))
		buf = appendFrame(buf, p)
		if len(buf) >= DefaultSegmentBytes || i == n-1 {
			if err := os.WriteFile(filepath.Join(dir, segName(seq)), buf, 0o600); err != nil {
				b.Fatal(err)
			}
			seq++
			buf = buf[:0]
		}
	}
	for b.Loop() {
		s, err := Open(dir, discard)
		if err != nil {
			b.Fatal(err)
		}
		if s.Len() != n {
			b.Fatalf("len %d", s.Len())
		}
		s.Close()
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
