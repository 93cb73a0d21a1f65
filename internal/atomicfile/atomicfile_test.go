package atomicfile

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "autoboot.txt")
	for _, data := range [][]byte{[]byte("first"), []byte("second, longer"), {}} {
		if err := Write(path, data, 0o640); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("got %q, want %q", got, data)
		}
		if _, err := os.Stat(TempName(path)); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("%s left behind: %v", TempName(path), err)
		}
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640", st.Mode().Perm())
	}
}

func TestWriteMissingDir(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nodir", "f")
	err := Write(path, []byte("x"), 0o644)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("got %v, want a not-exist error", err)
	}
}

// TestCrashAtEveryStep cuts the power after each step of Write and checks
// what a reader finds afterwards: the complete old content before the
// rename, the complete new content from the rename on. Data not yet
// fsynced is assumed lost or torn, which is simulated by mangling the
// temporary file. The next Write must then succeed and leave no stray file.
func TestCrashAtEveryStep(t *testing.T) {
	old := []byte("[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3")
	next := []byte("[all]\ntryboot_a_b=1\nboot_partition=3\n[tryboot]\nboot_partition=2")
	for i, step := range Steps {
		for _, hadOld := range []bool{true, false} {
			dir := t.TempDir()
			path := filepath.Join(dir, "autoboot.txt")
			if hadOld {
				if err := Write(path, old, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			restore := SetCrashHook(func(p, s string) bool { return p == path && s == step })
			err := Write(path, next, 0o644)
			restore()
			if !errors.Is(err, ErrCrashed) {
				t.Fatalf("step %s: Write returned %v, want ErrCrashed", step, err)
			}
			if step == StepCreate || step == StepWrite {
				// Not fsynced: the temporary file may hold anything.
				if err := os.WriteFile(TempName(path), next[:len(next)/3], 0o644); err != nil {
					t.Fatal(err)
				}
			}

			got, err := os.ReadFile(path)
			renamed := i >= 3
			switch {
			case renamed && !bytes.Equal(got, next):
				t.Errorf("step %s: got %q (%v), want the new content", step, got, err)
			case !renamed && hadOld && !bytes.Equal(got, old):
				t.Errorf("step %s: got %q (%v), want the old content", step, got, err)
			case !renamed && !hadOld && !errors.Is(err, fs.ErrNotExist):
				t.Errorf("step %s: got %q (%v), want no file as before", step, got, err)
			}

			// Recovery: the next write wins and cleans up.
			newer := []byte("newer")
			if err := Write(path, newer, 0o644); err != nil {
				t.Fatalf("step %s: write after crash: %v", step, err)
			}
			if got, _ := os.ReadFile(path); !bytes.Equal(got, newer) {
				t.Errorf("step %s: after recovery got %q", step, got)
			}
			if _, err := os.Stat(TempName(path)); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("step %s: stray %s after recovery", step, TempName(path))
			}
		}
	}
}

func TestCrashHookRestore(t *testing.T) {
	restore := SetCrashHook(func(string, string) bool { return true })
	inner := SetCrashHook(nil)
	path := filepath.Join(t.TempDir(), "f")
	if err := Write(path, []byte("x"), 0o644); err != nil {
		t.Fatalf("hook not cleared: %v", err)
	}
	inner()
	if err := Write(path, []byte("y"), 0o644); !errors.Is(err, ErrCrashed) {
		t.Fatalf("hook not restored: %v", err)
	}
	restore()
	if err := Write(path, []byte("z"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Overwrite changes a file of the same size in place (the same inode: on
// FAT the same cluster) and falls back to Write when the size changes or
// the file is new.
func TestOverwrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "autoboot.txt")
	ino := func() uint64 {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Sys().(*syscall.Stat_t).Ino
	}
	if err := Overwrite(path, []byte("boot_partition=2"), 0o644); err != nil {
		t.Fatal(err)
	}
	first := ino()
	var steps []string
	restore := SetCrashHook(func(_, step string) bool { steps = append(steps, step); return false })
	if err := Overwrite(path, []byte("boot_partition=3"), 0o644); err != nil {
		t.Fatal(err)
	}
	restore()
	if b, _ := os.ReadFile(path); string(b) != "boot_partition=3" {
		t.Fatalf("content %q", b)
	}
	if ino() != first {
		t.Fatal("same size: the file was replaced, not overwritten in place")
	}
	if fmt.Sprint(steps) != "[write fsync]" {
		t.Fatalf("steps %v", steps)
	}
	if _, err := os.Stat(TempName(path)); !os.IsNotExist(err) {
		t.Fatalf("temporary file: %v", err)
	}
	// Another size: replaced by Write.
	if err := Overwrite(path, []byte("boot_partition=3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "boot_partition=3\n" {
		t.Fatalf("content %q", b)
	}
	if ino() == first {
		t.Fatal("new size: written in place")
	}
	// A simulated cut after the in-place write leaves old or new bytes,
	// never a mix (a one-sector write).
	restore = SetCrashHook(func(_, step string) bool { return step == StepWrite })
	err := Overwrite(path, []byte("boot_partition=2\n"), 0o644)
	restore()
	if err != ErrCrashed {
		t.Fatalf("crash hook: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "boot_partition=2\n" && string(b) != "boot_partition=3\n" {
		t.Fatalf("after the cut: %q", b)
	}
}
