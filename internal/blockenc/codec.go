// Package blockenc implements the block encoding of bundle payloads: cutting
// a payload into blocks, hashing, deduplicating and compressing them, and the
// reverse, where every block is checked against its hash before it is handed
// on.
package blockenc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"hash/crc64"
	"io"
	"os/exec"
	"strconv"
	"sync"

	"crypto/sha256"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
	"github.com/ulikunitz/xz/lzma"
)

// Compress compresses one block as a complete, independent stream: an .xz
// stream with a CRC64 check (what liblzma's easy encoder writes) or a zstd
// frame with the content size and checksum.
func Compress(kind string, level int, data []byte) ([]byte, error) {
	switch kind {
	case "xz":
		return compressXZ(level, data)
	case "zstd":
		return zstdEncoder(level).EncodeAll(data, make([]byte, 0, len(data)/2+64)), nil
	}
	return nil, fmt.Errorf("unknown compression %q", kind)
}

// compressXZCommand runs an xz program (XZ Utils) on one block: preset
// level, CRC64 check, single-threaded (-T1: one block, as liblzma's easy
// encoder writes it). The output must be one .xz stream; it is checked for
// the magic here and fully by every decoder.
func compressXZCommand(command string, level int, data []byte) ([]byte, error) {
	cmd := exec.Command(command, "-"+strconv.Itoa(level), "--format=xz", "--check=crc64", "-T1", "-c", "-q")
	cmd.Stdin = bytes.NewReader(data)
	var out, stderr bytes.Buffer
	out.Grow(len(data)/2 + 64)
	cmd.Stdout = &out
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s -%d: %w: %s", command, level, err, bytes.TrimSpace(stderr.Bytes()))
	}
	if !bytes.HasPrefix(out.Bytes(), []byte("\xfd7zXZ\x00")) {
		return nil, fmt.Errorf("%s -%d: output is not an .xz stream", command, level)
	}
	return out.Bytes(), nil
}

// xzDict are liblzma's dictionary sizes for presets 0-9.
var xzDict = [10]int{256 << 10, 1 << 20, 2 << 20, 4 << 20, 4 << 20, 8 << 20, 8 << 20, 16 << 20, 32 << 20, 64 << 20}

func compressXZ(level int, data []byte) ([]byte, error) {
	// A dictionary larger than the block buys nothing and costs the decoder
	// memory: cap it at the block size (xz needs at least 4 KiB).
	dict := xzDict[level]
	if n := max(len(data), 4096); n < dict {
		dict = n
	}
	cfg := xz.WriterConfig{DictCap: dict, CheckSum: xz.CRC64, Matcher: lzma.HashTable4}
	if level >= 7 {
		cfg.Matcher = lzma.BinaryTree
	}
	var buf bytes.Buffer
	buf.Grow(len(data)/2 + 64)
	w, err := cfg.NewWriter(&buf)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(data); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

var (
	zstdMu   sync.Mutex
	zstdEncs = map[int]*zstd.Encoder{}
	zstdDec  *zstd.Decoder
	zstdOnce sync.Once
)

// zstdEncoder returns a shared encoder; EncodeAll is safe for concurrent use.
func zstdEncoder(level int) *zstd.Encoder {
	zstdMu.Lock()
	defer zstdMu.Unlock()
	if e, ok := zstdEncs[level]; ok {
		return e
	}
	e, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(level)),
		zstd.WithEncoderCRC(true), zstd.WithEncoderConcurrency(1), zstd.WithZeroFrames(true))
	if err != nil {
		panic(err) // options are constant
	}
	zstdEncs[level] = e
	return e
}

// ErrTooLarge means a compressed block decodes to more than allowed.
var ErrTooLarge = errors.New("decompresses to more than the largest block")

// Decompress decodes one stored block, refusing to produce more than limit
// bytes, so that a hostile block cannot exhaust memory.
func Decompress(kind string, src []byte, limit int, dst []byte) ([]byte, error) {
	switch kind {
	case "xz":
		return decompressXZ(src, limit, dst)
	case "zstd":
		zstdOnce.Do(func() {
			var err error
			zstdDec, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxWindow(16<<20), zstd.WithDecoderMaxMemory(64<<20))
			if err != nil {
				panic(err)
			}
		})
		out, err := zstdDec.DecodeAll(src, dst[:0])
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		if len(out) > limit {
			return nil, ErrTooLarge
		}
		return out, nil
	}
	return nil, fmt.Errorf("unknown compression %q", kind)
}

