package disk

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"unicode/utf16"
)

// Writing partition tables, natively, so that bootstrapping needs no sfdisk
// on the device. The writer changes an existing table in place: it keeps
// the MBR boot code and disk signature, the EBRs of logical partitions that
// stay where they are, the GPT header parameters, disk GUID and partition
// GUIDs, and writes only the sectors whose contents change.
//
// Power-cut safety, for a new table that only grows or adds partitions (all
// bootstrapping does): the writes go out in batches separated by fsync, and
// a cut at any point, with any subset of a batch on the disk, leaves a valid
// table that has either the old or the new partitions, or the new ones
// partly (grown containers, fewer logical partitions).
//
//   - MBR: first the EBRs that nothing points to yet (of new logical
//     partitions, in the free space of the grown extended partition), then
//     sector 0 (primary entries, so the extended partition grows before
//     anything inside it uses the room), then the EBRs that are already
//     reachable; the last old EBR's link to the first new one is the
//     single-sector commit of the new logical partitions.
//   - GPT: first the backup entries and header at the end of the disk (the
//     old primary header still points at the old backup, which stays
//     intact), then the primary entries, then the primary header, then the
//     size in the protective MBR. Between the primary entries and header the
//     primary is invalid and readers (the kernel, ReadTable) fall back to
//     the new backup; ReadGeometry reports that as needing repair.
//
// Writes go through the page cache and are made durable with fsync (the
// Sync method of the writer, if it has one); telling the kernel about the
// new partitions (AddPartition, ResizePartition) is left to the caller.

const (
	// gptEntries and gptEntrySize are what sfdisk and the UEFI
	// specification use for a new GPT: 128 entries of 128 bytes.
	gptEntries   = 128
	gptEntrySize = 128
	// mbrMaxSector is the last sector an MBR can address: starts and sizes
	// are 32-bit sector counts.
	mbrMaxSector = math.MaxUint32
	// grainBytes is libfdisk's default alignment. The EBR of a new logical
	// partition goes one grain before the partition, where sfdisk puts it.
	grainBytes = 1 << 20
)

// Geometry is what a disk offers to a partition table that WriteTable
// writes: the usable sectors (for GPT with the backup table moved to the
// real end of the disk, so a disk larger than the image it was flashed with
// shows its full size) and, for MBR, where the EBRs of the logical
// partitions are, which a growing logical partition must not overwrite.
type Geometry struct {
	// Sectors is the size of the disk in sectors of the table's sector size.
	Sectors uint64
	// FirstUsable and LastUsable bound the sectors partitions may use. For
	// MBR, LastUsable is capped at 2^32-1, the last sector MBR can address.
	FirstUsable, LastUsable uint64
	// EBRs maps the number of each MBR logical partition to the sector of
	// its EBR. Nil for GPT.
	EBRs map[int]uint64
	// Repair is non-empty, saying why, when WriteTable would change the
	// disk even for an unchanged partition list: a corrupt GPT header, the
	// backup GPT not at the end of the disk, a protective MBR that does not
	// cover the disk.
	Repair string
}

