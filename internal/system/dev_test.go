package system

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestSystemDevice(t *testing.T) {
	if _, err := os.Stat(MountSystem); err == nil {
		t.Skip(MountSystem + " exists on this machine")
	}
	dev, err := SystemDevice()
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat("/")
	if err != nil {
		t.Fatal(err)
	}
	if want := uint64(fi.Sys().(*syscall.Stat_t).Dev); dev != want {
		t.Errorf("SystemDevice() = %#x, want st_dev of / %#x", dev, want)
	}
}

func TestDeviceNumber(t *testing.T) {
	file := filepath.Join(t.TempDir(), "disk.img")
	os.WriteFile(file, nil, 0o644)
	if _, err := DeviceNumber(file); err == nil || !strings.Contains(err.Error(), "not a block device") {
		t.Errorf("regular file: %v", err)
	}
	if _, err := DeviceNumber(file + ".missing"); err == nil || !strings.Contains(err.Error(), "disk.img.missing") {
		t.Errorf("missing file: %v", err)
	}
	// Any block device of the machine will do to see st_rdev come back.
	entries, _ := os.ReadDir("/sys/class/block")
	for _, e := range entries {
		path := "/dev/" + e.Name()
		fi, err := os.Stat(path)
		if err != nil || fi.Mode()&os.ModeDevice == 0 || fi.Mode()&os.ModeCharDevice != 0 {
			continue
		}
		dev, err := DeviceNumber(path)
		if err != nil {
			t.Fatal(err)
		}
		if want := uint64(fi.Sys().(*syscall.Stat_t).Rdev); dev != want {
			t.Errorf("DeviceNumber(%s) = %#x, want %#x", path, dev, want)
		}
		return
	}
	t.Log("no block device node found; st_rdev not checked")
}
