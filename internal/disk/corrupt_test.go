package disk

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"reflect"
	"strings"
	"testing"
)

// Layout of testdata/gpt-rugix.img (512-byte sectors): protective MBR, the
// primary header at LBA 1 with its entries at LBA 2-3, partitions in LBA
// 4-12, the backup entries at LBA 13-14 and the backup header at LBA 15.
// testdata/mbr-rugix.img has the extended partition at sector 4 with EBRs at
// sectors 4, 6 and 8.
const (
	gptPrimary  = 1
	gptBackup   = 15
	ebr2        = 6 * 512 // second EBR
	ebr2Link    = ebr2 + 446 + 16
	ebr2Data    = ebr2 + 446
	numEntryOff = 80
)

// fixGPT recomputes the entry array CRC and then the header CRC of the GPT
// header at lba, after a test changed either.
func fixGPT(b []byte, lba int) {
	h := b[lba*512:]
	n := binary.LittleEndian.Uint32(h[80:])
	size := binary.LittleEndian.Uint32(h[84:])
	entries := binary.LittleEndian.Uint64(h[72:])
	if end := entries*512 + uint64(n)*uint64(size); entries < 64 && end <= uint64(len(b)) {
		binary.LittleEndian.PutUint32(h[88:], crc32.ChecksumIEEE(b[entries*512:end]))
	}
	hsize := binary.LittleEndian.Uint32(h[12:])
	if hsize > 512 {
		hsize = 92
	}
	binary.LittleEndian.PutUint32(h[16:], 0)
	binary.LittleEndian.PutUint32(h[16:], crc32.ChecksumIEEE(h[:hsize]))
}

// setGPT32 sets a 32-bit header field of the GPT header at lba and fixes
// the CRCs.
func setGPT32(b []byte, lba, off int, v uint32) {
	binary.LittleEndian.PutUint32(b[lba*512+off:], v)
	fixGPT(b, lba)
}

