// Package bootstrap carries out Rugix's first-boot bootstrapping (§5 step 6
// of the compatibility reference): when the config partition holds the
// marker .rugix/bootstrap (or rugix/bootstrap), it runs the bootstrap
// hooks, repartitions the root disk to the layout of bootstrapping.toml
// (§3.1: grow existing partitions, add the missing ones), creates the
// filesystems of the partitions it added, tells the kernel through BLKPG so
// no reboot is needed, and finally removes the marker.
//
// A power cut at any point leaves a disk that boots the A system, and the
// next boot, finding the marker still there, finishes the job: filesystems
// are created before the partition table that makes their partitions
// permanent is written, the table write itself is ordered so that every
// intermediate state is a valid table (see disk.WriteTable), and the marker
// goes last. Rugix creates filesystems after writing the table and would
// skip them after such a cut, since the partitions then already exist.
package bootstrap

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/bascule-ota/bascule/internal/disk"
	"github.com/bascule-ota/bascule/internal/hooks"
)

// Markers are the files on the config partition that ask for bootstrapping,
// relative to its mount point; Rugix 1.x also accepts the second.
var Markers = []string{".rugix/bootstrap", "rugix/bootstrap"}

// Options are what Run needs from the init process.
type Options struct {
	// Disk is the root disk, e.g. /dev/mmcblk0. Empty means the disk of
	// the root filesystem, found as Rugix does (disk.RootDisk).
	Disk string
	// ConfigFile is bootstrapping.toml; empty means DefaultConfigFile.
	ConfigFile string
	// Hooks runs the bootstrap hooks of a stage: "prepare", "pre-layout"
	// or "post-layout". Nil runs those in hooks.DefaultDir.
	Hooks func(stage string) error
	// Remount remounts the config partition read-write (rw true) before
	// the marker is removed and read-only again after. Nil means the
	// config partition is writable as it is.
	Remount func(rw bool) error
	// Stdout and Stderr receive the output of mkfs.ext4; nil means the
	// process's own.
	Stdout, Stderr io.Writer
	// Log receives progress and warnings; nil prints them to stderr.
	Log func(msg string)
}

// mkfsExt4Paths are where mkfs.ext4 is looked for after PATH, which may
// be unset this early in the boot; Rugix 0.8 calls /usr/sbin/mkfs.ext4.
var mkfsExt4Paths = []string{"/usr/sbin/mkfs.ext4", "/sbin/mkfs.ext4"}

// testStep, when set by tests, is called after each step of Run with its
// name; an error stops Run there, as a power cut would.
var testStep func(step string) error

func (o *Options) logf(format string, a ...any) {
	msg := fmt.Sprintf(format, a...)
	if o.Log != nil {
		o.Log(msg)
		return
	}
	fmt.Fprintln(os.Stderr, "bootstrap:", msg)
}

func (o *Options) hook(stage string) error {
	var err error
	if o.Hooks != nil {
		err = o.Hooks(stage)
	} else {
		err = hooks.Run(hooks.DefaultDir, "bootstrap", stage, nil, hooks.Options{Stdout: o.Stdout, Stderr: o.Stderr})
	}
	if err != nil {
		return fmt.Errorf("bootstrap/%s hooks: %w", stage, err)
	}
	return nil
}

func step(name string) error {
	if testStep != nil {
		return testStep(name)
	}
	return nil
}

// Run bootstraps the system if the config partition mounted at configDir
// has a marker, and does nothing otherwise. The steps are Rugix's:
// bootstrap/prepare hooks, bootstrapping.toml (disabled: skip to the
// marker), bootstrap/pre-layout hooks, repartitioning with filesystems for
// new partitions, bootstrap/post-layout hooks, removal of the marker.
func Run(configDir string, o Options) error {
	var markers []string
	for _, m := range Markers {
		path := filepath.Join(configDir, m)
		if _, err := os.Lstat(path); err == nil {
			markers = append(markers, path)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("bootstrap: %w", err)
		}
	}
	if len(markers) == 0 {
		return nil
	}
	o.logf("found %s: bootstrapping", markers[0])
	if err := o.hook("prepare"); err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	file := o.ConfigFile
	if file == "" {
		file = DefaultConfigFile
	}
	cfg, warnings, err := LoadConfig(file)
	if err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	for _, w := range warnings {
		o.logf("warning: %s", w)
	}
	switch {
	case cfg.Disabled:
		o.logf("bootstrapping is disabled in %s; only removing the marker", file)
	case cfg.Layout.Type == LayoutNone:
		o.logf("layout type %q: leaving the partition table as it is", LayoutNone)
	default:
		if err := o.hook("pre-layout"); err != nil {
			return fmt.Errorf("bootstrap: %w", err)
		}
		if err := applyLayout(&o, cfg.Layout); err != nil {
			return fmt.Errorf("bootstrap: %w", err)
		}
		if err := o.hook("post-layout"); err != nil {
			return fmt.Errorf("bootstrap: %w", err)
		}
	}
	if err := step("post-layout"); err != nil {
		return err
	}
	if err := removeMarkers(&o, markers); err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	o.logf("done")
	return nil
}

