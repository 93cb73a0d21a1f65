package install

import (
	"bytes"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bascule-ota/bascule/internal/bundle"
	"github.com/bascule-ota/bascule/internal/delta/deltatest"
	"github.com/bascule-ota/bascule/internal/hashes"
	"github.com/bascule-ota/bascule/internal/slotdb"
	"github.com/bascule-ota/bascule/internal/system"
)

// deltaImages are two versions of a small "root file system": v2 has a
// few changed and moved regions.
func deltaImages() (v1, v2 []byte) {
	rng := rand.New(rand.NewSource(8))
	v1 = make([]byte, 2<<20)
	rng.Read(v1[:3<<19])
	v2 = bytes.Clone(v1)
	rng.Read(v2[100<<10 : 120<<10])              // an updated file
	copy(v2[1<<20:], v1[1<<20+4096:])            // a shift
	copy(v2[3<<19:], []byte("new file content")) // in the free space
	return v1, v2
}

// makeDeltaBundle builds what `bascule-bundler delta` builds: the xdelta3
// patch from v1 to v2 as a fixed-256/xz payload for slot "system" with the
// delta encoding (input: the hash of v1; original: the hash of v2).
func makeDeltaBundle(t *testing.T, v1, v2 []byte, input hashes.Digest, xdeltaFlags ...string) (string, hashes.Digest) {
	t.Helper()
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "payloads"), 0o755)
	old, new := filepath.Join(dir, "old.img"), filepath.Join(dir, "new.img")
	os.WriteFile(old, v1, 0o644)
	os.WriteFile(new, v2, 0o644)
	args := append(append([]string{"-e"}, xdeltaFlags...), "-s", old, new, filepath.Join(dir, "payloads", "system.img.xdelta"))
	if out, err := exec.Command("xdelta3", args...).CombinedOutput(); err != nil {
		t.Fatalf("xdelta3 -e: %v: %s", err, out)
	}
	orig := hashes.Digest{Alg: hashes.SHA512_256, Sum: hashes.SHA512_256.Sum(v2)}
	os.WriteFile(filepath.Join(dir, "rugix-bundle.toml"), []byte(`update-type = "full"
[[payloads]]
filename = "system.img.xdelta"
delivery = { type = "slot", slot = "system" }
block-encoding = { chunker = "fixed-256", compression = { type = "xz" } }
delta-encoding = { format = "xdelta", original-hash = "`+orig.String()+`", inputs = [ { hashes = ["`+input.String()+`"] } ] }
`), 0o644)
	out := filepath.Join(t.TempDir(), "delta.rugixb")
	d, err := bundle.Build(dir, out, bundle.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return out, d
}

// deltaDevice is a system with block slots backed by files; group a runs.
type deltaDevice struct {
	sys      *system.System
	db       *slotdb.DB
	dir      string
	sysA     string // the running system slot (the delta source)
	sysB     string // the target
	erased   []string
	done     []string
	resolved int
}

func newDeltaDevice(t *testing.T, v1 []byte, recorded []byte) *deltaDevice {
	t.Helper()
	dir := t.TempDir()
	dv := &deltaDevice{dir: dir, sysA: filepath.Join(dir, "system-a.img"), sysB: filepath.Join(dir, "system-b.img")}
	os.WriteFile(dv.sysA, v1, 0o644)
	os.WriteFile(dv.sysB, bytes.Repeat([]byte{0xee}, 3<<20), 0o644)
	cfg, _, err := system.ParseConfig([]byte(`
[slots.system-a]
type = "block"
device = "`+dv.sysA+`"
immutable = true
[slots.system-b]
type = "block"
device = "`+dv.sysB+`"
immutable = true
[boot-groups.a]
slots = { system = "system-a" }
[boot-groups.b]
slots = { system = "system-b" }
`), "system.toml")
	if err != nil {
		t.Fatal(err)
	}
	devs := map[string]uint64{dv.sysA: 1, dv.sysB: 2}
	dv.sys, err = system.New(cfg, nil, func() (uint64, error) { return 1, nil }, func(p string) (uint64, error) { return devs[p], nil })
	if err != nil {
		t.Fatal(err)
	}
	if a, err := dv.sys.Active(); a != "a" {
		t.Fatalf("active group %q, %v", a, err)
	}
	dv.db = slotdb.New(filepath.Join(dir, "db"))
	if recorded != nil {
		h := hashes.Digest{Alg: hashes.SHA512_256, Sum: hashes.SHA512_256.Sum(recorded)}
		if err := dv.db.Save("system-a", slotdb.Installed(true, h, uint64(len(recorded)), time.Now())); err != nil {
			t.Fatal(err)
		}
	}
	return dv
}

