package nofollow_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/pocketmolt/pocketmolt/internal/nofollow"
)

// outside is a directory beside the tree under test, holding a file the tree links to: the
// operations must leave both as they were.
type outside struct {
	dir, file string
}

const outsideText = "not yours\n"

func newOutside(t *testing.T) outside {
	t.Helper()
	o := outside{dir: t.TempDir()}
	o.file = filepath.Join(o.dir, "precious")
	if err := os.WriteFile(o.file, []byte(outsideText), 0o644); err != nil {
		t.Fatal(err)
	}
	return o
}

// unchanged fails the test if the outside file or directory was changed in any way.
func (o outside) unchanged(t *testing.T) {
	t.Helper()
	b, err := os.ReadFile(o.file)
	if err != nil || string(b) != outsideText {
		t.Errorf("outside file changed: %q, %v", b, err)
	}
	entries, _ := os.ReadDir(o.dir)
	if len(entries) != 1 {
		t.Errorf("outside dir holds %d entries, want only the precious file", len(entries))
	}
	for _, p := range []string{o.file, o.dir} {
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err != nil || int(st.Uid) != os.Getuid() || int(st.Gid) != os.Getgid() {
			t.Errorf("%s owner changed: %d:%d, %v", p, st.Uid, st.Gid, err)
		}
	}
	if fi, err := os.Stat(o.file); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("outside file mode changed: %v, %v", fi.Mode(), err)
	}
}

func open(t *testing.T, path string) *nofollow.Dir {
	t.Helper()
	d, err := nofollow.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func TestWriteFileNeverWritesThroughALink(t *testing.T) {
	o := newOutside(t)
	root := t.TempDir()
	d := open(t, root)
	// A link where the file goes, to an existing file and to a name that does not exist.
	for _, target := range []string{o.file, filepath.Join(o.dir, "absent")} {
		if err := os.Symlink(target, filepath.Join(root, "openclaw.json")); err != nil {
			t.Fatal(err)
		}
		if err := d.WriteFile("openclaw.json", []byte("{}\n"), 0o640, -1, -1); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Lstat(filepath.Join(root, "openclaw.json"))
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o640 {
			t.Fatalf("after write: %v, %v; want a regular 0640 file in place of the link", fi.Mode(), err)
		}
		if b, _ := os.ReadFile(filepath.Join(root, "openclaw.json")); string(b) != "{}\n" {
			t.Fatalf("content %q", b)
		}
		o.unchanged(t)
		if err := os.Remove(filepath.Join(root, "openclaw.json")); err != nil {
			t.Fatal(err)
		}
	}
	if entries, _ := os.ReadDir(root); len(entries) != 0 {
		t.Errorf("temporary files left: %v", entries)
	}
}

func TestWriteFileOwnerAndMode(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to give a file away")
	}
	root := t.TempDir()
	d := open(t, root)
	if err := d.WriteFile("f", []byte("x"), 0o600, 4242, 4343); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(root, "f"), &st); err != nil || st.Uid != 4242 || st.Gid != 4343 || st.Mode&0o777 != 0o600 {
		t.Fatalf("owner %d:%d mode %o, %v", st.Uid, st.Gid, st.Mode&0o777, err)
	}
}

func TestWriteFileFailureLeavesTheOldFile(t *testing.T) {
	// A full filesystem: a tiny tmpfs of our own.
	if os.Getuid() != 0 {
		t.Skip("needs root to mount a tmpfs")
	}
	root := t.TempDir()
	if err := unix.Mount("tmpfs", root, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=64k"); err != nil {
		t.Skipf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(root, unix.MNT_DETACH) })
	d := open(t, root)
	if err := d.WriteFile("cfg", []byte("old"), 0o600, -1, -1); err != nil {
		t.Fatal(err)
	}
	err := d.WriteFile("cfg", make([]byte, 1<<20), 0o600, -1, -1)
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("write 1 MiB on a 64 KiB filesystem: %v, want ENOSPC", err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "cfg")); string(b) != "old" {
		t.Errorf("after a failed write the file holds %d bytes, want the old 3", len(b))
	}
	if entries, _ := os.ReadDir(root); len(entries) != 1 {
		t.Errorf("entries after a failed write: %v", entries)
	}
}