// removeMarkers deletes the markers with the config partition remounted
// read-write, and makes the deletion durable before remounting read-only.
func removeMarkers(o *Options, markers []string) error {
	if o.Remount != nil {
		if err := o.Remount(true); err != nil {
			return fmt.Errorf("remount the config partition read-write to remove the marker: %w", err)
		}
	}
	var errs []error
	for _, m := range markers {
		if err := os.Remove(m); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove marker: %w", err))
			continue
		}
		if d, err := os.Open(filepath.Dir(m)); err == nil {
			if err := d.Sync(); err != nil {
				errs = append(errs, fmt.Errorf("sync %s: %w", filepath.Dir(m), err))
			}
			d.Close()
		}
	}
	if o.Remount != nil {
		if err := o.Remount(false); err != nil {
			errs = append(errs, fmt.Errorf("remount the config partition read-only: %w", err))
		}
	}
	return errors.Join(errs...)
}

// rootDisk returns the disk to repartition, symlinks resolved so that its
// partitions are named after it.
func rootDisk(o *Options) (string, error) {
	dev := o.Disk
	if dev == "" {
		bd, err := disk.RootDisk()
		if err != nil {
			return "", err
		}
		dev = bd.Parent
	}
	resolved, err := filepath.EvalSymlinks(dev)
	if err != nil {
		return "", fmt.Errorf("root disk: %w", err)
	}
	fi, err := os.Stat(resolved)
	if err != nil {
		return "", fmt.Errorf("root disk: %w", err)
	}
	if fi.Mode()&os.ModeDevice == 0 || fi.Mode()&os.ModeCharDevice != 0 {
		return "", fmt.Errorf("root disk %s is not a block device", dev)
	}
	return resolved, nil
}

// applyLayout repartitions the root disk to the layout.
func applyLayout(o *Options, l Layout) error {
	dev, err := rootDisk(o)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("open root disk: %w", err)
	}
	defer f.Close()
	size, ss, err := disk.DeviceSize(f)
	if err != nil {
		return err
	}
	old, err := disk.ReadTable(f, size, ss)
	if err != nil {
		return fmt.Errorf("read partition table of %s: %w", dev, err)
	}
	for _, w := range old.Warnings {
		o.logf("warning: %s: %s", dev, w)
	}
	geo, err := disk.ReadGeometry(f, size, old)
	if err != nil {
		return fmt.Errorf("partition table of %s: %w", dev, err)
	}
	if (l.Type == LayoutMBR && old.Type != "dos") || (l.Type == LayoutGPT && old.Type != "gpt") {
		// Rugix uses the table type of the disk whatever the layout says.
		o.logf("warning: layout type %q but %s has a %s partition table; applying the layout to it", l.Type, dev, old.Type)
	}
	p, err := planLayout(old, geo, l.partitionsFor(old.Type))
	if err != nil {
		return fmt.Errorf("repartition %s (%s): %w", dev, formatSize(uint64(size)), err)
	}
	if l.Type != LayoutDefault { // the default layout's data filesystem is implicit
		for _, w := range p.warnings {
			o.logf("warning: %s: %s", dev, w)
		}
	}
	if p.unchanged() && geo.Repair == "" {
		o.logf("partition table of %s already matches the layout", dev)
		return syncKernel(f, dev, p.table, nil)
	}
	if err := disk.CheckTable(f, size, p.table); err != nil {
		return fmt.Errorf("repartition %s: %w", dev, err)
	}
	mkfs := ""
	if len(p.format) > 0 {
		if mkfs, err = findMkfsExt4(); err != nil {
			return fmt.Errorf("repartition %s: partition %d needs an ext4 filesystem: %w", dev, firstKey(p.format), err)
		}
	}
	created := map[int]bool{}
	for _, n := range p.created {
		created[n] = true
	}
	if p.unchanged() {
		o.logf("rewriting the partition table of %s: %s", dev, geo.Repair)
	} else {
		o.logf("repartitioning %s: creating partitions %v, growing partitions %v", dev, p.created, p.grown)
	}
	// The new partitions, known to the kernel but not yet in the table on
	// the disk, get their filesystems; a cut here leaves the old table.
	written := false
	defer func() {
		if !written { // do not leave the kernel with partitions the disk lacks
			for _, n := range p.created {
				disk.DelPartition(f, n)
			}
		}
	}()
	if err := syncKernel(f, dev, p.table, created); err != nil {
		return err
	}
	if err := step("kernel-added"); err != nil {
		return err
	}
	for _, n := range p.created {
		if fsys := p.format[n]; fsys != nil {
			if err := mkfsExt4(o, mkfs, disk.PartitionPath(dev, n), n, fsys); err != nil {
				return err
			}
		}
	}
	if err := step("formatted"); err != nil {
		return err
	}
	err = disk.WriteTable(f, size, p.table)
	written = err == nil
	if err != nil {
		return fmt.Errorf("repartition %s: %w", dev, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("repartition %s: sync: %w", dev, err)
	}
	if err := step("table-written"); err != nil {
		return err
	}
	return syncKernel(f, dev, p.table, nil)
}

