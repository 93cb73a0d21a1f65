package blockenc

import (
	"encoding/binary"
	"fmt"
	"hash"
	"io"
	"runtime"
	"sync"

	"github.com/bascule-ota/bascule/internal/chunker"
	"github.com/bascule-ota/bascule/internal/hashes"
)

// Options choose how a payload is encoded.
type Options struct {
	Chunker     chunker.Spec
	HashAlg     hashes.Algorithm
	Dedup       bool
	Compression string // "", "xz" or "zstd"
	Level       int
	// XZCommand, if set, is an xz program (XZ Utils) that makes the xz
	// streams instead of the built-in encoder: liblzma packs about 9%
	// better, and its streams are the bytes rugix-bundler (liblzma's easy
	// encoder) and casync write. The device side is the same either way.
	XZCommand string
	Workers   int // 0 means one per CPU
	// FileHash, if set, is fed the whole input in order (the payload's file
	// hash uses the bundle's algorithm, which may differ from HashAlg).
	FileHash hash.Hash
	// Progress, if set, is called with the number of input bytes consumed.
	Progress func(n int64)
}

// Result describes an encoded payload.
type Result struct {
	Hashes      []byte   // raw block hashes, one per block, in order
	StoredSizes []uint32 // encoded size of each stored block
	Blocks      int
	InputSize   int64
	DataSize    int64 // bytes written to w
}

// EncodeTable returns the BLOCK_HASHES and BLOCK_SIZES values for the header.
// Sizes are present exactly when the chunker is not fixed or compression is
// on, as rugix-bundler writes them; with compression both are compressed.
func (r *Result) EncodeTable(o Options) (blockHashes, blockSizes []byte, err error) {
	var sizes []byte
	if o.Chunker.Kind != chunker.Fixed || o.Compression != "" {
		sizes = make([]byte, 0, 4*len(r.StoredSizes))
		for _, s := range r.StoredSizes {
			sizes = binary.BigEndian.AppendUint32(sizes, s)
		}
	}
	blockHashes = r.Hashes
	if o.Compression != "" {
		level := o.Level
		if blockHashes, err = o.compress(level, r.Hashes); err != nil {
			return nil, nil, err
		}
		if sizes, err = o.compress(level, sizes); err != nil {
			return nil, nil, err
		}
	}
	return blockHashes, sizes, nil
}

// compress compresses one block or table as o says.
func (o *Options) compress(level int, b []byte) ([]byte, error) {
	if o.Compression == "xz" && o.XZCommand != "" {
		return compressXZCommand(o.XZCommand, level, b)
	}
	return Compress(o.Compression, level, b)
}

type encJob struct {
	idx    int
	data   []byte
	hash   []byte
	out    []byte // compressed data; nil if not compressed
	dup    bool   // an earlier block has the same hash: not compressed
	err    error
	done   chan struct{}
	bufPtr *[]byte
}

// Encode cuts r into blocks and writes the stored blocks to w, in order.
// Hashing and compression run on all cores; the output does not depend on
// the number of workers.
func Encode(r io.Reader, o Options, w io.Writer) (*Result, error) {
	workers := o.Workers
	if workers <= 0 {
		workers = runtime.NumCPU()
	}
	maxBlock := o.Chunker.MaxBlock()
	pool := sync.Pool{New: func() any { b := make([]byte, 0, maxBlock); return &b }}

	jobs := make(chan *encJob, workers)
	order := make(chan *encJob, 2*workers+2)
	stop := make(chan struct{})
	var readErr error

	// Claims let a worker skip compressing a block that an earlier block
	// already provides. The earliest block with a hash never skips.
	var claimMu sync.Mutex
	claims := map[string]int{}

	go func() { // producer: chunking is sequential by nature
		defer close(order)
		defer close(jobs)
		c := o.Chunker.New(r)
		for idx := 0; ; idx++ {
			blk, err := c.Next()
			if err == io.EOF {
				return
			}
			if err != nil {
				readErr = err
				return
			}
			if o.FileHash != nil {
				o.FileHash.Write(blk)
			}
			bp := pool.Get().(*[]byte)
			j := &encJob{idx: idx, data: append((*bp)[:0], blk...), bufPtr: bp, done: make(chan struct{})}
			select {
			case order <- j:
			case <-stop:
				return
			}
			jobs <- j
		}
	}()

	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				j.hash = o.HashAlg.Sum(j.data)
				if o.Dedup {
					claimMu.Lock()
					k := string(j.hash)
					if first, ok := claims[k]; ok && first < j.idx {
						j.dup = true
					} else {
						claims[k] = j.idx
					}
					claimMu.Unlock()
				}
				if o.Compression != "" && !j.dup {
					j.out, j.err = o.compress(o.Level, j.data)
				}
				close(j.done)
			}
		}()
	}

	res := &Result{}
	seen := map[string]bool{}
	var werr error
	for j := range order {
		<-j.done
		if werr == nil {
			werr = j.err
		}
		if werr == nil {
			res.Blocks++
			res.InputSize += int64(len(j.data))
			res.Hashes = append(res.Hashes, j.hash...)
			store := true
			if o.Dedup {
				k := string(j.hash)
				store = !seen[k]
				seen[k] = true
			}
			if store {
				out := j.data
				if o.Compression != "" {
					out = j.out
					if out == nil { // cannot happen (see claims), but stay correct
						out, werr = o.compress(o.Level, j.data)
					}
				}
				if werr == nil {
					_, werr = w.Write(out)
					res.StoredSizes = append(res.StoredSizes, uint32(len(out)))
					res.DataSize += int64(len(out))
				}
			}
			if o.Progress != nil {
				o.Progress(int64(len(j.data)))
			}
			if werr != nil {
				close(stop)
			}
		}
		pool.Put(j.bufPtr)
	}
	wg.Wait()
	if werr != nil {
		return nil, werr
	}
	if readErr != nil {
		return nil, fmt.Errorf("read payload: %w", readErr)
	}
	return res, nil
}
