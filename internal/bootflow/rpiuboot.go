package bootflow

import (
	"bytes"
	"fmt"
	"os"

	"github.com/bascule-ota/bascule/internal/atomicfile"
)

// rpiUboot is the rpi-uboot flow: Rugix's first-stage boot.scr imports
// bootpart.default.env and boot_spare.env from the config partition; when
// boot_spare=1 it boots the other partition and resets the flag itself.
type rpiUboot struct{ abEnv }

func (f *rpiUboot) Name() string { return RPiUboot }

func (f *rpiUboot) Default() (string, error) {
	path := f.configPath("bootpart.default.env")
	v, err := readEnvFile(path)
	if err != nil {
		return "", err
	}
	part, ok := v.get("bootpart")
	if !ok {
		return "", fmt.Errorf("%s: bootpart is not set", path)
	}
	return f.group(part)
}

// SetTryNext writes boot_spare.env, in place like every state file on the
// FAT config partition (atomicfile.Overwrite).
func (f *rpiUboot) SetTryNext(group string) error {
	if _, err := f.part(group); err != nil {
		return err
	}
	def, err := f.Default()
	if err != nil {
		return err
	}
	spare := "0"
	if group != def {
		spare = "1"
	}
	return f.writeEnvFile("boot_spare.env", envVars{{"boot_spare", spare}})
}

func (f *rpiUboot) Commit(active string) error {
	part, err := f.part(active)
	if err != nil {
		return err
	}
	return f.writeEnvFile("bootpart.default.env", envVars{{"bootpart", fmt.Sprint(part)}})
}

// writeEnvFile replaces a config-partition env file unless it already has
// exactly these bytes.
func (f *rpiUboot) writeEnvFile(name string, v envVars) error {
	data, err := encodeEnvFile(v)
	if err != nil {
		return err
	}
	path := f.configPath(name)
	if cur, err := os.ReadFile(path); err == nil && bytes.Equal(cur, data) {
		return nil
	}
	return f.writable(func() error { return atomicfile.Overwrite(path, data, 0o644) })
}

func (f *rpiUboot) PostInstall(group string) error { return rpiPostInstall(f.abEnv, group) }

func (f *rpiUboot) Firmware() (tryboot bool, partition int, ok bool) {
	return readFirmware(f.DeviceTree)
}

func readEnvFile(path string) (envVars, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	v, err := decodeEnvFile(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}