// ReadGeometry describes the disk r of size bytes whose table, as read by
// ReadTable, is t.
func ReadGeometry(r io.ReaderAt, size int64, t *Table) (*Geometry, error) {
	if size < 0 {
		return nil, fmt.Errorf("negative disk size %d", size)
	}
	ss := uint64(t.SectorSize)
	if !validSectorSize(t.SectorSize) {
		return nil, fmt.Errorf("unsupported sector size %d", t.SectorSize)
	}
	g := &Geometry{Sectors: uint64(size) / ss}
	if g.Sectors < 3 {
		return nil, fmt.Errorf("disk of %d bytes is too small for a partition table", size)
	}
	switch t.Type {
	case "dos":
		g.FirstUsable = 1
		g.LastUsable = min(g.Sectors-1, mbrMaxSector)
		ebrs, err := readEBRSectors(r, t)
		if err != nil {
			return nil, err
		}
		g.EBRs = make(map[int]uint64, len(ebrs))
		for _, e := range ebrs {
			g.EBRs[e.number] = e.sector
		}
	case "gpt":
		h, _, err := readAnyGPTHeader(r, t.SectorSize, g.Sectors)
		if err != nil {
			return nil, err
		}
		array := gptArraySectors(h.numEntries, h.entrySize, ss)
		if g.Sectors < array+3 || h.firstUsable > g.Sectors-array-2 {
			return nil, fmt.Errorf("disk of %d sectors is too small for its GPT", g.Sectors)
		}
		g.FirstUsable = h.firstUsable
		g.LastUsable = g.Sectors - array - 2
		var why []string
		why = append(why, t.Warnings...)
		if h.lba == 1 && h.altLBA != g.Sectors-1 {
			why = append(why, fmt.Sprintf("the backup GPT header is at LBA %d, not at the end of the disk (LBA %d)", h.altLBA, g.Sectors-1))
		}
		mbr := make([]byte, 512)
		if err := readAt(r, mbr, 0); err != nil {
			return nil, fmt.Errorf("read protective MBR: %w", err)
		}
		if i := protectiveEntry(mbr); i >= 0 {
			want := uint32(min(g.Sectors-1, mbrMaxSector))
			if got := binary.LittleEndian.Uint32(mbr[446+16*i+12:]); got != want {
				why = append(why, fmt.Sprintf("the protective MBR covers %d sectors, not %d", got, want))
			}
		}
		g.Repair = strings.Join(why, "; ")
	default:
		return nil, fmt.Errorf("unknown partition table type %q", t.Type)
	}
	return g, nil
}

// ReadWriterAt is a disk the partition table is written to; an *os.File.
// If it also has a Sync method, that is called between the batches of
// writes (see the ordering above).
type ReadWriterAt interface {
	io.ReaderAt
	io.WriterAt
}

// WriteTable writes the partition table t (its Type, DiskID, SectorSize
// and Partitions; Warnings are ignored) to the disk rw of size bytes.
//
// If the disk already has a table, it must be of the same type; an empty
// disk (no 0x55aa signature in sector 0) gets a new table laid out as
// sfdisk would. GPT partitions with an empty UUID get a random one; MBR
// partition UUIDs and GPT attributes are derived or kept. Everything is
// checked before the first write, so an invalid table writes nothing.
func WriteTable(rw ReadWriterAt, size int64, t *Table) error {
	batches, err := planWrites(rw, size, t)
	if err != nil {
		return fmt.Errorf("write partition table: %w", err)
	}
	return commitWrites(rw, batches)
}

// CheckTable runs the checks of WriteTable for t on the disk r of size
// bytes without writing, so that a caller can refuse a table before it
// does anything else to the disk.
func CheckTable(r io.ReaderAt, size int64, t *Table) error {
	if _, err := planWrites(r, size, t); err != nil {
		return fmt.Errorf("check partition table: %w", err)
	}
	return nil
}

func planWrites(r io.ReaderAt, size int64, t *Table) ([][]sectorWrite, error) {
	if !validSectorSize(t.SectorSize) {
		return nil, fmt.Errorf("unsupported sector size %d", t.SectorSize)
	}
	switch t.Type {
	case "dos":
		return planMBR(r, size, t)
	case "gpt":
		return planGPT(r, size, t)
	}
	return nil, fmt.Errorf("unknown partition table type %q", t.Type)
}

// WriteDevice writes t to the block device or image file dev with
// WriteTable and fsyncs it. For a block device, t.SectorSize must be the
// device's logical sector size.
func WriteDevice(dev string, t *Table) error {
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("write partition table: %w", err)
	}
	size, ss, err := deviceGeometry(f)
	if err == nil && ss != 0 && ss != t.SectorSize {
		err = fmt.Errorf("table has %d-byte sectors, the device %d-byte sectors", t.SectorSize, ss)
	}
	if err == nil {
		err = WriteTable(f, size, t)
	}
	if cerr := f.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write partition table of %s: %w", dev, err)
	}
	return nil
}

