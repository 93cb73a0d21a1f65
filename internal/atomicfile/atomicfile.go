// Package atomicfile replaces small files (bootloader state) so that after
// a power cut the file holds either the complete old or the complete new
// content, never a mix and never nothing.
//
// Write follows the usual recipe: write <path>.new, fsync it, rename it
// over <path>, fsync the directory. Readers only ever open <path>; a stale
// <path>.new left by a cut before the rename is ignored by them and
// truncated by the next Write.
//
// On FAT (the Raspberry Pi config partition) that recipe is not safe: FAT
// has no journal, and a rename that replaces a file frees the old file's
// cluster in the allocation table while another sector holds the directory
// entry. The emulated device's power cuts caught the result: the table
// update reached the disk, the directory entry did not, the next new file
// was given the "free" cluster, and the old file then read the new file's
// bytes. For the bootloader's state files, which keep one size, Overwrite
// writes the new bytes over the old in place instead: no cluster is
// allocated or freed, and a file of at most one sector changes in one
// sector write, which SD cards, eMMC and virtio disks do whole or not at
// all. That is also how Rugix and U-Boot write these files.
package atomicfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
)

// Steps of Write, in order, as passed to a crash hook.
const (
	StepCreate  = "create"  // <path>.new exists, empty
	StepWrite   = "write"   // data written, not yet on disk
	StepFsync   = "fsync"   // <path>.new durable
	StepRename  = "rename"  // <path> is the new file, directory not synced
	StepDirsync = "dirsync" // done
)

// Steps lists the steps of Write in order.
var Steps = []string{StepCreate, StepWrite, StepFsync, StepRename, StepDirsync}

// ErrCrashed is returned by Write when a crash hook stopped it.
var ErrCrashed = errors.New("simulated power cut")

type hookFunc = func(path, step string) bool

var crashHook atomic.Pointer[hookFunc]

// SetCrashHook makes Write call fn after each step; when fn returns true
// Write stops right there, leaving the files as a power cut would, and
// returns ErrCrashed. It exists for tests (also of packages that build on
// Write) and returns a function that restores the previous hook.
func SetCrashHook(fn func(path, step string) bool) (restore func()) {
	var p *hookFunc
	if fn != nil {
		p = &fn
	}
	old := crashHook.Swap(p)
	return func() { crashHook.Store(old) }
}

func crashed(path, step string) bool {
	if p := crashHook.Load(); p != nil {
		return (*p)(path, step)
	}
	return false
}

// TempName is the name Write uses for the new content before the rename.
func TempName(path string) string { return path + ".new" }

// Write replaces path with data, durably and atomically (see the package
// comment). The temporary file has a fixed name so that a cut never leaves
// more than one stray file behind; two concurrent writers of the same path
// are not supported.
func Write(path string, data []byte, perm os.FileMode) error {
	tmp := TempName(path)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	if crashed(path, StepCreate) {
		f.Close()
		return ErrCrashed
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if crashed(path, StepWrite) {
		f.Close()
		return ErrCrashed
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("fsync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if crashed(path, StepFsync) {
		return ErrCrashed
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("rename %s to %s: %w", tmp, path, err)
	}
	if crashed(path, StepRename) {
		return ErrCrashed
	}
	if err := SyncDir(filepath.Dir(path)); err != nil {
		return err
	}
	if crashed(path, StepDirsync) {
		return ErrCrashed
	}
	return nil
}

// SectorSize is the largest file Overwrite changes in place: one sector.
const SectorSize = 512

// Overwrite replaces a small file whose size does not change by writing the
// new bytes over the old ones in place and fsyncing it (see the package
// comment for why). A file that does not exist yet, has another size or is
// larger than a sector is replaced by Write.
func Overwrite(path string, data []byte, perm os.FileMode) error {
	fi, err := os.Lstat(path)
	if err != nil || !fi.Mode().IsRegular() || fi.Size() != int64(len(data)) || len(data) > SectorSize || len(data) == 0 {
		return Write(path, data, perm)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	if _, err := f.WriteAt(data, 0); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if crashed(path, StepWrite) {
		f.Close()
		return ErrCrashed
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("fsync %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", path, err)
	}
	if crashed(path, StepFsync) {
		return ErrCrashed
	}
	return nil
}

// SyncDir makes a rename or a new file in dir durable. File systems that
// cannot fsync a directory (EINVAL) are tolerated, as fw_setenv does.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}
