package disk

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// KernelPartition is a partition of a disk as the kernel knows it, which
// after a table change lags behind the disk until BLKPG or a reread tells
// it. Start and Size are in bytes.
type KernelPartition struct {
	Number      int
	Start, Size uint64
}

// KernelPartitions returns the partitions the kernel has registered for the
// block device dev (a whole disk), by number, from sysfs, so that a caller
// adds or resizes only what differs from the table on the disk.
func KernelPartitions(dev string) (map[int]KernelPartition, error) {
	var st unix.Stat_t
	if err := unix.Stat(dev, &st); err != nil {
		return nil, fmt.Errorf("kernel partitions of %s: %w", dev, &fs.PathError{Op: "stat", Path: dev, Err: err})
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return nil, fmt.Errorf("kernel partitions of %s: not a block device", dev)
	}
	rdev := uint64(st.Rdev)
	dir, err := sysfsDir(unix.Major(rdev), unix.Minor(rdev))
	if err != nil {
		return nil, fmt.Errorf("kernel partitions of %s: %w", dev, err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("kernel partitions of %s: %w", dev, err)
	}
	parts := map[int]KernelPartition{}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		sub := filepath.Join(dir, e.Name())
		n, ok, err := partitionNumber(sub)
		if err != nil {
			return nil, fmt.Errorf("kernel partitions of %s: %w", dev, err)
		}
		if !ok {
			continue
		}
		// sysfs counts in 512-byte units whatever the sector size.
		start, err := readSysfsUint(filepath.Join(sub, "start"))
		if err != nil {
			return nil, fmt.Errorf("kernel partitions of %s: %w", dev, err)
		}
		size, err := readSysfsUint(filepath.Join(sub, "size"))
		if err != nil {
			return nil, fmt.Errorf("kernel partitions of %s: %w", dev, err)
		}
		parts[n] = KernelPartition{Number: n, Start: start * 512, Size: size * 512}
	}
	return parts, nil
}

func readSysfsUint(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}
