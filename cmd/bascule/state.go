package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bascule-ota/bascule/internal/hooks"
	"github.com/bascule-ota/bascule/internal/state"
)

// The state commands only leave a flag or marker; pre-init acts on it at
// the next boot (internal/initmode), when nothing uses the state.

func cmdStateReset(args []string) error {
	fs := flag.NewFlagSet("state reset", flag.ContinueOnError)
	backup := fs.Bool("backup", false, "keep the current state as a profile instead of deleting it")
	name := fs.String("backup-name", "", "name of the kept profile (default default.<YYYYmmddHHMMSS>)")
	if _, err := tool.Parse("state reset", fs, args, 0, 0); err != nil {
		return err
	}
	keep := ""
	switch {
	case *backup && *name != "":
		keep = *name
	case *backup:
		keep = state.DefaultBackupName(time.Now())
	case *name != "":
		warn("--backup-name is ignored without --backup")
	}
	if keep != "" {
		if err := state.CheckProfileName(keep); err != nil {
			return fmt.Errorf("--backup-name: %w", err)
		}
	}
	if _, err := os.Stat(state.Dir); err != nil {
		return fmt.Errorf("state management is not active: %w", err)
	}
	if err := lock(); err != nil {
		return err
	}
	if err := hooks.Run(hooks.DefaultDir, "state-reset", "prepare", nil, hooks.Options{Warn: warn}); err != nil {
		return fmt.Errorf("not resetting: %w", err)
	}
	if err := state.RequestReset(state.Dir, keep); err != nil {
		return err
	}
	if keep != "" {
		fmt.Fprintf(os.Stderr, "The state is reset at the next boot and kept as profile %s. Rebooting.\n", keep)
	} else {
		fmt.Fprintln(os.Stderr, "The state is reset at the next boot. Rebooting.")
	}
	return rebootDevice()
}

func cmdStateForcePersist(args []string) error {
	fs := flag.NewFlagSet("state overlay force-persist", flag.ContinueOnError)
	pos, err := tool.Parse("state overlay force-persist", fs, args, 1, 1)
	if err != nil {
		return err
	}
	switch pos[0] {
	case "true":
		return state.SetForcePersist(state.Dir, true)
	case "false":
		return state.SetForcePersist(state.Dir, false)
	}
	return fmt.Errorf("state overlay force-persist: %q is neither true nor false", pos[0])
}

func cmdDataWipe(args []string) error {
	fs := flag.NewFlagSet("data wipe", flag.ContinueOnError)
	yes := fs.Bool("yes", false, "confirm that everything on the data partition is to be erased")
	noReboot := fs.Bool("no-reboot", false, "do not reboot now; the wipe happens at the next boot")
	if _, err := tool.Parse("data wipe", fs, args, 0, 0); err != nil {
		return err
	}
	if !*yes {
		return errors.New("data wipe erases everything on the data partition at the next boot: confirm with --yes")
	}
	if err := lock(); err != nil {
		return err
	}
	d, err := openDevice()
	if err != nil {
		return err
	}
	if err := d.remountConfig(true); err != nil {
		return err
	}
	werr := state.RequestDataWipe(d.configDir)
	if err := d.remountConfig(false); werr == nil {
		werr = err
	}
	if werr != nil {
		return werr
	}
	if *noReboot {
		fmt.Fprintln(os.Stderr, "The data partition is wiped at the next boot.")
		return nil
	}
	fmt.Fprintln(os.Stderr, "The data partition is wiped at the next boot. Rebooting.")
	return d.flow.Reboot(false)
}

// rebootDevice reboots through the boot flow, or plainly when the device
// cannot be opened (a reset must not depend on the config partition).
func rebootDevice() error {
	d, err := openDevice()
	if err != nil {
		warn(fmt.Sprintf("%v; rebooting without the boot flow", err))
		return orderlyReboot(unix.LINUX_REBOOT_CMD_RESTART, "")
	}
	return d.flow.Reboot(false)
}
