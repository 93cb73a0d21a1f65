package bootflow

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/bascule-ota/bascule/internal/atomicfile"
)

// This file reads and writes the U-Boot environment described by
// fw_env.config natively, compatible with U-Boot's own fw_printenv and with
// libubootenv's (Debian's fw_printenv), so a device needs neither tool.
//
// A copy is: CRC32 (IEEE, little-endian) of the data area, for redundant
// setups one flags byte, then the data area: "name=value\0" entries ended
// by an empty one and padded to the configured size. With two copies the
// one with the valid CRC is used; with both valid the higher flags byte
// (with 255 → 0 wrapping), ties going to the first. A write goes to the
// copy not in use with flags+1, so a cut during the write leaves the copy
// in use untouched: that is the "incremental" scheme U-Boot and the tools
// use for files and block devices.

// fwEnvDev is one line of fw_env.config: where one copy lives.
type fwEnvDev struct {
	path   string
	offset int64 // negative: counted back from the end of a block device
	size   int64
}

// parseFwEnvConfig reads fw_env.config the way both tools do: lines
// starting with '#' are comments; "device offset size [sector-size
// [sectors]]", the offset in C notation (0x… hex, 0… octal, else decimal),
// the sizes in hex with or without 0x; lines with fewer than three such
// fields are skipped; at most two copies. Sector size and count describe
// flash erase blocks, which do not matter for files and block devices.
func parseFwEnvConfig(data []byte) ([]fwEnvDev, error) {
	var devs []fwEnvDev
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		off, err := strconv.ParseInt(f[1], 0, 64)
		if err != nil {
			continue
		}
		size, err := strconv.ParseUint(strings.TrimPrefix(strings.TrimPrefix(f[2], "0x"), "0X"), 16, 31)
		if err != nil {
			continue
		}
		if size < 6 {
			return nil, fmt.Errorf("environment size 0x%x of %s is too small", size, f[0])
		}
		devs = append(devs, fwEnvDev{path: f[0], offset: off, size: int64(size)})
		if len(devs) == 2 {
			break
		}
	}
	switch {
	case len(devs) == 0:
		return nil, errors.New("no environment configured")
	case len(devs) == 2 && devs[0].size != devs[1].size:
		return nil, fmt.Errorf("redundant environments have unequal sizes 0x%x and 0x%x", devs[0].size, devs[1].size)
	}
	return devs, nil
}

// fwEnv is a loaded U-Boot environment.
type fwEnv struct {
	config  string
	devs    []fwEnvDev
	offsets []int64 // resolved offsets
	flags   []byte  // flags byte of each copy (redundant only)
	current int     // copy in use
	vars    envVars
}

func (e *fwEnv) redundant() bool { return len(e.devs) == 2 }

// openFwEnv loads the environment configured in configPath. It fails when
// no copy has a valid CRC: U-Boot then runs on its built-in default
// environment, which cannot be known here, and writing only our variables
// would make U-Boot drop its defaults on the next boot.
func openFwEnv(configPath string) (*fwEnv, error) {
	cfg, err := os.ReadFile(configPath)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", configPath, err)
	}
	devs, err := parseFwEnvConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", configPath, err)
	}
	e := &fwEnv{config: configPath, devs: devs}
	var (
		ok   []bool
		vars []envVars
	)
	for _, d := range devs {
		buf, off, err := readFwEnvCopy(d)
		if err != nil {
			return nil, err
		}
		v, flags, err := decodeFwEnvCopy(buf, e.redundant())
		e.offsets = append(e.offsets, off)
		e.flags = append(e.flags, flags)
		ok = append(ok, err == nil)
		vars = append(vars, v)
	}
	if e.redundant() {
		e.current = pickCopy(ok[0], ok[1], e.flags[0], e.flags[1])
	}
	if !ok[e.current] {
		return nil, fmt.Errorf("no valid U-Boot environment (bad CRC) in %s configured by %s", strings.Join(e.paths(), " or "), configPath)
	}
	e.vars = vars[e.current]
	return e, nil
}

func (e *fwEnv) paths() []string {
	var p []string
	for _, d := range e.devs {
		p = append(p, d.path)
	}
	return p
}

// pickCopy chooses the copy in use among two: the valid one, or of two
// valid ones the newer by flags.
func pickCopy(ok0, ok1 bool, flags0, flags1 byte) int {
	switch {
	case !ok1:
		return 0
	case ok1 && !ok0:
		return 1
	case flags0 == 0xff && flags1 == 0:
		return 1
	case flags1 == 0xff && flags0 == 0:
		return 0
	case flags1 > flags0:
		return 1
	}
	return 0
}

// readFwEnvCopy reads one copy and returns it with its resolved offset.
func readFwEnvCopy(d fwEnvDev) ([]byte, int64, error) {
	if err := checkFwEnvDevice(d.path); err != nil {
		return nil, 0, err
	}
	f, err := os.Open(d.path)
	if err != nil {
		return nil, 0, fmt.Errorf("open %s: %w", d.path, err)
	}
	defer f.Close()
	off := d.offset
	if off < 0 {
		end, err := f.Seek(0, io.SeekEnd)
		if err != nil {
			return nil, 0, fmt.Errorf("size of %s: %w", d.path, err)
		}
		if off += end; off < 0 {
			return nil, 0, fmt.Errorf("%s: offset %d lies before the start of its %d bytes", d.path, d.offset, end)
		}
	}
	buf := make([]byte, d.size)
	if _, err := f.ReadAt(buf, off); err != nil {
		return nil, 0, fmt.Errorf("read %d bytes of %s at 0x%x: %w", d.size, d.path, off, err)
	}
	return buf, off, nil
}

