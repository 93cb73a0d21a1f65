package bootstrap

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/bascule-ota/bascule/internal/disk"
)

// The loop tests bootstrap a Buildroot-like sdcard.img copied onto a larger
// sparse file attached as a loop device, as flashing an image onto a bigger
// card does. They run as root in a private mount namespace: each test
// re-executes the test binary under `unshare --mount --propagation
// private`, so the config partition mounted there never shows on the host.
// The kernel of the test machine may not parse partition tables, so the
// image's partitions are added with partx, as a booting kernel would have
// them. The config partition is ext4 because that kernel has no vfat.

const childEnv = "BASCULE_BOOTSTRAP_CHILD"

// inPrivateNS reports whether the test runs in its private mount
// namespace; if not, it runs the test there and the caller returns.
func inPrivateNS(t *testing.T) bool {
	t.Helper()
	if os.Getenv(childEnv) == t.Name() {
		return true
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root for loop devices and mounts")
	}
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		t.Skip("no loop devices")
	}
	for _, tool := range []string{"unshare", "losetup", "sfdisk", "partx", "mkfs.ext4", "e2fsck", "blkid", "debugfs"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s", tool)
		}
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"--mount", "--propagation", "private"}
	if w := os.Getenv("BASCULE_TEST_EXEC_WRAPPER"); w != "" {
		args = append(args, w)
	}
	args = append(args, exe, "-test.run=^"+t.Name()+"$", "-test.v")
	if testing.Short() {
		args = append(args, "-test.short")
	}
	cmd := exec.Command("unshare", args...)
	cmd.Env = append(os.Environ(), childEnv+"="+t.Name())
	out, err := cmd.CombinedOutput()
	t.Logf("in a private mount namespace:\n%s", out)
	if err != nil {
		t.Fatalf("%s in a private mount namespace: %v", t.Name(), err)
	}
	return false
}

func sh(t *testing.T, script string) string {
	t.Helper()
	out, err := exec.Command("sh", "-euc", script).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", script, err, out)
	}
	return strings.TrimSpace(string(out))
}

// underQEMU reports whether the test runs under user-mode QEMU.
func underQEMU() bool {
	b, err := os.ReadFile("/proc/self/comm")
	return err == nil && strings.HasPrefix(string(b), "qemu-")
}

// sdcard is a test image: its path, and what to find on its system-a.
type sdcard struct {
	img     string
	kind    string // "mbr" or "gpt"
	payload []byte // /payload on system-a
}

