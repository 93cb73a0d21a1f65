package system

import (
	"errors"
	"fmt"
	"io/fs"

	"golang.org/x/sys/unix"
)

// SystemDevice returns the device number (st_dev) of the file system the
// system runs from: MountSystem if init mounted the system there, else /.
// It is the systemDev argument of New.
func SystemDevice() (uint64, error) {
	path := MountSystem
	var st unix.Stat_t
	if err := unix.Stat(path, &st); errors.Is(err, fs.ErrNotExist) {
		path = "/"
		err = unix.Stat(path, &st)
		if err != nil {
			return 0, fmt.Errorf("stat %s: %w", path, err)
		}
	} else if err != nil {
		return 0, fmt.Errorf("stat %s: %w", path, err)
	}
	return uint64(st.Dev), nil
}

// DeviceNumber returns the device number (st_rdev) of the block device node
// at path, following symlinks such as /dev/disk/by-partlabel/*. It is the
// devOf argument of New.
func DeviceNumber(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, fmt.Errorf("stat %s: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return 0, fmt.Errorf("%s is not a block device", path)
	}
	return uint64(st.Rdev), nil
}
