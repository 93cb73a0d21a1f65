package source

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// HTTPOptions configure an HTTP source. Zero values take the defaults.
type HTTPOptions struct {
	// CACert is a PEM file or a directory of PEM files whose certificates
	// replace the system's CA store for HTTPS.
	CACert    string
	UserAgent string
	// ConnectTimeout bounds connecting and the TLS handshake (default 30 s).
	ConnectTimeout time.Duration
	// IdleTimeout bounds how long a request may wait for the response
	// headers or for the next byte of the body (default 60 s): a stalled
	// connection is dropped and the download resumed.
	IdleTimeout time.Duration
	// MaxRetries is how many attempts in a row may fail without a single
	// byte of progress before the download gives up (default 5; negative:
	// no retries). Progress resets the count.
	MaxRetries int
	// InitialBackoff (default 1 s) doubles after each failure, up to
	// MaxBackoff (default 30 s).
	InitialBackoff, MaxBackoff time.Duration
	// DisableRanges never sends range requests: one GET, as a plain
	// stream.
	DisableRanges bool
	// MinGap: planned skips shorter than this are downloaded and thrown
	// away rather than splitting a request (default 16 KiB: about what a
	// request costs in headers and a round trip on a slow link, while
	// bytes on metered links are what delta updates are for).
	MinGap int64
	// ExpectSkips says that plans with skips will come (the device has
	// block indices): until the first plan, requests start small (MinGap)
	// and double, rather than asking for the whole file, because a
	// response dropped for a skip wastes what was in flight and what was
	// read ahead. Without it the first request asks for everything.
	ExpectSkips bool
	Warn        func(string)
}

func (o *HTTPOptions) defaults() {
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 30 * time.Second
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 60 * time.Second
	}
	if o.MaxRetries == 0 {
		o.MaxRetries = 5
	} else if o.MaxRetries < 0 {
		o.MaxRetries = 0
	}
	if o.InitialBackoff <= 0 {
		o.InitialBackoff = time.Second
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 30 * time.Second
	}
	if o.MaxBackoff < o.InitialBackoff {
		o.MaxBackoff = o.InitialBackoff
	}
	if o.MinGap <= 0 {
		o.MinGap = 16 << 10
	}
	if o.UserAgent == "" {
		o.UserAgent = "bascule"
	}
	if o.Warn == nil {
		o.Warn = func(string) {}
	}
}

// ErrChanged means the bundle on the server changed during the download.
var ErrChanged = errors.New("the bundle on the server changed during the download")

// HTTP is a bundle read from an HTTP(S) URL. With range support on the
// server it downloads only what is not skipped, in as few requests as the
// plan allows, and resumes a broken download at the exact byte where it
// stopped, checking with If-Range that the file is still the same. Without
// range support it reads one response and, after a cut, reads the file
// again from the start, discarding (and checking) what it had already.
type HTTP struct {
	url    string
	o      HTTPOptions
	client *http.Client

	size    int64 // -1 if unknown
	ranges  bool  // the server answers range requests
	etag    string
	lastMod string

	pos     int64 // next byte Read returns
	skips   plan
	horizon int64 // where the plan ends, -1 without one

	ctx     context.Context
	body    io.ReadCloser
	bodyEnd int64 // end of the current response's range (exclusive)
	high    int64 // the furthest position reached so far
	cancel  context.CancelCauseFunc
	timer   *time.Timer

	// Without ranges: a checksum of everything returned so far, to check
	// what is read again after a cut.
	crc hash.Hash32

	failures int
	stats    Stats
}

var errStalled = errors.New("stalled")

// permanentError is a failure that retrying cannot fix.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// retryAfterError asks for a given wait before the next attempt.
type retryAfterError struct {
	err   error
	after time.Duration
}

func (e *retryAfterError) Error() string { return e.err.Error() }
func (e *retryAfterError) Unwrap() error { return e.err }

// NewClient returns the HTTP client the source uses: the proxy from the
// environment, the CA store (or o.CACert), the connect timeout, and no
// transparent decompression (it would break range requests).
func NewClient(o HTTPOptions) (*http.Client, error) {
	o.defaults()
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.CACert != "" {
		pool, err := loadCAs(o.CACert)
		if err != nil {
			return nil, err
		}
		tlsConf.RootCAs = pool
	}
	dialer := &net.Dialer{Timeout: o.ConnectTimeout, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		TLSClientConfig:       tlsConf,
		TLSHandshakeTimeout:   o.ConnectTimeout,
		ResponseHeaderTimeout: o.IdleTimeout,
		DisableCompression:    true,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       90 * time.Second,
	}
	return &http.Client{Transport: tr}, nil
}

