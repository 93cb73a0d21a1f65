package blockenc

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash"
	"io"
	"runtime"
	"sync"

	"github.com/bascule-ota/bascule/internal/chunker"
	"github.com/bascule-ota/bascule/internal/hashes"
)

// MaxTable bounds the decompressed block hash and size tables of a payload
// header (128 MiB is 4 million SHA-256 hashes: a 256 GiB payload at
// casync-64).
const MaxTable = 128 << 20

// Table is the decoded block table of a payload, with the plan of which
// blocks are stored in the bundle and where.
type Table struct {
	Chunker     chunker.Spec
	HashAlg     hashes.Algorithm
	Dedup       bool
	Compression string

	Hashes []byte  // raw block hashes
	stored []int32 // per block: index into storedSize, or -1 for a repeat
	first  []int32 // per block: first block with the same hash
	size   []int64 // per stored block: bytes in the payload data
	offset []int64 // per stored block: offset in the payload data
	last   []int32 // per block: the last repeat of it, or -1
}

// Blocks is the number of blocks of the decoded payload.
func (t *Table) Blocks() int { return len(t.stored) }

// StoredBlocks is the number of blocks present in the payload data.
func (t *Table) StoredBlocks() int { return len(t.size) }

// Hash returns the expected hash of block k.
func (t *Table) Hash(k int) []byte {
	n := t.HashAlg.Size()
	return t.Hashes[k*n : (k+1)*n]
}

// maxStored bounds a stored block: compression may expand incompressible data
// a little.
func (t *Table) maxStored() int64 {
	m := int64(t.Chunker.MaxBlock())
	if t.Compression != "" {
		m += m/16 + 4096
	}
	return m
}

// NewTable decodes the block table of a payload header and checks it against
// the payload data length, before any data is read.
func NewTable(spec chunker.Spec, alg hashes.Algorithm, dedup bool, compression string, blockHashes, blockSizes []byte, dataLen uint64) (*Table, error) {
	t := &Table{Chunker: spec, HashAlg: alg, Dedup: dedup, Compression: compression}
	var err error
	t.Hashes = blockHashes
	if compression != "" {
		if t.Hashes, err = Decompress(compression, blockHashes, MaxTable, nil); err != nil {
			return nil, fmt.Errorf("block hashes: %w", err)
		}
		if blockSizes != nil {
			if blockSizes, err = Decompress(compression, blockSizes, MaxTable, nil); err != nil {
				return nil, fmt.Errorf("block sizes: %w", err)
			}
		}
	}
	hs := alg.Size()
	if len(t.Hashes)%hs != 0 {
		return nil, fmt.Errorf("block hashes: %d bytes is not a multiple of the %s size", len(t.Hashes), alg)
	}
	if blockSizes == nil && (spec.Kind != chunker.Fixed || compression != "") {
		return nil, fmt.Errorf("block sizes missing (needed for %s with compression %q)", spec, compression)
	}
	if blockSizes != nil && len(blockSizes)%4 != 0 {
		return nil, fmt.Errorf("block sizes: %d bytes is not a multiple of 4", len(blockSizes))
	}
	n := len(t.Hashes) / hs
	t.stored = make([]int32, n)
	t.first = make([]int32, n)
	t.last = make([]int32, n)
	firstOf := make(map[string]int32, n)
	for k := 0; k < n; k++ {
		key := string(t.Hash(k))
		f, ok := firstOf[key]
		if !ok {
			f = int32(k)
			firstOf[key] = f
		}
		t.first[k] = f
		t.last[k] = -1
		if ok && dedup {
			t.stored[k] = -1
			t.last[f] = int32(k)
			continue
		}
		t.stored[k] = int32(len(t.size))
		t.size = append(t.size, 0)
	}
	ns := len(t.size)
	var sum uint64
	if blockSizes != nil {
		if len(blockSizes)/4 != ns {
			return nil, fmt.Errorf("block sizes: %d entries for %d stored blocks", len(blockSizes)/4, ns)
		}
		for j := range t.size {
			t.size[j] = int64(binary.BigEndian.Uint32(blockSizes[4*j:]))
			if t.size[j] == 0 || t.size[j] > t.maxStored() {
				return nil, fmt.Errorf("block sizes: stored block %d has impossible size %d", j, t.size[j])
			}
			sum += uint64(t.size[j])
		}
	} else {
		fixed := uint64(spec.MaxBlock())
		if ns == 0 && dataLen != 0 || ns > 0 && (dataLen <= fixed*uint64(ns-1) || dataLen > fixed*uint64(ns)) {
			return nil, fmt.Errorf("payload data of %d bytes does not hold %d blocks of %s", dataLen, ns, spec)
		}
		for j := range t.size {
			t.size[j] = int64(min(fixed, dataLen-fixed*uint64(j)))
		}
		sum = dataLen
	}
	if sum != dataLen {
		return nil, fmt.Errorf("block sizes add up to %d bytes but the payload data has %d", sum, dataLen)
	}
	t.offset = make([]int64, ns)
	var off int64
	for j, s := range t.size {
		t.offset[j] = off
		off += s
	}
	return t, nil
}

