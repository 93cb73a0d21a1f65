package initmode

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// copyEntry copies one file system entry (not its children) from src to
// dst, keeping owner, mode and times.
func copyEntry(src, dst string) error {
	var st unix.Stat_t
	if err := unix.Lstat(src, &st); err != nil {
		return fmt.Errorf("copy %s: lstat: %w", src, err)
	}
	perm := st.Mode & 0o7777
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		if err := os.Mkdir(dst, 0o700); err != nil {
			return fmt.Errorf("copy %s: %w", src, err)
		}
	case unix.S_IFREG:
		if err := copyData(src, dst); err != nil {
			return err
		}
	case unix.S_IFLNK:
		target, err := os.Readlink(src)
		if err != nil {
			return fmt.Errorf("copy %s: %w", src, err)
		}
		if err := os.Symlink(target, dst); err != nil {
			return fmt.Errorf("copy %s: %w", src, err)
		}
		if err := unix.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil {
			return fmt.Errorf("copy %s: chown %s: %w", src, dst, err)
		}
		return setTimes(dst, &st, unix.AT_SYMLINK_NOFOLLOW)
	case unix.S_IFCHR, unix.S_IFBLK, unix.S_IFIFO:
		if err := unix.Mknod(dst, st.Mode&unix.S_IFMT|0o600, int(st.Rdev)); err != nil {
			return fmt.Errorf("copy %s: mknod %s: %w", src, dst, err)
		}
	default: // sockets belong to a running program, not to a copy
		return nil
	}
	// chown before chmod: chown clears set-user-ID and set-group-ID bits.
	if err := os.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil {
		return fmt.Errorf("copy %s: chown %s: %w", src, dst, err)
	}
	if err := unix.Chmod(dst, perm); err != nil {
		return fmt.Errorf("copy %s: chmod %s: %w", src, dst, err)
	}
	return setTimes(dst, &st, 0)
}

func copyData(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	return nil
}

func setTimes(path string, st *unix.Stat_t, flags int) error {
	ts := []unix.Timespec{st.Atim, st.Mtim}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, path, ts, flags); err != nil {
		return fmt.Errorf("set times of %s: %w", path, err)
	}
	return nil
}

// copyTree copies the directory src to dst, which must not exist, with
// modes, owners and modification times, as `cp -a` does (extended
// attributes aside). Symbolic links are copied as links, device nodes
// and FIFOs recreated, sockets skipped.
func copyTree(src, dst string) error {
	var dirs []string
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, rel)
		}
		return copyEntry(path, filepath.Join(dst, rel))
	})
	if err != nil {
		return err
	}
	// Adding the children changed the directories' times: restore them,
	// deepest first.
	for i := len(dirs) - 1; i >= 0; i-- {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(src, dirs[i]), &st); err != nil {
			return fmt.Errorf("copy %s: lstat: %w", filepath.Join(src, dirs[i]), err)
		}
		if err := setTimes(filepath.Join(dst, dirs[i]), &st, 0); err != nil {
			return err
		}
	}
	return nil
}

// copyTreeTo copies src to dst through a temporary sibling that is
// renamed into place at the end, so that a power cut during a first-boot
// copy leaves no half copy that would be taken for the real thing.
func copyTreeTo(src, dst string) error {
	tmp := dst + ".bascule-copy"
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	if err := copyTree(src, tmp); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	return os.Rename(tmp, dst)
}
