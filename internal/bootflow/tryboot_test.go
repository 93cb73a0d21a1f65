package bootflow

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Rugix's boot/tryboot/autoboot.{a,b}.txt, byte for byte.
var (
	rugixAutobootA = []byte("[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3")
	rugixAutobootB = []byte("[all]\ntryboot_a_b=1\nboot_partition=3\n[tryboot]\nboot_partition=2")
)

// fakeFirmware stands in for the VideoCore firmware behind /dev/vcio.
type fakeFirmware struct {
	flags uint32
	calls []string
}

// install points te at a regular file as /dev/vcio (it can be opened but
// not ioctl'd) and answers the mailbox ioctls, checking request number and
// buffer layout.
func (fw *fakeFirmware) install(t *testing.T, te *testEnv) {
	te.Vcio = filepath.Join(t.TempDir(), "vcio")
	must(t, os.WriteFile(te.Vcio, nil, 0o600))
	want := map[string]uint32{"amd64": 0xC0086400, "arm64": 0xC0086400, "arm": 0xC0046400, "386": 0xC0046400}[runtime.GOARCH]
	old := mboxIoctl
	mboxIoctl = func(fd int, req uint32, buf *[7]uint32) error {
		if req != want {
			t.Errorf("ioctl request 0x%08x, want 0x%08x on %s", req, want, runtime.GOARCH)
		}
		if buf[0] != 28 || buf[1] != 0 || buf[3] != 4 || buf[4] != 0 || buf[6] != 0 {
			t.Errorf("malformed property buffer %#x", *buf)
		}
		switch buf[2] {
		case tagGetRebootFlags:
			fw.calls = append(fw.calls, "get")
			buf[5] = fw.flags
		case tagSetRebootFlags:
			fw.calls = append(fw.calls, "set "+string(rune('0'+buf[5])))
			fw.flags = buf[5]
		default:
			t.Errorf("unexpected tag 0x%08x", buf[2])
		}
		buf[1] = mboxSuccess
		buf[4] = 0x80000004
		return nil
	}
	t.Cleanup(func() { mboxIoctl = old })
}

// boot does what the firmware does at power-on: read autoboot.txt, take
// [tryboot]'s partition if the tryboot flag is set, and clear the flag
// before the OS starts.
func (fw *fakeFirmware) boot(t *testing.T, configDir string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(configDir, "autoboot.txt"))
	if err != nil {
		t.Fatal(err)
	}
	section := "all"
	if fw.flags&1 != 0 {
		section = "tryboot"
	}
	fw.flags &^= 1
	part, err := autobootPartition(data, section)
	if err != nil {
		t.Fatalf("firmware cannot boot: %v", err)
	}
	return part
}

func TestAutobootBytes(t *testing.T) {
	if string(autobootFor(2)) != string(rugixAutobootA) || string(autobootFor(3)) != string(rugixAutobootB) {
		t.Fatal("autoboot.txt differs from Rugix's")
	}
	te := newTestEnv(t)
	te.write("autoboot.txt", rugixAutobootA)
	f := te.flow(RPiTryboot)
	must(t, f.Commit("b"))
	if got := te.read("autoboot.txt"); string(got) != string(rugixAutobootB) {
		t.Fatalf("after Commit(b): %q", got)
	}
	must(t, f.Commit("a"))
	if got := te.read("autoboot.txt"); string(got) != string(rugixAutobootA) {
		t.Fatalf("after Commit(a): %q", got)
	}
	if te.remount != 2 {
		t.Errorf("%d remounts for two commits", te.remount)
	}
	must(t, f.Commit("a"))
	if te.remount != 2 {
		t.Error("a commit without change remounted the config partition")
	}
}

func TestAutobootPartition(t *testing.T) {
	for _, c := range []struct {
		in, all, try string
	}{
		{string(rugixAutobootA), "2", "3"},
		{string(rugixAutobootB), "3", "2"},
		{"[all]\r\ntryboot_a_b=1\r\nboot_partition=3\r\n[tryboot]\r\nboot_partition=2\r\n", "3", "2"},
		{"boot_partition=3\n[tryboot]\nboot_partition=2", "3", "2"}, // before any section: [all]
		{"[none]\nboot_partition=3\n[all]\nboot_partition=2\n", "2", ""},
		{"[all]\nboot_partition=1\nboot_partition=3\n", "3", ""},
		{"[all]\nboot_partition=20\n", "", ""},
		{"[tryboot]\nboot_partition=2\n", "", "2"},
		{"", "", ""},
	} {
		all, err := autobootPartition([]byte(c.in), "all")
		if all != c.all || (err != nil) != (c.all == "") {
			t.Errorf("%q [all]: %q, %v; want %q", c.in, all, err, c.all)
		}
		try, _ := autobootPartition([]byte(c.in), "tryboot")
		if try != c.try {
			t.Errorf("%q [tryboot]: %q; want %q", c.in, try, c.try)
		}
	}
}

