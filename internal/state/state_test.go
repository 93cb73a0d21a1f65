package state

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestDefaultBackupName(t *testing.T) {
	got := DefaultBackupName(time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC))
	if got != "default.20250304050607" {
		t.Fatal(got)
	}
	if err := CheckProfileName(got); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", "default", ".trash-default", "a/b", "..", strings.Repeat("x", 256)} {
		if CheckProfileName(bad) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestRequestReset(t *testing.T) {
	dir := t.TempDir()
	if err := RequestReset(filepath.Join(dir, "missing"), ""); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("missing state dir: %v", err)
	}
	if err := RequestReset(dir, "a/b"); err == nil {
		t.Fatal("bad backup name accepted")
	}
	if err := RequestReset(dir, "keep"); err != nil {
		t.Fatal(err)
	}
	if got := read(t, filepath.Join(dir, ".rugix/reset-state")); got != "keep" {
		t.Fatalf("flag %q", got)
	}
	ok, backup, when, err := PendingReset(dir)
	if err != nil || !ok || backup != "keep" || when.IsZero() {
		t.Fatal(ok, backup, when, err)
	}
	if err := RequestReset(dir, ""); err != nil {
		t.Fatal(err)
	}
	if ok, backup, _, _ := PendingReset(dir); !ok || backup != "" {
		t.Fatal(ok, backup)
	}
	if ok, _, _, _ := PendingReset(t.TempDir()); ok {
		t.Fatal("reset pending without flag")
	}
}

func TestResetWipe(t *testing.T) {
	data := t.TempDir()
	profile := ProfileDir(data)
	write(t, filepath.Join(profile, "persist/etc/x"), "x")
	write(t, filepath.Join(profile, ResetFlag), "")
	kept, err := Reset(data, "", time.Now())
	if err != nil || kept != "" {
		t.Fatal(kept, err)
	}
	entries, _ := os.ReadDir(filepath.Join(data, ProfilesDir))
	if len(entries) != 0 {
		t.Fatalf("left %v", entries)
	}
	// Nothing to reset is fine.
	if _, err := Reset(data, "", time.Now()); err != nil {
		t.Fatal(err)
	}
}

func TestResetBackup(t *testing.T) {
	data := t.TempDir()
	profile := ProfileDir(data)
	mk := func() {
		write(t, filepath.Join(profile, "app/db"), "v1")
		write(t, filepath.Join(profile, ResetFlag), "mine")
	}
	mk()
	kept, err := Reset(data, "mine", time.Now())
	if err != nil || kept != "mine" {
		t.Fatal(kept, err)
	}
	if read(t, filepath.Join(data, "state/mine/app/db")) != "v1" {
		t.Fatal("content not kept")
	}
	if exists(filepath.Join(data, "state/mine", ResetFlag)) || exists(profile) {
		t.Fatal("flag kept or profile still there")
	}
	// The same name again: a free name is used instead of failing.
	mk()
	if kept, err := Reset(data, "mine", time.Now()); err != nil || kept != "mine.1" {
		t.Fatal(kept, err)
	}
	// An unusable name falls back to the default name at the flag's time.
	mk()
	when := time.Date(2024, 1, 2, 3, 4, 5, 0, time.Local)
	if kept, err := Reset(data, "../../etc", when); err != nil || kept != "default.20240102030405" {
		t.Fatal(kept, err)
	}
}

func TestCleanTrash(t *testing.T) {
	data := t.TempDir()
	write(t, filepath.Join(data, "state/.trash-default/a/b"), "x")
	write(t, filepath.Join(data, "state/default/keep"), "x")
	if err := CleanTrash(data); err != nil {
		t.Fatal(err)
	}
	if exists(filepath.Join(data, "state/.trash-default")) || !exists(filepath.Join(data, "state/default/keep")) {
		t.Fatal("wrong clean-up")
	}
	if err := CleanTrash(t.TempDir()); err != nil {
		t.Fatal(err)
	}
}

func TestForcePersist(t *testing.T) {
	dir := t.TempDir()
	if ForcePersist(dir) {
		t.Fatal("set")
	}
	if err := SetForcePersist(dir, true); err != nil || !ForcePersist(dir) {
		t.Fatal(err)
	}
	if !exists(filepath.Join(dir, ".rugix/force-persist-overlay")) {
		t.Fatal("flag path")
	}
	if err := SetForcePersist(dir, false); err != nil || ForcePersist(dir) {
		t.Fatal(err)
	}
	if err := SetForcePersist(dir, false); err != nil {
		t.Fatal("clearing twice:", err)
	}
	if err := SetForcePersist(filepath.Join(dir, "nope"), true); err == nil {
		t.Fatal("missing state dir accepted")
	}
}

