package bootflow

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/bascule-ota/bascule/internal/atomicfile"
	"golang.org/x/sys/unix"
)

// autoboot.txt exactly as Rugix writes it (no trailing newline): [all] is
// what boots by default, [tryboot] what boots when the firmware's tryboot
// flag is set.
const (
	autobootA = "[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3"
	autobootB = "[all]\ntryboot_a_b=1\nboot_partition=3\n[tryboot]\nboot_partition=2"
)

// autobootFor is the autoboot.txt that makes boot partition part the default.
func autobootFor(part int) []byte {
	if part == 3 {
		return []byte(autobootB)
	}
	return []byte(autobootA)
}

// autobootPartition returns the boot_partition autoboot.txt selects in
// section ("all" or "tryboot"): the first boot_partition line in such a
// section whose value is 2 or 3, as Rugix reads it. Lines before the first
// section header count as [all], as they do for the firmware.
func autobootPartition(data []byte, section string) (string, error) {
	cur := "all"
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "[") {
			cur = ""
			if end := strings.IndexByte(line, ']'); end > 0 {
				cur = line[1:end]
			}
			continue
		}
		v, ok := strings.CutPrefix(line, "boot_partition=")
		if !ok || cur != section {
			continue
		}
		if v = strings.TrimSpace(v); v == "2" || v == "3" {
			return v, nil
		}
	}
	return "", fmt.Errorf("no boot_partition=2 or =3 in [%s]", section)
}

// tryboot is the rpi-tryboot flow: autoboot.txt on the config partition
// names the default partition, the firmware's one-shot tryboot flag the
// other one.
type tryboot struct {
	abEnv
	// armed: SetTryNext armed a try but there is no mailbox, so Reboot
	// must ask the kernel for "0 tryboot".
	armed bool
}

func (f *tryboot) Name() string { return RPiTryboot }

func (f *tryboot) Default() (string, error) {
	path := f.configPath("autoboot.txt")
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	part, err := autobootPartition(data, "all")
	if err != nil {
		return "", fmt.Errorf("parse %s: %w", path, err)
	}
	return f.group(part)
}

// SetTryNext sets or clears the tryboot bit through the VideoCore mailbox.
// Without /dev/vcio it only remembers the request; Reboot then passes
// "0 tryboot" to the kernel, whose firmware driver sets the flag.
func (f *tryboot) SetTryNext(group string) error {
	if _, err := f.part(group); err != nil {
		return err
	}
	def, err := f.Default()
	if err != nil {
		return err
	}
	try := group != def
	if !f.hasMailbox() {
		f.armed = try
		return nil
	}
	f.armed = false
	return setTrybootFlag(f.Vcio, try)
}

func (f *tryboot) hasMailbox() bool {
	_, err := os.Stat(f.Vcio)
	return err == nil
}

func (f *tryboot) Commit(active string) error {
	part, err := f.part(active)
	if err != nil {
		return err
	}
	path := f.configPath("autoboot.txt")
	want := autobootFor(part)
	if cur, err := os.ReadFile(path); err == nil && bytes.Equal(cur, want) {
		return nil
	}
	return f.writable(func() error { return atomicfile.Overwrite(path, want, 0o644) })
}

func (f *tryboot) PostInstall(group string) error { return rpiPostInstall(f.abEnv, group) }

// Reboot restarts with "0 tryboot" when a try is armed and there is no
// mailbox to have set the flag already (Rugix avoids this path because
// BusyBox's reboot cannot pass the argument; calling reboot(2) directly
// has no such problem, but needs the Raspberry Pi kernel driver).
func (f *tryboot) Reboot(tryNext bool) error {
	if (tryNext || f.armed) && !f.hasMailbox() {
		unix.Sync()
		return f.RebootFn(rebootRestart2, "0 tryboot")
	}
	return plainReboot(f.Env)
}

func (f *tryboot) Firmware() (tryboot bool, partition int, ok bool) {
	return readFirmware(f.DeviceTree)
}

// readFirmware reads /chosen/bootloader/{tryboot,partition}: big-endian
// u32 cells the Raspberry Pi firmware leaves in the device tree, i.e. what
// it really booted. ok is false where they are missing (not a Pi, old
// firmware, U-Boot with its own device tree).
func readFirmware(deviceTree string) (tryboot bool, partition int, ok bool) {
	cell := func(name string) (uint32, bool) {
		b, err := os.ReadFile(filepath.Join(deviceTree, "chosen", "bootloader", name))
		if err != nil || len(b) != 4 {
			return 0, false
		}
		return binary.BigEndian.Uint32(b), true
	}
	t, ok1 := cell("tryboot")
	p, ok2 := cell("partition")
	if !ok1 || !ok2 {
		return false, 0, false
	}
	return t != 0, int(p), true
}
