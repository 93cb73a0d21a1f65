// Command deltaplan computes what an adaptive delta install of a bundle
// downloads on a device that has an old image in a slot: every byte of
// the bundle except the stored blocks of slot payloads whose hash is found
// in the old image's block index (same chunker and hash algorithm as the
// payload's block encoding, as Rugix's local block provider matches them).
// This is the lower bound of what an HTTP install with range requests
// fetches; a real client also pays for request granularity.
//
//	go run ./bench/cmd/deltaplan OLD.img BUNDLE.rugixb
//
// It prints one line of key=value pairs.
package main

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"os"

	"github.com/bascule-ota/bascule/internal/blockenc"
	"github.com/bascule-ota/bascule/internal/bundle"
	"github.com/bascule-ota/bascule/internal/slotdb"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: deltaplan OLD.img BUNDLE.rugixb")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, "deltaplan:", err)
		os.Exit(1)
	}
}

func run(oldPath, bundlePath string) error {
	f, err := os.Open(bundlePath)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	r, err := bundle.NewReader(f)
	if err != nil {
		return err
	}
	indices := map[string]map[string]bool{} // chunker_alg -> block hashes of the old image
	var blocks, stored, local int
	var storedBytes, localBytes int64
	for {
		p, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		b := p.Header.Block
		if b == nil || p.Entry.IsExecute {
			if err := p.Skip(); err != nil {
				return err
			}
			continue
		}
		key := slotdb.IndexFileName(b.Chunker, b.HashAlg)
		have, ok := indices[key]
		if !ok {
			of, err := os.Open(oldPath)
			if err != nil {
				return err
			}
			ix, err := slotdb.CreateIndex(bufio.NewReaderSize(of, 1<<20), b.Chunker, b.HashAlg)
			of.Close()
			if err != nil {
				return err
			}
			have = map[string]bool{}
			for i := 0; i < ix.Len(); i++ {
				have[string(ix.Hash(i))] = true
			}
			indices[key] = have
		}
		sizes := b.BlockSizes
		if sizes != nil && b.Compression != "" {
			if sizes, err = blockenc.Decompress(b.Compression, sizes, blockenc.MaxTable, nil); err != nil {
				return err
			}
		}
		t := p.Table
		seen := map[string]bool{}
		s := 0 // stored block number
		for k := 0; k < t.Blocks(); k++ {
			h := string(t.Hash(k))
			if seen[h] && t.Dedup {
				continue
			}
			seen[h] = true
			var size int64
			if sizes != nil {
				size = int64(binary.BigEndian.Uint32(sizes[4*s:]))
			} else {
				size = min(int64(t.Chunker.MaxBlock()), int64(p.DataLen)-int64(s)*int64(t.Chunker.MaxBlock()))
			}
			s++
			storedBytes += size
			if have[h] {
				local++
				localBytes += size
			}
		}
		blocks += t.Blocks()
		stored += s
		if err := p.Skip(); err != nil {
			return err
		}
	}
	fmt.Printf("bundle=%d blocks=%d stored=%d stored_bytes=%d local_blocks=%d local_bytes=%d download=%d\n",
		fi.Size(), blocks, stored, storedBytes, local, localBytes, fi.Size()-localBytes)
	return nil
}
