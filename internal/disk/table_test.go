package disk

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const gib = 1 << 30

const (
	efiType   = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
	linuxType = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
)

// The Rugix default MBR layout (§3.1), with small sizes.
const rugixMBR = `label: dos
label-id: 0x1A2B3C4D
size=256M, type=c, bootable
size=128M, type=c
size=128M, type=c
type=5
size=64M, type=83
size=64M, type=83
type=83
`

func TestSfdiskRugixMBR(t *testing.T) {
	needTools(t, "sfdisk", "partx")
	img := sfdiskImage(t, gib, rugixMBR)
	tbl, err := ReadDevice(img)
	if err != nil {
		t.Fatal(err)
	}
	checkAgainstSfdisk(t, img, tbl)
	if tbl.DiskID != "1a2b3c4d" || tbl.SectorSize != 512 || len(tbl.Warnings) != 0 {
		t.Errorf("table %+v", tbl)
	}
	want := []struct {
		n       int
		typ     string
		size    uint64
		boot    bool
		ext     bool
		partuid string
	}{
		{1, "c", 256 << 20, true, false, "1a2b3c4d-01"},
		{2, "c", 128 << 20, false, false, "1a2b3c4d-02"},
		{3, "c", 128 << 20, false, false, "1a2b3c4d-03"},
		{4, "5", gib - (512 << 20) - 1<<20, false, true, "1a2b3c4d-04"},
		{5, "83", 64 << 20, false, false, "1a2b3c4d-05"},
		{6, "83", 64 << 20, false, false, "1a2b3c4d-06"},
		{7, "83", 0, false, false, "1a2b3c4d-07"},
	}
	for i, w := range want {
		p := tbl.Partitions[i]
		if p.Number != w.n || p.Type != w.typ || (w.size != 0 && p.Size != w.size) ||
			p.Bootable != w.boot || p.Extended != w.ext || p.UUID != w.partuid {
			t.Errorf("partition %+v, want %+v", p, w)
		}
	}
	if p := tbl.Partition(5); p == nil || p.Start%(1<<20) != 0 {
		t.Errorf("partition 5 = %+v, want 1 MiB aligned", p)
	}
	if tbl.Partition(8) != nil {
		t.Error("partition 8 exists")
	}
}

func TestSfdiskManyLogical(t *testing.T) {
	needTools(t, "sfdisk", "partx")
	// Slot 2 empty, the extended container in slot 3 of type 0x0f, a
	// primary after it, and logical partitions of assorted types, one
	// marked bootable.
	var s strings.Builder
	s.WriteString("label: dos\nlabel-id: 0x00c0ffee\n")
	s.WriteString("IMG1 : start=2048, size=16M, type=83\n")
	s.WriteString("IMG3 : start=65536, size=512M, type=f\n")
	s.WriteString("IMG4 : start=1114112, size=32M, type=7\n")
	for i, typ := range []string{"83", "82", "c", "7", "8e", "fd", "b", "83", "da", "83"} {
		fmt.Fprintf(&s, "IMG%d : size=8M, type=%s", i+5, typ)
		if i == 3 {
			s.WriteString(", bootable")
		}
		s.WriteString("\n")
	}
	img := sfdiskImage(t, gib, s.String())
	tbl, err := ReadDevice(img)
	if err != nil {
		t.Fatal(err)
	}
	checkAgainstSfdisk(t, img, tbl)
	if len(tbl.Partitions) != 13 || tbl.Partition(2) != nil || !tbl.Partition(3).Extended || tbl.Partition(14) == nil {
		t.Errorf("partitions %+v", tbl.Partitions)
	}
	if p := tbl.Partition(8); p == nil || !p.Bootable || p.Type != "7" {
		t.Errorf("logical partition 8 = %+v, want bootable, type 7", p)
	}
}

// The Rugix default GPT layout (§3.1), with small sizes, names and fixed
// GUIDs where the test can check them.
const rugixGPT = `label: gpt
label-id: 6E8B1C2A-0D3F-4A57-9B1E-2F3C4D5E6F70
size=64M, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="config"
size=64M, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name="boot-a"
size=64M, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name="boot-b"
size=128M, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name="system-a", uuid=A1B2C3D4-E5F6-4789-8ABC-DEF012345678
size=128M, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name="system-b"
type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name="data"
`

func TestSfdiskRugixGPT(t *testing.T) {
	needTools(t, "sfdisk", "partx")
	img := sfdiskImage(t, gib, rugixGPT)
	tbl, err := ReadDevice(img)
	if err != nil {
		t.Fatal(err)
	}
	checkAgainstSfdisk(t, img, tbl)
	if tbl.Type != "gpt" || tbl.DiskID != "6e8b1c2a-0d3f-4a57-9b1e-2f3c4d5e6f70" || len(tbl.Warnings) != 0 {
		t.Errorf("table %+v", tbl)
	}
	names := []string{"config", "boot-a", "boot-b", "system-a", "system-b", "data"}
	for i, p := range tbl.Partitions {
		typ := linuxType
		if i == 0 {
			typ = efiType
		}
		if p.Number != i+1 || p.Name != names[i] || p.Type != typ {
			t.Errorf("partition %+v, want number %d name %q type %s", p, i+1, names[i], typ)
		}
	}
	if got := tbl.Partition(4).UUID; got != "a1b2c3d4-e5f6-4789-8abc-def012345678" {
		t.Errorf("PARTUUID of system-a = %q", got)
	}
}

