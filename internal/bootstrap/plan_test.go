package bootstrap

import (
	"reflect"
	"strings"
	"testing"

	"github.com/bascule-ota/bascule/internal/disk"
)

const mib = 1 << 20

// sdcardMBR is partitions 1-5 of the Rugix MBR layout as sfdisk lays out
// config 32M, boot-a/b 16M, an extended partition to the end of a 128 MiB
// image and system-a 48M.
func sdcardMBR() *disk.Table {
	return &disk.Table{Type: "dos", DiskID: "5eed0b0b", SectorSize: 512, Partitions: []disk.Partition{
		{Number: 1, Start: 2048 * 512, Size: 32 * mib, Type: "c", UUID: "5eed0b0b-01", Bootable: true},
		{Number: 2, Start: 67584 * 512, Size: 16 * mib, Type: "c", UUID: "5eed0b0b-02"},
		{Number: 3, Start: 100352 * 512, Size: 16 * mib, Type: "c", UUID: "5eed0b0b-03"},
		{Number: 4, Start: 133120 * 512, Size: (262144 - 133120) * 512, Type: "5", UUID: "5eed0b0b-04", Extended: true},
		{Number: 5, Start: 135168 * 512, Size: 48 * mib, Type: "83", UUID: "5eed0b0b-05"},
	}}
}

func mbrGeometry(sectors uint64) *disk.Geometry {
	return &disk.Geometry{Sectors: sectors, FirstUsable: 1, LastUsable: sectors - 1, EBRs: map[int]uint64{5: 133120}}
}

func sectors(t *testing.T, tbl *disk.Table) [][2]uint64 {
	t.Helper()
	var s [][2]uint64
	for _, p := range tbl.Partitions {
		s = append(s, [2]uint64{p.Start / 512, p.Size / 512})
	}
	return s
}

func TestPlanDefaultMBR(t *testing.T) {
	old := sdcardMBR()
	l := Layout{Type: LayoutDefault, SystemSize: 64 * mib}
	p, err := planLayout(old, mbrGeometry(2097152), l.partitionsFor("dos"))
	if err != nil {
		t.Fatal(err)
	}
	want := [][2]uint64{
		{2048, 65536}, {67584, 32768}, {100352, 32768},
		{133120, 2097152 - 133120}, // the extended partition, to the end
		{135168, 131072},           // system-a grown to the system size
		{268288, 131072},           // system-b: 63 sectors for the EBR, aligned
		{401408, 2097152 - 401408}, // data: the rest
	}
	if got := sectors(t, p.table); !reflect.DeepEqual(got, want) {
		t.Errorf("sectors %v\nwant    %v", got, want)
	}
	if !reflect.DeepEqual(p.created, []int{6, 7}) || !reflect.DeepEqual(p.grown, []int{4, 5}) ||
		!reflect.DeepEqual(p.format, map[int]*Filesystem{7: {Type: "ext4", Label: "data"}}) {
		t.Errorf("created %v grown %v format %v", p.created, p.grown, p.format)
	}
	for _, n := range []int{6, 7} {
		if q := p.table.Partition(n); q.Type != "83" || q.UUID != "5eed0b0b-0"+string(rune('0'+n)) || q.Extended {
			t.Errorf("partition %d: %+v", n, q)
		}
	}
	if old.Partition(4).Size != (262144-133120)*512 || len(old.Partitions) != 5 {
		t.Error("planLayout changed the old table")
	}

	// Planning again on the result changes nothing.
	geo := mbrGeometry(2097152)
	geo.EBRs[6], geo.EBRs[7] = 268288-2048, 401408-2048
	again, err := planLayout(p.table, geo, l.partitionsFor("dos"))
	if err != nil || !again.unchanged() || !reflect.DeepEqual(again.table, p.table) {
		t.Errorf("second plan: %+v, %v", again, err)
	}
}

func TestPlanDefaultGPT(t *testing.T) {
	old := &disk.Table{Type: "gpt", DiskID: "2e7b7c1a-2c4b-4f3d-9e2a-8f1e2d3c4b5a", SectorSize: 512, Partitions: []disk.Partition{
		{Number: 1, Start: 1 * mib, Size: 32 * mib, Type: gptEFI, UUID: "11111111-2222-4333-8444-555555555555"},
		{Number: 2, Start: 33 * mib, Size: 16 * mib, Type: gptLinux, UUID: "21111111-2222-4333-8444-555555555555"},
		{Number: 3, Start: 49 * mib, Size: 16 * mib, Type: gptLinux, UUID: "31111111-2222-4333-8444-555555555555"},
		{Number: 4, Start: 65 * mib, Size: 64 * mib, Type: gptLinux, UUID: "41111111-2222-4333-8444-555555555555"},
	}}
	geo := &disk.Geometry{Sectors: 2097152, FirstUsable: 2048, LastUsable: 2097152 - 34}
	l := Layout{Type: LayoutDefault, SystemSize: 64 * mib}
	p, err := planLayout(old, geo, l.partitionsFor("gpt"))
	if err != nil {
		t.Fatal(err)
	}
	want := [][2]uint64{{2048, 65536}, {67584, 32768}, {100352, 32768}, {133120, 131072}, {264192, 131072}, {395264, 2097152 - 34 - 395264 + 1}}
	if got := sectors(t, p.table); !reflect.DeepEqual(got, want) {
		t.Errorf("sectors %v\nwant    %v", got, want)
	}
	if !reflect.DeepEqual(p.created, []int{5, 6}) || p.grown != nil || p.format[6] == nil || len(p.format) != 1 {
		t.Errorf("created %v grown %v format %v", p.created, p.grown, p.format)
	}
	for i, q := range p.table.Partitions {
		if i < 4 && q != old.Partitions[i] || i >= 4 && (q.UUID != "" || q.Type != gptLinux) {
			t.Errorf("partition %+v", q)
		}
	}
}

