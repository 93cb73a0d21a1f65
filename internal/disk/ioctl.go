package disk

import (
	"fmt"
	"math"
	"os"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// getSize64 issues BLKGETSIZE64 with a pointer to a uint64: unix.IoctlGetInt
// would hand the kernel a 4-byte int on 32-bit ARM, which it overruns.
func getSize64(fd uintptr) (uint64, error) {
	var size uint64
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, fd, unix.BLKGETSIZE64, uintptr(unsafe.Pointer(&size)))
	if errno != 0 {
		return 0, fmt.Errorf("BLKGETSIZE64: %w", errno)
	}
	return size, nil
}

// AddPartition tells the kernel that disk has partition n at start with size
// bytes (BLKPG_ADD_PARTITION), without rereading the whole table, so a
// repartitioned root disk needs no reboot. The kernel refuses overlapping
// partitions: add an MBR extended container with a size of one or two
// sectors (1024 bytes), as the kernel's own MBR parser and partx do.
func AddPartition(disk *os.File, n int, start, size uint64) error {
	if err := blkpg(disk, unix.BLKPG_ADD_PARTITION, n, start, size); err != nil {
		return fmt.Errorf("add partition %d (start %d, size %d) to %s: %w", n, start, size, disk.Name(), err)
	}
	return nil
}

// ResizePartition changes the size of partition n of disk in the kernel
// (BLKPG_RESIZE_PARTITION), for a partition grown on disk while in use;
// start must be the partition's current start.
func ResizePartition(disk *os.File, n int, start, size uint64) error {
	if err := blkpg(disk, unix.BLKPG_RESIZE_PARTITION, n, start, size); err != nil {
		return fmt.Errorf("resize partition %d of %s to %d bytes: %w", n, disk.Name(), size, err)
	}
	return nil
}

// DelPartition removes partition n of disk from the kernel
// (BLKPG_DEL_PARTITION); it fails with EBUSY while the partition is in use.
func DelPartition(disk *os.File, n int) error {
	if err := blkpg(disk, unix.BLKPG_DEL_PARTITION, n, 0, 0); err != nil {
		return fmt.Errorf("delete partition %d of %s: %w", n, disk.Name(), err)
	}
	return nil
}

// blkpg issues a BLKPG ioctl. unix.BlkpgIoctlArg and unix.BlkpgPartition are
// generated from linux/blkpg.h per architecture: on 32-bit ARM the EABI
// aligns the partition's long long fields to 8 bytes, so the struct carries
// 4 bytes of tail padding there (152 bytes, as on 64-bit), which
// TestBlkpgLayout checks.
func blkpg(disk *os.File, op int32, n int, start, size uint64) error {
	if n < 1 || n > math.MaxInt32 {
		return fmt.Errorf("invalid partition number %d", n)
	}
	if start > math.MaxInt64 || size > math.MaxInt64 {
		return fmt.Errorf("start %d or size %d out of range", start, size)
	}
	p := &unix.BlkpgPartition{Start: int64(start), Length: int64(size), Pno: int32(n)}
	arg := &unix.BlkpgIoctlArg{
		Op:      op,
		Datalen: int32(unsafe.Sizeof(*p)),
		Data:    (*byte)(unsafe.Pointer(p)),
	}
	rc, err := disk.SyscallConn()
	if err != nil {
		return err
	}
	var errno unix.Errno
	err = rc.Control(func(fd uintptr) {
		_, _, errno = unix.Syscall(unix.SYS_IOCTL, fd, unix.BLKPG, uintptr(unsafe.Pointer(arg)))
	})
	runtime.KeepAlive(arg)
	runtime.KeepAlive(p)
	if err != nil {
		return err
	}
	if errno != 0 {
		return errno
	}
	return nil
}
