package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/bascule-ota/bascule/internal/bootflow"
	"github.com/bascule-ota/bascule/internal/disk"
	"github.com/bascule-ota/bascule/internal/slotdb"
	"github.com/bascule-ota/bascule/internal/system"
)

// device is the running system: its configuration, slots, boot flow and
// slot database.
type device struct {
	cfg       *system.Config
	sys       *system.System
	table     *disk.Table
	flow      bootflow.Flow
	db        *slotdb.DB
	active    string // "" if no group matches the running root
	configDir string
}

func warn(msg string) { fmt.Fprintf(os.Stderr, "bascule: warning: %s\n", msg) }

// rootDisk adapts a partition table to system.Disk.
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

func openDevice() (*device, error) {
	cfg, warns, err := system.LoadConfig(system.ConfigPath)
	if err != nil {
		return nil, err
	}
	for _, w := range warns {
		warn(w)
	}
	root, err := disk.RootDisk()
	if err != nil {
		return nil, fmt.Errorf("find the root disk: %w", err)
	}
	if root.Parent == "" {
		return nil, fmt.Errorf("the system is on %s, which is not a partition of a disk", root.Device)
	}
	table, err := disk.ReadDevice(root.Parent)
	if err != nil {
		return nil, err
	}
	sys, err := system.New(cfg, rootDisk{root.Parent, table}, system.SystemDevice, system.DeviceNumber)
	if err != nil {
		return nil, err
	}
	d := &device{cfg: cfg, sys: sys, table: table, db: slotdb.New(slotdb.DefaultRoot())}
	d.active, _ = sys.Active()
	d.configDir = cfg.ConfigPartition.Path
	if d.configDir == "" {
		d.configDir = system.MountConfig
	}
	if err := d.mountConfig(); err != nil {
		return nil, err
	}
	kind := ""
	env := bootflow.Env{ConfigDir: d.configDir, Remount: d.remountConfig, BootSlot: d.bootSlot, RootPartUUID: d.rootPartUUID, RebootFn: orderlyReboot}
	if bf := cfg.BootFlow; bf != nil {
		kind = bf.Type
		env.Controller = bf.Controller
		env.KeepInit = bf.KeepInit
	}
	for _, g := range sys.Groups {
		env.Groups = append(env.Groups, g.Name)
	}
	if d.flow, err = bootflow.New(kind, env); err != nil {
		return nil, err
	}
	return d, nil
}

// mountConfig mounts the config partition read-only where the boot flow
// expects it, unless pre-init (or anyone) already did.
func (d *device) mountConfig() error {
	if ok, err := disk.IsMountPoint(d.configDir); err == nil && ok {
		return nil
	}
	dev, err := d.sys.ConfigPartitionDevice()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(d.configDir, 0o755); err != nil {
		return fmt.Errorf("mount config partition %s: %w", dev, err)
	}
	var errs []error
	for _, fs := range []string{"vfat", "ext4"} {
		err := unix.Mount(dev, d.configDir, fs, unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
		if err == nil {
			return nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", fs, err))
	}
	return fmt.Errorf("mount config partition %s at %s: %w", dev, d.configDir, errors.Join(errs...))
}

// remountConfig makes the config partition writable for one write.
func (d *device) remountConfig(rw bool) error {
	if !d.cfg.ConfigPartition.Protected {
		return nil
	}
	flags := uintptr(unix.MS_REMOUNT | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC)
	if !rw {
		flags |= unix.MS_RDONLY
	}
	if err := unix.Mount("", d.configDir, "", flags, ""); err != nil {
		return fmt.Errorf("remount config partition %s (rw=%v): %w", d.configDir, rw, err)
	}
	return nil
}

func (d *device) bootSlot(group string) (string, error) {
	s, err := d.sys.SlotByAlias(group, "boot")
	if err != nil {
		return "", err
	}
	return d.sys.SlotDevice(s)
}

func (d *device) rootPartUUID(group string) (string, error) {
	s, err := d.sys.SlotByAlias(group, "system")
	if err != nil {
		return "", err
	}
	if s.Partition == 0 {
		return "", fmt.Errorf("slot %s is not a partition of the root disk", s.Name)
	}
	p := d.table.Partition(s.Partition)
	if p == nil {
		return "", fmt.Errorf("slot %s: no partition %d on the root disk", s.Name, s.Partition)
	}
	return p.UUID, nil
}

// orderlyReboot restarts the machine through the init system when bascule
// is not PID 1, so that services stop and file systems unmount: `reboot`
// for a plain restart, and for a restart with an argument ("0 tryboot")
// systemd's `systemctl reboot --reboot-argument`. Where neither can pass
// the argument (BusyBox init), it syncs and calls reboot(2) itself, which
// is what the Raspberry Pi firmware needs to see.
func orderlyReboot(cmd uint32, arg string) error {
	if os.Getpid() != 1 {
		var argv []string
		if arg == "" {
			argv = []string{"reboot"}
		} else if _, err := exec.LookPath("systemctl"); err == nil && isDir("/run/systemd/system") {
			argv = []string{"systemctl", "reboot", "--reboot-argument=" + arg}
		}
		if argv != nil {
			if path, err := exec.LookPath(argv[0]); err == nil {
				c := exec.Command(path, argv[1:]...)
				c.Stdout, c.Stderr = os.Stdout, os.Stderr
				if err := c.Run(); err != nil {
					return fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
				}
				return nil
			}
		}
	}
	unix.Sync()
	return bootflow.SysReboot(cmd, arg)
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// defaultGroup is what the bootloader boots next.
func (d *device) defaultGroup() (string, error) {
	g, err := d.flow.Default()
	if err != nil {
		return "", fmt.Errorf("boot flow %s: %w", d.flow.Name(), err)
	}
	return g, nil
}

// lock takes the update lock, so that two installs or commits never run at
// once. It is released when the process exits.
func lock() error {
	const path = "/run/rugix/update-lock"
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return errors.New("another update or commit is running (lock /run/rugix/update-lock is held)")
		}
		return fmt.Errorf("lock %s: %w", path, err)
	}
	return nil // f stays open, holding the lock
}