var (
	xzMagic   = []byte{0xfd, '7', 'z', 'X', 'Z', 0}
	crc64Tab  = crc64.MakeTable(crc64.ECMA)
	errFormat = errors.New("xz: malformed stream")
)

// decompressXZ decodes a single .xz stream. It parses the container itself:
// the index at the end gives the exact decoded size before anything is
// decoded, so the LZMA2 dictionary is sized by the data, not by what the
// header asks for (liblzma's preset 6 asks for 8 MiB, which would be
// allocated for every 64 KiB block), and a hostile stream cannot make us
// allocate more than the limit. Every byte of the stream is checked.
func decompressXZ(src []byte, limit int, dst []byte) ([]byte, error) {
	if len(src) < 32 || !bytes.Equal(src[:6], xzMagic) {
		return nil, fmt.Errorf("%w: bad magic", errFormat)
	}
	flags := src[6:8]
	if flags[0] != 0 || flags[1]&0xf0 != 0 || crc32.ChecksumIEEE(flags) != binary.LittleEndian.Uint32(src[8:12]) {
		return nil, fmt.Errorf("%w: bad stream header", errFormat)
	}
	check := flags[1]
	var checkSize int
	switch check {
	case 0x00:
	case 0x01:
		checkSize = 4
	case 0x04:
		checkSize = 8
	case 0x0a:
		checkSize = 32
	default:
		return nil, fmt.Errorf("xz: unsupported check type %#x", check)
	}

	// Footer, then the index it points to.
	foot := src[len(src)-12:]
	isize := (int64(binary.LittleEndian.Uint32(foot[4:])) + 1) * 4
	if crc32.ChecksumIEEE(foot[4:10]) != binary.LittleEndian.Uint32(foot) ||
		!bytes.Equal(foot[8:10], flags) || !bytes.Equal(foot[10:], []byte("YZ")) || isize > int64(len(src)-24) {
		return nil, fmt.Errorf("%w: bad stream footer", errFormat)
	}
	idx := src[len(src)-12-int(isize) : len(src)-12]
	if idx[0] != 0 || crc32.ChecksumIEEE(idx[:len(idx)-4]) != binary.LittleEndian.Uint32(idx[len(idx)-4:]) {
		return nil, fmt.Errorf("%w: bad index", errFormat)
	}
	q := idx[1 : len(idx)-4]
	n, q, err := xzVarint(q)
	if err != nil || n > uint64(len(q)) {
		return nil, fmt.Errorf("%w: bad index", errFormat)
	}
	type record struct{ unpadded, size uint64 }
	records := make([]record, n)
	var total uint64
	for i := range records {
		if records[i].unpadded, q, err = xzVarint(q); err != nil {
			return nil, err
		}
		if records[i].size, q, err = xzVarint(q); err != nil {
			return nil, err
		}
		total += records[i].size
		if total > uint64(limit) {
			return nil, ErrTooLarge
		}
	}
	for _, c := range q {
		if c != 0 {
			return nil, fmt.Errorf("%w: index padding", errFormat)
		}
	}
	if len(q) > 3 {
		return nil, fmt.Errorf("%w: index padding", errFormat)
	}

	// The index gives the decoded size: allocate the output once.
	if uint64(cap(dst)) < total {
		dst = make([]byte, 0, total)
	}
	out := dst[:0]
	p := src[12 : len(src)-12-len(idx)]
	for _, rec := range records {
		if len(p) == 0 {
			return nil, fmt.Errorf("%w: truncated", errFormat)
		}
		hsize := (int(p[0]) + 1) * 4
		if p[0] == 0 || len(p) < hsize {
			return nil, fmt.Errorf("%w: bad block header", errFormat)
		}
		hdr := p[:hsize]
		if crc32.ChecksumIEEE(hdr[:hsize-4]) != binary.LittleEndian.Uint32(hdr[hsize-4:]) {
			return nil, fmt.Errorf("%w: block header checksum", errFormat)
		}
		bflags := hdr[1]
		if bflags&0x3c != 0 || bflags&0x03 != 0 {
			return nil, fmt.Errorf("xz: only single-filter LZMA2 blocks are supported")
		}
		h := hdr[2 : hsize-4]
		for _, present := range []bool{bflags&0x40 != 0, bflags&0x80 != 0} {
			if present {
				if _, h, err = xzVarint(h); err != nil {
					return nil, err
				}
			}
		}
		var id, psize uint64
		if id, h, err = xzVarint(h); err != nil {
			return nil, err
		}
		if psize, h, err = xzVarint(h); err != nil {
			return nil, err
		}
		if id != 0x21 || psize != 1 || len(h) < 1 || h[0] > 40 {
			return nil, fmt.Errorf("xz: only LZMA2 is supported")
		}
		for _, c := range h[1:] {
			if c != 0 {
				return nil, fmt.Errorf("%w: block header padding", errFormat)
			}
		}
		p = p[hsize:]
		br := bytes.NewReader(p)
		// The dictionary never needs to exceed the block's decoded size.
		dict := max(min(lzma2Dict(h[0]), rec.size), lzma.MinDictCap)
		r, err := lzma.Reader2Config{DictCap: int(dict)}.NewReader2(br)
		if err != nil {
			return nil, fmt.Errorf("xz: %w", err)
		}
		start := len(out)
		if out, err = readAllLimit(r, out, int(rec.size)); err != nil {
			return nil, err
		}
		consumed := len(p) - br.Len()
		if uint64(len(out)-start) != rec.size || uint64(hsize+consumed+checkSize) != rec.unpadded {
			return nil, fmt.Errorf("%w: index does not match the blocks", errFormat)
		}
		p = p[consumed:]
		for consumed%4 != 0 {
			if len(p) == 0 || p[0] != 0 {
				return nil, fmt.Errorf("%w: block padding", errFormat)
			}
			p = p[1:]
			consumed++
		}
		if len(p) < checkSize {
			return nil, fmt.Errorf("%w: truncated check", errFormat)
		}
		if !checkOK(check, out[start:], p[:checkSize]) {
			return nil, fmt.Errorf("xz: check of decompressed data failed")
		}
		p = p[checkSize:]
	}
	if len(p) != 0 {
		return nil, fmt.Errorf("%w: data between the blocks and the index", errFormat)
	}
	return out, nil
}

