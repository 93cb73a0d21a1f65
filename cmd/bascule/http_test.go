package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/bascule-ota/bascule/internal/source/testserver"
)

// TestDeviceHTTP runs `bascule update install http://…` end to end: a
// device whose running system is a loop partition and whose other system
// slot is a file (configured by an /etc/rugix/system.toml that exists only
// in the test's mount namespace, on an overlay of /etc), a custom boot flow,
// nginx serving the bundles, and a proxy that cuts connections.
//
// The same recipe serves benchmarks that install into file slots: see
// docs/network.md.
func TestDeviceHTTP(t *testing.T) {
	if inMountNamespace(t, func() { testserver.FindNginx(t) }) {
		deviceHTTPTest(t)
	}
}

func deviceHTTPTest(t *testing.T) {
	work := t.TempDir()
	_, p := loopDisk(t, work, "160M", `label: dos
size=8MiB, type=c
size=8MiB, type=c
size=8MiB, type=c
type=5
size=48MiB, type=83
size=8MiB, type=83
type=83
`)
	for _, n := range []int{1, 5, 7} {
		sh(t, "mkfs.ext4 -q -F "+p(n))
	}
	mountRun(t)
	must(t, unix.Mount(p(1), "/run/rugix/mounts/config", "ext4", unix.MS_RDONLY, ""))
	must(t, unix.Mount(p(5), "/run/rugix/mounts/system", "ext4", unix.MS_RDONLY, ""))
	must(t, unix.Mount(p(7), "/run/rugix/mounts/data", "ext4", 0, ""))

	// /etc/rugix/system.toml, in this namespace only: an overlay on /etc.
	upper, ovlWork := filepath.Join(work, "etc-upper"), filepath.Join(work, "etc-work")
	os.MkdirAll(upper, 0o755)
	os.MkdirAll(ovlWork, 0o755)
	must(t, unix.Mount("overlay", "/etc", "overlay", 0, "lowerdir=/etc,upperdir="+upper+",workdir="+ovlWork))
	must(t, os.MkdirAll("/etc/rugix", 0o755))
	controller := filepath.Join(work, "bootctl")
	os.WriteFile(controller, []byte("#!/bin/sh\ncase \"$1\" in get_default) echo '{\"group\":\"a\"}';; *) echo '{}';; esac\n"), 0o755)
	slotB := filepath.Join(work, "system-b.img")
	must(t, os.WriteFile("/etc/rugix/system.toml", []byte(fmt.Sprintf(`[boot-flow]
type = "custom"
controller = %q

[slots.system-a]
type = "block"
partition = 5
immutable = true

[slots.system-b]
type = "file"
path = %q
immutable = true

[boot-groups.a]
slots = { system = "system-a" }

[boot-groups.b]
slots = { system = "system-b" }
`, controller, slotB)), 0o644))

	// Two versions of the system: v2 changes a file in v1's image.
	v1, v2 := deviceVersions(t, work)
	www := filepath.Join(work, "www")
	os.MkdirAll(www, 0o755)
	bundle := func(name string, image []byte) string {
		dir := filepath.Join(work, name)
		os.MkdirAll(filepath.Join(dir, "payloads"), 0o755)
		os.WriteFile(filepath.Join(dir, "payloads", "system.img"), image, 0o644)
		os.WriteFile(filepath.Join(dir, "rugix-bundle.toml"), []byte(`update-type = "full"
[[payloads]]
filename = "system.img"
delivery = { type = "slot", slot = "system" }
block-encoding = { chunker = "casync-16", deduplicate = true, compression = { type = "zstd" } }
`), 0o644)
		return buildBundle(t, dir, filepath.Join(www, name+".rugixb"))
	}
	h1, h2 := bundle("v1", v1), bundle("v2", v2)
	size := func(name string) int64 {
		fi, err := os.Stat(filepath.Join(www, name+".rugixb"))
		must(t, err)
		return fi.Size()
	}
	ng := testserver.StartNginx(t, www)
	const ixPath = "/run/rugix/mounts/data/rugix/slots/system-b/casync-16_sha512-256.rugix-block-index"

	stats := func(t *testing.T, r result) installStats {
		t.Helper()
		var st installStats
		for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
			if strings.Contains(l, `"event":"UpdateStats"`) {
				must(t, json.Unmarshal([]byte(l), &st))
				return st
			}
		}
		t.Fatalf("no UpdateStats line: %+v", r)
		return st
	}
	slotIs := func(t *testing.T, want []byte) {
		t.Helper()
		got, err := os.ReadFile(slotB)
		must(t, err)
		if !bytes.Equal(got, want) {
			t.Fatal("system-b does not hold the installed system")
		}
	}

	t.Run("cuts", func(t *testing.T) {
		// v1 over a link cut five times; no local blocks yet.
		const cuts = 5
		total := size("v1")
		px := testserver.NewProxy(t, ng.Addr, func(n int) testserver.Fault {
			if n < cuts {
				return testserver.Fault{CutAfter: total / (cuts + 2)}
			}
			return testserver.Fault{}
		})
		r := bascule(t, nil, "update", "install", "--reboot", "no", "--bundle-hash", h1,
			"--http-retry-initial-backoff", "10ms", "--http-retry-max-backoff", "50ms", px.URL+"/v1.rugixb")
		if r.code != 0 {
			t.Fatalf("%+v", r)
		}
		slotIs(t, v1)
		st := stats(t, r)
		t.Logf("bundle %d bytes: downloaded %d, %d over the network, %d requests, %d retries", total, st.Downloaded, px.Downstream(), st.HTTPRequests, st.HTTPRetries)
		if st.HTTPRetries != cuts || strings.Count(r.stderr, "retrying in") != cuts || st.Written != int64(len(v1)) {
			t.Fatalf("%+v\n%s", st, r.stderr)
		}
		if float64(st.Downloaded) > 1.1*float64(total) || float64(px.Downstream()) > 1.1*float64(total) {
			t.Fatalf("downloaded %d (%d over the network) for a %d byte bundle", st.Downloaded, px.Downstream(), total)
		}
		// The install indexed the slot by itself.
		if _, err := os.Stat(ixPath); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(r.stderr, fmt.Sprintf("Installed bundle %s into boot group b: %d bytes written, 0 of them reused", h1, len(v1))) {
			t.Fatalf("summary: %s", r.stderr)
		}
	})

	t.Run("delta", func(t *testing.T) {
		// v2 over the same slot: its old content (indexed by the v1
		// install) provides the unchanged blocks.
		ng.ResetLog(t)
		r := bascule(t, nil, "update", "install", "--reboot", "no", "--bundle-hash", h2, ng.URL+"/v2.rugixb")
		if r.code != 0 {
			t.Fatalf("%+v", r)
		}
		slotIs(t, v2)
		st := stats(t, r)
		total := size("v2")
		t.Logf("delta: bundle %d bytes, downloaded %d (%.1f%%) in %d requests, reused %d of %d", total, st.Downloaded, 100*float64(st.Downloaded)/float64(total), st.HTTPRequests, st.Reused, st.Written)
		// Most of the image is zeros, rebuilt from one block; the 3 MiB
		// of data must come from the old slot.
		if st.Downloaded > total/4 || st.Reused < 2<<20 || st.BundleSize != total {
			t.Fatalf("%+v", st)
		}
		for _, l := range ng.AccessLogN(t, st.HTTPRequests) {
			if !strings.HasPrefix(l, "206 ") || !strings.HasSuffix(l, `"bascule/`+strings.TrimSpace(bascule(t, nil, "version").stdout)+`"`) {
				t.Fatalf("request %q", l)
			}
		}
		if r := bascule(t, nil, "slots", "verify", "system-b"); r.code != 0 {
			t.Fatalf("verify: %+v", r)
		}
	})

	t.Run("proxy from the environment", func(t *testing.T) {
		// http_proxy points at the TCP proxy, which passes the absolute
		// request URI on to nginx; the host name is never resolved.
		px := testserver.NewProxy(t, ng.Addr, nil)
		t.Setenv("http_proxy", px.URL)
		t.Setenv("HTTP_PROXY", px.URL)
		r := bascule(t, nil, "update", "install", "--reboot", "no", "--bundle-hash", h1, "http://bundles.invalid/v1.rugixb")
		if r.code != 0 || px.Conns() == 0 {
			t.Fatalf("%+v, %d connections through the proxy", r, px.Conns())
		}
		slotIs(t, v1)
	})

	t.Run("errors", func(t *testing.T) {
		r := bascule(t, nil, "update", "install", "--reboot", "no", "--bundle-hash", h2, ng.URL+"/missing.rugixb")
		if r.code != 1 || strings.TrimSpace(r.stderr) != "bascule: GET "+ng.URL+"/missing.rugixb: 404 Not Found" {
			t.Fatalf("%+v", r)
		}
		px := testserver.NewProxy(t, ng.Addr, func(n int) testserver.Fault {
			if n == 0 {
				return testserver.Fault{CutAfter: 100 << 10}
			}
			return testserver.Fault{Status: 503}
		})
		before, _ := os.ReadFile(slotB)
		r = bascule(t, nil, "update", "install", "--reboot", "no", "--bundle-hash", h1, "--http-max-retries", "2",
			"--http-retry-initial-backoff", "10ms", "--http-retry-max-backoff", "10ms", "--disable-range-queries", px.URL+"/v1.rugixb")
		if r.code != 1 || !strings.Contains(r.stderr, "bascule: bundle rejected: ") || !strings.Contains(r.stderr, "giving up after 3 attempts without progress: server answered 503") {
			t.Fatalf("%+v", r)
		}
		// A file slot is replaced only when complete: the old content stays.
		if after, _ := os.ReadFile(slotB); !bytes.Equal(before, after) {
			t.Fatal("a failed install changed the file slot")
		}
		if _, err := os.Stat(ixPath); err == nil {
			t.Fatal("a failed install left the slot's block index")
		}
		r = bascule(t, nil, "update", "install", "--reboot", "no", "--http-retry-initial-backoff", "2x", ng.URL+"/v1.rugixb")
		if r.code == 0 || !strings.Contains(r.stderr, "neither whole seconds nor a duration") {
			t.Fatalf("%+v", r)
		}
	})
}

