package system

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// fakeDisk is /dev/mmcblk0 with partitions 1..n.
type fakeDisk struct {
	table string
	n     int
}

func (d fakeDisk) Table() string { return d.table }
func (d fakeDisk) Path() string  { return "/dev/mmcblk0" }
func (d fakeDisk) PartitionPath(n int) string {
	if n < 1 || n > d.n {
		return ""
	}
	return fmt.Sprintf("/dev/mmcblk0p%d", n)
}

// devs maps /dev/mmcblk0pN to 179:N and /dev/sdaN to 8:N; anything else
// does not exist.
func devOf(path string) (uint64, error) {
	var n uint32
	if _, err := fmt.Sscanf(path, "/dev/mmcblk0p%d", &n); err == nil {
		return unix.Mkdev(179, n), nil
	}
	if _, err := fmt.Sscanf(path, "/dev/sda%d", &n); err == nil {
		return unix.Mkdev(8, n), nil
	}
	return 0, fmt.Errorf("stat %s: no such file or directory", path)
}

func runningFrom(major, minor uint32) func() (uint64, error) {
	return func() (uint64, error) { return unix.Mkdev(major, minor), nil }
}

func TestDefaultsMBR(t *testing.T) {
	s, err := New(DefaultConfig(), fakeDisk{TableDOS, 7}, runningFrom(179, 6), devOf)
	if err != nil {
		t.Fatal(err)
	}
	checkSlots(t, s, "boot-a /dev/mmcblk0p2 2 mutable inactive",
		"boot-b /dev/mmcblk0p3 3 mutable active",
		"system-a /dev/mmcblk0p5 5 immutable inactive",
		"system-b /dev/mmcblk0p6 6 immutable active")
	if g, err := s.Active(); g != "b" || err != nil {
		t.Errorf("Active() = %q, %v", g, err)
	}
	if d, err := s.DataPartitionDevice(); d != "/dev/mmcblk0p7" || err != nil {
		t.Errorf("data partition %q, %v", d, err)
	}
	if d, err := s.ConfigPartitionDevice(); d != "/dev/mmcblk0p1" || err != nil {
		t.Errorf("config partition %q, %v", d, err)
	}
	if s.RootDevice != "/dev/mmcblk0" || s.Layout.Table != TableDOS {
		t.Errorf("root device %q, layout %+v", s.RootDevice, s.Layout)
	}
	if len(s.Groups) != 2 || s.Groups[0].Name != "a" || s.Groups[1].Name != "b" ||
		s.Groups[0].Slots["boot"] != "boot-a" || s.Groups[1].Slots["system"] != "system-b" {
		t.Errorf("groups %+v", s.Groups)
	}
}

func TestDefaultsGPT(t *testing.T) {
	s, err := New(nil, fakeDisk{TableGPT, 6}, runningFrom(179, 4), devOf)
	if err != nil {
		t.Fatal(err)
	}
	checkSlots(t, s, "boot-a /dev/mmcblk0p2 2 mutable active",
		"boot-b /dev/mmcblk0p3 3 mutable inactive",
		"system-a /dev/mmcblk0p4 4 immutable active",
		"system-b /dev/mmcblk0p5 5 immutable inactive")
	if g, _ := s.Active(); g != "a" {
		t.Errorf("active %q", g)
	}
	if d, _ := s.DataPartitionDevice(); d != "/dev/mmcblk0p6" {
		t.Errorf("data partition %q", d)
	}
}

