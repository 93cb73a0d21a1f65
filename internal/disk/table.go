// Package disk reads MBR and GPT partition tables natively and maps
// filesystems and partition numbers to block devices through sysfs, so that
// Bascule needs neither sfdisk nor blkid on the device. Partition numbers,
// names and PARTUUIDs follow the conventions of sfdisk and the Linux kernel,
// which is what Rugix's default slot layout (§3.1 of the compatibility
// reference) is written against.
package disk

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// Table is a partition table read natively (no sfdisk needed on the device).
type Table struct {
	// Type is "dos" (MBR) or "gpt", the label names sfdisk uses.
	Type string
	// DiskID is, for MBR, the disk signature as 8 lowercase hex digits
	// without "0x" ("1a2b3c4d"); for GPT the lowercase disk GUID.
	DiskID     string
	SectorSize int
	// Partitions are in partition-number order. MBR numbers 1-4 are the
	// primary slots (gaps where a slot is empty), logical partitions are
	// numbered from 5 in the order of the EBR chain. GPT numbers are the
	// entry index plus one; unused entries are left out.
	Partitions []Partition
	// Warnings tells about problems that did not prevent reading the table,
	// such as a corrupt primary GPT header that was replaced by the backup.
	Warnings []string
}

// Partition is one entry of a Table. Start and Size are in bytes.
type Partition struct {
	Number int
	Start  uint64
	Size   uint64
	// Type is, for MBR, the partition type byte in lowercase hex without
	// leading zeros or "0x", exactly as "sfdisk --json" prints it ("c",
	// "83", "5"); for GPT the uppercase type GUID as sfdisk prints it.
	Type string
	// UUID is the PARTUUID as the kernel and blkid spell it: for MBR
	// "<diskid>-<nn>" with the number in two hex digits ("1a2b3c4d-05"),
	// for GPT the lowercase partition GUID.
	UUID string
	// Name is the GPT partition name (empty for MBR).
	Name string
	// Bootable is the MBR active flag (0x80).
	Bootable bool
	// Extended marks an MBR extended container (types 0x05, 0x0f, 0x85).
	// It is listed under its primary slot number with its full size, as
	// sfdisk does; in the Rugix default MBR layout it is partition 4.
	Extended bool
}

// Partition returns partition number n of t, or nil if there is none.
func (t *Table) Partition(n int) *Partition {
	for i := range t.Partitions {
		if t.Partitions[i].Number == n {
			return &t.Partitions[i]
		}
	}
	return nil
}

// ReadTable reads the partition table of a disk of size bytes whose logical
// sector size is sectorSize (512 or 4096). With sectorSize 0, as for image
// files, 512 is assumed unless a GPT header is found only at 4096 bytes.
// A protective MBR (an entry of type 0xee) selects GPT.
func ReadTable(r io.ReaderAt, size int64, sectorSize int) (*Table, error) {
	if size < 0 {
		return nil, fmt.Errorf("negative disk size %d", size)
	}
	detect := sectorSize == 0
	if detect {
		sectorSize = 512
	}
	switch sectorSize {
	case 512, 1024, 2048, 4096:
	default:
		return nil, fmt.Errorf("unsupported sector size %d", sectorSize)
	}
	if size < 512 {
		return nil, fmt.Errorf("disk of %d bytes is too small for a partition table", size)
	}
	// The MBR is the first 512 bytes whatever the sector size.
	mbr := make([]byte, 512)
	if err := readAt(r, mbr, 0); err != nil {
		return nil, fmt.Errorf("read MBR: %w", err)
	}
	if mbr[510] != 0x55 || mbr[511] != 0xaa {
		return nil, errors.New("no partition table: MBR signature 0x55aa missing")
	}
	if isProtectiveMBR(mbr) {
		if detect {
			sectorSize = detectGPTSectorSize(r, size)
		}
		return readGPT(r, size, sectorSize)
	}
	return readMBR(r, mbr, size, sectorSize)
}

// ReadDevice reads the partition table of a block device or image file. For
// a block device the logical sector size comes from BLKSSZGET and the size
// from BLKGETSIZE64; for a file from stat, with the sector size detected as
// in ReadTable.
func ReadDevice(dev string) (*Table, error) {
	f, err := os.Open(dev)
	if err != nil {
		return nil, fmt.Errorf("read partition table: %w", err)
	}
	defer f.Close()
	size, sectorSize, err := deviceGeometry(f)
	if err != nil {
		return nil, fmt.Errorf("read partition table of %s: %w", dev, err)
	}
	t, err := ReadTable(f, size, sectorSize)
	if err != nil {
		return nil, fmt.Errorf("read partition table of %s: %w", dev, err)
	}
	return t, nil
}

// deviceGeometry returns the size in bytes and the logical sector size of f,
// a sector size of 0 meaning "not a block device, detect".
func deviceGeometry(f *os.File) (size int64, sectorSize int, err error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, 0, err
	}
	if fi.Mode()&os.ModeDevice == 0 || fi.Mode()&os.ModeCharDevice != 0 {
		if !fi.Mode().IsRegular() {
			return 0, 0, fmt.Errorf("not a block device or regular file (mode %v)", fi.Mode())
		}
		return fi.Size(), 0, nil
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, 0, err
	}
	var (
		bytes uint64 // BLKGETSIZE64 writes a u64 even where size_t is 32-bit
		ss    int
		ioErr error
	)
	err = rc.Control(func(fd uintptr) {
		ss, ioErr = unix.IoctlGetInt(int(fd), unix.BLKSSZGET)
		if ioErr != nil {
			ioErr = fmt.Errorf("BLKSSZGET: %w", ioErr)
			return
		}
		bytes, ioErr = getSize64(fd)
	})
	if err == nil {
		err = ioErr
	}
	if err != nil {
		return 0, 0, err
	}
	if bytes > 1<<63-1 {
		return 0, 0, fmt.Errorf("device size %d out of range", bytes)
	}
	return int64(bytes), ss, nil
}

// readAt fills buf from offset off; a short read is an error.
func readAt(r io.ReaderAt, buf []byte, off int64) error {
	n, err := r.ReadAt(buf, off)
	if n == len(buf) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("read %d bytes at offset %d: %w", len(buf), off, err)
}
