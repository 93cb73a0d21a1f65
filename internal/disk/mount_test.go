package disk

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestIsMountPoint(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(dir, "proc-link")
	if err := os.Symlink("/proc", link); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]bool{
		"/":          true,
		"/proc":      true,
		link:         true,
		"/proc/self": false,
		dir:          false,
		sub:          false,
	} {
		got, err := IsMountPoint(path)
		if err != nil || got != want {
			t.Errorf("IsMountPoint(%q) = %v, %v; want %v", path, got, err, want)
		}
	}
	if _, err := IsMountPoint(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing path: err = %v", err)
	}
}

// TestIsMountPointMountinfo covers mounts on the parent's own filesystem,
// which only the mount table reveals, with a fake mountinfo.
func TestIsMountPointMountinfo(t *testing.T) {
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	bind := filepath.Join(dir, "a b")
	if err := os.Mkdir(bind, 0o755); err != nil {
		t.Fatal(err)
	}
	info := filepath.Join(dir, "mountinfo")
	escaped := strings.ReplaceAll(bind, " ", `\040`)
	table := "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n" +
		"99 27 254:0 /srv " + escaped + " rw,relatime shared:1 - ext4 /dev/vda rw\n"
	if err := os.WriteFile(info, []byte(table), 0o644); err != nil {
		t.Fatal(err)
	}
	old := mountinfo
	t.Cleanup(func() { mountinfo = old })
	mountinfo = info
	if got, err := IsMountPoint(bind); err != nil || !got {
		t.Errorf("IsMountPoint(%q) = %v, %v; want true", bind, got, err)
	}
	if got, err := IsMountPoint(dir); err != nil || got {
		t.Errorf("IsMountPoint(%q) = %v, %v; want false", dir, got, err)
	}
	// Without /proc the device comparison alone answers.
	mountinfo = filepath.Join(dir, "missing")
	if got, err := IsMountPoint(bind); err != nil || got {
		t.Errorf("IsMountPoint(%q) without mountinfo = %v, %v; want false", bind, got, err)
	}
}