// The committed images are what their sfdisk scripts produce, and read as
// sfdisk reads them.
func TestTestdataImages(t *testing.T) {
	needTools(t, "sfdisk", "partx")
	for _, name := range []string{"mbr-rugix", "gpt-rugix"} {
		t.Run(name, func(t *testing.T) {
			want, err := os.ReadFile(filepath.Join("testdata", name+".img"))
			if err != nil {
				t.Fatal(err)
			}
			script, err := os.ReadFile(filepath.Join("testdata", name+".sfdisk"))
			if err != nil {
				t.Fatal(err)
			}
			img := sfdiskImage(t, int64(len(want)), string(script))
			got, err := os.ReadFile(img)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("sfdisk writes a different image from testdata/%s.sfdisk", name)
			}
			tbl, err := ReadDevice(filepath.Join("testdata", name+".img"))
			if err != nil {
				t.Fatal(err)
			}
			checkAgainstSfdisk(t, filepath.Join("testdata", name+".img"), tbl)
		})
	}
}

// readTestdata reads a committed image.
func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// wantMBR and wantGPT are the tables of the committed images, for the tests
// that run without sfdisk.
var wantMBR = &Table{Type: "dos", DiskID: "deadbeef", SectorSize: 512, Partitions: []Partition{
	{Number: 1, Start: 512, Size: 512, Type: "c", UUID: "deadbeef-01", Bootable: true},
	{Number: 2, Start: 1024, Size: 512, Type: "c", UUID: "deadbeef-02"},
	{Number: 3, Start: 1536, Size: 512, Type: "c", UUID: "deadbeef-03"},
	{Number: 4, Start: 2048, Size: 4096, Type: "5", UUID: "deadbeef-04", Extended: true},
	{Number: 5, Start: 2560, Size: 512, Type: "83", UUID: "deadbeef-05"},
	{Number: 6, Start: 3584, Size: 512, Type: "83", UUID: "deadbeef-06"},
	{Number: 7, Start: 4608, Size: 1536, Type: "83", UUID: "deadbeef-07"},
}}

var wantGPT = &Table{Type: "gpt", DiskID: "01234567-89ab-cdef-0123-456789abcdef", SectorSize: 512, Partitions: []Partition{
	{Number: 1, Start: 4 * 512, Size: 512, Type: efiType, UUID: "11111111-2222-3333-4444-555555555501", Name: "config"},
	{Number: 2, Start: 5 * 512, Size: 512, Type: linuxType, UUID: "11111111-2222-3333-4444-555555555502", Name: "boot-a"},
	{Number: 3, Start: 6 * 512, Size: 512, Type: linuxType, UUID: "11111111-2222-3333-4444-555555555503", Name: "boot-b"},
	{Number: 4, Start: 7 * 512, Size: 1024, Type: linuxType, UUID: "11111111-2222-3333-4444-555555555504", Name: "system-a"},
	{Number: 5, Start: 9 * 512, Size: 1024, Type: linuxType, UUID: "11111111-2222-3333-4444-555555555505", Name: "system-b"},
	{Number: 6, Start: 11 * 512, Size: 1024, Type: linuxType, UUID: "11111111-2222-3333-4444-555555555506", Name: "Daten ä€"},
}}

func TestReadTableTestdata(t *testing.T) {
	for name, want := range map[string]*Table{"mbr-rugix.img": wantMBR, "gpt-rugix.img": wantGPT} {
		b := readTestdata(t, name)
		for _, ss := range []int{0, 512} {
			got, err := ReadTable(bytes.NewReader(b), int64(len(b)), ss)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s, sector size %d:\n got %+v\nwant %+v", name, ss, got, want)
			}
		}
		got, err := ReadDevice(filepath.Join("testdata", name))
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("ReadDevice(%s) = %+v, %v", name, got, err)
		}
	}
}

func TestPartitionPath(t *testing.T) {
	for _, c := range []struct {
		disk string
		n    int
		want string
	}{
		{"/dev/sda", 5, "/dev/sda5"},
		{"/dev/vda", 1, "/dev/vda1"},
		{"/dev/mmcblk0", 5, "/dev/mmcblk0p5"},
		{"/dev/nvme0n1", 5, "/dev/nvme0n1p5"},
		{"/dev/loop0", 5, "/dev/loop0p5"},
		{"/dev/loop12", 12, "/dev/loop12p12"},
		{"/dev/md127", 1, "/dev/md127p1"},
		{"disk.img", 2, "disk.img2"},
	} {
		if got := PartitionPath(c.disk, c.n); got != c.want {
			t.Errorf("PartitionPath(%q, %d) = %q, want %q", c.disk, c.n, got, c.want)
		}
	}
}