func TestTrybootUpdate(t *testing.T) {
	te := newTestEnv(t)
	fw := &fakeFirmware{}
	fw.install(t, te)
	te.write("autoboot.txt", rugixAutobootA)
	f := te.flow(RPiTryboot)
	mustDefault(t, f, "a")

	// Install into b and try it.
	must(t, f.PreInstall("b"))
	must(t, f.SetTryNext("b"))
	if fw.flags != 1 {
		t.Fatalf("tryboot flag not set: flags %d, calls %v", fw.flags, fw.calls)
	}
	if strings.Join(fw.calls, ",") != "get,set 1,get" {
		t.Errorf("mailbox calls %v", fw.calls)
	}
	must(t, f.Reboot(true))
	if len(te.reboots) != 1 || te.reboots[0] != (rebootCall{rebootRestart, ""}) {
		t.Fatalf("reboot with a mailbox: %+v, want a plain restart", te.reboots)
	}
	if part := fw.boot(t, te.ConfigDir); part != "3" {
		t.Fatalf("firmware booted %s, want the try on 3", part)
	}
	mustDefault(t, f, "a") // not yet committed

	// The new system is good: commit.
	must(t, f.Commit("b"))
	mustDefault(t, f, "b")
	if part := fw.boot(t, te.ConfigDir); part != "3" {
		t.Fatalf("after commit the firmware booted %s", part)
	}
	if te.rw {
		t.Error("config partition left read-write")
	}
}

func TestTrybootFailedTry(t *testing.T) {
	te := newTestEnv(t)
	fw := &fakeFirmware{}
	fw.install(t, te)
	te.write("autoboot.txt", rugixAutobootA)
	f := te.flow(RPiTryboot)
	must(t, f.SetTryNext("b"))
	if part := fw.boot(t, te.ConfigDir); part != "3" {
		t.Fatalf("try booted %s", part)
	}
	// The try hangs or crashes: the watchdog or the user resets.
	if part := fw.boot(t, te.ConfigDir); part != "2" {
		t.Fatalf("after a failed try the firmware booted %s", part)
	}
	mustDefault(t, f, "a")
}

func TestTrybootDisarm(t *testing.T) {
	te := newTestEnv(t)
	fw := &fakeFirmware{}
	fw.install(t, te)
	te.write("autoboot.txt", rugixAutobootB)
	f := te.flow(RPiTryboot)
	fw.flags = 1 | 4 // armed, plus a bit that is not ours
	must(t, f.SetTryNext("b"))
	if fw.flags != 4 {
		t.Fatalf("flags %d after disarming, want 4", fw.flags)
	}
	fw.calls = nil
	must(t, f.SetTryNext("b"))
	if strings.Join(fw.calls, ",") != "get" {
		t.Errorf("disarming an unarmed flag: calls %v", fw.calls)
	}
	if err := f.SetTryNext("c"); err == nil {
		t.Error("SetTryNext(c) succeeded")
	}
}

func TestTrybootMailboxFailure(t *testing.T) {
	te := newTestEnv(t)
	fw := &fakeFirmware{}
	fw.install(t, te)
	te.write("autoboot.txt", rugixAutobootA)
	f := te.flow(RPiTryboot)
	// An old EEPROM accepts SET but keeps the flag clear.
	mboxIoctl = func(fd int, req uint32, buf *[7]uint32) error {
		buf[1], buf[5] = mboxSuccess, 0
		return nil
	}
	if err := f.SetTryNext("b"); err == nil || !strings.Contains(err.Error(), "EEPROM") {
		t.Errorf("ignored flag: %v", err)
	}
	mboxIoctl = func(fd int, req uint32, buf *[7]uint32) error {
		buf[1] = 0x80000001
		return nil
	}
	if err := f.SetTryNext("b"); err == nil || !strings.Contains(err.Error(), "0x80000001") {
		t.Errorf("firmware error: %v", err)
	}
}

