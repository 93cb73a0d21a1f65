package source_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bascule-ota/bascule/internal/source"
	"github.com/bascule-ota/bascule/internal/source/testserver"
)

func randomFile(t *testing.T, dir, name string, n int, seed int64) []byte {
	t.Helper()
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return b
}

// fast are options for tests: short backoffs, a short stall timeout.
func fast() source.HTTPOptions {
	return source.HTTPOptions{InitialBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, IdleTimeout: 2 * time.Second, UserAgent: "bascule/test"}
}

func readAll(t *testing.T, s source.Source) []byte {
	t.Helper()
	b, err := io.ReadAll(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestHTTPWholeFile(t *testing.T) {
	root := t.TempDir()
	data := randomFile(t, root, "b.rugixb", 3<<20, 1)
	ng := testserver.StartNginx(t, root)
	s, err := source.OpenHTTP(ng.URL+"/b.rugixb", fast())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !s.RangeSupport() || s.Size() != int64(len(data)) {
		t.Fatalf("ranges %v size %d", s.RangeSupport(), s.Size())
	}
	if got := readAll(t, s); !bytes.Equal(got, data) {
		t.Fatal("content differs")
	}
	st := s.Stats()
	log := ng.AccessLogN(t, 1)
	if st.Read != int64(len(data)) || st.Requests != 1 || len(log) != 1 {
		t.Fatalf("stats %+v, log %q", st, log)
	}
	if !strings.HasPrefix(log[0], `206 "bytes=0-"`) || !strings.HasSuffix(log[0], `"bascule/test"`) {
		t.Fatalf("request %q", log[0])
	}
}

// A plan of skips turns into few, coalesced range requests; small gaps are
// read through, large ones are not downloaded.
func TestHTTPPlannedRanges(t *testing.T) {
	root := t.TempDir()
	data := randomFile(t, root, "b.rugixb", 4<<20, 2)
	ng := testserver.StartNginx(t, root)
	o := fast()
	o.MinGap = 32 << 10
	s, err := source.OpenHTTP(ng.URL+"/b.rugixb", o)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Read a header, then plan: 64 KiB blocks from 1 MiB on, every block
	// but every fourth skipped, plus two small gaps of 4 KiB.
	head := make([]byte, 100)
	if _, err := io.ReadFull(s, head); err != nil {
		t.Fatal(err)
	}
	var skips []source.Range
	for off := int64(1 << 20); off < 3<<20; off += 64 << 10 {
		if (off>>16)%4 != 0 {
			skips = append(skips, source.Range{Off: off, Len: 64 << 10})
		}
	}
	skips = append(skips, source.Range{Off: 3<<20 + 100, Len: 4096}, source.Range{Off: 3<<20 + 9000, Len: 4096})
	s.Plan(skips, -1)
	var got []byte
	pos := int64(100)
	got = append(got, head...)
	want := append([]byte(nil), data[:100]...)
	for _, sk := range skips {
		chunk := make([]byte, sk.Off-pos)
		if _, err := io.ReadFull(s, chunk); err != nil {
			t.Fatal(err)
		}
		got = append(got, chunk...)
		want = append(want, data[pos:sk.Off]...)
		if err := s.Skip(sk.Len); err != nil {
			t.Fatal(err)
		}
		pos = sk.End()
	}
	got = append(got, readAll(t, s)...)
	want = append(want, data[pos:]...)
	if !bytes.Equal(got, want) {
		t.Fatal("content differs")
	}
	st := s.Stats()
	var skipped int64
	for _, sk := range skips {
		skipped += sk.Len
	}
	// The first request (bytes=0-) ran into the first gap and was dropped:
	// at most what was in flight was read beyond it, and nothing after.
	needed := int64(len(data)) - skipped
	log := ng.AccessLogN(t, st.Requests)
	t.Logf("read %d of %d bytes, %d needed, %d requests: %q", st.Read, len(data), needed, st.Requests, log)
	if st.Read < needed || st.Read > needed+2*4096+(1<<20) {
		t.Fatalf("read %d bytes, needed %d", st.Read, needed)
	}
	// One request per run of needed blocks (every fourth block), none per
	// small gap: 1 + 8 runs.
	if st.Requests != 9 || len(log) != 9 {
		t.Fatalf("%d requests: %q", st.Requests, log)
	}
	for _, l := range log[1:] {
		if !strings.HasPrefix(l, `206 "bytes=`) || strings.Contains(l, `"bytes=`+fmt.Sprint(len(data))) {
			t.Fatalf("request %q", l)
		}
	}
}

// A block announced as skipped but needed after all is fetched alone.
func TestHTTPNeedAfterPlan(t *testing.T) {
	root := t.TempDir()
	data := randomFile(t, root, "b.rugixb", 1<<20, 3)
	ng := testserver.StartNginx(t, root)
	s, err := source.OpenHTTP(ng.URL+"/b.rugixb", fast())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.Plan([]source.Range{{Off: 0, Len: 1 << 20}}, -1)
	s.Need(source.Range{Off: 200 << 10, Len: 100 << 10})
	if err := s.Skip(200 << 10); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 100<<10)
	if _, err := io.ReadFull(s, b); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, data[200<<10:300<<10]) {
		t.Fatal("content differs")
	}
	log := ng.AccessLogN(t, 2)
	if len(log) != 2 || !strings.HasPrefix(log[1], fmt.Sprintf(`206 "bytes=%d-%d"`, 200<<10, 300<<10-1)) {
		t.Fatalf("requests %q", log)
	}
}

