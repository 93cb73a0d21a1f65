package bootflow

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/bascule-ota/bascule/internal/atomicfile"
	"golang.org/x/sys/unix"
)

// rpiPostInstall points the freshly written boot slot of group at the
// group's system partition: the two boot partitions come from the same
// image, so their cmdline.txt must be told apart after the install.
func rpiPostInstall(e abEnv, group string) error { return patchBootSlot(e, group, patchRPiBoot) }

// grubPostInstall writes boot.grubenv into group's boot slot; the second
// stage grub.cfg there boots the kernel with ${rugpi_bootargs}.
func grubPostInstall(e abEnv, group string) error { return patchBootSlot(e, group, patchGrubBoot) }

// patchBootSlot mounts group's boot slot and lets patch rewrite it for the
// group's root partition.
func patchBootSlot(e abEnv, group string, patch func(dir, root, initPath string, keepInit bool) error) error {
	if _, err := e.part(group); err != nil {
		return err
	}
	root, err := rootArg(e.Env, group)
	if err != nil {
		return err
	}
	dev, err := bootSlot(e.Env, group)
	if err != nil {
		return err
	}
	return withMounted(dev, func(dir string) error {
		return patch(dir, root, e.InitPath, e.KeepInit)
	})
}

// rootArg is "PARTUUID=<uuid>" of group's system slot, lower case as Rugix
// writes it (the kernel compares case-insensitively anyway).
func rootArg(env Env, group string) (string, error) {
	if env.RootPartUUID == nil {
		return "", errors.New("post-install: no way to find the system partition's PARTUUID")
	}
	uuid, err := env.RootPartUUID(group)
	if err != nil {
		return "", fmt.Errorf("PARTUUID of group %s: %w", group, err)
	}
	if uuid == "" {
		return "", fmt.Errorf("group %s: empty PARTUUID", group)
	}
	return "PARTUUID=" + strings.ToLower(uuid), nil
}

func bootSlot(env Env, group string) (string, error) {
	if env.BootSlot == nil {
		return "", errors.New("post-install: no way to find the boot slot")
	}
	dev, err := env.BootSlot(group)
	if err != nil {
		return "", fmt.Errorf("boot slot of group %s: %w", group, err)
	}
	return dev, nil
}

// patchCmdline rewrites a kernel command line as Rugix does: drop root=,
// init=, panic* and quiet, then append panic=60, root= and init=. With
// keepInit a user's own init= stays and none is added (rugix/rugix#125).
// Unlike Rugix, a non-zero panic=N of the old line is kept instead of 60:
// the point is that a panicking trial boot resets at all, and a board that
// chose panic=1 should not wait a minute longer to fall back.
func patchCmdline(cmdline, root, initPath string, keepInit bool) string {
	var out []string
	panicArg := "panic=60"
	for _, tok := range strings.FieldsFunc(cmdline, isASCIISpace) {
		switch {
		case strings.HasPrefix(tok, "panic="):
			if n, err := strconv.Atoi(strings.TrimPrefix(tok, "panic=")); err == nil && n != 0 {
				panicArg = tok
			}
			continue
		case strings.HasPrefix(tok, "root="), strings.HasPrefix(tok, "panic"), tok == "quiet":
			continue
		case strings.HasPrefix(tok, "init=") && !keepInit:
			continue
		}
		out = append(out, tok)
	}
	out = append(out, panicArg, "root="+root)
	if !keepInit {
		out = append(out, "init="+initPath)
	}
	return strings.Join(out, " ")
}

func isASCIISpace(r rune) bool {
	return r == ' ' || r == '\t' || r == '\n' || r == '\f' || r == '\r'
}

// patchRPiBoot patches cmdline.txt in the mounted boot partition dir (no
// trailing newline, as Rugix) and sets bootargs to the same line in its
// boot.env, which the rpi-uboot second stage imports.
func patchRPiBoot(dir, root, initPath string, keepInit bool) error {
	path := filepath.Join(dir, "cmdline.txt")
	old, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	cmdline := patchCmdline(string(old), root, initPath, keepInit)
	if err := atomicfile.Write(path, []byte(cmdline), 0o644); err != nil {
		return err
	}

	envPath := filepath.Join(dir, "boot.env")
	var env envVars
	if _, err := os.Stat(envPath); err == nil {
		if env, err = readEnvFile(envPath); err != nil {
			return err
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("stat %s: %w", envPath, err)
	}
	env.set("bootargs", cmdline)
	data, err := encodeEnvFile(env)
	if err != nil {
		return fmt.Errorf("%s: %w", envPath, err)
	}
	return atomicfile.Write(envPath, data, 0o644)
}

// patchGrubBoot writes boot.grubenv with rugpi_bootargs as Rugix does. With
// keepInit the init= of an existing boot.grubenv is kept instead of ours.
func patchGrubBoot(dir, root, initPath string, keepInit bool) error {
	path := filepath.Join(dir, "boot.grubenv")
	args := "ro init=" + initPath + " root=" + root
	if keepInit {
		args = "ro root=" + root
		if b, err := os.ReadFile(path); err == nil {
			if old, err := decodeGrubEnv(b); err == nil {
				v, _ := old.get("rugpi_bootargs")
				for _, tok := range strings.FieldsFunc(v, isASCIISpace) {
					if strings.HasPrefix(tok, "init=") {
						args = "ro " + tok + " root=" + root
						break
					}
				}
			}
		}
	}
	data, err := encodeGrubEnv(envVars{{"rugpi_bootargs", args}})
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return atomicfile.Write(path, data, 0o644)
}

// withMounted mounts the file system on dev at a temporary directory, runs
// fn on it and unmounts it again.
func withMounted(dev string, fn func(dir string) error) (err error) {
	fstype, err := probeFS(dev)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "bascule-boot-")
	if err != nil {
		return fmt.Errorf("mount point for %s: %w", dev, err)
	}
	defer os.Remove(dir)
	if err := unix.Mount(dev, dir, fstype, unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount %s (%s) on %s: %w", dev, fstype, dir, err)
	}
	defer func() {
		if uerr := unix.Unmount(dir, 0); uerr != nil && err == nil {
			err = fmt.Errorf("unmount %s from %s: %w", dev, dir, uerr)
		}
	}()
	return fn(dir)
}

// probeFS names the file system type to mount dev with: ext4 for an
// ext2/3/4 superblock (GRUB boot slots, and the tests, as this test kernel
// has no vfat), otherwise vfat (Raspberry Pi boot slots).
func probeFS(dev string) (string, error) {
	f, err := os.Open(dev)
	if err != nil {
		return "", fmt.Errorf("open %s: %w", dev, err)
	}
	defer f.Close()
	var magic [2]byte
	if _, err := f.ReadAt(magic[:], 1024+0x38); err == nil && magic == [2]byte{0x53, 0xef} {
		return "ext4", nil
	}
	return "vfat", nil
}
