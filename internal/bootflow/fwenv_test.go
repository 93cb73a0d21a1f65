package bootflow

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestParseFwEnvConfig(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []fwEnvDev
		err  string
	}{
		{in: "/dev/mmcblk0 0x3c0000 0x20000\n", want: []fwEnvDev{{"/dev/mmcblk0", 0x3c0000, 0x20000}}},
		{in: "# comment\n\n/boot/uboot.env\t0x0000          0x4000\n", want: []fwEnvDev{{"/boot/uboot.env", 0, 0x4000}}},
		{in: "/dev/mmcblk0 -0x20000 20000 200 1\n/dev/mmcblk0 -0x40000 0x20000 0x200 1\n/dev/x 0 0x100\n",
			want: []fwEnvDev{{"/dev/mmcblk0", -0x20000, 0x20000}, {"/dev/mmcblk0", -0x40000, 0x20000}}},
		{in: "/a 4096 1000\n/b 010 1000\n", want: []fwEnvDev{{"/a", 4096, 0x1000}, {"/b", 8, 0x1000}}}, // C offsets, hex sizes
		{in: "/a 0x0\n/b zz 0x100\n/c 0 0x100\n", want: []fwEnvDev{{"/c", 0, 0x100}}},                  // short or bad lines skipped
		{in: "#/a 0 0x100\n", err: "no environment"},
		{in: "/a 0 0x100\n/b 0 0x200\n", err: "unequal"},
		{in: "/a 0 0x0\n", err: "too small"},
	} {
		got, err := parseFwEnvConfig([]byte(c.in))
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: %v, want error %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("%q: %v, %v; want %v", c.in, got, err, c.want)
		}
	}
}

func TestPickCopy(t *testing.T) {
	for _, c := range []struct {
		ok0, ok1 bool
		f0, f1   byte
		want     int
	}{
		{true, false, 1, 9, 0}, {false, true, 9, 1, 1}, {false, false, 0, 9, 0},
		{true, true, 1, 2, 1}, {true, true, 2, 1, 0}, {true, true, 3, 3, 0},
		{true, true, 255, 0, 1}, {true, true, 0, 255, 0}, {true, true, 254, 255, 1},
	} {
		if got := pickCopy(c.ok0, c.ok1, c.f0, c.f1); got != c.want {
			t.Errorf("%+v: %d", c, got)
		}
	}
}

// writeFwEnvFixture creates the environment files of a config from vars.
func writeFwEnvFixture(t *testing.T, cfg string, vars envVars, flags ...byte) {
	t.Helper()
	data, err := os.ReadFile(cfg)
	must(t, err)
	devs, err := parseFwEnvConfig(data)
	must(t, err)
	for i, d := range devs {
		f := byte(0)
		if i < len(flags) {
			f = flags[i]
		}
		img, err := encodeFwEnvCopy(vars, d.size, len(devs) == 2, f)
		must(t, err)
		if len(flags) > i && flags[i] == 0xee { // marker: leave this copy invalid
			img = make([]byte, d.size)
		}
		fh, err := os.OpenFile(d.path, os.O_RDWR|os.O_CREATE, 0o644)
		must(t, err)
		_, err = fh.WriteAt(img, d.offset)
		must(t, err)
		must(t, fh.Close())
	}
}

