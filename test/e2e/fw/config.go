package fw

import (
	"fmt"
	"strconv"
	"strings"
)

// maxAutoboot is the documented size limit of autoboot.txt.
const maxAutoboot = 512

// Autoboot is what autoboot.txt says for one boot.
type Autoboot struct {
	// BootPartition is boot_partition, 0 when it is not set (0 also means
	// "the default partition" to the firmware).
	BootPartition int
	// TrybootAB is tryboot_a_b=1: with the tryboot flag set, load
	// config.txt (not tryboot.txt) from the selected partition.
	TrybootAB bool
}

// ParseAutoboot evaluates autoboot.txt for a boot with or without the
// tryboot flag. Only the [all], [none] and [tryboot] filters are valid in
// this file; anything else is an error rather than a guess, so that the
// model never decides what the firmware would not. As in config.txt, a
// later setting overrides an earlier one.
func ParseAutoboot(data []byte, tryboot bool) (Autoboot, error) {
	var a Autoboot
	if len(data) > maxAutoboot {
		return a, fmt.Errorf("autoboot.txt: %d bytes, more than the firmware's %d", len(data), maxAutoboot)
	}
	err := eachSetting(data, func(filter string) (bool, error) {
		switch filter {
		case "all":
			return true, nil
		case "none":
			return false, nil
		case "tryboot":
			return tryboot, nil
		}
		return false, fmt.Errorf("filter [%s] is not allowed in autoboot.txt", filter)
	}, func(key, value string) error {
		switch key {
		case "boot_partition":
			n, err := strconv.Atoi(value)
			if err != nil || n < 0 || n > 62 {
				return fmt.Errorf("boot_partition=%s is not a partition number", value)
			}
			a.BootPartition = n
		case "tryboot_a_b":
			a.TrybootAB = value == "1"
		default:
			return fmt.Errorf("setting %q is not modelled", key)
		}
		return nil
	})
	if err != nil {
		return Autoboot{}, fmt.Errorf("autoboot.txt: %w", err)
	}
	return a, nil
}

// Config is the part of config.txt that decides what is loaded.
type Config struct {
	Kernel    string // kernel= or the Pi 4 default for arm_64bit
	Initramfs string // initramfs <file> followkernel; "" if none
	Cmdline   string // cmdline=, default cmdline.txt
}

// ParseConfig evaluates config.txt (or tryboot.txt) for a Raspberry Pi 4
// Model B booting with or without the tryboot flag. Settings that would
// change what is loaded but are not modelled (os_prefix, auto_initramfs,
// device_tree, boot_ramdisk, an initramfs at a fixed address) are errors;
// settings about the GPU, overlays and the like do not change the choice
// of partition, kernel, initramfs or command line and are ignored.
func ParseConfig(data []byte, tryboot bool) (Config, error) {
	c := Config{Cmdline: "cmdline.txt"}
	arm64 := false
	err := eachSetting(data, func(filter string) (bool, error) {
		switch filter {
		case "all", "pi4":
			return true, nil
		case "none", "pi0", "pi0w", "pi02", "pi1", "pi2", "pi3", "pi3+", "pi400", "cm4", "cm4s", "pi5", "cm5", "pi500":
			return false, nil
		case "tryboot":
			return tryboot, nil
		}
		return false, fmt.Errorf("filter [%s] is not modelled", filter)
	}, func(key, value string) error {
		switch key {
		case "kernel":
			c.Kernel = value
		case "arm_64bit":
			arm64 = value == "1"
		case "cmdline":
			c.Cmdline = strings.TrimPrefix(value, "/")
		case "initramfs":
			f := strings.Fields(value)
			if len(f) != 2 || f[1] != "followkernel" {
				return fmt.Errorf("initramfs %q: only \"initramfs <file> followkernel\" is modelled", value)
			}
			c.Initramfs = f[0]
		case "os_prefix", "auto_initramfs", "device_tree", "boot_ramdisk", "ramfsfile", "kernel_address":
			return fmt.Errorf("setting %q is not modelled", key)
		}
		return nil
	})
	if err != nil {
		return Config{}, err
	}
	if c.Kernel == "" {
		c.Kernel = "kernel7l.img"
		if arm64 {
			c.Kernel = "kernel8.img"
		}
	}
	c.Kernel = strings.TrimPrefix(c.Kernel, "/")
	c.Initramfs = strings.TrimPrefix(c.Initramfs, "/")
	return c, nil
}

// eachSetting walks the lines of a config file: "[filter]" lines switch
// whether the following settings apply (filter says), "key=value" and,
// for initramfs, "key value" lines are settings, "#" starts a comment.
func eachSetting(data []byte, filter func(string) (bool, error), set func(key, value string) error) error {
	active := true
	for n, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, "[") {
			if !strings.HasSuffix(line, "]") {
				return fmt.Errorf("line %d: %q: unterminated filter", n+1, line)
			}
			var err error
			if active, err = filter(strings.ToLower(line[1 : len(line)-1])); err != nil {
				return fmt.Errorf("line %d: %w", n+1, err)
			}
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			key, value, ok = strings.Cut(line, " ")
			if !ok || key != "initramfs" {
				return fmt.Errorf("line %d: %q is not a setting", n+1, line)
			}
		}
		if !active {
			continue
		}
		if err := set(strings.TrimSpace(key), strings.TrimSpace(value)); err != nil {
			return fmt.Errorf("line %d: %w", n+1, err)
		}
	}
	return nil
}

// Request is what the OS asked the firmware for when it restarted:
// reboot(2) with LINUX_REBOOT_CMD_RESTART2 and an argument such as
// "0 tryboot". The Raspberry Pi kernel's watchdog driver passes the
// leading number on as the partition to boot, its firmware driver sets
// the one-shot tryboot flag when the argument contains " tryboot".
type Request struct {
	Partition int // 0: the default (autoboot.txt decides)
	Tryboot   bool
}

// restartLine is what the kernel prints before it restarts.
const restartLine = "reboot: Restarting system"

// ParseRestart finds the last restart the kernel announced on a console
// log and returns the request it carried. ok is false when the log shows
// no restart: a panic reboot (emergency_restart prints no such line), a
// power-off or a power cut, none of which carries a request.
func ParseRestart(console string) (req Request, ok bool, err error) {
	i := strings.LastIndex(console, restartLine)
	if i < 0 {
		return Request{}, false, nil
	}
	rest := console[i+len(restartLine):]
	if nl := strings.IndexAny(rest, "\r\n"); nl >= 0 {
		rest = rest[:nl]
	} else {
		// The line is not complete: the restart did not happen yet.
		return Request{}, false, nil
	}
	arg, hasArg := strings.CutPrefix(rest, " with command '")
	if !hasArg {
		return Request{}, true, nil
	}
	end := strings.LastIndexByte(arg, '\'')
	if end < 0 {
		return Request{}, false, fmt.Errorf("restart line %q: no closing quote", rest)
	}
	arg = arg[:end]
	// bcm2835_wdt: the leading number is the partition (6 bits, 63 is
	// "halt"); raspberrypi firmware driver: " tryboot" sets the flag.
	digits := len(arg) - len(strings.TrimLeft(arg, "0123456789"))
	if digits > 0 {
		p, err := strconv.Atoi(arg[:digits])
		if err != nil || p >= 63 {
			return Request{}, false, fmt.Errorf("restart argument %q: partition out of range", arg)
		}
		req.Partition = p
	}
	req.Tryboot = strings.Contains(arg, " tryboot")
	return req, true, nil
}
