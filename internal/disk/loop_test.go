package disk

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestBlkpgLayout checks the ioctl structs against linux/blkpg.h: long long
// members are 8-byte aligned on every supported architecture, 32-bit ARM
// EABI included, so blkpg_partition is 152 bytes there as on 64-bit.
func TestBlkpgLayout(t *testing.T) {
	var p unix.BlkpgPartition
	var a unix.BlkpgIoctlArg
	got := []uintptr{unsafe.Sizeof(p), unsafe.Offsetof(p.Length), unsafe.Offsetof(p.Pno),
		unsafe.Offsetof(p.Devname), unsafe.Offsetof(p.Volname), unsafe.Sizeof(a), unsafe.Offsetof(a.Data)}
	// int op, flags, datalen; void *data: the pointer is naturally aligned.
	want := []uintptr{152, 8, 16, 20, 84, 24, 16}
	if unsafe.Sizeof(uintptr(0)) == 4 {
		want[5], want[6] = 16, 12
	}
	if runtime.GOARCH == "386" {
		want[0] = 148 // i386 aligns long long to 4 bytes
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("layout on %s: %v, want %v", runtime.GOARCH, got, want)
	}
	if unix.BLKPG != 0x1269 {
		t.Errorf("BLKPG = %#x", unix.BLKPG)
	}
}

// underQEMU reports whether the test runs under user-mode QEMU, whose
// process name is that of the emulator.
func underQEMU() bool {
	b, err := os.ReadFile("/proc/self/comm")
	return err == nil && strings.HasPrefix(string(b), "qemu-")
}

// needLoop skips the test unless it can use loop devices.
func needLoop(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for loop devices")
	}
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		t.Skip("no loop devices")
	}
	needTools(t, "losetup", "sfdisk", "partx")
}

// attachLoop attaches img to a free loop device and detaches it, with any
// partitions the test added, when the test ends.
func attachLoop(t *testing.T, img string, args ...string) string {
	t.Helper()
	args = append(append([]string{"--find", "--show"}, args...), img)
	dev := strings.TrimSpace(run(t, "", "losetup", args...))
	if !strings.HasPrefix(dev, "/dev/loop") {
		t.Fatalf("losetup attached %s to %q", img, dev)
	}
	t.Cleanup(func() {
		exec.Command("partx", "--delete", dev).Run() // fails if there are none
		if out, err := exec.Command("losetup", "--detach", dev).CombinedOutput(); err != nil {
			t.Errorf("losetup --detach %s: %v\n%s", dev, err, out)
		}
	})
	return dev
}

