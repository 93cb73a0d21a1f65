package install

import (
	"bytes"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bascule-ota/bascule/internal/bundle"
	"github.com/bascule-ota/bascule/internal/chunker"
	"github.com/bascule-ota/bascule/internal/hashes"
	"github.com/bascule-ota/bascule/internal/slotdb"
	"github.com/bascule-ota/bascule/internal/source"
	"github.com/bascule-ota/bascule/internal/source/testserver"
)

// versions returns two system images: v2 is v1 with a few small changes
// (bytes overwritten, bytes inserted, which shifts everything after them).
func versions(n int) (v1, v2 []byte) {
	r := rand.New(rand.NewSource(42))
	v1 = make([]byte, n)
	r.Read(v1)
	// Some compressible stretches, as in a real file system.
	for i := n / 8; i < n/4; i++ {
		v1[i] = byte(i / 512)
	}
	v2 = append([]byte(nil), v1...)
	copy(v2[n/3:], bytes.Repeat([]byte("new"), 700))
	ins := make([]byte, 100)
	r.Read(ins)
	at := 2 * n / 3
	v2 = append(v2[:at], append(ins, v2[at:]...)...)
	v2[len(v2)-10] ^= 0xff
	return v1, v2
}

// slotBundle builds a bundle with one slot payload.
func slotBundle(t *testing.T, img []byte, encoding string) (string, hashes.Digest) {
	t.Helper()
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "payloads"), 0o755)
	os.WriteFile(filepath.Join(dir, "payloads", "system.img"), img, 0o644)
	os.WriteFile(filepath.Join(dir, "rugix-bundle.toml"), []byte(`update-type = "full"
[[payloads]]
filename = "system.img"
delivery = { type = "slot", slot = "system" }
block-encoding = `+encoding+`
`), 0o644)
	out := filepath.Join(t.TempDir(), "b.rugixb")
	d, err := bundle.Build(dir, out, bundle.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return out, d
}

// slotOptions installs the slot payload into the file (a stand-in for a
// block device, written in place) and records the block index the install
// builds.
type slotRun struct {
	slotFile string
	local    []LocalSlot
	index    *slotdb.Index
	warnings []string
}

func (s *slotRun) options(d hashes.Digest) Options {
	return Options{
		Policy: Policy{BundleHash: &d},
		Resolve: func(p *bundle.Payload) (Target, string, error) {
			t, err := OpenBlock(s.slotFile)
			return t, "system-b", err
		},
		Local:     func(*bundle.Payload, string) ([]LocalSlot, error) { return s.local, nil },
		SaveIndex: func(slot string, ix *slotdb.Index) error { s.index = ix; return nil },
		Warn:      func(w string) { s.warnings = append(s.warnings, w) },
	}
}

