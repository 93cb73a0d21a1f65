package bootflow

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A controller keeping the default in a file next to itself, as a user
// script might.
const controllerScript = `#!/bin/sh
dir=$(dirname "$0")
echo "$*" >> "$dir/log"
case "$1" in
get_default) printf '{"group":"%s"}\n' "$(cat "$dir/default")" ;;
commit) printf %s "$2" > "$dir/default"; echo '{}' ;;
mark_bad) echo "cannot mark $2 bad" >&2; exit 3 ;;
mark_good) echo '{"unknown":1}' ;;
pre_install) echo 'not json' ;;
post_install) echo '[]' ;;
*) echo '{}' ;;
esac
`

func TestCustom(t *testing.T) {
	dir := t.TempDir()
	ctl := filepath.Join(dir, "controller")
	must(t, os.WriteFile(ctl, []byte(controllerScript), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "default"), []byte("a"), 0o644))
	te := newTestEnv(t)
	te.Controller = ctl
	f := te.flow(Custom)
	if f.Name() != Custom {
		t.Fatal(f.Name())
	}
	mustDefault(t, f, "a")
	must(t, f.SetTryNext("b"))
	must(t, f.Commit("b"))
	mustDefault(t, f, "b")
	must(t, f.MarkGood("b"))
	err := f.MarkBad("a")
	if err == nil || !strings.Contains(err.Error(), "cannot mark a bad") || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("MarkBad: %v", err)
	}
	if err := f.PreInstall("b"); err == nil || !strings.Contains(err.Error(), "invalid output") {
		t.Errorf("PreInstall with non-JSON output: %v", err)
	}
	if err := f.PostInstall("b"); err == nil || !strings.Contains(err.Error(), "invalid output") {
		t.Errorf("PostInstall with a JSON array: %v", err)
	}
	if err := f.SetTryNext("c"); err == nil {
		t.Error("SetTryNext(c) accepted")
	}
	must(t, os.WriteFile(filepath.Join(dir, "default"), []byte("c"), 0o644))
	if _, err := f.Default(); err == nil {
		t.Error("unknown default group accepted")
	}
	log, err := os.ReadFile(filepath.Join(dir, "log"))
	must(t, err)
	want := "get_default\nset_try_next b\ncommit b\nget_default\nmark_good b\nmark_bad a\npre_install b\npost_install b\nget_default\n"
	if string(log) != want {
		t.Errorf("controller calls:\n%s\nwant\n%s", log, want)
	}
	must(t, f.Reboot(true))
	if len(te.reboots) != 1 || te.reboots[0] != (rebootCall{rebootRestart, ""}) {
		t.Errorf("reboots %+v", te.reboots)
	}

	te.Controller = filepath.Join(dir, "missing")
	if _, err := te.flow(Custom).Default(); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing controller: %v", err)
	}
}