// lzma2Dict decodes the LZMA2 dictionary size property.
func lzma2Dict(p byte) uint64 {
	if p >= 40 {
		return 1<<32 - 1
	}
	return (2 | uint64(p&1)) << (p/2 + 11)
}

func checkOK(kind byte, data, want []byte) bool {
	switch kind {
	case 0x01:
		return crc32.ChecksumIEEE(data) == binary.LittleEndian.Uint32(want)
	case 0x04:
		return crc64.Checksum(data, crc64Tab) == binary.LittleEndian.Uint64(want)
	case 0x0a:
		s := sha256.Sum256(data)
		return bytes.Equal(s[:], want)
	}
	return true
}

func xzVarint(b []byte) (uint64, []byte, error) {
	var v uint64
	for i := 0; i < 9 && i < len(b); i++ {
		v |= uint64(b[i]&0x7f) << (7 * i)
		if b[i]&0x80 == 0 {
			if i > 0 && b[i] == 0 {
				break
			}
			return v, b[i+1:], nil
		}
	}
	return 0, nil, fmt.Errorf("%w: bad varint", errFormat)
}

// readAllLimit appends everything r produces to out, failing beyond limit.
func readAllLimit(r io.Reader, out []byte, limit int) ([]byte, error) {
	start := len(out)
	for {
		if len(out) == cap(out) {
			out = append(out, 0)[:len(out)]
		}
		n, err := r.Read(out[len(out):cap(out)])
		out = out[:len(out)+n]
		if len(out)-start > limit {
			return nil, ErrTooLarge
		}
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("xz: %w", err)
		}
	}
}
