//go:build e2e

// Package e2e boots the A/B system in qemu-system-aarch64 and drives it
// over the serial console: a Debian arm64 kernel with a small initramfs,
// bascule as PID 1, BusyBox init, and either real U-Boot (rpi-uboot flow)
// or the Raspberry Pi tryboot firmware played by the harness (package fw).
// The images come from test/e2e/build.sh; see test/e2e/README.md.
//
//	go test -tags e2e -v -timeout 25m ./test/e2e/
//
// E2E_OUT names build.sh's output (default _out/e2e), E2E_SEED the seed of
// the power cut points, E2E_CUTS their number (default 24).
package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bascule-ota/bascule/internal/disk"
)

var (
	boards           = map[string]*board{}
	logRoot          string
	trybootStartFile = true
)

func TestMain(m *testing.M) {
	code, err := setup()
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		os.Exit(1)
	}
	if code == 0 {
		code = m.Run()
	}
	stats.print(os.Stdout)
	os.Exit(code)
}

// setup reads the manifest, copies the boards' inputs and makes the
// bundle disks.
func setup() (int, error) {
	// Like build.sh: E2E_OUT, default _out/e2e, relative to the top of the
	// repository (go test runs in test/e2e).
	out := os.Getenv("E2E_OUT")
	if out == "" {
		out = "_out/e2e"
	}
	if !filepath.IsAbs(out) {
		out = filepath.Join("..", "..", out)
	}
	man, err := loadManifest(filepath.Join(out, "manifest.env"))
	if err != nil {
		return 1, fmt.Errorf("%v (run test/e2e/build.sh first, or make e2e)", err)
	}
	if out, err = filepath.Abs(out); err != nil {
		return 1, err
	}
	logRoot = filepath.Join(out, "logs", time.Now().UTC().Format("20060102-150405"))
	if err := os.MkdirAll(logRoot, 0o755); err != nil {
		return 1, err
	}
	fmt.Printf("e2e: console logs in %s\n", logRoot)
	work, err := os.MkdirTemp("", "bascule-e2e-")
	if err != nil {
		return 1, err
	}
	cleanup = append(cleanup, func() { os.RemoveAll(work) })
	for _, name := range []string{"uboot", "tryboot"} {
		b, err := setupBoard(man, name, filepath.Join(work, name))
		if err != nil {
			return 1, fmt.Errorf("board %s: %w", name, err)
		}
		boards[name] = b
	}
	has, err := hasStartFile(boards["tryboot"].sdcard)
	if err != nil {
		return 1, err
	}
	if !has {
		trybootStartFile = false
		fmt.Printf("e2e: note: boot-a of the tryboot image has no %s; the firmware model skips that check\n", "start4.elf")
	}
	return 0, nil
}

var cleanup []func()

