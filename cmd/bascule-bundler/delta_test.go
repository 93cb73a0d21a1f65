package main

import (
	"bytes"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bascule-ota/bascule/internal/bundle"
	"github.com/bascule-ota/bascule/internal/delta/deltatest"
	"github.com/bascule-ota/bascule/internal/hashes"
	"github.com/bascule-ota/bascule/internal/sign"
)

const deltaManifest = `update-type = "full"

[[payloads]]
filename = "boot.img"
[payloads.delivery]
type = "slot"
slot = "boot"
[payloads.block-encoding]
chunker = "fixed-64"

[[payloads]]
filename = "rootfs.ext4"
[payloads.delivery]
type = "slot"
slot = "system"
[payloads.block-encoding]
chunker = "casync-16"
deduplicate = true
compression = { type = "xz", level = 1 }

[[payloads]]
filename = "hook.sh"
[payloads.delivery]
type = "execute"
handler = ["/bin/sh", "-"]
`

type release struct {
	boot, system, hook []byte
}

// deltaVersions are two releases: v2 changes a few regions of the system
// image (an updated file, a shifted tail), the boot image and the hook.
func deltaVersions() (v1, v2 release) {
	rng := rand.New(rand.NewSource(3))
	sys := make([]byte, 3<<20)
	rng.Read(sys[:2<<20])
	boot := make([]byte, 20<<10)
	rng.Read(boot)
	v1 = release{boot: boot, system: sys, hook: []byte("echo v1\n")}
	s2 := bytes.Clone(sys)
	rng.Read(s2[300<<10 : 340<<10])
	copy(s2[1<<20:], sys[1<<20+1000:])
	b2 := bytes.Clone(boot)
	copy(b2[1000:], "cmdline v2")
	v2 = release{boot: b2, system: s2, hook: []byte("echo v2\n")}
	return v1, v2
}

func buildVersion(t *testing.T, dir string, v release) string {
	t.Helper()
	src := filepath.Join(dir, "src")
	os.MkdirAll(filepath.Join(src, "payloads"), 0o755)
	os.WriteFile(filepath.Join(src, "rugix-bundle.toml"), []byte(deltaManifest), 0o644)
	os.WriteFile(filepath.Join(src, "payloads", "boot.img"), v.boot, 0o644)
	os.WriteFile(filepath.Join(src, "payloads", "rootfs.ext4"), v.system, 0o644)
	os.WriteFile(filepath.Join(src, "payloads", "hook.sh"), v.hook, 0o644)
	out := filepath.Join(dir, "b.rugixb")
	if _, err := bundle.Build(src, out, bundle.BuildOptions{}); err != nil {
		t.Fatal(err)
	}
	return out
}

func digest(b []byte) hashes.Digest {
	return hashes.Digest{Alg: hashes.SHA512_256, Sum: hashes.SHA512_256.Sum(b)}
}

// xdeltaApply applies a patch with the real xdelta3, as rugix-ctrl does.
func xdeltaApply(t *testing.T, source []byte, patch string) []byte {
	t.Helper()
	src := filepath.Join(t.TempDir(), "source")
	os.WriteFile(src, source, 0o644)
	in, err := os.Open(patch)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	cmd := exec.Command("xdelta3", "-d", "-c", "-s", src)
	cmd.Stdin = in
	var errb bytes.Buffer
	cmd.Stderr = &errb
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("xdelta3 -d: %v: %s", err, errb.String())
	}
	return out
}