// DeviceSize returns the size in bytes and the logical sector size of the
// open block device or image file f; the sector size is 0 for a file.
func DeviceSize(f *os.File) (size int64, sectorSize int, err error) {
	size, sectorSize, err = deviceGeometry(f)
	if err != nil {
		return 0, 0, fmt.Errorf("size of %s: %w", f.Name(), err)
	}
	return size, sectorSize, nil
}

// sectorWrite is one planned write; batches of them are separated by fsync.
type sectorWrite struct {
	off  int64
	data []byte
	what string
}

// commitWrites writes the batches in order, skipping writes that would not
// change the disk, and syncs after every batch that wrote something.
func commitWrites(rw ReadWriterAt, batches [][]sectorWrite) error {
	s, _ := rw.(interface{ Sync() error })
	for _, batch := range batches {
		wrote := false
		for _, w := range batch {
			cur := make([]byte, len(w.data))
			if err := readAt(rw, cur, w.off); err == nil && bytes.Equal(cur, w.data) {
				continue
			}
			if _, err := rw.WriteAt(w.data, w.off); err != nil {
				return fmt.Errorf("write %s at offset %d: %w", w.what, w.off, err)
			}
			wrote = true
		}
		if wrote && s != nil {
			if err := s.Sync(); err != nil {
				return fmt.Errorf("sync partition table: %w", err)
			}
		}
	}
	return nil
}

func validSectorSize(ss int) bool {
	return ss == 512 || ss == 1024 || ss == 2048 || ss == 4096
}

// hasSignature reports whether sector 0 of r carries the 0x55aa signature
// of an MBR or protective MBR.
func hasSignature(r io.ReaderAt) (bool, []byte, error) {
	mbr := make([]byte, 512)
	if err := readAt(r, mbr, 0); err != nil {
		return false, nil, fmt.Errorf("read MBR: %w", err)
	}
	return mbr[510] == 0x55 && mbr[511] == 0xaa, mbr, nil
}

// oldTable reads the table on the disk to be changed, or returns nil for an
// empty disk. A table of another type is an error: converting between MBR
// and GPT in place is not something to do by accident.
func oldTable(r io.ReaderAt, size int64, t *Table) (*Table, error) {
	signed, _, err := hasSignature(r)
	if err != nil || !signed {
		return nil, err
	}
	old, err := ReadTable(r, size, t.SectorSize)
	if err != nil {
		return nil, fmt.Errorf("existing partition table: %w", err)
	}
	if old.Type != t.Type {
		return nil, fmt.Errorf("the disk has a %s partition table, not replacing it with a %s one", old.Type, t.Type)
	}
	return old, nil
}

// checkAligned checks that p's start and size are whole sectors.
func checkAligned(p Partition, ss uint64) error {
	if p.Size == 0 {
		return fmt.Errorf("partition %d has size 0", p.Number)
	}
	if p.Start%ss != 0 || p.Size%ss != 0 {
		return fmt.Errorf("partition %d (start %d, size %d bytes) is not on %d-byte sector boundaries", p.Number, p.Start, p.Size, ss)
	}
	return nil
}

// --- MBR ---

// mbrPart is a partition of the new MBR table in sectors.
type mbrPart struct {
	Partition
	typ        byte
	start, end uint64 // first and last sector
	ebr        uint64 // logical partitions: sector of the EBR
}

// ebrPos is where the EBR of logical partition number is.
type ebrPos struct {
	number int
	sector uint64
}

