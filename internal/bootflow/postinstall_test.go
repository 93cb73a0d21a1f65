package bootflow

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestPatchCmdline(t *testing.T) {
	const root = "PARTUUID=1a2b3c4d-06"
	for _, c := range []struct {
		in, want, wantKeep string
	}{
		{
			"console=serial0,115200 console=tty1 root=PARTUUID=1a2b3c4d-02 rootfstype=ext4 fsck.repair=yes rootwait quiet init=/usr/lib/raspberrypi-sys-mods/firstboot\n",
			"console=serial0,115200 console=tty1 rootfstype=ext4 fsck.repair=yes rootwait panic=60 root=PARTUUID=1a2b3c4d-06 init=/usr/bin/bascule",
			"console=serial0,115200 console=tty1 rootfstype=ext4 fsck.repair=yes rootwait init=/usr/lib/raspberrypi-sys-mods/firstboot panic=60 root=PARTUUID=1a2b3c4d-06",
		},
		{
			"  panic=5 panic_on_oops=1\tquiet=1 root=/dev/mmcblk0p2  quiet \r\n",
			"quiet=1 panic=5 root=PARTUUID=1a2b3c4d-06 init=/usr/bin/bascule",
			"quiet=1 panic=5 root=PARTUUID=1a2b3c4d-06",
		},
		{"", "panic=60 root=PARTUUID=1a2b3c4d-06 init=/usr/bin/bascule", "panic=60 root=PARTUUID=1a2b3c4d-06"},
		// panic=0 (hang) and a value that is no number give way to 60.
		{"panic=0 a", "a panic=60 root=PARTUUID=1a2b3c4d-06 init=/usr/bin/bascule", "a panic=60 root=PARTUUID=1a2b3c4d-06"},
		{"panic=x panic=-1", "panic=-1 root=PARTUUID=1a2b3c4d-06 init=/usr/bin/bascule", "panic=-1 root=PARTUUID=1a2b3c4d-06"},
	} {
		if got := patchCmdline(c.in, root, "/usr/bin/bascule", false); got != c.want {
			t.Errorf("%q:\n got %q\nwant %q", c.in, got, c.want)
		}
		if got := patchCmdline(c.in, root, "/usr/bin/bascule", true); got != c.wantKeep {
			t.Errorf("%q keep init:\n got %q\nwant %q", c.in, got, c.wantKeep)
		}
	}
}

func TestPatchRPiBoot(t *testing.T) {
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "cmdline.txt"), []byte("console=tty1 root=/dev/sda2 quiet\n"), 0o644))
	must(t, patchRPiBoot(dir, "PARTUUID=1a2b3c4d-05", "/sbin/init2", false))
	want := "console=tty1 panic=60 root=PARTUUID=1a2b3c4d-05 init=/sbin/init2"
	if got, _ := os.ReadFile(filepath.Join(dir, "cmdline.txt")); string(got) != want {
		t.Fatalf("cmdline.txt %q", got)
	}
	env, err := readEnvFile(filepath.Join(dir, "boot.env"))
	must(t, err)
	if len(env) != 1 || env[0] != (envVar{"bootargs", want}) {
		t.Fatalf("boot.env %q", env)
	}
	// boot.env keeps what else it holds.
	old, _ := encodeEnvFile(envVars{{"kernel_file", "Image"}, {"bootargs", "old"}})
	must(t, os.WriteFile(filepath.Join(dir, "boot.env"), old, 0o644))
	must(t, patchRPiBoot(dir, "PARTUUID=1a2b3c4d-06", "/sbin/init2", false))
	got, _ := os.ReadFile(filepath.Join(dir, "boot.env"))
	wantEnv, _ := encodeEnvFile(envVars{{"kernel_file", "Image"}, {"bootargs", "console=tty1 panic=60 root=PARTUUID=1a2b3c4d-06 init=/sbin/init2"}})
	if !bytes.Equal(got, wantEnv) {
		t.Fatalf("merged boot.env %q", got)
	}
	must(t, os.WriteFile(filepath.Join(dir, "boot.env"), []byte("junk"), 0o644))
	if err := patchRPiBoot(dir, "PARTUUID=x", "/i", false); err == nil {
		t.Error("corrupt boot.env accepted")
	}
	must(t, os.Remove(filepath.Join(dir, "cmdline.txt")))
	if err := patchRPiBoot(dir, "PARTUUID=x", "/i", false); err == nil {
		t.Error("missing cmdline.txt accepted")
	}
}

func TestPatchGrubBoot(t *testing.T) {
	dir := t.TempDir()
	const uuid = "PARTUUID=0fc63daf-8483-4772-8e79-3d69d8477de4"
	must(t, patchGrubBoot(dir, uuid, "/usr/bin/bascule", false))
	got, _ := os.ReadFile(filepath.Join(dir, "boot.grubenv"))
	want, _ := encodeGrubEnv(envVars{{"rugpi_bootargs", "ro init=/usr/bin/bascule root=" + uuid}})
	if !bytes.Equal(got, want) {
		t.Fatalf("boot.grubenv %q", got)
	}
	own, _ := encodeGrubEnv(envVars{{"rugpi_bootargs", "ro init=/lib/systemd/systemd root=PARTUUID=old"}})
	must(t, os.WriteFile(filepath.Join(dir, "boot.grubenv"), own, 0o644))
	must(t, patchGrubBoot(dir, uuid, "/usr/bin/bascule", true))
	got, _ = os.ReadFile(filepath.Join(dir, "boot.grubenv"))
	want, _ = encodeGrubEnv(envVars{{"rugpi_bootargs", "ro init=/lib/systemd/systemd root=" + uuid}})
	if !bytes.Equal(got, want) {
		t.Fatalf("boot.grubenv keeping init: %q", got)
	}
}

