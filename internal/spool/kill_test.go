package spool

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pocketmolt/pocketmolt/internal/wire"
)

const childEnv = "PM_SPOOL_TEST_CHILD_DIR"

// killCfg is small segments, so that rotations and deletions happen while the child dies.
var killCfg = Config{SegmentBytes: 16 << 10, MemRecords: 500}

const killWriters = 8

// TestSIGKILL re-executes the test binary as a child that appends from many goroutines
// while a shipper acks, and SIGKILLs it in the middle. Every Append that returned is in the
// spool afterwards unless the child had begun to ack it, each writer's records are there in
// the order it appended them, and nothing is there that the child did not append.
func TestSIGKILL(t *testing.T) {
	if dir := os.Getenv(childEnv); dir != "" {
		killChild(dir)
		return
	}
	for _, after := range []int{1, 300, 3000} {
		t.Run(strconv.Itoa(after), func(t *testing.T) {
			dir := t.TempDir()
			cmd := exec.Command(os.Args[0], "-test.run=^TestSIGKILL$", "-test.count=1")
			cmd.Env = append(os.Environ(), childEnv+"="+dir)
			cmd.Stderr = os.Stderr
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			returned := map[string]bool{} // Append returned nil
			acking := map[string]bool{}   // handed to Ack: may be gone
			sc := bufio.NewScanner(out)
			killed := false
			for sc.Scan() {
				kind, id, _ := strings.Cut(sc.Text(), " ")
				switch kind {
				case "ok":
					returned[id] = true
				case "ack":
					acking[id] = true
				}
				if !killed && len(returned) >= after {
					// What the child wrote before it died is still read from the pipe.
					if err := cmd.Process.Kill(); err != nil {
						t.Fatal(err)
					}
					killed = true
				}
			}
			err = cmd.Wait()
			if !killed {
				t.Fatalf("child ended before it was killed: %v", err)
			}

			s := openT(t, dir, Config{SegmentBytes: killCfg.SegmentBytes}) // all records in memory, to check them
			r := s.Recovered()
			t.Logf("killed after %d appends returned: recovered %d records in %d segments, bad tails %v, skipped %v",
				len(returned), r.Records, r.Segments, r.BadTails, r.Skipped)
			if len(r.Skipped) != 0 || r.Undecodable != 0 {
				t.Fatalf("damage in the middle after a kill: %+v", r)
			}
			present := map[string]bool{}
			lastSeq := map[string]int{}
			for _, rec := range s.Batch(s.Len() + 1) {
				if present[rec.ID] {
					t.Fatalf("%s twice", rec.ID)
				}
				present[rec.ID] = true
				w, seq, ok := parseKillID(rec.ID)
				if !ok || rec.BotID != w {
					t.Fatalf("a record the child never appended: %+v", rec)
				}
				if want := killRec(w, seq); rec != want {
					t.Fatalf("record changed: %+v, want %+v", rec, want)
				}
				if prev, ok := lastSeq[w]; ok && seq <= prev {
					t.Fatalf("%s after seq %d of %s", rec.ID, prev, w)
				}
				lastSeq[w] = seq
			}
			if s.Len() != len(present) {
				t.Fatalf("len %d, batch %d", s.Len(), len(present))
			}
			for id := range returned {
				if !acking[id] && !present[id] {
					t.Fatalf("%s: its Append returned, it was never acked, and it is gone", id)
				}
			}
			// The reopened spool goes on.
			if err := s.Append(t.Context(), rec(1)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func killID(w string, seq int) string { return fmt.Sprintf("%s-%09d", w, seq) }

func parseKillID(id string) (string, int, bool) {
	w, n, ok := strings.Cut(id, "-")
	seq, err := strconv.Atoi(n)
	return w, seq, ok && err == nil
}

func killRec(w string, seq int) wire.UsageRecord {
	r := rec(seq)
	r.ID = killID(w, seq)
	r.BotID = w
	return r
}

// killChild appends until it is killed (or a minute passes), printing "ok <id>" once an
// Append returned and "ack <id>" before handing an id to Ack.
func killChild(dir string) {
	s, err := OpenConfig(dir, discard, killCfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		os.Exit(3)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out sync.Mutex
	say := func(kind, id string) {
		out.Lock()
		fmt.Fprintf(os.Stdout, "%s %s\n", kind, id)
		out.Unlock()
	}
	for i := range killWriters {
		w := "w" + strconv.Itoa(i)
		go func() {
			for seq := 0; ctx.Err() == nil; seq++ {
				if err := s.Append(ctx, killRec(w, seq)); err != nil {
					fmt.Fprintln(os.Stderr, "child append:", err)
					os.Exit(3)
				}
				say("ok", killID(w, seq))
			}
		}()
	}
	// The shipper acks what is older than the newest few hundred, so segments are deleted
	// and the live one rotates while records are still being appended.
	for ctx.Err() == nil {
		b := s.Batch(100)
		if s.Len() < 400 || len(b) == 0 {
			time.Sleep(time.Millisecond)
			continue
		}
		ids := ids(b)
		for _, id := range ids {
			say("ack", id)
		}
		if err := s.Ack(ids); err != nil {
			fmt.Fprintln(os.Stderr, "child ack:", err)
			os.Exit(3)
		}
	}
	os.Exit(4)
}
