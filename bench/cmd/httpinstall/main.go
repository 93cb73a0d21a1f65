// Command httpinstall installs a bundle from an HTTP URL into a file, the
// way `bascule update install http://…` does on a device whose running
// system slot holds OLD: the same source (range requests), the same
// install.Run, with OLD's block index offered as a local slot (adaptive
// delta) and OLD as the static delta source when its hash matches. What
// it leaves out is the device: no system.toml, boot flow or slot
// database; the target is a plain file.
//
//	go run ./bench/cmd/httpinstall URL OLD.img TARGET
//
// It prints one line of key=value pairs: bytes read from the source
// (downloaded), HTTP requests, bytes written and bytes reused from OLD.
package main

import (
	"bufio"
	"fmt"
	"os"

	"github.com/bascule-ota/bascule/internal/bundle"
	"github.com/bascule-ota/bascule/internal/hashes"
	"github.com/bascule-ota/bascule/internal/install"
	"github.com/bascule-ota/bascule/internal/slotdb"
	"github.com/bascule-ota/bascule/internal/source"
)

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: httpinstall URL OLD.img TARGET")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2], os.Args[3]); err != nil {
		fmt.Fprintln(os.Stderr, "httpinstall: bundle rejected:", err)
		os.Exit(1)
	}
}

func run(url, old, target string) error {
	src, err := source.OpenHTTP(url, source.HTTPOptions{ExpectSkips: true})
	if err != nil {
		return err
	}
	defer src.Close()
	oldHash := map[hashes.Algorithm]hashes.Digest{}
	o := install.Options{
		Policy: install.Policy{Insecure: true},
		Resolve: func(p *bundle.Payload) (install.Target, string, error) {
			if p.Entry.IsExecute {
				return nil, "", nil
			}
			t, err := install.OpenFile(target)
			return t, "system-b", err
		},
		Local: func(p *bundle.Payload, slot string) ([]install.LocalSlot, error) {
			b := p.Header.Block
			f, err := os.Open(old)
			if err != nil {
				return nil, err
			}
			defer f.Close()
			ix, err := slotdb.CreateIndex(bufio.NewReaderSize(f, 1<<20), b.Chunker, b.HashAlg)
			if err != nil {
				return nil, err
			}
			return []install.LocalSlot{{Name: "system-a", Path: old, Index: ix}}, nil
		},
		FindSource: func(inputs []hashes.Digest) (string, error) {
			for _, want := range inputs {
				h, ok := oldHash[want.Alg]
				if !ok {
					f, err := os.Open(old)
					if err != nil {
						return "", err
					}
					hh := want.Alg.New()
					_, err = bufio.NewReaderSize(f, 1<<20).WriteTo(hh)
					f.Close()
					if err != nil {
						return "", err
					}
					h = hashes.Digest{Alg: want.Alg, Sum: hh.Sum(nil)}
					oldHash[want.Alg] = h
				}
				if h.Equal(want) {
					return old, nil
				}
			}
			return "", install.NoSourceError(inputs)
		},
		Warn: func(s string) { fmt.Fprintln(os.Stderr, "httpinstall: warning:", s) },
	}
	rep, err := install.Run(src, o)
	if err != nil {
		return err
	}
	st := src.Stats()
	fmt.Printf("size=%d read=%d requests=%d retries=%d written=%d reused=%d\n",
		src.Size(), st.Read, st.Requests, st.Retries, rep.Written, rep.Reused)
	return nil
}
