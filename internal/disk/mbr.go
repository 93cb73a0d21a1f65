package disk

import (
	"encoding/binary"
	"fmt"
	"io"
	"strconv"
)

// maxEBRs bounds the EBR chain: the kernel stops at 256 partitions in all,
// so a longer chain is corrupt or hostile.
const maxEBRs = 256

type mbrEntry struct {
	boot  byte
	typ   byte
	start uint32 // sectors, relative to a base that depends on the table
	count uint32 // sectors
}

// ebrEntries returns an EBR's logical partition entry (the first used
// entry of a data type) and its link to the next EBR (the first extended
// entry); either may be nil.
func ebrEntries(sector []byte) (data, link *mbrEntry) {
	es := mbrEntries(sector)
	for i := range es {
		e := &es[i]
		switch {
		case e.count == 0:
		case isExtendedType(e.typ):
			if link == nil {
				link = e
			}
		case data == nil:
			data = e
		}
	}
	return data, link
}

func mbrEntries(sector []byte) [4]mbrEntry {
	var es [4]mbrEntry
	for i := range es {
		e := sector[446+16*i : 446+16*(i+1)]
		es[i] = mbrEntry{
			boot:  e[0],
			typ:   e[4],
			start: binary.LittleEndian.Uint32(e[8:]),
			count: binary.LittleEndian.Uint32(e[12:]),
		}
	}
	return es
}

func isExtendedType(t byte) bool { return t == 0x05 || t == 0x0f || t == 0x85 }

// isProtectiveMBR reports whether an entry of type 0xee is present, which
// (as for libfdisk) makes the disk a GPT disk, hybrid MBRs included.
func isProtectiveMBR(mbr []byte) bool {
	for _, e := range mbrEntries(mbr) {
		if e.typ == 0xee && e.count != 0 {
			return true
		}
	}
	return false
}

func readMBR(r io.ReaderAt, mbr []byte, size int64, ss int) (*Table, error) {
	sectors := uint64(size) / uint64(ss)
	t := &Table{
		Type:       "dos",
		DiskID:     fmt.Sprintf("%08x", binary.LittleEndian.Uint32(mbr[440:])),
		SectorSize: ss,
	}
	es := mbrEntries(mbr)
	for i, e := range es {
		// Like the kernel, refuse a boot sector whose "entries" are not
		// partition entries (a filesystem boot sector, for instance).
		if e.boot != 0 && e.boot != 0x80 {
			return nil, fmt.Errorf("invalid MBR: entry %d has boot flag %#02x", i+1, e.boot)
		}
	}
	for i, e := range es {
		if e.count == 0 {
			continue
		}
		n := i + 1
		t.Partitions = append(t.Partitions, t.mbrPartition(n, 0, e))
		if uint64(e.start)+uint64(e.count) > sectors {
			t.Warnings = append(t.Warnings, fmt.Sprintf("partition %d ends after the end of the disk", n))
		}
	}
	next := 5
	for _, e := range es {
		if e.count == 0 || !isExtendedType(e.typ) {
			continue
		}
		var err error
		if next, err = t.readEBRChain(r, e, next, sectors); err != nil {
			return nil, err
		}
	}
	return t, nil
}

func (t *Table) mbrPartition(n int, base uint64, e mbrEntry) Partition {
	ss := uint64(t.SectorSize)
	return Partition{
		Number:   n,
		Start:    (base + uint64(e.start)) * ss,
		Size:     uint64(e.count) * ss,
		Type:     strconv.FormatUint(uint64(e.typ), 16),
		UUID:     fmt.Sprintf("%s-%02x", t.DiskID, n),
		Bootable: e.boot == 0x80,
		Extended: isExtendedType(e.typ),
	}
}

// readEBRChain appends the logical partitions of the extended partition ext,
// numbering them from next, and returns the next free number. Each EBR holds
// a data entry relative to the EBR itself and a link entry relative to the
// start of the extended partition.
func (t *Table) readEBRChain(r io.ReaderAt, ext mbrEntry, next int, sectors uint64) (int, error) {
	extStart, extEnd := uint64(ext.start), uint64(ext.start)+uint64(ext.count)
	seen := make(map[uint64]bool)
	buf := make([]byte, 512)
	for ebr := extStart; ; {
		if seen[ebr] {
			return 0, fmt.Errorf("EBR chain loops back to the EBR at sector %d", ebr)
		}
		if len(seen) == maxEBRs {
			return 0, fmt.Errorf("EBR chain longer than %d entries", maxEBRs)
		}
		seen[ebr] = true
		if ebr >= extEnd || ebr >= sectors {
			return 0, fmt.Errorf("EBR at sector %d lies outside the extended partition (sectors %d-%d) or the disk", ebr, extStart, extEnd-1)
		}
		if err := readAt(r, buf, int64(ebr)*int64(t.SectorSize)); err != nil {
			return 0, fmt.Errorf("read EBR at sector %d: %w", ebr, err)
		}
		if buf[510] != 0x55 || buf[511] != 0xaa {
			if ebr == extStart {
				return next, nil // an extended partition without logical partitions
			}
			return 0, fmt.Errorf("EBR at sector %d: signature 0x55aa missing", ebr)
		}
		data, link := ebrEntries(buf)
		if data != nil {
			start := ebr + uint64(data.start)
			if data.start == 0 || start+uint64(data.count) > extEnd {
				return 0, fmt.Errorf("logical partition %d (sectors %d-%d, EBR at sector %d) is not inside the extended partition (sectors %d-%d)",
					next, start, start+uint64(data.count)-1, ebr, extStart, extEnd-1)
			}
			t.Partitions = append(t.Partitions, t.mbrPartition(next, ebr, *data))
			next++
		}
		if link == nil {
			return next, nil
		}
		ebr = extStart + uint64(link.start)
	}
}
