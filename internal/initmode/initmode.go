// Package initmode is bascule's pre-init: started by the kernel as PID 1
// (init=/usr/bin/bascule), it mounts the config, data and system
// partitions, prepares the state profile, the root overlay and the
// persisted paths, carries /dev, /proc, /sys and /run over into the new
// root, and hands over to the real init. The order and the paths are
// Rugix's (docs/init.md has the details and where Bascule differs).
//
// Every path is below Options.Root, and pivoting, exec'ing and rebooting
// are function fields, so that the whole sequence runs in a test's mount
// namespace on loop devices without being PID 1.
package initmode

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bascule-ota/bascule/internal/bootflow"
	"github.com/bascule-ota/bascule/internal/disk"
	"github.com/bascule-ota/bascule/internal/hooks"
	"github.com/bascule-ota/bascule/internal/state"
	"github.com/bascule-ota/bascule/internal/system"
	"github.com/bascule-ota/bascule/internal/version"
)

// Path is the search path pre-init gives hooks, scripts and the real
// init, whatever the kernel passed (Rugix 1.x does the same).
const Path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// ErrRebooted is returned by Run when it asked for a reboot and the
// Reboot function returned without error, which only a test's does.
var ErrRebooted = errors.New("pre-init requested a reboot")

// Options configure Run. The zero value, with Root "/", is what PID 1
// uses on a device.
type Options struct {
	// Root is where the initial root file system is seen; "" means "/".
	// Device paths (/dev/mmcblk0p1) and tools (fsck) are not below Root.
	Root string
	// Cmdline is the kernel command line; "" means read <Root>/proc/cmdline.
	Cmdline string
	// Args are passed on to the real init after its name: what the
	// kernel gave bascule (e.g. "single").
	Args []string
	// Env is the environment of hooks, scripts and the real init; nil
	// means os.Environ(). PATH is replaced by Path.
	Env []string
	// Log receives the messages; nil means standard error, the console.
	Log io.Writer

	// Bootstrap repartitions the root disk on first boot. It is called
	// when the config partition carries .rugix/bootstrap (or
	// rugix/bootstrap), with the config partition mounted read-only at
	// configDir; it remounts it itself to remove the marker.
	Bootstrap func(configDir string) error
	// BootFlow opens the boot flow; nil means the one system.toml
	// configures or the config partition's files select.
	BootFlow func(sys *system.System, configDir string) (bootflow.Flow, error)
	// Reboot restarts the machine; tryNext tells that a one-shot try of
	// another group was just armed. nil means the boot flow's Reboot, or
	// sync and reboot(2) when there is no boot flow.
	Reboot func(tryNext bool) error
	// PivotRoot makes newRoot the root file system and returns the path
	// under which the new root is now seen ("/" after a real pivot). nil
	// means pivot_root(2) with the old root detached.
	PivotRoot func(newRoot string) (string, error)
	// Exec replaces the process with the real init; nil means execve(2).
	Exec func(path string, argv, env []string) error
	// Shell runs the error shell and waits for it; nil means start it on
	// the console.
	Shell func(path string, env []string) error
}

// boot is one run of the sequence.
type boot struct {
	o     Options
	root  string
	log   *logger
	kopts kernelOptions
	env   []string
	start time.Time
	// fsckTime is how long fsck of the data partition took, reported
	// apart from pre-init's own time (it depends on the file system).
	fsckTime time.Duration

	cfg     *system.Config
	rootDev *disk.BlockDevice
	table   *disk.Table
	sys     *system.System
	flow    bootflow.Flow
	stateCf *state.Config

	configDir, dataDir, systemDir, stateDir string
	dataEphemeral                           bool

	active, defaultGroup string
	// commitKnown tells that requiresCommit is known: the boot flow named
	// its default group and the running group was found.
	commitKnown, requiresCommit bool

	profile string
	newRoot string
	// seenAs is the path under which the new root is seen after the
	// pivot; init and post-init hooks are found there.
	seenAs string
}

