// Package fw models the Raspberry Pi 4 EEPROM bootloader as far as the
// rpi-tryboot A/B flow depends on it, so that an emulated device can be
// booted the way a real Pi would boot it. The test harness plays the
// firmware: before each boot it asks this model which partition to boot,
// with or without the tryboot flag, and which kernel, initramfs and command
// line that partition's config.txt names; the guest learns the outcome from
// /chosen/bootloader/{tryboot,partition} in its device tree.
//
// The behaviour follows the Raspberry Pi documentation (config_txt/
// autoboot.adoc, conditional.adoc, raspberry-pi/bootflow-eeprom.adoc,
// configuration/device-tree.adoc; see test/e2e/tryboot-model.md):
//
//   - The one-shot tryboot flag is set only by a restart whose argument
//     contains " tryboot" (reboot(2) with "0 tryboot"), and it is cleared
//     before the OS starts: whatever happens in that boot, the next one is
//     a normal boot. A power cut clears it as well.
//   - autoboot.txt is read from partition 1; [all] applies always, [none]
//     never, [tryboot] only with the flag; boot_partition selects the
//     partition unless the restart named one.
//   - With the flag and tryboot_a_b=1 the selected partition's config.txt is
//     used, with the flag but without tryboot_a_b its tryboot.txt.
//   - A partition is bootable if it is a FAT partition that the bootloader
//     can open and holds start4.elf; if the selected one is not, the
//     bootloader falls back to partition 1.
//
// Whatever the model does not know (other filters, os_prefix, partitions
// inside a type 0x0f extended partition, ...) is an error: it must never
// make a decision the real firmware would not.
package fw

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/bascule-ota/bascule/internal/disk"
)

// DefaultStartFile is the file whose presence makes a partition bootable
// for the Raspberry Pi 4 bootloader.
const DefaultStartFile = "start4.elf"

// Firmware is the bootloader of one device. Its only state is the request
// of the last restart, which lives as long as the machine has power.
type Firmware struct {
	// StartFile is the file a bootable partition must hold; "" skips the
	// check (for images made without the Raspberry Pi firmware files).
	StartFile string
	next      Request
}

// New returns the firmware of a Raspberry Pi 4 that was just powered on.
func New() *Firmware { return &Firmware{StartFile: DefaultStartFile} }

// Restarted records the request of the restart the OS ended with, read
// from the console log of that boot (see ParseRestart). A log without a
// restart line (a panic reboot, a power-off) leaves no request.
func (f *Firmware) Restarted(console string) (Request, error) {
	req, _, err := ParseRestart(console)
	if err != nil {
		f.next = Request{}
		return Request{}, err
	}
	f.next = req
	return req, nil
}

// PowerCut forgets any request: the flag does not survive a power loss.
func (f *Firmware) PowerCut() { f.next = Request{} }

// Pending is the request the next boot will see.
func (f *Firmware) Pending() Request { return f.next }

// Boot is the firmware's decision for one boot and the files it loaded.
type Boot struct {
	Partition int  // the FAT partition booted (device tree "partition")
	Tryboot   bool // the flag was set for this boot (device tree "tryboot")
	Config    string
	Kernel    string // path of the kernel extracted to the work directory
	Initramfs string // path of the initramfs, "" if none
	Cmdline   string // kernel command line (first line of cmdline.txt)
}

// Boot boots the disk image: it takes the pending request (clearing it
// before anything else happens, as the firmware does), selects the
// partition and copies the kernel and initramfs the partition's config
// names into dir.
func (f *Firmware) Boot(image, dir string) (*Boot, error) {
	req := f.next
	f.next = Request{}

	table, err := disk.ReadDevice(image)
	if err != nil {
		return nil, err
	}
	part := req.Partition
	auto := Autoboot{}
	p1, err := openFAT(image, table, 1)
	if err != nil {
		return nil, fmt.Errorf("partition 1: %w", err)
	}
	data, err := p1.read("autoboot.txt")
	switch {
	case err == nil:
		if auto, err = ParseAutoboot(data, req.Tryboot); err != nil {
			return nil, err
		}
		if part == 0 {
			part = auto.BootPartition
		}
	case errors.Is(err, os.ErrNotExist):
	default:
		return nil, err
	}
	if part == 0 {
		part = 1
	}
	vol, why := f.bootable(image, table, part)
	if why != nil && part != 1 {
		// Since the 2022-10-18 bootloader: fail over to partition 1.
		part = 1
		vol, why = f.bootable(image, table, part)
	}
	if why != nil {
		return nil, fmt.Errorf("no bootable partition: %w", why)
	}
	b := &Boot{Partition: part, Tryboot: req.Tryboot, Config: "config.txt"}
	if req.Tryboot && !auto.TrybootAB {
		b.Config = "tryboot.txt"
	}
	cfgData, err := vol.read(b.Config)
	if err != nil {
		return nil, fmt.Errorf("partition %d: %w", part, err)
	}
	cfg, err := ParseConfig(cfgData, req.Tryboot)
	if err != nil {
		return nil, fmt.Errorf("partition %d: %s: %w", part, b.Config, err)
	}
	cmdline, err := vol.read(cfg.Cmdline)
	if err != nil {
		return nil, fmt.Errorf("partition %d: %w", part, err)
	}
	line, _, _ := strings.Cut(string(cmdline), "\n")
	b.Cmdline = strings.TrimSpace(line)
	if b.Kernel, err = vol.extract(cfg.Kernel, dir); err != nil {
		return nil, fmt.Errorf("partition %d: %w", part, err)
	}
	if cfg.Initramfs != "" {
		if b.Initramfs, err = vol.extract(cfg.Initramfs, dir); err != nil {
			return nil, fmt.Errorf("partition %d: %w", part, err)
		}
	}
	return b, nil
}

