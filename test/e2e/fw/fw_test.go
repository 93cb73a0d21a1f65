package fw

import (
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const (
	autobootA = "[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3"
	autobootB = "[all]\ntryboot_a_b=1\nboot_partition=3\n[tryboot]\nboot_partition=2"
)

func TestParseAutoboot(t *testing.T) {
	for _, tc := range []struct {
		name    string
		data    string
		tryboot bool
		want    Autoboot
		err     string
	}{
		{name: "A normal", data: autobootA, want: Autoboot{2, true}},
		{name: "A tryboot", data: autobootA, tryboot: true, want: Autoboot{3, true}},
		{name: "B normal", data: autobootB, want: Autoboot{3, true}},
		{name: "B tryboot", data: autobootB, tryboot: true, want: Autoboot{2, true}},
		{name: "no section", data: "boot_partition=4\n", want: Autoboot{4, false}},
		{name: "none ignored", data: "[none]\nboot_partition=3\n[all]\nboot_partition=2\n", want: Autoboot{2, false}},
		{name: "comments and CRLF", data: "# A/B\r\n[all]\r\ntryboot_a_b=1 # on\r\nboot_partition=2\r\n", want: Autoboot{2, true}},
		{name: "tryboot_a_b off", data: "[all]\ntryboot_a_b=0\nboot_partition=2\n[tryboot]\nboot_partition=3", tryboot: true, want: Autoboot{3, false}},
		{name: "empty", data: "", want: Autoboot{}},
		{name: "other filter", data: "[pi4]\nboot_partition=2\n", err: "filter [pi4] is not allowed"},
		{name: "unknown key", data: "[all]\nos_prefix=a/\n", err: "not modelled"},
		{name: "bad number", data: "boot_partition=x\n", err: "not a partition number"},
		{name: "too large", data: autobootA + strings.Repeat("\n#", 300), err: "more than the firmware's 512"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseAutoboot([]byte(tc.data), tc.tryboot)
			checkParse(t, got, err, tc.want, tc.err)
		})
	}
}

