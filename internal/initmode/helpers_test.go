package initmode

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bascule-ota/bascule/internal/disk"
)

// Tests that mount run in their own PID and mount namespaces: the test
// binary re-executes itself under `unshare --pid --fork --mount
// --propagation private`, so that no mount reaches the host and a reboot(2)
// by mistake would only end the namespace. The disk is a loop device with
// the default MBR layout (config 1, boot 2/3, system 5/6, data 7); the
// config partition is ext4 because the test kernel has no vfat.

func TestMain(m *testing.M) {
	if os.Getenv("BASCULE_FAKE_INIT") == "1" {
		os.Exit(fakeInit())
	}
	os.Exit(m.Run())
}

const childEnv = "BASCULE_INITMODE_CHILD"

// inNamespace reports whether the test runs in its namespaces already;
// if not, it runs it there and reports the outcome.
func inNamespace(t *testing.T, extraEnv ...string) bool {
	t.Helper()
	if os.Getenv(childEnv) == t.Name() {
		return true
	}
	if os.Getuid() != 0 {
		t.Skip("needs root for loop devices, mounts and namespaces")
	}
	for _, tool := range []string{"unshare", "losetup", "sfdisk", "mkfs.ext4", "partx"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s", tool)
		}
	}
	out := runInNamespace(t, extraEnv...)
	if strings.Contains(out, "--- SKIP") && !strings.Contains(out, "--- PASS") {
		t.Skip("skipped in the namespace")
	}
	return false
}

// runInNamespace runs the test again in new PID and mount namespaces with
// env added and returns its output.
func runInNamespace(t *testing.T, env ...string) string {
	t.Helper()
	exe, _ := os.Executable()
	args := []string{"--pid", "--fork", "--mount", "--propagation", "private"}
	if w := os.Getenv("BASCULE_TEST_EXEC_WRAPPER"); w != "" {
		args = append(args, w)
	}
	args = append(args, exe, "-test.run=^"+t.Name()+"$", "-test.v", "-test.count=1")
	if testing.Short() {
		args = append(args, "-test.short")
	}
	cmd := exec.Command("unshare", args...)
	cmd.Env = append(append(os.Environ(), childEnv+"="+t.Name()), env...)
	out, err := cmd.CombinedOutput()
	t.Logf("in new PID and mount namespaces:\n%s", out)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return string(out)
}

func sh(t *testing.T, script string) string {
	t.Helper()
	out, err := exec.Command("sh", "-euc", script).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", script, err, out)
	}
	return strings.TrimSpace(string(out))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// testDisk is a loop device with a system, config and data partition,
// and the system partition mounted read-only as the root pre-init runs in.
type testDisk struct {
	loop string
	root string // system-a, mounted read-only: Options.Root
	work string
}

func (d *testDisk) part(n int) string { return fmt.Sprintf("%sp%d", d.loop, n) }

// newTestDisk makes the disk and mounts its system partition as the
// root; tree is the content of the system partition, in addition to the
// directories every root has.
func newTestDisk(t *testing.T, tree map[string]string) *testDisk {
	t.Helper()
	d := makeDisk(t, tree)
	d.mountRoot(t)
	return d
}

// makeDisk makes the disk image, its loop device and file systems. A
// value "symlink:<target>" in tree makes a symbolic link.
func makeDisk(t *testing.T, tree map[string]string) *testDisk {
	t.Helper()
	d := &testDisk{work: t.TempDir()}
	img := filepath.Join(d.work, "disk.img")
	sh(t, fmt.Sprintf(`truncate -s 200M %s
sfdisk -q %s <<EOF
label: dos
label-id: 0x0b0c0d0e
size=8MiB, type=c
size=4MiB, type=c
size=4MiB, type=c
type=5
size=96MiB, type=83
size=8MiB, type=83
type=83
EOF`, img, img))
	d.loop = sh(t, "losetup -f --show "+img)
	t.Cleanup(func() {
		d.shutdown()
		if d.root != "" {
			unix.Unmount(d.root, unix.MNT_DETACH)
		}
		exec.Command("partx", "-d", d.loop).Run()
		exec.Command("losetup", "-d", d.loop).Run()
	})
	sh(t, "partx -a "+d.loop)
	sysTree := filepath.Join(d.work, "system")
	for _, dir := range []string{"proc", "sys", "dev", "run", "etc/rugix", "sbin", "tmp"} {
		must(t, os.MkdirAll(filepath.Join(sysTree, dir), 0o755))
	}
	for name, content := range tree {
		p := filepath.Join(sysTree, name)
		must(t, os.MkdirAll(filepath.Dir(p), 0o755))
		if target, ok := strings.CutPrefix(content, "symlink:"); ok {
			must(t, os.Symlink(target, p))
			continue
		}
		mode := os.FileMode(0o644)
		if strings.HasPrefix(content, "#!") || strings.HasPrefix(content, "\x7fELF") {
			mode = 0o755
		}
		must(t, os.WriteFile(p, []byte(content), mode))
	}
	sh(t, fmt.Sprintf("mkfs.ext4 -q -F -d %s %s && mkfs.ext4 -q -F %s && mkfs.ext4 -q -F %s",
		sysTree, d.part(5), d.part(1), d.part(7)))
	d.writeConfig(t, "autoboot.txt", autobootA)
	return d
}

