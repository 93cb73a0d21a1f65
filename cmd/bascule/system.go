package main

import (
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/bascule-ota/bascule/internal/bootflow"
	"github.com/bascule-ota/bascule/internal/cli"
	"github.com/bascule-ota/bascule/internal/disk"
	"github.com/bascule-ota/bascule/internal/hooks"
	"github.com/bascule-ota/bascule/internal/progress"
	"github.com/bascule-ota/bascule/internal/system"
)

func cmdSystemInfo(args []string) error {
	fs := flag.NewFlagSet("system info", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON on stdout (also when stdout is not a terminal)")
	if _, err := tool.Parse("system info", fs, args, 0, 0); err != nil {
		return err
	}
	d, err := openDevice()
	if err != nil {
		return err
	}
	def, err := d.defaultGroup()
	if err != nil {
		warn(err.Error())
	}
	info := d.sys.Info(system.InfoSource{
		BootFlow:     d.flow.Name(),
		DefaultGroup: def,
		LoadState:    d.db.Load,
		DataDevice: func() (string, error) {
			bd, err := disk.FindBlockDevice(system.MountData)
			if err != nil {
				return "", err
			}
			return bd.Device, nil
		},
		Warn: warn,
	})
	if fw, ok := d.flow.(bootflow.FirmwareInfo); ok && info.Boot != nil {
		if tryboot, part, ok := fw.Firmware(); ok {
			info.Boot.Firmware = &system.FirmwareInfo{Partition: part, Tryboot: tryboot}
		}
	}
	if err := info.WriteSummary(os.Stderr); err != nil {
		return err
	}
	if f := info.Boot; f != nil && f.Firmware != nil {
		fmt.Fprintf(os.Stderr, "Firmware: booted partition %d (tryboot %v)\n", f.Firmware.Partition, f.Firmware.Tryboot)
	}
	if *asJSON || !progress.IsTerminal(os.Stdout) {
		return cli.PrintJSON(info, false)
	}
	return nil
}

func cmdSystemCommit(args []string) error {
	fs := flag.NewFlagSet("system commit", flag.ContinueOnError)
	healthy := fs.Bool("if-healthy", false, "run the system-commit/health-check hooks first and commit only if they all pass")
	if _, err := tool.Parse("system commit", fs, args, 0, 0); err != nil {
		return err
	}
	if err := lock(); err != nil {
		return err
	}
	d, err := openDevice()
	if err != nil {
		return err
	}
	if d.active == "" {
		return errors.New("the running root is not a slot of any boot group: nothing to commit")
	}
	def, err := d.defaultGroup()
	if err != nil {
		return err
	}
	if def == d.active {
		fmt.Fprintln(os.Stderr, "Active boot group is already the default!")
		return nil
	}
	if *healthy {
		if err := hooks.Run(hooks.DefaultDir, "system-commit", "health-check", nil, hooks.Options{Warn: warn}); err != nil {
			return fmt.Errorf("not committing: health check failed: %w", err)
		}
	}
	if err := hooks.Run(hooks.DefaultDir, "system-commit", "pre-commit", nil, hooks.Options{Warn: warn}); err != nil {
		return fmt.Errorf("not committing: %w", err)
	}
	if err := d.flow.Commit(d.active); err != nil {
		return fmt.Errorf("commit %s: %w", d.active, err)
	}
	fmt.Fprintf(os.Stderr, "Committed boot group %s\n", d.active)
	return hooks.Run(hooks.DefaultDir, "system-commit", "post-commit", nil, hooks.Options{Warn: warn})
}

func cmdSystemReboot(args []string) error {
	fs := flag.NewFlagSet("system reboot", flag.ContinueOnError)
	spare := fs.Bool("spare", false, "boot the spare group once")
	if _, err := tool.Parse("system reboot", fs, args, 0, 0); err != nil {
		return err
	}
	d, err := openDevice()
	if err != nil {
		return err
	}
	if *spare {
		def, err := d.defaultGroup()
		if err != nil {
			return err
		}
		sp := d.sys.Spare(def)
		if sp == "" {
			return errors.New("there is no spare boot group")
		}
		if err := d.flow.SetTryNext(sp); err != nil {
			return fmt.Errorf("arm boot group %s: %w", sp, err)
		}
	}
	return d.flow.Reboot(*spare)
}