func TestOpenDirAndMkdirRefuseLinks(t *testing.T) {
	o := newOutside(t)
	root := t.TempDir()
	d := open(t, root)
	if err := os.Symlink(o.dir, filepath.Join(root, "state")); err != nil {
		t.Fatal(err)
	}
	if _, err := d.OpenDir("state"); !errors.Is(err, nofollow.ErrNotDir) {
		t.Errorf("OpenDir(link) = %v, want ErrNotDir", err)
	}
	if _, _, err := d.Mkdir("state", 0o700); !errors.Is(err, nofollow.ErrNotDir) {
		t.Errorf("Mkdir(link) = %v, want ErrNotDir", err)
	}
	if err := os.WriteFile(filepath.Join(root, "file"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := d.OpenDir("file"); !errors.Is(err, nofollow.ErrNotDir) {
		t.Errorf("OpenDir(file) = %v, want ErrNotDir", err)
	}
	sub, created, err := d.Mkdir("new", 0o700)
	if err != nil || !created {
		t.Fatalf("Mkdir(new) = %v, %v", created, err)
	}
	sub.Close()
	if sub, created, err = d.Mkdir("new", 0o700); err != nil || created {
		t.Fatalf("Mkdir(existing) = %v, %v", created, err)
	}
	sub.Close()
	for _, bad := range []string{"", ".", "..", "a/b", "../x", "x\x00"} {
		if _, err := d.OpenDir(bad); err == nil || !strings.Contains(err.Error(), "not a single file name") {
			t.Errorf("OpenDir(%q) = %v", bad, err)
		}
	}
	o.unchanged(t)
}

func TestReadFileRefusesLinksAndFIFOs(t *testing.T) {
	o := newOutside(t)
	root := t.TempDir()
	d := open(t, root)
	if err := os.Symlink(o.file, filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(root, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"link", "fifo"} {
		if _, err := d.ReadFile(name, 1<<10); !errors.Is(err, nofollow.ErrNotRegular) {
			t.Errorf("ReadFile(%s) = %v, want ErrNotRegular", name, err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "big"), make([]byte, 100), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := d.ReadFile("big", 99); err == nil {
		t.Error("ReadFile over its limit succeeded")
	}
	if b, err := d.ReadFile("big", 100); err != nil || len(b) != 100 {
		t.Errorf("ReadFile(big) = %d bytes, %v", len(b), err)
	}
}

// hostileTree makes, under root, what a container could leave in a directory it writes:
// files, nested directories, links to the outside (file and directory), a hard link, a FIFO.
func hostileTree(t *testing.T, root string, o outside) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "a", "b", "c"), 0o755))
	must(os.WriteFile(filepath.Join(root, "a", "b", "c", "data"), make([]byte, 64<<10), 0o644))
	must(os.Link(filepath.Join(root, "a", "b", "c", "data"), filepath.Join(root, "a", "hardlink")))
	must(os.Symlink(o.file, filepath.Join(root, "a", "to-file")))
	must(os.Symlink(o.dir, filepath.Join(root, "a", "b", "to-dir")))
	must(os.Symlink("../../..", filepath.Join(root, "a", "b", "up")))
	must(unix.Mkfifo(filepath.Join(root, "fifo"), 0o600))
}

func TestRemoveAllNeverFollows(t *testing.T) {
	o := newOutside(t)
	parent := t.TempDir()
	hostileTree(t, filepath.Join(parent, "bot"), o)
	d := open(t, parent)
	if err := d.RemoveAll("bot"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(parent, "bot")); !os.IsNotExist(err) {
		t.Errorf("bot still there: %v", err)
	}
	if err := d.RemoveAll("bot"); err != nil {
		t.Errorf("RemoveAll(missing) = %v", err)
	}
	o.unchanged(t)
}

func TestUsage(t *testing.T) {
	o := newOutside(t)
	// A big file outside, linked from inside: not counted.
	big := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(big, make([]byte, 8<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	hostileTree(t, root, o)
	if err := os.Symlink(big, filepath.Join(root, "big-link")); err != nil {
		t.Fatal(err)
	}
	// A sparse file: 1 GiB long, a few blocks allocated.
	f, err := os.Create(filepath.Join(root, "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("x"), 1<<30); err != nil {
		t.Fatal(err)
	}
	f.Close()

	var u nofollow.Usage
	if err := u.Add(open(t, root)); err != nil {
		t.Fatal(err)
	}
	// 64 KiB of data counted once (a hard link is not a second copy); the rest is
	// directories, links and a sparse file's few blocks.
	if u.Bytes < 64<<10 || u.Bytes > 64<<10+256<<10 {
		t.Errorf("usage = %d bytes, want 64 KiB plus metadata", u.Bytes)
	}
	// Root, a, b, c, data (once), to-file, to-dir, up, fifo, big-link, sparse.
	if u.Inodes != 11 {
		t.Errorf("inodes = %d, want 11", u.Inodes)
	}
	if err := os.WriteFile(filepath.Join(root, "more"), make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	var u2 nofollow.Usage
	if err := u2.Add(open(t, root)); err != nil {
		t.Fatal(err)
	}
	if grew := u2.Bytes - u.Bytes; grew < 1<<20 || grew > 1<<20+64<<10 {
		t.Errorf("a 1 MiB file added %d bytes", grew)
	}
	o.unchanged(t)
}

func TestChownTree(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to give files away")
	}
	o := newOutside(t)
	root := t.TempDir()
	hostileTree(t, root, o)
	if err := open(t, root).ChownTree(4242, 4343); err != nil {
		t.Fatal(err)
	}
	err := filepath.WalkDir(root, func(p string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		if st.Uid != 4242 || st.Gid != 4343 {
			t.Errorf("%s owned by %d:%d", p, st.Uid, st.Gid)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	o.unchanged(t)
}

func TestWalksRefuseTooDeepATree(t *testing.T) {
	root := t.TempDir()
	d := open(t, root)
	cur := d
	for i := 0; i <= nofollow.MaxDepth+1; i++ {
		next, _, err := cur.Mkdir("d", 0o700)
		if err != nil {
			t.Fatal(err)
		}
		if cur != d {
			cur.Close()
		}
		cur = next
	}
	cur.Close()
	var u nofollow.Usage
	if err := u.Add(d); !errors.Is(err, nofollow.ErrTooDeep) {
		t.Errorf("Usage.Add = %v, want ErrTooDeep", err)
	}
	if err := d.ChownTree(os.Getuid(), os.Getgid()); !errors.Is(err, nofollow.ErrTooDeep) {
		t.Errorf("ChownTree = %v, want ErrTooDeep", err)
	}
	parent := open(t, filepath.Dir(root))
	if err := parent.RemoveAll(filepath.Base(root)); !errors.Is(err, nofollow.ErrTooDeep) {
		t.Errorf("RemoveAll = %v, want ErrTooDeep", err)
	}
}
