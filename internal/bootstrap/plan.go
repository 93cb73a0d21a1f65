package bootstrap

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/bascule-ota/bascule/internal/disk"
)

const (
	// alignSectors is where new partitions start: a multiple of 2048
	// sectors, as Rugix aligns them.
	alignSectors = 2048
	// ebrGap is the room a new logical partition leaves before itself for
	// its EBR, before alignment (Rugix's 63 sectors). The EBR is put one
	// MiB before the partition when there is room, as sfdisk does.
	ebrGap = 63
)

// plan is what bootstrapping does to the root disk's partition table.
type plan struct {
	table *disk.Table // the table to write
	// created and grown are the numbers of the partitions that are new or
	// larger in table; unchanged is true if there are none.
	created, grown []int
	// format are the partitions to create filesystems on: only ones in
	// created.
	format map[int]*Filesystem
	// warnings are about filesystems not created on existing partitions.
	warnings []string
}

func (p *plan) unchanged() bool { return len(p.created) == 0 && len(p.grown) == 0 }

// planLayout matches the layout to the partitions of old by index, as
// Rugix does: an existing partition keeps its start and type and grows to
// the layout's size as far as the next partition allows (never shrinks);
// a missing one is created at the next 2048-sector boundary, after 63
// sectors for its EBR if it is a logical MBR partition. A new partition
// must get its full size, and one without a size (the rest) at least 2048
// sectors; otherwise the disk is too small and nothing is changed. (Rugix
// silently creates such partitions smaller than asked, which would leave
// system-b smaller than system-a.)
func planLayout(old *disk.Table, geo *disk.Geometry, layout []PartitionConfig) (*plan, error) {
	ss := uint64(old.SectorSize)
	mbr := old.Type == "dos"
	for i, p := range old.Partitions {
		if p.Number != i+1 {
			return nil, fmt.Errorf("the partitions are numbered with a gap (no partition %d); bootstrapping matches partitions by index and needs them numbered 1, 2, 3, …", i+1)
		}
	}
	for _, p := range old.Partitions {
		if end := (p.Start+p.Size)/ss - 1; end > geo.LastUsable {
			return nil, fmt.Errorf("the disk is smaller than the image: partition %d ends at sector %d, the last usable one is %d", p.Number, end, geo.LastUsable)
		}
	}
	types := make([]string, len(layout))
	for i, pc := range layout {
		typ, err := layoutType(pc.Type, old.Type)
		if err != nil {
			return nil, fmt.Errorf("layout partition %d: %w", i+1, err)
		}
		types[i] = typ
		ext := mbr && isExtended(typ)
		switch {
		case ext && i != 3:
			return nil, fmt.Errorf("layout partition %d: an extended partition must be the fourth partition", i+1)
		case mbr && i >= 4 && !isExtended(types[3]):
			return nil, fmt.Errorf("layout partition %d: an MBR layout with more than four partitions needs an extended partition as the fourth", i+1)
		}
	}

	p := &plan{format: map[int]*Filesystem{}}
	nt := *old
	nt.Warnings = nil
	nt.Partitions = append([]disk.Partition(nil), old.Partitions...)
	cursor := alignUp(geo.FirstUsable, alignSectors) // first free sector
	limit := geo.LastUsable                          // last sector usable here
	inExt := false
	for i, pc := range layout {
		n := i + 1
		ext := mbr && isExtended(types[i])
		want := (pc.Size + ss - 1) / ss // 0: the rest
		var start, size uint64
		if i < len(old.Partitions) {
			o := old.Partitions[i]
			if !sameType(o.Type, types[i], mbr) {
				return nil, fmt.Errorf("partition %d has type %s, the layout wants %s", n, o.Type, types[i])
			}
			start, size = o.Start/ss, o.Size/ss
			end := limit // last sector the partition may grow to
			if !ext && i+1 < len(old.Partitions) {
				next := old.Partitions[i+1]
				end = next.Start/ss - 1
				if e, ok := geo.EBRs[next.Number]; ok && next.Number >= 5 {
					end = e - 1
				}
			}
			target := want
			if target == 0 || end < start+target-1 {
				target = end - start + 1
				if end < start {
					target = 0
				}
			}
			if target > size {
				size = target
				p.grown = append(p.grown, n)
				nt.Partitions[i].Size = size * ss
			}
			if pc.Filesystem != nil {
				p.warnings = append(p.warnings, fmt.Sprintf("not creating a filesystem on partition %d: it existed before bootstrapping", n))
			}
		} else {
			start = cursor
			if inExt {
				start += ebrGap
			}
			start = alignUp(start, alignSectors)
			if start > limit {
				return nil, fmt.Errorf("too small: no room left for partition %d (the layout needs sector %d, the last usable one is %d)", n, start, limit)
			}
			avail := limit - start + 1
			switch {
			case want == 0 && avail < alignSectors:
				return nil, fmt.Errorf("too small: only %s left for partition %d (the rest of the disk), at least %s needed",
					formatSize(avail*ss), n, formatSize(alignSectors*ss))
			case want == 0:
				size = avail
			case want > avail:
				return nil, fmt.Errorf("too small: partition %d needs %s but only %s are left", n, formatSize(want*ss), formatSize(avail*ss))
			default:
				size = want
			}
			part := disk.Partition{Number: n, Start: start * ss, Size: size * ss, Type: types[i], Extended: ext}
			if !mbr {
				part.Name = pc.Name
			} else {
				part.UUID = fmt.Sprintf("%s-%02x", old.DiskID, n)
			}
			nt.Partitions = append(nt.Partitions, part)
			p.created = append(p.created, n)
			if pc.Filesystem != nil {
				p.format[n] = pc.Filesystem
			}
		}
		if ext {
			inExt, cursor, limit = true, start, start+size-1
		} else {
			cursor = start + size
		}
	}
	if err := checkGrowOnly(old, &nt); err != nil {
		return nil, err
	}
	p.table = &nt
	return p, nil
}