func checkSlots(t *testing.T, s *System, want ...string) {
	t.Helper()
	var got []string
	for _, sl := range s.Slots {
		m, a := "mutable", "inactive"
		if sl.Immutable {
			m = "immutable"
		}
		if sl.Active {
			a = "active"
		}
		got = append(got, fmt.Sprintf("%s %s %d %s %s", sl.Name, sl.Device, sl.Partition, m, a))
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("slots:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestDefaultsNeedDisk(t *testing.T) {
	if _, err := New(nil, nil, runningFrom(179, 5), devOf); err == nil {
		t.Error("default slots without a disk")
	}
	if _, err := New(nil, fakeDisk{"sun", 7}, runningFrom(179, 5), devOf); err == nil || !strings.Contains(err.Error(), `"sun"`) {
		t.Errorf("unknown table: %v", err)
	}
	// Bakery images ship without system-b until bootstrapping creates it.
	_, err := New(nil, fakeDisk{TableDOS, 5}, runningFrom(179, 5), devOf)
	if err == nil || !strings.Contains(err.Error(), `slot "system-b": partition 6: not found`) {
		t.Errorf("missing partition: %v", err)
	}
}

func TestActive(t *testing.T) {
	cfg, _ := parse(t, `
[slots.boot-a]
type = "block"
device = "/dev/sda2"
[slots.boot-b]
type = "block"
device = "/dev/sda3"
[slots.system-a]
type = "block"
device = "/dev/sda5"
[slots.system-b]
type = "block"
device = "/dev/sda6"
[slots.spare]
type = "block"
device = "/dev/sdz9"
optional = true
[slots.conf]
type = "file"
path = "/data/conf"
[boot-groups.a]
slots = { boot = "boot-a", system = "system-a", conf = "conf" }
[boot-groups.b]
slots = { boot = "boot-b", system = "system-b", extra = "spare" }
`)
	for _, tc := range []struct {
		name   string
		sysdev func() (uint64, error)
		want   string
		err    string
	}{
		{"system a", runningFrom(8, 5), "a", ""},
		{"system b", runningFrom(8, 6), "b", ""},
		{"boot partition", runningFrom(8, 2), "a", ""}, // any block slot of the group counts
		{"elsewhere", runningFrom(259, 1), "", "no boot group has a block slot on the system device 259:1"},
		{"stat fails", func() (uint64, error) { return 0, errors.New("stat /: broken") }, "", "stat /: broken"},
	} {
		s, err := New(cfg, nil, tc.sysdev, devOf)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		g, err := s.Active()
		if g != tc.want || (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: Active() = %q, %v; want %q, %q", tc.name, g, err, tc.want, tc.err)
		}
		conf, _ := s.Slot("conf")
		if conf.Active != (tc.want == "a") {
			t.Errorf("%s: file slot of the active group active=%v", tc.name, conf.Active)
		}
		spare, _ := s.Slot("spare")
		if !spare.Missing {
			t.Errorf("%s: absent optional slot not marked missing", tc.name)
		}
		if _, err := s.SlotDevice(spare); err == nil {
			t.Errorf("%s: device of a missing slot", tc.name)
		}
	}
	// A slot that is not optional must exist.
	cfg.Slots[4].Optional = false
	if _, err := New(cfg, nil, runningFrom(8, 5), devOf); err == nil || !strings.Contains(err.Error(), `slot "spare"`) {
		t.Errorf("missing device: %v", err)
	}
}

func TestGroupsAndSlots(t *testing.T) {
	cfg, _ := parse(t, `
[slots.boot-a]
type = "block"
partition = 2
[slots.boot-b]
type = "block"
partition = 3
[slots.system-a]
type = "block"
partition = 5
[slots.system-b]
type = "block"
partition = 6
[slots.app]
type = "custom"
handler = ["/bin/app"]
[slots.conf]
type = "file"
path = "/data/conf"
`)
	s, err := New(cfg, fakeDisk{TableDOS, 7}, runningFrom(179, 5), devOf)
	if err != nil {
		t.Fatal(err)
	}
	if sl, err := s.SlotByAlias("b", "system"); err != nil || sl.Name != "system-b" {
		t.Errorf("alias system in b: %v %v", sl, err)
	}
	if sl, err := s.SlotByAlias("b", "app"); err != nil || sl.Name != "app" {
		t.Errorf("global name app: %v %v", sl, err)
	}
	if sl, err := s.SlotByAlias("", "system-a"); err != nil || sl.Name != "system-a" {
		t.Errorf("no group: %v %v", sl, err)
	}
	if _, err := s.SlotByAlias("", "system"); err == nil {
		t.Error("alias resolved without a group")
	}
	if _, err := s.SlotByAlias("c", "system"); err == nil {
		t.Error("unknown group")
	}
	if _, err := s.SlotByAlias("a", "nothing"); err == nil || !strings.Contains(err.Error(), `"nothing"`) {
		t.Errorf("unknown alias: %v", err)
	}

	if g := s.Spare("a"); g != "b" {
		t.Errorf("Spare(a) = %q", g)
	}
	if g := s.Spare("b"); g != "a" {
		t.Errorf("Spare(b) = %q", g)
	}
	if g, err := s.InactiveGroup("a"); g != "b" || err != nil {
		t.Errorf("InactiveGroup(a) = %q, %v", g, err)
	}
	if _, err := s.InactiveGroup(""); err == nil {
		t.Error("InactiveGroup without an active group")
	}
	if s.NeedsCommit("a") || !s.NeedsCommit("b") {
		t.Error("NeedsCommit")
	}

	for name, want := range map[string]string{"system-b": "/dev/mmcblk0p6", "conf": "/data/conf", "app": ""} {
		sl, _ := s.Slot(name)
		d, err := s.SlotDevice(sl)
		if d != want || (err != nil) != (want == "") {
			t.Errorf("SlotDevice(%s) = %q, %v", name, d, err)
		}
	}
}

func TestThreeGroups(t *testing.T) {
	cfg, _ := parse(t, `
[slots.r0]
type = "block"
partition = 2
[slots.r1]
type = "block"
partition = 3
[slots.r2]
type = "block"
partition = 4
[boot-groups.A]
slots = { rootfs = "r0" }
[boot-groups.B]
slots = { rootfs = "r1" }
[boot-groups.C]
slots = { rootfs = "r2" }
[data-partition]
disabled = true
`)
	s, err := New(cfg, fakeDisk{TableGPT, 6}, runningFrom(179, 3), devOf)
	if err != nil {
		t.Fatal(err)
	}
	if g, _ := s.Active(); g != "B" {
		t.Errorf("active %q", g)
	}
	if _, err := s.InactiveGroup("B"); err == nil {
		t.Error("target picked among three groups")
	}
	if g := s.Spare("A"); g != "B" {
		t.Errorf("Spare(A) = %q", g)
	}
	if d, err := s.DataPartitionDevice(); d != "" || err != nil {
		t.Errorf("disabled data partition: %q, %v", d, err)
	}
}

func TestNewChecksGroups(t *testing.T) {
	cfg := &Config{
		Slots:      []SlotConfig{{Name: "x", Type: SlotFile, Path: "/x"}},
		BootGroups: []GroupConfig{{Name: "a", Slots: map[string]string{"system": "y"}}},
	}
	if _, err := New(cfg, nil, nil, nil); err == nil || !strings.Contains(err.Error(), `unknown slot "y"`) {
		t.Errorf("error %v", err)
	}
	cfg.Slots = append(cfg.Slots, cfg.Slots[0])
	if _, err := New(cfg, nil, nil, nil); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("error %v", err)
	}
}

func TestNoDevices(t *testing.T) {
	cfg := &Config{
		Slots:      []SlotConfig{{Name: "x", Type: SlotFile, Path: "/x"}},
		BootGroups: []GroupConfig{{Name: "a", Slots: map[string]string{"system": "x"}}},
	}
	s, err := New(cfg, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Active(); err == nil {
		t.Error("active group without device numbers")
	}
	if _, err := s.DataPartitionDevice(); err == nil {
		t.Error("data partition without a disk")
	}
}

func TestDefaultLayout(t *testing.T) {
	mbr, _ := DefaultLayout(TableDOS)
	gpt, _ := DefaultLayout(TableGPT)
	if mbr != (Layout{TableDOS, 1, 2, 3, 5, 6, 7}) || gpt != (Layout{TableGPT, 1, 2, 3, 4, 5, 6}) {
		t.Errorf("layouts %+v %+v", mbr, gpt)
	}
}
