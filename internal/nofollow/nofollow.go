// Package nofollow works in directory trees that a less trusted party can write, such as a
// bot's directories on its host: every file or directory is reached relative to a directory
// the caller holds open, one path component at a time, and a symbolic link is never followed
// (O_NOFOLLOW, AT_SYMLINK_NOFOLLOW, O_CREAT|O_EXCL). Swapping a name for a link between two
// calls therefore makes a call fail or act on the link itself, never on what it points at.
//
// Only Linux is supported, where the agent runs.
package nofollow

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrNotDir is returned when a name that must be a directory is something else, a symbolic
// link included.
var ErrNotDir = errors.New("not a directory (or a symbolic link)")

// ErrNotRegular is returned when a name that must be a regular file is something else, a
// symbolic link included.
var ErrNotRegular = errors.New("not a regular file (or a symbolic link)")

// ErrTooDeep is returned by the tree walks for a tree nested deeper than MaxDepth: they hold
// one open directory per level, so a hostile tree must not decide how many.
var ErrTooDeep = errors.New("directories nested too deep")

// MaxDepth is how many levels of directories the tree walks descend.
const MaxDepth = 512

// Dir is an open directory. Its methods that take a name are safe for concurrent use; the
// ones that read d's own entries (RemoveAll's descendants aside: Usage.Add, ChownTree) must
// not run on one Dir at once. Close ends its use.
type Dir struct {
	f    *os.File
	path string // for messages only: the directory may have moved since
}

const dirFlags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC

// Open opens the directory at path. Path is trusted (it comes from the configuration): links
// in it are followed, as the operator wrote them.
func Open(path string) (*Dir, error) {
	fd, err := unix.Open(path, dirFlags, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return newDir(fd, path), nil
}

func newDir(fd int, path string) *Dir {
	return &Dir{f: os.NewFile(uintptr(fd), path), path: path}
}

// Close closes the directory.
func (d *Dir) Close() error { return d.f.Close() }

// Path is the path the directory was opened as.
func (d *Dir) Path() string { return d.path }

func (d *Dir) fd() int { return int(d.f.Fd()) }

func (d *Dir) join(name string) string { return d.path + "/" + name }

// checkName refuses anything but one plain path component.
func checkName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return fmt.Errorf("%q is not a single file name", name)
	}
	return nil
}

func (d *Dir) pathErr(op, name string, err error) error {
	return &os.PathError{Op: op, Path: d.join(name), Err: err}
}

// OpenDir opens the directory name inside d. A link there, or anything but a directory, is
// ErrNotDir.
func (d *Dir) OpenDir(name string) (*Dir, error) {
	if err := checkName(name); err != nil {
		return nil, d.pathErr("open", name, err)
	}
	fd, err := unix.Openat(d.fd(), name, dirFlags|unix.O_NOFOLLOW, 0)
	if err != nil {
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
			err = ErrNotDir
		}
		return nil, d.pathErr("open", name, err)
	}
	return newDir(fd, d.join(name)), nil
}

// Mkdir makes the directory name inside d with mode perm (less the umask) unless it exists,
// and opens it. Something other than a directory in its place is ErrNotDir.
func (d *Dir) Mkdir(name string, perm os.FileMode) (sub *Dir, created bool, err error) {
	if err := checkName(name); err != nil {
		return nil, false, d.pathErr("mkdir", name, err)
	}
	err = unix.Mkdirat(d.fd(), name, uint32(perm.Perm()))
	switch {
	case err == nil:
		created = true
	case !errors.Is(err, unix.EEXIST):
		return nil, false, d.pathErr("mkdir", name, err)
	}
	sub, err = d.OpenDir(name)
	return sub, created, err
}

// Stat describes d itself.
func (d *Dir) Stat() (unix.Stat_t, error) {
	var st unix.Stat_t
	if err := unix.Fstat(d.fd(), &st); err != nil {
		return st, &os.PathError{Op: "fstat", Path: d.path, Err: err}
	}
	return st, nil
}

// Lstat describes name inside d; a link is described, not followed. A missing name is an
// error satisfying errors.Is(err, fs.ErrNotExist).
func (d *Dir) Lstat(name string) (unix.Stat_t, error) {
	var st unix.Stat_t
	if err := checkName(name); err != nil {
		return st, d.pathErr("lstat", name, err)
	}
	if err := unix.Fstatat(d.fd(), name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return st, d.pathErr("lstat", name, err)
	}
	return st, nil
}

// Chown gives d itself to uid:gid.
func (d *Dir) Chown(uid, gid int) error {
	if err := unix.Fchown(d.fd(), uid, gid); err != nil {
		return &os.PathError{Op: "chown", Path: d.path, Err: err}
	}
	return nil
}

// Chmod sets d's own mode bits.
func (d *Dir) Chmod(perm os.FileMode) error {
	if err := unix.Fchmod(d.fd(), uint32(perm.Perm())); err != nil {
		return &os.PathError{Op: "chmod", Path: d.path, Err: err}
	}
	return nil
}

// ReadFile reads the regular file name inside d, at most max bytes (more is an error). A link
// there, or anything but a regular file, is ErrNotRegular.
func (d *Dir) ReadFile(name string, max int64) ([]byte, error) {
	if err := checkName(name); err != nil {
		return nil, d.pathErr("open", name, err)
	}
	// O_NONBLOCK: a FIFO planted there must not hang the open.
	fd, err := unix.Openat(d.fd(), name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, unix.ELOOP) {
			err = ErrNotRegular
		}
		return nil, d.pathErr("open", name, err)
	}
	f := os.NewFile(uintptr(fd), d.join(name))
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, d.pathErr("fstat", name, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, d.pathErr("open", name, ErrNotRegular)
	}
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, d.pathErr("read", name, err)
	}
	if int64(len(b)) > max {
		return nil, d.pathErr("read", name, fmt.Errorf("larger than %d bytes", max))
	}
	return b, nil
}