// mountRoot mounts the system partition read-only, as the kernel does.
func (d *testDisk) mountRoot(t *testing.T) {
	t.Helper()
	d.root = filepath.Join(d.work, "root")
	must(t, os.MkdirAll(d.root, 0o755))
	must(t, unix.Mount(d.part(5), d.root, "ext4", unix.MS_RDONLY, ""))
}

const (
	autobootA = "[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3"
	autobootB = "[all]\ntryboot_a_b=1\nboot_partition=3\n[tryboot]\nboot_partition=2"
)

// shutdown detaches everything a boot mounted below the root, as a
// reboot would.
func (d *testDisk) shutdown() {
	if d.root == "" {
		return
	}
	for _, m := range []string{"run", "proc", "sys", "dev"} {
		unix.Unmount(filepath.Join(d.root, m), unix.MNT_DETACH)
	}
}

// onPartition runs fn with partition n mounted read-write.
func (d *testDisk) onPartition(t *testing.T, n int, fn func(dir string)) {
	t.Helper()
	d.shutdown() // a boot's read-only mount would make a read-write one fail
	dir, err := os.MkdirTemp(d.work, "mnt")
	must(t, err)
	must(t, unix.Mount(d.part(n), dir, "ext4", 0, ""))
	defer func() {
		must(t, unix.Unmount(dir, 0))
		os.Remove(dir)
	}()
	fn(dir)
}

func (d *testDisk) writeConfig(t *testing.T, name, content string) {
	t.Helper()
	d.onPartition(t, 1, func(dir string) {
		must(t, os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755))
		must(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644))
	})
}

// writeSystem changes a file of the system between boots.
func (d *testDisk) writeSystem(t *testing.T, name, content string) {
	t.Helper()
	must(t, unix.Mount("", d.root, "", unix.MS_REMOUNT, ""))
	defer func() { must(t, unix.Mount("", d.root, "", unix.MS_REMOUNT|unix.MS_RDONLY, "")) }()
	p := filepath.Join(d.root, name)
	if content == "" {
		os.Remove(p)
		return
	}
	must(t, os.MkdirAll(filepath.Dir(p), 0o755))
	must(t, os.WriteFile(p, []byte(content), 0o755))
}

// clearData empties the data partition between boots.
func (d *testDisk) clearData(t *testing.T) {
	t.Helper()
	d.onPartition(t, 7, func(dir string) {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if e.Name() != "lost+found" {
				must(t, os.RemoveAll(filepath.Join(dir, e.Name())))
			}
		}
	})
}

// fakes records what Run asked of the machine.
type fakes struct {
	log        bytes.Buffer
	reboots    []bool
	pivots     []string
	execs      []string
	argvs      [][]string
	shells     []string
	bootstraps []string
	execErr    map[string]error
	took       time.Duration
}

func (d *testDisk) options(f *fakes, resultDir string) Options {
	return Options{
		Root:    d.root,
		Cmdline: "console=ttyS0 root=/dev/mmcblk0p5 init=/usr/bin/bascule ro",
		Args:    []string{"single"},
		Env:     append(os.Environ(), "RESULT_DIR="+resultDir),
		Log:     &f.log,
		Reboot: func(tryNext bool) error {
			f.reboots = append(f.reboots, tryNext)
			return nil
		},
		PivotRoot: func(newRoot string) (string, error) {
			f.pivots = append(f.pivots, newRoot)
			return newRoot, nil
		},
		Exec: func(path string, argv, env []string) error {
			f.execs = append(f.execs, path)
			f.argvs = append(f.argvs, argv)
			return f.execErr[path]
		},
		Shell: func(path string, env []string) error {
			f.shells = append(f.shells, path)
			return nil
		},
		Bootstrap: func(configDir string) error {
			f.bootstraps = append(f.bootstraps, configDir)
			return nil
		},
	}
}

var doneIn = regexp.MustCompile(`pre-init done in (\S+)(?: \(fsck \S+\))?;`)

// took parses the duration Run reports before the exec.
func took(log string) time.Duration {
	m := doneIn.FindStringSubmatch(log)
	if m == nil {
		return 0
	}
	d, _ := time.ParseDuration(m[1])
	return d
}

func isMountPoint(t *testing.T, p string) bool {
	t.Helper()
	ok, err := disk.IsMountPoint(p)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func fileExists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}
