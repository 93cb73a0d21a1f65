// Package hooks runs the hooks of a Rugix-compatible system: executables
// at <dir>/<operation>/<stage>/<rank>-<name>, e.g.
// /etc/rugix/hooks/update-install/pre-update/10-stop-app.
//
// Differences from Rugix, on purpose:
//   - A symlink to a regular file is a hook and runs. Rugix looks at the
//     directory entry without following it and skips symlinks, although
//     its documentation suggests linking one script into several stages.
//   - Hooks with the same rank run in file name order; Rugix leaves it to
//     the order of the directory.
//   - Hooks get /dev/null as standard input instead of inheriting it, so a
//     hook cannot swallow a bundle streamed in on stdin.
package hooks

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// DefaultDir is where Rugix looks for hooks.
const DefaultDir = "/etc/rugix/hooks"

// Hook is one executable of a stage.
type Hook struct {
	Path string
	Rank uint64 // the unsigned integer before the first '-'
	Name string // what follows the first '-'
}

// Options changes how hooks run. The zero value passes their output
// through and prints warnings to stderr.
type Options struct {
	// Stdout and Stderr receive the hooks' output; nil means the
	// process's own. Progress hooks are silenced with io.Discard.
	Stdout, Stderr io.Writer
	// Warn receives messages about files that are skipped.
	Warn func(msg string)
}

func (o Options) warn(format string, a ...any) {
	msg := fmt.Sprintf(format, a...)
	if o.Warn != nil {
		o.Warn(msg)
		return
	}
	fmt.Fprintln(os.Stderr, "warning:", msg)
}

// List returns the hooks of a stage in the order they run: ascending rank,
// then file name. A missing stage directory has no hooks. Files whose names
// lack a '-' or have a rank that is not an unsigned integer are skipped
// with a warning; directories and other non-regular files are skipped
// silently.
func List(dir, operation, stage string, warn func(string)) ([]Hook, error) {
	o := Options{Warn: warn}
	stageDir := filepath.Join(dir, operation, stage)
	fi, err := os.Stat(stageDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("hooks %s/%s: %w", operation, stage, err)
	}
	if !fi.IsDir() {
		o.warn("hooks %s/%s: %s is not a directory; ignored", operation, stage, stageDir)
		return nil, nil
	}
	entries, err := os.ReadDir(stageDir)
	if err != nil {
		return nil, fmt.Errorf("hooks %s/%s: %w", operation, stage, err)
	}
	var hooks []Hook
	for _, e := range entries {
		path := filepath.Join(stageDir, e.Name())
		fi, err := os.Stat(path) // follows symlinks
		if err != nil {
			o.warn("hook %s skipped: %v", path, err)
			continue
		}
		if !fi.Mode().IsRegular() {
			continue
		}
		rank, name, ok := strings.Cut(e.Name(), "-")
		if !ok {
			o.warn("hook %s skipped: name is not <rank>-<name> (no '-')", path)
			continue
		}
		r, err := strconv.ParseUint(rank, 10, 64)
		if err != nil {
			o.warn("hook %s skipped: rank %q is not an unsigned integer", path, rank)
			continue
		}
		hooks = append(hooks, Hook{Path: path, Rank: r, Name: name})
	}
	sort.SliceStable(hooks, func(i, j int) bool { return hooks[i].Rank < hooks[j].Rank })
	return hooks, nil
}

// Run runs the hooks of a stage one after the other, each as
// `<hook> <operation> <stage>` with env added to the environment. The first
// hook that fails stops the run; the error names it and its exit status.
func Run(dir, operation, stage string, env []string, o Options) error {
	hooks, err := List(dir, operation, stage, o.Warn)
	if err != nil {
		return err
	}
	for _, h := range hooks {
		cmd := exec.Command(h.Path, operation, stage)
		cmd.Env = append(os.Environ(), env...)
		cmd.Stdout, cmd.Stderr = o.Stdout, o.Stderr
		if cmd.Stdout == nil {
			cmd.Stdout = os.Stdout
		}
		if cmd.Stderr == nil {
			cmd.Stderr = os.Stderr
		}
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("hook %s/%s/%s: %w", operation, stage, filepath.Base(h.Path), err)
		}
	}
	return nil
}