// readEBRSectors walks the EBR chain of the MBR table t, as readEBRChain
// does, and returns where the EBR of each logical partition is.
func readEBRSectors(r io.ReaderAt, t *Table) ([]ebrPos, error) {
	var ext *Partition
	for i := range t.Partitions {
		if t.Partitions[i].Extended && t.Partitions[i].Number <= 4 {
			ext = &t.Partitions[i]
			break
		}
	}
	if ext == nil {
		return nil, nil
	}
	ss := uint64(t.SectorSize)
	extStart := ext.Start / ss
	var out []ebrPos
	next := 5
	buf := make([]byte, 512)
	for ebr, n := extStart, 0; n < maxEBRs; n++ {
		if err := readAt(r, buf, int64(ebr*ss)); err != nil {
			return nil, fmt.Errorf("read EBR at sector %d: %w", ebr, err)
		}
		if buf[510] != 0x55 || buf[511] != 0xaa {
			return out, nil
		}
		data, link := ebrEntries(buf)
		if data != nil {
			out = append(out, ebrPos{next, ebr})
			next++
		}
		if link == nil {
			return out, nil
		}
		ebr = extStart + uint64(link.start)
	}
	return nil, fmt.Errorf("EBR chain longer than %d entries", maxEBRs)
}

// planMBR checks t against the disk and returns the writes that turn the
// disk's MBR (if any) into t.
func planMBR(rw io.ReaderAt, size int64, t *Table) ([][]sectorWrite, error) {
	ss := uint64(t.SectorSize)
	sectors := uint64(size) / ss
	if sectors < 2 {
		return nil, fmt.Errorf("disk of %d bytes is too small for a partition table", size)
	}
	diskID, err := strconv.ParseUint(t.DiskID, 16, 32)
	if err != nil {
		return nil, fmt.Errorf("invalid MBR disk ID %q (want 8 hex digits)", t.DiskID)
	}
	old, err := oldTable(rw, size, t)
	if err != nil {
		return nil, err
	}
	var oldEBRs []ebrPos
	if old != nil {
		if oldEBRs, err = readEBRSectors(rw, old); err != nil {
			return nil, fmt.Errorf("existing partition table: %w", err)
		}
	}
	prim, ext, logical, err := mbrLayout(t, sectors, old, oldEBRs)
	if err != nil {
		return nil, err
	}

	// Sectors the old table reaches: written only after sector 0.
	reachable := map[uint64]bool{0: true}
	if old != nil {
		for _, p := range old.Partitions {
			if p.Extended && p.Number <= 4 {
				reachable[p.Start/ss] = true
			}
		}
		for _, e := range oldEBRs {
			reachable[e.sector] = true
		}
	}
	readSector := func(lba uint64) ([]byte, error) {
		b := make([]byte, ss)
		if err := readAt(rw, b, int64(lba*ss)); err != nil {
			return nil, fmt.Errorf("read sector %d: %w", lba, err)
		}
		return b, nil
	}

	// Sector 0: boot code, disk signature and the bytes after it are kept.
	var mbr []byte
	if old != nil {
		if mbr, err = readSector(0); err != nil {
			return nil, err
		}
	} else {
		mbr = make([]byte, ss)
	}
	binary.LittleEndian.PutUint32(mbr[440:], uint32(diskID))
	mbr[510], mbr[511] = 0x55, 0xaa
	for i := 0; i < 4; i++ {
		var e mbrEntry
		if p := prim[i]; p != nil {
			e = mbrEntry{boot: bootFlag(p.Bootable), typ: p.typ, start: uint32(p.start), count: uint32(p.end - p.start + 1)}
		}
		putMBREntry(mbr[446+16*i:], e, 0)
	}

	var early, late []sectorWrite
	for i, p := range logical {
		var b []byte
		if reachable[p.ebr] {
			if b, err = readSector(p.ebr); err != nil {
				return nil, err
			}
		} else {
			b = make([]byte, ss)
		}
		b[510], b[511] = 0x55, 0xaa
		putMBREntry(b[446:], mbrEntry{boot: bootFlag(p.Bootable), typ: p.typ, start: uint32(p.start - p.ebr), count: uint32(p.end - p.start + 1)}, p.ebr)
		var link mbrEntry
		if i+1 < len(logical) {
			n := logical[i+1]
			link = mbrEntry{typ: 0x05, start: uint32(n.ebr - ext.start), count: uint32(n.end - n.ebr + 1)}
		}
		putMBREntry(b[446+16:], link, ext.start)
		clear(b[446+32 : 510])
		w := sectorWrite{off: int64(p.ebr * ss), data: b, what: fmt.Sprintf("EBR of partition %d", p.Number)}
		if reachable[p.ebr] {
			late = append(late, w)
		} else {
			early = append(early, w)
		}
	}
	return [][]sectorWrite{early, {{off: 0, data: mbr, what: "MBR"}}, late}, nil
}

