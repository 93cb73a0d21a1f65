package install

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bascule-ota/bascule/internal/bundle"
	"github.com/bascule-ota/bascule/internal/hashes"
	"github.com/bascule-ota/bascule/internal/sign"
)

func payload(n int) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(int64(n))).Read(b[:n/2])
	copy(b[n/2:], b[:n/4]) // repeats, for deduplication
	return b
}

// makeBundle builds a bundle with a system payload (block encoded,
// deduplicated, xz) and an execute payload.
func makeBundle(t *testing.T, img []byte) (string, hashes.Digest) {
	t.Helper()
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "payloads"), 0o755)
	os.WriteFile(filepath.Join(dir, "payloads", "system.img"), img, 0o644)
	os.WriteFile(filepath.Join(dir, "payloads", "post.sh"), []byte("cat > \"$OUT\"\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "rugix-bundle.toml"), []byte(`update-type = "full"
[[payloads]]
filename = "system.img"
delivery = { type = "slot", slot = "system" }
block-encoding = { chunker = "casync-4", deduplicate = true, compression = { type = "xz", level = 1 } }
[[payloads]]
filename = "post.sh"
delivery = { type = "execute", handler = ["/bin/sh", "-c", "cat > \"$OUT\""] }
`), 0o644)
	out := filepath.Join(t.TempDir(), "b.rugixb")
	d, err := bundle.Build(dir, out, bundle.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return out, d
}

type recorder struct {
	opened, erased, done []string
	slotFile, execOut    string
}

func (rc *recorder) options(p Policy) Options {
	return Options{
		Policy: p,
		Resolve: func(p *bundle.Payload) (Target, string, error) {
			if p.Entry.IsExecute {
				rc.opened = append(rc.opened, "execute")
				t, err := OpenHandler(p.Entry.Execute, []string{"OUT=" + rc.execOut})
				return t, "", err
			}
			rc.opened = append(rc.opened, p.Entry.Slot)
			t, err := OpenBlock(rc.slotFile)
			return t, "system-b", err
		},
		Erase: func(s string) error { rc.erased = append(rc.erased, s); return nil },
		Done: func(s string, h hashes.Digest, n int64) error {
			rc.done = append(rc.done, fmt.Sprintf("%s %s %d", s, h, n))
			return nil
		},
	}
}

func newRecorder(t *testing.T, size int) *recorder {
	dir := t.TempDir()
	rc := &recorder{slotFile: filepath.Join(dir, "slot.img"), execOut: filepath.Join(dir, "exec.out")}
	// The "device" is larger than the payload and full of old data.
	os.WriteFile(rc.slotFile, bytes.Repeat([]byte{0xee}, size+4096), 0o644)
	return rc
}

func install(t *testing.T, path string, o Options) (*Report, error) {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return Run(f, o)
}

func TestInstallWithBundleHash(t *testing.T) {
	img := payload(300 << 10)
	path, d := makeBundle(t, img)
	rc := newRecorder(t, len(img))
	rep, err := install(t, path, rc.options(Policy{BundleHash: &d}))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(rc.slotFile)
	if !bytes.Equal(got[:len(img)], img) || !bytes.Equal(got[len(img):], bytes.Repeat([]byte{0xee}, 4096)) {
		t.Fatal("slot content wrong")
	}
	if out, _ := os.ReadFile(rc.execOut); string(out) != "cat > \"$OUT\"\n" {
		t.Fatalf("execute payload got %q", out)
	}
	want := fmt.Sprintf("system-b %s %d", hashes.Digest{Alg: hashes.SHA512_256, Sum: hashes.SHA512_256.Sum(img)}, len(img))
	if len(rc.done) != 1 || rc.done[0] != want || len(rc.erased) != 1 {
		t.Fatalf("done %v erased %v", rc.done, rc.erased)
	}
	if rep.Written != int64(len(img))+int64(len("cat > \"$OUT\"\n")) || rep.Incremental {
		t.Fatalf("report %+v", rep)
	}
}

func TestPolicyRefusesBeforeAnyWrite(t *testing.T) {
	img := payload(100 << 10)
	path, d := makeBundle(t, img)
	wrong := hashes.Digest{Alg: d.Alg, Sum: make([]byte, 32)}
	root, signed := signedCopy(t, path)
	otherRoots := otherRoot(t)
	for name, c := range map[string]struct {
		path string
		p    Policy
		want string
	}{
		"no verification": {path, Policy{}, "no way to verify"},
		"wrong hash":      {path, Policy{BundleHash: &wrong}, "header hash is " + d.String()},
		"unsigned":        {path, Policy{Verifier: &sign.Verifier{Roots: root}}, "not signed"},
		"wrong root":      {signed, Policy{Verifier: &sign.Verifier{Roots: otherRoots}}, "unknown authority"},
	} {
		rc := newRecorder(t, len(img))
		_, err := install(t, c.path, rc.options(c.p))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", name, err, c.want)
		}
		if len(rc.opened)+len(rc.erased)+len(rc.done) != 0 {
			t.Errorf("%s: something was touched: %+v", name, rc)
		}
	}
	// The signed copy installs with the right root; insecure installs the
	// unsigned one.
	for _, c := range []struct {
		path string
		p    Policy
	}{{signed, Policy{Verifier: &sign.Verifier{Roots: root}}}, {path, Policy{Insecure: true}}} {
		rc := newRecorder(t, len(img))
		if _, err := install(t, c.path, rc.options(c.p)); err != nil {
			t.Fatal(err)
		}
	}
}

func otherRoot(t *testing.T) *sign.Roots {
	key, _ := sign.GenerateKey("ecdsa-p256")
	ca, err := sign.NewRootCA(key, sign.CertSpec{CommonName: "Other"})
	if err != nil {
		t.Fatal(err)
	}
	return sign.NewRoots(ca)
}

// signedCopy signs the bundle with a fresh root and signer.
func signedCopy(t *testing.T, path string) (*sign.Roots, string) {
	t.Helper()
	caKey, _ := sign.GenerateKey("ecdsa-p256")
	ca, err := sign.NewRootCA(caKey, sign.CertSpec{CommonName: "Root"})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := sign.GenerateKey("ecdsa-p256")
	cert, err := sign.NewSignerCert(ca, caKey, key.Public(), sign.CertSpec{CommonName: "Signer"})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "signed.rugixb")
	err = bundle.Resign(path, out, func(r *bundle.Reader) ([][]byte, error) {
		der, err := (&sign.Signer{Key: key, Cert: cert}).Sign(bundle.EncodeSignedMetadata(r.HeaderHash))
		return [][]byte{der}, err
	})
	if err != nil {
		t.Fatal(err)
	}
	return sign.NewRoots(ca), out
}

func TestCorruptBlockStopsInstall(t *testing.T) {
	img := payload(300 << 10)
	path, d := makeBundle(t, img)
	raw, _ := os.ReadFile(path)
	raw[len(raw)-40000] ^= 0x10
	bad := filepath.Join(t.TempDir(), "bad.rugixb")
	os.WriteFile(bad, raw, 0o644)
	rc := newRecorder(t, len(img))
	_, err := install(t, bad, rc.options(Policy{BundleHash: &d}))
	var msg string
	if err != nil {
		msg = err.Error()
	}
	if !strings.HasPrefix(msg, "block ") || !strings.Contains(msg, `of payload "system"`) {
		t.Fatalf("err = %v", err)
	}
	if len(rc.done) != 0 {
		t.Fatal("a slot was recorded as installed")
	}
	if _, err := os.Stat(rc.execOut); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("the execute payload after the bad one ran")
	}
}
