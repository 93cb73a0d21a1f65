package disk

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strings"
	"unicode/utf16"
)

const (
	gptSignature = "EFI PART"
	// maxGPTArray bounds the partition entry array read into memory; the
	// usual array is 128 entries of 128 bytes (16 KiB).
	maxGPTArray = 1 << 20
)

type gptHeader struct {
	lba         uint64
	altLBA      uint64
	firstUsable uint64
	lastUsable  uint64
	diskGUID    []byte
	entriesLBA  uint64
	numEntries  uint32
	entrySize   uint32
	entriesCRC  uint32
}

// detectGPTSectorSize returns 4096 if a GPT signature is found only where a
// 4096-byte-sector disk has it, and 512 otherwise (image files carry no
// sector size of their own).
func detectGPTSectorSize(r io.ReaderAt, size int64) int {
	has := func(off int64) bool {
		if off < 0 || off+8 > size {
			return false
		}
		b := make([]byte, 8)
		return readAt(r, b, off) == nil && string(b) == gptSignature
	}
	switch {
	case has(512):
		return 512
	case has(4096):
		return 4096
	case !has(size-size%512-512) && has(size-size%4096-4096):
		return 4096 // primary header gone, backup at the 4096-byte end
	}
	return 512
}

// readGPT reads the GPT, from the primary header at LBA 1 or, if that is
// corrupt, from the backup header at the end of the disk.
func readGPT(r io.ReaderAt, size int64, ss int) (*Table, error) {
	sectors := uint64(size) / uint64(ss)
	if sectors < 3 {
		return nil, fmt.Errorf("disk of %d bytes is too small for a GPT", size)
	}
	last := sectors - 1
	h, entries, perr := readGPTHeader(r, 1, ss, sectors)
	var warnings []string
	if perr != nil {
		var berr error
		h, entries, berr = readGPTHeader(r, last, ss, sectors)
		if berr != nil {
			return nil, fmt.Errorf("no valid GPT: primary header: %v; backup header at LBA %d: %v", perr, last, berr)
		}
		warnings = append(warnings, fmt.Sprintf("primary GPT header is corrupt: %v; using the backup header at LBA %d", perr, last))
	} else {
		alt := h.altLBA
		if alt == 0 || alt >= sectors {
			alt = last
		}
		if _, _, berr := readGPTHeader(r, alt, ss, sectors); berr != nil {
			warnings = append(warnings, fmt.Sprintf("backup GPT header at LBA %d is corrupt: %v; using the primary header", alt, berr))
		}
	}
	t := &Table{
		Type:       "gpt",
		DiskID:     strings.ToLower(formatGUID(h.diskGUID)),
		SectorSize: ss,
		Warnings:   warnings,
	}
	for i := uint32(0); i < h.numEntries; i++ {
		e := entries[uint64(i)*uint64(h.entrySize):]
		typ := e[0:16]
		if bytes.Equal(typ, make([]byte, 16)) {
			continue
		}
		first := binary.LittleEndian.Uint64(e[32:])
		lastLBA := binary.LittleEndian.Uint64(e[40:])
		if first > lastLBA || first < h.firstUsable || lastLBA > h.lastUsable {
			return nil, fmt.Errorf("GPT partition %d (sectors %d-%d) lies outside the usable sectors %d-%d",
				i+1, first, lastLBA, h.firstUsable, h.lastUsable)
		}
		t.Partitions = append(t.Partitions, Partition{
			Number: int(i) + 1,
			Start:  first * uint64(ss),
			Size:   (lastLBA - first + 1) * uint64(ss),
			Type:   formatGUID(typ),
			UUID:   strings.ToLower(formatGUID(e[16:32])),
			Name:   gptName(e[56:128]),
		})
	}
	return t, nil
}