// kernelPartition returns start and size, in 512-byte units, of the
// partition the kernel knows as name, and whether it exists.
func kernelPartition(t *testing.T, name string) (start, size uint64, ok bool) {
	t.Helper()
	dir := filepath.Join("/sys/class/block", name)
	if _, err := os.Stat(dir); err != nil {
		return 0, 0, false
	}
	read := func(f string) uint64 {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	return read("start"), read("size"), true
}

// checkKernelPartitions checks that the kernel knows exactly the partitions
// of tbl on dev, the extended container as the 1 KiB stub partx adds.
func checkKernelPartitions(t *testing.T, dev string, tbl *Table) {
	t.Helper()
	for _, p := range tbl.Partitions {
		name := filepath.Base(PartitionPath(dev, p.Number))
		start, size, ok := kernelPartition(t, name)
		wantSize := p.Size / 512
		if p.Extended {
			wantSize = 1024 / 512
			if tbl.SectorSize > 1024 {
				wantSize = uint64(tbl.SectorSize) / 512
			}
		}
		if !ok || start != p.Start/512 || size != wantSize {
			t.Errorf("kernel partition %s: start %d size %d (exists %v), want %d %d", name, start, size, ok, p.Start/512, wantSize)
		}
	}
	if _, _, ok := kernelPartition(t, filepath.Base(PartitionPath(dev, len(tbl.Partitions)+1))); ok {
		t.Errorf("kernel has an extra partition %d", len(tbl.Partitions)+1)
	}
}

// The Rugix MBR layout for a 256 MiB image.
const rugixMBRSmall = `label: dos
label-id: 0x5eed0b0b
size=32M, type=c, bootable
size=16M, type=c
size=16M, type=c
type=5
size=48M, type=83
size=48M, type=83
type=83
`

func TestLoopMBR(t *testing.T) {
	needLoop(t)
	img := sfdiskImage(t, 256<<20, rugixMBRSmall)
	want, err := ReadDevice(img)
	if err != nil {
		t.Fatal(err)
	}
	dev := attachLoop(t, img, "--partscan")
	if _, _, ok := kernelPartition(t, filepath.Base(dev)+"p1"); ok {
		t.Logf("the kernel parsed the partition table of %s itself", dev)
	}
	tbl, err := ReadDevice(dev)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(tbl, want) {
		t.Errorf("table of %s: %+v\nof the image: %+v", dev, tbl, want)
	}
	checkAgainstSfdisk(t, dev, tbl)
	p5 := PartitionPath(dev, 5)
	wantP5 := BlockDevice{Device: p5, Parent: dev, Partition: 5}

	t.Run("partx", func(t *testing.T) {
		exec.Command("partx", "--delete", dev).Run()
		run(t, "", "partx", "--add", dev)
		checkKernelPartitions(t, dev, tbl)
		if got, err := FindBlockDevice(p5); err != nil || *got != wantP5 {
			t.Errorf("FindBlockDevice(%s) = %+v, %v; want %+v", p5, got, err, wantP5)
		}
		if got, err := ResolvePartition(dev, 5); err != nil || *got != wantP5 {
			t.Errorf("ResolvePartition(%s, 5) = %+v, %v", dev, got, err)
		}
		if _, err := ResolvePartition(dev, 8); err == nil || !strings.Contains(err.Error(), "no such partition") {
			t.Errorf("ResolvePartition(%s, 8): err = %v", dev, err)
		}
		if _, err := ResolvePartition(p5, 1); err == nil || !strings.Contains(err.Error(), "itself a partition") {
			t.Errorf("ResolvePartition(%s, 1): err = %v", p5, err)
		}
		run(t, "", "partx", "--delete", dev)
		if _, _, ok := kernelPartition(t, filepath.Base(p5)); ok {
			t.Fatalf("%s still there after partx --delete", p5)
		}
		// Unknown to the kernel, the partition is still found in the table.
		if got, err := ResolvePartition(dev, 5); err != nil || *got != wantP5 {
			t.Errorf("ResolvePartition(%s, 5) from the table = %+v, %v", dev, got, err)
		}
	})

	t.Run("blkpg", func(t *testing.T) {
		f, err := os.OpenFile(dev, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for _, p := range tbl.Partitions {
			if err := DelPartition(f, p.Number); err != nil && !errors.Is(err, unix.ENXIO) {
				t.Fatal(err)
			}
		}
		for _, p := range tbl.Partitions {
			size := p.Size
			if p.Extended {
				size = 1024
			}
			if err := AddPartition(f, p.Number, p.Start, size); err != nil {
				t.Fatal(err)
			}
		}
		checkKernelPartitions(t, dev, tbl)
		p5, p7 := tbl.Partition(5), tbl.Partition(7)
		if err := AddPartition(f, 9, p5.Start+1<<20, 1<<20); !errors.Is(err, unix.EBUSY) {
			t.Errorf("overlapping AddPartition: err = %v, want EBUSY", err)
		} else if !strings.Contains(err.Error(), "add partition 9") || !strings.Contains(err.Error(), dev) {
			t.Errorf("error %q does not say what failed", err)
		}
		switch err := ResizePartition(f, 7, p7.Start, p7.Size-1<<20); {
		case errors.Is(err, unix.EINVAL) && underQEMU():
			t.Log("qemu-user does not translate BLKPG_RESIZE_PARTITION:", err)
		case err != nil:
			t.Fatal(err)
		default:
			if _, size, _ := kernelPartition(t, filepath.Base(PartitionPath(dev, 7))); size != (p7.Size-1<<20)/512 {
				t.Errorf("size after ResizePartition %d", size)
			}
			if err := ResizePartition(f, 7, p7.Start, p7.Size); err != nil {
				t.Fatal(err)
			}
		}
		if err := DelPartition(f, 6); err != nil {
			t.Fatal(err)
		}
		if _, _, ok := kernelPartition(t, filepath.Base(PartitionPath(dev, 6))); ok {
			t.Error("partition 6 still there after DelPartition")
		}
		if err := DelPartition(f, 6); !errors.Is(err, unix.ENXIO) {
			t.Errorf("second DelPartition: err = %v, want ENXIO", err)
		}
		p6 := tbl.Partition(6)
		if err := AddPartition(f, 6, p6.Start, p6.Size); err != nil {
			t.Fatal(err)
		}
		if err := AddPartition(f, 0, 0, 512); err == nil {
			t.Error("AddPartition of partition 0 succeeded")
		}
		checkKernelPartitions(t, dev, tbl)
	})

	t.Run("mount", func(t *testing.T) {
		needTools(t, "mkfs.ext4")
		if _, _, ok := kernelPartition(t, filepath.Base(p5)); !ok {
			t.Skip("partitions not added")
		}
		run(t, "", "mkfs.ext4", "-q", "-F", p5)
		// This goroutine's thread gets a private mount namespace and is
		// never unlocked, so the thread ends with the subtest and the
		// mount with it.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
			t.Skipf("unshare mount namespace: %v", err)
		}
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			t.Fatal(err)
		}
		old := mountinfo
		mountinfo = "/proc/thread-self/mountinfo"
		t.Cleanup(func() { mountinfo = old })

		mnt := t.TempDir()
		if err := unix.Mount(p5, mnt, "ext4", 0, ""); err != nil {
			t.Fatalf("mount %s: %v", p5, err)
		}
		t.Cleanup(func() {
			if err := unix.Unmount(mnt, unix.MNT_DETACH); err != nil {
				t.Error(err)
			}
		})
		sub, bind := filepath.Join(mnt, "sub"), filepath.Join(mnt, "bind")
		for _, d := range []string{sub, bind} {
			if err := os.Mkdir(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := unix.Mount(sub, bind, "", unix.MS_BIND, ""); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Unmount(bind, unix.MNT_DETACH) })

		for _, path := range []string{mnt, sub, p5, filepath.Join(mnt, "lost+found")} {
			if got, err := FindBlockDevice(path); err != nil || *got != wantP5 {
				t.Errorf("FindBlockDevice(%s) = %+v, %v; want %+v", path, got, err, wantP5)
			}
		}
		for path, want := range map[string]bool{mnt: true, sub: false, bind: true, filepath.Dir(mnt): false} {
			if got, err := IsMountPoint(path); err != nil || got != want {
				t.Errorf("IsMountPoint(%s) = %v, %v; want %v", path, got, err, want)
			}
		}
		oldSys := systemMount
		systemMount = mnt
		t.Cleanup(func() { systemMount = oldSys })
		if got, err := RootDisk(); err != nil || *got != wantP5 {
			t.Errorf("RootDisk with the system mounted from %s = %+v, %v", p5, got, err)
		}
		if got, err := ResolvePartition(dev, 5); err != nil || *got != wantP5 {
			t.Errorf("ResolvePartition(%s, 5) = %+v, %v", dev, got, err)
		}
	})
}