// checkGrowOnly checks what planLayout guarantees by construction, because
// a bug here would destroy the system being booted: every old partition is
// still there with its start, type and UUID, and not smaller.
func checkGrowOnly(old, nt *disk.Table) error {
	if nt.Type != old.Type || nt.DiskID != old.DiskID || len(nt.Partitions) < len(old.Partitions) {
		return fmt.Errorf("internal error: the new table drops partitions or changes the disk ID")
	}
	for i, o := range old.Partitions {
		n := nt.Partitions[i]
		if n.Number != o.Number || n.Start != o.Start || n.Type != o.Type || n.UUID != o.UUID || n.Size < o.Size {
			return fmt.Errorf("internal error: partition %d would change from %+v to %+v", o.Number, o, n)
		}
	}
	return nil
}

// layoutType returns the partition type for a table of type table, the
// Linux type if typ is empty.
func layoutType(typ, table string) (string, error) {
	gpt := table == "gpt"
	switch {
	case typ == "" && gpt:
		return gptLinux, nil
	case typ == "":
		return mbrLinux, nil
	case gpt != (len(typ) == 36):
		return "", fmt.Errorf("type %s does not fit the %s partition table of the disk", typ, map[bool]string{true: "GPT", false: "MBR"}[gpt])
	}
	return typ, nil
}

func isExtended(typ string) bool {
	b, err := strconv.ParseUint(typ, 16, 8)
	return err == nil && (b == 0x05 || b == 0x0f || b == 0x85)
}

// sameType compares partition types; any MBR extended type matches
// another (Rugix insists on 05, but 0f is as common in images).
func sameType(a, b string, mbr bool) bool {
	if mbr && isExtended(a) && isExtended(b) {
		return true
	}
	return strings.EqualFold(a, b)
}

func alignUp(v, a uint64) uint64 { return (v + a - 1) / a * a }