// setupBoard copies the factory image (each device copies it again) and
// what QEMU reads, and makes the bundle disk: an ext4 image holding the
// bundles and two damaged copies of v2.
func setupBoard(man manifest, name, dir string) (*board, error) {
	key := "E2E_" + strings.ToUpper(name) + "_"
	get := func(k string) (string, error) {
		v := man[k]
		if v == "" {
			return "", fmt.Errorf("manifest.env has no %s", k)
		}
		return v, nil
	}
	b := &board{name: name, flow: map[string]string{"uboot": "rpi-uboot", "tryboot": "rpi-tryboot"}[name]}
	// Everything is copied, so that a rebuild by build.sh during the run
	// does not change what the tests boot.
	sdcard, err := get(key + "SDCARD")
	if err != nil {
		return nil, err
	}
	files := filepath.Join(dir, "bundles")
	if err := os.MkdirAll(files, 0o755); err != nil {
		return nil, err
	}
	b.sdcard = filepath.Join(dir, "sdcard.img")
	if err := copyFile(sdcard, b.sdcard); err != nil {
		return nil, err
	}
	if name == "uboot" {
		src, err := get("E2E_UBOOT_BIN")
		if err != nil {
			return nil, err
		}
		b.ubootBin = filepath.Join(dir, "u-boot.bin")
		if err := copyFile(src, b.ubootBin); err != nil {
			return nil, err
		}
	}
	for _, v := range []string{"v2", "v3", "bad-init", "v2-unsigned"} {
		k := key + "BUNDLE_" + strings.ToUpper(strings.ReplaceAll(v, "-", "_"))
		src, err := get(k)
		if err != nil {
			return nil, err
		}
		if err := copyFile(src, filepath.Join(files, v+".rugixb")); err != nil {
			return nil, err
		}
	}
	v2, err := os.ReadFile(filepath.Join(files, "v2.rugixb"))
	if err != nil {
		return nil, err
	}
	// One flipped byte in the header (caught by the signature check
	// before anything is written) and one in the middle of the payloads
	// (caught by a block hash during the install).
	for name, off := range map[string]int{"v2-bad-header.rugixb": 64, "v2-bad-payload.rugixb": len(v2) / 2} {
		c := append([]byte{}, v2...)
		c[off] ^= 0x40
		if err := os.WriteFile(filepath.Join(files, name), c, 0o644); err != nil {
			return nil, err
		}
	}
	b.bundles = filepath.Join(dir, "bundles.ext4")
	size := 0
	entries, _ := os.ReadDir(files)
	for _, e := range entries {
		if fi, err := e.Info(); err == nil {
			size += int(fi.Size())
		}
	}
	size = size/(1<<20)*5/4 + 16
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-L", "bundles", "-d", files, b.bundles, fmt.Sprintf("%dM", size)).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("mkfs.ext4 of the bundle disk: %v: %s", err, out)
	}
	return b, os.RemoveAll(files)
}

// hasStartFile reports whether boot-a (partition 2) of an image holds
// start4.elf, without which a real Raspberry Pi would not boot it.
func hasStartFile(image string) (bool, error) {
	t, err := disk.ReadDevice(image)
	if err != nil {
		return false, err
	}
	p := t.Partition(2)
	if p == nil {
		return false, fmt.Errorf("%s: no partition 2", image)
	}
	cmd := exec.Command("mdir", "-b", "-i", fmt.Sprintf("%s@@%d", image, p.Start), "::/")
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1", "MTOOLSRC=/dev/null")
	out, err := cmd.Output()
	if err != nil {
		return false, fmt.Errorf("mdir of boot-a: %w", err)
	}
	return strings.Contains(strings.ToLower(string(out)), "start4.elf"), nil
}

func copyFile(src, dst string) error {
	if out, err := exec.Command("cp", "--sparse=always", src, dst).CombinedOutput(); err != nil {
		return fmt.Errorf("cp %s: %v: %s", src, err, out)
	}
	return nil
}

// summary collects the times printed at the end.
type summary struct {
	mu       sync.Mutex
	boots    map[string][]bootTimes
	installs map[string][]string
	cuts     []string
	goStart  map[string]string
}

var stats = &summary{boots: map[string][]bootTimes{}, installs: map[string][]string{}, goStart: map[string]string{}}

func (s *summary) addGoStart(board string, extra, trueRun time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.goStart[board] = fmt.Sprintf("%.0fms more than /bin/true (%.0fms incl. the shell loop)", float64(extra)/1e6, float64(trueRun)/1e6)
}

func (s *summary) addBoot(board string, bt bootTimes) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.boots[board] = append(s.boots[board], bt)
}

func (s *summary) addInstall(board, bundle string, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.installs[board] = append(s.installs[board], fmt.Sprintf("%s %.1fs", bundle, d.Seconds()))
}

func (s *summary) addCut(line string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cuts = append(s.cuts, line)
}