// repeatCache bounds the memory spent on keeping blocks for their repeats.
var repeatCache = 8 << 20

// BlockError says which block failed and why.
type BlockError struct {
	Block int
	Err   error
}

func (e *BlockError) Error() string { return fmt.Sprintf("block %d: %v", e.Block, e.Err) }
func (e *BlockError) Unwrap() error { return e.Err }

// ErrHashMismatch is the reason for a block whose data does not match.
var ErrHashMismatch = fmt.Errorf("hash mismatch")

// Local gives access to blocks the device already has, found by their hash
// in the block indices of its slots (adaptive delta updates).
type Local interface {
	// Has reports whether a block with this hash may be available.
	Has(hash []byte) bool
	// Read returns the content of a block with this hash, trying each
	// place it may be; check says whether candidate bytes are right, and
	// only bytes it accepted are returned.
	Read(hash []byte, check func([]byte) bool) ([]byte, bool)
}

// DecodeOptions tune Decode.
type DecodeOptions struct {
	Workers  int
	FileHash hash.Hash     // fed every decoded byte in order
	Progress func(n int64) // called with payload data bytes consumed
	SourceAt io.ReaderAt   // the payload data, if seekable (for repeats)
	Readback io.ReaderAt   // the decoded output, if readable (for repeats)
	// Local blocks are taken instead of the stored ones (after a check of
	// their hash); their stored bytes are skipped with Skip, which is
	// required with Local. Need is told (with offsets relative to the
	// payload data) about a stored block that was expected to be local
	// but is read after all.
	Local Local
	Skip  func(n int64) error
	Need  func(off, n int64)
}

// DecodeResult is what Decode did.
type DecodeResult struct {
	Size   int64    // decoded bytes
	Sizes  []uint32 // decoded size of every block, in order
	Reused int64    // decoded bytes taken from Local
	// SkippedStored is the payload data not read because its blocks were
	// taken from Local.
	SkippedStored int64
}

// StoredRange is where stored block j lies in the payload data.
func (t *Table) StoredRange(j int) (off, size int64) { return t.offset[j], t.size[j] }

// LocalPlan lists the stored blocks (as indices for StoredRange) whose hash
// local has: the payload data that need not be read if they check out.
func (t *Table) LocalPlan(local Local) []int {
	var out []int
	for k, s := range t.stored {
		if s >= 0 && local.Has(t.Hash(k)) {
			out = append(out, int(s))
		}
	}
	return out
}

type decJob struct {
	k      int
	stored []byte
	out    []byte
	local  bool
	err    error
	done   chan struct{}
	bp     *[]byte
}

