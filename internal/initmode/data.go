package initmode

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bascule-ota/bascule/internal/disk"
	"github.com/bascule-ota/bascule/internal/state"
)

// DataMountErrorLog (on the data mount) records why the data partition
// could not be mounted; `system info` then reports the state as "Error".
const DataMountErrorLog = ".rugix/data-mount-error.log"

// wipeTrash (on the data partition) collects what a data wipe removes,
// so that the wipe marker can be cleared before the slow deletion.
const wipeTrash = ".bascule-wipe"

// mountData mounts the data partition. When that fails, the boot goes on
// with an empty directory on the /run tmpfs (the system looks freshly
// reset, and nothing is written to a partition that may be damaged) and
// the reason is written to DataMountErrorLog, unless fail-on-mount-error
// is set.
func (b *boot) mountData() error {
	if err := os.MkdirAll(b.dataDir, 0o755); err != nil {
		return fmt.Errorf("mount data partition at %s: %w", b.dataDir, err)
	}
	c := b.cfg.DataPartition
	if c.Disabled {
		b.log.warnf("data partition disabled: state is kept in memory until the next boot")
		b.dataEphemeral = true
		return nil
	}
	if ok, err := disk.IsMountPoint(b.dataDir); err == nil && ok {
		return nil
	}
	dev, devErr := b.sys.DataPartitionDevice()
	err := b.attachData(dev, devErr)
	if err == nil {
		b.wipeData()
		return nil
	}
	if c.FailOnMountError {
		return err
	}
	b.log.errorf("%v; continuing with state in memory, lost at the next boot", err)
	b.dataEphemeral = true
	log := filepath.Join(b.dataDir, DataMountErrorLog)
	werr := os.MkdirAll(filepath.Dir(log), 0o755)
	if werr == nil {
		werr = os.WriteFile(log, []byte(err.Error()+"\n"), 0o644)
	}
	if werr != nil {
		b.log.errorf("write %s: %v", log, werr)
	}
	return nil
}

// attachData mounts the data partition at dataDir: through the mount
// script if one is configured, else after `fsck -p` with noatime.
func (b *boot) attachData(dev string, devErr error) error {
	c := b.cfg.DataPartition
	if d := c.Driver; d != nil {
		switch d.Type {
		case "plaintext-ext4":
		case "custom":
			if devErr != nil {
				return fmt.Errorf("data partition: %w", devErr)
			}
			return b.runScript(d.MountScript, []string{dev, b.dataDir},
				"RUGIX_DATA_DEVICE="+dev, "RUGIX_DATA_MOUNT_POINT="+b.dataDir)
		default:
			return fmt.Errorf("data partition driver %s is not supported by bascule's pre-init", d.Type)
		}
	}
	if c.MountScript != "" {
		args := []string{b.dataDir}
		if devErr == nil {
			args = append(args, dev)
		}
		return b.runScript(c.MountScript, args)
	}
	if devErr != nil {
		return fmt.Errorf("data partition: %w", devErr)
	}
	b.fsck(dev)
	if err := mountDevice(dev, b.dataDir, unix.MS_NOATIME, "", b.path("/proc"), "ext4"); err != nil {
		return fmt.Errorf("mount data partition %s at %s: %w", dev, b.dataDir, err)
	}
	return nil
}

// runScript runs a configured script of the system with args.
func (b *boot) runScript(script string, args []string, env ...string) error {
	path := b.path(script)
	cmd := exec.Command(path, args...)
	cmd.Env = append(append([]string{}, b.env...), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(out.String())
		if msg != "" {
			msg = ": " + msg
		}
		return fmt.Errorf("data partition mount script %s %s: %w%s", script, strings.Join(args, " "), err, msg)
	}
	if out.Len() > 0 {
		b.log.infof("%s: %s", script, strings.TrimSpace(out.String()))
	}
	if ok, err := disk.IsMountPoint(b.dataDir); err == nil && !ok {
		b.log.warnf("data partition mount script %s succeeded, but %s is not a mount point", script, b.dataDir)
	}
	return nil
}

// fsck runs `fsck -p` on the data partition if fsck is installed. Its
// result only informs: a file system it could not repair is still
// mounted if the kernel accepts it.
func (b *boot) fsck(dev string) {
	p, err := lookPath("fsck")
	if err != nil {
		b.log.warnf("fsck not found in %s: data partition %s not checked", Path, dev)
		return
	}
	cmd := exec.Command(p, "-p", dev)
	cmd.Env = b.env
	start := time.Now()
	out, err := cmd.CombinedOutput()
	b.fsckTime += time.Since(start)
	var ee *exec.ExitError
	switch {
	case err == nil:
		if s := strings.TrimSpace(string(out)); s != "" {
			b.log.infof("fsck: %s", s)
		}
	case errors.As(err, &ee) && ee.ExitCode() < 4:
		b.log.warnf("fsck -p %s repaired the file system (exit status %d): %s", dev, ee.ExitCode(), strings.TrimSpace(string(out)))
	default:
		b.log.errorf("fsck -p %s: %v: %s", dev, err, strings.TrimSpace(string(out)))
	}
}

// wipeData carries out `data wipe`: everything on the data partition is
// moved aside, the marker is cleared, and what was moved is deleted. A
// power cut before the marker is gone repeats the wipe; one after it
// leaves only the moved-aside directory, deleted at the next boot.
func (b *boot) wipeData() {
	trash := filepath.Join(b.dataDir, wipeTrash)
	if !state.DataWipeRequested(b.configDir) {
		if _, err := os.Stat(trash); err == nil {
			if err := os.RemoveAll(trash); err != nil {
				b.log.warnf("remove wiped data: %v", err)
			}
		}
		return
	}
	b.log.infof("wiping the data partition (requested by `data wipe`)")
	if err := b.moveAside(trash); err != nil {
		b.log.errorf("data wipe: %v", err)
		return
	}
	err := b.remountConfig(true)
	if err == nil {
		err = state.ClearDataWipe(b.configDir)
		if rerr := b.remountConfig(false); err == nil {
			err = rerr
		}
	}
	if err != nil {
		b.log.errorf("data wipe: %v (the wipe repeats at the next boot)", err)
		return
	}
	if err := os.RemoveAll(trash); err != nil {
		b.log.warnf("data wipe: %v", err)
	}
}

func (b *boot) moveAside(trash string) error {
	if err := os.MkdirAll(trash, 0o700); err != nil {
		return err
	}
	entries, err := os.ReadDir(b.dataDir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Name() == wipeTrash || e.Name() == "lost+found" {
			continue
		}
		target := filepath.Join(trash, e.Name())
		for i := 1; exists(target); i++ {
			target = filepath.Join(trash, fmt.Sprintf("%s.%d", e.Name(), i))
		}
		if err := os.Rename(filepath.Join(b.dataDir, e.Name()), target); err != nil {
			return err
		}
	}
	return syncFS(b.dataDir)
}

// syncFS flushes the file system holding dir.
func syncFS(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", dir, err)
	}
	defer unix.Close(fd)
	if err := unix.Syncfs(fd); err != nil {
		return fmt.Errorf("syncfs %s: %w", dir, err)
	}
	return nil
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}
