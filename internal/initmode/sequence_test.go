package initmode

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bascule-ota/bascule/internal/bootflow"
	"github.com/bascule-ota/bascule/internal/state"
	"github.com/bascule-ota/bascule/internal/system"
)

// seqTree is the system partition of the sequence tests. Hooks and
// scripts run with the test's own /bin/sh: the hand-over is faked here.
var seqTree = map[string]string{
	"etc/hostname":                                  "image\n",
	"var/lib/app/seed.txt":                          "seed",
	"etc/rugix/hooks/boot/pre-init/10-record":       "#!/bin/sh\ntouch \"$RESULT_DIR/pre-init\"\n",
	"etc/rugix/hooks/boot/post-init/10-record":      "#!/bin/sh\necho \"$RUGIX_REQUIRES_COMMIT\" > \"$RESULT_DIR/post-init\"\n",
	"etc/rugix/hooks/state-reset/pre-reset/10-rec":  "#!/bin/sh\necho pre >> \"$RESULT_DIR/reset\"\n",
	"etc/rugix/hooks/state-reset/post-reset/10-rec": "#!/bin/sh\necho post >> \"$RESULT_DIR/reset\"\n",
	"usr/lib/test/mount-fail":                       "#!/bin/sh\necho 'no data for you' >&2\nexit 3\n",
	"usr/lib/test/mount-ok":                         "#!/bin/sh\necho \"$@\" > \"$RESULT_DIR/mount-args\"\nexec mount -o noatime \"$2\" \"$1\"\n",
}

// failingTry is a boot flow that cannot arm a try.
type failingTry struct{ bootflow.Flow }

func (failingTry) SetTryNext(string) error { return errors.New("test: cannot arm") }

