package bundle

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/bascule-ota/bascule/internal/blockenc"
	"github.com/bascule-ota/bascule/internal/hashes"
	"github.com/bascule-ota/bascule/internal/stlv"
)

// BuildOptions tune Build.
type BuildOptions struct {
	Workers  int
	Progress func(n int64) // input bytes processed
	Warn     func(msg string)
	// XZCommand: see blockenc.Options.
	XZCommand string
}

type preparedPayload struct {
	header []byte
	data   string // file holding PAYLOAD_DATA
	size   int64
}

// InputSize is the total size of the payload files of a bundle directory,
// for progress reporting.
func InputSize(dir string, m *ParsedManifest) int64 {
	var n int64
	for _, s := range m.Specs {
		if fi, err := os.Stat(filepath.Join(dir, "payloads", s.Filename)); err == nil {
			n += fi.Size()
		}
	}
	return n
}

// Build writes the bundle for the bundle directory dir (rugix-bundle.toml
// and payloads/) to out and returns its header hash. The output appears
// only when complete: it is written to a temporary file and renamed.
func Build(dir, out string, o BuildOptions) (hashes.Digest, error) {
	m, err := LoadManifest(dir)
	if err != nil {
		return hashes.Digest{}, err
	}
	if o.Warn != nil {
		for _, w := range m.Warnings {
			o.Warn(w)
		}
	}
	return BuildManifest(dir, m, out, o)
}

// BuildManifest is Build with an already parsed manifest.
func BuildManifest(dir string, m *ParsedManifest, out string, o BuildOptions) (d hashes.Digest, err error) {
	outDir := filepath.Dir(out)
	// The output is renamed into place: never over a device node or a
	// directory (as root, "bundle dir /dev/null" would replace /dev/null).
	if fi, err := os.Stat(out); err == nil && !fi.Mode().IsRegular() {
		return d, fmt.Errorf("output %s exists and is not a regular file", out)
	}
	var temps []string
	defer func() {
		for _, t := range temps {
			os.Remove(t)
		}
	}()
	h := &Header{HasManifest: true, Manifest: m.JSON(), Incremental: m.Incremental, HashAlg: m.HashAlg}
	var prepared []preparedPayload
	needZstd := false
	for i, s := range m.Specs {
		path := filepath.Join(dir, "payloads", s.Filename)
		fi, err := os.Stat(path)
		if err != nil {
			return d, fmt.Errorf("payload %d: %w", i, err)
		}
		if !fi.Mode().IsRegular() {
			return d, fmt.Errorf("payload %d: %s is not a regular file", i, path)
		}
		in, err := os.Open(path)
		if err != nil {
			return d, fmt.Errorf("payload %d: %w", i, err)
		}
		fileHash := m.HashAlg.New()
		ph := &PayloadHeader{}
		pp := preparedPayload{data: path, size: fi.Size()}
		if b := s.Block; b != nil {
			tmp, err := os.CreateTemp(outDir, ".bascule-payload-*.tmp")
			if err != nil {
				in.Close()
				return d, fmt.Errorf("payload %d: %w", i, err)
			}
			temps = append(temps, tmp.Name())
			bw := bufio.NewWriterSize(tmp, 1<<20)
			eo := blockenc.Options{Chunker: b.Chunker, HashAlg: b.HashAlg, Dedup: b.Dedup, Compression: b.Compression,
				Level: b.Level, Workers: o.Workers, FileHash: fileHash, Progress: o.Progress, XZCommand: o.XZCommand}
			res, err := blockenc.Encode(bufio.NewReaderSize(in, 1<<20), eo, bw)
			in.Close()
			if err == nil {
				err = bw.Flush()
			}
			if cerr := tmp.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return d, fmt.Errorf("payload %d (%s): %w", i, path, err)
			}
			if res.InputSize != fi.Size() {
				return d, fmt.Errorf("payload %d: %s changed size while it was read", i, path)
			}
			bh, bs, err := res.EncodeTable(eo)
			if err != nil {
				return d, fmt.Errorf("payload %d: %w", i, err)
			}
			ph.Block = &BlockEncoding{Chunker: b.Chunker, HashAlg: b.HashAlg, Deduplicated: b.Dedup,
				Compression: b.Compression, BlockHashes: bh, BlockSizes: bs}
			if b.Compression == CompressionZstd {
				needZstd = true
			}
			pp.data, pp.size = tmp.Name(), res.DataSize
		} else {
			n, err := io.Copy(fileHash, progressReader{in, o.Progress})
			in.Close()
			if err != nil {
				return d, fmt.Errorf("payload %d: read %s: %w", i, path, err)
			}
			if n != fi.Size() {
				return d, fmt.Errorf("payload %d: %s changed size while it was read", i, path)
			}
		}
		pp.header = EncodePayloadHeader(ph)
		entry := PayloadEntry{
			Slot:       s.Delivery.Slot,
			Execute:    s.Delivery.Handler,
			IsExecute:  s.Delivery.Type == "execute",
			HeaderHash: m.HashAlg.Sum(pp.header),
			FileHash:   fileHash.Sum(nil),
			Delta:      s.Delta,
		}
		h.Payloads = append(h.Payloads, entry)
		prepared = append(prepared, pp)
	}
	if needZstd {
		h.Requires = append(h.Requires, FeatureZstd)
	}
	header := EncodeHeader(h)
	d = hashes.Digest{Alg: m.HashAlg, Sum: m.HashAlg.Sum(header)}

	f, err := os.CreateTemp(outDir, ".bascule-bundle-*.tmp")
	if err != nil {
		return d, err
	}
	temps = append(temps, f.Name())
	bw := bufio.NewWriterSize(f, 1<<20)
	parts := make([]PayloadData, len(prepared))
	for i, pp := range prepared {
		pf, err := os.Open(pp.data)
		if err != nil {
			f.Close()
			return d, err
		}
		defer pf.Close()
		parts[i] = PayloadData{Header: pp.header, Data: pf, Size: pp.size}
	}
	if err := WriteBundle(bw, header, nil, parts); err != nil {
		f.Close()
		return d, fmt.Errorf("write %s: %w", out, err)
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return d, fmt.Errorf("write %s: %w", out, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return d, fmt.Errorf("write %s: %w", out, err)
	}
	if err := f.Close(); err != nil {
		return d, fmt.Errorf("write %s: %w", out, err)
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		return d, err
	}
	if err := os.Rename(f.Name(), out); err != nil {
		return d, err
	}
	return d, nil
}

