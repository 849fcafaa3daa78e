package nofollow

import (
	"errors"

	"golang.org/x/sys/unix"
)

// visitFunc is called for each entry beneath a walked directory. st describes the entry as
// it was found; for a directory it describes the directory as opened, which sub is, so what
// is described is what the walk descends into.
type visitFunc func(parent *Dir, name string, st *unix.Stat_t, sub *Dir) error

// walk calls fn for every entry beneath d, parents before their children, holding one open
// directory per level and never following a link. An entry removed or replaced while the
// walk runs is passed over.
func (d *Dir) walk(depth int, fn visitFunc) error {
	for rewind := true; ; rewind = false {
		names, err := d.batch(rewind)
		if err != nil {
			return err
		}
		if len(names) == 0 {
			return nil
		}
		for _, n := range names {
			if err := d.visit(depth, n, fn); err != nil {
				return err
			}
		}
	}
}

func (d *Dir) visit(depth int, name string, fn visitFunc) error {
	var st unix.Stat_t
	if err := unix.Fstatat(d.fd(), name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return d.pathErr("lstat", name, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return fn(d, name, &st, nil)
	}
	if depth >= MaxDepth {
		return d.pathErr("open", name, ErrTooDeep)
	}
	sub, err := d.OpenDir(name)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, ErrNotDir) {
		return nil
	}
	if err != nil {
		return err
	}
	defer sub.Close()
	if err := unix.Fstat(sub.fd(), &st); err != nil {
		return d.pathErr("fstat", name, err)
	}
	if err := fn(d, name, &st, sub); err != nil {
		return err
	}
	return sub.walk(depth+1, fn)
}

// Usage adds up the disk space of directory trees: the blocks allocated to every directory,
// file and link in them (what du counts, not file sizes, so a sparse file costs what it
// holds), an inode with several hard links counted once. The zero value is ready; add each
// tree with Add. It is not safe for concurrent use.
type Usage struct {
	// Bytes is the space allocated, in bytes; Inodes how many inodes were counted.
	Bytes  int64
	Inodes int64
	seen   map[[2]uint64]bool
}

// Add counts d and everything beneath it.
func (u *Usage) Add(d *Dir) error {
	st, err := d.Stat()
	if err != nil {
		return err
	}
	u.count(&st)
	return d.walk(0, func(_ *Dir, _ string, st *unix.Stat_t, _ *Dir) error {
		u.count(st)
		return nil
	})
}

func (u *Usage) count(st *unix.Stat_t) {
	if st.Mode&unix.S_IFMT != unix.S_IFDIR && st.Nlink > 1 {
		key := [2]uint64{uint64(st.Dev), st.Ino}
		if u.seen[key] {
			return
		}
		if u.seen == nil {
			u.seen = map[[2]uint64]bool{}
		}
		u.seen[key] = true
	}
	u.Bytes += st.Blocks * 512
	u.Inodes++
}

// ChownTree gives d and everything beneath it to uid:gid. Links are given, not followed;
// entries already owned so are left alone.
func (d *Dir) ChownTree(uid, gid int) error {
	st, err := d.Stat()
	if err != nil {
		return err
	}
	if int(st.Uid) != uid || int(st.Gid) != gid {
		if err := d.Chown(uid, gid); err != nil {
			return err
		}
	}
	return d.walk(0, func(parent *Dir, name string, st *unix.Stat_t, sub *Dir) error {
		if int(st.Uid) == uid && int(st.Gid) == gid {
			return nil
		}
		if sub != nil {
			return sub.Chown(uid, gid)
		}
		err := unix.Fchownat(parent.fd(), name, uid, gid, unix.AT_SYMLINK_NOFOLLOW)
		if err != nil && !errors.Is(err, unix.ENOENT) {
			return parent.pathErr("chown", name, err)
		}
		return nil
	})
}