// mbrLayout checks the partitions of t and returns them in sectors: the
// four primary slots, the extended partition and the logical partitions in
// chain order, with an EBR sector for each logical partition.
func mbrLayout(t *Table, sectors uint64, old *Table, oldEBRs []ebrPos) (prim [4]*mbrPart, ext *mbrPart, logical []*mbrPart, err error) {
	ss := uint64(t.SectorSize)
	last := min(sectors-1, mbrMaxSector)
	seen := map[int]bool{}
	for _, p := range t.Partitions {
		if err := checkAligned(p, ss); err != nil {
			return prim, nil, nil, err
		}
		if seen[p.Number] {
			return prim, nil, nil, fmt.Errorf("partition %d listed twice", p.Number)
		}
		seen[p.Number] = true
		typ, err := strconv.ParseUint(p.Type, 16, 8)
		if err != nil || typ == 0 {
			return prim, nil, nil, fmt.Errorf("partition %d: invalid MBR type %q", p.Number, p.Type)
		}
		mp := &mbrPart{Partition: p, typ: byte(typ), start: p.Start / ss, end: (p.Start+p.Size)/ss - 1}
		if mp.start == 0 || mp.end > last || mp.end < mp.start {
			return prim, nil, nil, fmt.Errorf("partition %d (sectors %d-%d) is outside the usable sectors 1-%d", p.Number, mp.start, mp.end, last)
		}
		if isExtendedType(mp.typ) != p.Extended {
			return prim, nil, nil, fmt.Errorf("partition %d: type %s does not match Extended=%v", p.Number, p.Type, p.Extended)
		}
		switch {
		case p.Number >= 1 && p.Number <= 4:
			prim[p.Number-1] = mp
			if p.Extended {
				if ext != nil {
					return prim, nil, nil, fmt.Errorf("partitions %d and %d are both extended", ext.Number, p.Number)
				}
				ext = mp
			}
		case p.Number >= 5 && p.Number < 5+maxEBRs:
			if p.Extended {
				return prim, nil, nil, fmt.Errorf("logical partition %d cannot be an extended partition", p.Number)
			}
			logical = append(logical, mp)
		default:
			return prim, nil, nil, fmt.Errorf("invalid MBR partition number %d", p.Number)
		}
	}
	sort.Slice(logical, func(i, j int) bool { return logical[i].Number < logical[j].Number })
	for i, p := range logical {
		if p.Number != 5+i {
			return prim, nil, nil, fmt.Errorf("logical partitions must be numbered from 5 without gaps; partition %d is missing", 5+i)
		}
	}
	if len(logical) > 0 && ext == nil {
		return prim, nil, nil, fmt.Errorf("logical partition %d needs an extended partition", logical[0].Number)
	}
	// Primary partitions, the extended one as a whole, must not overlap.
	for i, a := range prim {
		for _, b := range prim[i+1:] {
			if a != nil && b != nil && a.start <= b.end && b.start <= a.end {
				return prim, nil, nil, fmt.Errorf("partitions %d and %d overlap", a.Number, b.Number)
			}
		}
	}
	// Logical partitions follow each other inside the extended partition,
	// each after its EBR; the first EBR is the extended partition's first
	// sector. An EBR that exists for the same partition start is kept.
	oldEBR := map[uint64]uint64{} // partition start sector -> EBR sector
	if old != nil {
		for _, e := range oldEBRs {
			if p := old.Partition(e.number); p != nil {
				oldEBR[p.Start/ss] = e.sector
			}
		}
	}
	grain := max(grainBytes/ss, 1)
	if len(logical) > 0 {
		free := ext.start // first sector not used by an EBR or partition
		for i, p := range logical {
			switch e, ok := oldEBR[p.start]; {
			case i == 0:
				p.ebr = ext.start
			case ok && e >= free && e < p.start:
				p.ebr = e
			case p.start >= free+grain:
				p.ebr = p.start - grain
			default:
				p.ebr = free
			}
			if p.ebr < free || p.ebr >= p.start || p.end > ext.end {
				return prim, nil, nil, fmt.Errorf("logical partition %d (sectors %d-%d) does not fit with its EBR after sector %d inside the extended partition (sectors %d-%d)",
					p.Number, p.start, p.end, free, ext.start, ext.end)
			}
			free = p.end + 1
		}
	}
	return prim, ext, logical, nil
}

