package pmd

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// LockFile is the file in the data dir that a pmd using the dir holds an exclusive flock on.
const LockFile = "pmd.lock"

// dirLock is this process's exclusive hold on a data dir.
type dirLock struct{ f *os.File }

// lockDataDir takes an exclusive, non-blocking flock on <dir>/pmd.lock and writes this
// process's id into the file, so that no two pmd commands (serve, dev, init, rotate-key) use
// one data dir at once. The dir must exist. The kernel drops the lock when the process ends,
// however it ends, so a file left by a killed pmd does not block; the file itself is never
// removed, since a process could then lock a new file while another still held the old one.
//
// flock is per open file, so a second lockDataDir on the same dir fails in this process too.
func lockDataDir(dir string) (*dirLock, error) {
	path := filepath.Join(dir, LockFile)
	// 0644: it holds only a pid, and a pmd running as another user than the one who made the
	// file (root, say) can still open it to lock.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	readOnly := errors.Is(err, os.ErrPermission)
	if readOnly {
		f, err = os.Open(path)
	}
	if err != nil {
		return nil, fmt.Errorf("lock data dir %s: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, inUse(dir, path)
		}
		return nil, fmt.Errorf("lock data dir %s: %w", dir, err)
	}
	if !readOnly {
		// The pid only makes the refusal more helpful; failing to write it is no reason to stop.
		if f.Truncate(0) == nil {
			_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
		}
	}
	return &dirLock{f: f}, nil
}

// inUse is the refusal when another process holds the lock, with its pid if it wrote one.
func inUse(dir, path string) error {
	holder := "another pmd"
	if b, err := os.ReadFile(path); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
			holder = fmt.Sprintf("another pmd (pid %d)", pid)
		}
	}
	return fmt.Errorf("data dir %s is in use by %s; stop it first", dir, holder)
}

// release drops the lock. It is safe to call on a nil lock and more than once.
func (l *dirLock) release() {
	if l == nil || l.f == nil {
		return
	}
	// Closing the only descriptor of the file releases the flock.
	l.f.Close()
	l.f = nil
}
