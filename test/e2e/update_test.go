//go:build e2e

package e2e

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestUpdates is the life of one device per bootloader: the first boot
// from the factory image, rejected bundles, A -> B and B -> A updates with
// a trial boot and a commit each, an update that never comes up, and a
// state reset.
func TestUpdates(t *testing.T) {
	for _, name := range []string{"uboot", "tryboot"} {
		t.Run(name, func(t *testing.T) {
			// One QEMU per board: two cores run both at once.
			t.Parallel()
			updates(t, boards[name])
		})
	}
}

func updates(t *testing.T, b *board) {
	d := newDevice(t, b, "updates-"+b.name)

	// Fresh image: the first boot grows the partition table (system-b,
	// data), mounts the data partition and boots group A.
	v := d.boot()
	si := d.check(state{"a", "a", "v1"})
	if v != "v1" {
		t.Fatalf("rcS reported %s", v)
	}
	if !d.vm.has("bootstrapping", 0) {
		t.Fatal("the first boot did not bootstrap")
	}
	// Which virtio disk is which depends on QEMU's transport order.
	if !regexp.MustCompile(`^/dev/vd[a-z]7$`).MatchString(si.State.DataPartition) {
		t.Fatalf("data partition %q, want partition 7 of the disk (made by the first boot)", si.State.DataPartition)
	}
	rootDisk := strings.TrimSuffix(si.State.DataPartition, "7")
	if out, rc := d.shRC("ls /run/rugix/mounts/config/.rugix/bootstrap", cmdTimeout); rc == 0 {
		t.Fatalf("bootstrap marker still there after the first boot: %s", out)
	}
	checkDev(t, d, rootDisk)
	measureGoStart(t, d)
	// A file in the persisted directory and one outside it.
	d.sh("echo kept >/var/lib/e2e/kept && echo lost >/etc/e2e-lost && sync")

	// Rejected bundles: nothing is armed, group A stays the default.
	d.mountBundles()
	for _, c := range []struct{ bundle, why string }{
		{"v2-unsigned.rugixb", "signature"},
		{"v2-bad-header.rugixb", ""},
		{"v2-bad-payload.rugixb", ""},
	} {
		out, rc := d.shRC("bascule update install /mnt/"+c.bundle+" >/tmp/out 2>&1; r=$?; cat /tmp/out; (exit $r)", installTimeout)
		if rc == 0 {
			t.Fatalf("%s was installed:\n%s", c.bundle, out)
		}
		if !strings.Contains(out, "bundle rejected") && !strings.Contains(out, c.why) {
			t.Fatalf("%s: rejected with an unexpected message:\n%s", c.bundle, out)
		}
		t.Logf("%s rejected: %s", c.bundle, lastLine(out))
		d.check(state{"a", "a", "v1"})
		if b.name == "uboot" {
			// Arming is boot_spare=1 on the config partition.
			if out := d.sh("cat /run/rugix/mounts/config/boot_spare.env | tr '\\0' '\\n'"); !strings.Contains(out, "boot_spare=0") {
				t.Fatalf("boot_spare.env after a rejected bundle: %q", out)
			}
		}
	}
	// The next boot is group A again: nothing was armed.
	d.reboot()
	d.boot()
	d.check(state{"a", "a", "v1"})
	checkState(t, d, true, false)
	d.sh("echo lost >/etc/e2e-lost && sync")

	// A -> B: trial boot, commit, B is the default.
	d.installAndRestart("v2.rugixb", "b")
	d.boot()
	si = d.check(state{"b", "a", "v2"})
	if len(si.Slots["system-b"].Hashes) == 0 {
		t.Fatal("no recorded hash for system-b after the install")
	}
	checkState(t, d, true, false)
	commit(t, d, "b")
	d.check(state{"b", "b", "v2"})
	d.reboot()
	d.boot()
	d.check(state{"b", "b", "v2"})

	// B -> A the same way.
	d.installAndRestart("v3.rugixb", "a")
	d.boot()
	d.check(state{"a", "b", "v3"})
	commit(t, d, "a")
	d.reboot()
	d.boot()
	d.check(state{"a", "a", "v3"})

	// An update whose init fails: the trial boot panics, the machine
	// resets, and the next boot is the committed group A.
	d.installAndRestart("bad-init.rugixb", "b")
	v2 := d.start()
	if _, _, err := v2.expect(regexp.MustCompile(`Kernel panic - not syncing`), 0, bootTimeout); err != nil {
		t.Fatalf("the bad trial boot did not panic: %v\n%s", err, v2.tail(30))
	}
	if d.fw != nil && (!d.lastBoot.Tryboot || d.lastBoot.Partition != 3) {
		t.Fatalf("the bad update was booted as %+v, want a trial of partition 3", *d.lastBoot)
	}
	if d.fw == nil && !v2.has("bascule: booting partition 3:", 0) {
		t.Fatalf("U-Boot did not boot partition 3 for the trial:\n%s", v2.tail(40))
	}
	d.watchdog()
	d.boot()
	d.check(state{"a", "a", "v3"})
	checkState(t, d, true, false)

	// State reset: the persisted file is gone after the reboot it does.
	if err := d.vm.send("bascule state reset"); err != nil {
		t.Fatal(err)
	}
	d.exited(bootTimeout)
	d.boot()
	d.check(state{"a", "a", "v3"})
	checkState(t, d, false, false)
}

