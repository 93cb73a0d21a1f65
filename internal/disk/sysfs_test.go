package disk

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// fakeSysfs builds a sysfs tree in a temporary directory and points sysfs
// and devfs at it for the duration of the test. devices maps a sysfs device
// directory (below /sys/devices) to its maj:min; a directory whose parent is
// also listed is a partition of it, with the number in its "partition" file.
func fakeSysfs(t *testing.T, devices map[string]string, partitions map[string]int) string {
	t.Helper()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "dev", "block"), 0o755); err != nil {
		t.Fatal(err)
	}
	for dir, majmin := range devices {
		full := filepath.Join(root, "devices", dir)
		if err := os.MkdirAll(full, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(full, "dev"), []byte(majmin+"\n"), 0o444); err != nil {
			t.Fatal(err)
		}
		if n, ok := partitions[dir]; ok {
			if err := os.WriteFile(filepath.Join(full, "partition"), []byte(fmt.Sprintf("%d\n", n)), 0o444); err != nil {
				t.Fatal(err)
			}
		}
		// Like sysfs, a relative link: /sys/dev/block/8:5 -> ../../devices/...
		if err := os.Symlink(filepath.Join("..", "..", "devices", dir), filepath.Join(root, "dev", "block", majmin)); err != nil {
			t.Fatal(err)
		}
	}
	oldSys, oldDev := sysfs, devfs
	sysfs, devfs = root, "/dev"
	t.Cleanup(func() { sysfs, devfs = oldSys, oldDev })
	return root
}

var fakeDevices = map[string]string{
	"platform/fe340000.mmc/mmc_host/mmc0/mmc0:0001/block/mmcblk0":           "179:0",
	"platform/fe340000.mmc/mmc_host/mmc0/mmc0:0001/block/mmcblk0/mmcblk0p5": "179:5",
	"platform/fe340000.mmc/mmc_host/mmc0/mmc0:0001/block/mmcblk0/mmcblk0p7": "179:7",
	"pci0000:00/0000:00:04.0/nvme/nvme0/nvme0n1":                            "259:0",
	"pci0000:00/0000:00:04.0/nvme/nvme0/nvme0n1/nvme0n1p5":                  "259:5",
	"pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0/block/sda":      "8:0",
	"pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0/block/sda/sda5": "8:5",
	"pci0000:00/0000:00:05.0/virtio2/block/vda":                             "254:0",
	"pci0000:00/0000:00:05.0/virtio2/block/vda/vda5":                        "254:5",
	"virtual/block/loop0":                                               "7:0",
	"virtual/block/loop0/loop0p5":                                       "259:8",
	"pci0000:00/0000:00:06.0/cciss0/c0d0/block/cciss!c0d0":              "104:0",
	"pci0000:00/0000:00:06.0/cciss0/c0d0/block/cciss!c0d0/cciss!c0d0p1": "104:1",
	"virtual/block/dm-0":                                                "253:0",
}

var fakePartitions = map[string]int{
	"platform/fe340000.mmc/mmc_host/mmc0/mmc0:0001/block/mmcblk0/mmcblk0p5": 5,
	"platform/fe340000.mmc/mmc_host/mmc0/mmc0:0001/block/mmcblk0/mmcblk0p7": 7,
	"pci0000:00/0000:00:04.0/nvme/nvme0/nvme0n1/nvme0n1p5":                  5,
	"pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0/block/sda/sda5": 5,
	"pci0000:00/0000:00:05.0/virtio2/block/vda/vda5":                        5,
	"virtual/block/loop0/loop0p5":                                           5,
	"pci0000:00/0000:00:06.0/cciss0/c0d0/block/cciss!c0d0/cciss!c0d0p1":     1,
}

func TestBlockDeviceFromSysfs(t *testing.T) {
	fakeSysfs(t, fakeDevices, fakePartitions)
	for _, c := range []struct {
		maj, min uint32
		want     BlockDevice
	}{
		{179, 5, BlockDevice{"/dev/mmcblk0p5", "/dev/mmcblk0", 5}},
		{179, 7, BlockDevice{"/dev/mmcblk0p7", "/dev/mmcblk0", 7}},
		{259, 5, BlockDevice{"/dev/nvme0n1p5", "/dev/nvme0n1", 5}},
		{8, 5, BlockDevice{"/dev/sda5", "/dev/sda", 5}},
		{254, 5, BlockDevice{"/dev/vda5", "/dev/vda", 5}},
		{259, 8, BlockDevice{"/dev/loop0p5", "/dev/loop0", 5}},
		{104, 1, BlockDevice{"/dev/cciss/c0d0p1", "/dev/cciss/c0d0", 1}},
		{179, 0, BlockDevice{Device: "/dev/mmcblk0"}},
		{254, 0, BlockDevice{Device: "/dev/vda"}},
		{253, 0, BlockDevice{Device: "/dev/dm-0"}},
	} {
		got, err := blockDeviceByNumber(c.maj, c.min)
		if err != nil {
			t.Errorf("%d:%d: %v", c.maj, c.min, err)
			continue
		}
		if *got != c.want {
			t.Errorf("%d:%d = %+v, want %+v", c.maj, c.min, *got, c.want)
		}
		// The partition number PartitionPath derives agrees with sysfs.
		if got.Parent != "" && !strings.HasPrefix(got.Device, "/dev/cciss") && PartitionPath(got.Parent, got.Partition) != got.Device {
			t.Errorf("PartitionPath(%s, %d) = %s, sysfs says %s", got.Parent, got.Partition, PartitionPath(got.Parent, got.Partition), got.Device)
		}
	}
	if _, err := blockDeviceByNumber(0, 25); err == nil || !strings.Contains(err.Error(), "device 0:25 is not a block device") {
		t.Errorf("overlay-style anonymous device: err = %v", err)
	}
}

