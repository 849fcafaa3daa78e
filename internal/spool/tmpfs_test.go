package spool

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
)

// TestDiskFull fills a real 64 KiB tmpfs: Append returns ErrFull with the disk's ENOSPC,
// nothing half-written is left behind, every Append that returned is there after a reopen,
// and acking makes room again. It needs root to mount.
func TestDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	mnt := t.TempDir()
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=64k,mode=0700"); err != nil {
		t.Skipf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(mnt, 0); err != nil {
			t.Errorf("unmount %s: %v", mnt, err)
		}
	})
	dir := filepath.Join(mnt, "spool")
	s, err := OpenConfig(dir, discard, Config{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for ; ; n++ {
		err = s.Append(t.Context(), rec(n))
		if err != nil {
			break
		}
		if n > 10_000 {
			t.Fatal("a 64 KiB tmpfs took 10,000 records")
		}
	}
	if !errors.Is(err, ErrFull) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("append on a full disk: %v, want ErrFull and ENOSPC", err)
	}
	if n < 100 || s.Len() != n {
		t.Fatalf("%d records fit, len %d", n, s.Len())
	}
	// Still full, still refused, still nothing lost.
	if err := s.Append(t.Context(), rec(n)); !errors.Is(err, ErrFull) {
		t.Fatalf("second append on a full disk: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openT(t, dir, Config{})
	if r := s.Recovered(); r.Records != n || len(r.BadTails) != 0 {
		t.Fatalf("after reopen: %+v, want %d records and no bad tail", r, n)
	}
	if got := ids(s.Batch(n + 10)); !slices.Equal(got, wantIDs(0, n)) {
		t.Fatalf("after reopen: %d records", len(got))
	}
	// pmd commits them: the segment goes, there is room again.
	if err := s.Ack(wantIDs(0, n)); err != nil {
		t.Fatal(err)
	}
	appendN(t, s, n, n+50)
	if got := ids(s.Batch(100)); !slices.Equal(got, wantIDs(n, n+50)) {
		t.Fatalf("after making room: %v", got)
	}
}