func TestPlanCustom(t *testing.T) {
	old := sdcardMBR()
	layout := []PartitionConfig{
		{Size: 256 * mib, Type: "c", Filesystem: &Filesystem{Type: "ext4"}},
		{Size: 128 * mib, Type: "c"},
		{Size: 128 * mib, Type: "c"},
		{Type: "5"},
		{Size: 32 * mib},
		{Size: 100 * mib, Filesystem: &Filesystem{Type: "ext4", Label: "x"}},
	}
	p, err := planLayout(old, mbrGeometry(1<<20), layout)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.table.Partitions) != 6 || p.table.Partition(5).Size != 48*mib || p.table.Partition(6).Size != 100*mib {
		t.Errorf("table %+v", p.table.Partitions)
	}
	if len(p.warnings) != 1 || !strings.Contains(p.warnings[0], "partition 1") || len(p.format) != 1 || p.format[6].Label != "x" {
		t.Errorf("warnings %v format %v", p.warnings, p.format)
	}
}

// TestPlanLogicalBeforeEBR grows a logical partition up to the EBR of the
// next one, wherever that EBR is.
func TestPlanLogicalBeforeEBR(t *testing.T) {
	old := sdcardMBR()
	old.Partitions[3].Size = (2097152 - 133120) * 512
	old.Partitions = append(old.Partitions, disk.Partition{Number: 6, Start: 300000 * 512, Size: 1000 * 512, Type: "83"})
	geo := mbrGeometry(2097152)
	geo.EBRs[6] = 299000
	layout := Layout{Type: LayoutDefault, SystemSize: 256 * mib}.partitionsFor("dos")
	p, err := planLayout(old, geo, layout)
	if err != nil {
		t.Fatal(err)
	}
	if got := p.table.Partition(5).Size / 512; got != 299000-135168 {
		t.Errorf("partition 5 grew to %d sectors", got)
	}
	if got := p.table.Partition(6).Size / 512; got != 256*mib/512 {
		t.Errorf("partition 6 grew to %d sectors", got)
	}
}

func TestPlanErrors(t *testing.T) {
	def := Layout{Type: LayoutDefault, SystemSize: 64 * mib}.partitionsFor("dos")
	for _, tc := range []struct {
		name    string
		sectors uint64
		edit    func(*disk.Table)
		layout  []PartitionConfig
		want    string
	}{
		{"too small for system-b", 300000, nil, def, "too small: partition 6 needs 64 MiB but only"},
		{"too small for data", 401408 + 100, nil, def, "too small: only 50 KiB left for partition 7"},
		{"no room at all", 268288, nil, def, "no room left for partition 6"},
		{"disk smaller than the image", 200000, nil, def, "smaller than the image: partition 4 ends at sector 262143"},
		{"type mismatch", 1 << 21, func(t *disk.Table) { t.Partitions[1].Type = "83" }, def, "partition 2 has type 83, the layout wants c"},
		{"gap", 1 << 21, func(t *disk.Table) { t.Partitions[1].Number = 3; t.Partitions = t.Partitions[:2] }, def, "no partition 2"},
		{"extended not fourth", 1 << 21, nil, []PartitionConfig{{Type: "c"}, {Type: "5"}}, "must be the fourth"},
		{"five without extended", 1 << 21, func(t *disk.Table) { t.Partitions = t.Partitions[:3] },
			[]PartitionConfig{{Type: "c"}, {Type: "c"}, {Type: "c"}, {Type: "83"}, {Type: "83"}}, "needs an extended partition"},
		{"GUID on MBR", 1 << 21, nil, []PartitionConfig{{Type: gptEFI}}, "does not fit the MBR"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old := sdcardMBR()
			if tc.edit != nil {
				tc.edit(old)
			}
			_, err := planLayout(old, mbrGeometry(tc.sectors), tc.layout)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
	gpt := &disk.Table{Type: "gpt", SectorSize: 512}
	_, err := planLayout(gpt, &disk.Geometry{Sectors: 1 << 20, FirstUsable: 34, LastUsable: 1<<20 - 34}, []PartitionConfig{{Type: "c"}})
	if err == nil || !strings.Contains(err.Error(), "does not fit the GPT") {
		t.Errorf("MBR type on GPT: %v", err)
	}
}

func TestPartitionsForDefault(t *testing.T) {
	l := Layout{Type: LayoutDefault, SystemSize: 4 << 30}
	mbr, gpt := l.partitionsFor("dos"), l.partitionsFor("gpt")
	if len(mbr) != 7 || mbr[3].Type != "5" || mbr[4].Size != 4<<30 || mbr[6].Filesystem.Label != "data" || mbr[0].Size != 256*mib || mbr[1].Size != 128*mib {
		t.Errorf("MBR default %+v", mbr)
	}
	if len(gpt) != 6 || gpt[0].Type != gptEFI || gpt[1].Size != 256*mib || gpt[5].Filesystem.Label != "data" || gpt[5].Size != 0 {
		t.Errorf("GPT default %+v", gpt)
	}
	custom := Layout{Type: LayoutMBR, Partitions: []PartitionConfig{{Size: 1}}}
	if got := custom.partitionsFor("gpt"); !reflect.DeepEqual(got, custom.Partitions) {
		t.Errorf("custom %+v", got)
	}
}