// loadCAs reads the certificates of a PEM file or of every file in a
// directory.
func loadCAs(path string) (*x509.CertPool, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("--ca-cert: %w", err)
	}
	files := []string{path}
	if fi.IsDir() {
		entries, err := os.ReadDir(path)
		if err != nil {
			return nil, fmt.Errorf("--ca-cert: %w", err)
		}
		files = nil
		for _, e := range entries {
			if !e.IsDir() {
				files = append(files, filepath.Join(path, e.Name()))
			}
		}
	}
	pool := x509.NewCertPool()
	found := false
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("--ca-cert: %w", err)
		}
		if pool.AppendCertsFromPEM(b) {
			found = true
		}
	}
	if !found {
		return nil, fmt.Errorf("--ca-cert %s: no PEM certificates found", path)
	}
	return pool, nil
}

// OpenHTTP starts downloading url. The first request asks for the whole
// file as a range: a 206 answer tells that the server supports ranges and
// gives the size and validators; a 200 answer means no range support.
func OpenHTTP(url string, o HTTPOptions) (*HTTP, error) {
	o.defaults()
	client, err := NewClient(o)
	if err != nil {
		return nil, err
	}
	return OpenHTTPClient(url, client, o)
}

// OpenHTTPClient is OpenHTTP with a given client.
func OpenHTTPClient(url string, client *http.Client, o HTTPOptions) (*HTTP, error) {
	o.defaults()
	s := &HTTP{url: url, o: o, client: client, size: -1, ranges: !o.DisableRanges, horizon: -1}
	if o.ExpectSkips {
		s.horizon = 0
	}
	for {
		err := s.open(true)
		if err == nil {
			return s, nil
		}
		if err := s.failed(err); err != nil {
			return nil, err
		}
	}
}

func (s *HTTP) Offset() int64 { return s.pos }
func (s *HTTP) Size() int64   { return s.size }
func (s *HTTP) Stats() Stats  { return s.stats }

// RangeSupport reports whether the server answers range requests.
func (s *HTTP) RangeSupport() bool { return s.ranges }

func (s *HTTP) Close() error {
	s.closeBody()
	return nil
}

func (s *HTTP) Plan(skips []Range, horizon int64) {
	if s.ranges {
		s.skips, s.horizon = normalize(skips), horizon
	}
}

func (s *HTTP) Need(r Range) {
	s.skips = s.skips.need(r)
}

// failed records a failed attempt and waits before the next one, or
// returns the error that ends the download.
func (s *HTTP) failed(err error) error {
	s.closeBody()
	var perm *permanentError
	if errors.As(err, &perm) {
		return err
	}
	s.failures++
	if s.failures > s.o.MaxRetries {
		return fmt.Errorf("GET %s: giving up after %d attempts without progress: %w", s.url, s.failures, err)
	}
	wait := s.o.InitialBackoff
	for i := 1; i < s.failures && wait < s.o.MaxBackoff; i++ {
		wait *= 2
	}
	var ra *retryAfterError
	if errors.As(err, &ra) && ra.after > wait {
		wait = ra.after
	}
	wait = min(wait, s.o.MaxBackoff)
	s.o.Warn(fmt.Sprintf("GET %s at byte %d: %v; retrying in %s (%d of %d)", s.url, s.pos, err, wait, s.failures, s.o.MaxRetries))
	s.stats.Retries++
	time.Sleep(wait)
	return nil
}