// readGPTHeader reads and checks the GPT header at lba and its partition
// entry array, returning the array.
func readGPTHeader(r io.ReaderAt, lba uint64, ss int, sectors uint64) (*gptHeader, []byte, error) {
	if lba >= sectors {
		return nil, nil, fmt.Errorf("LBA %d beyond the end of the disk", lba)
	}
	buf := make([]byte, ss)
	if err := readAt(r, buf, int64(lba)*int64(ss)); err != nil {
		return nil, nil, err
	}
	if string(buf[:8]) != gptSignature {
		return nil, nil, errors.New("signature \"EFI PART\" missing")
	}
	hsize := binary.LittleEndian.Uint32(buf[12:])
	if hsize < 92 || hsize > uint32(ss) {
		return nil, nil, fmt.Errorf("invalid header size %d", hsize)
	}
	want := binary.LittleEndian.Uint32(buf[16:])
	hdr := append([]byte(nil), buf[:hsize]...)
	clear(hdr[16:20])
	if got := crc32.ChecksumIEEE(hdr); got != want {
		return nil, nil, fmt.Errorf("header CRC32 mismatch (stored %#08x, computed %#08x)", want, got)
	}
	h := &gptHeader{
		lba:         binary.LittleEndian.Uint64(buf[24:]),
		altLBA:      binary.LittleEndian.Uint64(buf[32:]),
		firstUsable: binary.LittleEndian.Uint64(buf[40:]),
		lastUsable:  binary.LittleEndian.Uint64(buf[48:]),
		diskGUID:    buf[56:72],
		entriesLBA:  binary.LittleEndian.Uint64(buf[72:]),
		numEntries:  binary.LittleEndian.Uint32(buf[80:]),
		entrySize:   binary.LittleEndian.Uint32(buf[84:]),
		entriesCRC:  binary.LittleEndian.Uint32(buf[88:]),
	}
	switch {
	case h.lba != lba:
		return nil, nil, fmt.Errorf("header at LBA %d claims to be at LBA %d", lba, h.lba)
	case h.firstUsable > h.lastUsable || h.lastUsable >= sectors:
		return nil, nil, fmt.Errorf("usable sectors %d-%d do not fit a disk of %d sectors", h.firstUsable, h.lastUsable, sectors)
	case h.entrySize < 128 || h.entrySize > 4096 || h.entrySize&(h.entrySize-1) != 0:
		return nil, nil, fmt.Errorf("invalid partition entry size %d", h.entrySize)
	case uint64(h.numEntries)*uint64(h.entrySize) > maxGPTArray:
		return nil, nil, fmt.Errorf("%d partition entries of %d bytes exceed the limit of %d bytes", h.numEntries, h.entrySize, maxGPTArray)
	}
	arrayBytes := uint64(h.numEntries) * uint64(h.entrySize)
	arraySectors := (arrayBytes + uint64(ss) - 1) / uint64(ss)
	if h.entriesLBA >= sectors || arraySectors > sectors-h.entriesLBA ||
		(lba >= h.entriesLBA && lba < h.entriesLBA+arraySectors) {
		return nil, nil, fmt.Errorf("partition entry array at LBA %d (%d sectors) is outside the disk or overlaps the header", h.entriesLBA, arraySectors)
	}
	entries := make([]byte, arrayBytes)
	if err := readAt(r, entries, int64(h.entriesLBA)*int64(ss)); err != nil {
		return nil, nil, fmt.Errorf("read partition entries: %w", err)
	}
	if got := crc32.ChecksumIEEE(entries); got != h.entriesCRC {
		return nil, nil, fmt.Errorf("partition entry array CRC32 mismatch (stored %#08x, computed %#08x)", h.entriesCRC, got)
	}
	return h, entries, nil
}

// formatGUID formats a GUID stored in the mixed-endian on-disk layout in
// uppercase, as sfdisk prints it.
func formatGUID(b []byte) string {
	return fmt.Sprintf("%08X-%04X-%04X-%X-%X",
		binary.LittleEndian.Uint32(b[0:4]),
		binary.LittleEndian.Uint16(b[4:6]),
		binary.LittleEndian.Uint16(b[6:8]),
		b[8:10], b[10:16])
}

// gptName decodes the NUL-terminated UTF-16LE partition name.
func gptName(b []byte) string {
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		c := binary.LittleEndian.Uint16(b[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u))
}