// syncKernel tells the kernel about the partitions of t it does not know
// or knows smaller (BLKPG), so that no reboot is needed. With only set,
// just those partitions, the ones bootstrapping creates, are added, and
// replaced if the kernel has them elsewhere (left over from an attempt
// that stopped before the table write). Any other partition the kernel has
// at another start is an error. The extended partition is registered as
// the kernel's own MBR parser does, as a stub of 1 KiB.
func syncKernel(f *os.File, dev string, t *disk.Table, only map[int]bool) error {
	kp, err := disk.KernelPartitions(dev)
	if err != nil {
		return err
	}
	for _, p := range t.Partitions {
		if only != nil && !only[p.Number] {
			continue
		}
		size := p.Size
		if p.Extended {
			size = max(1024, uint64(t.SectorSize))
		}
		k, known := kp[p.Number]
		switch {
		case known && only[p.Number] && (k.Start != p.Start || k.Size != size):
			// Left over from an attempt that stopped before the table write.
			if err := disk.DelPartition(f, p.Number); err != nil {
				return err
			}
			known = false
		case known && k.Start != p.Start:
			return fmt.Errorf("the kernel has partition %d of %s at byte %d, the partition table at byte %d; reboot to reread it", p.Number, dev, k.Start, p.Start)
		}
		switch {
		case !known:
			if err := disk.AddPartition(f, p.Number, p.Start, size); err != nil {
				return err
			}
			if err := waitForNode(disk.PartitionPath(dev, p.Number)); err != nil {
				return err
			}
		case !p.Extended && k.Size < size:
			if err := disk.ResizePartition(f, p.Number, p.Start, size); err != nil {
				return err
			}
		}
	}
	return nil
}

// waitForNode waits for the device node of a partition just added: the
// kernel's devtmpfs creates it at once, a udev-managed /dev a bit later.
func waitForNode(path string) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := os.Stat(path)
		if err == nil || !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("device node %s did not appear after adding the partition", path)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// findMkfsExt4 looks for mkfs.ext4 in PATH and where distributions put it.
// Bascule has no ext4 formatter of its own: writing a correct ext4 (with
// journal, flex groups and the checksums of metadata_csum) is e2fsprogs'
// job, and every image that uses an ext4 data partition ships it.
func findMkfsExt4() (string, error) {
	if p, err := exec.LookPath("mkfs.ext4"); err == nil {
		return p, nil
	}
	for _, p := range mkfsExt4Paths {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("mkfs.ext4 not found in PATH or %v (install e2fsprogs in the image)", mkfsExt4Paths)
}

// mkfsExt4 creates the ext4 filesystem of partition n at dev, as Rugix
// does (mkfs.ext4 -F -L <label> …), with the additional options before the
// device so that mke2fs does not take them for a size.
func mkfsExt4(o *Options, mkfs, dev string, n int, fsys *Filesystem) error {
	args := []string{"-F"}
	if fsys.Label != "" {
		args = append(args, "-L", fsys.Label)
	}
	args = append(append(args, fsys.AdditionalOptions...), dev)
	o.logf("creating an ext4 filesystem on partition %d (%s)", n, dev)
	cmd := exec.Command(mkfs, args...)
	cmd.Stdout, cmd.Stderr = o.Stdout, o.Stderr
	if cmd.Stdout == nil {
		cmd.Stdout = os.Stdout
	}
	if cmd.Stderr == nil {
		cmd.Stderr = os.Stderr
	}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("create ext4 filesystem on partition %d (%s): %s: %w", n, dev, cmd.String(), err)
	}
	return nil
}

func firstKey(m map[int]*Filesystem) int {
	first := 0
	for n := range m {
		if first == 0 || n < first {
			first = n
		}
	}
	return first
}
