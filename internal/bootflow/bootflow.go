// Package bootflow implements the bootloader integrations ("boot flows") of
// Rugix: rpi-tryboot, rpi-uboot, uboot, grub and custom. The state files
// they write are byte-compatible with Rugix Ctrl, so a device can move
// between Rugix and Bascule in either direction.
//
// Only Commit is critical: it changes the default group. Every write that
// changes what boots next goes through atomicfile (or, for a redundant
// U-Boot environment, through the copy that is not in use) and has the
// config partition remounted read-write only while it runs.
package bootflow

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
)

// Flow is a bootloader integration.
type Flow interface {
	Name() string                   // "rpi-tryboot", "rpi-uboot", "uboot", "grub", "custom"
	Default() (string, error)       // group the bootloader boots next without override
	SetTryNext(group string) error  // arm a one-shot boot of group (group == default: disarm)
	Commit(active string) error     // make active the default (the only critical write)
	PreInstall(group string) error  // before an update is written into group
	PostInstall(group string) error // after; e.g. rpi cmdline.txt patching
	MarkGood(group string) error    // ErrUnsupported where the flow has no notion of it
	MarkBad(group string) error     // ErrUnsupported where the flow has no notion of it
	Reboot(tryNext bool) error      // how this flow reboots
}

// FirmwareInfo is implemented by the Raspberry Pi flows: what the firmware
// reports it booted, from /chosen/bootloader in the device tree.
type FirmwareInfo interface {
	Firmware() (tryboot bool, partition int, ok bool)
}

// ErrUnsupported is returned by operations a boot flow has no notion of.
var ErrUnsupported = errors.New("not supported by this boot flow")

// Env is what flows need from the system; the system package fills it.
type Env struct {
	ConfigDir    string                             // mount point of the config partition, e.g. /run/rugix/mounts/config
	Groups       []string                           // boot group names; A/B flows use Groups[0] as A (partition 2), Groups[1] as B (3)
	Remount      func(rw bool) error                // remount the config partition rw for a write and back ro; nil: no-op
	BootSlot     func(group string) (string, error) // block device of the group's boot slot (for PostInstall)
	RootPartUUID func(group string) (string, error) // PARTUUID of the group's system slot, e.g. "1a2b3c4d-05" or a GPT GUID
	KeepInit     bool                               // PostInstall keeps a user's own init= (cmdline.txt, boot.grubenv; rugix/rugix#125)
	InitPath     string                             // init= written into cmdline.txt, default /usr/bin/bascule
	FwEnvConfig  string                             // uboot flow: default /etc/fw_env.config
	Controller   string                             // custom flow: the controller executable
	DeviceTree   string                             // default /proc/device-tree
	Vcio         string                             // default /dev/vcio
	// RebootFn performs reboot(2) with cmd (LINUX_REBOOT_CMD_*) and, for
	// LINUX_REBOOT_CMD_RESTART2, arg. cmd is a uint32 because RESTART2
	// (0xA1B2C3D4) does not fit a 32-bit int. Default: the raw syscall;
	// tests replace it.
	RebootFn func(cmd uint32, arg string) error
}

// Names of the boot flows New knows.
const (
	RPiTryboot = "rpi-tryboot"
	RPiUboot   = "rpi-uboot"
	Uboot      = "uboot"
	Grub       = "grub"
	Custom     = "custom"
)

