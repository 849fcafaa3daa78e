package pmd

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestGitWorkTreeWarning: init, dev and serve warn when the data dir is inside a git work
// tree (a clone, or a linked worktree whose .git is a file), and say nothing otherwise.
func TestGitWorkTreeWarning(t *testing.T) {
	clearEnv(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for _, gitEntry := range []string{"dir", "file"} {
		t.Run(".git "+gitEntry, func(t *testing.T) {
			repo := t.TempDir()
			if gitEntry == "dir" {
				if err := os.Mkdir(filepath.Join(repo, ".git"), 0o700); err != nil {
					t.Fatal(err)
				}
			} else if err := os.WriteFile(filepath.Join(repo, ".git"), []byte("gitdir: /elsewhere\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(repo, "deploy", "pm")
			if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
				t.Fatal(err)
			}
			want := "is inside the git work tree " + repo + ": it holds the master key and an admin key"

			out, err := run(ctx, "init", "--data-dir", dir, "--public-addr", "127.0.0.1:0", "--agent-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0")
			if err != nil || !strings.Contains(out, "warning: data dir "+dir+" "+want) {
				t.Fatalf("init: %v\n%s", err, out)
			}
			// dev and serve warn before they start; a held lock stops them right after.
			l, err := lockDataDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer l.release()
			if out, err := run(ctx, "dev", "--data-dir", dir); err == nil || !strings.Contains(out, want) {
				t.Errorf("dev: %v\n%s", err, out)
			}
			var stderr bytes.Buffer
			root := NewCommand(io.Discard, &stderr)
			root.SetArgs([]string{"serve", "--data-dir", dir})
			if err := root.ExecuteContext(ctx); err == nil || !strings.Contains(stderr.String(), "data dir inside a git work tree") || !strings.Contains(stderr.String(), repo) {
				t.Errorf("serve: %v\n%s", err, stderr.String())
			}
		})
	}

	t.Run("outside a work tree", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "pm")
		if gitWorkTree(dir) != "" {
			t.Skipf("the temporary directory %s is itself inside a git work tree", dir)
		}
		out, err := run(ctx, "init", "--data-dir", dir, "--public-addr", "127.0.0.1:0", "--agent-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0")
		if err != nil || strings.Contains(out, "git") {
			t.Fatalf("init: %v\n%s", err, out)
		}
	})
}

// TestGitignoreCoversSecrets: in this repository, what pmd dev and the README's examples
// write (./pm, an agent's state dir) and build outputs are ignored by git, so `git add -A`
// in the clone commits no key.
func TestGitignoreCoversSecrets(t *testing.T) {
	git, err := exec.LookPath("git")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("git is not installed; CI must run this test")
		}
		t.Skip("git is not installed")
	}
	top, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(top, ".git")); err != nil {
		t.Skipf("%s is not a git work tree (an export of the source)", top)
	}
	paths := []string{
		"pm/" + MasterKeyFile, "pm/" + CtlConfigFile, "pm/" + DatabaseFile, "pm/agent/key.pem",
		"agent1/key.pem", "bin/pmd", "dist/pmagent_linux_amd64/pmagent",
	}
	for _, p := range paths {
		cmd := exec.Command(git, "-C", top, "check-ignore", "--no-index", "--quiet", p)
		if err := cmd.Run(); err != nil {
			t.Errorf("git does not ignore %s (%v)", p, err)
		}
	}
	if err := exec.Command(git, "-C", top, "check-ignore", "--no-index", "--quiet", "internal/pmd/init.go").Run(); err == nil {
		t.Error("git ignores the source")
	}
}
