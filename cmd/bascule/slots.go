package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/bascule-ota/bascule/internal/bootflow"
	"github.com/bascule-ota/bascule/internal/chunker"
	"github.com/bascule-ota/bascule/internal/hashes"
	"github.com/bascule-ota/bascule/internal/system"
)

// openSlotData opens what a block or file slot holds.
func (d *device) openSlotData(name string) (*system.Slot, *os.File, error) {
	slot, err := d.sys.Slot(name)
	if err != nil {
		return nil, nil, err
	}
	if slot.Type == system.SlotCustom {
		return nil, nil, fmt.Errorf("slot %s is a custom slot: its content cannot be read", name)
	}
	path, err := d.sys.SlotDevice(slot)
	if err != nil {
		return nil, nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("slot %s: %w", name, err)
	}
	return slot, f, nil
}

func cmdSlotsCreateIndex(args []string) error {
	fs := flag.NewFlagSet("slots create-index", flag.ContinueOnError)
	pos, err := tool.Parse("slots create-index", fs, args, 3, 3)
	if err != nil {
		return err
	}
	spec, err := chunker.Parse(pos[1])
	if err != nil {
		return err
	}
	alg, err := hashes.Parse(pos[2])
	if err != nil {
		return err
	}
	d, err := openDevice()
	if err != nil {
		return err
	}
	_, f, err := d.openSlotData(pos[0])
	if err != nil {
		return err
	}
	defer f.Close()
	var r io.Reader = bufio.NewReaderSize(f, 1<<20)
	// An immutable slot's content is as long as what was installed; the
	// device behind it may be larger.
	if st, err := d.db.Load(pos[0]); err == nil && st != nil && st.Size != nil {
		r = io.LimitReader(r, int64(*st.Size))
	}
	path, err := d.db.AddIndex(pos[0], r, spec, alg)
	if err != nil {
		return fmt.Errorf("create index of slot %s: %w", pos[0], err)
	}
	fmt.Fprintf(os.Stderr, "Created %s\n", path)
	return nil
}

func cmdSlotsInspect(args []string) error {
	fs := flag.NewFlagSet("slots inspect", flag.ContinueOnError)
	pos, err := tool.Parse("slots inspect", fs, args, 1, 1)
	if err != nil {
		return err
	}
	d, err := openDevice()
	if err != nil {
		return err
	}
	if _, err := d.sys.Slot(pos[0]); err != nil {
		return err
	}
	st, err := d.db.Load(pos[0])
	if err != nil {
		return err
	}
	if st != nil {
		for _, h := range st.Hashes {
			fmt.Printf("hash: %s\n", h)
		}
		if st.Size != nil {
			fmt.Printf("size: %d\n", *st.Size)
		}
	}
	ixs, err := d.db.ListIndices(pos[0])
	if err != nil {
		return err
	}
	for _, ix := range ixs {
		fmt.Printf("index: %s %s %s\n", ix.Chunker, ix.HashAlg, ix.Path)
	}
	return nil
}

func cmdSlotsVerify(args []string) error {
	fs := flag.NewFlagSet("slots verify", flag.ContinueOnError)
	pos, err := tool.Parse("slots verify", fs, args, 1, 1)
	if err != nil {
		return err
	}
	d, err := openDevice()
	if err != nil {
		return err
	}
	slot, f, err := d.openSlotData(pos[0])
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := d.db.Load(pos[0])
	if err != nil {
		return err
	}
	if !slot.Immutable || st == nil || st.Size == nil || len(st.Hashes) == 0 {
		return fmt.Errorf("slot %s: nothing to verify (only immutable slots installed by an update have a recorded hash)", pos[0])
	}
	want := st.Hashes[0]
	h := want.Alg.New()
	n, err := io.Copy(h, io.LimitReader(bufio.NewReaderSize(f, 1<<20), int64(*st.Size)))
	if err != nil {
		return fmt.Errorf("slot %s: %w", pos[0], err)
	}
	got := hashes.Digest{Alg: want.Alg, Sum: h.Sum(nil)}
	if uint64(n) != *st.Size || !got.Equal(want) {
		return fmt.Errorf("slot %s: content changed: hash %s, installed %s", pos[0], got, want)
	}
	fmt.Fprintf(os.Stderr, "Slot %s: %s (%d bytes) OK\n", pos[0], got, n)
	return nil
}

func cmdBootMark(good bool) func(args []string) error {
	return func(args []string) error {
		name := "boot mark-bad"
		if good {
			name = "boot mark-good"
		}
		fs := flag.NewFlagSet(name, flag.ContinueOnError)
		min := 1
		if good {
			min = 0
		}
		pos, err := tool.Parse(name, fs, args, min, 1)
		if err != nil {
			return err
		}
		d, err := openDevice()
		if err != nil {
			return err
		}
		group := d.active
		if len(pos) == 1 {
			group = pos[0]
		}
		if _, err := d.sys.Group(group); err != nil {
			return err
		}
		if good {
			err = d.flow.MarkGood(group)
		} else {
			if group == d.active {
				return fmt.Errorf("boot group %s is the running one: refusing to mark it bad", group)
			}
			err = d.flow.MarkBad(group)
		}
		if errors.Is(err, bootflow.ErrUnsupported) {
			return fmt.Errorf("boot flow %s has no notion of good and bad groups", d.flow.Name())
		}
		return err
	}
}