func TestDataWipeMarker(t *testing.T) {
	cfg := t.TempDir()
	if DataWipeRequested(cfg) {
		t.Fatal("requested")
	}
	if err := RequestDataWipe(cfg); err != nil || !DataWipeRequested(cfg) {
		t.Fatal(err)
	}
	if !exists(filepath.Join(cfg, ".rugix/wipe-data")) {
		t.Fatal("marker path")
	}
	if err := ClearDataWipe(cfg); err != nil || DataWipeRequested(cfg) {
		t.Fatal(err)
	}
}

func TestDeferredReboot(t *testing.T) {
	for _, tc := range []struct {
		in, group string
		bad       bool
	}{
		{"", "", false},
		{"\n", "", false},
		{`{"version":1,"bootGroup":"b"}`, "b", false},
		{`{"version":1}`, "", false},
		{`{"version":2,"bootGroup":"b"}`, "", true},
		{`garbage`, "", true},
	} {
		g, err := ParseDeferredReboot([]byte(tc.in))
		if (err != nil) != tc.bad || g != tc.group {
			t.Errorf("%q: %q %v", tc.in, g, err)
		}
	}
	data := t.TempDir()
	if _, ok, err := ReadDeferredReboot(data); ok || err != nil {
		t.Fatal(ok, err)
	}
	if err := WriteDeferredReboot(data, "b"); err != nil {
		t.Fatal(err)
	}
	if got := read(t, filepath.Join(data, ".rugix/deferred-reboot-spare")); got != `{"version":1,"bootGroup":"b"}` {
		t.Fatalf("marker %s", got)
	}
	if g, ok, err := ReadDeferredReboot(data); !ok || err != nil || g != "b" {
		t.Fatal(g, ok, err)
	}
	if err := ClearDeferredReboot(data); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := ReadDeferredReboot(data); ok {
		t.Fatal("still there")
	}
}

func TestLoadConfig(t *testing.T) {
	root := t.TempDir()
	if c, w := LoadConfig(root); c.Overlay != OverlayDiscard || len(c.Persist) != 0 || len(w) != 0 {
		t.Fatalf("defaults: %+v %v", c, w)
	}
	write(t, filepath.Join(root, ConfigPath), `
[[persist]]
directory = "/var/lib/app/"
`)
	// Name order, not directory order: 10-b before 20-a.
	write(t, filepath.Join(root, ConfigDir, "20-a.toml"), `
overlay = "discard"
[[persist]]
file = "/etc/hostname"
`)
	write(t, filepath.Join(root, ConfigDir, "10-b.toml"), `
overlay = "persist"
overlay-fallback = "in-memory"
colour = "blue"
[[persist]]
file = "/etc/app.conf"
default = "x=1\n"
[[persist]]
directory = "/var/lib/app"
`)
	write(t, filepath.Join(root, ConfigDir, "30-broken.toml"), `overlay = "sometimes"`)
	write(t, filepath.Join(root, ConfigDir, "40-bad-persist.toml"), "[[persist]]\ndirectory = \"relative\"\n")
	write(t, filepath.Join(root, ConfigDir, ".hidden.toml"), `overlay = "disabled"`)
	c, w := LoadConfig(root)
	if c.Overlay != OverlayPersist || c.OverlayFallback != OverlayInMemory {
		t.Fatalf("overlay %+v", c)
	}
	var paths []string
	for _, p := range c.Persist {
		paths = append(paths, p.Path())
	}
	if strings.Join(paths, " ") != "/var/lib/app /etc/app.conf /etc/hostname" {
		t.Fatalf("persist %v", paths)
	}
	if c.Persist[1].Default == nil || *c.Persist[1].Default != "x=1\n" || c.Persist[0].Directory == "" || c.Persist[2].File == "" {
		t.Fatalf("entries %+v", c.Persist)
	}
	all := strings.Join(w, "\n")
	for _, want := range []string{`unknown key "colour"`, "30-broken.toml skipped", "40-bad-persist.toml skipped", "already persisted", `overlay = "discard" ignored`} {
		if !strings.Contains(all, want) {
			t.Errorf("no warning %q in\n%s", want, all)
		}
	}
}

func TestParseConfigErrors(t *testing.T) {
	for _, bad := range []string{
		`overlay = 1`,
		`overlay-fallback = "persist"`,
		"[[persist]]\ndirectory = \"/a\"\nfile = \"/b\"\n",
		"[[persist]]\ndirectory = \"/a\"\ndefault = \"x\"\n",
		"[[persist]]\n",
		"[[persist]]\nfile = \"/\"\n",
	} {
		if _, _, err := ParseConfig([]byte(bad), "t.toml"); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
	c, _, err := ParseConfig([]byte(`overlay = "in-memory"`), "t.toml")
	if err != nil || c.Overlay != OverlayInMemory {
		t.Fatal(c, err)
	}
}
