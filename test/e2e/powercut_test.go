//go:build e2e

package e2e

import (
	"fmt"
	"math/rand"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestPowerCuts kills QEMU at points spread over the three phases that
// change boot state -- an install running, a reboot into the spare group
// (from the request to the trial's shell), a commit running -- chosen by a
// seeded random generator, and boots again each time: a complete group
// must boot, and system info must agree with the version marker and the
// firmware. The seed is printed; E2E_SEED repeats a run, E2E_CUTS sets the
// number of cuts (shared by the two boards).
func TestPowerCuts(t *testing.T) {
	seed := time.Now().UnixNano()
	if s := os.Getenv("E2E_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseInt(s, 10, 64); err != nil {
			t.Fatalf("E2E_SEED=%q: %v", s, err)
		}
	}
	cuts := 24
	if s := os.Getenv("E2E_CUTS"); s != "" {
		var err error
		if cuts, err = strconv.Atoi(s); err != nil || cuts < 1 {
			t.Fatalf("E2E_CUTS=%q: not a positive number", s)
		}
	}
	fmt.Printf("e2e: power cuts: seed %d (E2E_SEED=%d repeats the cut points), %d cuts\n", seed, seed, cuts)
	for i, name := range []string{"uboot", "tryboot"} {
		n := cuts / 2
		if i == 0 {
			n += cuts % 2
		}
		rng := rand.New(rand.NewSource(seed + int64(i)))
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			powerCuts(t, boards[name], rng, n)
		})
	}
}

// cutRun is the harness's knowledge of a device under power cuts.
type cutRun struct {
	t   *testing.T
	d   *device
	rng *rand.Rand
	// content is the version a group is known to hold completely; ""
	// while an install into it may have been cut.
	content map[string]string
	def     string
	// Phase durations measured on this device, for choosing cut points;
	// commitDur starts as a guess and is measured whenever a commit
	// finishes before its cut.
	installDur, bootDur, downDur, commitDur time.Duration
	cuts                                    int
}

func powerCuts(t *testing.T, b *board, rng *rand.Rand, n int) {
	d := newDevice(t, b, "powercuts-"+b.name)
	r := &cutRun{t: t, d: d, rng: rng, content: map[string]string{"a": "v1", "b": ""}, def: "a",
		installDur: 30 * time.Second, bootDur: 5 * time.Second, downDur: time.Second, commitDur: 300 * time.Millisecond}
	r.boot()
	d.check(state{"a", "a", "v1"})
	d.sh("echo survives >/var/lib/e2e/cuts && sync")
	d.mountBundles()
	phases := []string{"reboot", "commit", "install"}
	for i := 0; i < n; i++ {
		phase := phases[i%len(phases)]
		tgt := other(r.def)
		var allowed []state
		var offset, window time.Duration
		var where string
		switch phase {
		case "install":
			ver := r.versionFor(tgt)
			r.content[tgt] = ""
			window = r.installDur
			offset = r.pick(window)
			_, sent := d.install(ver + ".rugixb")
			where = r.cutAt(sent.Add(offset))
			allowed = []state{{r.def, r.def, r.content[r.def]}}
			if b.name == "uboot" {
				// boot_spare=1 is written once the install verified,
				// and U-Boot clears it only when it boots the spare.
				allowed = append(allowed, state{tgt, r.def, ver})
			}
		case "reboot":
			r.complete(tgt)
			window = r.downDur + r.bootDur
			offset = r.pick(window)
			sent := time.Now()
			if err := d.vm.send("bascule system reboot --spare"); err != nil {
				t.Fatal(err)
			}
			where = r.cutAt(sent.Add(offset))
			allowed = []state{{r.def, r.def, r.content[r.def]}}
			if b.name == "uboot" {
				allowed = append(allowed, state{tgt, r.def, r.content[tgt]})
			}
		case "commit":
			r.complete(tgt)
			down := time.Now()
			if err := d.vm.send("bascule system reboot --spare"); err != nil {
				t.Fatal(err)
			}
			d.exited(bootTimeout)
			r.downDur = time.Since(down)
			r.boot()
			d.check(state{tgt, r.def, r.content[tgt]})
			// The whole command, from its start to its message, and a
			// little after.
			window = r.commitDur * 6 / 5
			offset = r.pick(window)
			from := d.vm.size()
			sent := time.Now()
			if err := d.vm.send("bascule system commit"); err != nil {
				t.Fatal(err)
			}
			where = r.cutAt(sent.Add(offset))
			allowed = []state{{tgt, tgt, r.content[tgt]}}
			if _, end, err := d.vm.expect(committedLine, from, time.Millisecond); err == nil {
				r.commitDur = d.vm.stampAt(end - 1).Sub(sent)
			} else {
				allowed = append(allowed, state{r.def, r.def, r.content[r.def]})
			}
		}
		r.cuts++
		got := r.afterCut(allowed)
		line := fmt.Sprintf("%s cut %2d, %-7s (group %s) at %5.2fs of %5.2fs, %s -> booted %s (default %s) %s",
			b.name, r.cuts, phase, tgt, offset.Seconds(), window.Seconds(), where, got.active, got.def, got.version)
		t.Log(line)
		stats.addCut(line)
	}
}

