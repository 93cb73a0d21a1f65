package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// The device tests run the real command against loop devices with a real
// MBR layout, inside a private mount namespace: the test re-executes itself
// under `unshare --mount`, mounts a tmpfs on /run there and mounts the
// image's system-a partition where pre-init would. The host's mounts and
// disks are never touched. Commands run as the re-executed test binary
// (BASCULE_MAIN=1).
func TestMain(m *testing.M) {
	if os.Getenv("BASCULE_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

type result struct {
	stdout, stderr string
	code           int
}

func bascule(t *testing.T, stdin []byte, args ...string) result {
	t.Helper()
	exe, _ := os.Executable()
	argv := append([]string{exe}, args...)
	if w := os.Getenv("BASCULE_TEST_EXEC_WRAPPER"); w != "" {
		argv = append([]string{w}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "BASCULE_MAIN=1")
	cmd.Stdin = bytes.NewReader(stdin)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{o.String(), e.String(), code}
}

func sh(t *testing.T, script string) string {
	t.Helper()
	out, err := exec.Command("sh", "-euc", script).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", script, err, out)
	}
	return strings.TrimSpace(string(out))
}

func TestVersion(t *testing.T) {
	r := bascule(t, nil, "version")
	if r.code != 0 || strings.TrimSpace(r.stdout) == "" {
		t.Fatalf("%+v", r)
	}
	if r := bascule(t, nil, "frobnicate"); r.code != 2 {
		t.Fatalf("unknown command: %+v", r)
	}
}

func TestDevice(t *testing.T) {
	if inMountNamespace(t) {
		deviceTest(t)
	}
}

// inMountNamespace reports whether the test's body is to run now. Outside
// the namespace it checks what the device tests need (root, the tools, and
// whatever checks add), re-executes the test binary for this test alone in
// a private mount namespace, reports its output and returns false; in that
// child it returns true.
func inMountNamespace(t *testing.T, checks ...func()) bool {
	if os.Getenv("BASCULE_DEVICE_CHILD") != "" {
		return true
	}
	if os.Getuid() != 0 {
		t.Skip("needs root for loop devices and mounts")
	}
	for _, tool := range []string{"unshare", "losetup", "sfdisk", "mkfs.ext4", "partx"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s", tool)
		}
	}
	for _, check := range checks {
		check()
	}
	exe, _ := os.Executable()
	args := []string{"--mount", "--propagation", "private"}
	if w := os.Getenv("BASCULE_TEST_EXEC_WRAPPER"); w != "" {
		args = append(args, w)
	}
	args = append(args, exe, "-test.run=^"+t.Name()+"$", "-test.v")
	cmd := exec.Command("unshare", args...)
	cmd.Env = append(os.Environ(), "BASCULE_DEVICE_CHILD=1")
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("device test in a private mount namespace: %v", err)
	}
	return false
}

// loopDisk makes an image file of size partitioned by the sfdisk script
// layout, attaches it with its partitions and returns the loop device and
// the device of its partition n. Cleanup unmounts what the device tests mount (partitions in
// use cannot be deleted) and detaches the disk.
func loopDisk(t *testing.T, work, size, layout string) (loop string, p func(n int) string) {
	img := filepath.Join(work, "disk.img")
	sh(t, fmt.Sprintf("truncate -s %s %s\nsfdisk -q %s <<EOF\n%sEOF", size, img, img, layout))
	loop = sh(t, "losetup -f --show "+img)
	t.Cleanup(func() {
		for _, m := range []string{"/run/rugix/mounts/config", "/run/rugix/mounts/system", "/run/rugix/mounts/data", "/run", "/etc"} {
			unix.Unmount(m, unix.MNT_DETACH)
		}
		exec.Command("partx", "-d", loop).Run()
		exec.Command("losetup", "-d", loop).Run()
	})
	sh(t, "partx -a "+loop)
	return loop, func(n int) string { return fmt.Sprintf("%sp%d", loop, n) }
}

