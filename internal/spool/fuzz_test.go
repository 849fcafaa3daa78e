package spool

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// seedSegment is a good segment of n records.
func seedSegment(n int) []byte {
	var buf []byte
	for i := range n {
		b, _ := json.Marshal(rec(i))
		buf = appendFrame(buf, b)
	}
	return buf
}

func addSeeds(f *testing.F) {
	good := seedSegment(3)
	f.Add([]byte{})
	f.Add(good)
	f.Add(good[:len(good)-7])
	f.Add(append(slices.Clone(good), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))
	flipped := slices.Clone(good)
	flipped[len(good)/2] ^= 1
	f.Add(flipped)
	f.Add(slices.Concat([]byte("garbage\xff\xffPM"), good, []byte("\xffPMU\x05\x00\x00\x00")))
	f.Add(appendFrame(nil, []byte(`{"id":""}`)))
	f.Add(appendFrame(nil, []byte(`not json`)))
	f.Add([]byte("\xffPMU\xff\xff\xff\xff\x00\x00\x00\x00"))
}

// FuzzScan checks that the segment decoder accounts for every byte exactly once: good
// frames, skipped damage and the tail cover the input in order, without overlap.
func FuzzScan(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, buf []byte) {
		type span struct{ off, end int64 }
		var spans []span
		end, skipped, tail := scan(buf, 100, func(off, e int64, payload []byte) bool {
			if e-off != int64(headerLen+len(payload)) {
				t.Fatalf("frame [%d,%d) with a %d-byte payload", off, e, len(payload))
			}
			spans = append(spans, span{off, e})
			return true
		})
		for _, r := range skipped {
			spans = append(spans, span{r.off, r.off + r.n})
		}
		if tail.n > 0 {
			if tail.off != end {
				t.Fatalf("tail at %d, last frame ends at %d", tail.off, end)
			}
			spans = append(spans, span{tail.off, tail.off + tail.n})
		}
		slices.SortFunc(spans, func(a, b span) int { return int(a.off - b.off) })
		at := int64(100)
		for _, s := range spans {
			if s.off != at || s.end <= s.off {
				t.Fatalf("spans %v do not tile [100,%d)", spans, 100+len(buf))
			}
			at = s.end
		}
		if at != int64(100+len(buf)) {
			t.Fatalf("spans %v end at %d, input at %d", spans, at, 100+len(buf))
		}
	})
}

// FuzzRecover opens a spool whose one segment holds the fuzzed bytes: Open never fails or
// makes a record up, cuts exactly the reported tail, finds the same on a second Open, and
// appends after the good records.
func FuzzRecover(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, buf []byte) {
		dir := t.TempDir()
		path := filepath.Join(dir, segName(1))
		if err := os.WriteFile(path, buf, 0o600); err != nil {
			t.Fatal(err)
		}
		var want []string
		scan(buf, 0, func(_, _ int64, payload []byte) bool {
			if r, err := decodeRecord(payload); err == nil {
				want = append(want, r.ID)
			}
			return true
		})
		s, err := OpenConfig(dir, discard, Config{})
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		r := s.Recovered()
		got := ids(s.Batch(len(buf) + 1))
		if r.Records != len(want) || s.Len() != len(want) || !slices.Equal(got, want) {
			t.Fatalf("recovered %+v, records %v, want %v", r, got, want)
		}
		var tail int64
		for _, d := range r.BadTails {
			tail += d.Bytes
		}
		if fi, err := os.Stat(path); err != nil || fi.Size() != int64(len(buf))-tail {
			t.Fatalf("segment is %v bytes after cutting a %d-byte tail off %d: %v", fi.Size(), tail, len(buf), err)
		}
		if err := s.Append(t.Context(), rec(7)); err != nil {
			t.Fatalf("append: %v", err)
		}
		s.Close()
		s = openT(t, dir, Config{})
		r2 := s.Recovered()
		if got := ids(s.Batch(len(buf) + 2)); !slices.Equal(got, append(want, rec(7).ID)) {
			t.Fatalf("after reopen: %v, want %v", got, append(want, rec(7).ID))
		}
		if len(r2.BadTails) != 0 || !slices.Equal(r2.Skipped, r.Skipped) {
			t.Fatalf("second recovery %+v differs from the first %+v", r2, r)
		}
	})
}