// bootable opens partition n and checks that the bootloader would boot it.
func (f *Firmware) bootable(image string, table *disk.Table, n int) (*fatVolume, error) {
	vol, err := openFAT(image, table, n)
	if err != nil {
		return nil, fmt.Errorf("partition %d: %w", n, err)
	}
	if f.StartFile != "" {
		if _, err := vol.read(f.StartFile); err != nil {
			return nil, fmt.Errorf("partition %d: %w", n, err)
		}
	}
	return vol, nil
}

// fatTypes are the MBR partition types of FAT file systems.
var fatTypes = map[string]bool{"1": true, "4": true, "6": true, "b": true, "c": true, "e": true, "ef": true}

// fatVolume is a FAT file system inside a disk image, read with mtools.
type fatVolume struct {
	image  string
	offset uint64
}

// openFAT returns partition n of the image if the bootloader can read it
// as FAT.
func openFAT(image string, table *disk.Table, n int) (*fatVolume, error) {
	if table.Type != "dos" {
		return nil, fmt.Errorf("partition table %s is not modelled", table.Type)
	}
	p := table.Partition(n)
	if p == nil || p.Extended {
		return nil, fmt.Errorf("no partition %d", n)
	}
	if !fatTypes[p.Type] {
		return nil, fmt.Errorf("type 0x%s is not FAT", p.Type)
	}
	if n > 4 {
		for _, e := range table.Partitions {
			if e.Extended && e.Type != "5" && e.Type != "85" {
				// documentation#1659, firmware#1887.
				return nil, fmt.Errorf("logical partition inside an extended partition of type 0x%s, which the bootloader cannot open", e.Type)
			}
		}
	}
	return &fatVolume{image: image, offset: p.Start}, nil
}

// mtools runs an mtools command on the volume.
func (v *fatVolume) mtools(name string, args ...string) ([]byte, error) {
	cmd := exec.Command(name, append([]string{"-i", fmt.Sprintf("%s@@%d", v.image, v.offset)}, args...)...)
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1", "MTOOLSRC=/dev/null")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if strings.Contains(msg, "not found") {
			return nil, fmt.Errorf("%s: %w", args[len(args)-2], os.ErrNotExist)
		}
		return nil, fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, msg)
	}
	return stdout.Bytes(), nil
}

// read returns a file of the volume; a missing file is os.ErrNotExist.
func (v *fatVolume) read(name string) ([]byte, error) {
	return v.mtools("mcopy", "-n", "::/"+name, "-")
}

// extract copies a file of the volume into dir and returns its path.
func (v *fatVolume) extract(name, dir string) (string, error) {
	data, err := v.read(name)
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, filepath.Base(name))
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return "", fmt.Errorf("extract %s: %w", name, err)
	}
	return path, nil
}

// DeviceTree writes out, a copy of the machine's device tree base with
// /chosen/bootloader/tryboot and /chosen/bootloader/partition set as the
// firmware sets them (one big-endian u32 cell each), using fdtput.
func DeviceTree(base, out string, b *Boot) error {
	data, err := os.ReadFile(base)
	if err != nil {
		return fmt.Errorf("device tree: %w", err)
	}
	if err := os.WriteFile(out, data, 0o644); err != nil {
		return fmt.Errorf("device tree: %w", err)
	}
	tryboot := "0"
	if b.Tryboot {
		tryboot = "1"
	}
	for _, args := range [][]string{
		{"-c", "-p", out, "/chosen/bootloader"},
		{"-t", "u", out, "/chosen/bootloader", "tryboot", tryboot},
		{"-t", "u", out, "/chosen/bootloader", "partition", fmt.Sprint(b.Partition)},
	} {
		if msg, err := exec.Command("fdtput", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("fdtput %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(msg)))
		}
	}
	return nil
}