func TestDeltaRoundTrip(t *testing.T) {
	deltatest.NeedXdelta(t)
	v1, v2 := deltaVersions()
	old, new := buildVersion(t, t.TempDir(), v1), buildVersion(t, t.TempDir(), v2)
	dir := t.TempDir()
	out := filepath.Join(dir, "delta.rugixb")
	h := ok(t, "delta", old, new, out)
	if !hashRE.MatchString(h) || strings.TrimSpace(ok(t, "hash", out)) != strings.TrimSpace(h) {
		t.Fatalf("delta printed %q", h)
	}
	fullSize, deltaSize := fileSize(t, new), fileSize(t, out)
	if deltaSize*10 > fullSize {
		t.Fatalf("delta bundle %d bytes, full bundle %d", deltaSize, fullSize)
	}

	f, _ := os.Open(out)
	r, err := bundle.NewReader(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	// Default slots, as rugix-bundler: system against the old system, boot
	// against the old *system*; the execute payload is carried over.
	want := []struct {
		slot  string
		input []byte
	}{{"boot", v1.system}, {"system", v1.system}, {"", nil}}
	for i, w := range want {
		e := r.Header.Payloads[i]
		if e.Slot != w.slot {
			t.Fatalf("payload %d: slot %q", i, e.Slot)
		}
		if w.input == nil {
			if e.Delta != nil {
				t.Fatalf("payload %d: delta encoded", i)
			}
			continue
		}
		d := e.Delta
		if d == nil || d.Format != "xdelta" || len(d.Inputs) != 1 || len(d.Inputs[0]) != 1 || !d.Inputs[0][0].Equal(digest(w.input)) {
			t.Fatalf("payload %d: delta encoding %+v", i, d)
		}
	}
	if !r.Header.Payloads[0].Delta.Original.Equal(digest(v2.boot)) || !r.Header.Payloads[1].Delta.Original.Equal(digest(v2.system)) {
		t.Fatal("original hashes wrong")
	}
	// The manifest as rugix-bundler writes it: "<file>.xdelta", fixed-256
	// with xz at the default level, and the delta encoding.
	for _, s := range []string{
		`"filename":"rootfs.ext4.xdelta","block-encoding":{"chunker":"fixed-256","compression":{"type":"xz"}},"delta-encoding":{"inputs":[{"hashes":["` + digest(v1.system).String() + `"]}],"format":"xdelta","original-hash":"` + digest(v2.system).String() + `"}`,
		`"filename":"boot.img.xdelta","block-encoding":{"chunker":"fixed-256","compression":{"type":"xz"}}`,
		`"filename":"hook.sh"}`,
	} {
		if !strings.Contains(r.Header.Manifest, s) {
			t.Errorf("manifest lacks %s:\n%s", s, r.Header.Manifest)
		}
	}
	text := ok(t, "inspect", out)
	if !strings.Contains(text, "fixed-256, sha512-256") || !strings.Contains(text, "compression xz") {
		t.Fatalf("inspect:\n%s", text)
	}
	ok(t, "verify", out)

	// The patches turn the old content into the new with the real xdelta3.
	for i, c := range []struct{ source, want []byte }{{v1.system, v2.boot}, {v1.system, v2.system}} {
		patch := filepath.Join(dir, "patch")
		os.Remove(patch)
		ok(t, "extract", out, []string{"0", "1"}[i], patch)
		if got := xdeltaApply(t, c.source, patch); !bytes.Equal(got, c.want) {
			t.Fatalf("payload %d: patched content differs", i)
		}
	}
	hook := filepath.Join(dir, "hook")
	ok(t, "extract", out, "2", hook)
	if got, _ := os.ReadFile(hook); !bytes.Equal(got, v2.hook) {
		t.Fatal("execute payload not carried over")
	}

	// The delta bundle can be signed like any other.
	root, cert, key := sigPKI(t, t.TempDir(), sign.ECDSAP256)
	signed := filepath.Join(dir, "signed.rugixb")
	ok(t, "signatures", "sign", out, cert, key, signed)
	ok(t, "signatures", "verify", signed, root)
	if strings.TrimSpace(ok(t, "hash", signed)) != strings.TrimSpace(h) {
		t.Fatal("signing changed the header hash")
	}
	prepared := filepath.Join(dir, "to-sign")
	ok(t, "signatures", "prepare", out, prepared)
	if b, err := os.ReadFile(prepared); err != nil || !bytes.Contains(b, []byte(strings.TrimSpace(h))) {
		t.Fatalf("signatures prepare: %v", err)
	}
}

func TestDeltaSlotOptions(t *testing.T) {
	deltatest.NeedXdelta(t)
	v1, v2 := deltaVersions()
	old, new := buildVersion(t, t.TempDir(), v1), buildVersion(t, t.TempDir(), v2)
	dir := t.TempDir()
	out := filepath.Join(dir, "delta.rugixb")
	ok(t, "delta", "--slot", "boot", "--without-compression", old, new, out)
	f, _ := os.Open(out)
	r, err := bundle.NewReader(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if d := r.Header.Payloads[0].Delta; d == nil || !d.Inputs[0][0].Equal(digest(v1.boot)) {
		t.Fatalf("boot payload: %+v", d)
	}
	if r.Header.Payloads[1].Delta != nil {
		t.Fatal("system payload patched without being asked")
	}
	if !strings.Contains(r.Header.Manifest, `"filename":"boot.img.xdelta","block-encoding":{"chunker":"fixed-256"},"delta-encoding"`) {
		t.Fatalf("manifest: %s", r.Header.Manifest)
	}
	patch := filepath.Join(dir, "patch")
	ok(t, "extract", out, "0", patch)
	if got := xdeltaApply(t, v1.boot, patch); !bytes.Equal(got, v2.boot) {
		t.Fatal("patched boot content differs")
	}

	fails(t, `^bascule-bundler: delta: .*has no payload for slot "data"`, "delta", "--slot", "data", old, new, filepath.Join(dir, "x.rugixb"))
	fails(t, `^bascule-bundler: delta: .*has no payload for slot "data"`, "delta", "--slot", "system:data", old, new, filepath.Join(dir, "x.rugixb"))
	fails(t, `^bascule-bundler: delta: payload for slot "boot" of .* is a delta already`, "delta", "--slot", "boot", old, out, filepath.Join(dir, "x.rugixb"))
	if _, err := os.Stat(filepath.Join(dir, "x.rugixb")); err == nil {
		t.Fatal("output left behind")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Fatalf("temporary files left behind: %v", ents)
	}
}

func TestDeltaWithoutXdelta(t *testing.T) {
	deltatest.NeedXdelta(t)
	v1, v2 := deltaVersions()
	old, new := buildVersion(t, t.TempDir(), v1), buildVersion(t, t.TempDir(), v2)
	path := t.TempDir()
	if w := os.Getenv("BASCULE_TEST_EXEC_WRAPPER"); w != "" {
		if p, err := exec.LookPath(w); err == nil {
			os.Symlink(p, filepath.Join(path, filepath.Base(w)))
		}
	}
	t.Setenv("PATH", path)
	fails(t, `^bascule-bundler: delta: xdelta3 not found: install it \(Debian: apt-get install xdelta3\)`, "delta", old, new, filepath.Join(t.TempDir(), "x.rugixb"))
}

func fileSize(t *testing.T, p string) int64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}
