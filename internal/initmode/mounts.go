package initmode

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/bascule-ota/bascule/internal/disk"
)

// apiMount is one of the kernel's API file systems pre-init provides.
type apiMount struct {
	dir, fstype, source string
	flags               uintptr
	data                string
}

// apiMounts are mounted when they are not mount points yet. /dev is among
// them because a kernel without CONFIG_DEVTMPFS_MOUNT, or a root that the
// kernel did not mount itself, leaves it empty, and BusyBox init does not
// mount it (the Buildroot integrators' problem with Rugix).
var apiMounts = []apiMount{
	{dir: "proc", fstype: "proc", source: "proc", flags: unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC},
	{dir: "sys", fstype: "sysfs", source: "sysfs", flags: unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC},
	{dir: "dev", fstype: "devtmpfs", source: "devtmpfs", flags: unix.MS_NOSUID, data: "mode=0755"},
	{dir: "run", fstype: "tmpfs", source: "tmpfs", flags: unix.MS_NOSUID | unix.MS_NODEV, data: "mode=0755"},
}

// mountAPI mounts proc, sysfs, devtmpfs and the /run tmpfs below root
// unless they are mounted already.
func mountAPI(root string) error {
	for _, m := range apiMounts {
		dir := filepath.Join(root, m.dir)
		if ok, err := disk.IsMountPoint(dir); err == nil && ok {
			continue
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("mount %s on %s: %w", m.fstype, dir, err)
		}
		if err := unix.Mount(m.source, dir, m.fstype, m.flags, m.data); err != nil {
			return fmt.Errorf("mount %s on %s: %w", m.fstype, dir, err)
		}
	}
	return nil
}

// ensureStdio opens the console for standard input, output and error if
// the kernel could not (no /dev/console on the root before devtmpfs was
// mounted), so that messages and the real init have a console.
func ensureStdio(devDir string) error {
	for fd := 0; fd <= 2; fd++ {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil {
			continue
		}
		console := filepath.Join(devDir, "console")
		nfd, err := unix.Open(console, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open %s for fd %d: %w", console, fd, err)
		}
		if nfd != fd {
			err = unix.Dup3(nfd, fd, 0)
			unix.Close(nfd)
			if err != nil {
				return fmt.Errorf("dup %s to fd %d: %w", console, fd, err)
			}
		} else if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, 0); err != nil {
			return fmt.Errorf("fd %d: %w", fd, err)
		}
	}
	return nil
}

// blockFilesystems lists the file systems the kernel can mount from a
// block device (those in /proc/filesystems without "nodev").
func blockFilesystems(procDir string) []string {
	f, err := os.Open(filepath.Join(procDir, "filesystems"))
	if err != nil {
		return nil
	}
	defer f.Close()
	var types []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) == 1 {
			types = append(types, fields[0])
		}
	}
	return types
}

// mountDevice mounts a block device, trying the preferred file system
// types first and then every other block file system the kernel knows:
// the mount(2) call needs a type, and pre-init has no blkid.
func mountDevice(dev, target string, flags uintptr, data string, procDir string, preferred ...string) error {
	types := append([]string{}, preferred...)
	for _, t := range blockFilesystems(procDir) {
		if !contains(types, t) {
			types = append(types, t)
		}
	}
	if _, err := os.Stat(dev); err != nil {
		return err
	}
	var errs []error
	for _, t := range types {
		err := unix.Mount(dev, target, t, flags, data)
		if err == nil {
			return nil
		}
		if errors.Is(err, unix.ENODEV) && !contains(preferred, t) {
			continue // the kernel does not know the type: not worth a line
		}
		errs = append(errs, fmt.Errorf("%s: %w", t, err))
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EACCES) || errors.Is(err, unix.EBUSY) {
			break // no point in trying other types
		}
	}
	if len(errs) == 0 {
		return fmt.Errorf("no file system type to try")
	}
	return errors.Join(errs...)
}

// RemountConfig remounts the config partition mounted at dir read-write
// (rw) or back read-only, keeping pre-init's nosuid, nodev and noexec. It
// is what Options.Bootstrap needs to remove the bootstrap marker.
func RemountConfig(dir string, rw bool) error {
	flags := uintptr(configFlags)
	if !rw {
		flags |= unix.MS_RDONLY
	}
	if err := remount(dir, flags); err != nil {
		return fmt.Errorf("remount config partition %s (rw=%v): %w", dir, rw, err)
	}
	return nil
}

// remount changes the flags of the mount at dir.
func remount(dir string, flags uintptr) error {
	return unix.Mount("", dir, "", unix.MS_REMOUNT|flags, "")
}

const configFlags = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