// WriteFile replaces name inside d with data, atomically: it writes a new file under a
// random temporary name (O_CREAT|O_EXCL, which never follows a link), sets its mode to perm
// and, when uid >= 0, its owner to uid:gid, syncs it, renames it over name (replacing a link
// there, never writing through it) and syncs d. On error nothing is left behind and name is
// as it was.
func (d *Dir) WriteFile(name string, data []byte, perm os.FileMode, uid, gid int) (err error) {
	if err := checkName(name); err != nil {
		return d.pathErr("write", name, err)
	}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	tmp := "." + name + "." + hex.EncodeToString(rnd[:]) + ".tmp"
	fd, err := unix.Openat(d.fd(), tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return d.pathErr("create", tmp, err)
	}
	f := os.NewFile(uintptr(fd), d.join(tmp))
	defer func() {
		if err != nil {
			f.Close()
			_ = unix.Unlinkat(d.fd(), tmp, 0)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return d.pathErr("write", tmp, err)
	}
	if err := unix.Fchmod(fd, uint32(perm.Perm())); err != nil {
		return d.pathErr("chmod", tmp, err)
	}
	if uid >= 0 {
		if err := unix.Fchown(fd, uid, gid); err != nil {
			return d.pathErr("chown", tmp, err)
		}
	}
	if err := f.Sync(); err != nil {
		return d.pathErr("sync", tmp, err)
	}
	if err := f.Close(); err != nil {
		return d.pathErr("close", tmp, err)
	}
	if err := unix.Renameat(d.fd(), tmp, d.fd(), name); err != nil {
		return d.pathErr("rename", tmp, err)
	}
	if err := unix.Fsync(d.fd()); err != nil {
		return &os.PathError{Op: "sync", Path: d.path, Err: err}
	}
	return nil
}

// Rename renames oldname to newname, both inside d. A link is renamed as a link.
func (d *Dir) Rename(oldname, newname string) error {
	if err := checkName(oldname); err != nil {
		return d.pathErr("rename", oldname, err)
	}
	if err := checkName(newname); err != nil {
		return d.pathErr("rename", newname, err)
	}
	if err := unix.Renameat(d.fd(), oldname, d.fd(), newname); err != nil {
		return &os.LinkError{Op: "rename", Old: d.join(oldname), New: d.join(newname), Err: err}
	}
	return unix.Fsync(d.fd())
}

// Remove removes name inside d, a file, a link or an empty directory; a missing name is not
// an error.
func (d *Dir) Remove(name string) error {
	if err := checkName(name); err != nil {
		return d.pathErr("remove", name, err)
	}
	err := unix.Unlinkat(d.fd(), name, 0)
	if errors.Is(err, unix.EISDIR) || errors.Is(err, unix.EPERM) {
		err = unix.Unlinkat(d.fd(), name, unix.AT_REMOVEDIR)
	}
	if err != nil && !errors.Is(err, unix.ENOENT) {
		return d.pathErr("remove", name, err)
	}
	return nil
}

// RemoveAll removes name inside d and everything beneath it, descending only into real
// directories: a link is removed, never followed. A missing name is not an error.
func (d *Dir) RemoveAll(name string) error {
	if err := checkName(name); err != nil {
		return d.pathErr("remove", name, err)
	}
	return d.removeAll(name, 0)
}

func (d *Dir) removeAll(name string, depth int) error {
	err := unix.Unlinkat(d.fd(), name, 0)
	switch {
	case err == nil, errors.Is(err, unix.ENOENT):
		return nil
	case !errors.Is(err, unix.EISDIR) && !errors.Is(err, unix.EPERM):
		return d.pathErr("remove", name, err)
	}
	if depth >= MaxDepth {
		return d.pathErr("remove", name, ErrTooDeep)
	}
	sub, err := d.OpenDir(name)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	// Entries are removed a batch at a time; each batch is read again from the start, since
	// removing while reading may skip some.
	for {
		names, err := sub.batch(true)
		if err != nil {
			sub.Close()
			return err
		}
		if len(names) == 0 {
			break
		}
		for _, n := range names {
			if err := sub.removeAll(n, depth+1); err != nil {
				sub.Close()
				return err
			}
		}
	}
	sub.Close()
	if err := unix.Unlinkat(d.fd(), name, unix.AT_REMOVEDIR); err != nil && !errors.Is(err, unix.ENOENT) {
		return d.pathErr("remove", name, err)
	}
	return nil
}

// batchSize is how many names one directory read returns.
const batchSize = 1024

// batch reads d's next entries ("." and ".." left out), from its start when rewind is set;
// none left is an empty list.
func (d *Dir) batch(rewind bool) ([]string, error) {
	if rewind {
		if _, err := d.f.Seek(0, io.SeekStart); err != nil {
			return nil, &os.PathError{Op: "seek", Path: d.path, Err: err}
		}
	}
	names, err := d.f.Readdirnames(batchSize)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, &os.PathError{Op: "readdir", Path: d.path, Err: err}
	}
	return names, nil
}

// Names lists every entry of d, "." and ".." left out. Use it on directories the caller
// trusts not to hold millions of entries.
func (d *Dir) Names() ([]string, error) {
	var all []string
	for rewind := true; ; rewind = false {
		names, err := d.batch(rewind)
		if err != nil {
			return nil, err
		}
		if len(names) == 0 {
			return all, nil
		}
		all = append(all, names...)
	}
}