func TestCorruptTables(t *testing.T) {
	mbr, gpt := readTestdata(t, "mbr-rugix.img"), readTestdata(t, "gpt-rugix.img")
	for _, c := range []struct {
		name    string
		base    []byte
		mutate  func(b []byte)
		err     string // substring of the error, or "" for success
		warning string // substring of a warning on success
		want    *Table // partitions on success; nil: same as base
	}{
		{name: "no MBR signature", base: mbr, mutate: func(b []byte) { b[510] = 0 }, err: "signature 0x55aa missing"},
		{name: "boot flag", base: mbr, mutate: func(b []byte) { b[446] = 0x12 }, err: "boot flag 0x12"},
		{name: "EBR points to itself", base: mbr, mutate: func(b []byte) {
			binary.LittleEndian.PutUint32(b[ebr2Link+8:], 2)
		}, err: "loops back to the EBR at sector 6"},
		{name: "EBR points to first", base: mbr, mutate: func(b []byte) {
			binary.LittleEndian.PutUint32(b[ebr2Link+8:], 0)
		}, err: "loops back to the EBR at sector 4"},
		{name: "EBR outside extended", base: mbr, mutate: func(b []byte) {
			binary.LittleEndian.PutUint32(b[ebr2Link+8:], 100)
		}, err: "EBR at sector 104 lies outside"},
		{name: "logical outside extended", base: mbr, mutate: func(b []byte) {
			binary.LittleEndian.PutUint32(b[ebr2Data+12:], 100)
		}, err: "logical partition 6"},
		{name: "EBR signature", base: mbr, mutate: func(b []byte) { b[ebr2+510] = 0 }, err: "EBR at sector 6: signature"},
		{name: "empty extended", base: mbr, mutate: func(b []byte) { clear(b[4*512 : 5*512]) },
			want: &Table{Type: "dos", DiskID: "deadbeef", SectorSize: 512, Partitions: wantMBR.Partitions[:4]}},
		{name: "MBR entry beyond disk", base: mbr, mutate: func(b []byte) {
			binary.LittleEndian.PutUint32(b[446+12:], 100)
		}, warning: "partition 1 ends after the end of the disk",
			want: &Table{Type: "dos", DiskID: "deadbeef", SectorSize: 512, Partitions: append(
				[]Partition{{Number: 1, Start: 512, Size: 51200, Type: "c", UUID: "deadbeef-01", Bootable: true}},
				wantMBR.Partitions[1:]...)}},
		{name: "protective MBR without GPT", base: mbr, mutate: func(b []byte) { b[446+4] = 0xee }, err: "no valid GPT"},

		{name: "primary header CRC", base: gpt, mutate: func(b []byte) { b[512+60] ^= 1 },
			warning: "primary GPT header is corrupt: header CRC32 mismatch"},
		{name: "primary entries CRC", base: gpt, mutate: func(b []byte) { b[2*512+60] ^= 1 },
			warning: "partition entry array CRC32 mismatch"},
		{name: "primary at wrong LBA", base: gpt, mutate: func(b []byte) {
			binary.LittleEndian.PutUint64(b[512+24:], 2)
			fixGPT(b, gptPrimary)
		}, warning: "claims to be at LBA 2"},
		{name: "primary signature", base: gpt, mutate: func(b []byte) { b[512] = 'X' }, warning: "using the backup header at LBA 15"},
		{name: "backup header CRC", base: gpt, mutate: func(b []byte) { b[gptBackup*512+60] ^= 1 },
			warning: "backup GPT header at LBA 15 is corrupt"},
		{name: "both header CRCs", base: gpt, mutate: func(b []byte) {
			b[512+60] ^= 1
			b[gptBackup*512+60] ^= 1
		}, err: "no valid GPT: primary header: header CRC32 mismatch"},
		{name: "absurd entry count", base: gpt, mutate: func(b []byte) {
			setGPT32(b, gptPrimary, numEntryOff, 0xffffffff)
		}, warning: "4294967295 partition entries of 128 bytes exceed"},
		{name: "absurd entry count in both", base: gpt, mutate: func(b []byte) {
			setGPT32(b, gptPrimary, numEntryOff, 0xffffffff)
			setGPT32(b, gptBackup, numEntryOff, 1<<20)
		}, err: "1048576 partition entries of 128 bytes exceed"},
		{name: "entry size", base: gpt, mutate: func(b []byte) {
			setGPT32(b, gptPrimary, 84, 0)
			setGPT32(b, gptBackup, 84, 100)
		}, err: "invalid partition entry size 100"},
		{name: "header size", base: gpt, mutate: func(b []byte) {
			setGPT32(b, gptPrimary, 12, 1000)
			setGPT32(b, gptBackup, 12, 20)
		}, err: "invalid header size"},
		{name: "entries beyond disk", base: gpt, mutate: func(b []byte) {
			binary.LittleEndian.PutUint64(b[512+72:], 1<<62)
			fixGPT(b, gptPrimary)
			binary.LittleEndian.PutUint64(b[gptBackup*512+72:], 15)
			fixGPT(b, gptBackup)
		}, err: "overlaps the header"},
		{name: "usable range beyond disk", base: gpt, mutate: func(b []byte) {
			binary.LittleEndian.PutUint64(b[512+48:], 16)
			fixGPT(b, gptPrimary)
			binary.LittleEndian.PutUint64(b[gptBackup*512+48:], 1<<63)
			fixGPT(b, gptBackup)
		}, err: "do not fit a disk of 16 sectors"},
		{name: "partition outside usable range", base: gpt, mutate: func(b []byte) {
			for _, lba := range []int{gptPrimary, gptBackup} {
				entries := int(binary.LittleEndian.Uint64(b[lba*512+72:]))
				binary.LittleEndian.PutUint64(b[entries*512+5*128+40:], 14) // partition 6 last LBA
				fixGPT(b, lba)
			}
		}, err: "GPT partition 6 (sectors 11-14) lies outside the usable sectors 4-12"},
		{name: "partition ends before start", base: gpt, mutate: func(b []byte) {
			for _, lba := range []int{gptPrimary, gptBackup} {
				entries := int(binary.LittleEndian.Uint64(b[lba*512+72:]))
				binary.LittleEndian.PutUint64(b[entries*512+40:], 3) // partition 1 last LBA
				fixGPT(b, lba)
			}
		}, err: "GPT partition 1 (sectors 4-3)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := bytes.Clone(c.base)
			c.mutate(b)
			got, err := ReadTable(bytes.NewReader(b), int64(len(b)), 0)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want one containing %q", err, c.err)
				}
				t.Log(err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := c.want
			if want == nil {
				want, _ = ReadTable(bytes.NewReader(c.base), int64(len(c.base)), 0)
			}
			warnings := strings.Join(got.Warnings, "\n")
			if !strings.Contains(warnings, c.warning) || (c.warning == "") != (warnings == "") {
				t.Errorf("warnings %q, want one containing %q", got.Warnings, c.warning)
			}
			t.Log(warnings)
			got.Warnings, want.Warnings = nil, nil
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestTruncated(t *testing.T) {
	for name, want := range map[string]*Table{"mbr-rugix.img": wantMBR, "gpt-rugix.img": wantGPT} {
		b := readTestdata(t, name)
		for n := 0; n < len(b); n += 64 {
			// The reader is short of the size claimed: reads past it fail.
			got, err := ReadTable(bytes.NewReader(b[:n]), int64(len(b)), 0)
			if err == nil {
				got.Warnings = nil
				if !reflect.DeepEqual(got, want) {
					t.Errorf("%s cut at %d: %+v", name, n, got)
				}
			}
			switch {
			case name == "mbr-rugix.img" && n < 9*512 && err == nil:
				t.Errorf("%s cut at %d before the last EBR: no error", name, n)
			case name == "gpt-rugix.img" && n < 4*512 && err == nil:
				t.Errorf("%s cut at %d before the primary entries: no error", name, n)
			case err != nil && err.Error() == "":
				t.Errorf("%s cut at %d: empty error", name, n)
			}
			// The disk itself is short.
			if _, err := ReadTable(bytes.NewReader(b[:n]), int64(n), 0); err == nil && n < 9*512 {
				t.Errorf("%s of %d bytes: no error", name, n)
			}
		}
	}
}

// writeEntry writes an MBR partition entry into sector at slot i.
func writeEntry(sector []byte, i int, typ byte, start, count uint32) {
	e := sector[446+16*i:]
	e[4] = typ
	binary.LittleEndian.PutUint32(e[8:], start)
	binary.LittleEndian.PutUint32(e[12:], count)
	sector[510], sector[511] = 0x55, 0xaa
}

func TestLongEBRChains(t *testing.T) {
	// 200 logical partitions, each an EBR followed by one data sector.
	const logicals = 200
	b := make([]byte, (1+2*logicals)*512)
	writeEntry(b, 0, 0x05, 1, 2*logicals)
	for i := 0; i < logicals; i++ {
		ebr := b[(1+2*i)*512:]
		writeEntry(ebr, 0, 0x83, 1, 1)
		if i < logicals-1 {
			writeEntry(ebr, 1, 0x05, uint32(2*(i+1)), 2)
		}
	}
	tbl, err := ReadTable(bytes.NewReader(b), int64(len(b)), 512)
	if err != nil {
		t.Fatal(err)
	}
	if len(tbl.Partitions) != 1+logicals {
		t.Fatalf("%d partitions", len(tbl.Partitions))
	}
	last := tbl.Partitions[logicals]
	if last.Number != 4+logicals || last.Start != uint64(2*logicals)*512 || last.UUID != "00000000-cc" {
		t.Errorf("last logical partition %+v", last)
	}

	// A chain of 300 EBRs without data partitions is cut off.
	b = make([]byte, 301*512)
	writeEntry(b, 0, 0x05, 1, 300)
	for i := 0; i < 300; i++ {
		writeEntry(b[(1+i)*512:], 1, 0x0f, uint32(i+1), 1)
	}
	if _, err := ReadTable(bytes.NewReader(b), int64(len(b)), 512); err == nil || !strings.Contains(err.Error(), "longer than 256") {
		t.Errorf("err = %v", err)
	}
}

func TestReadTableArguments(t *testing.T) {
	b := readTestdata(t, "gpt-rugix.img")
	for _, c := range []struct {
		size int64
		ss   int
		err  string
	}{
		{int64(len(b)), 1000, "unsupported sector size 1000"},
		{-1, 512, "negative disk size"},
		{100, 512, "too small for a partition table"},
		{512, 0, "too small for a GPT"},
		{int64(len(b)), 4096, "too small for a GPT"},
	} {
		if _, err := ReadTable(bytes.NewReader(b), c.size, c.ss); err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("ReadTable(size %d, sector size %d): err = %v, want %q", c.size, c.ss, err, c.err)
		}
	}
	if _, err := ReadDevice("testdata/missing.img"); err == nil || !strings.Contains(err.Error(), "testdata/missing.img") {
		t.Errorf("ReadDevice of a missing file: %v", err)
	}
	if _, err := ReadDevice("testdata"); err == nil || !strings.Contains(err.Error(), "read partition table of testdata") {
		t.Errorf("ReadDevice of a directory: %v", err)
	}
}

func TestUnescapeMountPath(t *testing.T) {
	for in, want := range map[string]string{
		`/mnt/a\040b`:     "/mnt/a b",
		`/x\011y\012z`:    "/x\ty\nz",
		`/back\134slash`:  `/back\slash`,
		`/plain`:          "/plain",
		`/short\04`:       `/short\04`,
		`/not\999octal`:   `/not\999octal`,
		`/trailing\`:      `/trailing\`,
		`\040\040`:        "  ",
		`/mnt/rugix\0401`: "/mnt/rugix 1",
	} {
		if got := unescapeMountPath(in); got != want {
			t.Errorf("unescapeMountPath(%q) = %q, want %q", in, got, want)
		}
	}
}
