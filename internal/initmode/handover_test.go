package initmode

import (
	"bufio"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/bascule-ota/bascule/internal/disk"
)

// TestHandOver runs pre-init for real up to the real init: MS_MOVE of
// /dev, /proc and /sys, pivot_root, post-init hook, exec. The "real init"
// is this test binary, installed as /sbin/init of the system partition;
// started with BASCULE_FAKE_INIT=1 it checks the new root and prints what
// it found. Everything happens in new PID and mount namespaces, where the
// test is PID 1, as pre-init is on a device.
func TestHandOver(t *testing.T) {
	wrapper := os.Getenv("BASCULE_TEST_EXEC_WRAPPER")
	if os.Getenv(childEnv) == t.Name() {
		handOverChild(t, wrapper)
		return
	}
	if os.Getuid() != 0 {
		t.Skip("needs root for loop devices, mounts and namespaces")
	}
	exe, err := os.Executable()
	must(t, err)
	if f, err := elf.Open(exe); err == nil {
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Skip("the test binary is linked dynamically and cannot run as init in the test root: build it with CGO_ENABLED=0")
			}
		}
		f.Close()
	}
	bin, err := os.ReadFile(exe)
	must(t, err)
	tree := map[string]string{"sbin/init": string(bin)}
	if wrapper != "" {
		// No binfmt_misc in the namespace: the wrapper runs the init.
		qemu, err := exec.LookPath(wrapper)
		must(t, err)
		b, err := os.ReadFile(qemu)
		must(t, err)
		tree["usr/bin/"+filepath.Base(wrapper)] = string(b)
	} else {
		tree["etc/rugix/hooks/boot/post-init/10-check"] = "symlink:/sbin/init"
	}
	for _, tool := range []string{"unshare", "losetup", "sfdisk", "mkfs.ext4", "partx"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s", tool)
		}
	}
	d := makeDisk(t, tree)
	out := runInNamespace(t, "BASCULE_TEST_LOOP="+d.loop, "BASCULE_TEST_WORK="+d.work)
	checkHandOver(t, out, wrapper != "")
}

// handOverChild is the PID 1 of the namespace. Run does not return when
// all goes well: the fake init replaces the process.
func handOverChild(t *testing.T, wrapper string) {
	d := &testDisk{loop: os.Getenv("BASCULE_TEST_LOOP"), work: os.Getenv("BASCULE_TEST_WORK")}
	d.mountRoot(t)
	fmt.Fprintf(os.Stderr, "pre-init as PID %d in %s\n", os.Getpid(), d.root)
	o := Options{
		Root:    d.root,
		Cmdline: "console=ttyS0 bascule.init=/sbin/init",
		Args:    []string{"arg1"},
		Env:     append(os.Environ(), "BASCULE_FAKE_INIT=1", "BASCULE_TEST_OLD_ROOT="+d.root),
		Log:     os.Stderr,
		Reboot:  func(bool) error { return errors.New("test: no reboots") },
	}
	if wrapper != "" {
		qemu := "/usr/bin/" + filepath.Base(wrapper)
		o.Exec = func(path string, argv, env []string) error {
			return syscall.Exec(qemu, append([]string{qemu, path}, argv[1:]...), env)
		}
	}
	err := Run(o)
	t.Fatalf("Run returned: %v", err)
}

// fakeInitResult is what the fake init found in the new root.
type fakeInitResult struct {
	PID           int      `json:"pid"`
	Args          []string `json:"args"`
	Cwd           string   `json:"cwd"`
	DevNull       bool     `json:"devNull"`
	LoopControl   bool     `json:"loopControl"`
	ProcSelf      string   `json:"procSelf"`
	SysClass      bool     `json:"sysClass"`
	SystemMounted bool     `json:"systemMounted"`
	StateMounted  bool     `json:"stateMounted"`
	RootFS        string   `json:"rootFS"`
	OldRootMounts []string `json:"oldRootMounts"`
	PostInit      string   `json:"postInit"`
	Path          string   `json:"path"`
}

const fakeInitTag = "FAKE-INIT-RESULT "