// Cuts: every cut resumes at the byte where it stopped, with If-Range, and
// nothing is read twice.
func TestHTTPResumeAfterCuts(t *testing.T) {
	root := t.TempDir()
	data := randomFile(t, root, "b.rugixb", 6<<20, 4)
	ng := testserver.StartNginx(t, root)
	const cuts = 5
	px := testserver.NewProxy(t, ng.Addr, func(n int) testserver.Fault {
		if n < cuts {
			return testserver.Fault{CutAfter: 900 << 10}
		}
		return testserver.Fault{}
	})
	var warnings []string
	o := fast()
	o.Warn = func(s string) { warnings = append(warnings, s) }
	s, err := source.OpenHTTP(px.URL+"/b.rugixb", o)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := readAll(t, s); !bytes.Equal(got, data) {
		t.Fatal("content differs")
	}
	st := s.Stats()
	log := ng.AccessLogN(t, cuts+1)
	t.Logf("read %d of %d bytes, %d requests, %d retries, %d bytes through the proxy; %q", st.Read, len(data), st.Requests, st.Retries, px.Downstream(), log)
	if st.Read != int64(len(data)) || st.Retries != cuts || len(warnings) != cuts {
		t.Fatalf("stats %+v, warnings %q", st, warnings)
	}
	if float64(px.Downstream()) > 1.1*float64(len(data)) {
		t.Fatalf("%d bytes went over the network for a %d byte file", px.Downstream(), len(data))
	}
	resumes := 0
	for _, l := range log {
		if strings.Contains(l, `"bytes=0-"`) {
			continue
		}
		if !strings.HasPrefix(l, `206 "bytes=`) || strings.Contains(l, `"" `) {
			t.Fatalf("resume request without range or If-Range: %q", l)
		}
		resumes++
	}
	if resumes != cuts {
		t.Fatalf("%d resumed requests: %q", resumes, log)
	}
}

func TestHTTPStall(t *testing.T) {
	root := t.TempDir()
	data := randomFile(t, root, "b.rugixb", 1<<20, 5)
	ng := testserver.StartNginx(t, root)
	px := testserver.NewProxy(t, ng.Addr, func(n int) testserver.Fault {
		if n == 0 {
			return testserver.Fault{CutAfter: 300 << 10, Stall: true}
		}
		return testserver.Fault{}
	})
	o := fast()
	o.IdleTimeout = time.Second
	var warnings []string
	o.Warn = func(s string) { warnings = append(warnings, s) }
	s, err := source.OpenHTTP(px.URL+"/b.rugixb", o)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := readAll(t, s); !bytes.Equal(got, data) {
		t.Fatal("content differs")
	}
	// (A very slow machine may see more than the one stall.)
	if len(warnings) < 1 || !strings.Contains(warnings[0], ": no data for 1s; retrying") {
		t.Fatalf("warnings %q", warnings)
	}
}