func (dv *deltaDevice) options(p Policy) Options {
	return Options{
		Policy: p,
		Resolve: func(p *bundle.Payload) (Target, string, error) {
			dv.resolved++
			slot, err := dv.sys.SlotByAlias("b", p.Entry.Slot)
			if err != nil {
				return nil, "", err
			}
			t, err := OpenBlock(slot.Device)
			return t, slot.Name, err
		},
		Erase: func(s string) error { dv.erased = append(dv.erased, s); return dv.db.Erase(s) },
		Done: func(s string, h hashes.Digest, n int64) error {
			dv.done = append(dv.done, s)
			return dv.db.Save(s, slotdb.Installed(true, h, uint64(n), time.Now()))
		},
		FindSource: ActiveSlotSource(dv.sys, dv.db),
	}
}

func sha(b []byte) hashes.Digest {
	return hashes.Digest{Alg: hashes.SHA512_256, Sum: hashes.SHA512_256.Sum(b)}
}

func TestDeltaInstall(t *testing.T) {
	deltatest.NeedXdelta(t)
	v1, v2 := deltaImages()
	path, d := makeDeltaBundle(t, v1, v2, sha(v1))
	if fi, _ := os.Stat(path); fi.Size() > int64(len(v2))/10 {
		t.Fatalf("delta bundle is %d bytes for a small change of %d bytes", fi.Size(), len(v2))
	}
	dv := newDeltaDevice(t, v1, v1)
	rep, err := install(t, path, dv.options(Policy{BundleHash: &d}))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(dv.sysB)
	if !bytes.Equal(got[:len(v2)], v2) || got[len(v2)] != 0xee {
		t.Fatal("target slot does not hold v2")
	}
	if a, _ := os.ReadFile(dv.sysA); !bytes.Equal(a, v1) {
		t.Fatal("the source slot changed")
	}
	if rep.Written != int64(len(v2)) || len(rep.Payloads) != 1 || !rep.Payloads[0].Hash.Equal(sha(v2)) {
		t.Fatalf("report %+v", rep)
	}
	// The slot database records the content of the slot, not the patch.
	st, err := dv.db.Load("system-b")
	if err != nil || st == nil {
		t.Fatalf("state %v %v", st, err)
	}
	if h, ok := st.Hash(hashes.SHA512_256); !ok || !h.Equal(sha(v2)) || *st.Size != uint64(len(v2)) {
		t.Fatalf("slot database: %+v", st)
	}
}

func TestDeltaWrongSource(t *testing.T) {
	deltatest.NeedXdelta(t)
	v1, v2 := deltaImages()
	path, d := makeDeltaBundle(t, v1, v2, sha(v1))
	// The running slot holds something else: its recorded hash differs.
	other := bytes.Clone(v1)
	other[0] ^= 1
	dv := newDeltaDevice(t, other, other)
	_, err := install(t, path, dv.options(Policy{BundleHash: &d}))
	t.Log(err)
	if err == nil || !strings.Contains(err.Error(), "no slot of the running boot group holds "+sha(v1).String()) {
		t.Fatalf("err = %v", err)
	}
	if len(dv.done) != 0 {
		t.Fatal("a slot was recorded as installed")
	}
	// Nothing recorded at all (never updated): the same refusal.
	dv = newDeltaDevice(t, v1, nil)
	if _, err := install(t, path, dv.options(Policy{BundleHash: &d})); err == nil || !strings.Contains(err.Error(), "no slot of the running boot group") {
		t.Fatalf("err = %v", err)
	}
}