// committedLine is what system commit prints once the commit is durable.
var committedLine = regexp.MustCompile(`Committed boot group \S+\r?\n`)

// pick chooses a cut point in [0, window).
func (r *cutRun) pick(window time.Duration) time.Duration {
	return time.Duration(r.rng.Int63n(int64(window)))
}

// versionFor is the bundle to install into tgt: one the default group
// does not run, so that the marker tells the groups apart.
func (r *cutRun) versionFor(tgt string) string {
	if r.content[other(tgt)] == "v2" {
		return "v3"
	}
	return "v2"
}

// boot boots and updates the boot time estimate.
func (r *cutRun) boot() {
	r.d.boot()
	r.bootDur = time.Since(r.d.vm.started)
}

// complete makes sure tgt holds a complete system, installing one
// (without a reboot) if an install into it was cut.
func (r *cutRun) complete(tgt string) {
	if r.content[tgt] != "" {
		return
	}
	ver := r.versionFor(tgt)
	start := time.Now()
	out, rc := r.d.shRC("bascule update install --reboot no /mnt/"+ver+".rugixb 2>&1 >/dev/null | cat", installTimeout)
	if rc != 0 || !installedLine.MatchString(out) {
		r.t.Fatalf("install %s into %s:\n%s", ver, tgt, out)
	}
	r.installDur = time.Since(start)
	stats.addInstall(r.d.b.name, ver+".rugixb (--reboot no)", r.installDur)
	r.content[tgt] = ver
}

// cutAt plays the power supply until at: when the guest restarts by
// itself (QEMU exits with -no-reboot), the machine comes up again at once,
// as a real one would; at that time the power is cut. It returns where the
// cut landed: the boot it hit and the last console line.
func (r *cutRun) cutAt(at time.Time) string {
	restarts := 0
	for {
		wait := time.Until(at)
		if wait <= 0 {
			break
		}
		select {
		case <-r.d.vm.exited:
			r.d.exited(0)
			restarts++
			r.d.start()
		case <-time.After(wait):
		}
	}
	last := lastLine(ansi.ReplaceAllString(strings.ReplaceAll(r.d.vm.tail(3), "\r", ""), ""))
	if len(last) > 60 {
		last = last[:60] + "..."
	}
	if !r.d.powerCut() {
		r.t.Fatal("the power cut found QEMU not running")
	}
	return fmt.Sprintf("boot +%d, after %q", restarts, last)
}

// ansi matches the terminal control sequences the shell's line editing
// sends.
var ansi = regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]`)

// afterCut boots the device after a cut and checks that it runs one of the
// allowed states, consistently; a trial left armed (U-Boot) is ended with
// a plain reboot, which must return to the default group.
func (r *cutRun) afterCut(allowed []state) state {
	d := r.d
	r.boot()
	si := d.info()
	ver := strings.TrimSpace(d.sh("cat /etc/bascule-e2e-version"))
	got := state{si.Boot.ActiveGroup, si.Boot.DefaultGroup, ver}
	if err := d.consistent(si, ver); err != nil {
		r.t.Fatalf("after cut %d: %v", r.cuts, err)
	}
	ok := false
	for _, a := range allowed {
		ok = ok || a == got
	}
	if !ok {
		r.t.Fatalf("after cut %d: running %+v, want one of %+v", r.cuts, got, allowed)
	}
	if out := d.sh("cat /var/lib/e2e/cuts"); strings.TrimSpace(out) != "survives" {
		r.t.Fatalf("after cut %d: persisted file holds %q", r.cuts, out)
	}
	r.content[got.active] = got.version
	r.def = got.def
	if got.active != got.def {
		d.reboot()
		r.boot()
		d.check(state{r.def, r.def, r.content[r.def]})
	}
	d.mountBundles()
	return got
}
