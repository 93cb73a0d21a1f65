//go:build e2e

package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/bascule-ota/bascule/test/e2e/fw"
)

// Time limits under TCG on a loaded 2-core machine: generous, since a
// timeout is a failure, but bounded so that a hang fails the suite.
const (
	bootTimeout    = 150 * time.Second
	installTimeout = 300 * time.Second
	cmdTimeout     = 60 * time.Second
)

// qemuMachine is the emulated machine; the device tree dumped for the
// tryboot firmware must come from exactly these options.
var qemuMachine = machine()

// machine is QEMU's virt board with the Pi 4's Cortex-A72 under TCG, or
// the host's own CPU under KVM when the host is arm64 and /dev/kvm can be
// opened (KVM cannot run an aarch64 guest on an x86-64 host).
func machine() []string {
	m := []string{"-M", "virt", "-cpu", "cortex-a72", "-m", "512", "-nic", "none"}
	if runtime.GOARCH != "arm64" {
		return m
	}
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return m
	}
	f.Close()
	return []string{"-M", "virt", "-accel", "kvm", "-cpu", "host", "-m", "512", "-nic", "none"}
}

// manifest is build.sh's manifest.env.
type manifest map[string]string

func loadManifest(path string) (manifest, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m := manifest{}
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := strings.TrimSpace(s.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("%s: %q is not KEY=value", path, line)
		}
		m[k] = v
	}
	return m, s.Err()
}

// board is one of build.sh's boards with what the harness copied of it.
type board struct {
	name     string // "uboot" or "tryboot"
	flow     string // the boot flow system info must report
	sdcard   string
	ubootBin string
	bundles  string // ext4 image with the bundles, attached read-only
}

// device is one emulated device: a copy of the factory image, the
// firmware state (tryboot board) and the current QEMU run.
type device struct {
	t      *testing.T
	b      *board
	dir    string
	disk   string
	fw     *fw.Firmware
	dtb    string
	vm     *vm
	boots  int
	logDir string
	// lastBoot is what the firmware model decided for the current boot.
	lastBoot *fw.Boot
	// committed: system commit ran in the current boot, so a trial boot
	// (firmware tryboot flag) may now run the default group.
	committed bool
}

// newDevice makes a device from the board's factory image.
func newDevice(t *testing.T, b *board, name string) *device {
	t.Helper()
	dir := t.TempDir()
	d := &device{t: t, b: b, dir: dir, disk: filepath.Join(dir, "sdcard.img"), logDir: filepath.Join(logRoot, name)}
	if err := os.MkdirAll(d.logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "--sparse=always", b.sdcard, d.disk).CombinedOutput(); err != nil {
		t.Fatalf("copy %s: %v: %s", b.sdcard, err, out)
	}
	if b.name == "tryboot" {
		d.fw = fw.New()
		if !trybootStartFile {
			// See TestMain: images without start4.elf.
			d.fw.StartFile = ""
		}
		d.dtb = filepath.Join(dir, "virt.dtb")
		args := append([]string{"-M", "virt,dumpdtb=" + d.dtb}, qemuMachine[2:]...)
		args = append(args, "-display", "none")
		if out, err := exec.Command("qemu-system-aarch64", args...).CombinedOutput(); err != nil {
			t.Fatalf("dump the device tree: %v: %s", err, out)
		}
	}
	t.Cleanup(func() {
		if d.vm != nil {
			d.vm.kill()
		}
	})
	return d
}

// qemuArgs is the command line of the next boot.
func (d *device) qemuArgs() ([]string, error) {
	args := append([]string{}, qemuMachine...)
	args = append(args, "-display", "none", "-serial", "stdio", "-monitor", "none", "-no-reboot",
		// The bundle disk comes first: QEMU puts the last virtio device on
		// the first virtio-mmio transport, which U-Boot's distro boot
		// scans (virtio 0) for boot.scr. Linux finds the root by PARTUUID.
		"-drive", "file="+d.b.bundles+",if=none,format=raw,id=hd1,readonly=on", "-device", "virtio-blk-device,drive=hd1",
		// Default cache mode: QEMU's writes reach the host page cache and
		// survive SIGKILL; the guest's own unflushed writes do not.
		"-drive", "file="+d.disk+",if=none,format=raw,id=hd0", "-device", "virtio-blk-device,drive=hd0")
	switch d.b.name {
	case "uboot":
		d.lastBoot = nil
		return append(args, "-bios", d.b.ubootBin), nil
	case "tryboot":
		bootDir := filepath.Join(d.dir, "boot")
		if err := os.MkdirAll(bootDir, 0o755); err != nil {
			return nil, err
		}
		plan, err := d.fw.Boot(d.disk, bootDir)
		if err != nil {
			return nil, fmt.Errorf("firmware: %w", err)
		}
		d.lastBoot = plan
		dtb := filepath.Join(d.dir, "boot.dtb")
		if err := fw.DeviceTree(d.dtb, dtb, plan); err != nil {
			return nil, err
		}
		args = append(args, "-kernel", plan.Kernel, "-append", plan.Cmdline, "-dtb", dtb)
		if plan.Initramfs != "" {
			args = append(args, "-initrd", plan.Initramfs)
		}
		return args, nil
	}
	return nil, fmt.Errorf("unknown board %s", d.b.name)
}

