package bootflow

import (
	"fmt"
	"strings"
)

// uboot is the generic U-Boot flow: rugix_bootpart (2 or 3) in the U-Boot
// environment is the default, rugix_boot_spare=1 asks the boot script to
// boot the other partition once; the script clears it and saves.
type uboot struct{ abEnv }

func (f *uboot) Name() string { return Uboot }

func (f *uboot) Default() (string, error) {
	env, err := openFwEnv(f.FwEnvConfig)
	if err != nil {
		return "", err
	}
	part, ok := env.vars.get("rugix_bootpart")
	if !ok {
		return "", fmt.Errorf("rugix_bootpart is not set in the U-Boot environment (%s)", f.FwEnvConfig)
	}
	return f.group(strings.TrimSpace(part))
}

func (f *uboot) SetTryNext(group string) error {
	if _, err := f.part(group); err != nil {
		return err
	}
	env, err := openFwEnv(f.FwEnvConfig)
	if err != nil {
		return err
	}
	part, _ := env.vars.get("rugix_bootpart")
	def, err := f.group(strings.TrimSpace(part))
	if err != nil {
		return fmt.Errorf("rugix_bootpart in the U-Boot environment (%s): %w", f.FwEnvConfig, err)
	}
	spare := "0"
	if group != def {
		spare = "1"
	}
	return f.setVar(env, "rugix_boot_spare", spare)
}

func (f *uboot) Commit(active string) error {
	part, err := f.part(active)
	if err != nil {
		return err
	}
	env, err := openFwEnv(f.FwEnvConfig)
	if err != nil {
		return err
	}
	return f.setVar(env, "rugix_bootpart", fmt.Sprint(part))
}

// setVar writes name=value unless it is already set, so that a commit on
// every boot does not wear the flash or remount anything.
func (f *uboot) setVar(env *fwEnv, name, value string) error {
	if cur, ok := env.vars.get(name); ok && cur == value {
		return nil
	}
	return f.writable(func() error { return env.set(envVar{name, value}) })
}

// PostInstall has nothing to patch: the boot script builds the kernel
// command line itself.
func (f *uboot) PostInstall(group string) error {
	_, err := f.part(group)
	return err
}