// Run performs pre-init and execs the real init. It returns only if the
// exec failed (or a test's Exec returned): a failing step never stops the
// boot. On a committed system the real init is started on the read-only
// system instead (after the error shell, if one is configured); on an
// uncommitted trial boot the machine reboots so that the bootloader falls
// back to the committed group.
func Run(o Options) error {
	b := &boot{o: o, root: o.Root, start: time.Now(), kopts: kernelOptions{init: DefaultInit}}
	if b.root == "" {
		b.root = "/"
	}
	out := o.Log
	if out == nil {
		out = os.Stderr
	}
	b.log = &logger{w: out}
	b.env = withPath(o.Env)
	if os.Getpid() == 1 {
		os.Setenv("PATH", Path)
	}
	if b.o.Reboot == nil {
		b.o.Reboot = b.defaultReboot
	}
	if b.o.PivotRoot == nil {
		b.o.PivotRoot = pivotRoot
	}
	if b.o.Exec == nil {
		b.o.Exec = syscall.Exec
	}
	if b.o.Shell == nil {
		b.o.Shell = b.consoleShell
	}

	err := b.prepare()
	if err == nil {
		err = b.switchRoot()
	}
	if errors.Is(err, ErrRebooted) {
		return err
	}
	if err != nil {
		b.log.errorf("pre-init failed: %v", err)
		if b.commitKnown && b.requiresCommit {
			b.log.errorf("boot group %s is on trial (default is %s): rebooting so that the bootloader falls back", b.active, b.defaultGroup)
			unix.Sync()
			rerr := b.o.Reboot(false)
			if rerr == nil {
				return ErrRebooted
			}
			b.log.errorf("reboot: %v", rerr)
		}
		if sh := b.kopts.errorShell; sh != "" {
			b.log.errorf("starting the error shell %s; exit it to continue the boot", sh)
			if err := b.o.Shell(filepath.Join(b.root, sh), b.env); err != nil {
				b.log.errorf("error shell %s: %v", sh, err)
			}
		}
		b.log.errorf("continuing with %s on the read-only system", b.kopts.init)
		b.seenAs = b.root
	}
	b.postInit()
	return b.execInit()
}

// prepare runs the steps up to the hand-over.
func (b *boot) prepare() error {
	if err := mountAPI(b.root); err != nil {
		return err
	}
	if b.o.Log == nil {
		if err := ensureStdio(b.path("/dev")); err != nil {
			b.log.errorf("%v", err)
		}
	}
	cmdline := b.o.Cmdline
	if cmdline == "" {
		raw, err := os.ReadFile(b.path("/proc/cmdline"))
		if err != nil {
			b.log.errorf("read kernel command line: %v", err)
		}
		cmdline = string(raw)
	}
	var warns []string
	b.kopts, warns = parseCmdline(cmdline)
	b.log.quiet = b.kopts.quiet
	b.log.infof("bascule %s pre-init", version.String())
	for _, w := range warns {
		b.log.warnf("kernel command line: %s", w)
	}
	if err := hooks.Run(b.hooksDir(b.root), "boot", "pre-init", b.env, b.hookOpts()); err != nil {
		b.log.errorf("boot/pre-init hooks: %v", err)
	}

	if err := b.loadSystem(); err != nil {
		return err
	}
	if err := b.mountConfig(); err != nil {
		return err
	}
	b.bootstrap()
	if err := b.openSystem(); err != nil {
		return err
	}
	// Known early, so that the failure policy can tell a trial boot from
	// a committed one for every later step.
	b.commitState()
	if err := b.mountData(); err != nil {
		return err
	}
	var stateWarns []string
	b.stateCf, stateWarns = state.LoadConfig(b.root)
	for _, w := range stateWarns {
		b.log.warnf("%s", w)
	}
	if b.stateCf.Overlay != state.OverlayDisabled {
		if err := b.mountSystem(); err != nil {
			return err
		}
	}
	if err := b.deferredReboot(); err != nil {
		return err
	}
	if err := b.setupProfile(); err != nil {
		return err
	}
	if err := b.mountOverlay(); err != nil {
		return err
	}
	if err := b.persist(); err != nil {
		return err
	}
	b.machineID()
	return nil
}