// open sends the request for the bytes from s.pos on.
func (s *HTTP) open(first bool) error {
	ctx, cancel := context.WithCancelCause(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		cancel(nil)
		return &permanentError{fmt.Errorf("GET %s: %w", s.url, err)}
	}
	req.Header.Set("User-Agent", s.o.UserAgent)
	end := int64(-1) // exclusive end asked for, -1: to the end of the file
	if s.ranges {
		if first && s.horizon == 0 {
			end = s.o.MinGap
		} else if !first {
			end = s.skips.runEnd(s.pos, s.size, s.o.MinGap)
			// Beyond the plan lies what is not known yet (the next
			// payload's header, then its plan): ask for it in steps that
			// start small and double.
			if s.horizon >= 0 && end > s.horizon {
				end = min(end, max(s.horizon, s.pos)+max(s.o.MinGap, s.pos-s.horizon))
			}
			if end <= s.pos {
				end = s.pos + s.o.MinGap
			}
			if end >= s.size {
				end = -1
			}
		}
		if end < 0 {
			req.Header.Set("Range", fmt.Sprintf("bytes=%d-", s.pos))
		} else {
			req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", s.pos, end-1))
		}
		if ir := s.ifRange(); ir != "" {
			req.Header.Set("If-Range", ir)
		}
	}
	timer := time.AfterFunc(s.o.IdleTimeout, func() { cancel(errStalled) })
	s.stats.Requests++
	resp, err := s.client.Do(req)
	timer.Stop()
	if err != nil {
		cancel(nil)
		if context.Cause(ctx) == errStalled {
			return fmt.Errorf("no response headers within %s", s.o.IdleTimeout)
		}
		return classify(err)
	}
	fail := func(err error) error {
		resp.Body.Close()
		cancel(nil)
		return err
	}
	switch {
	case resp.StatusCode == http.StatusPartialContent && s.ranges:
		cr, err := ParseContentRange(resp.Header.Get("Content-Range"))
		if err != nil {
			return fail(&permanentError{fmt.Errorf("GET %s: %w", s.url, err)})
		}
		if first {
			if cr.First != 0 || cr.Total < 0 || (end >= 0 && cr.Last+1 > end) {
				return fail(&permanentError{fmt.Errorf("GET %s: answered %s with Content-Range %q", s.url, req.Header.Get("Range"), resp.Header.Get("Content-Range"))})
			}
			s.size = cr.Total
			s.etag, s.lastMod = resp.Header.Get("ETag"), resp.Header.Get("Last-Modified")
		} else {
			if cr.First != s.pos || cr.Total != s.size || (end >= 0 && cr.Last+1 > end) {
				return fail(&permanentError{fmt.Errorf("GET %s: asked for %s, got Content-Range %q: %w", s.url, req.Header.Get("Range"), resp.Header.Get("Content-Range"), ErrChanged)})
			}
			if err := s.sameValidators(resp); err != nil {
				return fail(err)
			}
		}
		s.bodyEnd = cr.Last + 1
	case resp.StatusCode == http.StatusOK:
		if first {
			s.ranges = false
			s.size = resp.ContentLength
			s.etag, s.lastMod = resp.Header.Get("ETag"), resp.Header.Get("Last-Modified")
			s.crc = crc32.NewIEEE()
		} else {
			// If-Range did not match (the file changed), or the server
			// stopped honouring ranges: either way the response is the
			// whole file, which is only of use if it is the same file.
			if err := s.sameValidators(resp); err != nil {
				return fail(err)
			}
			if s.size >= 0 && resp.ContentLength >= 0 && resp.ContentLength != s.size {
				return fail(&permanentError{fmt.Errorf("GET %s: size is now %d bytes, was %d: %w", s.url, resp.ContentLength, s.size, ErrChanged)})
			}
			if s.ranges && s.etag == "" && s.lastMod == "" {
				return fail(&permanentError{fmt.Errorf("GET %s: the server ignored a range request: %w", s.url, ErrChanged)})
			}
		}
		s.bodyEnd = s.size
		if s.bodyEnd < 0 {
			s.bodyEnd = 1<<63 - 1
		}
		if s.pos > 0 {
			s.setBody(ctx, resp.Body, cancel)
			return s.reread()
		}
	case resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		err := fmt.Errorf("server answered %s", resp.Status)
		if ra := retryAfter(resp.Header.Get("Retry-After")); ra > 0 {
			return fail(&retryAfterError{err, ra})
		}
		return fail(err)
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable:
		return fail(&permanentError{fmt.Errorf("GET %s: %s for %s (file size %d): %w", s.url, resp.Status, req.Header.Get("Range"), s.size, ErrChanged)})
	default:
		return fail(&permanentError{fmt.Errorf("GET %s: %s", s.url, resp.Status)})
	}
	s.setBody(ctx, resp.Body, cancel)
	return nil
}

func (s *HTTP) setBody(ctx context.Context, b io.ReadCloser, cancel context.CancelCauseFunc) {
	s.ctx, s.body, s.cancel = ctx, b, cancel
	s.timer = time.AfterFunc(s.o.IdleTimeout, func() { cancel(errStalled) })
	s.timer.Stop()
}

// reread reads the file from the start up to s.pos again, after a cut
// without range support, and checks that it is what was read before.
func (s *HTTP) reread() error {
	h := crc32.NewIEEE()
	buf := make([]byte, 64<<10)
	var at int64
	for at < s.pos {
		n, err := s.readBody(buf[:min(int64(len(buf)), s.pos-at)])
		h.Write(buf[:n])
		at += int64(n)
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	if s.crc != nil && h.Sum32() != s.crc.Sum32() {
		return &permanentError{fmt.Errorf("GET %s: the first %d bytes differ from the first download: %w", s.url, s.pos, ErrChanged)}
	}
	return nil
}

// ifRange is the validator for If-Range: a strong ETag, else the
// Last-Modified date.
func (s *HTTP) ifRange() string {
	if s.etag != "" && !strings.HasPrefix(s.etag, "W/") {
		return s.etag
	}
	return s.lastMod
}

func (s *HTTP) sameValidators(resp *http.Response) error {
	if e := resp.Header.Get("ETag"); s.etag != "" && e != s.etag {
		return &permanentError{fmt.Errorf("GET %s: ETag is now %s, was %s: %w", s.url, e, s.etag, ErrChanged)}
	}
	if m := resp.Header.Get("Last-Modified"); s.lastMod != "" && m != s.lastMod {
		return &permanentError{fmt.Errorf("GET %s: Last-Modified is now %q, was %q: %w", s.url, m, s.lastMod, ErrChanged)}
	}
	return nil
}

func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil && n > 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return time.Until(t)
	}
	return 0
}