func TestFwEnvMatchesMkenvimage(t *testing.T) {
	tool := needTool(t, "mkenvimage")
	vars := envVars{{"baudrate", "115200"}, {"bootcmd", "run distro_bootcmd; echo x"}, {"rugix_boot_spare", "0"}, {"rugix_bootpart", "2"}}
	dir := t.TempDir()
	var in bytes.Buffer
	for _, v := range vars {
		fmt.Fprintf(&in, "%s=%s\n", v.name, v.value)
	}
	must(t, os.WriteFile(filepath.Join(dir, "in.txt"), in.Bytes(), 0o644))
	for _, redundant := range []bool{false, true} {
		args := []string{"-s", "0x2000", "-p", "0", "-o", filepath.Join(dir, "out.bin")}
		if redundant {
			args = append(args, "-r")
		}
		out, err := exec.Command(tool, append(args, filepath.Join(dir, "in.txt"))...).CombinedOutput()
		if err != nil {
			t.Fatalf("mkenvimage: %v: %s", err, out)
		}
		want, err := os.ReadFile(filepath.Join(dir, "out.bin"))
		must(t, err)
		// mkenvimage marks a redundant copy active with flags 1.
		shuffled := envVars{vars[2], vars[0], vars[3], vars[1]}
		got, err := encodeFwEnvCopy(shuffled, 0x2000, redundant, 1)
		must(t, err)
		if !bytes.Equal(got, want) {
			t.Errorf("redundant=%v: differs from mkenvimage:\nours %q\nwant %q", redundant, got[:64], want[:64])
		}
	}
}

// fwPrintenv lists the environment with Debian's fw_printenv (libubootenv).
func fwPrintenv(t *testing.T, cfg string) map[string]string {
	t.Helper()
	tool := needTool(t, "fw_printenv")
	out, err := exec.Command(tool, "-c", cfg).Output()
	if err != nil {
		t.Fatalf("fw_printenv -c %s: %v", cfg, err)
	}
	m := map[string]string{}
	for _, line := range strings.Split(strings.TrimSuffix(string(out), "\n"), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			m[k] = v
		}
	}
	return m
}

func fwSetenv(t *testing.T, cfg string, args ...string) {
	t.Helper()
	tool := needTool(t, "fw_setenv")
	out, err := exec.Command(tool, append([]string{"-c", cfg}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("fw_setenv -c %s %v: %v: %s", cfg, args, err, out)
	}
}

func ourEnv(t *testing.T, cfg string) map[string]string {
	t.Helper()
	e, err := openFwEnv(cfg)
	must(t, err)
	m := map[string]string{}
	for _, v := range e.vars {
		m[v.name] = v.value
	}
	return m
}

func mapsEqual(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("%s: %v, want %v", what, got, want)
	}
}

func ourSet(t *testing.T, cfg string, kv ...string) {
	t.Helper()
	e, err := openFwEnv(cfg)
	must(t, err)
	var vars []envVar
	for i := 0; i < len(kv); i += 2 {
		vars = append(vars, envVar{kv[i], kv[i+1]})
	}
	must(t, e.set(vars...))
}

func TestFwEnvInteropSingle(t *testing.T) {
	needTool(t, "fw_printenv")
	dir := t.TempDir()
	file := filepath.Join(dir, "uboot.env")
	cfg := filepath.Join(dir, "fw_env.config")
	// The environment sits at 0x4000 in a larger file; the rest must stay.
	must(t, os.WriteFile(file, bytes.Repeat([]byte{0xa5}, 0xa000), 0o600))
	must(t, os.WriteFile(cfg, []byte("# single\n"+file+" 0x4000 0x4000\n"), 0o644))
	writeFwEnvFixture(t, cfg, envVars{{"bootcmd", "boot"}})

	ourSet(t, cfg, "rugix_bootpart", "2", "rugix_boot_spare", "0")
	mapsEqual(t, "fw_printenv after our write", fwPrintenv(t, cfg),
		map[string]string{"bootcmd": "boot", "rugix_boot_spare": "0", "rugix_bootpart": "2"})

	fwSetenv(t, cfg, "rugix_bootpart", "3")
	fwSetenv(t, cfg, "extra", "a b  c")
	mapsEqual(t, "ours after fw_setenv", ourEnv(t, cfg),
		map[string]string{"bootcmd": "boot", "extra": "a b  c", "rugix_boot_spare": "0", "rugix_bootpart": "3"})

	// Our data area equals libubootenv's up to its terminator (libubootenv
	// leaves the rest of its buffer uninitialised).
	whole, err := os.ReadFile(file)
	must(t, err)
	theirs := whole[0x4000+4 : 0x8000]
	theirs = theirs[:bytes.Index(theirs, []byte{0, 0})+2]
	ourSet(t, cfg, "extra", "")
	ourSet(t, cfg, "extra", "a b  c")
	whole, err = os.ReadFile(file)
	must(t, err)
	if ours := whole[0x4000+4 : 0x4000+4+len(theirs)]; !bytes.Equal(ours, theirs) {
		t.Fatalf("data area:\nours %q\nfw_setenv %q", ours, theirs)
	}
	if len(whole) != 0xa000 || !bytes.Equal(whole[:0x4000], bytes.Repeat([]byte{0xa5}, 0x4000)) ||
		!bytes.Equal(whole[0x8000:], bytes.Repeat([]byte{0xa5}, 0x2000)) {
		t.Fatal("bytes outside the environment changed")
	}
	if _, err := os.Stat(file + ".new"); err == nil {
		t.Fatal("stray .new")
	}

	// A broken CRC: fw_printenv prints nothing, we refuse.
	whole[0x4000+10] ^= 0xff
	must(t, os.WriteFile(file, whole, 0o600))
	if _, err := openFwEnv(cfg); err == nil || !strings.Contains(err.Error(), "bad CRC") {
		t.Fatalf("broken env: %v", err)
	}
	if out, err := exec.Command("fw_printenv", "-c", cfg).Output(); err == nil || len(out) != 0 {
		t.Fatalf("fw_printenv read a broken env: %q, %v", out, err)
	}
}