// deviceVersions makes two ext4 images; v2 has a changed and an added file.
func deviceVersions(t *testing.T, work string) (v1, v2 []byte) {
	t.Helper()
	tree := filepath.Join(work, "tree")
	os.MkdirAll(tree, 0o755)
	noise := make([]byte, 3<<20)
	rand.New(rand.NewSource(1)).Read(noise)
	os.WriteFile(filepath.Join(tree, "data.bin"), noise, 0o644)
	os.WriteFile(filepath.Join(tree, "os-release"), []byte("VERSION=1\n"), 0o644)
	sh(t, fmt.Sprintf("mkfs.ext4 -q -F -E root_owner=0:0 -U 11111111-2222-3333-4444-555555555555 -T small -d %s %s/v1.img 8M", tree, work))
	os.WriteFile(filepath.Join(tree, "os-release"), []byte("VERSION=2\n"), 0o644)
	os.WriteFile(filepath.Join(tree, "new.txt"), bytes.Repeat([]byte("new file\n"), 500), 0o644)
	sh(t, fmt.Sprintf("mkfs.ext4 -q -F -E root_owner=0:0 -U 11111111-2222-3333-4444-555555555555 -T small -d %s %s/v2.img 8M", tree, work))
	v1, _ = os.ReadFile(filepath.Join(work, "v1.img"))
	v2, _ = os.ReadFile(filepath.Join(work, "v2.img"))
	return v1, v2
}
