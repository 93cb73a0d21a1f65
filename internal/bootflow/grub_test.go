package bootflow

import (
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// grubEditenv runs grub-editenv on file with args.
func grubEditenv(t *testing.T, file string, args ...string) {
	t.Helper()
	tool := needTool(t, "grub-editenv")
	out, err := exec.Command(tool, append([]string{file}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("grub-editenv %s %v: %v: %s", file, args, err, out)
	}
}

func TestGrubEnvMatchesGrubEditenv(t *testing.T) {
	dir := t.TempDir()
	for i, vars := range []envVars{
		nil,
		{{"rugpi_bootpart", "2"}},
		{{"rugpi_bootpart", "3"}},
		{{"rugpi_boot_spare", "true"}},
		{{"rugpi_boot_spare", "false"}},
		{{"rugpi_bootargs", "ro init=/usr/bin/bascule root=PARTUUID=0fc63daf-8483-4772-8e79-3d69d8477de4"}},
		{{"a", "x"}, {"b", "back\\slash"}, {"c", "new\nline"}, {"d", ""}, {"e", "=#\t"}},
	} {
		file := filepath.Join(dir, "env"+string(rune('0'+i)))
		grubEditenv(t, file, "create")
		for _, v := range vars {
			grubEditenv(t, file, "set", v.name+"="+v.value)
		}
		want, err := os.ReadFile(file)
		must(t, err)
		got, err := encodeGrubEnv(vars)
		must(t, err)
		if !bytes.Equal(got, want) {
			t.Errorf("%v:\nours         %q\ngrub-editenv %q", vars, got, want)
		}
		dec, err := decodeGrubEnv(want)
		must(t, err)
		if len(dec) != len(vars) {
			t.Errorf("decoded %v, want %v", dec, vars)
		}
		for _, v := range vars {
			if x, ok := dec.get(v.name); !ok || x != v.value {
				t.Errorf("decoded %s=%q, want %q", v.name, x, v.value)
			}
		}
	}
}

// TestGrubEnvReadsGrubEditenv reads what grub-editenv leaves after edits
// in place (overwrite, unset), and grub-editenv reads ours.
func TestGrubEnvReadsGrubEditenv(t *testing.T) {
	file := filepath.Join(t.TempDir(), "grubenv")
	grubEditenv(t, file, "create")
	grubEditenv(t, file, "set", "rugpi_bootpart=2", "x=1", "y=multi\nline")
	grubEditenv(t, file, "set", "rugpi_bootpart=3")
	grubEditenv(t, file, "unset", "x")
	b, err := os.ReadFile(file)
	must(t, err)
	v, err := decodeGrubEnv(b)
	must(t, err)
	if p, _ := v.get("rugpi_bootpart"); p != "3" || len(v) != 2 {
		t.Fatalf("decoded %q", v)
	}
	if y, _ := v.get("y"); y != "multi\nline" {
		t.Fatalf("y = %q", y)
	}

	ours, err := encodeGrubEnv(envVars{{"rugpi_boot_spare", "true"}, {"z", "a\\b"}})
	must(t, err)
	must(t, os.WriteFile(file, ours, 0o644))
	out, err := exec.Command("grub-editenv", file, "list").Output()
	must(t, err)
	if string(out) != "rugpi_boot_spare=true\nz=a\\b\n" {
		t.Fatalf("grub-editenv list: %q", out)
	}
}

func TestGrubEnvDecode(t *testing.T) {
	full, _ := encodeGrubEnv(envVars{{"rugpi_bootpart", "3"}})
	for _, c := range []struct {
		in   string
		want string // rugpi_bootpart or "-" for unset
		err  bool
	}{
		{string(full), "3", false},
		{grubEnvSignature + "rugpi_bootpart=3\n", "3", false},
		{grubEnvSignature + "rugpi_bootpart=3", "-", false}, // damaged tail: ignored like GRUB
		{grubEnvSignature + "rugpi_bootpart", "-", false},
		{grubEnvSignature + "# rugpi_bootpart=2\nrugpi_bootpart=3\n", "3", false},
		{grubEnvSignature + "rugpi_bootpart=\\3\n", "3", false},
		{"# GRUB Environment Blok\nrugpi_bootpart=3\n", "", true},
		{"", "", true},
	} {
		v, err := decodeGrubEnv([]byte(c.in))
		if (err != nil) != c.err {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		got, ok := v.get("rugpi_bootpart")
		if !ok {
			got = "-"
		}
		if !c.err && got != c.want {
			t.Errorf("%q: rugpi_bootpart %q, want %q", c.in, got, c.want)
		}
	}
	if _, err := encodeGrubEnv(envVars{{"x", strings.Repeat("y", 1000)}}); err == nil {
		t.Error("encoded more than 1024 bytes")
	}
}

// grubBoot does what Rugix's first-stage grub.cfg does: load the secondary
// and then the primary environment if `hashsum --check` accepts their
// sidecars, default to partition 2, honour and reset the spare flag.
func grubBoot(t *testing.T, dir string) string {
	t.Helper()
	bootpart := "2"
	for _, name := range []string{grubSecondary, grubPrimary} {
		env, err1 := os.ReadFile(filepath.Join(dir, name))
		sidecar, err2 := os.ReadFile(filepath.Join(dir, name+".sha1"))
		if err1 != nil || err2 != nil {
			continue
		}
		sum := sha1.Sum(env)
		if string(sidecar) != hex.EncodeToString(sum[:])+"  /"+name {
			continue
		}
		v, err := decodeGrubEnv(env)
		if err != nil {
			continue
		}
		if p, ok := v.get("rugpi_bootpart"); ok {
			bootpart = p
		}
	}
	spareFile := filepath.Join(dir, grubSpare)
	b, _ := os.ReadFile(spareFile)
	v, _ := decodeGrubEnv(b)
	if spare, _ := v.get("rugpi_boot_spare"); spare == "true" {
		bootpart = map[string]string{"2": "3", "3": "2"}[bootpart]
		off, _ := encodeGrubEnv(envVars{{"rugpi_boot_spare", "false"}})
		must(t, os.WriteFile(spareFile, off, 0o644)) // save_env, in place
	}
	return bootpart
}

// freshGrub lays out the config partition as Bakery ships it.
func freshGrub(t *testing.T, te *testEnv) {
	env, _ := encodeGrubEnv(envVars{{"rugpi_bootpart", "2"}})
	for _, name := range []string{grubPrimary, grubSecondary} {
		te.write(name, env)
		te.write(name+".sha1", grubSidecar(env, "/"+name))
	}
	spare, _ := encodeGrubEnv(envVars{{"rugpi_boot_spare", "false"}})
	te.write(grubSpare, spare)
	must(t, os.MkdirAll(te.path("EFI/BOOT"), 0o755))
}

func TestGrubSidecar(t *testing.T) {
	env, _ := encodeGrubEnv(envVars{{"rugpi_bootpart", "2"}})
	file := filepath.Join(t.TempDir(), "primary.grubenv")
	must(t, os.WriteFile(file, env, 0o644))
	out, err := exec.Command("sha1sum", file).Output()
	if err != nil {
		t.Skip("no sha1sum")
	}
	want := strings.Fields(string(out))[0] + "  /rugpi/primary.grubenv"
	if got := string(grubSidecar(env, "/rugpi/primary.grubenv")); got != want {
		t.Fatalf("sidecar %q, want %q", got, want)
	}
	if !grubSidecarOK(env, []byte(want), "/rugpi/primary.grubenv") ||
		!grubSidecarOK(env, []byte(strings.ToUpper(want[:40])+want[40:]+"\n"), "/rugpi/primary.grubenv") {
		t.Error("good sidecar rejected")
	}
	for _, bad := range []string{want[1:], want + "x", strings.Replace(want, "  ", " ", 1), ""} {
		if grubSidecarOK(env, []byte(bad), "/rugpi/primary.grubenv") {
			t.Errorf("bad sidecar %q accepted", bad)
		}
	}
}

func TestGrubUpdate(t *testing.T) {
	te := newTestEnv(t)
	freshGrub(t, te)
	if kind, err := Detect(te.ConfigDir); err != nil || kind != Grub {
		t.Fatalf("Detect: %q, %v", kind, err)
	}
	f := te.flow(Grub)
	mustDefault(t, f, "a")

	must(t, f.SetTryNext("b"))
	if v, _ := decodeGrubEnv(te.read(grubSpare)); len(v) != 1 || v[0] != (envVar{"rugpi_boot_spare", "true"}) {
		t.Fatalf("boot_spare.grubenv: %q", v)
	}
	if part := grubBoot(t, te.ConfigDir); part != "3" {
		t.Fatalf("GRUB booted %s, want the try on 3", part)
	}
	mustDefault(t, f, "a")
	must(t, f.Commit("b"))
	mustDefault(t, f, "b")
	if part := grubBoot(t, te.ConfigDir); part != "3" {
		t.Fatalf("after commit GRUB booted %s", part)
	}
	// Byte-exact files: env as grub-editenv writes it, sidecars as Rugix.
	want, _ := encodeGrubEnv(envVars{{"rugpi_bootpart", "3"}})
	for _, name := range []string{grubPrimary, grubSecondary} {
		if !bytes.Equal(te.read(name), want) {
			t.Errorf("%s: %q", name, te.read(name))
		}
		sum := sha1.Sum(want)
		if got := string(te.read(name + ".sha1")); got != hex.EncodeToString(sum[:])+"  /"+name {
			t.Errorf("%s.sha1: %q", name, got)
		}
	}
	must(t, f.SetTryNext("b"))
	if v, _ := decodeGrubEnv(te.read(grubSpare)); v[0].value != "false" {
		t.Fatal("spare flag not cleared")
	}
	remounts := te.remount
	must(t, f.Commit("b"))
	must(t, f.SetTryNext("b"))
	if te.remount != remounts {
		t.Error("no-op commit or disarm remounted")
	}
}

func TestGrubFailedTry(t *testing.T) {
	te := newTestEnv(t)
	freshGrub(t, te)
	f := te.flow(Grub)
	must(t, f.SetTryNext("b"))
	if part := grubBoot(t, te.ConfigDir); part != "3" {
		t.Fatalf("try booted %s", part)
	}
	if part := grubBoot(t, te.ConfigDir); part != "2" {
		t.Fatalf("after a failed try GRUB booted %s", part)
	}
	mustDefault(t, f, "a")
}

// TestGrubCommitCut cuts the power at every step of a commit: the sidecar
// and the env of the secondary, then of the primary, and between the two.
// GRUB must boot the old or the new default, and Default must say which.
func TestGrubCommitCut(t *testing.T) {
	for _, damaged := range []string{"", grubPrimary, grubPrimary + ".sha1", grubSecondary} {
		t.Run("damaged="+damaged, func(t *testing.T) {
			te := newTestEnv(t)
			f := te.flow(Grub)
			from := "a"
			setup := func() {
				freshGrub(t, te)
				if damaged != "" {
					// An earlier commit to b was cut: one copy is unusable.
					env, _ := encodeGrubEnv(envVars{{"rugpi_bootpart", "3"}})
					for _, name := range []string{grubPrimary, grubSecondary} {
						if name != strings.TrimSuffix(damaged, ".sha1") {
							te.write(name, env)
							te.write(name+".sha1", grubSidecar(env, "/"+name))
						}
					}
					te.write(damaged, []byte("garbage"))
				}
			}
			setup()
			if damaged != "" {
				from = "b"
				mustDefault(t, f, from)
			}
			to := map[string]string{"a": "b", "b": "a"}[from]
			seen := map[string]bool{}
			steps := te.cuts(setup, func() error { return f.Commit(to) }, func(step int) {
				def, err := f.Default()
				if err != nil {
					t.Fatalf("cut at step %d: %v", step, err)
				}
				if def != from && def != to {
					t.Fatalf("cut at step %d: Default %s", step, def)
				}
				seen[def] = true
				if part := grubBoot(t, te.ConfigDir); part != map[string]string{"a": "2", "b": "3"}[def] {
					t.Fatalf("cut at step %d: Default %s but GRUB boots %s", step, def, part)
				}
			})
			if steps != 20 {
				t.Errorf("commit took %d steps, want 4 files × 5", steps)
			}
			if !seen[from] || !seen[to] {
				t.Errorf("defaults seen after cuts: %v", seen)
			}
			mustDefault(t, f, to)
			if part := grubBoot(t, te.ConfigDir); part != map[string]string{"a": "2", "b": "3"}[to] {
				t.Fatalf("GRUB boots %s after the commit", part)
			}
		})
	}
}

func TestGrubDefaultFallbacks(t *testing.T) {
	te := newTestEnv(t)
	f := te.flow(Grub)
	if _, err := f.Default(); err == nil {
		t.Fatal("Default without any grubenv")
	}
	freshGrub(t, te)
	te.write(grubPrimary, []byte("garbage"))
	te.write(grubSecondary+".sha1", []byte("garbage"))
	mustDefault(t, f, "a") // neither copy verifies: grub.cfg's default 2
	env, _ := encodeGrubEnv(envVars{{"rugpi_bootpart", "3"}})
	te.write(grubSecondary+".sha1", grubSidecar(env, "/"+grubSecondary))
	te.write(grubSecondary, env)
	mustDefault(t, f, "b")
	env, _ = encodeGrubEnv(envVars{{"rugpi_bootpart", "4"}})
	te.write(grubPrimary, env)
	te.write(grubPrimary+".sha1", grubSidecar(env, "/"+grubPrimary))
	if _, err := f.Default(); err == nil {
		t.Fatal("Default with rugpi_bootpart=4")
	}
}
