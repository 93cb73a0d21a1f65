package bootflow

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// ubootBoot does what meta-rugix's boot.cmd does: initialise
// rugix_bootpart=2 and rugix_boot_spare=0 if unset, and on spare=1 boot
// the other partition after clearing the flag with saveenv.
func ubootBoot(t *testing.T, te *testEnv) string {
	t.Helper()
	te.bootloader = true
	defer func() { te.bootloader = false }()
	env, err := openFwEnv(te.FwEnvConfig)
	if err != nil {
		t.Fatalf("U-Boot would fall back to its default environment: %v", err)
	}
	part, ok := env.vars.get("rugix_bootpart")
	if !ok {
		part = "2"
		must(t, env.set(envVar{"rugix_bootpart", "2"}, envVar{"rugix_boot_spare", "0"}))
	}
	if spare, _ := env.vars.get("rugix_boot_spare"); spare == "1" {
		part = map[string]string{"2": "3", "3": "2"}[part]
		must(t, env.set(envVar{"rugix_boot_spare", "0"}))
	}
	return part
}

// ubootFixture writes fw_env.config into the config dir (so the rw checks
// of testEnv cover the environment files too) and a fresh environment as
// a board ships it, without Rugix's variables.
func ubootFixture(t *testing.T, te *testEnv, redundant bool) {
	te.FwEnvConfig = te.path("fw_env.config")
	cfg := fmt.Sprintf("%s 0x0 0x1000\n", te.path("uboot.env"))
	if redundant {
		cfg = fmt.Sprintf("%s 0x0 0x1000\n%s 0x1000 0x1000\n", te.path("uboot.env"), te.path("uboot.env"))
	}
	must(t, os.WriteFile(te.FwEnvConfig, []byte(cfg), 0o644))
	os.Remove(te.path("uboot.env"))
	writeFwEnvFixture(t, te.FwEnvConfig, envVars{{"bootcmd", "run rugix"}, {"bootdelay", "0"}}, 1, 0xee)
}

func TestUbootUpdate(t *testing.T) {
	for _, redundant := range []bool{false, true} {
		t.Run(fmt.Sprint("redundant=", redundant), func(t *testing.T) {
			te := newTestEnv(t)
			ubootFixture(t, te, redundant)
			f := te.flow(Uboot)
			if _, err := f.Default(); err == nil {
				t.Fatal("Default before U-Boot initialised rugix_bootpart")
			}
			if part := ubootBoot(t, te); part != "2" {
				t.Fatalf("first boot on %s", part)
			}
			mustDefault(t, f, "a")

			must(t, f.SetTryNext("b"))
			if v := ourEnv(t, te.FwEnvConfig); v["rugix_boot_spare"] != "1" || v["bootcmd"] != "run rugix" {
				t.Fatalf("after SetTryNext: %v", v)
			}
			if part := ubootBoot(t, te); part != "3" {
				t.Fatalf("U-Boot booted %s, want the try on 3", part)
			}
			mustDefault(t, f, "a")
			must(t, f.Commit("b"))
			mustDefault(t, f, "b")
			if part := ubootBoot(t, te); part != "3" {
				t.Fatalf("after commit U-Boot booted %s", part)
			}
			n := te.remount
			must(t, f.Commit("b"))
			must(t, f.SetTryNext("b"))
			if te.remount != n {
				t.Error("writes without a change")
			}
			must(t, f.PostInstall("a"))
			if err := f.PostInstall("c"); err == nil {
				t.Error("PostInstall(c)")
			}
		})
	}
}

func TestUbootFailedTry(t *testing.T) {
	te := newTestEnv(t)
	ubootFixture(t, te, true)
	f := te.flow(Uboot)
	ubootBoot(t, te)
	must(t, f.SetTryNext("b"))
	if part := ubootBoot(t, te); part != "3" {
		t.Fatalf("try booted %s", part)
	}
	if part := ubootBoot(t, te); part != "2" {
		t.Fatalf("after a failed try U-Boot booted %s", part)
	}
	mustDefault(t, f, "a")
}

// TestUbootCommitCut cuts the power during the commit: for a single
// environment file at each atomicfile step, for a redundant one after
// every possible amount of the in-place write.
func TestUbootCommitCut(t *testing.T) {
	for _, redundant := range []bool{false, true} {
		tears := []int{0}
		if redundant {
			tears = []int{0, 1, 4, 5, 6, 100, 0xfff}
		}
		for _, tear := range tears {
			t.Run(fmt.Sprintf("redundant=%v/tear=%d", redundant, tear), func(t *testing.T) {
				te := newTestEnv(t)
				te.tear = tear
				f := te.flow(Uboot)
				setup := func() {
					ubootFixture(t, te, redundant)
					f = te.flow(Uboot)
					ubootBoot(t, te)
					mustDefault(t, f, "a")
				}
				steps := te.cuts(setup, func() error { return f.Commit("b") }, func(step int) {
					def, err := f.Default()
					if err != nil || (def != "a" && def != "b") {
						t.Fatalf("cut at step %d: %q, %v", step, def, err)
					}
					if part := ubootBoot(t, te); part != map[string]string{"a": "2", "b": "3"}[def] {
						t.Fatalf("cut at step %d: Default %s, U-Boot boots %s", step, def, part)
					}
					// A write torn before the end of the new data leaves a
					// bad CRC: the old copy stays in use.
					if redundant && tear <= 6 && def != "a" {
						t.Fatalf("cut at step %d after %d bytes: already %s", step, tear, def)
					}
				})
				if want := map[bool]int{false: 5, true: 1}[redundant]; steps != want {
					t.Errorf("commit took %d steps, want %d", steps, want)
				}
				mustDefault(t, f, "b")
				if _, err := os.Stat(filepath.Join(te.ConfigDir, "uboot.env.new")); err == nil && !redundant {
					t.Error("stray uboot.env.new")
				}
			})
		}
	}
}
