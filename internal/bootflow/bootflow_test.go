package bootflow

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDetect(t *testing.T) {
	for _, c := range []struct {
		files []string
		dirs  []string
		want  string
	}{
		{files: []string{"autoboot.txt", "bootpart.default.env"}, want: RPiTryboot},
		{files: []string{"bootpart.default.env", "rugpi/primary.grubenv"}, dirs: []string{"EFI"}, want: RPiUboot},
		{files: []string{"rugpi/primary.grubenv"}, dirs: []string{"EFI"}, want: Grub},
		{files: []string{"rugpi/primary.grubenv"}},        // no EFI/
		{files: []string{"rugpi/primary.grubenv", "EFI"}}, // EFI is a file
		{files: []string{"rugpi/secondary.grubenv"}, dirs: []string{"EFI"}},
		{},
	} {
		dir := t.TempDir()
		for _, d := range c.dirs {
			must(t, os.MkdirAll(filepath.Join(dir, d), 0o755))
		}
		for _, f := range c.files {
			must(t, os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o755))
			must(t, os.WriteFile(filepath.Join(dir, f), nil, 0o644))
		}
		got, err := Detect(dir)
		if got != c.want || (err != nil) != (c.want == "") {
			t.Errorf("%v %v: %q, %v; want %q", c.files, c.dirs, got, err, c.want)
		}
	}
}

func TestNew(t *testing.T) {
	te := newTestEnv(t)
	te.write("autoboot.txt", rugixAutobootA)
	f, err := New("", te.Env)
	if err != nil || f.Name() != RPiTryboot {
		t.Fatalf("detected %v, %v", f, err)
	}
	for kind, name := range map[string]string{RPiUboot: RPiUboot, Uboot: Uboot, Grub: Grub} {
		if f := te.flow(kind); f.Name() != name {
			t.Errorf("New(%q).Name() = %q", kind, f.Name())
		}
	}
	for _, c := range []struct {
		kind   string
		groups []string
		want   string
	}{
		{"rauc-uboot", []string{"a", "b"}, "not supported"},
		{RPiTryboot, []string{"a"}, "two boot groups"},
		{Grub, []string{"a", "a"}, "both named"},
		{Custom, nil, "no controller"},
	} {
		env := te.Env
		env.Groups = c.groups
		if _, err := New(c.kind, env); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%q, %v): %v, want %q", c.kind, c.groups, err, c.want)
		}
	}
	env := te.Env
	env.ConfigDir = t.TempDir()
	if _, err := New("", env); err == nil {
		t.Error("detected a flow in an empty directory")
	}
}

func TestUnsupported(t *testing.T) {
	te := newTestEnv(t)
	for _, kind := range []string{RPiTryboot, RPiUboot, Uboot, Grub} {
		f := te.flow(kind)
		if err := f.MarkGood("a"); !errors.Is(err, ErrUnsupported) {
			t.Errorf("%s MarkGood: %v", kind, err)
		}
		if err := f.MarkBad("b"); !errors.Is(err, ErrUnsupported) {
			t.Errorf("%s MarkBad: %v", kind, err)
		}
		must(t, f.PreInstall("b"))
		if err := f.PreInstall("x"); err == nil {
			t.Errorf("%s PreInstall(x) succeeded", kind)
		}
		if err := f.Commit("x"); err == nil {
			t.Errorf("%s Commit(x) succeeded", kind)
		}
		must(t, f.Reboot(false))
	}
	for _, r := range te.reboots {
		if r != (rebootCall{rebootRestart, ""}) {
			t.Errorf("reboot %+v", r)
		}
	}
}

// TestRemountFailure: a failing rw remount stops the write; a failing ro
// remount after a good write is reported.
func TestRemountFailure(t *testing.T) {
	te := newTestEnv(t)
	te.write("autoboot.txt", rugixAutobootA)
	te.rw = true // Remount is replaced below; writes are expected
	boom := errors.New("boom")
	env := te.Env
	env.Remount = func(rw bool) error {
		if rw {
			return boom
		}
		return nil
	}
	f, err := New(RPiTryboot, env)
	must(t, err)
	if err := f.Commit("b"); !errors.Is(err, boom) || !strings.Contains(err.Error(), "read-write") {
		t.Errorf("Commit: %v", err)
	}
	mustDefault(t, f, "a")
	env.Remount = func(rw bool) error {
		if !rw {
			return boom
		}
		return nil
	}
	if f, err = New(RPiTryboot, env); err != nil {
		t.Fatal(err)
	}
	if err := f.Commit("b"); !errors.Is(err, boom) || !strings.Contains(err.Error(), "read-only") {
		t.Errorf("Commit: %v", err)
	}
	mustDefault(t, f, "b")
}