// TestMailboxIoctl runs the real ioctl against a regular file, which the
// kernel refuses with ENOTTY: the syscall is wired up (also under
// qemu-arm), and nothing but a VideoCore could answer it.
func TestMailboxIoctl(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vcio")
	must(t, os.WriteFile(path, nil, 0o600))
	_, err := mboxProperty(path, tagGetRebootFlags, 0)
	if errors.Is(err, unix.ENOSYS) {
		t.Skip("ioctl not passed through (qemu-user does not know IOCTL_MBOX_PROPERTY)")
	}
	if !errors.Is(err, unix.ENOTTY) {
		t.Fatalf("got %v, want ENOTTY", err)
	}
	if _, err := mboxProperty(filepath.Join(t.TempDir(), "none"), tagGetRebootFlags, 0); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing device: %v", err)
	}
}

func TestTrybootWithoutMailbox(t *testing.T) {
	te := newTestEnv(t)
	te.write("autoboot.txt", rugixAutobootA)
	f := te.flow(RPiTryboot)
	must(t, f.SetTryNext("b"))
	must(t, f.Reboot(false))
	must(t, f.SetTryNext("a"))
	must(t, f.Reboot(false))
	must(t, te.flow(RPiTryboot).Reboot(true)) // another process that knows a try is armed
	want := []rebootCall{{rebootRestart2, "0 tryboot"}, {rebootRestart, ""}, {rebootRestart2, "0 tryboot"}}
	if len(te.reboots) != len(want) {
		t.Fatalf("reboots %+v, want %+v", te.reboots, want)
	}
	for i := range want {
		if te.reboots[i] != want[i] {
			t.Errorf("reboot %d: %+v, want %+v", i, te.reboots[i], want[i])
		}
	}
	if rebootRestart2 != 0xA1B2C3D4 || rebootRestart != 0x01234567 {
		t.Error("reboot command numbers")
	}
}

func TestTrybootCommitCut(t *testing.T) {
	te := newTestEnv(t)
	fw := &fakeFirmware{}
	fw.install(t, te)
	f := te.flow(RPiTryboot)
	steps := te.cuts(
		func() { te.write("autoboot.txt", rugixAutobootA) },
		func() error { return f.Commit("b") },
		func(step int) {
			def, err := f.Default()
			if err != nil || (def != "a" && def != "b") {
				t.Fatalf("cut at step %d: Default %q, %v", step, def, err)
			}
			want := map[string]string{"a": "2", "b": "3"}[def]
			if part := fw.boot(t, te.ConfigDir); part != want {
				t.Fatalf("cut at step %d: Default %s but the firmware boots %s", step, def, part)
			}
			if te.rw {
				t.Fatalf("cut at step %d: left read-write", step)
			}
		})
	// Rugix's autoboot.txt and Bascule's have the same size: the commit
	// writes it in place (write, fsync), allocating nothing on FAT.
	if steps != 2 {
		t.Errorf("commit took %d steps", steps)
	}
	mustDefault(t, f, "b")
}

func TestFirmware(t *testing.T) {
	te := newTestEnv(t)
	te.write("autoboot.txt", rugixAutobootA)
	f := te.flow(RPiTryboot).(FirmwareInfo)
	if _, _, ok := f.Firmware(); ok {
		t.Fatal("firmware info without a device tree")
	}
	dir := filepath.Join(te.DeviceTree, "chosen", "bootloader")
	must(t, os.MkdirAll(dir, 0o755))
	cell := func(name string, v uint32) {
		must(t, os.WriteFile(filepath.Join(dir, name), binary.BigEndian.AppendUint32(nil, v), 0o644))
	}
	cell("tryboot", 1)
	cell("partition", 3)
	if try, part, ok := f.Firmware(); !ok || !try || part != 3 {
		t.Fatalf("Firmware() = %v, %d, %v", try, part, ok)
	}
	cell("tryboot", 0)
	cell("partition", 2)
	if try, part, ok := f.Firmware(); !ok || try || part != 2 {
		t.Fatalf("Firmware() = %v, %d, %v", try, part, ok)
	}
	must(t, os.WriteFile(filepath.Join(dir, "partition"), []byte("2\n"), 0o644))
	if _, _, ok := f.Firmware(); ok {
		t.Fatal("text cell accepted")
	}
}
