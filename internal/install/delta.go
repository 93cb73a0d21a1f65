package install

import (
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/bascule-ota/bascule/internal/bundle"
	"github.com/bascule-ota/bascule/internal/delta"
	"github.com/bascule-ota/bascule/internal/hashes"
	"github.com/bascule-ota/bascule/internal/slotdb"
	"github.com/bascule-ota/bascule/internal/system"
)

// Static delta updates (rugix-bundler delta): the payload file is an
// xdelta3 patch against content the device already has in a slot. The
// delta encoding in the header names that content by its hash (the input)
// and the content the patch makes (the original hash). As in Rugix:
//
//   - exactly one input is supported, in the "xdelta" format;
//   - the source is a slot whose slot-database hash equals one of the
//     input's hashes (Options.FindSource picks it; on a device only slots of
//     the running boot group qualify, which are never written);
//   - `xdelta3 -d -c -s SOURCE` gets the decoded patch on its standard input
//     and its standard output goes to the target;
//   - the target's hash must equal the original hash, which is also what the
//     slot database records for the slot.
//
// The patch itself is a block-encoded payload: every block is verified
// before it reaches xdelta3, and the patch's file hash at the end. A
// mismatch anywhere is an error, so the group is never armed.

// DeltaFormatXdelta is the only delta format there is.
const DeltaFormatXdelta = "xdelta"

// checkDeltas refuses, before anything is written, delta-encoded payloads
// that cannot be installed here.
func checkDeltas(h *bundle.Header, o Options) error {
	any := false
	for i, e := range h.Payloads {
		d := e.Delta
		if d == nil {
			continue
		}
		any = true
		switch {
		case d.Format != DeltaFormatXdelta:
			return fmt.Errorf("payload %d: delta format %q is not supported (only %q)", i, d.Format, DeltaFormatXdelta)
		case len(d.Inputs) != 1:
			return fmt.Errorf("payload %d: delta encoding has %d inputs, exactly one is supported", i, len(d.Inputs))
		case len(d.Inputs[0]) == 0:
			return fmt.Errorf("payload %d: delta input has no hashes", i)
		case e.IsExecute:
			return fmt.Errorf("payload %d: delta encoding on an execute payload is not supported", i)
		case o.FindSource == nil:
			return fmt.Errorf("payload %d: delta-encoded payloads cannot be installed here (no slot database to find the delta source)", i)
		}
	}
	if any {
		if _, err := delta.LookPath(); err != nil {
			return fmt.Errorf("delta-encoded payloads: %w", err)
		}
	}
	return nil
}

// decodeDelta decodes the patch of p, runs it through xdelta3 against the
// source slot and writes the result to t. It returns the size and hash of
// what was written, which is the original hash (anything else is an error).
func decodeDelta(p *bundle.Payload, t Target, o Options) (int64, hashes.Digest, error) {
	d := p.Entry.Delta
	src, err := o.FindSource(d.Inputs[0])
	if err != nil {
		return 0, hashes.Digest{}, fmt.Errorf("payload %s: delta source: %w", p.Name(), err)
	}
	h := d.Original.Alg.New()
	out := &countingWriter{w: io.MultiWriter(t, h)}
	dec, err := delta.NewDecoder(src, out)
	if err != nil {
		return 0, hashes.Digest{}, fmt.Errorf("payload %s: %w", p.Name(), err)
	}
	if _, err := p.Decode(dec, bundle.DecodeOptions{Workers: o.Workers, Progress: o.Progress}); err != nil {
		dec.Abort()
		return 0, hashes.Digest{}, err
	}
	if err := dec.Close(); err != nil {
		return 0, hashes.Digest{}, fmt.Errorf("payload %s: patch against %s: %w", p.Name(), src, err)
	}
	if got := h.Sum(nil); !bytes.Equal(got, d.Original.Sum) {
		return 0, hashes.Digest{}, fmt.Errorf("payload %s: patched content is %s, expected the original hash %s",
			p.Name(), hashes.Digest{Alg: d.Original.Alg, Sum: got}, d.Original)
	}
	return out.n, d.Original, nil
}

// ActiveSlotSource finds delta sources among the slots of the running boot
// group (block and file slots), by the hashes the slot database recorded
// when they were installed. Rugix searches every slot; Bascule only reads
// slots of the running group, which an install never writes, so the source
// cannot change while the patch is applied.
func ActiveSlotSource(sys *system.System, db *slotdb.DB) func([]hashes.Digest) (string, error) {
	return func(inputs []hashes.Digest) (string, error) {
		for i := range sys.Slots {
			slot := &sys.Slots[i]
			if !slot.Active || slot.Missing || (slot.Type != system.SlotBlock && slot.Type != system.SlotFile) {
				continue
			}
			st, err := db.Load(slot.Name)
			if err != nil {
				return "", err
			}
			if st == nil {
				continue
			}
			for _, want := range inputs {
				if got, ok := st.Hash(want.Alg); ok && got.Equal(want) {
					return sys.SlotDevice(slot)
				}
			}
		}
		return "", NoSourceError(inputs)
	}
}

// NoSourceError says that no slot holds the content a patch applies to.
func NoSourceError(inputs []hashes.Digest) error {
	s := make([]string, len(inputs))
	for i, h := range inputs {
		s[i] = h.String()
	}
	return fmt.Errorf("no slot of the running boot group holds %s (the slot database records what the last update installed): install the full bundle instead", strings.Join(s, " or "))
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