func TestSequence(t *testing.T) {
	if !inNamespace(t) {
		return
	}
	d := newTestDisk(t, seqTree)
	results := filepath.Join(d.work, "results")
	var (
		dataDir      = filepath.Join(d.root, system.MountData)
		stateDir     = filepath.Join(d.root, state.Dir)
		configDir    = filepath.Join(d.root, system.MountConfig)
		dataRoot     = filepath.Join(dataDir, "overlay/root")
		memRoot      = filepath.Join(d.root, "run/rugix/overlay/root")
		markerPath   = filepath.Join(dataDir, state.DeferredRebootMarker)
		stateCfgPath = strings.TrimPrefix(state.ConfigPath, "/")
	)
	// boot runs pre-init on the disk after a "reboot" (everything the
	// previous boot mounted is detached); its mounts stay for inspection.
	boot := func(t *testing.T, mod func(*Options, *fakes)) (*fakes, error) {
		t.Helper()
		d.shutdown()
		os.RemoveAll(results)
		must(t, os.MkdirAll(results, 0o755))
		f := &fakes{execErr: map[string]error{}}
		o := d.options(f, results)
		if mod != nil {
			mod(&o, f)
		}
		err := Run(o)
		f.took = took(f.log.String())
		t.Logf("boot (Run returned %v):\n%s", err, f.log.String())
		return f, err
	}
	ok := func(t *testing.T, mod func(*Options, *fakes)) *fakes {
		t.Helper()
		f, err := boot(t, mod)
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		return f
	}
	result := func(name string) string {
		b, _ := os.ReadFile(filepath.Join(results, name))
		return string(b)
	}
	write := func(t *testing.T, p, content string) {
		t.Helper()
		must(t, os.MkdirAll(filepath.Dir(p), 0o755))
		must(t, os.WriteFile(p, []byte(content), 0o644))
	}

	t.Run("discard", func(t *testing.T) {
		f := ok(t, nil)
		if len(f.pivots) != 1 || f.pivots[0] != dataRoot {
			t.Fatalf("pivots %q, want %s", f.pivots, dataRoot)
		}
		if len(f.execs) != 1 || f.execs[0] != dataRoot+"/sbin/init" || strings.Join(f.argvs[0], " ") != "/sbin/init single" {
			t.Fatalf("execs %q %q", f.execs, f.argvs)
		}
		for _, m := range []string{"run", "run/rugix/mounts/config", "run/rugix/mounts/data", "run/rugix/mounts/system", "run/rugix/state"} {
			if !isMountPoint(t, filepath.Join(d.root, m)) {
				t.Errorf("%s is not a mount point", m)
			}
		}
		// /dev, /proc and /sys were moved into the new root, /run bound.
		for _, m := range []string{"proc", "sys", "dev"} {
			if isMountPoint(t, filepath.Join(d.root, m)) || !isMountPoint(t, filepath.Join(dataRoot, m)) {
				t.Errorf("/%s not moved", m)
			}
		}
		if fi, err := os.Stat(dataRoot + "/dev/null"); err != nil || fi.Mode()&os.ModeCharDevice == 0 {
			t.Errorf("/dev/null in the new root: %v", err)
		}
		if !fileExists(dataRoot+"/proc/self/mountinfo") || !fileExists(dataRoot+"/sys/class") {
			t.Error("/proc or /sys empty in the new root")
		}
		if !isMountPoint(t, dataRoot+"/run/rugix/mounts/system") {
			t.Error("/run not carried over")
		}
		if result("post-init") != "false\n" || !fileExists(filepath.Join(results, "pre-init")) {
			t.Errorf("hooks: post-init %q", result("post-init"))
		}
		id := readFile(t, dataRoot+"/etc/machine-id")
		if !validMachineID([]byte(id)) || readFile(t, stateDir+"/machine-id") != id {
			t.Fatalf("machine-id %q", id)
		}
		if err := os.WriteFile(configDir+"/x", nil, 0o644); !errors.Is(err, unix.EROFS) {
			t.Errorf("config partition writable: %v", err)
		}
		t.Logf("first boot: pre-init took %v", f.took)
		write(t, dataRoot+"/etc/scratch", "gone after a reboot")

		f = ok(t, nil)
		if fileExists(dataRoot + "/etc/scratch") {
			t.Error("discarded overlay kept a file")
		}
		if got := readFile(t, dataRoot+"/etc/machine-id"); got != id {
			t.Errorf("machine-id changed: %q, was %q", got, id)
		}
		t.Logf("second boot: pre-init took %v", f.took)
	})

	t.Run("persist", func(t *testing.T) {
		d.writeSystem(t, stateCfgPath, `overlay = "persist"`)
		ok(t, nil)
		write(t, dataRoot+"/etc/kept", "1")
		ok(t, nil)
		if !fileExists(dataRoot+"/etc/kept") || !fileExists(stateDir+"/overlay/a/etc/kept") {
			t.Fatal("persisted overlay lost a file")
		}
		d.writeSystem(t, stateCfgPath, "")
		ok(t, nil)
		if fileExists(dataRoot + "/etc/kept") {
			t.Fatal("back to discard: file kept")
		}
	})

	t.Run("force-persist", func(t *testing.T) {
		ok(t, nil)
		must(t, state.SetForcePersist(stateDir, true))
		write(t, dataRoot+"/etc/forced", "1")
		ok(t, nil)
		if !fileExists(dataRoot + "/etc/forced") {
			t.Fatal("force-persist did not keep the overlay")
		}
		must(t, state.SetForcePersist(stateDir, false))
		ok(t, nil)
		if fileExists(dataRoot + "/etc/forced") {
			t.Fatal("overlay kept after force-persist false")
		}
	})

	t.Run("in-memory", func(t *testing.T) {
		d.writeSystem(t, stateCfgPath, `overlay = "in-memory"`)
		defer d.writeSystem(t, stateCfgPath, "")
		f := ok(t, nil)
		if len(f.pivots) != 1 || f.pivots[0] != memRoot {
			t.Fatalf("pivots %q", f.pivots)
		}
		write(t, memRoot+"/etc/mem", "1")
		if !fileExists(filepath.Join(d.root, "run/rugix/overlay/upper/etc/mem")) || fileExists(stateDir+"/overlay/a/etc/mem") {
			t.Fatal("in-memory overlay not on /run")
		}
		ok(t, nil)
		if fileExists(memRoot + "/etc/mem") {
			t.Fatal("in-memory overlay survived a reboot")
		}
	})

	t.Run("disabled", func(t *testing.T) {
		d.writeSystem(t, stateCfgPath, `overlay = "disabled"`)
		defer d.writeSystem(t, stateCfgPath, "")
		f := ok(t, nil)
		if len(f.pivots) != 0 || len(f.execs) != 1 || f.execs[0] != d.root+"/sbin/init" {
			t.Fatalf("pivots %q execs %q", f.pivots, f.execs)
		}
		if fileExists(filepath.Join(d.root, system.MountSystem)) || !isMountPoint(t, stateDir) || !isMountPoint(t, d.root+"/proc") {
			t.Fatal("wrong mounts without overlay")
		}
	})

	t.Run("persist directives", func(t *testing.T) {
		d.writeSystem(t, stateCfgPath, "[[persist]]\ndirectory = \"/var/lib/app\"\n[[persist]]\nfile = \"/etc/hostname\"\n")
		d.writeSystem(t, "etc/rugix/state/10-more.toml", "[[persist]]\nfile = \"/etc/app.conf\"\ndefault = \"x=1\\n\"\n[[persist]]\ndirectory = \"/srv/new\"\n")
		ok(t, nil)
		if readFile(t, dataRoot+"/var/lib/app/seed.txt") != "seed" || readFile(t, stateDir+"/persist/var/lib/app/seed.txt") != "seed" {
			t.Fatal("directory not copied from the system")
		}
		if readFile(t, dataRoot+"/etc/app.conf") != "x=1\n" || readFile(t, dataRoot+"/etc/hostname") != "image\n" {
			t.Fatal("file defaults")
		}
		for _, m := range []string{"/var/lib/app", "/etc/hostname", "/etc/app.conf", "/srv/new"} {
			if !isMountPoint(t, dataRoot+m) {
				t.Errorf("%s not bound", m)
			}
		}
		write(t, dataRoot+"/var/lib/app/new.txt", "n")
		write(t, dataRoot+"/etc/hostname", "changed\n")
		write(t, dataRoot+"/etc/app.conf", "x=2\n")
		write(t, dataRoot+"/srv/new/f", "f")
		write(t, dataRoot+"/etc/not-persisted", "1")
		ok(t, nil)
		if readFile(t, dataRoot+"/var/lib/app/new.txt") != "n" || readFile(t, dataRoot+"/etc/hostname") != "changed\n" ||
			readFile(t, dataRoot+"/etc/app.conf") != "x=2\n" || readFile(t, dataRoot+"/srv/new/f") != "f" {
			t.Fatal("persisted content lost")
		}
		if fileExists(dataRoot + "/etc/not-persisted") {
			t.Fatal("overlay kept")
		}
	})

	t.Run("persist type mismatch", func(t *testing.T) {
		d.writeSystem(t, "etc/rugix/state/20-bad.toml", "[[persist]]\nfile = \"/var/lib\"\n")
		defer d.writeSystem(t, "etc/rugix/state/20-bad.toml", "")
		f := ok(t, nil)
		// A committed system boots on, read-only.
		if len(f.pivots) != 0 || len(f.execs) != 1 || f.execs[0] != d.root+"/sbin/init" || len(f.reboots) != 0 {
			t.Fatalf("pivots %q execs %q reboots %v", f.pivots, f.execs, f.reboots)
		}
		if !strings.Contains(f.log.String(), "error: pre-init failed: persist /var/lib") {
			t.Fatal("failure not reported")
		}
		if result("post-init") != "false\n" {
			t.Fatal("post-init hooks did not run")
		}
	})

	t.Run("reset", func(t *testing.T) {
		ok(t, nil)
		write(t, dataRoot+"/var/lib/app/x", "x")
		id := readFile(t, stateDir+"/machine-id")
		must(t, state.RequestReset(stateDir, ""))
		ok(t, nil)
		if fileExists(dataRoot+"/var/lib/app/x") || readFile(t, dataRoot+"/var/lib/app/seed.txt") != "seed" {
			t.Fatal("state not reset")
		}
		if readFile(t, stateDir+"/machine-id") == id || result("reset") != "pre\npost\n" {
			t.Fatalf("machine-id kept or hooks %q", result("reset"))
		}
		if entries, _ := os.ReadDir(dataDir + "/state"); len(entries) != 1 {
			t.Fatalf("profiles %v", entries)
		}

		write(t, dataRoot+"/var/lib/app/y", "y")
		must(t, state.RequestReset(stateDir, "saved"))
		ok(t, nil)
		saved := dataDir + "/state/saved"
		if readFile(t, saved+"/persist/var/lib/app/y") != "y" || fileExists(saved+"/"+state.ResetFlag) {
			t.Fatal("backup profile")
		}
		if fileExists(dataRoot+"/var/lib/app/y") || fileExists(stateDir+"/"+state.ResetFlag) {
			t.Fatal("state not reset")
		}
		d.writeSystem(t, stateCfgPath, "")
		d.writeSystem(t, "etc/rugix/state/10-more.toml", "")
	})

	t.Run("deferred reboot", func(t *testing.T) {
		ok(t, nil)
		must(t, state.WriteDeferredReboot(dataDir, "b"))
		f, err := boot(t, nil)
		if !errors.Is(err, ErrRebooted) || len(f.reboots) != 1 || !f.reboots[0] || len(f.execs) != 0 {
			t.Fatalf("%v reboots %v execs %q", err, f.reboots, f.execs)
		}
		if fileExists(markerPath) {
			t.Fatal("marker kept after the reboot")
		}

		// The empty marker of Rugix 0.8 means the spare group.
		must(t, os.WriteFile(markerPath, nil, 0o644))
		if f, err := boot(t, nil); !errors.Is(err, ErrRebooted) || len(f.reboots) != 1 || !f.reboots[0] || fileExists(markerPath) {
			t.Fatalf("legacy marker: %v %v", err, f.reboots)
		}

		// Not while a commit is pending: the marker waits.
		must(t, state.WriteDeferredReboot(dataDir, "b"))
		d.writeConfig(t, "autoboot.txt", autobootB)
		f = ok(t, nil)
		if len(f.reboots) != 0 || !fileExists(markerPath) || result("post-init") != "true\n" {
			t.Fatalf("pending commit: reboots %v, marker %v, post-init %q", f.reboots, fileExists(markerPath), result("post-init"))
		}
		d.writeConfig(t, "autoboot.txt", autobootA)

		// A try that cannot be armed keeps the marker; the boot goes on.
		f = ok(t, func(o *Options, _ *fakes) {
			o.BootFlow = func(sys *system.System, dir string) (bootflow.Flow, error) {
				fl, err := bootflow.New("", bootflow.Env{ConfigDir: dir, Groups: []string{"a", "b"}})
				return failingTry{fl}, err
			}
		})
		if len(f.reboots) != 0 || !fileExists(markerPath) || len(f.execs) != 1 {
			t.Fatalf("failing arm: reboots %v marker %v", f.reboots, fileExists(markerPath))
		}

		// A marker naming the default group is dropped.
		must(t, state.WriteDeferredReboot(dataDir, "a"))
		if f := ok(t, nil); len(f.reboots) != 0 || fileExists(markerPath) {
			t.Fatalf("default group: reboots %v marker %v", f.reboots, fileExists(markerPath))
		}
	})

	t.Run("data mount failure", func(t *testing.T) {
		d.writeSystem(t, "etc/rugix/system.toml", "[data-partition]\nmount-script = \"/usr/lib/test/mount-fail\"\n")
		defer d.writeSystem(t, "etc/rugix/system.toml", "")
		f := ok(t, nil)
		if isMountPoint(t, dataDir) || !isMountPoint(t, stateDir) || len(f.pivots) != 1 || f.pivots[0] != dataRoot {
			t.Fatalf("ephemeral state: pivots %q", f.pivots)
		}
		if log := readFile(t, dataDir+"/"+DataMountErrorLog); !strings.Contains(log, "no data for you") {
			t.Fatalf("error log %q", log)
		}
		// Disabled: state in memory, and no error.
		d.writeSystem(t, "etc/rugix/system.toml", "[data-partition]\ndisabled = true\n")
		ok(t, nil)
		if isMountPoint(t, dataDir) || fileExists(dataDir+"/"+DataMountErrorLog) || !isMountPoint(t, stateDir) {
			t.Fatal("disabled data partition")
		}
		// A working script gets the mount point and the device.
		d.writeSystem(t, "etc/rugix/system.toml", "[data-partition]\nmount-script = \"/usr/lib/test/mount-ok\"\n")
		ok(t, nil)
		if !isMountPoint(t, dataDir) || result("mount-args") != dataDir+" "+d.part(7)+"\n" {
			t.Fatalf("mount script args %q", result("mount-args"))
		}
	})

	t.Run("fail-on-mount-error", func(t *testing.T) {
		d.writeSystem(t, "etc/rugix/system.toml", "[data-partition]\nmount-script = \"/usr/lib/test/mount-fail\"\nfail-on-mount-error = true\n")
		defer d.writeSystem(t, "etc/rugix/system.toml", "")
		f := ok(t, nil)
		if len(f.pivots) != 0 || len(f.execs) != 1 || f.execs[0] != d.root+"/sbin/init" || len(f.reboots) != 0 || len(f.shells) != 0 {
			t.Fatalf("committed: pivots %q execs %q reboots %v", f.pivots, f.execs, f.reboots)
		}
		if !strings.Contains(f.log.String(), "no data for you") || fileExists(dataDir+"/"+DataMountErrorLog) {
			t.Fatal("failure")
		}
		f = ok(t, func(o *Options, _ *fakes) { o.Cmdline += " bascule.init.error-shell=/bin/sh" })
		if len(f.shells) != 1 || f.shells[0] != d.root+"/bin/sh" || len(f.execs) != 1 {
			t.Fatalf("error shell %q execs %q", f.shells, f.execs)
		}
		// On trial, reboot: the bootloader goes back to the default.
		d.writeConfig(t, "autoboot.txt", autobootB)
		defer d.writeConfig(t, "autoboot.txt", autobootA)
		f, err := boot(t, nil)
		if !errors.Is(err, ErrRebooted) || len(f.reboots) != 1 || f.reboots[0] || len(f.execs) != 0 {
			t.Fatalf("trial: %v reboots %v execs %q", err, f.reboots, f.execs)
		}
	})

	t.Run("invalid system.toml", func(t *testing.T) {
		d.writeSystem(t, "etc/rugix/system.toml", "[boot-flow]\ntype = \"nope\"\n")
		defer d.writeSystem(t, "etc/rugix/system.toml", "")
		f := ok(t, nil)
		if len(f.pivots) != 0 || len(f.execs) != 1 || f.execs[0] != d.root+"/sbin/init" || !strings.Contains(f.log.String(), `unknown boot flow "nope"`) {
			t.Fatalf("pivots %q execs %q", f.pivots, f.execs)
		}
	})

	t.Run("init option and fallback", func(t *testing.T) {
		f := ok(t, func(o *Options, f *fakes) {
			o.Cmdline = "bascule.init=/sbin/other"
			o.Args = nil
			f.execErr[dataRoot+"/sbin/other"] = unix.ENOENT
		})
		if strings.Join(f.execs, " ") != dataRoot+"/sbin/other "+dataRoot+"/sbin/init" || len(f.argvs[1]) != 1 || f.argvs[1][0] != "/sbin/init" {
			t.Fatalf("execs %q argvs %q", f.execs, f.argvs)
		}
	})

	t.Run("bootstrap", func(t *testing.T) {
		for _, marker := range []string{".rugix/bootstrap", "rugix/bootstrap"} {
			d.writeConfig(t, marker, "")
			f := ok(t, nil)
			d.shutdown()
			d.onPartition(t, 1, func(dir string) { must(t, os.Remove(filepath.Join(dir, marker))) })
			if len(f.bootstraps) != 1 || f.bootstraps[0] != configDir {
				t.Fatalf("%s: bootstraps %q", marker, f.bootstraps)
			}
		}
		if f := ok(t, nil); len(f.bootstraps) != 0 {
			t.Fatal("bootstrap without marker")
		}
	})

	t.Run("data wipe", func(t *testing.T) {
		ok(t, nil)
		write(t, stateDir+"/app/db", "precious")
		must(t, state.WriteDeferredReboot(dataDir, "a"))
		d.writeConfig(t, state.WipeDataMarker, "")
		ok(t, nil)
		if fileExists(stateDir+"/app/db") || fileExists(markerPath) || fileExists(dataDir+"/"+wipeTrash) {
			t.Fatal("data not wiped")
		}
		if state.DataWipeRequested(configDir) {
			t.Fatal("wipe marker kept")
		}
		if err := os.WriteFile(configDir+"/x", nil, 0o644); !errors.Is(err, unix.EROFS) {
			t.Errorf("config partition left writable: %v", err)
		}
	})

	t.Run("quiet", func(t *testing.T) {
		f := ok(t, func(o *Options, _ *fakes) { o.Cmdline = "rugix.init.quiet" })
		if f.log.Len() != 0 || len(f.execs) != 1 {
			t.Fatalf("quiet boot printed %q", f.log.String())
		}
	})

	t.Run("timing", func(t *testing.T) {
		var total time.Duration
		const n = 5
		for i := 0; i < n; i++ {
			f := ok(t, nil)
			total += f.took
		}
		t.Logf("pre-init up to the exec, discard overlay, fsck included: %v on average over %d boots", total/n, n)
	})
}