// New returns the boot flow kind, configured by env. An empty kind is
// detected from the config partition as Rugix does (see Detect).
func New(kind string, env Env) (Flow, error) {
	if env.InitPath == "" {
		env.InitPath = "/usr/bin/bascule"
	}
	if env.FwEnvConfig == "" {
		env.FwEnvConfig = "/etc/fw_env.config"
	}
	if env.DeviceTree == "" {
		env.DeviceTree = "/proc/device-tree"
	}
	if env.Vcio == "" {
		env.Vcio = "/dev/vcio"
	}
	if env.RebootFn == nil {
		env.RebootFn = SysReboot
	}
	if kind == "" {
		var err error
		if kind, err = Detect(env.ConfigDir); err != nil {
			return nil, err
		}
	}
	switch kind {
	case Custom:
		if env.Controller == "" {
			return nil, errors.New("custom boot flow: no controller configured")
		}
		return &custom{env: env}, nil
	case RPiTryboot, RPiUboot, Uboot, Grub:
	default:
		return nil, fmt.Errorf("boot flow %q is not supported (want %s, %s, %s, %s or %s)",
			kind, RPiTryboot, RPiUboot, Uboot, Grub, Custom)
	}
	if len(env.Groups) < 2 {
		return nil, fmt.Errorf("boot flow %s needs two boot groups (A and B), have %d", kind, len(env.Groups))
	}
	if env.Groups[0] == env.Groups[1] {
		return nil, fmt.Errorf("boot flow %s: groups A and B are both named %q", kind, env.Groups[0])
	}
	ab := abEnv{env}
	switch kind {
	case RPiTryboot:
		return &tryboot{abEnv: ab}, nil
	case RPiUboot:
		return &rpiUboot{abEnv: ab}, nil
	case Uboot:
		return &uboot{abEnv: ab}, nil
	default:
		return &grub{abEnv: ab}, nil
	}
}

// Detect names the boot flow from the files on the config partition, in
// Rugix's order: autoboot.txt (rpi-tryboot), bootpart.default.env
// (rpi-uboot), rugpi/primary.grubenv plus an EFI directory (grub).
func Detect(configDir string) (string, error) {
	if configDir == "" {
		return "", errors.New("unable to detect boot flow: no config partition")
	}
	exists := func(name string) bool {
		_, err := os.Stat(filepath.Join(configDir, name))
		return err == nil
	}
	switch {
	case exists("autoboot.txt"):
		return RPiTryboot, nil
	case exists("bootpart.default.env"):
		return RPiUboot, nil
	}
	if exists("rugpi/primary.grubenv") {
		if st, err := os.Stat(filepath.Join(configDir, "EFI")); err == nil && st.IsDir() {
			return Grub, nil
		}
	}
	return "", fmt.Errorf("unable to detect boot flow from %s: none of autoboot.txt, bootpart.default.env, rugpi/primary.grubenv with EFI/", configDir)
}

// abEnv is shared by the built-in A/B flows: group A boots partition 2,
// group B partition 3.
type abEnv struct{ Env }

// part is the boot partition number of group.
func (e abEnv) part(group string) (int, error) {
	switch group {
	case e.Groups[0]:
		return 2, nil
	case e.Groups[1]:
		return 3, nil
	}
	return 0, fmt.Errorf("unknown boot group %q (have %q and %q)", group, e.Groups[0], e.Groups[1])
}

// group is the inverse of part.
func (e abEnv) group(part string) (string, error) {
	switch part {
	case "2":
		return e.Groups[0], nil
	case "3":
		return e.Groups[1], nil
	}
	return "", fmt.Errorf("boot partition %q is neither 2 nor 3", part)
}

func (e abEnv) configPath(name string) string { return filepath.Join(e.ConfigDir, name) }

// writable runs fn with the config partition remounted read-write and
// remounts it read-only afterwards, also when fn fails.
func (e abEnv) writable(fn func() error) (err error) {
	if e.Remount == nil {
		return fn()
	}
	if err := e.Remount(true); err != nil {
		return fmt.Errorf("remount %s read-write: %w", e.ConfigDir, err)
	}
	defer func() {
		if rerr := e.Remount(false); rerr != nil && err == nil {
			err = fmt.Errorf("remount %s read-only: %w", e.ConfigDir, rerr)
		}
	}()
	return fn()
}

func (e abEnv) PreInstall(group string) error {
	_, err := e.part(group)
	return err
}

func (e abEnv) MarkGood(string) error { return ErrUnsupported }
func (e abEnv) MarkBad(string) error  { return ErrUnsupported }

// Reboot restarts the machine with a plain reboot(2) after a sync. The
// A/B flows other than rpi-tryboot keep their one-shot flag on disk.
func (e abEnv) Reboot(bool) error { return plainReboot(e.Env) }

// checkGroup reports an unknown group for flows that are told the names.
func checkGroup(groups []string, group string) error {
	if len(groups) > 0 && !slices.Contains(groups, group) {
		return fmt.Errorf("unknown boot group %q (have %q)", group, groups)
	}
	return nil
}
