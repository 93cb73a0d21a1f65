package disk

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Roots of the kernel and device trees, replaced by tests.
var (
	sysfs       = "/sys"
	devfs       = "/dev"
	rootDir     = "/"
	systemMount = "/run/rugix/mounts/system"
)

// BlockDevice is a block device, its parent disk if it is a partition, and
// its partition number; the JSON form is what "rugix-ctrl utils
// find-block-device" prints.
type BlockDevice struct {
	Device    string `json:"device"`
	Parent    string `json:"parent,omitempty"`
	Partition int    `json:"partition,omitempty"`
}

// PartitionPath returns the device path of partition n of disk following the
// kernel's naming: "p" goes between the two when the disk name ends in a
// digit (/dev/mmcblk0p5, /dev/nvme0n1p5, /dev/loop0p5, but /dev/sda5).
func PartitionPath(disk string, n int) string {
	if disk != "" && disk[len(disk)-1] >= '0' && disk[len(disk)-1] <= '9' {
		return disk + "p" + strconv.Itoa(n)
	}
	return disk + strconv.Itoa(n)
}

// FindBlockDevice returns the block device backing the filesystem at path,
// or the device itself if path is a block device node.
func FindBlockDevice(path string) (*BlockDevice, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return nil, fmt.Errorf("find block device of %s: %w", path, &fs.PathError{Op: "stat", Path: path, Err: err})
	}
	dev := uint64(st.Dev)
	if st.Mode&unix.S_IFMT == unix.S_IFBLK {
		dev = uint64(st.Rdev)
	}
	bd, err := blockDeviceByNumber(unix.Major(dev), unix.Minor(dev))
	if err != nil {
		return nil, fmt.Errorf("find block device of %s: %w", path, err)
	}
	return bd, nil
}

// sysfsDir returns the canonical sysfs directory of block device maj:min.
func sysfsDir(maj, min uint32) (string, error) {
	link := filepath.Join(sysfs, "dev", "block", fmt.Sprintf("%d:%d", maj, min))
	dir, err := filepath.EvalSymlinks(link)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("device %d:%d is not a block device (no %s)", maj, min, link)
	}
	return dir, err
}

func blockDeviceByNumber(maj, min uint32) (*BlockDevice, error) {
	dir, err := sysfsDir(maj, min)
	if err != nil {
		return nil, err
	}
	return blockDeviceFromSysfs(dir)
}

// blockDeviceFromSysfs describes the block device whose sysfs directory is
// dir. A partition's directory has a "partition" file holding its number and
// lies inside the directory of its disk.
func blockDeviceFromSysfs(dir string) (*BlockDevice, error) {
	bd := &BlockDevice{Device: devPath(filepath.Base(dir))}
	n, ok, err := partitionNumber(dir)
	if err != nil {
		return nil, err
	}
	if ok {
		bd.Partition = n
		bd.Parent = devPath(filepath.Base(filepath.Dir(dir)))
	}
	return bd, nil
}

// partitionNumber reads the "partition" file of the sysfs directory dir; ok
// is false if dir is not a partition.
func partitionNumber(dir string) (n int, ok bool, err error) {
	b, err := os.ReadFile(filepath.Join(dir, "partition"))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	n, err = strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || n < 1 {
		return 0, false, fmt.Errorf("invalid partition number %q in %s", b, dir)
	}
	return n, true, nil
}

// devPath maps a sysfs block device name to its device node: sysfs spells
// the '/' of names like cciss/c0d0 as '!'.
func devPath(name string) string {
	return filepath.Join(devfs, strings.ReplaceAll(name, "!", "/"))
}

// ResolvePartition returns partition n of disk, checking that it exists:
// for a block device known to sysfs among the disk's partitions there, else
// (an image file, or a partition the kernel has not been told about yet) in
// the disk's partition table.
func ResolvePartition(disk string, n int) (*BlockDevice, error) {
	if n < 1 {
		return nil, fmt.Errorf("resolve partition %d of %s: invalid partition number", n, disk)
	}
	var st unix.Stat_t
	if err := unix.Stat(disk, &st); err != nil {
		return nil, fmt.Errorf("resolve partition %d of %s: %w", n, disk, &fs.PathError{Op: "stat", Path: disk, Err: err})
	}
	parent := disk
	if st.Mode&unix.S_IFMT == unix.S_IFBLK {
		rdev := uint64(st.Rdev)
		dir, err := sysfsDir(unix.Major(rdev), unix.Minor(rdev))
		if err != nil {
			return nil, fmt.Errorf("resolve partition %d of %s: %w", n, disk, err)
		}
		if _, isPart, err := partitionNumber(dir); err != nil || isPart {
			if err == nil {
				err = errors.New("it is itself a partition")
			}
			return nil, fmt.Errorf("resolve partition %d of %s: %w", n, disk, err)
		}
		parent = devPath(filepath.Base(dir))
		part, err := findSysfsPartition(dir, n)
		if err != nil {
			return nil, fmt.Errorf("resolve partition %d of %s: %w", n, disk, err)
		}
		if part != "" {
			return &BlockDevice{Device: devPath(part), Parent: parent, Partition: n}, nil
		}
	}
	t, err := ReadDevice(disk)
	if err != nil {
		return nil, fmt.Errorf("resolve partition %d of %s: %w", n, disk, err)
	}
	if t.Partition(n) == nil {
		return nil, fmt.Errorf("resolve partition %d of %s: no such partition", n, disk)
	}
	return &BlockDevice{Device: PartitionPath(parent, n), Parent: parent, Partition: n}, nil
}

// findSysfsPartition returns the name of partition n among the
// subdirectories of the disk's sysfs directory, or "" if there is none.
func findSysfsPartition(diskDir string, n int) (string, error) {
	entries, err := os.ReadDir(diskDir)
	if err != nil {
		return "", err
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		m, ok, err := partitionNumber(filepath.Join(diskDir, e.Name()))
		if err != nil {
			return "", err
		}
		if ok && m == n {
			return e.Name(), nil
		}
	}
	return "", nil
}

// RootDisk returns the partition holding the root filesystem and, as Parent,
// the root disk. Like Rugix it looks at /run/rugix/mounts/system when that
// exists, since / may be an overlay there.
func RootDisk() (*BlockDevice, error) {
	path := systemMount
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		path = rootDir
	} else if err != nil {
		return nil, fmt.Errorf("find root disk: %w", err)
	}
	bd, err := FindBlockDevice(path)
	if err != nil {
		return nil, fmt.Errorf("find root disk: %w", err)
	}
	if bd.Parent == "" {
		return nil, fmt.Errorf("find root disk: root filesystem %s is on %s, which is not a partition", path, bd.Device)
	}
	return bd, nil
}