func bootFlag(b bool) byte {
	if b {
		return 0x80
	}
	return 0
}

// putMBREntry encodes e into the 16 bytes of b, keeping b as it is when it
// already holds e (so CHS values another tool wrote survive). base is the
// sector e.start is relative to, for the CHS addresses.
func putMBREntry(b []byte, e mbrEntry, base uint64) {
	cur := mbrEntry{
		boot:  b[0],
		typ:   b[4],
		start: binary.LittleEndian.Uint32(b[8:]),
		count: binary.LittleEndian.Uint32(b[12:]),
	}
	if cur == e {
		return
	}
	clear(b[:16])
	if e.count == 0 && e.typ == 0 {
		return
	}
	b[0] = e.boot
	b[4] = e.typ
	first := base + uint64(e.start)
	copy(b[1:4], chs(first))
	copy(b[5:8], chs(first+uint64(e.count)-1))
	binary.LittleEndian.PutUint32(b[8:], e.start)
	binary.LittleEndian.PutUint32(b[12:], e.count)
}

// chs encodes lba as a cylinder-head-sector address with the 255-head,
// 63-sector geometry libfdisk assumes for disks that report none; beyond
// cylinder 1023 it saturates, as usual. Nothing reads these any more, but
// sfdisk writes them and so do we.
func chs(lba uint64) []byte {
	const heads, spt = 255, 63
	c := lba / (heads * spt)
	h := (lba / spt) % heads
	s := lba%spt + 1
	if c > 1023 {
		c, h, s = 1023, heads-1, spt
	}
	return []byte{byte(h), byte(s) | byte(c>>8)<<6, byte(c)}
}

// --- GPT ---

// readAnyGPTHeader returns the primary GPT header of r, or the backup one
// at the last sector if the primary is corrupt, with its entry array.
func readAnyGPTHeader(r io.ReaderAt, ss int, sectors uint64) (*gptHeader, []byte, error) {
	h, entries, perr := readGPTHeader(r, 1, ss, sectors)
	if perr == nil {
		return h, entries, nil
	}
	h, entries, berr := readGPTHeader(r, sectors-1, ss, sectors)
	if berr != nil {
		return nil, nil, fmt.Errorf("no valid GPT: primary header: %v; backup header: %v", perr, berr)
	}
	return h, entries, nil
}

func gptArraySectors(n, size uint32, ss uint64) uint64 {
	return (uint64(n)*uint64(size) + ss - 1) / ss
}

