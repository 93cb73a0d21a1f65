package hooks

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// script writes an executable shell script into the stage directory.
func script(t *testing.T, stageDir, name, body string) string {
	t.Helper()
	if err := os.MkdirAll(stageDir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(stageDir, name)
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func run(t *testing.T, dir string, env ...string) (string, []string, error) {
	t.Helper()
	var out bytes.Buffer
	var warnings []string
	err := Run(dir, "update-install", "pre-update", env, Options{
		Stdout: &out, Stderr: &out,
		Warn: func(m string) { warnings = append(warnings, m) },
	})
	return out.String(), warnings, err
}

func TestOrderArgsAndEnv(t *testing.T) {
	dir := t.TempDir()
	stage := filepath.Join(dir, "update-install", "pre-update")
	script(t, stage, "20-second", `echo "second $1 $2 $RUGIX_BOOT_GROUP"`)
	script(t, stage, "3-first", `echo "first $1 $2 $RUGIX_BOOT_GROUP"`)
	script(t, stage, "100-third", `echo third`)
	script(t, stage, "20-also-second", `echo also-second`) // same rank: name order
	out, warnings, err := run(t, dir, "RUGIX_BOOT_GROUP=b")
	if err != nil {
		t.Fatal(err)
	}
	want := "first update-install pre-update b\n" +
		"also-second\n" +
		"second update-install pre-update b\n" +
		"third\n"
	if out != want {
		t.Errorf("output:\n%s\nwant:\n%s", out, want)
	}
	if len(warnings) != 0 {
		t.Errorf("warnings: %q", warnings)
	}
}

func TestEnvOverridesInherited(t *testing.T) {
	dir := t.TempDir()
	stage := filepath.Join(dir, "update-install", "pre-update")
	script(t, stage, "1-env", `echo "$HOOK_TEST_VAR"`)
	t.Setenv("HOOK_TEST_VAR", "inherited")
	out, _, err := run(t, dir, "HOOK_TEST_VAR=given")
	if err != nil {
		t.Fatal(err)
	}
	if out != "given\n" {
		t.Errorf("output %q, want %q", out, "given\n")
	}
}

func TestFailureStopsRun(t *testing.T) {
	dir := t.TempDir()
	stage := filepath.Join(dir, "update-install", "pre-update")
	script(t, stage, "1-ok", `echo one`)
	script(t, stage, "2-fail", `echo two; exit 3`)
	script(t, stage, "3-never", `echo three`)
	out, _, err := run(t, dir)
	if err == nil {
		t.Fatal("no error")
	}
	if msg := err.Error(); !strings.Contains(msg, "update-install/pre-update/2-fail") || !strings.Contains(msg, "exit status 3") {
		t.Errorf("error %q does not name the hook and its status", msg)
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 {
		t.Errorf("error %v does not wrap an exit status 3", err)
	}
	if out != "one\ntwo\n" {
		t.Errorf("output %q: hooks after the failing one ran", out)
	}
}

func TestSymlinkedHookRuns(t *testing.T) {
	dir := t.TempDir()
	shared := script(t, filepath.Join(dir, "shared"), "notify", `echo "notified $2"`)
	stage := filepath.Join(dir, "update-install", "pre-update")
	if err := os.MkdirAll(stage, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(shared, filepath.Join(stage, "50-notify")); err != nil {
		t.Fatal(err)
	}
	out, _, err := run(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	if out != "notified pre-update\n" {
		t.Errorf("output %q", out)
	}
}

func TestBadNamesSkipped(t *testing.T) {
	dir := t.TempDir()
	stage := filepath.Join(dir, "update-install", "pre-update")
	script(t, stage, "nodash", `echo nodash`)
	script(t, stage, "x1-letters", `echo letters`)
	script(t, stage, "-norank", `echo norank`)
	script(t, stage, "+1-sign", `echo sign`)
	script(t, stage, "18446744073709551616-overflow", `echo overflow`)
	script(t, stage, "7-good", `echo good`)
	if err := os.Mkdir(filepath.Join(stage, "5-dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "missing"), filepath.Join(stage, "6-dangling")); err != nil {
		t.Fatal(err)
	}
	out, warnings, err := run(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	if out != "good\n" {
		t.Errorf("output %q, want only the good hook", out)
	}
	for _, name := range []string{"nodash", "x1-letters", "-norank", "+1-sign", "18446744073709551616-overflow", "6-dangling"} {
		found := false
		for _, w := range warnings {
			found = found || strings.Contains(w, name)
		}
		if !found {
			t.Errorf("no warning for %s in %q", name, warnings)
		}
	}
	for _, w := range warnings {
		if strings.Contains(w, "5-dir") {
			t.Errorf("directory warned about: %q", w)
		}
	}
}

func TestMissingStageIsNothing(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := run(t, dir); err != nil {
		t.Fatal(err)
	}
	if _, _, err := run(t, filepath.Join(dir, "nonexistent")); err != nil {
		t.Fatal(err)
	}
}

func TestNotExecutableFails(t *testing.T) {
	dir := t.TempDir()
	stage := filepath.Join(dir, "update-install", "pre-update")
	path := script(t, stage, "1-noexec", `echo hi`)
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err := run(t, dir)
	if err == nil || !strings.Contains(err.Error(), "1-noexec") {
		t.Fatalf("error %v, want one naming the hook", err)
	}
}

func TestSilenced(t *testing.T) {
	dir := t.TempDir()
	stage := filepath.Join(dir, "update-install", "progress")
	script(t, stage, "1-progress", `echo "$RUGIX_UPDATE_PROGRESS"; echo err >&2`)
	var out, errOut bytes.Buffer
	err := Run(dir, "update-install", "progress", []string{"RUGIX_UPDATE_PROGRESS=42.17"},
		Options{Stdout: &out, Stderr: &errOut})
	if err != nil {
		t.Fatal(err)
	}
	if out.String() != "42.17\n" || errOut.String() != "err\n" {
		t.Errorf("captured %q / %q", out.String(), errOut.String())
	}
}

func TestList(t *testing.T) {
	dir := t.TempDir()
	stage := filepath.Join(dir, "boot", "post-init")
	script(t, stage, "10-b-name", "true")
	script(t, stage, "2-a", "true")
	hooks, err := List(dir, "boot", "post-init", func(string) {})
	if err != nil {
		t.Fatal(err)
	}
	if len(hooks) != 2 || hooks[0].Rank != 2 || hooks[0].Name != "a" || hooks[1].Rank != 10 || hooks[1].Name != "b-name" {
		t.Errorf("hooks %+v", hooks)
	}
}
