package pmd

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDataDirLock: while the lock is held, every command that uses the data dir refuses it
// and changes nothing; once it is released they work.
func TestDataDirLock(t *testing.T) {
	cfg := initTest(t, nil)
	st := openStore(t, cfg)
	before := takeSnapshot(t, cfg, st)
	held, err := lockDataDir(cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("data dir %s is in use by another pmd (pid %d); stop it first", cfg.DataDir, os.Getpid())
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	for _, args := range [][]string{
		{"serve"},
		{"dev"},
		{"init", "--force"},
		{"rotate-key"},
	} {
		t.Run(args[0], func(t *testing.T) {
			_, err := run(ctx, append(args, "--data-dir", cfg.DataDir)...)
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("pmd %s on a locked data dir: %v, want %q", strings.Join(args, " "), err, want)
			}
		})
	}
	if _, err := lockDataDir(cfg.DataDir); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("a second lock in one process: %v", err)
	}
	before.mustEqual(t, takeSnapshot(t, cfg, st))

	t.Run("init on a new data dir", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "pm")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		l, err := lockDataDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer l.release()
		if _, err := run(ctx, "init", "--data-dir", dir, "--public-addr", "127.0.0.1:0", "--agent-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"); err == nil || !strings.Contains(err.Error(), "in use by another pmd") {
			t.Fatalf("init on a locked data dir: %v", err)
		}
		if ok, file := Initialised(dir); ok {
			t.Errorf("refused init left %s", file)
		}
	})

	held.release()
	held.release() // a second release is harmless
	if _, err := run(ctx, "rotate-key", "--data-dir", cfg.DataDir); err != nil {
		t.Fatalf("rotate-key after the lock was released: %v", err)
	}
}

// TestDaemonHoldsLock: a daemon holds the lock from Open until Run returns, and a failed
// Open does not keep it.
func TestDaemonHoldsLock(t *testing.T) {
	cfg := initTest(t, nil)
	_, stop := serveTest(t, cfg)
	if l, err := lockDataDir(cfg.DataDir); err == nil {
		l.release()
		t.Fatal("the data dir of a running pmd could be locked")
	}
	if _, err := run(t.Context(), "serve", "--data-dir", cfg.DataDir); err == nil || !strings.Contains(err.Error(), "in use by another pmd") {
		t.Fatalf("a second serve: %v", err)
	}
	stop()
	l, err := lockDataDir(cfg.DataDir)
	if err != nil {
		t.Fatalf("lock after pmd stopped: %v", err)
	}
	l.release()

	// Open fails on a missing master key, and lets go of the lock.
	if err := os.Rename(cfg.KeyFile(), cfg.KeyFile()+".away"); err != nil {
		t.Fatal(err)
	}
	if _, err := run(t.Context(), "serve", "--data-dir", cfg.DataDir); err == nil || !strings.Contains(err.Error(), "master key") {
		t.Fatalf("serve without a master key: %v", err)
	}
	l, err = lockDataDir(cfg.DataDir)
	if err != nil {
		t.Fatalf("lock after a failed serve: %v", err)
	}
	l.release()
}

// TestDataDirLockOfKilledProcess: another process's lock names its pid, and once that
// process is killed its lock file no longer blocks.
func TestDataDirLockOfKilledProcess(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockHolder$")
	cmd.Env = append(os.Environ(), "PM_TEST_LOCK_HOLDER="+dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "locked\n" {
		t.Fatalf("lock holder said %q (%v)", line, err)
	}

	want := fmt.Sprintf("in use by another pmd (pid %d); stop it first", cmd.Process.Pid)
	if _, err := lockDataDir(dir); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("lock held by another process: %v, want %q", err, want)
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL: no chance to clean up
		t.Fatal(err)
	}
	cmd.Wait()
	if _, err := os.Stat(filepath.Join(dir, LockFile)); err != nil {
		t.Fatalf("the killed process's lock file: %v", err)
	}
	l, err := lockDataDir(dir)
	if err != nil {
		t.Fatalf("lock after its holder was killed: %v", err)
	}
	l.release()
}

// TestLockHolder is the process TestDataDirLockOfKilledProcess starts: it locks the data dir
// named by PM_TEST_LOCK_HOLDER, says so, and waits to be killed.
func TestLockHolder(t *testing.T) {
	dir := os.Getenv("PM_TEST_LOCK_HOLDER")
	if dir == "" {
		t.Skip("run by TestDataDirLockOfKilledProcess")
	}
	if _, err := lockDataDir(dir); err != nil {
		t.Fatal(err)
	}
	fmt.Println("locked")
	time.Sleep(time.Minute)
	t.Fatal("not killed within a minute")
}