// The Rugix GPT layout for a 64 MiB disk.
const rugixGPTSmall = `label: gpt
size=8M, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="config"
size=8M, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name="boot-a"
size=8M, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name="boot-b"
size=12M, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name="system-a"
size=12M, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name="system-b"
type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name="data"
`

// TestLoopGPT4K has sfdisk write a GPT through a loop device with 4096-byte
// logical sectors (sfdisk cannot do that to an image file), then reads it
// from the device and, detecting the sector size, from the image.
func TestLoopGPT4K(t *testing.T) {
	needLoop(t)
	img := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 64<<20); err != nil {
		t.Fatal(err)
	}
	dev := attachLoop(t, img, "--sector-size", "4096")
	run(t, rugixGPTSmall, "sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", dev)
	tbl, err := ReadDevice(dev)
	if err != nil {
		t.Fatal(err)
	}
	if tbl.SectorSize != 4096 || tbl.Type != "gpt" || len(tbl.Partitions) != 6 || len(tbl.Warnings) != 0 {
		t.Fatalf("table of %s: %+v", dev, tbl)
	}
	checkAgainstSfdisk(t, dev, tbl)
	fromImage, err := ReadDevice(img)
	if err != nil || !reflect.DeepEqual(fromImage, tbl) {
		t.Errorf("table of the image: %+v, %v\nof the device: %+v", fromImage, err, tbl)
	}
	if f, err := os.Open(img); err == nil {
		_, err := ReadTable(f, 64<<20, 512)
		f.Close()
		if err == nil || !strings.Contains(err.Error(), "no valid GPT") {
			t.Errorf("read with 512-byte sectors: err = %v", err)
		}
	}

	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p4 := tbl.Partition(4)
	if err := AddPartition(f, 4, p4.Start, p4.Size); err != nil {
		t.Fatal(err)
	}
	if start, size, ok := kernelPartition(t, filepath.Base(PartitionPath(dev, 4))); !ok || start != p4.Start/512 || size != p4.Size/512 {
		t.Errorf("kernel partition 4: %d %d %v", start, size, ok)
	}
	if got, err := ResolvePartition(dev, 4); err != nil || *got != (BlockDevice{PartitionPath(dev, 4), dev, 4}) {
		t.Errorf("ResolvePartition(%s, 4) = %+v, %v", dev, got, err)
	}
	if err := DelPartition(f, 4); err != nil {
		t.Fatal(err)
	}
}