// spread prints the median and range of a set of durations in seconds.
func spread(ds []time.Duration, unit time.Duration) string {
	var xs []time.Duration
	for _, d := range ds {
		if d > 0 {
			xs = append(xs, d)
		}
	}
	if len(xs) == 0 {
		return "-"
	}
	sort.Slice(xs, func(i, j int) bool { return xs[i] < xs[j] })
	f := func(d time.Duration) string {
		if unit == time.Millisecond {
			return fmt.Sprintf("%.0fms", float64(d)/float64(time.Millisecond))
		}
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
	return fmt.Sprintf("median %s (%s..%s, n=%d)", f(xs[len(xs)/2]), f(xs[0]), f(xs[len(xs)-1]), len(xs))
}

// print writes the summary: boot phases, pre-init, installs and cuts.
func (s *summary) print(w *os.File) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fmt.Fprintln(w, "\n=== e2e summary (host wall time under TCG; console lines stamped on arrival)")
	for _, name := range []string{"uboot", "tryboot"} {
		bs := s.boots[name]
		if len(bs) == 0 {
			continue
		}
		col := func(f func(bootTimes) time.Duration, unit time.Duration) string {
			var ds []time.Duration
			for _, b := range bs {
				ds = append(ds, f(b))
			}
			return spread(ds, unit)
		}
		fmt.Fprintf(w, "%s: %d boots to a shell\n", name, len(bs))
		if name == "uboot" {
			fmt.Fprintf(w, "  power-on -> U-Boot starts the kernel:   %s\n", col(func(b bootTimes) time.Duration { return b.kernel }, time.Second))
		}
		fmt.Fprintf(w, "  power-on -> initramfs switch_root:      %s\n", col(func(b bootTimes) time.Duration { return b.switchRoot }, time.Second))
		fmt.Fprintf(w, "  power-on -> rcS (BusyBox init running): %s\n", col(func(b bootTimes) time.Duration { return b.rcs }, time.Second))
		fmt.Fprintf(w, "  power-on -> shell answers:              %s\n", col(func(b bootTimes) time.Duration { return b.shell }, time.Second))
		fmt.Fprintf(w, "  pre-init, as bascule reports it (main -> exec of init):   %s\n", col(func(b bootTimes) time.Duration { return b.preInitOwn }, time.Millisecond))
		fmt.Fprintf(w, "  of it fsck of the data partition (bascule's clock):       %s\n", col(func(b bootTimes) time.Duration { return b.preInitFsck }, time.Millisecond))
		fmt.Fprintf(w, "  pre-init without fsck (bascule's clock):                  %s\n", col(func(b bootTimes) time.Duration { return b.preInitOwn - b.preInitFsck }, time.Millisecond))
		fmt.Fprintf(w, "  pre-init on the console (switch_root line -> done line):  %s\n", col(func(b bootTimes) time.Duration {
			if b.switchRoot == 0 || b.preInitEnd == 0 {
				return 0
			}
			return b.preInitEnd - b.switchRoot
		}, time.Millisecond))
		fmt.Fprintf(w, "  of it before bascule's clock starts (exec, Go runtime):   %s\n", col(func(b bootTimes) time.Duration {
			if b.switchRoot == 0 || b.preInitEnd == 0 || b.preInitOwn == 0 {
				return 0
			}
			return b.preInitEnd - b.switchRoot - b.preInitOwn
		}, time.Millisecond))
		fmt.Fprintf(w, "  switch_root line -> bascule's first line:                 %s\n", col(func(b bootTimes) time.Duration {
			if b.switchRoot == 0 || b.banner == 0 {
				return 0
			}
			return b.banner - b.switchRoot
		}, time.Millisecond))
		fmt.Fprintf(w, "  bascule's first line -> fsck of the data partition ended:  %s\n", col(func(b bootTimes) time.Duration {
			if b.banner == 0 || b.fsckDone == 0 {
				return 0
			}
			return b.fsckDone - b.banner
		}, time.Millisecond))
		fmt.Fprintf(w, "  fsck ended -> pre-init done (state, overlay, hand-over):   %s\n", col(func(b bootTimes) time.Duration {
			if b.fsckDone == 0 || b.preInitEnd == 0 {
				return 0
			}
			return b.preInitEnd - b.fsckDone
		}, time.Millisecond))
		if g := s.goStart[name]; g != "" {
			fmt.Fprintf(w, "  a run of `bascule version` in the guest (exec, Go runtime start, exit): %s\n", g)
		}
		if len(s.installs[name]) > 0 {
			fmt.Fprintf(w, "  installs (command sent -> \"Installed bundle\"): %s\n", strings.Join(s.installs[name], ", "))
		}
	}
	if len(s.cuts) > 0 {
		fmt.Fprintf(w, "power cuts: %d\n", len(s.cuts))
		for _, c := range s.cuts {
			fmt.Fprintf(w, "  %s\n", c)
		}
	}
	for _, f := range cleanup {
		f()
	}
}
