package bundle

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/bascule-ota/bascule/internal/stlv"
)

// Resign writes a copy of the bundle in to out whose signatures segment is
// what update returns, given the bundle as read so far (header and current
// signatures). Nothing else changes: the header is copied verbatim, so the
// header hash and every signature stay valid, and the payloads are copied
// byte for byte without being held in memory. update returning no
// signatures removes the segment. out appears only when complete (temporary
// file, fsync, rename); out may be in itself.
func Resign(in, out string, update func(r *Reader) ([][]byte, error)) (err error) {
	f, err := os.Open(in)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file", in)
	}
	if ofi, err := os.Lstat(out); err == nil && !ofi.Mode().IsRegular() {
		// Renaming over a device or a symlink would replace it, not write
		// into it.
		return fmt.Errorf("%s exists and is not a regular file; refusing to replace it", out)
	}
	r, err := NewReader(f)
	if err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	sigs, err := update(r)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".*.tmp")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	w := bufio.NewWriterSize(tmp, 1<<20)
	if err = WriteResigned(w, f, fi.Size(), r, sigs); err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	if err = w.Flush(); err != nil {
		return err
	}
	if err = tmp.Chmod(fi.Mode().Perm()); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), out); err != nil {
		return err
	}
	if d, derr := os.Open(filepath.Dir(out)); derr == nil {
		d.Sync() // make the rename durable; best effort
		d.Close()
	}
	return nil
}

// WriteResigned writes the bundle src (size bytes, already read by r) to w
// with sigs as its signatures segment: bundle start, header verbatim, the
// new segment, any other optional atoms that sat between header and
// payloads, then everything from the payloads on, copied.
func WriteResigned(w io.Writer, src io.ReaderAt, size int64, r *Reader, sigs [][]byte) error {
	var seg []byte
	if len(sigs) > 0 {
		seg = EncodeSignatures(sigs)
		if len(seg) > MaxSignatures {
			return fmt.Errorf("signatures segment of %d bytes exceeds the limit of %d", len(seg), MaxSignatures)
		}
	}
	start := int64(stlv.HeadSize(stlv.Head{Tag: TagBundle, Kind: stlv.Start}))
	hdrEnd := start + int64(len(r.HeaderRaw))
	payloads := r.PayloadsOffset()
	if payloads < hdrEnd || payloads > size {
		return fmt.Errorf("bundle layout: payloads at offset %d, header ends at %d", payloads, hdrEnd)
	}
	// Between the header and the payloads there are only the signatures
	// segment and optional atoms; NewReader has checked that. Keep the
	// latter, in order.
	var keep [][2]int64
	s := stlv.NewReader(io.NewSectionReader(src, hdrEnd, payloads-hdrEnd))
	for {
		at := s.Offset()
		h, err := s.Head()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("between header and payloads: %w", err)
		}
		if err := s.Skip(h); err != nil {
			return fmt.Errorf("between header and payloads: %w", err)
		}
		if h.Tag != TagSignatures {
			keep = append(keep, [2]int64{hdrEnd + at, hdrEnd + s.Offset()})
		}
	}
	if _, err := w.Write(stlv.AppendHead(nil, stlv.Head{Tag: TagBundle, Kind: stlv.Start})); err != nil {
		return err
	}
	if _, err := w.Write(r.HeaderRaw); err != nil {
		return err
	}
	if _, err := w.Write(seg); err != nil {
		return err
	}
	keep = append(keep, [2]int64{payloads, size})
	for _, k := range keep {
		n, err := io.Copy(w, io.NewSectionReader(src, k[0], k[1]-k[0]))
		if err != nil {
			return err
		}
		if n != k[1]-k[0] {
			return fmt.Errorf("bundle changed while it was being copied")
		}
	}
	return nil
}