func newSlot(t *testing.T, size int) string {
	path := filepath.Join(t.TempDir(), "slot.img")
	if err := os.WriteFile(path, bytes.Repeat([]byte{0xee}, size), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func slotHas(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) < len(want) || !bytes.Equal(got[:len(want)], want) {
		t.Fatal("slot content differs from the payload")
	}
}

func fastHTTP() source.HTTPOptions {
	return source.HTTPOptions{InitialBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, IdleTimeout: 5 * time.Second}
}

func size(t *testing.T, path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// A full install over HTTP through a connection that is cut five times:
// each cut resumes where it stopped, nothing is downloaded twice, the slot
// is right.
func TestHTTPInstallResumesAfterCuts(t *testing.T) {
	img, _ := versions(3 << 20)
	path, d := slotBundle(t, img, `{ chunker = "casync-16", deduplicate = true, compression = { type = "zstd" } }`)
	total := size(t, path)
	root := filepath.Dir(path)
	ng := testserver.StartNginx(t, root)
	const cuts = 5
	px := testserver.NewProxy(t, ng.Addr, func(n int) testserver.Fault {
		if n < cuts {
			return testserver.Fault{CutAfter: total / (cuts + 2)}
		}
		return testserver.Fault{}
	})
	src, err := source.OpenHTTP(px.URL+"/b.rugixb", fastHTTP())
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	s := &slotRun{slotFile: newSlot(t, len(img)+4096)}
	rep, err := Run(src, s.options(d))
	if err != nil {
		t.Fatal(err)
	}
	slotHas(t, s.slotFile, img)
	st := src.Stats()
	t.Logf("bundle %d bytes: %d downloaded, %d over the network, %d requests, %d retries", total, st.Read, px.Downstream(), st.Requests, st.Retries)
	if st.Retries != cuts || rep.Written != int64(len(img)) {
		t.Fatalf("stats %+v, report %+v", st, rep)
	}
	if float64(st.Read) > 1.1*float64(total) || float64(px.Downstream()) > 1.1*float64(total) {
		t.Fatalf("%d bytes downloaded, %d over the network, for a %d byte bundle", st.Read, px.Downstream(), total)
	}
	// The index of what was installed is what `slots create-index` makes.
	want, err := slotdb.CreateIndex(bytes.NewReader(img), chunker.Spec{Kind: chunker.Casync, KiB: 16}, hashes.SHA512_256)
	if err != nil {
		t.Fatal(err)
	}
	if s.index == nil || !bytes.Equal(s.index.Encode(), want.Encode()) {
		t.Fatal("the block index saved after the install is not the slot's index")
	}
}

// The retry budget runs out: the install fails cleanly, nothing is
// recorded.
func TestHTTPInstallGivesUp(t *testing.T) {
	img, _ := versions(1 << 20)
	path, d := slotBundle(t, img, `{ chunker = "fixed-64", compression = { type = "xz", level = 0 } }`)
	ng := testserver.StartNginx(t, filepath.Dir(path))
	px := testserver.NewProxy(t, ng.Addr, func(n int) testserver.Fault {
		if n == 0 {
			return testserver.Fault{CutAfter: 300 << 10}
		}
		return testserver.Fault{Status: 502}
	})
	src, err := source.OpenHTTP(px.URL+"/b.rugixb", fastHTTP())
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	s := &slotRun{slotFile: newSlot(t, len(img))}
	_, err = Run(src, s.options(d))
	if err == nil || !strings.Contains(err.Error(), "giving up after 6 attempts without progress") || !strings.Contains(err.Error(), "502") {
		t.Fatalf("err %v", err)
	}
	if s.index != nil {
		t.Fatal("an index was saved for a failed install")
	}
}

// Adaptive delta: v1 is installed and indexed (by the install itself), v2
// is installed over HTTP taking unchanged blocks from the v1 slot.
func TestAdaptiveDeltaHTTP(t *testing.T) {
	v1, v2 := versions(4 << 20)
	enc := `{ chunker = "casync-16", deduplicate = true, compression = { type = "xz", level = 1 } }`
	p1, d1 := slotBundle(t, v1, enc)
	p2, d2 := slotBundle(t, v2, enc)
	total := size(t, p2)

	// Install v1 from the file; its index is built on the way.
	slotA := newSlot(t, len(v1)+8192)
	a := &slotRun{slotFile: slotA}
	f, err := source.OpenFile(p1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Run(f, a.options(d1)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	slotHas(t, slotA, v1)
	local := []LocalSlot{{Name: "system-a", Path: slotA, Index: a.index}}

	ng := testserver.StartNginx(t, filepath.Dir(p2))
	install := func(t *testing.T, url string, o source.HTTPOptions, local []LocalSlot) (*slotRun, *Report, source.Stats) {
		t.Helper()
		o.ExpectSkips = local != nil
		src, err := source.OpenHTTP(url, o)
		if err != nil {
			t.Fatal(err)
		}
		defer src.Close()
		b := &slotRun{slotFile: newSlot(t, len(v2)), local: local}
		rep, err := Run(src, b.options(d2))
		if err != nil {
			t.Fatal(err)
		}
		slotHas(t, b.slotFile, v2)
		return b, rep, src.Stats()
	}

	var deltaRead, deltaReused int64
	t.Run("delta", func(t *testing.T) {
		_, rep, st := install(t, ng.URL+"/b.rugixb", fastHTTP(), local)
		deltaRead, deltaReused = st.Read, rep.Reused
		t.Logf("bundle %d bytes, downloaded %d (%.1f%%) in %d requests; %d of %d bytes reused", total, st.Read, 100*float64(st.Read)/float64(total), st.Requests, rep.Reused, rep.Written)
		if st.Read > total/5 || rep.Reused < int64(len(v2))*8/10 || rep.LocalMismatches != 0 {
			t.Fatalf("stats %+v, report %+v", st, rep)
		}
		// Coalesced: a handful of requests, not one per block.
		if st.Requests > 12 {
			t.Fatalf("%d requests: %q", st.Requests, ng.AccessLogN(t, st.Requests))
		}
	})

	t.Run("without local blocks", func(t *testing.T) {
		_, rep, st := install(t, ng.URL+"/b.rugixb", fastHTTP(), nil)
		if st.Read != total || rep.Reused != 0 || st.Requests != 1 {
			t.Fatalf("stats %+v, report %+v", st, rep)
		}
	})

	t.Run("cuts", func(t *testing.T) {
		ng.ResetLog(t)
		px := testserver.NewProxy(t, ng.Addr, func(n int) testserver.Fault {
			if n < 3 {
				return testserver.Fault{CutAfter: 30 << 10}
			}
			return testserver.Fault{}
		})
		_, _, st := install(t, px.URL+"/b.rugixb", fastHTTP(), local)
		t.Logf("with cuts: downloaded %d, %d retries", st.Read, st.Retries)
		// Connections are also dropped on purpose (for skips), so not
		// every cut connection breaks a request.
		if st.Retries < 1 || st.Retries > 3 || st.Read > total/5 {
			t.Fatalf("stats %+v, %d without cuts", st, deltaRead)
		}
		// Every resume asked for the bytes after the cut: only the very
		// first request starts at byte 0.
		log := ng.AccessLogN(t, st.Requests)
		if n := strings.Count(strings.Join(log, "\n"), `"bytes=0-`); n != 1 {
			t.Fatalf("%d requests from byte 0: %q", n, log)
		}
	})

	t.Run("server without ranges", func(t *testing.T) {
		ng.ResetLog(t)
		b, rep, st := install(t, ng.URL+"/noranges/b.rugixb", fastHTTP(), local)
		if st.Read != total || st.Requests != 1 || rep.Reused == 0 || len(b.warnings) != 0 {
			t.Fatalf("stats %+v, report %+v, warnings %q", st, rep, b.warnings)
		}
		if log := ng.AccessLogN(t, 1); len(log) != 1 || !strings.HasPrefix(log[0], "200 ") {
			t.Fatalf("requests %q", log)
		}
	})

	t.Run("corrupt local block", func(t *testing.T) {
		// The slot changed after it was indexed: one of its blocks is
		// found by the hash check and taken from the bundle instead.
		bad := filepath.Join(t.TempDir(), "a.img")
		raw, _ := os.ReadFile(slotA)
		raw[len(v1)/2] ^= 0x01
		os.WriteFile(bad, raw, 0o644)
		b, rep, st := install(t, ng.URL+"/b.rugixb", fastHTTP(), []LocalSlot{{Name: "system-a", Path: bad, Index: a.index}})
		t.Logf("corrupt block: downloaded %d (%d without), reused %d (%d without), warnings %q", st.Read, deltaRead, rep.Reused, deltaReused, b.warnings)
		// (How much is downloaded depends on how the requests fall: the
		// bytes of the block may have been read through anyway.)
		if rep.LocalMismatches != 1 || len(b.warnings) != 1 || !strings.Contains(b.warnings[0], "slot system-a: block at offset") ||
			rep.Reused >= deltaReused || rep.Reused < deltaReused-64<<10 {
			t.Fatalf("stats %+v, report %+v, warnings %q", st, rep, b.warnings)
		}
	})

	t.Run("target slot's own old content", func(t *testing.T) {
		// Installing v2 over v1 in place, with the v1 index of the very
		// slot being written: blocks still ahead of the write position are
		// taken, those already overwritten fail the check quietly.
		slot := filepath.Join(t.TempDir(), "slot.img")
		raw, _ := os.ReadFile(slotA)
		os.WriteFile(slot, raw, 0o644)
		src, err := source.OpenHTTP(ng.URL+"/b.rugixb", fastHTTP())
		if err != nil {
			t.Fatal(err)
		}
		defer src.Close()
		b := &slotRun{slotFile: slot, local: []LocalSlot{{Name: "system-b", Path: slot, Index: a.index, Target: true}}}
		rep, err := Run(src, b.options(d2))
		if err != nil {
			t.Fatal(err)
		}
		slotHas(t, slot, v2)
		st := src.Stats()
		t.Logf("in place: downloaded %d, reused %d", st.Read, rep.Reused)
		if rep.Reused == 0 || len(b.warnings) != 0 {
			t.Fatalf("stats %+v, report %+v, warnings %q", st, rep, b.warnings)
		}
	})

	t.Run("file source", func(t *testing.T) {
		f, err := source.OpenFile(p2)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		b := &slotRun{slotFile: newSlot(t, len(v2)), local: local}
		rep, err := Run(f, b.options(d2))
		if err != nil {
			t.Fatal(err)
		}
		slotHas(t, b.slotFile, v2)
		st := f.Stats()
		if st.Read+st.Skipped != total || st.Read > total/4 || rep.Reused == 0 {
			t.Fatalf("stats %+v, report %+v", st, rep)
		}
	})

	t.Run("stream source", func(t *testing.T) {
		raw, _ := os.ReadFile(p2)
		s := source.NewStream(bytes.NewReader(raw), -1)
		b := &slotRun{slotFile: newSlot(t, len(v2)), local: local}
		rep, err := Run(s, b.options(d2))
		if err != nil {
			t.Fatal(err)
		}
		slotHas(t, b.slotFile, v2)
		if rep.Reused == 0 || s.Stats().Read != total {
			t.Fatalf("stats %+v, report %+v", s.Stats(), rep)
		}
	})
}

func TestLocalBlocksWrongIndex(t *testing.T) {
	// An index that claims blocks the file does not have (too short)
	// yields nothing, and the decoder never sees unchecked bytes.
	dir := t.TempDir()
	path := filepath.Join(dir, "a")
	os.WriteFile(path, []byte("short"), 0o644)
	h := hashes.SHA512_256.Sum([]byte("0123456789"))
	ix := &slotdb.Index{Chunker: chunker.Spec{Kind: chunker.Fixed, KiB: 64}, HashAlg: hashes.SHA512_256, Hashes: h, Sizes: []uint32{10}}
	var warnings []string
	l := NewLocalBlocks([]LocalSlot{{Name: "a", Path: path, Index: ix}}, func(s string) { warnings = append(warnings, s) })
	defer l.Close()
	if !l.Has(h) {
		t.Fatal("hash not found")
	}
	calls := 0
	if b, ok := l.Read(h, func([]byte) bool { calls++; return true }); ok || b != nil || calls != 0 {
		t.Fatalf("read %q %v after %d checks", b, ok, calls)
	}
	if len(warnings) != 1 || l.Mismatches != 1 {
		t.Fatalf("warnings %q", warnings)
	}
	_ = fmt.Sprint
}