func TestPostInstallNeedsResolvers(t *testing.T) {
	te := newTestEnv(t)
	for _, kind := range []string{RPiTryboot, RPiUboot, Grub} {
		if err := te.flow(kind).PostInstall("b"); err == nil {
			t.Errorf("%s PostInstall without BootSlot/RootPartUUID", kind)
		}
	}
}

const mountChildEnv = "BASCULE_BOOTFLOW_MOUNT_CHILD"

// TestPostInstallMount runs PostInstall against a real file system: an
// ext4 image on a loop device (this test kernel has no vfat), mounted by
// the code under test inside a private mount namespace of a re-executed
// test binary, so the host's mount table is never touched. The result is
// checked outside with debugfs.
func TestPostInstallMount(t *testing.T) {
	if dev := os.Getenv(mountChildEnv); dev != "" {
		postInstallChild(t, dev)
		return
	}
	if os.Getuid() != 0 {
		t.Skip("needs root for loop devices and mounts")
	}
	for _, tool := range []string{"losetup", "mkfs.ext4", "debugfs", "unshare"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s missing", tool)
		}
	}
	reexec := func(testRun string, env ...string) *exec.Cmd {
		self, err := os.Executable()
		must(t, err)
		args := []string{"-m", "--propagation", "private"}
		if w := os.Getenv("BASCULE_TEST_EXEC_WRAPPER"); w != "" {
			args = append(args, w)
		}
		cmd := exec.Command("unshare", append(args, self, "-test.run="+testRun, "-test.v")...)
		cmd.Env = append(os.Environ(), env...)
		return cmd
	}
	if out, err := reexec("^$").CombinedOutput(); err != nil {
		t.Skipf("cannot re-execute the test binary in a mount namespace (under qemu-user without BASCULE_TEST_EXEC_WRAPPER?): %v: %s", err, out)
	}

	dir := t.TempDir()
	content := filepath.Join(dir, "content")
	must(t, os.Mkdir(content, 0o755))
	must(t, os.WriteFile(filepath.Join(content, "cmdline.txt"), []byte("console=tty1 root=/dev/mmcblk0p2 rootwait quiet\n"), 0o644))
	img := filepath.Join(dir, "boot.img")
	must(t, os.WriteFile(img, nil, 0o600))
	must(t, os.Truncate(img, 8<<20))
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-d", content, img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v: %s", err, out)
	}
	out, err := exec.Command("losetup", "--find", "--show", img).Output()
	if err != nil {
		t.Skipf("no loop device: %v", err)
	}
	loop := strings.TrimSpace(string(out))
	t.Cleanup(func() {
		if out, err := exec.Command("losetup", "-d", loop).CombinedOutput(); err != nil {
			t.Errorf("losetup -d %s: %v: %s", loop, err, out)
		}
	})

	cmd := reexec("^TestPostInstallMount$", mountChildEnv+"="+loop)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "child done") {
		t.Fatalf("child: %v\n%s", err, out)
	}

	if mounts, _ := os.ReadFile("/proc/self/mountinfo"); bytes.Contains(mounts, []byte(loop)) {
		t.Fatalf("%s is mounted in the host namespace", loop)
	}
	cat := func(name string) string {
		out, err := exec.Command("debugfs", "-R", "cat /"+name, img).Output()
		must(t, err)
		return string(out)
	}
	want := "console=tty1 rootwait panic=60 root=PARTUUID=1a2b3c4d-06 init=/usr/bin/bascule"
	if got := cat("cmdline.txt"); got != want {
		t.Errorf("cmdline.txt %q, want %q", got, want)
	}
	wantEnv, _ := encodeEnvFile(envVars{{"bootargs", want}})
	if got := cat("boot.env"); got != string(wantEnv) {
		t.Errorf("boot.env %q", got)
	}
	wantGrub, _ := encodeGrubEnv(envVars{{"rugpi_bootargs", "ro init=/usr/bin/bascule root=PARTUUID=1a2b3c4d-06"}})
	if got := cat("boot.grubenv"); got != string(wantGrub) {
		t.Errorf("boot.grubenv %q", got)
	}
	if got := cat("cmdline.txt.new"); got != "" {
		t.Errorf("stray cmdline.txt.new: %q", got)
	}
}

// postInstallChild runs in the private mount namespace.
func postInstallChild(t *testing.T, dev string) {
	te := newTestEnv(t)
	te.BootSlot = func(group string) (string, error) {
		if group != "b" {
			t.Errorf("BootSlot(%q)", group)
		}
		return dev, nil
	}
	te.RootPartUUID = func(group string) (string, error) { return "1A2B3C4D-06", nil }
	te.write("autoboot.txt", rugixAutobootA)
	must(t, te.flow(RPiTryboot).PostInstall("b"))
	must(t, te.flow(Grub).PostInstall("b"))
	if fstype, err := probeFS(dev); err != nil || fstype != "ext4" {
		t.Errorf("probeFS: %q, %v", fstype, err)
	}
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	must(t, err)
	if bytes.Contains(mounts, []byte(dev)) {
		t.Errorf("%s still mounted", dev)
	}
	if !t.Failed() {
		t.Log("child done")
	}
}