func TestHTTPStatusErrors(t *testing.T) {
	root := t.TempDir()
	data := randomFile(t, root, "b.rugixb", 200<<10, 6)
	ng := testserver.StartNginx(t, root)

	// 503 twice, then fine.
	px := testserver.NewProxy(t, ng.Addr, func(n int) testserver.Fault {
		if n < 2 {
			return testserver.Fault{Status: 503}
		}
		return testserver.Fault{}
	})
	s, err := source.OpenHTTP(px.URL+"/b.rugixb", fast())
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, s); !bytes.Equal(got, data) || s.Stats().Retries != 2 {
		t.Fatalf("stats %+v", s.Stats())
	}
	s.Close()

	// Always 500: gives up after the retry budget.
	px = testserver.NewProxy(t, ng.Addr, func(int) testserver.Fault { return testserver.Fault{Status: 500} })
	o := fast()
	o.MaxRetries = 3
	_, err = source.OpenHTTP(px.URL+"/b.rugixb", o)
	if err == nil || !strings.Contains(err.Error(), "giving up after 4 attempts") || !strings.Contains(err.Error(), "500") || px.Conns() != 4 {
		t.Fatalf("err %v after %d connections", err, px.Conns())
	}

	// 404 and 403 fail at once; 429 and 408 are retried.
	for code, tries := range map[int]int{404: 1, 403: 1, 429: 3, 408: 3} {
		px := testserver.NewProxy(t, ng.Addr, func(int) testserver.Fault { return testserver.Fault{Status: code} })
		o := fast()
		o.MaxRetries = 2
		_, err := source.OpenHTTP(px.URL+"/b.rugixb", o)
		if err == nil || !strings.Contains(err.Error(), fmt.Sprint(code)) || px.Conns() != tries {
			t.Errorf("%d: err %v after %d connections", code, err, px.Conns())
		}
	}
	_, err = source.OpenHTTP(ng.URL+"/missing.rugixb", fast())
	if err == nil || err.Error() != "GET "+ng.URL+"/missing.rugixb: 404 Not Found" {
		t.Fatalf("missing file: %v", err)
	}
}

// A server without range support: one plain GET. After a cut the file is
// read again from the start, the part already returned is checked and
// thrown away.
func TestHTTPNoRanges(t *testing.T) {
	root := t.TempDir()
	data := randomFile(t, root, "b.rugixb", 2<<20, 7)
	ng := testserver.StartNginx(t, root)
	s, err := source.OpenHTTP(ng.URL+"/noranges/b.rugixb", fast())
	if err != nil {
		t.Fatal(err)
	}
	if s.RangeSupport() || s.Size() != int64(len(data)) {
		t.Fatalf("ranges %v size %d", s.RangeSupport(), s.Size())
	}
	// Skips are read through.
	s.Plan([]source.Range{{Off: 1 << 20, Len: 512 << 10}}, -1)
	head := make([]byte, 1<<20)
	io.ReadFull(s, head)
	if err := s.Skip(512 << 10); err != nil {
		t.Fatal(err)
	}
	rest := readAll(t, s)
	if !bytes.Equal(head, data[:1<<20]) || !bytes.Equal(rest, data[3<<19:]) {
		t.Fatal("content differs")
	}
	log := ng.AccessLogN(t, 1)
	if len(log) != 1 || !strings.HasPrefix(log[0], `200 "bytes=0-"`) || s.Stats().Read != int64(len(data)) {
		t.Fatalf("stats %+v, requests %q", s.Stats(), log)
	}
	s.Close()

	// Cut twice.
	ng.ResetLog(t)
	px := testserver.NewProxy(t, ng.Addr, func(n int) testserver.Fault {
		if n < 2 {
			return testserver.Fault{CutAfter: 900 << 10}
		}
		return testserver.Fault{}
	})
	o := fast()
	o.DisableRanges = true
	s, err = source.OpenHTTP(px.URL+"/b.rugixb", o)
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, s); !bytes.Equal(got, data) {
		t.Fatal("content differs")
	}
	log = ng.AccessLogN(t, 3)
	if len(log) != 3 || strings.Contains(strings.Join(log, "\n"), "bytes=") || s.Stats().Read <= int64(len(data)) {
		t.Fatalf("stats %+v, requests %q", s.Stats(), log)
	}
}

// The file changes on the server between a cut and the resume: the
// download fails cleanly instead of splicing two files.
func TestHTTPChangedFile(t *testing.T) {
	for _, path := range []string{"/b.rugixb", "/noranges/b.rugixb"} {
		root := t.TempDir()
		randomFile(t, root, "b.rugixb", 1<<20, 8)
		ng := testserver.StartNginx(t, root)
		px := testserver.NewProxy(t, ng.Addr, func(n int) testserver.Fault {
			if n == 0 {
				return testserver.Fault{CutAfter: 300 << 10, Before: func() {
					b := make([]byte, 1<<20)
					rand.New(rand.NewSource(9)).Read(b)
					tmp := filepath.Join(root, "new")
					os.WriteFile(tmp, b, 0o644)
					os.Chtimes(tmp, time.Now().Add(time.Hour), time.Now().Add(time.Hour))
					os.Rename(tmp, filepath.Join(root, "b.rugixb"))
				}}
			}
			return testserver.Fault{}
		})
		s, err := source.OpenHTTP(px.URL+path, fast())
		if err != nil {
			t.Fatal(err)
		}
		_, err = io.ReadAll(s)
		if !errors.Is(err, source.ErrChanged) {
			t.Fatalf("%s: err %v", path, err)
		}
		t.Logf("%s: %v", path, err)
		s.Close()
	}
}

