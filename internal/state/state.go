// Package state holds the files through which a running system and the
// pre-init of its next boot agree on state: the reset request and the
// force-persist flag in the state directory, the data wipe marker on the
// config partition, the deferred reboot marker on the data partition, the
// state profiles on the data partition, and /etc/rugix/state.toml. The
// names and formats are Rugix's, so a device can move between Rugix and
// Bascule with its state.
//
// Functions take the directory they work in (state directory, data or
// config mount) so that pre-init can pass paths below its root and tests
// temporary directories.
package state

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/bascule-ota/bascule/internal/atomicfile"
)

// Well-known places, relative to the directory named in each comment.
const (
	// Dir is the state directory: a bind mount of the active profile.
	Dir = "/run/rugix/state"
	// ResetFlag (in the state directory) asks the next boot to reset the
	// profile: empty to wipe it, else the name to keep it under.
	ResetFlag = ".rugix/reset-state"
	// ForcePersistFlag (in the state directory) keeps a "discard"
	// overlay across boots.
	ForcePersistFlag = ".rugix/force-persist-overlay"
	// WipeDataMarker (on the config partition) asks the next boot to
	// erase the data partition (Rugix 1.x `data wipe`).
	WipeDataMarker = ".rugix/wipe-data"
	// DeferredRebootMarker (on the data partition) asks the next boot to
	// try the spare boot group once.
	DeferredRebootMarker = ".rugix/deferred-reboot-spare"
	// ProfilesDir (on the data partition) holds the state profiles.
	ProfilesDir = "state"
	// DefaultProfile is the profile in use; Rugix has no other yet.
	DefaultProfile = "default"
)

// trashPrefix names profiles on their way out: a reset renames the
// profile away in one step and deletes it afterwards, so that a power cut
// never leaves a half-deleted profile in use.
const trashPrefix = ".trash-"

// ProfileDir is the active state profile on the data partition mounted at
// dataDir.
func ProfileDir(dataDir string) string {
	return filepath.Join(dataDir, ProfilesDir, DefaultProfile)
}

// DefaultBackupName is Rugix's name for a reset with --backup but without
// --backup-name: default.%Y%m%d%H%M%S.
func DefaultBackupName(t time.Time) string {
	return DefaultProfile + "." + t.Format("20060102150405")
}

// CheckProfileName rejects names that cannot name a profile directory
// next to "default", or that are reserved.
func CheckProfileName(name string) error {
	switch {
	case name == "":
		return errors.New("empty profile name")
	case name == DefaultProfile:
		return fmt.Errorf("profile name %q is the active profile", name)
	case strings.HasPrefix(name, "."):
		return fmt.Errorf("profile name %q starts with a dot", name)
	case strings.ContainsAny(name, "/\x00\n"):
		return fmt.Errorf("profile name %q contains a slash, NUL or newline", name)
	case len(name) > 255:
		return fmt.Errorf("profile name of %d bytes is too long", len(name))
	}
	return nil
}

// requireDir fails unless dir is a directory: writing a flag into a state
// directory that pre-init did not set up would be lost at the reboot.
func requireDir(dir, what string) error {
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s %s does not exist (was the system booted through bascule's pre-init?)", what, dir)
	}
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s %s is not a directory", what, dir)
	}
	return nil
}

// writeFlag writes a flag file durably, creating its directory.
func writeFlag(path string, content []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return atomicfile.Write(path, content, 0o644)
}