// Decode reads the payload data from src (exactly the table's stored blocks)
// and writes the decoded payload to w. Every block is hashed and compared
// before it is written; nothing unverified ever reaches w.
func Decode(src io.Reader, t *Table, w io.Writer, o DecodeOptions) (*DecodeResult, error) {
	if o.Local != nil && o.Skip == nil {
		return nil, fmt.Errorf("local blocks need a way to skip the stored ones")
	}
	workers := o.Workers
	if workers <= 0 {
		workers = runtime.NumCPU()
	}
	maxBlock := t.Chunker.MaxBlock()
	pool := sync.Pool{New: func() any { b := make([]byte, 0, t.maxStored()); return &b }}
	jobs := make(chan *decJob, workers)
	order := make(chan *decJob, 2*workers+2)
	stop := make(chan struct{})
	var readErr error
	res := &DecodeResult{Sizes: make([]uint32, len(t.stored))}
	// readLocal returns block k from Local, or nil. Only bytes this check
	// accepted are used: the provider is not trusted to have checked them.
	readLocal := func(k int) []byte {
		want := t.Hash(k)
		var accepted []byte
		check := func(b []byte) bool {
			ok := len(b) > 0 && len(b) <= maxBlock && bytes.Equal(t.HashAlg.Sum(b), want)
			if ok {
				accepted = b
			}
			return ok
		}
		if b, ok := o.Local.Read(want, check); ok && len(b) > 0 && len(b) == len(accepted) && &b[0] == &accepted[0] {
			return b
		}
		return nil
	}
	isLocal := func(k int) bool { return o.Local != nil && t.stored[k] >= 0 && o.Local.Has(t.Hash(k)) }
	batchMax := min(2*workers, 16)
	go func() {
		defer close(order)
		defer close(jobs)
		// Local blocks looked up ahead: reading and hashing them is the
		// work, so a run of them is looked up in parallel. Whether each
		// is used is still decided in order, before the source moves on.
		local := map[int][]byte{}
		for k := range t.stored {
			j := &decJob{k: k, done: make(chan struct{})}
			s := t.stored[k]
			if isLocal(k) {
				if _, looked := local[k]; !looked {
					batch := []int{k}
					for k2 := k + 1; k2 < len(t.stored) && len(batch) < batchMax; k2++ {
						if t.stored[k2] < 0 {
							continue
						}
						if !isLocal(k2) {
							break
						}
						batch = append(batch, k2)
					}
					results := make([][]byte, len(batch))
					var lwg sync.WaitGroup
					for i, kk := range batch {
						lwg.Add(1)
						go func() {
							defer lwg.Done()
							results[i] = readLocal(kk)
						}()
					}
					lwg.Wait()
					for i, kk := range batch {
						local[kk] = results[i]
					}
				}
				b := local[k]
				delete(local, k)
				if b != nil {
					if err := o.Skip(t.size[s]); err != nil {
						readErr = &BlockError{Block: k, Err: fmt.Errorf("skip: %w", err)}
						return
					}
					j.out, j.local = b, true
					res.SkippedStored += t.size[s]
					close(j.done)
					select {
					case order <- j:
					case <-stop:
						return
					}
					continue
				}
				if o.Need != nil {
					o.Need(t.offset[s], t.size[s])
				}
			}
			if s >= 0 {
				j.bp = pool.Get().(*[]byte)
				j.stored = (*j.bp)[:t.size[s]]
				if _, err := io.ReadFull(src, j.stored); err != nil {
					if err == io.EOF {
						err = io.ErrUnexpectedEOF
					}
					readErr = &BlockError{Block: k, Err: fmt.Errorf("read: %w", err)}
					return
				}
			} else {
				close(j.done)
			}
			select {
			case order <- j:
			case <-stop:
				return
			}
			if j.stored != nil {
				jobs <- j
			}
		}
	}()
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				out := j.stored
				if t.Compression != "" {
					out, j.err = Decompress(t.Compression, j.stored, maxBlock, nil)
				} else if len(out) > maxBlock {
					j.err = ErrTooLarge
				}
				if j.err == nil && !bytes.Equal(t.HashAlg.Sum(out), t.Hash(j.k)) {
					j.err = ErrHashMismatch
				}
				j.out = out
				close(j.done)
			}
		}()
	}

	offsets := make([]int64, len(t.stored)) // decoded offset of each block
	lengths := make([]int32, len(t.stored))
	// Blocks that repeat later are kept (verified, in memory) until their
	// last repeat, within a budget: repeats, mostly runs of zeros, then cost
	// neither a read back nor a second hash.
	cache := map[int32][]byte{}
	cached := 0
	var err error
	var buf []byte
	for j := range order {
		<-j.done
		if err == nil {
			err = j.err
			out := j.out
			if err == nil && t.stored[j.k] < 0 {
				f := t.first[j.k]
				if c, ok := cache[f]; ok {
					out = c
					if t.last[f] == int32(j.k) {
						delete(cache, f)
						cached -= len(c)
					}
				} else {
					out, err = t.repeat(j.k, offsets, lengths, &buf, o)
				}
			} else if err == nil && t.last[j.k] >= 0 && cached+len(out) <= repeatCache {
				cache[int32(j.k)] = append([]byte(nil), out...)
				cached += len(out)
			}
			if err == nil {
				offsets[j.k], lengths[j.k] = res.Size, int32(len(out))
				res.Sizes[j.k] = uint32(len(out))
				if j.local {
					res.Reused += int64(len(out))
				}
				if _, werr := w.Write(out); werr != nil {
					err = fmt.Errorf("write: %w", werr)
				}
				if o.FileHash != nil {
					o.FileHash.Write(out)
				}
				res.Size += int64(len(out))
				if s := t.stored[j.k]; o.Progress != nil && s >= 0 {
					o.Progress(t.size[s])
				}
			}
			if err != nil {
				if _, ok := err.(*BlockError); !ok {
					err = &BlockError{Block: j.k, Err: err}
				}
				close(stop)
			}
		}
		if j.bp != nil {
			pool.Put(j.bp)
		}
	}
	wg.Wait()
	if err != nil {
		return nil, err
	}
	if readErr != nil {
		return nil, readErr
	}
	return res, nil
}

// repeat produces block k, a repeat of an earlier block, from the output
// already written or from the bundle, and checks it again: the output may be
// a device that lies.
func (t *Table) repeat(k int, offsets []int64, lengths []int32, buf *[]byte, o DecodeOptions) ([]byte, error) {
	f := t.first[k]
	var out []byte
	switch {
	case o.Readback != nil:
		*buf = append((*buf)[:0], make([]byte, lengths[f])...)
		if _, err := o.Readback.ReadAt(*buf, offsets[f]); err != nil {
			return nil, fmt.Errorf("read back block %d: %w", f, err)
		}
		out = *buf
	case o.SourceAt != nil:
		s := t.stored[f]
		stored := make([]byte, t.size[s])
		if _, err := o.SourceAt.ReadAt(stored, t.offset[s]); err != nil {
			return nil, fmt.Errorf("re-read block %d: %w", f, err)
		}
		out = stored
		if t.Compression != "" {
			var err error
			if out, err = Decompress(t.Compression, stored, t.Chunker.MaxBlock(), nil); err != nil {
				return nil, err
			}
		}
	default:
		return nil, fmt.Errorf("repeats block %d, but neither the bundle nor the output can be read back", f)
	}
	if !bytes.Equal(t.HashAlg.Sum(out), t.Hash(k)) {
		return nil, ErrHashMismatch
	}
	return out, nil
}