// start powers the device on.
func (d *device) start() *vm {
	d.t.Helper()
	if d.vm != nil && !d.vm.hasExited() {
		d.t.Fatal("start: the device is still running")
	}
	args, err := d.qemuArgs()
	if err != nil {
		d.t.Fatal(err)
	}
	d.boots++
	d.committed = false
	v, err := startVM(args, filepath.Join(d.logDir, fmt.Sprintf("boot-%02d.log", d.boots)))
	if err != nil {
		d.t.Fatal(err)
	}
	d.vm = v
	return v
}

var rcsLine = regexp.MustCompile(`e2e: rcS reached, version (\S+)\r?\n`)

// bootTimes are the host times of one boot, from QEMU's start.
type bootTimes struct {
	kernel      time.Duration // U-Boot: "Starting kernel"; 0 otherwise
	switchRoot  time.Duration // the initramfs hands over to bascule
	banner      time.Duration // bascule's first line
	preInitEnd  time.Duration // "pre-init done"
	preInitOwn  time.Duration // what bascule itself measured
	preInitFsck time.Duration // of it, fsck of the data partition
	fsckDone    time.Duration // bascule prints fsck's output when it ended
	rcs         time.Duration
	shell       time.Duration
}

var (
	preInitDone = regexp.MustCompile(`bascule: pre-init done in (\S+)(?: \(fsck (\S+)\))?; starting \S+\r?\n`)
	bannerLine  = regexp.MustCompile(`bascule: bascule \S+ pre-init\r?\n`)
	switchLine  = regexp.MustCompile(`e2e-initramfs: switch_root [^\n]*\n`)
	ubootKernel = regexp.MustCompile(`Starting kernel \.\.\.`)
	fsckLine    = regexp.MustCompile(`bascule: fsck: `)
)

// boot powers on and waits for the shell; it returns the version marker
// rcS printed.
func (d *device) boot() string {
	d.t.Helper()
	v := d.start()
	m, end, err := v.expect(rcsLine, 0, bootTimeout)
	if err != nil {
		d.t.Fatalf("boot %d: %v\n%s", d.boots, err, v.tail(40))
	}
	if err := v.waitShell(end, 60*time.Second); err != nil {
		d.t.Fatalf("boot %d: %v\n%s", d.boots, err, v.tail(20))
	}
	d.recordBoot(v, end)
	return m[1]
}

// recordBoot keeps the boot's times for the summary.
func (d *device) recordBoot(v *vm, rcsEnd int) {
	bt := bootTimes{rcs: v.stampAt(rcsEnd - 1).Sub(v.started), shell: time.Since(v.started)}
	at := func(re *regexp.Regexp) (time.Duration, []string) {
		loc := re.FindStringSubmatchIndex(v.text())
		if loc == nil {
			return 0, nil
		}
		m := []string{}
		for i := 0; i < len(loc); i += 2 {
			m = append(m, v.text()[loc[i]:loc[i+1]])
		}
		return v.stampAt(loc[0]).Sub(v.started), m
	}
	bt.kernel, _ = at(ubootKernel)
	bt.switchRoot, _ = at(switchLine)
	bt.banner, _ = at(bannerLine)
	bt.fsckDone, _ = at(fsckLine)
	var m []string
	if bt.preInitEnd, m = at(preInitDone); m != nil {
		bt.preInitOwn, _ = time.ParseDuration(m[1])
		if m[2] != "" {
			bt.preInitFsck, _ = time.ParseDuration(m[2])
		}
	}
	stats.addBoot(d.b.name, bt)
}

// exited waits for the guest to restart by itself and passes the restart
// request on to the firmware (tryboot board).
func (d *device) exited(timeout time.Duration) {
	d.t.Helper()
	if err := d.vm.wait(timeout); err != nil {
		d.t.Fatalf("%v\n%s", err, d.vm.tail(30))
	}
	if d.fw != nil {
		if _, err := d.fw.Restarted(d.vm.text()); err != nil {
			d.t.Fatal(err)
		}
	}
}

// watchdogDelay is how long a panicked guest may take to reset itself
// before the harness, playing a hardware watchdog, resets it.
const watchdogDelay = 10 * time.Second

