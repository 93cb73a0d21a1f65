package disk

import (
	"bytes"
	"testing"
)

// FuzzReadTable feeds arbitrary disk images to ReadTable: it must not panic,
// loop or allocate without bound, and what it accepts must be consistent.
// The seeds are the committed images (an MBR with an EBR chain, a GPT) and,
// in testdata/fuzz/FuzzReadTable, the same with an EBR loop and with a
// corrupt primary GPT header.
func FuzzReadTable(f *testing.F) {
	f.Add(readTestdata(f, "mbr-rugix.img"))
	f.Add(readTestdata(f, "gpt-rugix.img"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, ss := range []int{0, 512, 4096} {
			tbl, err := ReadTable(bytes.NewReader(b), int64(len(b)), ss)
			if err != nil {
				if err.Error() == "" {
					t.Fatal("empty error")
				}
				continue
			}
			if tbl.Type != "dos" && tbl.Type != "gpt" {
				t.Fatalf("type %q", tbl.Type)
			}
			if tbl.SectorSize != 512 && tbl.SectorSize != 4096 {
				t.Fatalf("sector size %d", tbl.SectorSize)
			}
			last := 0
			for _, p := range tbl.Partitions {
				if p.Number <= last {
					t.Fatalf("partition %d after %d", p.Number, last)
				}
				last = p.Number
				if p.Size == 0 || p.Type == "" || p.UUID == "" {
					t.Fatalf("partition %+v", p)
				}
				if tbl.Type == "gpt" && p.Start+p.Size > uint64(len(b)) {
					t.Fatalf("GPT partition %+v beyond the end of a disk of %d bytes", p, len(b))
				}
				if tbl.Type == "gpt" && (p.Bootable || p.Extended) {
					t.Fatalf("GPT partition %+v with MBR flags", p)
				}
			}
		}
	})
}