// planGPT checks t against the disk and returns the writes that turn the
// disk's GPT (if any) into t, with the backup at the end of the disk.
func planGPT(rw io.ReaderAt, size int64, t *Table) ([][]sectorWrite, error) {
	ss := uint64(t.SectorSize)
	sectors := uint64(size) / ss
	diskGUID, err := parseGUID(t.DiskID)
	if err != nil {
		return nil, fmt.Errorf("invalid disk GUID %q", t.DiskID)
	}
	old, err := oldTable(rw, size, t)
	if err != nil {
		return nil, err
	}
	var (
		pmbr       []byte
		entries    []byte
		numEntries uint32 = gptEntries
		entrySize  uint32 = gptEntrySize
		entriesLBA uint64 = 2
		first      uint64
	)
	if old != nil {
		h, oldEntries, err := readAnyGPTHeader(rw, t.SectorSize, sectors)
		if err != nil {
			return nil, fmt.Errorf("existing partition table: %w", err)
		}
		numEntries, entrySize, first = h.numEntries, h.entrySize, h.firstUsable
		if h.lba == 1 {
			entriesLBA = h.entriesLBA
		}
		entries = oldEntries
		pmbr = make([]byte, ss)
		if err := readAt(rw, pmbr, 0); err != nil {
			return nil, fmt.Errorf("read protective MBR: %w", err)
		}
	} else {
		entries = make([]byte, uint64(numEntries)*uint64(entrySize))
		pmbr = make([]byte, ss)
		pmbr[510], pmbr[511] = 0x55, 0xaa
		e := pmbr[446:462]
		copy(e, []byte{0x00, 0x00, 0x02, 0x00, 0xee, 0xff, 0xff, 0xff})
		binary.LittleEndian.PutUint32(e[8:], 1)
	}
	array := gptArraySectors(numEntries, entrySize, ss)
	if old == nil {
		first = max(entriesLBA+array, grainBytes/ss)
	}
	if sectors < 2*array+3 || first+array+2 > sectors || entriesLBA+array > first {
		return nil, fmt.Errorf("disk of %d sectors is too small for a GPT", sectors)
	}
	lastLBA := sectors - 1
	backupEntriesLBA := lastLBA - array
	lastUsable := backupEntriesLBA - 1
	if first > lastUsable {
		return nil, fmt.Errorf("disk of %d sectors is too small for a GPT", sectors)
	}

	newEntries := make([]byte, len(entries))
	seen := map[int]bool{}
	type span struct {
		n          int
		start, end uint64
	}
	var spans []span
	guids := map[string]int{}
	for _, p := range t.Partitions {
		if err := checkAligned(p, ss); err != nil {
			return nil, err
		}
		if p.Number < 1 || uint64(p.Number) > uint64(numEntries) || seen[p.Number] {
			return nil, fmt.Errorf("invalid or repeated GPT partition number %d (the table has %d entries)", p.Number, numEntries)
		}
		seen[p.Number] = true
		start, end := p.Start/ss, (p.Start+p.Size)/ss-1
		if start < first || end > lastUsable {
			return nil, fmt.Errorf("partition %d (sectors %d-%d) is outside the usable sectors %d-%d", p.Number, start, end, first, lastUsable)
		}
		spans = append(spans, span{p.Number, start, end})
		typ, err := parseGUID(p.Type)
		if err != nil || bytes.Equal(typ, make([]byte, 16)) {
			return nil, fmt.Errorf("partition %d: invalid GPT type %q", p.Number, p.Type)
		}
		oldE := entries[uint64(p.Number-1)*uint64(entrySize):][:entrySize]
		e := newEntries[uint64(p.Number-1)*uint64(entrySize):][:entrySize]
		var guid []byte
		if p.UUID == "" {
			if guid, err = randomGUID(); err != nil {
				return nil, err
			}
		} else if guid, err = parseGUID(p.UUID); err != nil {
			return nil, fmt.Errorf("partition %d: invalid UUID %q", p.Number, p.UUID)
		}
		if o, dup := guids[string(guid)]; dup {
			return nil, fmt.Errorf("partitions %d and %d have the same UUID", o, p.Number)
		}
		guids[string(guid)] = p.Number
		name := utf16.Encode([]rune(p.Name))
		if len(name) > 36 {
			return nil, fmt.Errorf("partition %d: name %q is longer than 36 UTF-16 code units", p.Number, p.Name)
		}
		if bytes.Equal(oldE[16:32], guid) {
			copy(e, oldE) // attributes, name bytes past the NUL, reserved
		}
		copy(e[0:16], typ)
		copy(e[16:32], guid)
		binary.LittleEndian.PutUint64(e[32:], start)
		binary.LittleEndian.PutUint64(e[40:], end)
		if gptName(e[56:128]) != p.Name {
			clear(e[56:128])
			for i, c := range name {
				binary.LittleEndian.PutUint16(e[56+2*i:], c)
			}
		}
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].start < spans[j].start })
	for i := 1; i < len(spans); i++ {
		if spans[i].start <= spans[i-1].end {
			return nil, fmt.Errorf("partitions %d and %d overlap", spans[i-1].n, spans[i].n)
		}
	}

	entriesCRC := crc32.ChecksumIEEE(newEntries)
	header := func(lba, alt, entLBA uint64) []byte {
		b := make([]byte, ss)
		copy(b, gptSignature)
		binary.LittleEndian.PutUint32(b[8:], 0x00010000)
		binary.LittleEndian.PutUint32(b[12:], 92)
		binary.LittleEndian.PutUint64(b[24:], lba)
		binary.LittleEndian.PutUint64(b[32:], alt)
		binary.LittleEndian.PutUint64(b[40:], first)
		binary.LittleEndian.PutUint64(b[48:], lastUsable)
		copy(b[56:72], diskGUID)
		binary.LittleEndian.PutUint64(b[72:], entLBA)
		binary.LittleEndian.PutUint32(b[80:], numEntries)
		binary.LittleEndian.PutUint32(b[84:], entrySize)
		binary.LittleEndian.PutUint32(b[88:], entriesCRC)
		binary.LittleEndian.PutUint32(b[16:], crc32.ChecksumIEEE(b[:92]))
		return b
	}
	padded := make([]byte, array*ss)
	copy(padded, newEntries)

	if i := protectiveEntry(pmbr); i >= 0 {
		binary.LittleEndian.PutUint32(pmbr[446+16*i+12:], uint32(min(lastLBA, mbrMaxSector)))
	}
	return [][]sectorWrite{
		{
			{off: int64(backupEntriesLBA * ss), data: padded, what: "backup GPT entries"},
			{off: int64(lastLBA * ss), data: header(lastLBA, 1, backupEntriesLBA), what: "backup GPT header"},
		},
		{{off: int64(entriesLBA * ss), data: padded, what: "primary GPT entries"}},
		{{off: int64(ss), data: header(1, lastLBA, entriesLBA), what: "primary GPT header"}},
		{{off: 0, data: pmbr, what: "protective MBR"}},
	}, nil
}

