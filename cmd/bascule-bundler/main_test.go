package main

import (
	"bytes"
	"encoding/json"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The tests run the real command: the test binary re-executes itself as
// bascule-bundler. BASCULE_TEST_EXEC_WRAPPER (e.g. qemu-arm-static) runs it
// under an emulator for cross-architecture test runs.
func TestMain(m *testing.M) {
	if os.Getenv("BASCULE_BUNDLER_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

type result struct {
	stdout, stderr string
	code           int
}

func run(t *testing.T, args ...string) result {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	argv := append([]string{exe}, args...)
	if w := os.Getenv("BASCULE_TEST_EXEC_WRAPPER"); w != "" {
		argv = append([]string{w}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "BASCULE_BUNDLER_MAIN=1")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{out.String(), errb.String(), code}
}

func ok(t *testing.T, args ...string) string {
	t.Helper()
	r := run(t, args...)
	if r.code != 0 {
		t.Fatalf("bascule-bundler %v: exit %d: %s", args, r.code, r.stderr)
	}
	return r.stdout
}

// fails runs a command that must fail with one line on stderr matching re.
func fails(t *testing.T, re string, args ...string) {
	t.Helper()
	r := run(t, args...)
	if r.code == 0 {
		t.Fatalf("bascule-bundler %v succeeded", args)
	}
	if !regexp.MustCompile(re).MatchString(r.stderr) || strings.Count(r.stderr, "\n") != 1 {
		t.Fatalf("bascule-bundler %v: stderr %q does not match %q in one line", args, r.stderr, re)
	}
}

const manifest = `update-type = "full"

[[payloads]]
filename = "system.img"
[payloads.delivery]
type = "slot"
slot = "system"
[payloads.block-encoding]
chunker = "casync-16"
hash-algorithm = "sha512-256"
deduplication = true
compression = { type = "xz", level = 3 }

[[payloads]]
filename = "hooks/install.sh"
[payloads.delivery]
type = "execute"
handler = ["/bin/sh", "-"]
`

func bundleDir(t *testing.T) (string, []byte) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "payloads", "hooks"), 0o755)
	rng := rand.New(rand.NewSource(1))
	img := make([]byte, 1<<20)
	rng.Read(img[:300<<10])
	copy(img[600<<10:], img[:300<<10])
	os.WriteFile(filepath.Join(dir, "rugix-bundle.toml"), []byte(manifest), 0o644)
	os.WriteFile(filepath.Join(dir, "payloads", "system.img"), img, 0o644)
	os.WriteFile(filepath.Join(dir, "payloads", "hooks", "install.sh"), []byte("echo installed\n"), 0o644)
	return dir, img
}

var hashRE = regexp.MustCompile(`^sha512-256:[0-9a-f]{64}\n$`)

func TestBundleInspectVerifyExtractUnpack(t *testing.T) {
	dir, img := bundleDir(t)
	out := filepath.Join(t.TempDir(), "u.rugixb")
	h := ok(t, "bundle", dir, out)
	if !hashRE.MatchString(h) {
		t.Fatalf("bundle printed %q", h)
	}
	if got := ok(t, "hash", out); got != h {
		t.Fatalf("hash %q, bundle said %q", got, h)
	}
	hash := strings.TrimSpace(h)

	text := ok(t, "inspect", out)
	for _, want := range []string{"Header hash: " + hash, `Payload 0: slot "system"`, `Payload 1: execute ["/bin/sh" "-"]`, "casync-16, sha512-256"} {
		if !strings.Contains(text, want) {
			t.Errorf("inspect lacks %q:\n%s", want, text)
		}
	}
	// Flags after the positional argument, and the "_" digest form.
	var info struct {
		HeaderHash string
		Payloads   []struct {
			Slot  string
			Size  *int64
			Block *struct{ Blocks, StoredBlocks int } `json:"blockEncoding"`
		} `json:"payloads"`
		Verified bool
	}
	js := ok(t, "inspect", out, "--json", "--verify-bundle", strings.Replace(hash, ":", "_", 1))
	if err := json.Unmarshal([]byte(js), &info); err != nil || info.HeaderHash != hash || info.Payloads[0].Slot != "system" {
		t.Fatalf("inspect --json: %v\n%s", err, js)
	}
	if info.Payloads[0].Block.StoredBlocks >= info.Payloads[0].Block.Blocks {
		t.Fatalf("no deduplication: %s", js)
	}

	js = ok(t, "verify", "--json", out)
	if err := json.Unmarshal([]byte(js), &info); err != nil || !info.Verified || *info.Payloads[0].Size != int64(len(img)) {
		t.Fatalf("verify --json: %v\n%s", err, js)
	}

	dst := filepath.Join(t.TempDir(), "system.out")
	ok(t, "extract", "--verify-bundle", hash, out, "0", dst)
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, img) {
		t.Fatal("extracted payload differs")
	}

	// unpack gives back a directory that builds the very same bundle.
	un := filepath.Join(t.TempDir(), "unpacked")
	ok(t, "unpack", out, un)
	if got, _ := os.ReadFile(filepath.Join(un, "payloads", "hooks", "install.sh")); string(got) != "echo installed\n" {
		t.Fatalf("unpacked script %q", got)
	}
	out2 := filepath.Join(t.TempDir(), "again.rugixb")
	if h2 := ok(t, "bundle", un, out2); h2 != h {
		t.Fatalf("rebuilt from unpack: %s, original %s", h2, h)
	}
	a, _ := os.ReadFile(out)
	b, _ := os.ReadFile(out2)
	if !bytes.Equal(a, b) {
		t.Fatal("rebuilt bundle differs")
	}
	fails(t, "already exists", "unpack", out, un)
}