// TestFwEnvInteropRedundant alternates writers on a redundant environment
// and checks the flags byte and the copy both tools pick, also after one
// copy is corrupted.
func TestFwEnvInteropRedundant(t *testing.T) {
	needTool(t, "fw_printenv")
	for _, sameFile := range []bool{false, true} {
		dir := t.TempDir()
		f0, f1 := filepath.Join(dir, "env0"), filepath.Join(dir, "env1")
		cfgText := fmt.Sprintf("%s 0x0 0x2000\n%s 0x0 0x2000\n", f0, f1)
		off1 := int64(0)
		if sameFile {
			f1, off1 = f0, 0x2000
			cfgText = fmt.Sprintf("%s 0 0x2000 0x2000 1\n%s 0x2000 0x2000 0x2000 1\n", f0, f0)
		}
		cfg := filepath.Join(dir, "fw_env.config")
		must(t, os.WriteFile(cfg, []byte(cfgText), 0o644))
		// Copy 0 valid with flags 7, copy 1 blank.
		writeFwEnvFixture(t, cfg, envVars{{"bootcmd", "boot"}, {"rugix_bootpart", "2"}}, 7, 0xee)
		flags := func() [2]byte {
			b0, err := os.ReadFile(f0)
			must(t, err)
			b1, err := os.ReadFile(f1)
			must(t, err)
			return [2]byte{b0[4], b1[off1+4]}
		}

		ourSet(t, cfg, "rugix_bootpart", "3") // → copy 1, flags 8
		if fl := flags(); fl != [2]byte{7, 8} {
			t.Fatalf("flags %v after our write", fl)
		}
		if fwPrintenv(t, cfg)["rugix_bootpart"] != "3" {
			t.Fatal("fw_printenv did not pick our copy")
		}
		fwSetenv(t, cfg, "rugix_boot_spare", "1") // → copy 0, flags 9
		if fl := flags(); fl != [2]byte{9, 8} {
			t.Fatalf("flags %v after fw_setenv", fl)
		}
		want := map[string]string{"bootcmd": "boot", "rugix_boot_spare": "1", "rugix_bootpart": "3"}
		mapsEqual(t, "ours after fw_setenv", ourEnv(t, cfg), want)
		ourSet(t, cfg, "rugix_boot_spare", "0") // → copy 1, flags 10
		if fl := flags(); fl != [2]byte{9, 10} {
			t.Fatalf("flags %v after our second write", fl)
		}

		// Corrupt the newer copy: both fall back to copy 0 (spare=1).
		b, err := os.ReadFile(f1)
		must(t, err)
		b[off1+20] ^= 0x55
		must(t, os.WriteFile(f1, b, 0o644))
		mapsEqual(t, "ours with copy 1 corrupt", ourEnv(t, cfg), want)
		mapsEqual(t, "fw_printenv with copy 1 corrupt", fwPrintenv(t, cfg), want)
		// The next write repairs copy 1 from copy 0.
		ourSet(t, cfg, "rugix_bootpart", "2")
		if fl := flags(); fl != [2]byte{9, 10} {
			t.Fatalf("flags %v after the repairing write", fl)
		}
		want["rugix_bootpart"] = "2"
		mapsEqual(t, "fw_printenv after repair", fwPrintenv(t, cfg), want)

		// Flags wrap: copy 0 at 255, copy 1 at 0 is newer.
		writeFwEnvFixture(t, cfg, envVars{{"rugix_bootpart", "2"}}, 255, 0)
		b, err = os.ReadFile(f1)
		must(t, err)
		img, err := encodeFwEnvCopy(envVars{{"rugix_bootpart", "3"}}, 0x2000, true, 0)
		must(t, err)
		copy(b[off1:], img)
		must(t, os.WriteFile(f1, b, 0o644))
		if ourEnv(t, cfg)["rugix_bootpart"] != "3" || fwPrintenv(t, cfg)["rugix_bootpart"] != "3" {
			t.Fatal("flags 255/0: copy 1 not picked")
		}
		fwSetenv(t, cfg, "x", "y") // → copy 0, flags 1
		if fl := flags(); fl != [2]byte{1, 0} {
			t.Fatalf("flags %v after wrapping", fl)
		}
		if ourEnv(t, cfg)["x"] != "y" {
			t.Fatal("ours after wrap")
		}
	}
}

func TestFwEnvNegativeOffsetAndErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "disk.img")
	must(t, os.WriteFile(file, make([]byte, 0x10000), 0o600))
	cfg := filepath.Join(dir, "fw_env.config")
	must(t, os.WriteFile(cfg, []byte(file+" -0x4000 0x2000\n"), 0o644))
	img, err := encodeFwEnvCopy(envVars{{"a", "1"}}, 0x2000, false, 0)
	must(t, err)
	b, _ := os.ReadFile(file)
	copy(b[0xc000:], img)
	must(t, os.WriteFile(file, b, 0o600))
	if ourEnv(t, cfg)["a"] != "1" {
		t.Fatal("negative offset")
	}
	ourSet(t, cfg, "a", "2")
	if b, _ := os.ReadFile(file); !bytes.Contains(b[0xc000:0xe000], []byte("a=2\x00\x00")) {
		t.Fatal("negative offset write")
	}

	for _, c := range []struct{ cfg, want string }{
		{"/dev/mtd1 0x0 0x4000 0x4000\n", "MTD"},
		{file + " 0xf000 0x2000\n", "read"},
		{file + " -0x20000 0x2000\n", "before the start"},
		{filepath.Join(dir, "none") + " 0 0x2000\n", "no such file"},
	} {
		must(t, os.WriteFile(cfg, []byte(c.cfg), 0o644))
		if _, err := openFwEnv(cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.cfg, err, c.want)
		}
	}
	if _, err := openFwEnv(filepath.Join(dir, "missing.config")); err == nil {
		t.Error("missing config")
	}
	must(t, os.WriteFile(cfg, []byte(file+" -0x4000 0x10\n"), 0o644))
	copy(b[0xc000:], mustEnc(t, envVars{{"a", "1"}}, 0x10))
	must(t, os.WriteFile(file, b, 0o600))
	e, err := openFwEnv(cfg)
	must(t, err)
	if err := e.set(envVar{"long", "too long for 16 bytes"}); err == nil || !strings.Contains(err.Error(), "needs") {
		t.Errorf("overflow: %v", err)
	}
}

func mustEnc(t *testing.T, v envVars, size int64) []byte {
	t.Helper()
	b, err := encodeFwEnvCopy(v, size, false, 0)
	must(t, err)
	return b
}