func TestFindSysfsPartition(t *testing.T) {
	root := fakeSysfs(t, fakeDevices, fakePartitions)
	mmc := filepath.Join(root, "devices", "platform/fe340000.mmc/mmc_host/mmc0/mmc0:0001/block/mmcblk0")
	for n, want := range map[int]string{5: "mmcblk0p5", 7: "mmcblk0p7", 6: "", 1: ""} {
		got, err := findSysfsPartition(mmc, n)
		if err != nil || got != want {
			t.Errorf("partition %d of mmcblk0 = %q, %v; want %q", n, got, err, want)
		}
	}
}

func TestBadPartitionFile(t *testing.T) {
	root := fakeSysfs(t, map[string]string{"virtual/block/x": "1:0", "virtual/block/x/x1": "1:1"}, map[string]int{"virtual/block/x/x1": 1})
	if err := os.WriteFile(filepath.Join(root, "devices/virtual/block/x/x1/partition"), []byte("one\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := blockDeviceByNumber(1, 1); err == nil || !strings.Contains(err.Error(), `invalid partition number "one\n"`) {
		t.Errorf("err = %v", err)
	}
}

// TestFindBlockDeviceFake maps the real device of a temporary directory to a
// fake mmcblk0p5, which also exercises RootDisk without a real root disk.
func TestFindBlockDeviceFake(t *testing.T) {
	dir := t.TempDir()
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		t.Fatal(err)
	}
	majmin := fmt.Sprintf("%d:%d", unix.Major(uint64(st.Dev)), unix.Minor(uint64(st.Dev)))
	fakeSysfs(t, map[string]string{
		"platform/mmc/block/mmcblk0":           "179:0",
		"platform/mmc/block/mmcblk0/mmcblk0p5": majmin,
	}, map[string]int{"platform/mmc/block/mmcblk0/mmcblk0p5": 5})
	want := BlockDevice{"/dev/mmcblk0p5", "/dev/mmcblk0", 5}

	got, err := FindBlockDevice(dir)
	if err != nil || *got != want {
		t.Fatalf("FindBlockDevice(%s) = %+v, %v; want %+v", dir, got, err, want)
	}
	j, _ := json.Marshal(got)
	if string(j) != `{"device":"/dev/mmcblk0p5","parent":"/dev/mmcblk0","partition":5}` {
		t.Errorf("JSON %s", j)
	}
	if _, err := FindBlockDevice(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing path: err = %v", err)
	}

	oldSys, oldRoot := systemMount, rootDir
	t.Cleanup(func() { systemMount, rootDir = oldSys, oldRoot })
	// /run/rugix/mounts/system exists.
	systemMount, rootDir = dir, "/nonexistent"
	if got, err := RootDisk(); err != nil || *got != want {
		t.Errorf("RootDisk with system mount = %+v, %v", got, err)
	}
	// It does not: the root directory decides.
	systemMount, rootDir = filepath.Join(dir, "missing"), dir
	if got, err := RootDisk(); err != nil || *got != want {
		t.Errorf("RootDisk with / = %+v, %v", got, err)
	}
	// The root filesystem is on a whole disk.
	fakeSysfs(t, map[string]string{"virtual/block/vda": majmin}, nil)
	if _, err := RootDisk(); err == nil || !strings.Contains(err.Error(), "is on /dev/vda, which is not a partition") {
		t.Errorf("RootDisk on a whole disk: err = %v", err)
	}
}

// TestFindBlockDeviceReal runs against the machine's own sysfs, read-only.
func TestFindBlockDeviceReal(t *testing.T) {
	if _, err := os.Stat("/sys/dev/block"); err != nil {
		t.Skip("no sysfs")
	}
	bd, err := FindBlockDevice("/")
	if err != nil {
		t.Skipf("root filesystem not on a block device: %v", err)
	}
	if _, err := os.Stat(bd.Device); err != nil {
		t.Errorf("FindBlockDevice(/) = %+v: %v", bd, err)
	}
	if bd.Parent != "" && PartitionPath(bd.Parent, bd.Partition) != bd.Device {
		t.Logf("FindBlockDevice(/) = %+v: partition not named by the usual scheme", bd)
	}
	// The device node itself leads to the same device.
	if again, err := FindBlockDevice(bd.Device); err != nil || !reflect.DeepEqual(again, bd) {
		t.Errorf("FindBlockDevice(%s) = %+v, %v; want %+v", bd.Device, again, err, bd)
	}
	if _, err := FindBlockDevice("/proc"); err == nil {
		t.Error("FindBlockDevice(/proc) found a block device")
	}
}

func TestResolvePartitionImage(t *testing.T) {
	img := filepath.Join("testdata", "mbr-rugix.img")
	got, err := ResolvePartition(img, 5)
	if want := (BlockDevice{img + "5", img, 5}); err != nil || *got != want {
		t.Errorf("ResolvePartition(%s, 5) = %+v, %v; want %+v", img, got, err, want)
	}
	for _, n := range []int{0, 8} {
		if _, err := ResolvePartition(img, n); err == nil || !strings.Contains(err.Error(), img) {
			t.Errorf("ResolvePartition(%s, %d): err = %v", img, n, err)
		}
	}
	if _, err := ResolvePartition("testdata/missing", 1); err == nil {
		t.Error("ResolvePartition of a missing disk succeeded")
	}
}
