package disk

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// memDisk is an in-memory disk that records its writes in batches, a batch
// ending at each Sync, to replay power cuts.
type memDisk struct {
	b       []byte
	batches [][]sectorWrite
	cur     []sectorWrite
	failAt  int // fail the write with this index (1-based); 0: never
	writes  int
}

func (d *memDisk) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(d.b)) {
		return 0, io.EOF
	}
	n := copy(p, d.b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (d *memDisk) WriteAt(p []byte, off int64) (int, error) {
	d.writes++
	if d.writes == d.failAt {
		return 0, errors.New("injected write error")
	}
	if off+int64(len(p)) > int64(len(d.b)) {
		return 0, errors.New("write past the end")
	}
	copy(d.b[off:], p)
	d.cur = append(d.cur, sectorWrite{off: off, data: append([]byte(nil), p...)})
	return len(p), nil
}

func (d *memDisk) Sync() error {
	d.batches = append(d.batches, d.cur)
	d.cur = nil
	return nil
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// growImage copies the image at path into a sparse file of size bytes, as
// flashing an image onto a larger card does.
func growImage(t *testing.T, path string, size int64) string {
	t.Helper()
	big := filepath.Join(t.TempDir(), "big.img")
	if err := os.WriteFile(big, readFile(t, path), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(big, size); err != nil {
		t.Fatal(err)
	}
	return big
}

func writeFile(t *testing.T, path string, tbl *Table) {
	t.Helper()
	if err := WriteDevice(path, tbl); err != nil {
		t.Fatal(err)
	}
}

// sameTable compares what sfdisk dumps of two disks, ignoring the device
// names.
func sameSfdiskDump(t *testing.T, a, b string) {
	t.Helper()
	da := strings.ReplaceAll(run(t, "", "sfdisk", "--dump", a), a, "DEV")
	db := strings.ReplaceAll(run(t, "", "sfdisk", "--dump", b), b, "DEV")
	if da != db {
		t.Errorf("sfdisk --dump differs:\n%s\n---\n%s", da, db)
	}
}

// TestWriteFreshLikeSfdisk writes the tables sfdisk made to empty images
// and expects the very same bytes: the same EBR placement, CHS values,
// protective MBR and GPT headers.
func TestWriteFreshLikeSfdisk(t *testing.T) {
	needTools(t, "sfdisk", "partx")
	for name, script := range map[string]string{
		"mbr": rugixMBRSmall,
		"mbr-primary-only": `label: dos
label-id: 0x00c0ffee
size=8M, type=83
size=8M, type=7, bootable
`,
		"gpt": `label: gpt
label-id: 2E7B7C1A-2C4B-4F3D-9E2A-8F1E2D3C4B5A
size=8M, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, uuid=11111111-2222-4333-8444-555555555555, name="config"
size=8M, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=21111111-2222-4333-8444-555555555555, name="boot-ä"
size=12M, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=31111111-2222-4333-8444-555555555555
type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=41111111-2222-4333-8444-555555555555, name="data"
`,
	} {
		t.Run(name, func(t *testing.T) {
			img := sfdiskImage(t, 256<<20, script)
			tbl, err := ReadDevice(img)
			if err != nil {
				t.Fatal(err)
			}
			mine := filepath.Join(t.TempDir(), "mine.img")
			if err := os.WriteFile(mine, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(mine, 256<<20); err != nil {
				t.Fatal(err)
			}
			writeFile(t, mine, tbl)
			a, b := readFile(t, img), readFile(t, mine)
			if !bytes.Equal(a, b) {
				for off := 0; off < len(a); off += 512 {
					if !bytes.Equal(a[off:off+512], b[off:off+512]) {
						t.Errorf("sector %d differs:\nsfdisk %x\nmine   %x", off/512, a[off:off+512], b[off:off+512])
						break
					}
				}
			}
			got, err := ReadDevice(mine)
			if err != nil || !reflect.DeepEqual(got, tbl) {
				t.Errorf("read back %+v, %v\nwant %+v", got, err, tbl)
			}
			checkAgainstSfdisk(t, mine, got)
		})
	}
}

// rugixSdcard is a Buildroot-like image: partitions 1-5 of the Rugix MBR
// layout on 128 MiB.
const rugixSdcard = `label: dos
label-id: 0x5eed0b0b
size=32M, type=c, bootable
size=16M, type=c
size=16M, type=c
type=5
size=48M, type=83
`

// grownMBR is the table of rugixSdcard on a disk of size bytes with the
// extended partition grown to its end, partition 5 grown by 1 MiB and two
// logical partitions added the way bootstrapping lays them out.
func grownMBR(t *testing.T, old *Table, size uint64) *Table {
	t.Helper()
	nt := *old
	nt.Partitions = append([]Partition(nil), old.Partitions...)
	ext := &nt.Partitions[3]
	ext.Size = size - ext.Start
	p5 := &nt.Partitions[4]
	p5.Size += 1 << 20
	start6 := (p5.Start + p5.Size + 63*512 + 1<<20 - 1) &^ (1<<20 - 1)
	nt.Partitions = append(nt.Partitions,
		Partition{Number: 6, Start: start6, Size: 48 << 20, Type: "83"},
		Partition{Number: 7, Start: start6 + 49<<20, Size: size - (start6 + 49<<20), Type: "83"})
	for i := range nt.Partitions {
		nt.Partitions[i].UUID = fmt.Sprintf("%s-%02x", nt.DiskID, nt.Partitions[i].Number)
	}
	return &nt
}

func TestWriteGrowMBR(t *testing.T) {
	needTools(t, "sfdisk", "partx")
	small := sfdiskImage(t, 128<<20, rugixSdcard)
	// Boot code and a stray byte after the signature must survive.
	code := bytes.Repeat([]byte{0xeb}, 440)
	f, err := os.OpenFile(small, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt(code, 0)
	f.Close()
	const size = 512 << 20
	img := growImage(t, small, size)
	old, err := ReadDevice(img)
	if err != nil {
		t.Fatal(err)
	}
	f, _ = os.Open(img)
	geo, err := ReadGeometry(f, size, old)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if want := (map[int]uint64{5: old.Partition(4).Start / 512}); !reflect.DeepEqual(geo.EBRs, want) ||
		geo.Sectors != size/512 || geo.LastUsable != size/512-1 || geo.Repair != "" {
		t.Errorf("geometry %+v", geo)
	}
	nt := grownMBR(t, old, size)
	writeFile(t, img, nt)
	got, err := ReadDevice(img)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, nt) {
		t.Errorf("read back %+v\nwant %+v", got, nt)
	}
	checkAgainstSfdisk(t, img, got)
	if b := readFile(t, img); !bytes.Equal(b[:440], code) {
		t.Error("boot code not kept")
	}

	// sfdisk, given the same table, writes the same bytes.
	ref := growImage(t, small, size)
	var script strings.Builder
	fmt.Fprintf(&script, "label: dos\nlabel-id: 0x%s\n", nt.DiskID)
	for _, p := range nt.Partitions {
		fmt.Fprintf(&script, "%d: start=%d, size=%d, type=%s", p.Number, p.Start/512, p.Size/512, p.Type)
		if p.Bootable {
			script.WriteString(", bootable")
		}
		script.WriteString("\n")
	}
	run(t, script.String(), "sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", ref)
	sameSfdiskDump(t, img, ref)
	a, b := readFile(t, img), readFile(t, ref)
	for off := 512; off < len(a); off += 512 { // sfdisk keeps the boot code too, see below
		if !bytes.Equal(a[off:off+512], b[off:off+512]) {
			t.Errorf("sector %d differs from sfdisk's:\nsfdisk %x\nmine   %x", off/512, b[off:off+512], a[off:off+512])
			break
		}
	}
	if !bytes.Equal(a[440:512], b[440:512]) {
		t.Errorf("MBR entries differ from sfdisk's:\nsfdisk %x\nmine   %x", b[440:512], a[440:512])
	}

	// Writing the same table again changes nothing.
	before := readFile(t, img)
	writeFile(t, img, got)
	if !bytes.Equal(before, readFile(t, img)) {
		t.Error("rewriting the same table changed the disk")
	}
}

func TestWriteGrowGPT(t *testing.T) {
	needTools(t, "sfdisk", "partx")
	small := sfdiskImage(t, 64<<20, `label: gpt
size=8M, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="config"
size=8M, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4
size=8M, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4
size=12M, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name="system-a"
`)
	// An attribute on partition 4 (bit 2, legacy BIOS bootable) must stay.
	run(t, "", "sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", "--part-attrs", small, "4", "LegacyBIOSBootable")
	const size = 256 << 20
	img := growImage(t, small, size)
	old, err := ReadDevice(img)
	if err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(img)
	geo, err := ReadGeometry(f, size, old)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if geo.FirstUsable != 2048 || geo.LastUsable != size/512-34 || !strings.Contains(geo.Repair, "not at the end of the disk") ||
		!strings.Contains(geo.Repair, "protective MBR covers") {
		t.Errorf("geometry %+v", geo)
	}
	nt := *old
	nt.Partitions = append([]Partition(nil), old.Partitions...)
	nt.Partitions[3].Size += 4 << 20
	end := nt.Partitions[3].Start + nt.Partitions[3].Size
	nt.Partitions = append(nt.Partitions,
		Partition{Number: 5, Start: end, Size: 16 << 20, Type: linuxType},
		Partition{Number: 6, Start: end + 16<<20, Size: geo.LastUsable*512 + 512 - (end + 16<<20), Type: linuxType, Name: "data"})
	writeFile(t, img, &nt)
	got, err := ReadDevice(img)
	if err != nil {
		t.Fatal(err)
	}
	if got.DiskID != old.DiskID || len(got.Partitions) != 6 || len(got.Warnings) != 0 {
		t.Fatalf("read back %+v", got)
	}
	for i, p := range got.Partitions {
		want := nt.Partitions[i]
		if i < 4 {
			if p != want {
				t.Errorf("partition %d = %+v, want %+v", i+1, p, want)
			}
			continue
		}
		if p.UUID == "" || p.UUID == got.Partitions[i-1].UUID || p.Start != want.Start || p.Size != want.Size || p.Type != want.Type || p.Name != want.Name {
			t.Errorf("new partition %d = %+v, want %+v with a random UUID", i+1, p, want)
		}
		if p.UUID[14] != '4' {
			t.Errorf("UUID %s is not version 4", p.UUID)
		}
	}
	checkAgainstSfdisk(t, img, got)
	// sfdisk finds nothing to complain about: the backup is at the end.
	cmd := run(t, "", "sh", "-c", "sfdisk --verify "+img+" 2>&1")
	if !strings.Contains(cmd, "No errors detected") || strings.Contains(cmd, "backup") {
		t.Errorf("sfdisk --verify:\n%s", cmd)
	}
	if dump := run(t, "", "sfdisk", "--dump", img); !strings.Contains(dump, fmt.Sprintf("last-lba: %d", size/512-34)) {
		t.Errorf("sfdisk --dump:\n%s", dump)
	}
	if a := gptAttr(t, img, 4); a != 1<<2 {
		t.Errorf("attributes of partition 4 = %#x", a)
	}
	f, _ = os.Open(img)
	geo, err = ReadGeometry(f, size, got)
	f.Close()
	if err != nil || geo.Repair != "" {
		t.Errorf("after the write: geometry %+v, %v", geo, err)
	}
	before := readFile(t, img)
	writeFile(t, img, got)
	if !bytes.Equal(before, readFile(t, img)) {
		t.Error("rewriting the same table changed the disk")
	}
}

func gptEntryOffset(t *testing.T, img string, n int) int64 {
	t.Helper()
	b := readFile(t, img)
	return int64(binary.LittleEndian.Uint64(b[512+72:]))*512 + int64(n-1)*128
}

func gptAttr(t *testing.T, img string, n int) uint64 {
	t.Helper()
	off := gptEntryOffset(t, img, n)
	return binary.LittleEndian.Uint64(readFile(t, img)[off+48:])
}

// TestWriteCrash cuts the power at every point of a write: after any batch,
// with any subset of the next batch on the disk. Every state must read as a
// valid table whose partitions are the old ones, possibly grown, plus some
// of the new ones, and writing again must finish the job.
func TestWriteCrash(t *testing.T) {
	needTools(t, "sfdisk", "partx")
	const size = 256 << 20
	mbrOld := growImage(t, sfdiskImage(t, 128<<20, rugixSdcard), size)
	gptOld := growImage(t, sfdiskImage(t, 64<<20, rugixGPTSmall[:strings.Index(rugixGPTSmall, "size=12M, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=\"system-b\"")]), size)
	for name, img := range map[string]string{"mbr": mbrOld, "gpt": gptOld} {
		t.Run(name, func(t *testing.T) {
			old, err := ReadDevice(img)
			if err != nil {
				t.Fatal(err)
			}
			var nt *Table
			if old.Type == "dos" {
				nt = grownMBR(t, old, size)
			} else {
				c := *old
				c.Partitions = append([]Partition(nil), old.Partitions...)
				last := c.Partitions[len(c.Partitions)-1]
				c.Partitions = append(c.Partitions,
					Partition{Number: 5, Start: last.Start + last.Size, Size: 12 << 20, Type: linuxType, UUID: "aaaaaaaa-2222-4333-8444-555555555555"},
					Partition{Number: 6, Start: last.Start + last.Size + 12<<20, Size: 64 << 20, Type: linuxType, UUID: "baaaaaaa-2222-4333-8444-555555555555"})
				nt = &c
			}
			orig := readFile(t, img)
			rec := &memDisk{b: append([]byte(nil), orig...)}
			if err := WriteTable(rec, size, nt); err != nil {
				t.Fatal(err)
			}
			if len(rec.cur) != 0 {
				t.Fatal("writes after the last sync")
			}
			final := rec.b
			if name == "mbr" && len(rec.batches) != 3 || name == "gpt" && len(rec.batches) != 4 {
				t.Errorf("%d batches", len(rec.batches))
			}
			states := 0
			for k, batch := range rec.batches {
				for subset := 0; subset < 1<<len(batch); subset++ {
					d := &memDisk{b: append([]byte(nil), orig...)}
					for _, b := range rec.batches[:k] {
						for _, w := range b {
							copy(d.b[w.off:], w.data)
						}
					}
					for i, w := range batch {
						if subset&(1<<i) != 0 {
							copy(d.b[w.off:], w.data)
						}
					}
					states++
					got, err := ReadTable(d, size, 512)
					if err != nil {
						t.Fatalf("cut in batch %d (subset %b): %v", k, subset, err)
					}
					checkIntermediate(t, old, nt, got)
					if err := WriteTable(d, size, nt); err != nil {
						t.Fatalf("rewrite after a cut in batch %d: %v", k, err)
					}
					if !bytes.Equal(d.b, final) {
						t.Errorf("rewrite after a cut in batch %d (subset %b) does not give the same disk", k, subset)
					}
				}
			}
			t.Logf("%d cut states", states)

			// A failing write leaves a table that reads and can be redone.
			for fail := 1; fail <= rec.writes; fail++ {
				d := &memDisk{b: append([]byte(nil), orig...), failAt: fail}
				if err := WriteTable(d, size, nt); err == nil || !strings.Contains(err.Error(), "injected") {
					t.Fatalf("write %d failing: err = %v", fail, err)
				}
				if _, err := ReadTable(d, size, 512); err != nil {
					t.Errorf("after write %d failed: %v", fail, err)
				}
			}
		})
	}
}

// checkIntermediate checks that got is old grown towards nt: every old
// partition at its place with its old or new size, and a prefix of the new
// partitions.
func checkIntermediate(t *testing.T, old, nt, got *Table) {
	t.Helper()
	if got.DiskID != old.DiskID {
		t.Fatalf("disk ID %s", got.DiskID)
	}
	for i, p := range got.Partitions {
		if i >= len(nt.Partitions) || p.Number != nt.Partitions[i].Number {
			t.Fatalf("unexpected partition %+v", p)
		}
		w := nt.Partitions[i]
		if o := old.Partition(p.Number); o != nil && p.Size == o.Size {
			w = *o
		}
		if p.Start != w.Start || p.Size != w.Size || p.Type != w.Type {
			t.Fatalf("partition %+v, want %+v", p, w)
		}
	}
	if len(got.Partitions) < len(old.Partitions) {
		t.Fatalf("lost partitions: %+v", got.Partitions)
	}
}

func TestWriteRejects(t *testing.T) {
	needTools(t, "sfdisk", "partx")
	mbr := growImage(t, sfdiskImage(t, 128<<20, rugixSdcard), 256<<20)
	gpt := growImage(t, sfdiskImage(t, 64<<20, rugixGPTSmall), 128<<20)
	for _, tc := range []struct {
		name, img, want string
		edit            func(tb *Table)
	}{
		{"overlap", mbr, "overlap", func(tb *Table) { tb.Partitions[1].Size += 1 << 20 }},
		{"logical outside extended", mbr, "does not fit", func(tb *Table) {
			tb.Partitions = append(tb.Partitions, Partition{Number: 6, Start: 200 << 20, Size: 50 << 20, Type: "83"})
		}},
		{"no room for the EBR", mbr, "does not fit", func(tb *Table) {
			p5 := tb.Partitions[4]
			tb.Partitions[3].Size = 256<<20 - tb.Partitions[3].Start
			tb.Partitions = append(tb.Partitions, Partition{Number: 6, Start: p5.Start + p5.Size, Size: 1 << 20, Type: "83"})
		}},
		{"gap in logical numbers", mbr, "without gaps", func(tb *Table) { tb.Partitions[4].Number = 6 }},
		{"past the end", mbr, "outside the usable", func(tb *Table) { tb.Partitions[3].Size = 1 << 30 }},
		{"extended type", mbr, "does not match", func(tb *Table) { tb.Partitions[3].Type = "83" }},
		{"unaligned", mbr, "sector boundaries", func(tb *Table) { tb.Partitions[4].Size -= 100 }},
		{"type change", mbr, "not replacing", func(tb *Table) { tb.Type, tb.DiskID = "gpt", "2e7b7c1a-2c4b-4f3d-9e2a-8f1e2d3c4b5a" }},
		{"gpt overlap", gpt, "overlap", func(tb *Table) { tb.Partitions[0].Size += 1 << 20 }},
		{"gpt past the end", gpt, "outside the usable", func(tb *Table) { tb.Partitions[5].Size += 1 << 30 }},
		{"gpt bad type", gpt, "invalid GPT type", func(tb *Table) { tb.Partitions[5].Type = "83" }},
		{"gpt duplicate UUID", gpt, "same UUID", func(tb *Table) { tb.Partitions[5].UUID = tb.Partitions[4].UUID }},
		{"gpt number", gpt, "partition number 129", func(tb *Table) { tb.Partitions[5].Number = 129 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tb, err := ReadDevice(tc.img)
			if err != nil {
				t.Fatal(err)
			}
			tc.edit(tb)
			before := readFile(t, tc.img)
			f, err := os.Open(tc.img)
			if err != nil {
				t.Fatal(err)
			}
			fi, _ := f.Stat()
			if err := CheckTable(f, fi.Size(), tb); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("CheckTable: err = %v, want %q", err, tc.want)
			}
			f.Close()
			err = WriteDevice(tc.img, tb)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.img) {
				t.Errorf("err = %v, want %q and the device name", err, tc.want)
			}
			if !bytes.Equal(before, readFile(t, tc.img)) {
				t.Error("a rejected table was written")
			}
		})
	}
}

// TestWriteGPT4K writes a GPT with 4096-byte sectors to an empty image and
// has sfdisk read it through a loop device with that sector size.
func TestWriteGPT4K(t *testing.T) {
	img := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(img, make([]byte, 0), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 64<<20); err != nil {
		t.Fatal(err)
	}
	tbl := &Table{Type: "gpt", DiskID: "2e7b7c1a-2c4b-4f3d-9e2a-8f1e2d3c4b5a", SectorSize: 4096, Partitions: []Partition{
		{Number: 1, Start: 1 << 20, Size: 8 << 20, Type: efiType, Name: "config"},
		{Number: 2, Start: 9 << 20, Size: 8 << 20, Type: linuxType},
	}}
	writeFile(t, img, tbl)
	got, err := ReadDevice(img)
	if err != nil || got.SectorSize != 4096 || len(got.Partitions) != 2 || got.Partitions[0].Name != "config" || len(got.Warnings) != 0 {
		t.Fatalf("read back %+v, %v", got, err)
	}
	if os.Geteuid() != 0 {
		return
	}
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		return
	}
	needTools(t, "losetup", "sfdisk", "partx")
	dev := attachLoop(t, img, "--sector-size", "4096")
	checkAgainstSfdisk(t, dev, got)
}

// TestKernelPartitions tells the kernel about a grown table through BLKPG
// and reads back what it knows.
func TestKernelPartitions(t *testing.T) {
	needLoop(t)
	img := growImage(t, sfdiskImage(t, 128<<20, rugixSdcard), 256<<20)
	dev := attachLoop(t, img)
	run(t, "", "partx", "--add", dev)
	old, err := ReadDevice(dev)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := KernelPartitions(dev)
	if err != nil {
		t.Fatal(err)
	}
	if len(kp) != 5 || kp[5] != (KernelPartition{5, old.Partition(5).Start, old.Partition(5).Size}) || kp[4].Size != 1024 {
		t.Errorf("kernel partitions %+v", kp)
	}
	nt := grownMBR(t, old, 256<<20)
	writeFile(t, dev, nt)
	if got, err := ReadDevice(dev); err != nil || !reflect.DeepEqual(got, nt) {
		t.Fatalf("read back from %s: %+v, %v", dev, got, err)
	}
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, n := range []int{6, 7} {
		p := nt.Partition(n)
		if err := AddPartition(f, n, p.Start, p.Size); err != nil {
			t.Fatal(err)
		}
	}
	kp, err = KernelPartitions(dev)
	if err != nil {
		t.Fatal(err)
	}
	if len(kp) != 7 || kp[7] != (KernelPartition{7, nt.Partition(7).Start, nt.Partition(7).Size}) {
		t.Errorf("kernel partitions %+v", kp)
	}
	if _, err := KernelPartitions(img); err == nil {
		t.Error("KernelPartitions of a file succeeded")
	}
}