func TestRejections(t *testing.T) {
	dir, _ := bundleDir(t)
	work := t.TempDir()
	out := filepath.Join(work, "u.rugixb")
	hash := strings.TrimSpace(ok(t, "bundle", dir, out))
	raw, _ := os.ReadFile(out)

	other := "sha512-256:" + strings.Repeat("0", 64)
	fails(t, `^bascule-bundler: bundle rejected: .*u.rugixb: header hash is `+hash+`, expected `+other, "verify", "--verify-bundle", other, out)
	fails(t, `--verify-bundle: invalid digest`, "inspect", "--verify-bundle", "sha1:00", out)

	// A flipped byte inside the stored data of the first payload.
	bad := filepath.Join(work, "bad.rugixb")
	c := append([]byte{}, raw...)
	c[len(c)-20000] ^= 0x55
	os.WriteFile(bad, c, 0o644)
	fails(t, `^bascule-bundler: bundle rejected: block \d+ of payload "system": `, "verify", bad)
	dst := filepath.Join(work, "x", "system.out")
	os.MkdirAll(filepath.Dir(dst), 0o755)
	fails(t, `^bascule-bundler: bundle rejected: block \d+ of payload "system": `, "extract", bad, "0", dst)
	if ents, _ := os.ReadDir(filepath.Dir(dst)); len(ents) != 0 {
		t.Fatalf("failed extract left %v", ents)
	}
	fails(t, `^bascule-bundler: bundle rejected: block \d+ of payload "system": `, "unpack", bad, filepath.Join(work, "x", "un"))
	if ents, _ := os.ReadDir(filepath.Dir(dst)); len(ents) != 0 {
		t.Fatalf("failed unpack left %v", ents)
	}

	// Truncated.
	os.WriteFile(bad, raw[:len(raw)/2], 0o644)
	fails(t, `^bascule-bundler: bundle rejected: `, "verify", bad)
	// Not a bundle.
	os.WriteFile(bad, []byte("#!/bin/sh\n"), 0o644)
	fails(t, `not a bundle`, "inspect", bad)

	// Bad manifests name the file and key; nothing is written.
	os.WriteFile(filepath.Join(dir, "rugix-bundle.toml"), []byte(strings.Replace(manifest, `"casync-16"`, `"casync-0"`, 1)), 0o644)
	o := filepath.Join(work, "new.rugixb")
	fails(t, `rugix-bundle.toml: payloads\[0\].block-encoding.chunker: invalid chunker "casync-0"`, "bundle", dir, o)
	os.WriteFile(filepath.Join(dir, "rugix-bundle.toml"), []byte(strings.Replace(manifest, "system.img", "missing.img", 1)), 0o644)
	fails(t, `payload 0: .*missing.img: no such file`, "bundle", dir, o)
	if ents, _ := os.ReadDir(work); len(ents) != 3 { // u, bad, x
		t.Fatalf("failed bundle left files: %v", ents)
	}
	// Unknown keys warn on stderr but build.
	os.WriteFile(filepath.Join(dir, "rugix-bundle.toml"), []byte("hash-algoritm = \"sha256\"\n"+manifest), 0o644)
	r := run(t, "bundle", dir, o)
	if r.code != 0 || !strings.Contains(r.stderr, `warning: `+filepath.Join(dir, "rugix-bundle.toml")+`: unknown key "hash-algoritm"`) {
		t.Fatalf("unknown key: %+v", r)
	}

	fails(t, `wrong number of arguments`, "bundle", dir)
	fails(t, `flag provided but not defined: -frobnicate`, "verify", "--frobnicate", out)
	if r := run(t, "frobnicate"); r.code != 2 {
		t.Fatalf("unknown command: exit %d", r.code)
	}
	if r := run(t, "verify", "--help"); r.code != 0 || !strings.Contains(r.stdout, "--verify-bundle") {
		t.Fatalf("verify --help: %+v", r)
	}
}