// watchdog waits for a guest that panicked to reset. The boards' panic=1
// survives bascule's post-install, so the kernel normally resets itself;
// if it does not (a panic= of 60, as Rugix writes when there was none,
// takes minutes under TCG), the harness resets it as a board's hardware
// watchdog would. A reset carries no restart request, so for the firmware
// it is the same as a power cut.
func (d *device) watchdog() {
	d.t.Helper()
	if err := d.vm.wait(watchdogDelay); err == nil {
		d.exited(0)
		return
	}
	d.t.Logf("boot %d: watchdog reset %v after the panic", d.boots, watchdogDelay)
	d.powerCut()
}

// powerCut kills QEMU; it reports whether the device was still running.
func (d *device) powerCut() bool {
	cut := d.vm.kill()
	if d.fw != nil {
		if !cut {
			// It restarted by itself before the cut; the firmware saw
			// the request, then the power went. Both clear it.
			if _, err := d.fw.Restarted(d.vm.text()); err != nil {
				d.t.Fatal(err)
			}
		}
		d.fw.PowerCut()
	}
	return cut
}

// sh runs a command that must succeed and returns its output.
func (d *device) sh(cmd string) string {
	d.t.Helper()
	out, rc, err := d.vm.run(cmd, cmdTimeout)
	if err != nil {
		d.t.Fatalf("%v\n%s", err, d.vm.tail(20))
	}
	if rc != 0 {
		d.t.Fatalf("%s: exit status %d:\n%s", cmd, rc, out)
	}
	return out
}

// shRC runs a command and returns its output and exit status.
func (d *device) shRC(cmd string, timeout time.Duration) (string, int) {
	d.t.Helper()
	out, rc, err := d.vm.run(cmd, timeout)
	if err != nil {
		d.t.Fatalf("%v\n%s", err, d.vm.tail(20))
	}
	return out, rc
}

// sysInfo is `bascule system info --json` (Rugix's schema plus the
// firmware key).
type sysInfo struct {
	Slots map[string]struct {
		Active bool              `json:"active"`
		Hashes map[string]string `json:"hashes"`
	} `json:"slots"`
	Boot *struct {
		BootFlow     string              `json:"bootFlow"`
		ActiveGroup  string              `json:"activeGroup"`
		DefaultGroup string              `json:"defaultGroup"`
		Groups       map[string]struct{} `json:"groups"`
		Firmware     *struct {
			Partition int  `json:"partition"`
			Tryboot   bool `json:"tryboot"`
		} `json:"firmware"`
	} `json:"boot"`
	State struct {
		Status        string `json:"status"`
		DataPartition string `json:"dataPartition"`
	} `json:"state"`
}

// info runs system info on the device.
func (d *device) info() *sysInfo {
	d.t.Helper()
	out := d.sh("bascule system info --json 2>/dev/null")
	var si sysInfo
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &si); err != nil {
		d.t.Fatalf("system info: %v:\n%s", err, out)
	}
	if si.Boot == nil {
		d.t.Fatalf("system info has no boot part:\n%s", out)
	}
	return &si
}

// state is what a device is expected to run.
type state struct {
	active, def, version string
}

// check compares the running system with want, through system info, the
// version marker and, on the tryboot board, the firmware's device tree.
func (d *device) check(want state) *sysInfo {
	d.t.Helper()
	si := d.info()
	got := state{active: si.Boot.ActiveGroup, def: si.Boot.DefaultGroup, version: strings.TrimSpace(d.sh("cat /etc/bascule-e2e-version"))}
	if got != want {
		d.t.Fatalf("boot %d: running %+v, want %+v", d.boots, got, want)
	}
	if err := d.consistent(si, got.version); err != nil {
		d.t.Fatalf("boot %d: %v", d.boots, err)
	}
	return si
}

// groupPartition is the boot partition of a group in the default layout.
var groupPartition = map[string]int{"a": 2, "b": 3}