// path is p below the root pre-init runs in.
func (b *boot) path(p string) string { return filepath.Join(b.root, p) }

func (b *boot) hooksDir(root string) string { return filepath.Join(root, hooks.DefaultDir) }

func (b *boot) hookOpts() hooks.Options {
	return hooks.Options{Stdout: b.log.w, Stderr: b.log.w, Warn: func(m string) { b.log.warnf("%s", m) }}
}

// withPath returns env (os.Environ() if nil) with PATH set to Path.
func withPath(env []string) []string {
	if env == nil {
		env = os.Environ()
	}
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if !strings.HasPrefix(kv, "PATH=") {
			out = append(out, kv)
		}
	}
	return append(out, "PATH="+Path)
}

// lookPath finds a tool in Path (not the inherited PATH).
func lookPath(name string) (string, error) {
	for _, dir := range filepath.SplitList(Path) {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", exec.ErrNotFound
}

// loadSystem reads system.toml and finds the root device.
func (b *boot) loadSystem() error {
	cfg, warns, err := system.LoadConfig(b.path(system.ConfigPath))
	if err != nil {
		return err
	}
	for _, w := range warns {
		b.log.warnf("%s", w)
	}
	b.cfg = cfg
	b.configDir = b.path(orDefault(cfg.ConfigPartition.Path, system.MountConfig))
	b.dataDir = b.path(orDefault(cfg.DataPartition.Path, system.MountData))
	b.systemDir = b.path(system.MountSystem)
	b.stateDir = b.path(state.Dir)
	rd, err := disk.FindBlockDevice(b.root)
	if err != nil {
		b.log.warnf("root file system: %v", err)
		rd = nil
	}
	b.rootDev = rd
	return nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// partitionOfRootDisk is partition n of the root disk by the kernel's
// naming, for the config partition, which is mounted before the
// partition table is read (bootstrapping may still change it).
func (b *boot) partitionOfRootDisk(n int) (string, error) {
	if b.rootDev == nil || b.rootDev.Parent == "" {
		return "", fmt.Errorf("the root file system is not on a partition of a disk")
	}
	return disk.PartitionPath(b.rootDev.Parent, n), nil
}

// mountConfig mounts the config partition read-only.
func (b *boot) mountConfig() error {
	c := b.cfg.ConfigPartition
	dev := c.Device
	if dev == "" {
		n := c.Partition
		if n == 0 {
			n = 1
		}
		var err error
		if dev, err = b.partitionOfRootDisk(n); err != nil {
			return fmt.Errorf("config partition: %w", err)
		}
	}
	if ok, err := disk.IsMountPoint(b.configDir); err == nil && ok {
		return nil
	}
	if err := os.MkdirAll(b.configDir, 0o755); err != nil {
		return fmt.Errorf("mount config partition %s: %w", dev, err)
	}
	if err := mountDevice(dev, b.configDir, unix.MS_RDONLY|configFlags, "", b.path("/proc"), "vfat", "ext4"); err != nil {
		return fmt.Errorf("mount config partition %s at %s: %w", dev, b.configDir, err)
	}
	return nil
}

// remountConfig makes the config partition writable for a write and
// read-only again, unless it is not protected.
func (b *boot) remountConfig(rw bool) error {
	if !b.cfg.ConfigPartition.Protected {
		return nil
	}
	return RemountConfig(b.configDir, rw)
}

// bootstrap hands a first boot to the bootstrapping code. Its failure
// does not stop the boot: the data partition then fails to mount, and
// the system runs with ephemeral state and says so.
func (b *boot) bootstrap() {
	marker := ""
	for _, m := range []string{".rugix/bootstrap", "rugix/bootstrap"} {
		if _, err := os.Stat(filepath.Join(b.configDir, m)); err == nil {
			marker = m
			break
		}
	}
	if marker == "" {
		return
	}
	if b.o.Bootstrap == nil {
		b.log.errorf("config partition asks for bootstrapping (%s), but this bascule cannot bootstrap", marker)
		return
	}
	b.log.infof("bootstrapping (%s on the config partition)", marker)
	if err := b.o.Bootstrap(b.configDir); err != nil {
		b.log.errorf("bootstrap: %v", err)
	}
}

// rootDisk adapts the partition table to system.Disk.
type rootDisk struct {
	path  string
	table *disk.Table
}

func (d rootDisk) Table() string { return d.table.Type }
func (d rootDisk) Path() string  { return d.path }
func (d rootDisk) PartitionPath(n int) string {
	if d.table.Partition(n) == nil {
		return ""
	}
	return disk.PartitionPath(d.path, n)
}

// openSystem reads the partition table (after bootstrapping) and
// resolves slots and groups.
func (b *boot) openSystem() error {
	var d system.Disk
	if b.rootDev != nil && b.rootDev.Parent != "" {
		t, err := disk.ReadDevice(b.rootDev.Parent)
		if err != nil {
			return err
		}
		b.table = t
		d = rootDisk{b.rootDev.Parent, t}
	}
	rootStat := func() (uint64, error) {
		var st unix.Stat_t
		if err := unix.Stat(b.root, &st); err != nil {
			return 0, fmt.Errorf("stat %s: %w", b.root, err)
		}
		return uint64(st.Dev), nil
	}
	sys, err := system.New(b.cfg, d, rootStat, system.DeviceNumber)
	if err != nil {
		return err
	}
	b.sys = sys
	b.active, _ = sys.Active()
	return nil
}

// mountSystem makes the system file system available read-only at
// /run/rugix/mounts/system, the lower layer of the overlay. It is a bind
// mount of the root: the same file system Rugix mounts from the device,
// without guessing its type, and also when the kernel mounted the root
// from a device without a node (/dev/root).
func (b *boot) mountSystem() error {
	if ok, err := disk.IsMountPoint(b.systemDir); err == nil && ok {
		return nil
	}
	if err := os.MkdirAll(b.systemDir, 0o755); err != nil {
		return fmt.Errorf("mount system at %s: %w", b.systemDir, err)
	}
	if err := unix.Mount(b.root, b.systemDir, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("mount system %s at %s: %w", b.root, b.systemDir, err)
	}
	if err := remount(b.systemDir, unix.MS_BIND|unix.MS_RDONLY|unix.MS_NODEV); err != nil {
		return fmt.Errorf("mount system at %s read-only: %w", b.systemDir, err)
	}
	return nil
}

// commitState asks the boot flow which group boots by default; the
// running group needs a commit when that is another one. A boot flow
// that cannot answer leaves the state unknown, which the failure policy
// treats as committed.
func (b *boot) commitState() {
	open := b.o.BootFlow
	if open == nil {
		open = b.openBootFlow
	}
	flow, err := open(b.sys, b.configDir)
	if err != nil {
		b.log.warnf("boot flow: %v", err)
		return
	}
	b.flow = flow
	def, err := flow.Default()
	if err != nil {
		b.log.warnf("boot flow %s: default boot group: %v", flow.Name(), err)
		return
	}
	b.defaultGroup = def
	if b.active == "" {
		_, err := b.sys.Active()
		b.log.warnf("%v", err)
		return
	}
	b.commitKnown = true
	b.requiresCommit = b.active != def
	if b.requiresCommit {
		b.log.infof("boot group %s is on trial: the default is %s until `bascule system commit`", b.active, def)
	}
}

func (b *boot) openBootFlow(sys *system.System, configDir string) (bootflow.Flow, error) {
	env := bootflow.Env{
		ConfigDir:   configDir,
		Remount:     b.remountConfig,
		FwEnvConfig: b.path("/etc/fw_env.config"),
		DeviceTree:  b.path("/proc/device-tree"),
		Vcio:        b.path("/dev/vcio"),
		RebootFn:    sysReboot,
	}
	kind := ""
	if bf := sys.Config.BootFlow; bf != nil {
		kind = bf.Type
		env.Controller = bf.Controller
		env.KeepInit = bf.KeepInit
	}
	for _, g := range sys.Groups {
		env.Groups = append(env.Groups, g.Name)
	}
	return bootflow.New(kind, env)
}

// sysReboot is reboot(2) for PID 1 only: anywhere else it would take the
// host down with it.
func sysReboot(cmd uint32, arg string) error {
	if os.Getpid() != 1 {
		return fmt.Errorf("not rebooting: not PID 1")
	}
	unix.Sync()
	return bootflow.SysReboot(cmd, arg)
}

func (b *boot) defaultReboot(tryNext bool) error {
	if b.flow != nil {
		return b.flow.Reboot(tryNext)
	}
	return sysReboot(unix.LINUX_REBOOT_CMD_RESTART, "")
}

// deferredReboot carries out `update install --reboot deferred`: arm a
// one-shot try of the new group and reboot. The marker is removed only
// once the try is armed, and kept while a commit is pending, so that a
// reboot into the update is neither lost nor repeated.
func (b *boot) deferredReboot() error {
	group, ok, err := state.ReadDeferredReboot(b.dataDir)
	if !ok {
		return nil
	}
	if err != nil {
		b.log.errorf("%v; removed", err)
		if err := state.ClearDeferredReboot(b.dataDir); err != nil {
			b.log.errorf("%v", err)
		}
		return nil
	}
	if !b.commitKnown {
		b.log.warnf("deferred reboot postponed: the boot flow's state is unknown")
		return nil
	}
	if b.requiresCommit {
		b.log.infof("deferred reboot postponed: boot group %s is not committed", b.active)
		return nil
	}
	if group == "" {
		group = b.sys.Spare(b.defaultGroup)
	}
	if _, err := b.sys.Group(group); err != nil || group == b.defaultGroup {
		if err == nil {
			err = fmt.Errorf("boot group %s is the default already", group)
		}
		b.log.warnf("deferred reboot dropped: %v", err)
		if err := state.ClearDeferredReboot(b.dataDir); err != nil {
			b.log.errorf("%v", err)
		}
		return nil
	}
	if err := b.flow.SetTryNext(group); err != nil {
		b.log.errorf("deferred reboot: arm boot group %s: %v (marker kept)", group, err)
		return nil
	}
	if err := state.ClearDeferredReboot(b.dataDir); err != nil {
		// Rebooting with the marker in place would arm the try again
		// on every boot of the default group.
		b.log.errorf("deferred reboot: %v; not rebooting", err)
		if err := b.flow.SetTryNext(b.defaultGroup); err != nil {
			b.log.errorf("deferred reboot: disarm: %v", err)
		}
		return nil
	}
	b.log.infof("deferred reboot: trying boot group %s once", group)
	unix.Sync()
	if err := b.o.Reboot(true); err != nil {
		b.log.errorf("deferred reboot: %v; booting on (the try stays armed for the next reboot)", err)
		return nil
	}
	return ErrRebooted
}

// setupProfile resets the state profile if asked to and binds it to the
// state directory.
func (b *boot) setupProfile() error {
	b.profile = state.ProfileDir(b.dataDir)
	if err := state.CleanTrash(b.dataDir); err != nil {
		b.log.warnf("remove old state: %v", err)
	}
	requested, backup, when, err := state.PendingReset(b.profile)
	if err != nil {
		return err
	}
	if requested {
		if err := hooks.Run(b.hooksDir(b.root), "state-reset", "pre-reset", b.env, b.hookOpts()); err != nil {
			b.log.errorf("state reset not done: %v", err)
		} else {
			kept, err := state.Reset(b.dataDir, backup, when)
			if err != nil {
				return err
			}
			if kept != "" {
				b.log.infof("state reset: previous state kept as profile %s", kept)
			} else {
				b.log.infof("state reset: previous state deleted")
			}
			if err := hooks.Run(b.hooksDir(b.root), "state-reset", "post-reset", b.env, b.hookOpts()); err != nil {
				b.log.errorf("%v", err)
			}
		}
	}
	if err := os.MkdirAll(b.profile, 0o755); err != nil {
		return fmt.Errorf("create state profile: %w", err)
	}
	if err := os.MkdirAll(b.stateDir, 0o755); err != nil {
		return fmt.Errorf("create state directory: %w", err)
	}
	if err := unix.Mount(b.profile, b.stateDir, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind state profile %s to %s: %w", b.profile, b.stateDir, err)
	}
	return nil
}

// postInit runs the boot/post-init hooks in the new root. Their failure
// is reported, never fatal.
func (b *boot) postInit() {
	env := append(append([]string{}, b.env...), fmt.Sprintf("RUGIX_REQUIRES_COMMIT=%v", b.commitKnown && b.requiresCommit))
	if err := hooks.Run(b.hooksDir(b.seenAs), "boot", "post-init", env, b.hookOpts()); err != nil {
		b.log.errorf("boot/post-init hooks: %v", err)
	}
}

// execInit starts the real init, or, if that cannot be executed, the
// first of the kernel's own fallbacks that can.
func (b *boot) execInit() error {
	fsck := ""
	if b.fsckTime > 0 {
		fsck = fmt.Sprintf(" (fsck %v)", b.fsckTime.Round(10*time.Microsecond))
	}
	b.log.infof("pre-init done in %v%s; starting %s", time.Since(b.start).Round(10*time.Microsecond), fsck, b.kopts.init)
	var errs []error
	var tried []string
	for _, p := range []string{b.kopts.init, "/sbin/init", "/etc/init", "/bin/init", "/bin/sh"} {
		if contains(tried, p) {
			continue
		}
		tried = append(tried, p)
		argv := append([]string{p}, b.o.Args...)
		err := b.o.Exec(filepath.Join(b.seenAs, p), argv, b.env)
		if err == nil {
			return nil
		}
		b.log.errorf("exec %s: %v", p, err)
		errs = append(errs, fmt.Errorf("exec %s: %w", p, err))
	}
	return fmt.Errorf("no init could be started: %w", errors.Join(errs...))
}

// consoleShell runs the error shell on the console and waits for it.
func (b *boot) consoleShell(path string, env []string) error {
	console, err := os.OpenFile(b.path("/dev/console"), os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer console.Close()
	run := func(ctty bool) error {
		cmd := exec.Command(path)
		cmd.Env = env
		cmd.Stdin, cmd.Stdout, cmd.Stderr = console, console, console
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: ctty}
		return cmd.Run()
	}
	err = run(true)
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		err = run(false) // the console cannot be a controlling terminal
	}
	return err
}

// logger prints pre-init's messages; quiet leaves errors only.
type logger struct {
	w     io.Writer
	quiet bool
}

func (l *logger) infof(format string, a ...any) {
	if !l.quiet {
		fmt.Fprintf(l.w, "bascule: "+format+"\n", a...)
	}
}

func (l *logger) warnf(format string, a ...any) {
	if !l.quiet {
		fmt.Fprintf(l.w, "bascule: warning: "+format+"\n", a...)
	}
}

func (l *logger) errorf(format string, a ...any) {
	fmt.Fprintf(l.w, "bascule: error: "+format+"\n", a...)
}