func TestHTTPS(t *testing.T) {
	data := make([]byte, 300<<10)
	rand.New(rand.NewSource(10)).Read(data)
	var ua string
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ua = r.UserAgent()
		http.ServeContent(w, r, "b.rugixb", time.Unix(1e9, 0), bytes.NewReader(data))
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshake refused on purpose below
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644)

	o := fast()
	o.CACert = ca
	s, err := source.OpenHTTP(srv.URL+"/b.rugixb", o)
	if err != nil {
		t.Fatal(err)
	}
	got := readAll(t, s)
	if sha256.Sum256(got) != sha256.Sum256(data) || !s.RangeSupport() || ua != "bascule/test" {
		t.Fatalf("content, ranges %v, user agent %q", s.RangeSupport(), ua)
	}
	s.Close()
	// Through a proxy that cuts twice: resumes over new TLS connections,
	// with If-Range on Last-Modified (ServeContent sends no ETag).
	var ifRanges []string
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ifRanges = append(ifRanges, r.Header.Get("If-Range"))
		http.ServeContent(w, r, "b.rugixb", time.Unix(1e9, 0), bytes.NewReader(data))
	})
	px := testserver.NewProxy(t, srv.Listener.Addr().String(), func(n int) testserver.Fault {
		if n < 2 {
			return testserver.Fault{CutAfter: 100 << 10}
		}
		return testserver.Fault{}
	})
	s, err = source.OpenHTTP("https://"+px.Addr+"/b.rugixb", o)
	if err != nil {
		t.Fatal(err)
	}
	got = readAll(t, s)
	if !bytes.Equal(got, data) || s.Stats().Retries != 2 || len(ifRanges) != 3 || ifRanges[2] != "Sun, 09 Sep 2001 01:46:40 GMT" {
		t.Fatalf("stats %+v, If-Range %q", s.Stats(), ifRanges)
	}
	s.Close()
	// Without the CA (the system store does not know it): fails at once.
	o.CACert = ""
	var warnings []string
	o.Warn = func(s string) { warnings = append(warnings, s) }
	_, err = source.OpenHTTP(srv.URL+"/b.rugixb", o)
	if err == nil || !strings.Contains(err.Error(), "certificate") || len(warnings) != 0 {
		t.Fatalf("unknown CA: %v, retried: %q", err, warnings)
	}
	o.CACert = filepath.Join(t.TempDir(), "none.pem")
	os.WriteFile(o.CACert, []byte("not a certificate"), 0o644)
	if _, err := source.OpenHTTP(srv.URL+"/b.rugixb", o); err == nil || !strings.Contains(err.Error(), "no PEM certificates") {
		t.Fatalf("bad CA file: %v", err)
	}
}

// Connection refused is retried, then given up.
func TestHTTPConnectionRefused(t *testing.T) {
	px := testserver.NewProxy(t, "127.0.0.1:1", nil)
	addr := px.URL
	px.Close()
	o := fast()
	o.MaxRetries = 2
	_, err := source.OpenHTTP(addr+"/b.rugixb", o)
	if err == nil || !strings.Contains(err.Error(), "giving up after 3 attempts") {
		t.Fatalf("err %v", err)
	}
}

func TestFileSkip(t *testing.T) {
	dir := t.TempDir()
	data := randomFile(t, dir, "f", 100000, 11)
	s, err := source.OpenFile(filepath.Join(dir, "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	b := make([]byte, 1000)
	io.ReadFull(s, b)
	if err := s.Skip(50000); err != nil {
		t.Fatal(err)
	}
	rest := readAll(t, s)
	if !bytes.Equal(b, data[:1000]) || !bytes.Equal(rest, data[51000:]) {
		t.Fatal("content differs")
	}
	if st := s.Stats(); st.Read != 50000 || st.Skipped != 50000 {
		t.Fatalf("stats %+v", st)
	}
	if err := s.Skip(1); err != io.ErrUnexpectedEOF {
		t.Fatalf("skip past the end: %v", err)
	}
}
