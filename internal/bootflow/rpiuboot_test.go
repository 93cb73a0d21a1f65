package bootflow

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// Rugix's asset bootpart.a.env: CRC32 0x615fbaf5 little-endian, then
// "bootpart=2\0".
var rugixBootpartA = []byte("\xf5\xba\x5f\x61bootpart=2\x00")

func TestEnvFileVector(t *testing.T) {
	got, err := encodeEnvFile(envVars{{"bootpart", "2"}})
	must(t, err)
	if !bytes.Equal(got, rugixBootpartA) {
		t.Fatalf("bootpart=2 encodes to % x, want % x", got, rugixBootpartA)
	}
	v, err := decodeEnvFile(rugixBootpartA)
	must(t, err)
	if p, ok := v.get("bootpart"); !ok || p != "2" || len(v) != 1 {
		t.Fatalf("decoded %v", v)
	}
	two, err := encodeEnvFile(envVars{{"bootpart", "3"}, {"bootargs", "a b=c"}})
	must(t, err)
	if !bytes.HasSuffix(two, []byte("bootpart=3\x00bootargs=a b=c\x00")) || len(two) != 4+11+15 {
		t.Fatalf("two variables: %q", two)
	}
	for _, bad := range [][]byte{
		nil,
		rugixBootpartA[:3],
		append([]byte{0xf6}, rugixBootpartA[1:]...),
		append(append([]byte(nil), rugixBootpartA[:len(rugixBootpartA)-1]...), 'x'),
	} {
		if _, err := decodeEnvFile(bad); err == nil {
			t.Errorf("decoded %q", bad)
		}
	}
	if _, err := encodeEnvFile(envVars{{"a=b", "c"}}); err == nil {
		t.Error("encoded a name with '='")
	}
}

// rpiUbootBoot does what Rugix's first-stage boot.scr (boot.uboot.sh) does:
// import both env files if their CRC is good, default to partition 2, and
// on boot_spare=1 boot the other partition and save the disabled template
// (or an empty file) over boot_spare.env.
func rpiUbootBoot(t *testing.T, dir string) string {
	t.Helper()
	var env envVars
	for _, name := range []string{"bootpart.default.env", "boot_spare.env"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			continue
		}
		v, err := decodeEnvFile(b)
		if err != nil {
			continue
		}
		for _, e := range v {
			env.set(e.name, e.value)
		}
	}
	bootpart, ok := env.get("bootpart")
	if !ok {
		bootpart = "2"
	}
	if spare, _ := env.get("boot_spare"); spare == "1" {
		n, _ := strconv.Atoi(bootpart)
		bootpart = strconv.Itoa(5 - n)
		disabled, _ := os.ReadFile(filepath.Join(dir, "boot_spare.disabled.env"))
		must(t, os.WriteFile(filepath.Join(dir, "boot_spare.env"), disabled, 0o644))
	}
	return bootpart
}

// freshRPiUboot lays out the config partition as Bakery ships it.
func freshRPiUboot(t *testing.T, te *testEnv) {
	enc := func(k, v string) []byte {
		b, err := encodeEnvFile(envVars{{k, v}})
		must(t, err)
		return b
	}
	te.write("bootpart.default.env", rugixBootpartA)
	te.write("boot_spare.disabled.env", enc("boot_spare", "0"))
	te.write("boot_spare.enabled.env", enc("boot_spare", "1"))
}

func TestRPiUbootUpdate(t *testing.T) {
	te := newTestEnv(t)
	freshRPiUboot(t, te)
	f := te.flow(RPiUboot)
	mustDefault(t, f, "a")

	must(t, f.SetTryNext("b"))
	if !bytes.Equal(te.read("boot_spare.env"), te.read("boot_spare.enabled.env")) {
		t.Fatalf("boot_spare.env = %q", te.read("boot_spare.env"))
	}
	if part := rpiUbootBoot(t, te.ConfigDir); part != "3" {
		t.Fatalf("U-Boot booted %s, want the try on 3", part)
	}
	mustDefault(t, f, "a")
	must(t, f.Commit("b"))
	mustDefault(t, f, "b")
	want, _ := encodeEnvFile(envVars{{"bootpart", "3"}})
	if !bytes.Equal(te.read("bootpart.default.env"), want) {
		t.Fatalf("bootpart.default.env = % x", te.read("bootpart.default.env"))
	}
	if part := rpiUbootBoot(t, te.ConfigDir); part != "3" {
		t.Fatalf("after commit U-Boot booted %s", part)
	}

	// Arm and disarm.
	must(t, f.SetTryNext("a"))
	must(t, f.SetTryNext("b"))
	if !bytes.Equal(te.read("boot_spare.env"), te.read("boot_spare.disabled.env")) {
		t.Fatalf("boot_spare.env = %q after disarming", te.read("boot_spare.env"))
	}
	must(t, f.Reboot(true))
	if te.reboots[0] != (rebootCall{rebootRestart, ""}) {
		t.Errorf("reboot %+v", te.reboots)
	}
}

func TestRPiUbootFailedTry(t *testing.T) {
	te := newTestEnv(t)
	freshRPiUboot(t, te)
	f := te.flow(RPiUboot)
	must(t, f.SetTryNext("b"))
	if part := rpiUbootBoot(t, te.ConfigDir); part != "3" {
		t.Fatalf("try booted %s", part)
	}
	if part := rpiUbootBoot(t, te.ConfigDir); part != "2" {
		t.Fatalf("after a failed try U-Boot booted %s", part)
	}
	mustDefault(t, f, "a")
}

func TestRPiUbootCommitCut(t *testing.T) {
	te := newTestEnv(t)
	f := te.flow(RPiUboot)
	steps := te.cuts(
		func() { freshRPiUboot(t, te) },
		func() error { return f.Commit("b") },
		func(step int) {
			def, err := f.Default()
			if err != nil {
				t.Fatalf("cut at step %d: %v", step, err)
			}
			if part := rpiUbootBoot(t, te.ConfigDir); part != map[string]string{"a": "2", "b": "3"}[def] {
				t.Fatalf("cut at step %d: Default %s, U-Boot boots %s", step, def, part)
			}
		})
	// Same size: bootpart.default.env is written in place (write, fsync).
	if steps != 2 {
		t.Errorf("commit took %d steps", steps)
	}
	mustDefault(t, f, "b")
}

func TestRPiUbootBadFiles(t *testing.T) {
	te := newTestEnv(t)
	f := te.flow(RPiUboot)
	if _, err := f.Default(); err == nil {
		t.Error("Default without bootpart.default.env")
	}
	te.write("bootpart.default.env", rugixBootpartA[:8])
	if _, err := f.Default(); err == nil {
		t.Error("Default with a truncated file")
	}
	b, _ := encodeEnvFile(envVars{{"bootpart", "4"}})
	te.write("bootpart.default.env", b)
	if _, err := f.Default(); err == nil {
		t.Error("Default with bootpart=4")
	}
	if err := f.SetTryNext("b"); err == nil {
		t.Error("SetTryNext with a bad default")
	}
}
