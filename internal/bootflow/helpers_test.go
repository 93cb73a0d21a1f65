package bootflow

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bascule-ota/bascule/internal/atomicfile"
)

// rebootCall is what a flow asked reboot(2) for.
type rebootCall struct {
	cmd uint32
	arg string
}

// testEnv is an Env on a plain directory whose Remount only records the
// state, plus the reboots asked for. Every write through atomicfile or
// writeAt while the "partition" is read-only fails the test.
type testEnv struct {
	Env
	t       *testing.T
	rw      bool
	remount int // number of rw remounts
	reboots []rebootCall

	steps int // atomicfile steps and in-place writes seen
	cutAt int // cut the power at this step; -1: never
	tear  int // bytes an in-place write gets out before the cut

	bootloader bool // a simulated bootloader is writing: no rw check
}

func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	te := &testEnv{t: t, cutAt: -1}
	te.Env = Env{
		ConfigDir:  t.TempDir(),
		Groups:     []string{"a", "b"},
		DeviceTree: filepath.Join(t.TempDir(), "device-tree"),
		Vcio:       filepath.Join(t.TempDir(), "no-vcio"),
		Remount: func(rw bool) error {
			if rw == te.rw {
				t.Errorf("remount rw=%v twice", rw)
			}
			te.rw = rw
			if rw {
				te.remount++
			}
			return nil
		},
		RebootFn: func(cmd uint32, arg string) error {
			te.reboots = append(te.reboots, rebootCall{cmd, arg})
			return nil
		},
	}
	t.Cleanup(atomicfile.SetCrashHook(func(path, step string) bool {
		if !te.rw && !te.bootloader && isUnder(te.ConfigDir, path) {
			t.Errorf("%s: step %s while the config partition is read-only", path, step)
		}
		te.steps++
		return te.steps-1 == te.cutAt
	}))
	realWriteAt := writeAt
	writeAt = func(path string, off int64, b []byte) error {
		if !te.rw && !te.bootloader && isUnder(te.ConfigDir, path) {
			t.Errorf("%s: in-place write while the config partition is read-only", path)
		}
		te.steps++
		if te.steps-1 == te.cutAt {
			if err := realWriteAt(path, off, b[:min(te.tear, len(b))]); err != nil {
				return err
			}
			return atomicfile.ErrCrashed
		}
		return realWriteAt(path, off, b)
	}
	t.Cleanup(func() { writeAt = realWriteAt })
	return te
}

// cuts runs op once for every step it takes, restoring the state with
// setup before each run and cutting the power at that step, then calls
// check. It returns the number of steps op takes without a cut.
func (te *testEnv) cuts(setup func(), op func() error, check func(step int)) int {
	te.t.Helper()
	for n := 0; ; n++ {
		setup()
		te.steps, te.cutAt = 0, n
		err := op()
		te.cutAt = -1
		if err == nil {
			if te.steps != n {
				te.t.Fatalf("op took %d steps without reaching cut %d", te.steps, n)
			}
			return n
		}
		if te.steps <= n {
			te.t.Fatalf("cut %d: op failed before: %v", n, err)
		}
		check(n)
	}
}

func isUnder(dir, path string) bool { return strings.HasPrefix(path, dir+"/") }

func (te *testEnv) flow(kind string) Flow {
	te.t.Helper()
	f, err := New(kind, te.Env)
	if err != nil {
		te.t.Fatal(err)
	}
	return f
}

func (te *testEnv) path(name string) string { return filepath.Join(te.ConfigDir, name) }

func (te *testEnv) read(name string) []byte {
	te.t.Helper()
	b, err := os.ReadFile(te.path(name))
	if err != nil {
		te.t.Fatal(err)
	}
	return b
}

func (te *testEnv) write(name string, data []byte) {
	te.t.Helper()
	if err := os.MkdirAll(filepath.Dir(te.path(name)), 0o755); err != nil {
		te.t.Fatal(err)
	}
	if err := os.WriteFile(te.path(name), data, 0o644); err != nil {
		te.t.Fatal(err)
	}
}

func mustDefault(t *testing.T, f Flow, want string) {
	t.Helper()
	got, err := f.Default()
	if err != nil {
		t.Fatalf("Default: %v", err)
	}
	if got != want {
		t.Fatalf("Default = %q, want %q", got, want)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// needTool skips the test when an external tool is missing; CI installs
// them (u-boot-tools, grub-common).
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not installed (apt-get install u-boot-tools grub-common)", name)
	}
	return p
}
