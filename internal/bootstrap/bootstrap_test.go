package bootstrap

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// runDir bootstraps with a plain directory as the config partition, for
// the paths that do not touch a disk.
func runDir(t *testing.T, toml string, markers ...string) (dir string, stages []string, remounts []bool, err error) {
	t.Helper()
	dir = t.TempDir()
	for _, m := range markers {
		path := filepath.Join(dir, m)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg := filepath.Join(t.TempDir(), "bootstrapping.toml")
	if toml != "" {
		if err := os.WriteFile(cfg, []byte(toml), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	err = Run(dir, Options{
		Disk:       "/nonexistent/disk",
		ConfigFile: cfg,
		Hooks: func(stage string) error {
			stages = append(stages, stage)
			return nil
		},
		Remount: func(rw bool) error {
			remounts = append(remounts, rw)
			return nil
		},
		Log: func(msg string) { t.Log(msg) },
	})
	return dir, stages, remounts, err
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func TestRunNoMarker(t *testing.T) {
	_, stages, remounts, err := runDir(t, "[layout\n")
	if err != nil || stages != nil || remounts != nil {
		t.Errorf("without a marker: %v %v %v", err, stages, remounts)
	}
}

func TestRunMarkers(t *testing.T) {
	for _, markers := range [][]string{{".rugix/bootstrap"}, {"rugix/bootstrap"}, {".rugix/bootstrap", "rugix/bootstrap"}} {
		dir, stages, remounts, err := runDir(t, "[layout]\ntype = \"none\"\n", markers...)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range markers {
			if exists(filepath.Join(dir, m)) {
				t.Errorf("%s not removed", m)
			}
			if !exists(filepath.Dir(filepath.Join(dir, m))) {
				t.Errorf("directory of %s removed", m)
			}
		}
		if !reflect.DeepEqual(stages, []string{"prepare"}) || !reflect.DeepEqual(remounts, []bool{true, false}) {
			t.Errorf("hooks %v remounts %v", stages, remounts)
		}
	}
}

func TestRunErrorsKeepMarker(t *testing.T) {
	for toml, want := range map[string]string{
		"[layout\n":                  "bootstrapping.toml",
		"":                           "root disk", // the default layout on /nonexistent/disk
		"[layout]\ntype = \"mbr\"\n": "needs partitions",
	} {
		dir, _, remounts, err := runDir(t, toml, ".rugix/bootstrap")
		if err == nil || !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), "bootstrap: ") {
			t.Errorf("%q: err = %v, want %q", toml, err, want)
		}
		if !exists(filepath.Join(dir, ".rugix/bootstrap")) || remounts != nil {
			t.Errorf("%q: marker removed or config remounted (%v)", toml, remounts)
		}
	}
}

func TestRunRemountFails(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, ".rugix", "bootstrap")
	os.MkdirAll(filepath.Dir(marker), 0o755)
	os.WriteFile(marker, nil, 0o644)
	cfg := filepath.Join(dir, "b.toml")
	os.WriteFile(cfg, []byte("disabled = true\n"), 0o644)
	var remounts []bool
	err := Run(dir, Options{ConfigFile: cfg, Hooks: func(string) error { return nil }, Log: func(string) {},
		Remount: func(rw bool) error {
			remounts = append(remounts, rw)
			if rw {
				return errors.New("read-only medium")
			}
			return nil
		}})
	if err == nil || !strings.Contains(err.Error(), "remount the config partition read-write") || !exists(marker) {
		t.Errorf("err = %v, marker there: %v", err, exists(marker))
	}
	if !reflect.DeepEqual(remounts, []bool{true}) {
		t.Errorf("remounts %v", remounts)
	}
}
