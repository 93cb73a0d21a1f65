package initmode

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/bascule-ota/bascule/internal/atomicfile"
	"github.com/bascule-ota/bascule/internal/state"
)

// mountOverlay mounts the writable root over the read-only system, as
// the state configuration says, and sets newRoot.
func (b *boot) mountOverlay() error {
	mode := b.stateCf.Overlay
	// As in Rugix, every mode but persist deletes the kept overlays,
	// unless the force-persist flag is set.
	overlays := filepath.Join(b.profile, "overlay")
	if mode != state.OverlayPersist && !state.ForcePersist(b.profile) {
		if err := os.RemoveAll(overlays); err != nil {
			return fmt.Errorf("discard overlay %s: %w", overlays, err)
		}
	}
	switch mode {
	case state.OverlayDisabled:
		b.newRoot = b.root
		b.log.infof("overlay disabled: the root stays read-only")
		return nil
	case state.OverlayInMemory:
		return b.overlayInMemory()
	}
	err := b.overlayOnData(mode)
	if err != nil && b.stateCf.OverlayFallback == state.OverlayInMemory {
		b.log.errorf("%v; falling back to an in-memory overlay", err)
		return b.overlayInMemory()
	}
	return err
}

// overlayOnData keeps the upper layer in the profile, one per boot group,
// so that a persisted overlay is never applied to another system version.
func (b *boot) overlayOnData(mode string) error {
	if b.active == "" {
		_, err := b.sys.Active()
		return fmt.Errorf("%s overlay needs the running boot group: %w", mode, err)
	}
	upper := filepath.Join(b.profile, "overlay", b.active)
	scratch := filepath.Join(b.dataDir, "overlay")
	if err := os.RemoveAll(scratch); err != nil {
		return fmt.Errorf("clear overlay work directory %s: %w", scratch, err)
	}
	return b.overlay(upper, filepath.Join(scratch, "work"), filepath.Join(scratch, "root"))
}

// overlayInMemory keeps the upper layer on the /run tmpfs.
func (b *boot) overlayInMemory() error {
	base := b.path("/run/rugix/overlay")
	if err := os.RemoveAll(base); err != nil {
		return fmt.Errorf("clear %s: %w", base, err)
	}
	return b.overlay(filepath.Join(base, "upper"), filepath.Join(base, "work"), filepath.Join(base, "root"))
}

func (b *boot) overlay(upper, work, merged string) error {
	for _, d := range []string{upper, work, merged} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("overlay: %w", err)
		}
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", b.systemDir, upper, work)
	if err := unix.Mount("overlay", merged, "overlay", unix.MS_NOATIME, opts); err != nil {
		return fmt.Errorf("mount overlay at %s (%s): %w", merged, opts, err)
	}
	b.newRoot = merged
	return nil
}

// persist bind-mounts the [[persist]] entries from the profile into the
// new root, creating their state on first use from the system's copy or
// the configured default. All entries are tried; the errors are joined.
func (b *boot) persist() error {
	var errs []error
	for _, p := range b.stateCf.Persist {
		if err := b.persistOne(p); err != nil {
			errs = append(errs, fmt.Errorf("persist %s (%s): %w", p.Path(), p.Origin, err))
		}
	}
	return errors.Join(errs...)
}

func (b *boot) persistOne(p state.Persist) error {
	src := filepath.Join(b.profile, "persist", strings.TrimPrefix(p.Path(), "/"))
	target, err := resolveIn(b.newRoot, p.Path())
	if err != nil {
		return err
	}
	dir := p.Directory != ""
	fi, err := os.Lstat(src)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := b.createState(p, src, target); err != nil {
			return err
		}
	case err != nil:
		return err
	case dir && !fi.IsDir():
		return fmt.Errorf("state %s is not a directory", src)
	case !dir && !fi.Mode().IsRegular():
		return fmt.Errorf("state %s is not a regular file", src)
	}
	fi, err = os.Lstat(target)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if dir {
			err = os.MkdirAll(target, 0o755)
		} else if err = os.MkdirAll(filepath.Dir(target), 0o755); err == nil {
			err = os.WriteFile(target, nil, 0o644)
		}
		if err != nil {
			return fmt.Errorf("create mount point: %w", err)
		}
	case err != nil:
		return err
	case dir && !fi.IsDir():
		return fmt.Errorf("%s is not a directory in the system", p.Path())
	case !dir && !fi.Mode().IsRegular():
		return fmt.Errorf("%s is not a regular file in the system", p.Path())
	}
	if err := unix.Mount(src, target, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind %s to %s: %w", src, target, err)
	}
	return nil
}

// createState makes the first state of a persisted path: a copy of what
// the system has there, else an empty directory or the default content.
func (b *boot) createState(p state.Persist, src, target string) error {
	if err := os.MkdirAll(filepath.Dir(src), 0o755); err != nil {
		return err
	}
	fi, err := os.Lstat(target)
	switch {
	case err == nil && p.Directory != "" && fi.IsDir(), err == nil && p.File != "" && fi.Mode().IsRegular():
		return copyTreeTo(target, src)
	case err == nil:
		return fmt.Errorf("%s has another file type in the system", p.Path())
	case !errors.Is(err, fs.ErrNotExist):
		return err
	case p.Directory != "":
		return os.Mkdir(src, 0o755)
	}
	var content []byte
	if p.Default != nil {
		content = []byte(*p.Default)
	}
	return atomicfile.Write(src, content, 0o644)
}

// machineID gives the system the machine ID kept in the state, or a new
// one kept from now on, so that it survives discarded overlays and
// updates. Without an overlay /etc is read-only and is left alone.
func (b *boot) machineID() {
	if b.newRoot == b.root {
		return
	}
	if err := b.restoreMachineID(); err != nil {
		b.log.errorf("machine-id: %v", err)
	}
}

func (b *boot) restoreMachineID() error {
	saved := filepath.Join(b.stateDir, "machine-id")
	etc, err := resolveIn(b.newRoot, "/etc/machine-id")
	if err != nil {
		return err
	}
	id, err := os.ReadFile(saved)
	switch {
	case err == nil && validMachineID(id):
		return writeMachineID(etc, id)
	case err == nil:
		b.log.warnf("%s holds no machine ID; making a new one", saved)
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}
	raw, err := b.randomID()
	if err != nil {
		return err
	}
	id = []byte(raw + "\n")
	if err := atomicfile.Write(saved, id, 0o444); err != nil {
		return err
	}
	return writeMachineID(etc, id)
}

func writeMachineID(path string, id []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(path, id, 0o444); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// validMachineID accepts 32 lower-case hex digits and a newline.
func validMachineID(b []byte) bool {
	s := strings.TrimSuffix(string(b), "\n")
	if len(s) != 32 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// randomID is a random UUID version 4 as 32 hex digits. It must not block
// an early boot on an entropy pool that is not initialized yet, hence
// GRND_INSECURE, or /dev/urandom on kernels before 5.6.
func (b *boot) randomID() (string, error) {
	u := make([]byte, 16)
	n, err := unix.Getrandom(u, unix.GRND_INSECURE)
	if err != nil || n != len(u) {
		f, ferr := os.Open(b.path("/dev/urandom"))
		if ferr != nil {
			return "", fmt.Errorf("random machine ID: getrandom: %v; %w", err, ferr)
		}
		defer f.Close()
		if _, err := f.Read(u); err != nil {
			return "", fmt.Errorf("random machine ID: %w", err)
		}
	}
	u[6] = u[6]&0x0f | 0x40 // version 4
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
	return hex.EncodeToString(u), nil
}