// consistent checks system info against itself, the marker and what the
// firmware model did: the boot flow, one active system slot belonging to
// the active group, an active state, and on the tryboot board the
// firmware's partition and flag matching the group and the trial.
func (d *device) consistent(si *sysInfo, version string) error {
	b := si.Boot
	if b.BootFlow != d.b.flow {
		return fmt.Errorf("boot flow %q, want %q", b.BootFlow, d.b.flow)
	}
	if _, ok := b.Groups["a"]; !ok || len(b.Groups) != 2 {
		return fmt.Errorf("groups %v, want a and b", b.Groups)
	}
	if b.ActiveGroup != "a" && b.ActiveGroup != "b" {
		return fmt.Errorf("active group %q", b.ActiveGroup)
	}
	if b.DefaultGroup != "a" && b.DefaultGroup != "b" {
		return fmt.Errorf("default group %q", b.DefaultGroup)
	}
	for _, g := range []string{"a", "b"} {
		s, ok := si.Slots["system-"+g]
		if !ok {
			return fmt.Errorf("no slot system-%s", g)
		}
		if s.Active != (g == b.ActiveGroup) {
			return fmt.Errorf("slot system-%s active=%v with active group %s", g, s.Active, b.ActiveGroup)
		}
	}
	if si.State.Status != "Active" {
		return fmt.Errorf("state %q, want Active", si.State.Status)
	}
	if !validVersions[version] {
		return fmt.Errorf("version marker %q is none of the built versions", version)
	}
	if d.fw != nil {
		f := b.Firmware
		if f == nil {
			return fmt.Errorf("system info has no firmware part on the tryboot board")
		}
		trial := b.ActiveGroup != b.DefaultGroup
		if f.Partition != groupPartition[b.ActiveGroup] || (f.Tryboot != trial && !(f.Tryboot && d.committed)) {
			return fmt.Errorf("firmware booted partition %d tryboot %v, but group %s is active (default %s)", f.Partition, f.Tryboot, b.ActiveGroup, b.DefaultGroup)
		}
		if f.Partition != d.lastBoot.Partition || f.Tryboot != d.lastBoot.Tryboot {
			return fmt.Errorf("device tree says partition %d tryboot %v, the model booted %d %v", f.Partition, f.Tryboot, d.lastBoot.Partition, d.lastBoot.Tryboot)
		}
	} else {
		if b.Firmware != nil {
			return fmt.Errorf("firmware info %+v on a U-Boot device", *b.Firmware)
		}
		// What boot.scr says it booted.
		m := ubootPartition.FindStringSubmatch(d.vm.text())
		if m == nil || m[1] != fmt.Sprint(groupPartition[b.ActiveGroup]) {
			return fmt.Errorf("U-Boot booted %v, but group %s is active", m, b.ActiveGroup)
		}
	}
	return nil
}

var ubootPartition = regexp.MustCompile(`bascule: booting partition (\d+):`)

var validVersions = map[string]bool{"v1": true, "v2": true, "v3": true}

// mountBundles mounts the read-only bundle disk at /mnt: the virtio disk
// without partitions.
func (d *device) mountBundles() {
	d.t.Helper()
	d.sh(`grep -q ' /mnt ' /proc/mounts || { for x in /sys/block/vd*; do x=${x##*/}; [ -e /sys/block/$x/${x}1 ] || dev=/dev/$x; done; mount -t ext4 -o ro $dev /mnt; }`)
}

// install starts `bascule update install` of a bundle on the bundle disk
// with the default --reboot yes and returns the console offset it was
// sent at. Standard error goes through cat so that bascule prints
// messages, not a progress bar; the progress JSON lines on standard output
// are dropped.
func (d *device) install(bundle string) (from int, sent time.Time) {
	d.t.Helper()
	d.mountBundles()
	from = d.vm.size()
	sent = time.Now()
	if err := d.vm.send(fmt.Sprintf("bascule update install /mnt/%s 2>&1 >/dev/null | cat", bundle)); err != nil {
		d.t.Fatal(err)
	}
	return from, sent
}

var installedLine = regexp.MustCompile(`Installed bundle \S+ into boot group (\S+): \d+ bytes written`)

// installAndRestart installs a bundle and waits for the guest to restart
// into the trial; it returns the install time.
func (d *device) installAndRestart(bundle, target string) time.Duration {
	d.t.Helper()
	from, sent := d.install(bundle)
	m, end, err := d.vm.expect(installedLine, from, installTimeout)
	if err != nil {
		d.t.Fatalf("install %s: %v\n%s", bundle, err, d.vm.tail(30))
	}
	took := d.vm.stampAt(end - 1).Sub(sent)
	if m[1] != target {
		d.t.Fatalf("installed into group %s, want %s", m[1], target)
	}
	d.exited(bootTimeout)
	if d.fw != nil && !d.fw.Pending().Tryboot {
		d.t.Fatalf("the guest restarted without asking for tryboot:\n%s", d.vm.tail(10))
	}
	stats.addInstall(d.b.name, bundle, took)
	return took
}

// reboot reboots the guest normally and waits for it to go down.
func (d *device) reboot() {
	d.t.Helper()
	if err := d.vm.send("reboot"); err != nil {
		d.t.Fatal(err)
	}
	d.exited(bootTimeout)
	if d.fw != nil && d.fw.Pending().Tryboot {
		d.t.Fatal("a plain reboot asked the firmware for tryboot")
	}
}

// other is the other group.
func other(g string) string {
	if g == "a" {
		return "b"
	}
	return "a"
}