// makeSdcard builds sdcard.img like genimage would: config (ext4, 32M,
// with the bootstrap marker), boot-a and boot-b (16M), for MBR an extended
// partition, and system-a (64M ext4 with a payload file), nothing after.
func makeSdcard(t *testing.T, kind string) *sdcard {
	t.Helper()
	dir := t.TempDir()
	cfg, sys := filepath.Join(dir, "config"), filepath.Join(dir, "system")
	for _, d := range []string{filepath.Join(cfg, ".rugix"), filepath.Join(sys, "etc")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	payload := bytes.Repeat([]byte("bascule system-a payload\n"), 40000)
	for path, data := range map[string][]byte{
		filepath.Join(cfg, ".rugix", "bootstrap"): nil,
		filepath.Join(cfg, "autoboot.txt"):        []byte("[all]\ntryboot_a_b=1\nboot_partition=2\n"),
		filepath.Join(sys, "etc", "os-release"):   []byte("NAME=test\n"),
		filepath.Join(sys, "payload"):             payload,
	} {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	img := filepath.Join(dir, "sdcard.img")
	script := `label: dos
label-id: 0x5eed0b0b
size=32MiB, type=c, bootable
size=16MiB, type=c
size=16MiB, type=c
type=5
size=64MiB, type=83
`
	if kind == "gpt" {
		script = `label: gpt
label-id: 6A5E0B0B-1D2C-4B3A-9F8E-7D6C5B4A3921
size=32MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B
size=16MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4
size=16MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4
size=64MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4
`
	}
	sh(t, fmt.Sprintf(`cd %s
truncate -s 130M sdcard.img
sfdisk -q --no-reread --no-tell-kernel sdcard.img <<'EOF'
%sEOF
mkfs.ext4 -q -F -L config -d config config.ext4 32M
mkfs.ext4 -q -F -L system -d system system.ext4 64M`, dir, script))
	tbl, err := disk.ReadDevice(img)
	if err != nil {
		t.Fatal(err)
	}
	sysPart := 5
	if kind == "gpt" {
		sysPart = 4
	}
	for n, f := range map[int]string{1: "config.ext4", sysPart: "system.ext4"} {
		sh(t, fmt.Sprintf("dd if=%s of=%s bs=1M seek=%d conv=notrunc,sparse status=none", filepath.Join(dir, f), img, tbl.Partition(n).Start>>20))
	}
	return &sdcard{img: img, kind: kind, payload: payload}
}

// device is the sdcard flashed onto a loop device of a larger size, with
// the kernel knowing the image's partitions and the config partition
// mounted read-only, as init finds it on first boot.
type device struct {
	*sdcard
	file    string // the backing file
	loop    string
	config  string // mount point of the config partition
	remount []bool
	stages  []string
}

func flash(t *testing.T, sd *sdcard, size int64) *device {
	t.Helper()
	d := &device{sdcard: sd, file: filepath.Join(t.TempDir(), "disk.img"), config: filepath.Join(t.TempDir(), "config")}
	sh(t, fmt.Sprintf("truncate -s %d %s && dd if=%s of=%s conv=notrunc,sparse status=none", size, d.file, sd.img, d.file))
	d.loop = sh(t, "losetup --find --show "+d.file)
	t.Cleanup(func() {
		unix.Unmount(d.config, unix.MNT_DETACH)
		exec.Command("partx", "--delete", d.loop).Run()
		if out, err := exec.Command("losetup", "--detach", d.loop).CombinedOutput(); err != nil {
			t.Errorf("losetup --detach %s: %v\n%s", d.loop, err, out)
		}
	})
	d.boot(t)
	return d
}

// boot does what a (re)boot does for the tests: the kernel forgets its
// partitions and learns those of the table on the disk, and the config
// partition is mounted read-only.
func (d *device) boot(t *testing.T) {
	t.Helper()
	unix.Unmount(d.config, unix.MNT_DETACH)
	exec.Command("partx", "--delete", d.loop).Run()
	sh(t, "partx --add "+d.loop)
	if err := os.MkdirAll(d.config, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(d.part(1), d.config, "ext4", unix.MS_RDONLY, ""); err != nil {
		t.Fatalf("mount config partition: %v", err)
	}
}

func (d *device) part(n int) string { return disk.PartitionPath(d.loop, n) }

func (d *device) options(t *testing.T, toml string) Options {
	cfgFile := filepath.Join(t.TempDir(), "bootstrapping.toml")
	if err := os.WriteFile(cfgFile, []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	d.remount, d.stages = nil, nil
	return Options{
		Disk:       d.loop,
		ConfigFile: cfgFile,
		Hooks: func(stage string) error {
			d.stages = append(d.stages, stage)
			return nil
		},
		Remount: func(rw bool) error {
			d.remount = append(d.remount, rw)
			flags := uintptr(unix.MS_REMOUNT)
			if !rw {
				flags |= unix.MS_RDONLY
			}
			return unix.Mount("", d.config, "", flags, "")
		},
		Stdout: io.Discard,
		Stderr: io.Discard,
		Log:    func(msg string) { t.Log(msg) },
	}
}

// hash hashes the disk with sha256sum: a gigabyte is slow to hash in Go
// under user-mode QEMU.
func (d *device) hash(t *testing.T) string {
	t.Helper()
	return sh(t, "sha256sum < "+d.file)
}

func (d *device) marker() bool {
	_, err := os.Stat(filepath.Join(d.config, ".rugix", "bootstrap"))
	return err == nil
}

type sfdiskJSON struct {
	PartitionTable struct {
		Label      string `json:"label"`
		ID         string `json:"id"`
		LastLBA    uint64 `json:"lastlba"`
		Partitions []struct {
			Node  string `json:"node"`
			Start uint64 `json:"start"`
			Size  uint64 `json:"size"`
			Type  string `json:"type"`
			UUID  string `json:"uuid"`
		} `json:"partitions"`
	} `json:"partitiontable"`
}

// expected is a partition as sfdisk should list it after bootstrapping, in
// sectors.
type expected struct {
	start, size uint64
	typ         string
}

// expectedLayout is the default layout with 64 MiB system partitions on a
// disk of sectors, grown from the sdcard.
func expectedLayout(kind string, sectors uint64, systemSize uint64) []expected {
	if kind == "gpt" {
		p5 := 133120 + systemSize
		p6 := alignUp(p5+systemSize, 2048)
		return []expected{
			{2048, 65536, gptEFI}, {67584, 32768, gptLinux}, {100352, 32768, gptLinux},
			{133120, systemSize, gptLinux}, {p5, systemSize, gptLinux}, {p6, sectors - 34 - p6 + 1, gptLinux},
		}
	}
	p6 := alignUp(135168+systemSize+63, 2048)
	p7 := alignUp(p6+systemSize+63, 2048)
	return []expected{
		{2048, 65536, "c"}, {67584, 32768, "c"}, {100352, 32768, "c"}, {133120, sectors - 133120, "5"},
		{135168, systemSize, "83"}, {p6, systemSize, "83"}, {p7, sectors - p7, "83"},
	}
}

// check checks the bootstrapped device: the table, the kernel's view, the
// untouched system-a, the new data filesystem and the removed marker.
func (d *device) check(t *testing.T, systemSize uint64) {
	t.Helper()
	var js sfdiskJSON
	if err := json.Unmarshal([]byte(sh(t, "sfdisk --json "+d.loop)), &js); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(d.file)
	sectors := uint64(fi.Size()) / 512
	pt := js.PartitionTable
	want := expectedLayout(d.kind, sectors, systemSize/512)
	var got []expected
	for _, p := range pt.Partitions {
		got = append(got, expected{p.Start, p.Size, p.Type})
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("partitions (start, size, type):\n%v\nwant\n%v", got, want)
	}
	dump := sh(t, "sfdisk --dump "+d.loop)
	if d.kind == "mbr" {
		if pt.Label != "dos" || pt.ID != "0x5eed0b0b" || !strings.Contains(dump, "label-id: 0x5eed0b0b") {
			t.Errorf("label %s id %s:\n%s", pt.Label, pt.ID, dump)
		}
	} else {
		if pt.Label != "gpt" || pt.ID != "6A5E0B0B-1D2C-4B3A-9F8E-7D6C5B4A3921" || pt.LastLBA != sectors-34 {
			t.Errorf("label %s id %s last-lba %d:\n%s", pt.Label, pt.ID, pt.LastLBA, dump)
		}
		orig, err := disk.ReadDevice(d.img)
		if err != nil {
			t.Fatal(err)
		}
		for i, p := range orig.Partitions {
			if !strings.EqualFold(pt.Partitions[i].UUID, p.UUID) {
				t.Errorf("partition %d UUID %s, was %s", i+1, pt.Partitions[i].UUID, p.UUID)
			}
		}
		if u5, u6 := pt.Partitions[4].UUID, pt.Partitions[5].UUID; u5 == "" || u6 == "" || u5 == u6 {
			t.Errorf("new partition UUIDs %q %q", u5, u6)
		}
	}
	if out, err := exec.Command("sfdisk", "--verify", d.loop).CombinedOutput(); err != nil || strings.Contains(string(out), "backup") {
		t.Errorf("sfdisk --verify: %v\n%s", err, out)
	}
	tbl, err := disk.ReadDevice(d.loop)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := disk.KernelPartitions(d.loop)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range tbl.Partitions {
		size := p.Size
		if p.Extended {
			size = 1024
		}
		if k := kp[p.Number]; k.Start != p.Start || k.Size != size {
			t.Errorf("kernel partition %d: %+v, table %+v", p.Number, k, p)
		}
	}
	if len(kp) != len(tbl.Partitions) {
		t.Errorf("the kernel has %d partitions, the table %d", len(kp), len(tbl.Partitions))
	}
	sysA, data := d.part(5), d.part(7)
	if d.kind == "gpt" {
		sysA, data = d.part(4), d.part(6)
	}
	sh(t, "e2fsck -fn "+sysA)
	out, err := exec.Command("debugfs", "-R", "cat /payload", sysA).Output()
	if err != nil || !bytes.Equal(out, d.payload) {
		t.Errorf("payload on system-a (%d bytes, %v) is not intact", len(out), err)
	}
	sh(t, "e2fsck -fn "+data)
	if typ, label := sh(t, "blkid -p -o value -s TYPE "+data), sh(t, "blkid -p -o value -s LABEL "+data); typ != "ext4" || label != "data" {
		t.Errorf("data partition: TYPE=%q LABEL=%q", typ, label)
	}
	if d.marker() {
		t.Error("the marker is still there")
	}
	var st unix.Statfs_t
	if err := unix.Statfs(d.config, &st); err != nil || st.Flags&unix.ST_RDONLY == 0 {
		t.Errorf("config partition not read-only again (%v)", err)
	}
}

const smallSystem = "[layout]\ntype = \"default\"\nsystem-size = \"64MiB\"\n"

func TestBootstrapMBR(t *testing.T) {
	if inPrivateNS(t) {
		testBootstrap(t, "mbr")
	}
}

func TestBootstrapGPT(t *testing.T) {
	if inPrivateNS(t) {
		testBootstrap(t, "gpt")
	}
}

func testBootstrap(t *testing.T, kind string) {
	sd := makeSdcard(t, kind)
	d := flash(t, sd, 1<<30)
	if !d.marker() {
		t.Fatal("no marker on the config partition")
	}
	if err := Run(d.config, d.options(t, smallSystem)); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(d.stages, []string{"prepare", "pre-layout", "post-layout"}) || !reflect.DeepEqual(d.remount, []bool{true, false}) {
		t.Errorf("hooks %v, remounts %v", d.stages, d.remount)
	}
	d.check(t, 64<<20)
	dataPart := d.part(7)
	if kind == "gpt" {
		dataPart = d.part(6)
	}
	dataUUID := sh(t, "blkid -p -o value -s UUID "+dataPart)

	// Without the marker nothing happens at all.
	before := d.hash(t)
	if err := Run(d.config, d.options(t, smallSystem)); err != nil || len(d.stages) != 0 || len(d.remount) != 0 {
		t.Errorf("second run: %v, hooks %v, remounts %v", err, d.stages, d.remount)
	}
	if d.hash(t) != before {
		t.Error("the second run changed the disk")
	}

	// After a reboot with the marker back, the layout is already there:
	// hooks run, the table and the data filesystem stay as they are.
	d.boot(t)
	sh(t, fmt.Sprintf("mount -o remount,rw %s && touch %s/.rugix/bootstrap && mount -o remount,ro %s", d.config, d.config, d.config))
	tbl, err := disk.ReadDevice(d.loop)
	if err != nil {
		t.Fatal(err)
	}
	cfg := tbl.Partition(1)
	before = hashOutside(t, d.file, cfg.Start, cfg.Size)
	if err := Run(d.config, d.options(t, smallSystem)); err != nil {
		t.Fatal(err)
	}
	d.check(t, 64<<20)
	if len(d.stages) != 3 {
		t.Errorf("hooks %v", d.stages)
	}
	if got := sh(t, "blkid -p -o value -s UUID "+dataPart); got != dataUUID {
		t.Errorf("data filesystem recreated: UUID %s, was %s", got, dataUUID)
	}
	// Only the config partition (the marker) changed.
	if hashOutside(t, d.file, cfg.Start, cfg.Size) != before {
		t.Error("the run with the marker back changed the disk outside the config partition")
	}
}

// hashOutside hashes the file except the bytes [off, off+n).
func hashOutside(t *testing.T, file string, off, n uint64) string {
	t.Helper()
	return sh(t, fmt.Sprintf("{ head -c %d %s; tail -c +%d %s; } | sha256sum", off, file, off+n+1, file))
}

// TestBootstrapGrow grows system-a, which is smaller in the image than the
// layout's system size, and so needs BLKPG_RESIZE_PARTITION while mounted.
func TestBootstrapGrow(t *testing.T) {
	if !inPrivateNS(t) {
		return
	}
	if underQEMU() {
		t.Skip("qemu-user does not translate BLKPG_RESIZE_PARTITION, which growing a partition the kernel knows needs")
	}
	d := flash(t, makeSdcard(t, "mbr"), 1<<30)
	mnt := t.TempDir()
	if err := unix.Mount(d.part(5), mnt, "ext4", unix.MS_RDONLY, ""); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(mnt, unix.MNT_DETACH)
	if err := Run(d.config, d.options(t, "[layout]\ntype = \"default\"\nsystem-size = \"96MiB\"\n")); err != nil {
		t.Fatal(err)
	}
	d.check(t, 96<<20)
	if b, err := os.ReadFile(filepath.Join(mnt, "payload")); err != nil || !bytes.Equal(b, d.payload) {
		t.Errorf("payload through the mounted system-a: %v", err)
	}
}

func TestBootstrapTooSmall(t *testing.T) {
	if !inPrivateNS(t) {
		return
	}
	for _, kind := range []string{"mbr", "gpt"} {
		d := flash(t, makeSdcard(t, kind), 180<<20)
		before := d.hash(t)
		kbefore, _ := disk.KernelPartitions(d.loop)
		err := Run(d.config, d.options(t, smallSystem))
		if err == nil || !strings.Contains(err.Error(), "too small") || !strings.Contains(err.Error(), d.loop) {
			t.Errorf("%s: err = %v, want \"too small\" and the device", kind, err)
		}
		t.Logf("%s: %v", kind, err)
		if d.hash(t) != before {
			t.Errorf("%s: the disk changed", kind)
		}
		if !d.marker() || len(d.remount) != 0 {
			t.Errorf("%s: marker %v, remounts %v", kind, d.marker(), d.remount)
		}
		if k, _ := disk.KernelPartitions(d.loop); !reflect.DeepEqual(k, kbefore) {
			t.Errorf("%s: kernel partitions %v, were %v", kind, k, kbefore)
		}
	}
}

func TestBootstrapNoneAndDisabled(t *testing.T) {
	if !inPrivateNS(t) {
		return
	}
	for _, toml := range []string{"[layout]\ntype = \"none\"\n", "disabled = true\n"} {
		d := flash(t, makeSdcard(t, "mbr"), 512<<20)
		tbl, _ := disk.ReadDevice(d.loop)
		if err := Run(d.config, d.options(t, toml)); err != nil {
			t.Fatal(err)
		}
		after, _ := disk.ReadDevice(d.loop)
		if !reflect.DeepEqual(tbl, after) {
			t.Errorf("%q: table changed to %+v", toml, after)
		}
		if d.marker() || !reflect.DeepEqual(d.remount, []bool{true, false}) {
			t.Errorf("%q: marker %v, remounts %v", toml, d.marker(), d.remount)
		}
		if !reflect.DeepEqual(d.stages, []string{"prepare"}) {
			t.Errorf("%q: hooks %v", toml, d.stages)
		}
	}
}

func TestBootstrapNoMkfs(t *testing.T) {
	if !inPrivateNS(t) {
		return
	}
	d := flash(t, makeSdcard(t, "mbr"), 512<<20)
	before := d.hash(t)
	oldPaths, oldPATH := mkfsExt4Paths, os.Getenv("PATH")
	mkfsExt4Paths = []string{"/nonexistent/mkfs.ext4"}
	t.Setenv("PATH", "/nonexistent")
	err := Run(d.config, d.options(t, smallSystem))
	mkfsExt4Paths = oldPaths
	os.Setenv("PATH", oldPATH)
	if err == nil || !strings.Contains(err.Error(), "partition 7 needs an ext4 filesystem") || !strings.Contains(err.Error(), "mkfs.ext4 not found") {
		t.Errorf("err = %v", err)
	}
	if d.hash(t) != before || !d.marker() {
		t.Error("the disk or the marker changed")
	}
}

func TestBootstrapHookFails(t *testing.T) {
	if !inPrivateNS(t) {
		return
	}
	d := flash(t, makeSdcard(t, "gpt"), 512<<20)
	before := d.hash(t)
	o := d.options(t, smallSystem)
	o.Hooks = func(stage string) error {
		if stage == "prepare" {
			return errors.New("not this device")
		}
		return nil
	}
	if err := Run(d.config, o); err == nil || !strings.Contains(err.Error(), "bootstrap/prepare hooks: not this device") {
		t.Errorf("err = %v", err)
	}
	if d.hash(t) != before || !d.marker() {
		t.Error("the disk or the marker changed")
	}
}

// TestBootstrapCrash stops bootstrapping after each step, as a power cut
// would, reboots and bootstraps again, which must finish the job.
func TestBootstrapCrash(t *testing.T) {
	if !inPrivateNS(t) {
		return
	}
	kinds := []string{"mbr", "gpt"}
	if testing.Short() {
		kinds = kinds[:1]
	}
	for _, kind := range kinds {
		sd := makeSdcard(t, kind)
		for _, at := range []string{"kernel-added", "formatted", "table-written", "post-layout"} {
			t.Logf("--- %s: power cut after %s", kind, at)
			d := flash(t, sd, 1<<30)
			testStep = func(s string) error {
				if s == at {
					return fmt.Errorf("power cut after %s", s)
				}
				return nil
			}
			err := Run(d.config, d.options(t, smallSystem))
			testStep = nil
			if err == nil || !strings.Contains(err.Error(), "power cut") {
				t.Fatalf("%s: err = %v", at, err)
			}
			if !d.marker() {
				t.Fatalf("%s: marker removed", at)
			}
			d.boot(t)
			if tbl, err := disk.ReadDevice(d.loop); err != nil {
				t.Fatalf("%s: after the cut: %v", at, err)
			} else if at == "kernel-added" || at == "formatted" {
				if len(tbl.Partitions) != len(expectedLayout(kind, 0, 0))-2 {
					t.Errorf("%s: the table changed before its write: %+v", at, tbl.Partitions)
				}
			}
			if err := Run(d.config, d.options(t, smallSystem)); err != nil {
				t.Fatalf("%s: rerun: %v", at, err)
			}
			d.check(t, 64<<20)
		}
	}
}