// PayloadData is one payload as it goes into a bundle file.
type PayloadData struct {
	Header []byte    // complete PAYLOAD_HEADER segment
	Data   io.Reader // exactly Size bytes of PAYLOAD_DATA
	Size   int64
}

// WriteBundle writes a complete bundle: the header segment, the optional
// signatures segment (nil for none) and the payloads.
func WriteBundle(w io.Writer, header, signatures []byte, payloads []PayloadData) error {
	var b stlv.Builder
	b.Start(TagBundle)
	b.B = append(b.B, header...)
	b.B = append(b.B, signatures...)
	b.Start(TagPayloads)
	for _, p := range payloads {
		b.Start(TagPayload)
		b.B = append(b.B, p.Header...)
		b.B = stlv.AppendHead(b.B, stlv.Head{Tag: TagPayloadData, Kind: stlv.Value, Len: uint64(p.Size)})
		if _, err := w.Write(b.B); err != nil {
			return err
		}
		n, err := io.Copy(w, io.LimitReader(p.Data, p.Size+1))
		if err != nil {
			return err
		}
		if n != p.Size {
			return fmt.Errorf("payload data is %d bytes, expected %d (file changed while the bundle was built?)", n, p.Size)
		}
		b.B = b.B[:0]
		b.End(TagPayload)
	}
	b.End(TagPayloads)
	b.End(TagBundle)
	_, err := w.Write(b.B)
	return err
}

type progressReader struct {
	r io.Reader
	f func(int64)
}

func (p progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if p.f != nil && n > 0 {
		p.f(int64(n))
	}
	return n, err
}