// checkParse compares a parser's result with the expected value, or its
// error with a wanted substring.
func checkParse[T comparable](t *testing.T, got T, err error, want T, wantErr string) {
	t.Helper()
	if wantErr != "" {
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("error %v, want one containing %q", err, wantErr)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

func TestParseConfig(t *testing.T) {
	for _, tc := range []struct {
		name    string
		data    string
		tryboot bool
		want    Config
		err     string
	}{
		{name: "board", data: "start_file=start4.elf\nkernel=Image\ndtoverlay=miniuart-bt\narm_64bit=1\ninitramfs initrd.img followkernel\n",
			want: Config{Kernel: "Image", Initramfs: "initrd.img", Cmdline: "cmdline.txt"}},
		{name: "default 64-bit kernel", data: "arm_64bit=1\n", want: Config{Kernel: "kernel8.img", Cmdline: "cmdline.txt"}},
		{name: "default 32-bit kernel", data: "", want: Config{Kernel: "kernel7l.img", Cmdline: "cmdline.txt"}},
		{name: "model filters", data: "[pi3]\nkernel=pi3.img\n[pi4]\nkernel=pi4.img\n[cm4]\nkernel=cm4.img\n[all]\ncmdline=/c.txt\n",
			want: Config{Kernel: "pi4.img", Cmdline: "c.txt"}},
		{name: "tryboot section off", data: "kernel=a.img\n[tryboot]\nkernel=b.img\n", want: Config{Kernel: "a.img", Cmdline: "cmdline.txt"}},
		{name: "tryboot section on", data: "kernel=a.img\n[tryboot]\nkernel=b.img\n", tryboot: true, want: Config{Kernel: "b.img", Cmdline: "cmdline.txt"}},
		{name: "os_prefix", data: "os_prefix=a/\n", err: "not modelled"},
		{name: "initramfs address", data: "initramfs initrd.img 0x2000000\n", err: "followkernel"},
		{name: "gpio filter", data: "[gpio4=1]\nkernel=x\n", err: "not modelled"},
		{name: "garbage", data: "what\n", err: "not a setting"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseConfig([]byte(tc.data), tc.tryboot)
			checkParse(t, got, err, tc.want, tc.err)
		})
	}
}

func TestParseRestart(t *testing.T) {
	for _, tc := range []struct {
		name    string
		console string
		want    Request
		ok      bool
	}{
		{name: "tryboot", console: "[   12.5] reboot: Restarting system with command '0 tryboot'\r\n", want: Request{0, true}, ok: true},
		{name: "partition", console: "reboot: Restarting system with command '3'\n", want: Request{3, false}, ok: true},
		{name: "partition and tryboot", console: "reboot: Restarting system with command '3 tryboot'\n", want: Request{3, true}, ok: true},
		{name: "tryboot without space", console: "reboot: Restarting system with command 'tryboot'\n", want: Request{0, false}, ok: true},
		{name: "plain", console: "x\nreboot: Restarting system\r\n", ok: true},
		{name: "last one counts", console: "reboot: Restarting system with command '0 tryboot'\nreboot: Restarting system\n", ok: true},
		{name: "panic", console: "Kernel panic - not syncing: Attempted to kill init!\nRebooting in 1 seconds..\n"},
		{name: "cut mid-line", console: "reboot: Restarting system with command '0 try"},
		{name: "nothing", console: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok, err := ParseRestart(tc.console)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want || ok != tc.ok {
				t.Fatalf("got %+v, %v, want %+v, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
	if _, _, err := ParseRestart("reboot: Restarting system with command '99 tryboot'\n"); err == nil {
		t.Fatal("partition 99 accepted")
	}
}

// needTools skips the test when a command it needs is missing.
func needTools(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			t.Skipf("%s not installed: %v", n, err)
		}
	}
}

// fatImage makes a 2 MiB FAT file system holding files, in user space.
func fatImage(t *testing.T, files map[string]string) []byte {
	t.Helper()
	dir := t.TempDir()
	img := filepath.Join(dir, "fat.img")
	if out, err := exec.Command("mkfs.vfat", "-C", img, "2048").CombinedOutput(); err != nil {
		t.Fatalf("mkfs.vfat: %v: %s", err, out)
	}
	for name, content := range files {
		src := filepath.Join(dir, "src")
		if err := os.WriteFile(src, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("mcopy", "-o", "-i", img, src, "::/"+name)
		cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1", "MTOOLSRC=/dev/null")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("mcopy %s: %v: %s", name, err, out)
		}
	}
	data, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// part is a primary partition of a test disk: its MBR type and content.
type part struct {
	typ  byte
	data []byte
}

// diskImage writes an MBR disk with the primary partitions parts (up to 4,
// each in a 4 MiB slot from 1 MiB on) and returns its path.
func diskImage(t *testing.T, parts []part) string {
	t.Helper()
	const slot = 4 << 20
	img := make([]byte, 1<<20+len(parts)*slot)
	for i, p := range parts {
		start := 1<<20 + i*slot
		copy(img[start:], p.data)
		e := img[446+16*i:]
		e[4] = p.typ
		binary.LittleEndian.PutUint32(e[8:], uint32(start/512))
		binary.LittleEndian.PutUint32(e[12:], uint32(slot/512))
	}
	binary.LittleEndian.PutUint32(img[440:], 0xba5c01e5)
	img[510], img[511] = 0x55, 0xaa
	path := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(path, img, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// slotFiles is a boot partition whose files name it.
func slotFiles(name string) map[string]string {
	return map[string]string{
		"start4.elf":  "",
		"config.txt":  "kernel=Image\narm_64bit=1\ninitramfs initrd.img followkernel\n",
		"tryboot.txt": "kernel=Image-tryboot\narm_64bit=1\n",
		"cmdline.txt": "root=" + name + " init=/usr/bin/bascule\n",
		"Image":       "kernel " + name,
		"initrd.img":  "initrd " + name,
	}
}

// bootAndCheck boots the image and checks the partition, flag and files.
func bootAndCheck(t *testing.T, f *Firmware, img string, partition int, tryboot bool, slot string) *Boot {
	t.Helper()
	dir := t.TempDir()
	b, err := f.Boot(img, dir)
	if err != nil {
		t.Fatalf("boot: %v", err)
	}
	if b.Partition != partition || b.Tryboot != tryboot {
		t.Fatalf("booted partition %d tryboot %v, want %d %v", b.Partition, b.Tryboot, partition, tryboot)
	}
	if b.Cmdline != "root="+slot+" init=/usr/bin/bascule" {
		t.Fatalf("cmdline %q, want that of %s", b.Cmdline, slot)
	}
	for path, want := range map[string]string{b.Kernel: "kernel " + slot, b.Initramfs: "initrd " + slot} {
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != want {
			t.Fatalf("%s holds %q, want %q", path, got, want)
		}
	}
	return b
}

const (
	tryRestart   = "[  9.1] reboot: Restarting system with command '0 tryboot'\r\n"
	plainRestart = "[  9.1] reboot: Restarting system\r\n"
)

func TestBootFlagIsOneShot(t *testing.T) {
	needTools(t, "mkfs.vfat", "mcopy")
	img := diskImage(t, []part{
		{0x0c, fatImage(t, map[string]string{"autoboot.txt": autobootA})},
		{0x0c, fatImage(t, slotFiles("a"))},
		{0x0c, fatImage(t, slotFiles("b"))},
	})
	f := New()
	bootAndCheck(t, f, img, 2, false, "a")
	// A plain reboot boots the default again.
	if _, err := f.Restarted(plainRestart); err != nil {
		t.Fatal(err)
	}
	bootAndCheck(t, f, img, 2, false, "a")
	// "0 tryboot": the [tryboot] partition, once.
	if _, err := f.Restarted(tryRestart); err != nil {
		t.Fatal(err)
	}
	if !f.Pending().Tryboot {
		t.Fatal("tryboot request not pending")
	}
	bootAndCheck(t, f, img, 3, true, "b")
	if f.Pending() != (Request{}) {
		t.Fatalf("request %+v still pending after the boot", f.Pending())
	}
	// The trial boot panics: no restart line, the next boot is the default.
	if _, err := f.Restarted("Kernel panic - not syncing: Attempted to kill init!\nRebooting in 1 seconds..\n"); err != nil {
		t.Fatal(err)
	}
	bootAndCheck(t, f, img, 2, false, "a")
	// A power cut after the request loses it.
	if _, err := f.Restarted(tryRestart); err != nil {
		t.Fatal(err)
	}
	f.PowerCut()
	bootAndCheck(t, f, img, 2, false, "a")
}

func TestBootAfterCommit(t *testing.T) {
	needTools(t, "mkfs.vfat", "mcopy")
	img := diskImage(t, []part{
		{0x0c, fatImage(t, map[string]string{"autoboot.txt": autobootB})},
		{0x0c, fatImage(t, slotFiles("a"))},
		{0x0c, fatImage(t, slotFiles("b"))},
	})
	f := New()
	bootAndCheck(t, f, img, 3, false, "b")
	if _, err := f.Restarted(tryRestart); err != nil {
		t.Fatal(err)
	}
	bootAndCheck(t, f, img, 2, true, "a")
	// A partition named by the restart wins over autoboot.txt.
	if _, err := f.Restarted("reboot: Restarting system with command '2'\n"); err != nil {
		t.Fatal(err)
	}
	bootAndCheck(t, f, img, 2, false, "a")
}

func TestBootTrybootTxtWithoutAB(t *testing.T) {
	needTools(t, "mkfs.vfat", "mcopy")
	slot := slotFiles("b")
	slot["Image-tryboot"] = "kernel b"
	img := diskImage(t, []part{
		{0x0c, fatImage(t, map[string]string{"autoboot.txt": "[all]\nboot_partition=2\n[tryboot]\nboot_partition=3\n"})},
		{0x0c, fatImage(t, slotFiles("a"))},
		{0x0c, fatImage(t, slot)},
	})
	f := New()
	if _, err := f.Restarted(tryRestart); err != nil {
		t.Fatal(err)
	}
	b, err := f.Boot(img, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if b.Partition != 3 || b.Config != "tryboot.txt" || b.Initramfs != "" || filepath.Base(b.Kernel) != "Image-tryboot" {
		t.Fatalf("without tryboot_a_b: %+v, want tryboot.txt of partition 3", b)
	}
}

func TestBootNotBootable(t *testing.T) {
	needTools(t, "mkfs.vfat", "mcopy")
	noStart := slotFiles("b")
	delete(noStart, "start4.elf")
	img := diskImage(t, []part{
		{0x0c, fatImage(t, map[string]string{"autoboot.txt": autobootA})},
		{0x0c, fatImage(t, slotFiles("a"))},
		{0x0c, fatImage(t, noStart)},
		{0x83, fatImage(t, slotFiles("c"))},
	})
	f := New()
	// Partition 3 lacks start4.elf: the bootloader falls back to partition
	// 1, which is not bootable either.
	if _, err := f.Restarted(tryRestart); err != nil {
		t.Fatal(err)
	}
	if b, err := f.Boot(img, t.TempDir()); err == nil || !strings.Contains(err.Error(), "no bootable partition") {
		t.Fatalf("booted %+v (error %v) from a partition without start4.elf", b, err)
	}
	if f.Pending() != (Request{}) {
		t.Fatal("the failed boot left the request pending")
	}
	// Partition 4 is not FAT.
	if _, err := f.Restarted("reboot: Restarting system with command '4'\n"); err != nil {
		t.Fatal(err)
	}
	if b, err := f.Boot(img, t.TempDir()); err == nil || !strings.Contains(err.Error(), "no bootable partition") {
		t.Fatalf("booted %+v (error %v) from a partition of type 0x83", b, err)
	}
	// Without the start file check the same partition 3 boots.
	f.StartFile = ""
	if _, err := f.Restarted(tryRestart); err != nil {
		t.Fatal(err)
	}
	bootAndCheck(t, f, img, 3, true, "b")
}

func TestDeviceTree(t *testing.T) {
	needTools(t, "dtc", "fdtput", "fdtget")
	dir := t.TempDir()
	base := filepath.Join(dir, "base.dtb")
	cmd := exec.Command("dtc", "-I", "dts", "-O", "dtb", "-o", base, "-")
	cmd.Stdin = strings.NewReader("/dts-v1/;\n/ { chosen { bootargs = \"x\"; }; };\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("dtc: %v: %s", err, out)
	}
	for _, b := range []Boot{{Partition: 3, Tryboot: true}, {Partition: 2}} {
		out := filepath.Join(dir, "out.dtb")
		if err := DeviceTree(base, out, &b); err != nil {
			t.Fatal(err)
		}
		// fdtget -t bx prints the raw bytes: big-endian u32 cells.
		for prop, want := range map[string]string{"tryboot": map[bool]string{true: "0 0 0 1", false: "0 0 0 0"}[b.Tryboot], "partition": "0 0 0 " + string(rune('0'+b.Partition))} {
			got, err := exec.Command("fdtget", "-t", "bx", out, "/chosen/bootloader", prop).Output()
			if err != nil {
				t.Fatalf("fdtget %s: %v", prop, err)
			}
			if strings.TrimSpace(string(got)) != want {
				t.Fatalf("%+v: %s = %q, want %q", b, prop, got, want)
			}
		}
	}
}