// protectiveEntry returns the index of the 0xee entry starting at LBA 1 in
// a protective (or hybrid) MBR, or -1.
func protectiveEntry(mbr []byte) int {
	for i, e := range mbrEntries(mbr) {
		if e.typ == 0xee && e.start == 1 {
			return i
		}
	}
	return -1
}

// parseGUID parses a GUID in either case into the mixed-endian on-disk
// layout formatGUID reads.
func parseGUID(s string) ([]byte, error) {
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return nil, errors.New("not a GUID")
	}
	raw, err := hex.DecodeString(s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:36])
	if err != nil {
		return nil, errors.New("not a GUID")
	}
	b := make([]byte, 16)
	binary.LittleEndian.PutUint32(b[0:], binary.BigEndian.Uint32(raw[0:]))
	binary.LittleEndian.PutUint16(b[4:], binary.BigEndian.Uint16(raw[4:]))
	binary.LittleEndian.PutUint16(b[6:], binary.BigEndian.Uint16(raw[6:]))
	copy(b[8:], raw[8:])
	return b, nil
}

// randomGUID returns a random (version 4) GUID in the on-disk layout.
func randomGUID() ([]byte, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("random GUID: %w", err)
	}
	b[7] = b[7]&0x0f | 0x40 // version 4, in the little-endian third field
	b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
	return b, nil
}
