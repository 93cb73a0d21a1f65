//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// TestDemo is the README's main job (make demo): the Raspberry Pi 4 tryboot
// image, with the harness playing the firmware, boots for the first time,
// rejects an unsigned bundle, installs a signed update into group B, boots
// it on trial, commits it and boots it as the default, with a line for
// each step. It runs only with E2E_DEMO=1: TestUpdates covers the same
// ground and more for make e2e.
func TestDemo(t *testing.T) {
	if os.Getenv("E2E_DEMO") == "" {
		t.Skip("E2E_DEMO=1 runs the demo (make demo)")
	}
	b := boards["tryboot"]
	d := newDevice(t, b, "demo")
	n := 0
	step := func(format string, a ...any) {
		n++
		fmt.Printf("\n==> %d. %s\n", n, fmt.Sprintf(format, a...))
	}
	show := func(si *sysInfo) {
		bt := si.Boot
		trial := ""
		if bt.ActiveGroup != bt.DefaultGroup {
			trial = " (trial boot: not committed yet)"
		}
		fmt.Printf("    running group %s, default group %s%s; boot flow %s\n", bt.ActiveGroup, bt.DefaultGroup, trial, bt.BootFlow)
		if f := bt.Firmware; f != nil {
			fmt.Printf("    firmware (device tree): booted partition %d, tryboot=%v\n", f.Partition, f.Tryboot)
		}
		fmt.Printf("    system: %s, data partition %s\n", strings.TrimSpace(d.sh("cat /etc/bascule-e2e-version")), si.State.DataPartition)
	}

	step("power on the factory sdcard.img (Raspberry Pi 4 tryboot layout, %s): bascule runs as PID 1, adds system-b and data, hands over to BusyBox init", b.sdcard)
	d.boot()
	show(d.check(state{"a", "a", "v1"}))

	step("an unsigned bundle is rejected before anything is written or armed")
	d.mountBundles()
	out, rc := d.shRC("bascule update install /mnt/v2-unsigned.rugixb >/tmp/out 2>&1; r=$?; tail -n 1 /tmp/out; (exit $r)", installTimeout)
	if rc == 0 || !strings.Contains(out, "rejected") {
		t.Fatalf("the unsigned bundle was not rejected (rc %d):\n%s", rc, out)
	}
	fmt.Printf("    %s\n", lastLine(out))

	step("install the signed update v2 into the spare group b; bascule then reboots with \"0 tryboot\"")
	took := d.installAndRestart("v2.rugixb", "b")
	fmt.Printf("    installed and verified in %.1f s (emulated CPU)\n", took.Seconds())

	step("the firmware boots partition 3 once (tryboot); bascule reports the trial")
	d.boot()
	show(d.check(state{"b", "a", "v2"}))

	step("bascule system commit: group b becomes the default (autoboot.txt rewritten atomically)")
	commit(t, d, "b")

	step("reboot: group b boots without tryboot")
	d.reboot()
	d.boot()
	show(d.check(state{"b", "b", "v2"}))

	fmt.Printf("\n==> done. Console log: %s\n", d.logDir)
}