// classify marks errors that retrying cannot fix as permanent: bad URLs,
// certificate problems.
func classify(err error) error {
	var (
		unknownCA *x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
		verify    *tls.CertificateVerificationError
	)
	if errors.As(err, &unknownCA) || errors.As(err, &hostname) || errors.As(err, &invalid) || errors.As(err, &verify) {
		return &permanentError{err}
	}
	if strings.Contains(err.Error(), "unsupported protocol scheme") {
		return &permanentError{err}
	}
	return err
}

func (s *HTTP) closeBody() {
	if s.body == nil {
		return
	}
	s.timer.Stop()
	s.body.Close()
	s.cancel(nil)
	s.body = nil
}

// readBody reads from the current response with the idle timeout running.
func (s *HTTP) readBody(p []byte) (int, error) {
	s.timer.Reset(s.o.IdleTimeout)
	n, err := s.body.Read(p)
	s.timer.Stop()
	s.stats.Read += int64(n)
	if err != nil && err != io.EOF && context.Cause(s.ctx) == errStalled {
		err = fmt.Errorf("no data for %s", s.o.IdleTimeout)
	}
	return n, err
}

// Read returns the next bytes, reconnecting and resuming as needed.
func (s *HTTP) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if s.size >= 0 && s.pos >= s.size {
			s.closeBody()
			return 0, io.EOF
		}
		if s.body == nil {
			if err := s.open(false); err != nil {
				if err := s.failed(err); err != nil {
					return 0, err
				}
				continue
			}
		}
		q := p
		if rest := s.bodyEnd - s.pos; int64(len(q)) > rest {
			q = q[:rest]
		}
		n, err := s.readBody(q)
		if s.crc != nil {
			s.crc.Write(q[:n])
		}
		s.pos += int64(n)
		if s.pos > s.high {
			// Progress: the retry budget starts again.
			s.high, s.failures = s.pos, 0
		}
		if s.pos >= s.bodyEnd {
			// Read to the end of the response, so that the connection can
			// be used again.
			if err == nil {
				var b [1]byte
				m, _ := s.body.Read(b[:])
				s.stats.Read += int64(m)
			}
			s.closeBody()
			err = nil
		}
		if err == io.EOF {
			if s.size < 0 && s.crc != nil {
				// A stream of unknown length ends where the server ends it.
				s.size = s.pos
				s.closeBody()
				if n > 0 {
					return n, nil
				}
				return 0, io.EOF
			}
			err = fmt.Errorf("connection closed at byte %d of %d: %w", s.pos, s.size, io.ErrUnexpectedEOF)
		}
		if err != nil {
			if ferr := s.failed(err); ferr != nil {
				if n > 0 {
					return n, nil
				}
				return 0, ferr
			}
		}
		if n > 0 {
			return n, nil
		}
	}
}

// Skip passes over n bytes: short gaps inside the current response are read
// and thrown away, longer ones end the response, and the next Read asks
// for the bytes after the gap.
func (s *HTTP) Skip(n int64) error {
	if n < 0 {
		return fmt.Errorf("skip %d bytes: negative", n)
	}
	target := s.pos + n
	if s.size >= 0 && target > s.size {
		return io.ErrUnexpectedEOF
	}
	// The gap is the whole planned skip this one is part of: skips come
	// block by block, but a run of them is one gap.
	gapEnd := target
	if r, ok := s.skips.containing(s.pos); ok && r.End() > gapEnd {
		gapEnd = r.End()
	}
	if !s.ranges || (s.body != nil && gapEnd <= s.bodyEnd && gapEnd-s.pos <= s.o.MinGap) {
		buf := make([]byte, min(n, 64<<10))
		for s.pos < target {
			if _, err := s.Read(buf[:min(int64(len(buf)), target-s.pos)]); err != nil {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return err
			}
		}
		return nil
	}
	// A response that goes on past the gap is dropped (and with it, in
	// HTTP/1.1, its connection): the gap is worth more than a reconnect.
	s.closeBody()
	s.pos = target
	if s.pos > s.high {
		s.high = s.pos
	}
	s.stats.Skipped += n
	return nil
}