// A source whose recorded hash is right but whose content is not (the
// slot was modified after the install) makes xdelta3 produce something
// else. xdelta3 checks its windows with Adler-32 unless the patch was made
// with -n; without that check the original hash must catch it.
func TestDeltaSourceContentWrong(t *testing.T) {
	deltatest.NeedXdelta(t)
	v1, v2 := deltaImages()
	path, d := makeDeltaBundle(t, v1, v2, sha(v1), "-n")
	changed := bytes.Clone(v1)
	changed[200<<10] ^= 0xff
	dv := newDeltaDevice(t, changed, v1)
	_, err := install(t, path, dv.options(Policy{BundleHash: &d}))
	t.Log(err)
	if err == nil || !strings.Contains(err.Error(), "expected the original hash "+sha(v2).String()) {
		t.Fatalf("err = %v", err)
	}
	if len(dv.done) != 0 {
		t.Fatal("a slot was recorded as installed")
	}
}

func TestDeltaCorruptPatch(t *testing.T) {
	deltatest.NeedXdelta(t)
	v1, v2 := deltaImages()
	path, _ := makeDeltaBundle(t, v1, v2, sha(v1))
	b, _ := os.ReadFile(path)
	b[len(b)-15-200] ^= 0x55 // inside the patch's stored blocks (15 closing bytes follow the data)
	os.WriteFile(path, b, 0o644)
	dv := newDeltaDevice(t, v1, v1)
	_, err := install(t, path, dv.options(Policy{Insecure: true}))
	t.Log(err)
	if err == nil || !strings.Contains(err.Error(), `of payload "system"`) {
		t.Fatalf("err = %v", err)
	}
	if len(dv.done) != 0 {
		t.Fatal("a slot was recorded as installed")
	}
}

func TestDeltaWithoutXdelta(t *testing.T) {
	deltatest.NeedXdelta(t)
	v1, v2 := deltaImages()
	path, d := makeDeltaBundle(t, v1, v2, sha(v1))
	t.Setenv("PATH", t.TempDir())
	dv := newDeltaDevice(t, v1, v1)
	_, err := install(t, path, dv.options(Policy{BundleHash: &d}))
	t.Log(err)
	if err == nil || !strings.Contains(err.Error(), "xdelta3 not found: install it (Debian: apt-get install xdelta3)") {
		t.Fatalf("err = %v", err)
	}
	if dv.resolved != 0 {
		t.Fatal("a target was opened before the refusal")
	}
}

func TestDeltaRefusedWithoutSourceLookup(t *testing.T) {
	deltatest.NeedXdelta(t)
	v1, v2 := deltaImages()
	path, d := makeDeltaBundle(t, v1, v2, sha(v1))
	dv := newDeltaDevice(t, v1, v1)
	o := dv.options(Policy{BundleHash: &d})
	o.FindSource = nil
	prepared := false
	o.Prepare = func(*bundle.Reader) error { prepared = true; return nil }
	if _, err := install(t, path, o); err == nil || !strings.Contains(err.Error(), "cannot be installed here") || prepared {
		t.Fatalf("err = %v, prepared %v", err, prepared)
	}
}

func TestNoSourceErrorNamesHashes(t *testing.T) {
	err := NoSourceError([]hashes.Digest{sha([]byte("a")), sha([]byte("b"))})
	if !strings.Contains(err.Error(), sha([]byte("a")).String()+" or "+sha([]byte("b")).String()) {
		t.Fatal(err)
	}
}
