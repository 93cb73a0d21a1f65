package disk

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// mountinfo is the mount table consulted by IsMountPoint, replaced by tests.
var mountinfo = "/proc/self/mountinfo"

// IsMountPoint reports whether path (symlinks resolved) is a mount point. A
// device differing from the parent directory's settles it; otherwise bind
// mounts and mounts of the parent's own filesystem are looked up in
// /proc/self/mountinfo, which is skipped if /proc is not mounted (early init).
func IsMountPoint(path string) (bool, error) {
	abs, err := filepath.Abs(path)
	if err == nil {
		abs, err = filepath.EvalSymlinks(abs)
	}
	if err != nil {
		return false, fmt.Errorf("is %s a mount point: %w", path, err)
	}
	var st, pst unix.Stat_t
	if err := unix.Stat(abs, &st); err != nil {
		return false, fmt.Errorf("is %s a mount point: %w", path, &fs.PathError{Op: "stat", Path: abs, Err: err})
	}
	parent := filepath.Dir(abs)
	if err := unix.Stat(parent, &pst); err != nil {
		return false, fmt.Errorf("is %s a mount point: %w", path, &fs.PathError{Op: "stat", Path: parent, Err: err})
	}
	if st.Dev != pst.Dev || (st.Ino == pst.Ino) {
		return true, nil // another filesystem, or the root directory
	}
	found, err := inMountinfo(abs)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("is %s a mount point: %w", path, err)
	}
	return found, nil
}

// inMountinfo reports whether path is listed as a mount point in mountinfo.
func inMountinfo(path string) (bool, error) {
	f, err := os.Open(mountinfo)
	if err != nil {
		return false, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 0, 4096), 1<<20)
	for s.Scan() {
		// "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw"
		fields := strings.Fields(s.Text())
		if len(fields) > 4 && unescapeMountPath(fields[4]) == path {
			return true, nil
		}
	}
	if err := s.Err(); err != nil {
		return false, fmt.Errorf("read %s: %w", mountinfo, err)
	}
	return false, nil
}

// unescapeMountPath undoes the octal escapes (\040 for space, \011, \012,
// \134) the kernel writes in mountinfo paths.
func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }
