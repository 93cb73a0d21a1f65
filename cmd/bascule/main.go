// Command bascule is the device side of Bascule: it installs update bundles
// into the inactive boot group, switches boot groups through the boot flow,
// and, as PID 1, prepares the root file system before the real init. Its
// commands and flags are those of rugix-ctrl.
package main

import (
	"fmt"
	"os"
	"runtime/debug"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bascule-ota/bascule/internal/bootflow"
	"github.com/bascule-ota/bascule/internal/bootstrap"
	"github.com/bascule-ota/bascule/internal/cli"
	"github.com/bascule-ota/bascule/internal/initmode"
	"github.com/bascule-ota/bascule/internal/version"
)

// tool is the bascule command line.
var tool = &cli.Tool{Name: "bascule", Title: "A/B over-the-air updates for embedded Linux", Version: version.String()}

func init() {
	tool.Commands = []cli.Command{
		{Path: "update install", Synopsis: "update install [flags] <bundle|-|URL>", Summary: "install a bundle into the inactive boot group", Run: cmdUpdateInstall},
		{Path: "system info", Synopsis: "system info [--json]", Summary: "show boot flow, groups and slots", Run: cmdSystemInfo},
		{Path: "system commit", Synopsis: "system commit [--if-healthy]", Summary: "make the running boot group the default", Run: cmdSystemCommit},
		{Path: "system reboot", Synopsis: "system reboot [--spare]", Summary: "reboot, optionally trying the spare group once", Run: cmdSystemReboot},
		{Path: "slots create-index", Synopsis: "slots create-index <slot> <chunker> <hash-algorithm>", Summary: "index a slot's blocks for delta updates (e.g. system-a casync-64 sha512-256)", Run: cmdSlotsCreateIndex},
		{Path: "slots inspect", Synopsis: "slots inspect <slot>", Summary: "show a slot's recorded hash and block indices", Run: cmdSlotsInspect},
		{Path: "slots verify", Synopsis: "slots verify <slot>", Summary: "re-hash an immutable slot and compare with what was installed", Run: cmdSlotsVerify},
		{Path: "boot mark-good", Synopsis: "boot mark-good [group]", Summary: "mark a boot group good (flows that support it)", Run: cmdBootMark(true)},
		{Path: "boot mark-bad", Synopsis: "boot mark-bad <group>", Summary: "mark a boot group bad (flows that support it)", Run: cmdBootMark(false)},
		{Path: "state reset", Synopsis: "state reset [--backup] [--backup-name NAME]", Summary: "reset the state at the next boot (reboots now)", Run: cmdStateReset},
		{Path: "state overlay force-persist", Synopsis: "state overlay force-persist true|false", Summary: "keep a discarded overlay across boots (or stop keeping it)", Run: cmdStateForcePersist},
		{Path: "data wipe", Synopsis: "data wipe --yes [--no-reboot]", Summary: "erase the data partition at the next boot (reboots now)", Run: cmdDataWipe},
		{Path: "utils find-block-device", Synopsis: "utils find-block-device <path>", Summary: "print the block device behind a path as JSON", Run: cmdFindBlockDevice},
		{Path: "utils is-mount-point", Synopsis: "utils is-mount-point <path>", Summary: "print true or false", Run: cmdIsMountPoint},
		{Path: "utils resolve-partition", Synopsis: "utils resolve-partition [--disk D] <n>", Summary: "print partition n of the root disk (or D) as JSON", Run: cmdResolvePartition},
		{Path: "version", Synopsis: "version", Summary: "print the version", Run: func([]string) error { fmt.Println(version.String()); return nil }},
	}
}

func main() {
	// bascule runs beside the device's application: keep the heap small
	// (a soft limit; the live heap of an install is a few MiB).
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(24 << 20)
	}
	if os.Getpid() == 1 {
		initMode()
	}
	os.Exit(tool.Main(os.Args[1:]))
}

// initMode runs when the kernel starts bascule as PID 1: pre-init, then
// the real init (internal/initmode; docs/init.md). Run returns only when
// no init at all could be started. PID 1 must not exit (the kernel would
// panic), so the machine reboots after time to read the console.
func initMode() {
	err := initmode.Run(initmode.Options{
		Args: os.Args[1:],
		// First boot: grow the image's partition table to the disk.
		Bootstrap: func(dir string) error {
			return bootstrap.Run(dir, bootstrap.Options{Remount: func(rw bool) error { return initmode.RemountConfig(dir, rw) }})
		},
	})
	fmt.Fprintf(os.Stderr, "bascule: %v\nbascule: rebooting in 30 seconds\n", err)
	time.Sleep(30 * time.Second)
	unix.Sync()
	if err := bootflow.SysReboot(unix.LINUX_REBOOT_CMD_RESTART, ""); err != nil {
		fmt.Fprintf(os.Stderr, "bascule: %v\n", err)
	}
	select {}
}
