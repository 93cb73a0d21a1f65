package initmode

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/bascule-ota/bascule/internal/disk"
)

// switchRoot makes the new root the root file system, taking /dev,
// /proc, /sys and /run along. The kernel mounted devtmpfs on the initial
// root only; an init that does not mount /dev itself (BusyBox) would find
// it empty otherwise.
//
// /dev, /proc and /sys are moved (MS_MOVE). /run cannot be: the new root
// is mounted below it, and the kernel refuses to move a mount into its
// own subtree. It is bound recursively into the new root instead, as
// Rugix does; the original goes with the old root.
//
// If anything fails, what was moved is moved back, so that the real init
// can still be started on the old root.
func (b *boot) switchRoot() error {
	if b.newRoot == b.root {
		b.seenAs = b.root
		return nil
	}
	// Mounts in a shared peer group can be neither moved nor pivoted.
	if err := unix.Mount("", b.root, "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make the mounts below %s private: %w", b.root, err)
	}
	// Decide what to move before moving anything: the mount point check
	// may need /proc.
	var toMove []string
	for _, d := range []string{"/dev", "/proc", "/sys"} {
		if ok, err := disk.IsMountPoint(b.path(d)); err == nil && ok {
			toMove = append(toMove, d)
		}
	}
	runSrc, runDst := b.path("/run"), filepath.Join(b.newRoot, "run")
	if err := os.MkdirAll(runDst, 0o755); err != nil {
		return fmt.Errorf("bind %s into the new root: %w", runSrc, err)
	}
	if err := unix.Mount(runSrc, runDst, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind %s to %s: %w", runSrc, runDst, err)
	}
	var moved [][2]string
	undo := func() {
		for i := len(moved) - 1; i >= 0; i-- {
			if err := unix.Mount(moved[i][1], moved[i][0], "", unix.MS_MOVE, ""); err != nil {
				b.log.errorf("move %s back to %s: %v", moved[i][1], moved[i][0], err)
			}
		}
		if err := unix.Unmount(runDst, unix.MNT_DETACH); err != nil {
			b.log.errorf("detach %s: %v", runDst, err)
		}
	}
	for _, d := range toMove {
		src, dst := b.path(d), filepath.Join(b.newRoot, d)
		err := os.MkdirAll(dst, 0o755)
		if err == nil {
			err = unix.Mount(src, dst, "", unix.MS_MOVE, "")
		}
		if err != nil {
			undo()
			return fmt.Errorf("move %s to %s: %w", src, dst, err)
		}
		moved = append(moved, [2]string{src, dst})
	}
	seen, err := b.o.PivotRoot(b.newRoot)
	if err != nil {
		undo()
		return fmt.Errorf("switch to the new root %s: %w", b.newRoot, err)
	}
	b.seenAs = seen
	return nil
}

// pivotRoot makes newRoot the root with pivot_root(".", "."), which
// stacks the old root on the new one, and detaches the old root. chroot is
// not used: it leaves the old root reachable, which confuses container
// runtimes. An initramfs (rootfs) cannot be pivoted away from; there the
// new root is moved over it and chrooted into, as switch_root does.
func pivotRoot(newRoot string) (string, error) {
	if err := unix.Chdir(newRoot); err != nil {
		return "", fmt.Errorf("chdir %s: %w", newRoot, err)
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		if !errors.Is(err, unix.EINVAL) {
			unix.Chdir("/")
			return "", fmt.Errorf("pivot_root %s: %w", newRoot, err)
		}
		if merr := unix.Mount(".", "/", "", unix.MS_MOVE, ""); merr != nil {
			unix.Chdir("/")
			return "", fmt.Errorf("pivot_root %s: %w; move it to /: %v", newRoot, err, merr)
		}
		if err := unix.Chroot("."); err != nil {
			return "", fmt.Errorf("chroot %s: %w", newRoot, err)
		}
		return "/", unix.Chdir("/")
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return "", fmt.Errorf("detach the old root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return "", fmt.Errorf("chdir /: %w", err)
	}
	return "/", nil
}