// mountRun puts a tmpfs on /run with pre-init's mount points, as pre-init
// leaves it.
func mountRun(t *testing.T) {
	must(t, unix.Mount("tmpfs", "/run", "tmpfs", 0, "mode=755"))
	for _, d := range []string{"/run/rugix/mounts/system", "/run/rugix/mounts/config", "/run/rugix/mounts/data"} {
		must(t, os.MkdirAll(d, 0o755))
	}
}

var autobootA = "[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3"
var autobootB = "[all]\ntryboot_a_b=1\nboot_partition=3\n[tryboot]\nboot_partition=2"

func deviceTest(t *testing.T) {
	work := t.TempDir()
	// The default MBR layout of the reference: config, boot-a, boot-b,
	// extended, system-a, system-b, data. The config partition is ext4
	// here because the test kernel has no vfat (file-level behaviour is the
	// same); the emulated device uses FAT.
	loop, p := loopDisk(t, work, "400M", `label: dos
label-id: 0x1a2b3c4d
size=16MiB, type=c
size=16MiB, type=c
size=16MiB, type=c
type=5
size=96MiB, type=83
size=96MiB, type=83
type=83
`)
	for _, n := range []int{1, 2, 3, 5, 6, 7} {
		sh(t, "mkfs.ext4 -q -F "+p(n))
	}
	// Pre-init's view: /run is a tmpfs, the system is mounted read-only.
	mountRun(t)
	cfg := filepath.Join(work, "cfg")
	os.MkdirAll(cfg, 0o755)
	must(t, unix.Mount(p(1), cfg, "ext4", 0, ""))
	os.WriteFile(filepath.Join(cfg, "autoboot.txt"), []byte(autobootA), 0o644)
	must(t, unix.Unmount(cfg, 0))
	must(t, unix.Mount(p(5), "/run/rugix/mounts/system", "ext4", unix.MS_RDONLY, ""))
	must(t, unix.Mount(p(7), "/run/rugix/mounts/data", "ext4", 0, ""))

	// The update: a new system and boot partition image.
	bdir := filepath.Join(work, "bundle")
	os.MkdirAll(filepath.Join(bdir, "payloads", "tree"), 0o755)
	os.WriteFile(filepath.Join(bdir, "payloads", "tree", "os-release"), []byte("VERSION=2\n"), 0o644)
	sh(t, fmt.Sprintf("mkfs.ext4 -q -F -d %s/payloads/tree %s/payloads/system.ext4 48M", bdir, bdir))
	os.MkdirAll(filepath.Join(bdir, "payloads", "boottree"), 0o755)
	os.WriteFile(filepath.Join(bdir, "payloads", "boottree", "cmdline.txt"), []byte("console=serial0,115200 root=/dev/mmcblk0p5 quiet init=/sbin/init rootwait\n"), 0o644)
	sh(t, fmt.Sprintf("mkfs.ext4 -q -F -d %s/payloads/boottree %s/payloads/boot.ext4 8M", bdir, bdir))
	os.WriteFile(filepath.Join(bdir, "rugix-bundle.toml"), []byte(`update-type = "full"
[[payloads]]
filename = "boot.ext4"
delivery = { type = "slot", slot = "boot" }
block-encoding = { chunker = "fixed-64", deduplicate = true, compression = { type = "xz", level = 1 } }
[[payloads]]
filename = "system.ext4"
delivery = { type = "slot", slot = "system" }
block-encoding = { chunker = "casync-16", deduplicate = true, compression = { type = "zstd" } }
`), 0o644)
	bundlePath := filepath.Join(work, "update.rugixb")
	hash := buildBundle(t, bdir, bundlePath)
	systemImg, _ := os.ReadFile(filepath.Join(bdir, "payloads", "system.ext4"))

	autoboot := func() string {
		r := bascule(t, nil, "utils", "is-mount-point", "/run/rugix/mounts/config")
		b, err := os.ReadFile("/run/rugix/mounts/config/autoboot.txt")
		if r.code != 0 || err != nil {
			t.Fatalf("config partition: %+v %v", r, err)
		}
		return string(b)
	}
	info := func() map[string]any {
		r := bascule(t, nil, "system", "info", "--json")
		if r.code != 0 {
			t.Fatalf("system info: %+v", r)
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(r.stdout), &m); err != nil {
			t.Fatalf("system info JSON: %v\n%s", err, r.stdout)
		}
		return m
	}

	t.Run("utils", func(t *testing.T) {
		r := bascule(t, nil, "utils", "find-block-device", "/run/rugix/mounts/system")
		want := fmt.Sprintf(`{"device":"%s","parent":"%s","partition":5}`, p(5), loop)
		if strings.TrimSpace(r.stdout) != want {
			t.Fatalf("find-block-device: %+v, want %s", r, want)
		}
		r = bascule(t, nil, "utils", "resolve-partition", "6")
		if !strings.Contains(r.stdout, `"device":"`+p(6)+`"`) {
			t.Fatalf("resolve-partition: %+v", r)
		}
	})

	t.Run("info", func(t *testing.T) {
		m := info()
		boot := m["boot"].(map[string]any)
		if boot["bootFlow"] != "rpi-tryboot" || boot["activeGroup"] != "a" || boot["defaultGroup"] != "a" {
			t.Fatalf("boot %v", boot)
		}
		if autoboot() != autobootA {
			t.Fatal("autoboot.txt changed")
		}
	})

	t.Run("refuses unverified", func(t *testing.T) {
		r := bascule(t, nil, "update", "install", "--reboot", "no", bundlePath)
		if r.code == 0 || !strings.Contains(r.stderr, "no way to verify the bundle") {
			t.Fatalf("%+v", r)
		}
	})

	t.Run("corrupt block", func(t *testing.T) {
		raw, _ := os.ReadFile(bundlePath)
		raw[len(raw)-100] ^= 0x20
		bad := filepath.Join(work, "bad.rugixb")
		os.WriteFile(bad, raw, 0o644)
		r := bascule(t, nil, "update", "install", "--reboot", "no", "--bundle-hash", hash, bad)
		if r.code != 1 || !regexp.MustCompile(`^bascule: bundle rejected: block \d+ of payload "system": `).MatchString(r.stderr) {
			t.Fatalf("%+v", r)
		}
		if _, err := os.Stat("/run/rugix/mounts/data/rugix/slots/system-b/state.json"); err == nil {
			t.Fatal("a failed install left a slot state")
		}
		if autoboot() != autobootA {
			t.Fatal("a failed install changed autoboot.txt")
		}
	})

	t.Run("install", func(t *testing.T) {
		r := bascule(t, nil, "update", "install", "--reboot", "no", "--bundle-hash", hash, bundlePath)
		if r.code != 0 {
			t.Fatalf("%+v", r)
		}
		got := make([]byte, len(systemImg))
		f, _ := os.Open(p(6))
		f.ReadAt(got, 0)
		f.Close()
		if !bytes.Equal(got, systemImg) {
			t.Fatal("system-b does not hold the new system")
		}
		// The active slot was not touched.
		a := make([]byte, 4096)
		f, _ = os.Open(p(5))
		f.ReadAt(a, 1024)
		f.Close()
		if bytes.Contains(a, []byte("VERSION=2")) {
			t.Fatal("system-a was written")
		}
		if autoboot() != autobootA {
			t.Fatal("--reboot no changed the default")
		}
		// Progress as JSON lines on a non-terminal stdout.
		if !strings.Contains(r.stdout, `{"event":"UpdateProgress","progress":`) {
			t.Fatalf("no progress lines: %q", r.stdout)
		}
		slots := info()["slots"].(map[string]any)
		sb := slots["system-b"].(map[string]any)
		want := "sha512-256:" + fmt.Sprintf("%x", sha512_256(systemImg))
		if sb["hashes"].(map[string]any)["sha512_256"] != want || sb["active"] != false {
			t.Fatalf("system-b info %v, want hash %s", sb, want)
		}
		// The new boot partition's cmdline.txt boots system-b by PARTUUID.
		bootDir := filepath.Join(work, "bootb")
		os.MkdirAll(bootDir, 0o755)
		must(t, unix.Mount(p(3), bootDir, "ext4", unix.MS_RDONLY, ""))
		cmdline, _ := os.ReadFile(filepath.Join(bootDir, "cmdline.txt"))
		unix.Unmount(bootDir, 0)
		if string(cmdline) != "console=serial0,115200 rootwait panic=60 root=PARTUUID=1a2b3c4d-06 init=/usr/bin/bascule" {
			t.Fatalf("cmdline.txt %q", cmdline)
		}
	})

	t.Run("slots", func(t *testing.T) {
		if r := bascule(t, nil, "slots", "verify", "system-b"); r.code != 0 || !strings.Contains(r.stderr, "OK") {
			t.Fatalf("verify: %+v", r)
		}
		if r := bascule(t, nil, "slots", "create-index", "system-b", "casync-64", "sha512-256"); r.code != 0 {
			t.Fatalf("create-index: %+v", r)
		}
		ix := "/run/rugix/mounts/data/rugix/slots/system-b/casync-64_sha512-256.rugix-block-index"
		if _, err := os.Stat(ix); err != nil {
			t.Fatal(err)
		}
		r := bascule(t, nil, "slots", "inspect", "system-b")
		if !strings.Contains(r.stdout, "index: casync-64 sha512-256 "+ix) || !strings.Contains(r.stdout, "hash: sha512-256:") {
			t.Fatalf("inspect: %+v", r)
		}
		if r := bascule(t, nil, "slots", "verify", "system-a"); r.code != 1 || !strings.Contains(r.stderr, "nothing to verify") {
			t.Fatalf("verify of a slot without state: %+v", r)
		}
		if r := bascule(t, nil, "boot", "mark-good"); r.code != 1 || !strings.Contains(r.stderr, "no notion of good") {
			t.Fatalf("mark-good: %+v", r)
		}
		// A changed byte in the slot is found.
		f, err := os.OpenFile(p(6), os.O_RDWR, 0)
		must(t, err)
		b := make([]byte, 1)
		f.ReadAt(b, 5000)
		f.WriteAt([]byte{b[0] ^ 1}, 5000)
		f.Sync()
		if r := bascule(t, nil, "slots", "verify", "system-b"); r.code != 1 || !strings.Contains(r.stderr, "content changed") {
			t.Fatalf("verify after tampering: %+v", r)
		}
		f.WriteAt(b, 5000)
		f.Close()
	})

	t.Run("signed", func(t *testing.T) {
		pki := filepath.Join(work, "pki")
		os.MkdirAll(pki, 0o755)
		root, signed := signBundle(t, pki, bundlePath)
		other, _ := signBundle(t, filepath.Join(work, "pki2"), bundlePath)
		r := bascule(t, nil, "update", "install", "--reboot", "no", "--root-cert", other, signed)
		if r.code != 1 || !strings.Contains(r.stderr, "bundle rejected: ") || !strings.Contains(r.stderr, "unknown authority") {
			t.Fatalf("wrong root: %+v", r)
		}
		r = bascule(t, nil, "update", "install", "--reboot", "no", "--root-cert", root, bundlePath)
		if r.code != 1 || !strings.Contains(r.stderr, "not signed") {
			t.Fatalf("unsigned with a root: %+v", r)
		}
		r = bascule(t, nil, "update", "install", "--reboot", "no", "--root-cert", root, signed)
		if r.code != 0 || autoboot() != autobootA {
			t.Fatalf("signed: %+v", r)
		}
	})

	t.Run("incremental", func(t *testing.T) {
		idir := filepath.Join(work, "inc")
		os.MkdirAll(filepath.Join(idir, "payloads"), 0o755)
		os.WriteFile(filepath.Join(idir, "payloads", "hello"), []byte("hello\n"), 0o644)
		out := filepath.Join(work, "inc.txt")
		os.WriteFile(filepath.Join(idir, "rugix-bundle.toml"), []byte(`update-type = "incremental"
[[payloads]]
filename = "hello"
delivery = { type = "execute", handler = ["/bin/sh", "-c", "cat > `+out+`; echo $RUGIX_BOOT_GROUP >> `+out+`"] }
`), 0o644)
		ih := buildBundle(t, idir, filepath.Join(work, "inc.rugixb"))
		r := bascule(t, nil, "update", "install", "--bundle-hash", ih, filepath.Join(work, "inc.rugixb"))
		got, _ := os.ReadFile(out)
		if r.code != 0 || string(got) != "hello\nb\n" || autoboot() != autobootA {
			t.Fatalf("incremental: %+v, handler wrote %q", r, got)
		}
	})

	t.Run("needs commit", func(t *testing.T) {
		// The bootloader's default is b while a runs (a failed try fell
		// back): installs are refused until a commit.
		writeAutoboot(t, autobootB)
		r := bascule(t, nil, "update", "install", "--reboot", "no", "--bundle-hash", hash, bundlePath)
		if r.code != 1 || !strings.Contains(r.stderr, "System needs to be committed") {
			t.Fatalf("%+v", r)
		}
		r = bascule(t, nil, "system", "commit")
		if r.code != 0 || autoboot() != autobootA {
			t.Fatalf("commit: %+v, autoboot %q", r, autoboot())
		}
		r = bascule(t, nil, "system", "commit")
		if r.code != 0 || !strings.Contains(r.stderr, "already the default") {
			t.Fatalf("second commit: %+v", r)
		}
	})

	t.Run("locked", func(t *testing.T) {
		f, err := os.OpenFile("/run/rugix/update-lock", os.O_CREATE|os.O_RDWR, 0o600)
		must(t, err)
		defer f.Close()
		must(t, unix.Flock(int(f.Fd()), unix.LOCK_EX))
		r := bascule(t, nil, "update", "install", "--reboot", "no", "--bundle-hash", hash, bundlePath)
		if r.code != 1 || !strings.Contains(r.stderr, "another update or commit is running") {
			t.Fatalf("%+v", r)
		}
		unix.Flock(int(f.Fd()), unix.LOCK_UN)
	})

	t.Run("wrong group", func(t *testing.T) {
		r := bascule(t, nil, "update", "install", "--reboot", "no", "--boot-group", "a", "--bundle-hash", hash, bundlePath)
		if r.code != 1 || !strings.Contains(r.stderr, "boot group a is the running one") {
			t.Fatalf("%+v", r)
		}
		r = bascule(t, nil, "update", "install", "--reboot", "no", "--boot-group", "c", "--bundle-hash", hash, bundlePath)
		if r.code != 1 || !strings.Contains(r.stderr, `"c"`) {
			t.Fatalf("%+v", r)
		}
	})

	t.Run("stdin and set", func(t *testing.T) {
		raw, _ := os.ReadFile(bundlePath)
		r := bascule(t, raw, "update", "install", "--reboot", "set", "--bundle-hash", hash, "-")
		if r.code != 0 || autoboot() != autobootB {
			t.Fatalf("%+v, autoboot %q", r, autoboot())
		}
		writeAutoboot(t, autobootA)
	})
}

func writeAutoboot(t *testing.T, s string) {
	t.Helper()
	must(t, unix.Mount("", "/run/rugix/mounts/config", "", unix.MS_REMOUNT, ""))
	must(t, os.WriteFile("/run/rugix/mounts/config/autoboot.txt", []byte(s), 0o644))
	must(t, unix.Mount("", "/run/rugix/mounts/config", "", unix.MS_REMOUNT|unix.MS_RDONLY, ""))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
