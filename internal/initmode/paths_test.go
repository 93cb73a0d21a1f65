package initmode

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestResolveIn(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "data/lib"), 0o755)
	os.MkdirAll(filepath.Join(root, "usr/lib"), 0o755)
	os.Symlink("/data", filepath.Join(root, "var"))        // absolute: relative to root
	os.Symlink("usr/lib", filepath.Join(root, "lib"))      // relative
	os.Symlink("../../etc", filepath.Join(root, "usr/up")) // climbs to the root, not beyond
	os.Symlink("loop", filepath.Join(root, "loop"))
	for in, want := range map[string]string{
		"/var/lib/app":   "data/lib/app",
		"/lib/x":         "usr/lib/x",
		"/usr/up/passwd": "etc/passwd",
		"/missing/a/b":   "missing/a/b",
		"/../../etc":     "etc",
		"/data":          "data",
	} {
		got, err := resolveIn(root, in)
		if err != nil || got != filepath.Join(root, want) {
			t.Errorf("%s: %s %v, want %s", in, got, err, want)
		}
	}
	if _, err := resolveIn(root, "/loop/x"); err == nil {
		t.Error("symlink loop resolved")
	}
}

func TestCopyTree(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	os.MkdirAll(filepath.Join(src, "sub"), 0o750)
	os.WriteFile(filepath.Join(src, "sub/f"), []byte("data"), 0o640)
	unix.Chmod(filepath.Join(src, "sub/f"), 0o4640)
	os.Symlink("sub/f", filepath.Join(src, "link"))
	unix.Mkfifo(filepath.Join(src, "fifo"), 0o600)
	old := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	os.Chtimes(filepath.Join(src, "sub/f"), old, old)
	os.Chtimes(filepath.Join(src, "sub"), old, old)
	dst := filepath.Join(t.TempDir(), "dst")
	if err := copyTreeTo(src, dst); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "sub/f")); string(b) != "data" {
		t.Fatalf("content %q", b)
	}
	fi, _ := os.Stat(filepath.Join(dst, "sub/f"))
	if fi.Mode()&os.ModePerm != 0o640 || fi.Mode()&os.ModeSetuid == 0 || !fi.ModTime().Equal(old) {
		t.Fatalf("file %v %v", fi.Mode(), fi.ModTime())
	}
	di, _ := os.Stat(filepath.Join(dst, "sub"))
	if di.Mode()&os.ModePerm != 0o750 || !di.ModTime().Equal(old) {
		t.Fatalf("dir %v %v", di.Mode(), di.ModTime())
	}
	if l, err := os.Readlink(filepath.Join(dst, "link")); err != nil || l != "sub/f" {
		t.Fatalf("link %q %v", l, err)
	}
	if fi, err := os.Lstat(filepath.Join(dst, "fifo")); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		t.Fatalf("fifo %v %v", fi, err)
	}
	if _, err := os.Stat(dst + ".bascule-copy"); err == nil {
		t.Fatal("temporary copy left")
	}
	// A single file copies too.
	if err := copyTreeTo(filepath.Join(src, "sub/f"), filepath.Join(t.TempDir(), "f")); err != nil {
		t.Fatal(err)
	}
}