// fakeInit is the "real init" of TestHandOver, and its post-init hook
// (called as `<hook> boot post-init`).
func fakeInit() int {
	if len(os.Args) == 3 && os.Args[1] == "boot" && os.Args[2] == "post-init" {
		if err := os.WriteFile("/run/post-init-ran", []byte("RUGIX_REQUIRES_COMMIT="+os.Getenv("RUGIX_REQUIRES_COMMIT")), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "post-init hook:", err)
			return 1
		}
		return 0
	}
	r := fakeInitResult{PID: os.Getpid(), Args: os.Args[1:], Path: os.Getenv("PATH")}
	r.Cwd, _ = os.Getwd()
	if fi, err := os.Stat("/dev/null"); err == nil {
		r.DevNull = fi.Mode()&os.ModeCharDevice != 0
	}
	r.LoopControl = fileExists("/dev/loop-control")
	r.ProcSelf, _ = os.Readlink("/proc/self")
	if fi, err := os.Stat("/sys/class"); err == nil {
		r.SysClass = fi.IsDir()
	}
	r.SystemMounted, _ = disk.IsMountPoint("/run/rugix/mounts/system")
	r.StateMounted, _ = disk.IsMountPoint("/run/rugix/state")
	if b, err := os.ReadFile("/run/post-init-ran"); err == nil {
		r.PostInit = string(b)
	}
	old := os.Getenv("BASCULE_TEST_OLD_ROOT")
	if f, err := os.Open("/proc/self/mountinfo"); err == nil {
		s := bufio.NewScanner(f)
		for s.Scan() {
			// "36 35 98:0 / /mnt rw,noatime master:1 - ext3 /dev/root rw"
			fields := strings.Fields(s.Text())
			sep := -1
			for i, f := range fields {
				if f == "-" {
					sep = i
					break
				}
			}
			if len(fields) < 5 || sep < 0 || sep+1 >= len(fields) {
				continue
			}
			if fields[4] == "/" {
				r.RootFS = fields[sep+1]
			}
			if old != "" && strings.HasPrefix(fields[4], old) {
				r.OldRootMounts = append(r.OldRootMounts, fields[4])
			}
		}
		f.Close()
	}
	b, err := json.Marshal(r)
	if err != nil {
		fmt.Println(err)
		return 1
	}
	fmt.Println(fakeInitTag + string(b))
	return 0
}

func checkHandOver(t *testing.T, out string, qemu bool) {
	t.Helper()
	i := strings.Index(out, fakeInitTag)
	if i < 0 {
		t.Fatal("the fake init did not run")
	}
	line, _, _ := strings.Cut(out[i+len(fakeInitTag):], "\n")
	var r fakeInitResult
	if err := json.Unmarshal([]byte(line), &r); err != nil {
		t.Fatalf("%v: %s", err, line)
	}
	if r.PID != 1 || strings.Join(r.Args, " ") != "arg1" || r.Cwd != "/" || r.Path != Path {
		t.Errorf("init started as PID %d with %q in %s, PATH %s", r.PID, r.Args, r.Cwd, r.Path)
	}
	if !r.DevNull || !r.LoopControl {
		t.Errorf("/dev not carried over: null %v loop-control %v", r.DevNull, r.LoopControl)
	}
	if r.ProcSelf != "1" || !r.SysClass {
		t.Errorf("/proc or /sys not carried over: /proc/self -> %q, /sys/class %v", r.ProcSelf, r.SysClass)
	}
	if !r.SystemMounted || !r.StateMounted {
		t.Errorf("/run not carried over: system %v state %v", r.SystemMounted, r.StateMounted)
	}
	if r.RootFS != "overlay" || len(r.OldRootMounts) != 0 {
		t.Errorf("root is %q; old root mounts left: %q", r.RootFS, r.OldRootMounts)
	}
	if qemu {
		t.Log("post-init hook not checked: under qemu-user the ARM hook needs the wrapper, which hooks are not run through")
	} else if r.PostInit != "RUGIX_REQUIRES_COMMIT=false" {
		t.Errorf("post-init hook: %q", r.PostInit)
	}
	if d := took(out); d > 0 {
		t.Logf("pre-init up to the exec of the real init (PID 1 in a namespace, discard overlay, fsck included): %v", d)
	}
}