// commit runs system commit and checks what it printed and changed.
func commit(t *testing.T, d *device, group string) {
	t.Helper()
	start := time.Now()
	out := d.sh("bascule system commit 2>&1")
	if !strings.Contains(out, "Committed boot group "+group) {
		t.Fatalf("system commit:\n%s", out)
	}
	d.committed = true
	stats.addInstall(d.b.name, "commit", time.Since(start))
}

// checkDev checks that /dev is populated under BusyBox init and that it is
// the devtmpfs pre-init mounted and carried into the new root, not one rcS
// mounted as a fallback: the mount table lists mounts in the order they
// were made, and pre-init mounted /dev before the overlay that is now /.
func checkDev(t *testing.T, d *device, rootDisk string) {
	t.Helper()
	d.sh("test -c /dev/null && test -b " + rootDisk + " && test -b " + rootDisk + "7 && test -c /dev/ttyAMA0")
	mounts := d.sh("cat /proc/mounts")
	devAt, rootAt := -1, -1
	for i, line := range strings.Split(mounts, "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		if f[1] == "/dev" && f[2] == "devtmpfs" && devAt < 0 {
			devAt = i
		}
		if f[1] == "/" && f[2] == "overlay" && rootAt < 0 {
			rootAt = i
		}
	}
	if devAt < 0 || rootAt < 0 || devAt > rootAt {
		t.Fatalf("/dev (line %d) is not the devtmpfs mounted before the overlay root (line %d):\n%s", devAt, rootAt, mounts)
	}
}

// measureGoStart times, in the guest, ten runs of `bascule version`
// against ten of BusyBox's `true` (both static binaries, warm page
// cache): the difference per run is what exec of the larger binary, the
// Go runtime's start and exit cost, the part of pre-init's time that
// bascule's own clock cannot see.
func measureGoStart(t *testing.T, d *device) {
	t.Helper()
	loop := func(cmd string) time.Duration {
		start := time.Now()
		d.sh("i=0; while [ $i -lt 10 ]; do " + cmd + " >/dev/null; i=$((i+1)); done")
		return time.Since(start)
	}
	loop("bascule version") // page the binary in
	bascule := loop("bascule version")
	true_ := loop("/bin/true")
	stats.addGoStart(d.b.name, (bascule-true_)/10, true_/10)
}

// checkState checks the persisted file and the one outside the persisted
// paths.
func checkState(t *testing.T, d *device, kept, lost bool) {
	t.Helper()
	for path, want := range map[string]bool{"/var/lib/e2e/kept": kept, "/etc/e2e-lost": lost} {
		_, rc := d.shRC("test -e "+path, cmdTimeout)
		if (rc == 0) != want {
			t.Fatalf("boot %d: %s exists: %v, want %v", d.boots, path, rc == 0, want)
		}
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