// checkFwEnvDevice refuses raw flash: MTD needs erase cycles and UBI volume
// updates, which this implementation does not do.
func checkFwEnvDevice(path string) error {
	if strings.HasPrefix(path, "/dev/mtd") || strings.HasPrefix(path, "/dev/ubi") {
		return fmt.Errorf("%s: U-Boot environments on MTD or UBI are not supported (files and block devices are)", path)
	}
	return nil
}

// decodeFwEnvCopy checks and parses one copy; flags is 0 for a single one.
func decodeFwEnvCopy(buf []byte, redundant bool) (v envVars, flags byte, err error) {
	hdr := 4
	if redundant {
		hdr = 5
	}
	if len(buf) <= hdr {
		return nil, 0, fmt.Errorf("environment of %d bytes is too small", len(buf))
	}
	if redundant {
		flags = buf[4]
	}
	if got, want := binary.LittleEndian.Uint32(buf), crc32.ChecksumIEEE(buf[hdr:]); got != want {
		return nil, flags, fmt.Errorf("bad CRC 0x%08x, content has 0x%08x", got, want)
	}
	v, err = parseUbootData(buf[hdr:], true)
	return v, flags, err
}

// encodeFwEnvCopy lays out one copy of size bytes. Variables are sorted by
// name, as U-Boot's saveenv and libubootenv store them; the rest of the
// data area is zero, as U-Boot leaves it.
func encodeFwEnvCopy(v envVars, size int64, redundant bool, flags byte) ([]byte, error) {
	hdr := 4
	if redundant {
		hdr = 5
	}
	sorted := v.clone()
	slices.SortStableFunc(sorted, func(a, b envVar) int { return cmp.Compare(a.name, b.name) })
	data, err := appendUbootData(nil, sorted)
	if err != nil {
		return nil, err
	}
	if int64(hdr+len(data)+1) > size {
		return nil, fmt.Errorf("environment needs %d bytes, has 0x%x", hdr+len(data)+1, size)
	}
	buf := make([]byte, size)
	copy(buf[hdr:], data)
	if redundant {
		buf[4] = flags
	}
	binary.LittleEndian.PutUint32(buf, crc32.ChecksumIEEE(buf[hdr:]))
	return buf, nil
}

// set changes variables (an empty value deletes one, as with fw_setenv)
// and writes the environment if anything changed.
func (e *fwEnv) set(kv ...envVar) error {
	v := e.vars.clone()
	changed := false
	for _, x := range kv {
		if x.value == "" {
			if i := slices.IndexFunc(v, func(y envVar) bool { return y.name == x.name }); i >= 0 {
				v = slices.Delete(v, i, i+1)
				changed = true
			}
			continue
		}
		changed = v.set(x.name, x.value) || changed
	}
	if !changed {
		return nil
	}
	target, flags := 0, byte(0)
	if e.redundant() {
		target, flags = 1-e.current, e.flags[e.current]+1
	}
	img, err := encodeFwEnvCopy(v, e.devs[target].size, e.redundant(), flags)
	if err != nil {
		return fmt.Errorf("%s: %w", e.config, err)
	}
	if err := writeFwEnvCopy(e.devs[target].path, e.offsets[target], img, e.redundant()); err != nil {
		return err
	}
	e.vars = v
	if e.redundant() {
		e.flags[target] = flags
		e.current = target
	}
	return nil
}

// writeFwEnvCopy stores a copy. A single copy in a regular file (such as
// uboot.env on a FAT partition) is replaced atomically as a whole file;
// everything else is written in place: block devices must be, and the
// redundant scheme already keeps the copy in use intact.
func writeFwEnvCopy(path string, off int64, img []byte, redundant bool) error {
	resolved, err := filepath.EvalSymlinks(path)
	if err != nil {
		return fmt.Errorf("resolve %s: %w", path, err)
	}
	st, err := os.Stat(resolved)
	if err != nil {
		return fmt.Errorf("stat %s: %w", resolved, err)
	}
	if redundant || !st.Mode().IsRegular() {
		defer protectBootPartition(resolved)()
		return writeAt(resolved, off, img)
	}
	whole, err := os.ReadFile(resolved)
	if err != nil {
		return fmt.Errorf("read %s: %w", resolved, err)
	}
	if end := off + int64(len(img)); int64(len(whole)) < end {
		whole = append(whole, make([]byte, end-int64(len(whole)))...)
	}
	copy(whole[off:], img)
	return atomicfile.Write(resolved, whole, st.Mode().Perm())
}

// writeAt writes b at off and waits for the device. It is a variable so
// that tests can cut a write short as a power failure would.
var writeAt = func(path string, off int64, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	if _, err := f.WriteAt(b, off); err != nil {
		f.Close()
		return fmt.Errorf("write %s at 0x%x: %w", path, off, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("fsync %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", path, err)
	}
	return nil
}

// protectBootPartition lifts the kernel's write protection of an eMMC boot
// partition (mmcblkXbootY), where environments often live, for the length
// of a write, as libubootenv does. It returns the function restoring it.
func protectBootPartition(dev string) (restore func()) {
	name := filepath.Base(dev)
	if !strings.HasPrefix(name, "mmcblk") || !strings.Contains(name, "boot") {
		return func() {}
	}
	ro := filepath.Join("/sys/class/block", name, "force_ro")
	if cur, err := os.ReadFile(ro); err != nil || strings.TrimSpace(string(cur)) != "1" {
		return func() {}
	}
	if err := os.WriteFile(ro, []byte("0"), 0); err != nil {
		return func() {}
	}
	return func() { os.WriteFile(ro, []byte("1"), 0) }
}
