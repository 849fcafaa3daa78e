package pmd

import (
	"fmt"
	"os"
	"path/filepath"
)

// gitWorkTree returns the top of the git work tree that holds dir (the nearest directory at or
// above it with a .git entry: a directory, or the file of a linked worktree), or "" if none.
func gitWorkTree(dir string) string {
	d, err := filepath.Abs(dir)
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Lstat(filepath.Join(d, ".git")); err == nil {
			return d
		}
		parent := filepath.Dir(d)
		if parent == d {
			return ""
		}
		d = parent
	}
}

// gitWarning says, when the data dir is inside a git work tree, what one `git add -A` there
// would commit; "" otherwise. pmd dev's default data dir, ./pm, is inside the clone it runs
// from: the repository's .gitignore covers it, but not a clone of someone else's, nor a data
// dir under another name.
func gitWarning(dataDir string) string {
	root := gitWorkTree(dataDir)
	if root == "" {
		return ""
	}
	return fmt.Sprintf("data dir %s is inside the git work tree %s: it holds the master key and an admin key, which one `git add -A` would commit; keep it outside (--data-dir) or make sure .gitignore covers it", dataDir, root)
}