// removeFlag removes a flag file durably; a missing flag is no error.
func removeFlag(path string) error {
	err := os.Remove(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return atomicfile.SyncDir(filepath.Dir(path))
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// RequestReset writes the reset flag into stateDir: backup "" wipes the
// profile at the next boot, any other name keeps it as that profile.
func RequestReset(stateDir, backup string) error {
	if backup != "" {
		if err := CheckProfileName(backup); err != nil {
			return fmt.Errorf("backup name: %w", err)
		}
	}
	if err := requireDir(stateDir, "state directory"); err != nil {
		return err
	}
	path := filepath.Join(stateDir, ResetFlag)
	if err := writeFlag(path, []byte(backup)); err != nil {
		return fmt.Errorf("write reset flag %s: %w", path, err)
	}
	return nil
}

// PendingReset reports whether the profile carries a reset flag and, if
// so, the backup name in it ("" to wipe) and when the flag was written.
func PendingReset(profile string) (requested bool, backup string, when time.Time, err error) {
	path := filepath.Join(profile, ResetFlag)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, "", time.Time{}, nil
	}
	if err != nil {
		return false, "", time.Time{}, fmt.Errorf("read reset flag %s: %w", path, err)
	}
	if fi, err := os.Stat(path); err == nil {
		when = fi.ModTime()
	}
	return true, strings.TrimSpace(string(b)), when, nil
}

// Reset carries out a reset of the profile on the data partition mounted
// at dataDir. With backup "" the profile is renamed away and deleted;
// otherwise it is renamed to backup, without its reset flag. An unusable
// backup name, or one already taken, is replaced by a free name derived
// from it, so that a reset request never blocks the boot. Reset returns
// the name the profile was kept under ("" if deleted).
func Reset(dataDir, backup string, when time.Time) (kept string, err error) {
	profile := ProfileDir(dataDir)
	profiles := filepath.Dir(profile)
	if !exists(profile) {
		return "", nil
	}
	if backup == "" {
		trash, err := freeName(profiles, trashPrefix+"default", "")
		if err != nil {
			return "", err
		}
		if err := os.Rename(profile, trash); err != nil {
			return "", fmt.Errorf("reset state profile %s: %w", profile, err)
		}
		if err := atomicfile.SyncDir(profiles); err != nil {
			return "", err
		}
		if err := os.RemoveAll(trash); err != nil {
			return "", fmt.Errorf("delete old state profile %s: %w", trash, err)
		}
		return "", nil
	}
	if CheckProfileName(backup) != nil {
		backup = DefaultBackupName(when)
	}
	target, err := freeName(profiles, backup, ".")
	if err != nil {
		return "", err
	}
	if err := os.Rename(profile, target); err != nil {
		return "", fmt.Errorf("keep state profile %s as %s: %w", profile, target, err)
	}
	if err := atomicfile.SyncDir(profiles); err != nil {
		return "", err
	}
	if err := removeFlag(filepath.Join(target, ResetFlag)); err != nil {
		return "", fmt.Errorf("remove reset flag of kept profile %s: %w", target, err)
	}
	return filepath.Base(target), nil
}

// freeName returns dir/name, or dir/name<sep>N with the smallest N ≥ 1
// when that is taken.
func freeName(dir, name, sep string) (string, error) {
	p := filepath.Join(dir, name)
	for i := 1; exists(p); i++ {
		if i > 1000 {
			return "", fmt.Errorf("no free profile name like %s in %s", name, dir)
		}
		p = filepath.Join(dir, fmt.Sprintf("%s%s%d", name, sep, i))
	}
	return p, nil
}

// CleanTrash deletes what a reset cut short by a power loss left behind.
func CleanTrash(dataDir string) error {
	profiles := filepath.Join(dataDir, ProfilesDir)
	entries, err := os.ReadDir(profiles)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), trashPrefix) {
			errs = append(errs, os.RemoveAll(filepath.Join(profiles, e.Name())))
		}
	}
	return errors.Join(errs...)
}

// SetForcePersist sets or clears the force-persist flag in stateDir.
func SetForcePersist(stateDir string, on bool) error {
	if err := requireDir(stateDir, "state directory"); err != nil {
		return err
	}
	path := filepath.Join(stateDir, ForcePersistFlag)
	if on {
		if err := writeFlag(path, nil); err != nil {
			return fmt.Errorf("set force-persist flag %s: %w", path, err)
		}
		return nil
	}
	if err := removeFlag(path); err != nil {
		return fmt.Errorf("clear force-persist flag %s: %w", path, err)
	}
	return nil
}

// ForcePersist reports whether the force-persist flag is set in dir (the
// state directory or the profile it is bound to).
func ForcePersist(dir string) bool { return exists(filepath.Join(dir, ForcePersistFlag)) }

// RequestDataWipe writes the wipe marker onto the config partition
// mounted (read-write) at configDir.
func RequestDataWipe(configDir string) error {
	path := filepath.Join(configDir, WipeDataMarker)
	if err := writeFlag(path, nil); err != nil {
		return fmt.Errorf("write data wipe marker %s: %w", path, err)
	}
	return nil
}

// DataWipeRequested reports whether the wipe marker is on the config
// partition mounted at configDir.
func DataWipeRequested(configDir string) bool {
	return exists(filepath.Join(configDir, WipeDataMarker))
}

// ClearDataWipe removes the wipe marker; the config partition must be
// writable.
func ClearDataWipe(configDir string) error {
	path := filepath.Join(configDir, WipeDataMarker)
	if err := removeFlag(path); err != nil {
		return fmt.Errorf("remove data wipe marker %s: %w", path, err)
	}
	return nil
}
