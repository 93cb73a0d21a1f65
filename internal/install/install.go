package install

import (
	"fmt"
	"io"

	"github.com/bascule-ota/bascule/internal/blockenc"
	"github.com/bascule-ota/bascule/internal/bundle"
	"github.com/bascule-ota/bascule/internal/hashes"
	"github.com/bascule-ota/bascule/internal/slotdb"
)

// Options wire an install to the system it runs on.
type Options struct {
	Policy   Policy
	Workers  int
	Progress func(n int64) // bundle bytes consumed
	// Prepare runs after the bundle has been verified and before the first
	// payload: the boot flow's pre-install step, pre-update hooks, disarming
	// a pending try of the target group.
	Prepare func(r *bundle.Reader) error
	// Resolve opens the target of a payload. A nil Target with a nil error
	// skips the payload (Rugix skips payloads for slots the group lacks).
	Resolve func(p *bundle.Payload) (t Target, slot string, err error)
	// Erase forgets what the slot database knows of slot before it is
	// overwritten (so an interrupted install never leaves a stale hash).
	Erase func(slot string) error
	// Done records a slot whose payload was written and verified.
	Done func(slot string, hash hashes.Digest, size int64) error
	// Local lists the slots with a block index matching a block-encoded
	// payload (its chunker and hash algorithm): blocks found there are
	// read locally, checked, and skipped in the bundle (adaptive delta).
	// It is called after Resolve and before Erase, so the target slot's
	// own index, describing its old content, can still be used.
	Local func(p *bundle.Payload, slot string) ([]LocalSlot, error)
	// SaveIndex stores the block index of a slot just written, built from
	// the payload's block hashes and the decoded block sizes, so that the
	// next update can use it; called after Done for block-encoded
	// payloads (not for delta-encoded ones: their blocks are the patch's).
	SaveIndex func(slot string, ix *slotdb.Index) error
	Warn      func(string)
	// FindSource returns the path (device or file) of a slot whose
	// recorded hash is one of inputs: the source of a static delta
	// payload (see delta.go). nil refuses delta-encoded payloads.
	FindSource func(inputs []hashes.Digest) (path string, err error)
}

// PayloadReport says what happened to one payload.
type PayloadReport struct {
	Index   int
	Slot    string // "" for execute payloads
	Skipped bool
	Size    int64
	Hash    hashes.Digest
	Reused  int64 // decoded bytes taken from local slots
}

// Report summarizes an install.
type Report struct {
	HeaderHash  hashes.Digest
	Incremental bool
	Payloads    []PayloadReport
	Written     int64
	Reused      int64 // of Written, the bytes taken from local slots
	// LocalMismatches counts local blocks that failed their hash check
	// and were taken from the bundle after all.
	LocalMismatches int
}

// decodePayload writes a block-encoded (or plain) payload to its target,
// every block checked before it is written; blocks the device has are
// taken from local.
func decodePayload(p *bundle.Payload, t Target, local *LocalBlocks, res *blockenc.DecodeResult, o Options) (int64, error) {
	do := bundle.DecodeOptions{Workers: o.Workers, Progress: o.Progress, Readback: t, Result: res}
	if local != nil {
		do.Local = local
	}
	return p.Decode(t, do)
}

// Run installs the bundle read from src. Any error means the install is
// incomplete and must not be armed for booting; the error says why.
func Run(src io.Reader, o Options) (*Report, error) {
	r, err := bundle.NewReader(src)
	if err != nil {
		return nil, err
	}
	rep := &Report{HeaderHash: r.HeaderHash, Incremental: r.Header.Incremental}
	if err := o.Policy.Check(r); err != nil {
		return rep, err
	}
	if err := checkDeltas(r.Header, o); err != nil {
		return rep, err
	}
	if o.Prepare != nil {
		if err := o.Prepare(r); err != nil {
			return rep, err
		}
	}
	for {
		p, err := r.Next()
		if err == io.EOF {
			return rep, nil
		}
		if err != nil {
			return rep, err
		}
		pr := PayloadReport{Index: p.Index}
		t, slot, err := o.Resolve(p)
		if err != nil {
			return rep, fmt.Errorf("payload %s: %w", p.Name(), err)
		}
		pr.Slot = slot
		if t == nil {
			if o.Warn != nil {
				o.Warn(fmt.Sprintf("payload %s: no such slot in the target group, skipped", p.Name()))
			}
			pr.Skipped = true
			if err := p.Skip(); err != nil {
				return rep, err
			}
			rep.Payloads = append(rep.Payloads, pr)
			continue
		}
		var local *LocalBlocks
		if o.Local != nil && p.Table != nil && p.Entry.Delta == nil {
			slots, err := o.Local(p, slot)
			if err != nil {
				t.Abort()
				return rep, fmt.Errorf("payload %s: %w", p.Name(), err)
			}
			if len(slots) > 0 {
				local = NewLocalBlocks(slots, o.Warn)
				defer local.Close()
			}
		}
		if slot != "" && o.Erase != nil {
			if err := o.Erase(slot); err != nil {
				t.Abort()
				return rep, err
			}
		}
		var res blockenc.DecodeResult
		var n int64
		pr.Hash = hashes.Digest{Alg: r.Header.HashAlg, Sum: p.Entry.FileHash}
		if p.Entry.Delta != nil {
			n, pr.Hash, err = decodeDelta(p, t, o)
		} else {
			n, err = decodePayload(p, t, local, &res, o)
			if local != nil {
				rep.LocalMismatches += local.Mismatches
				local.Close() // the deferred Close covers the early returns
			}
		}
		if err != nil {
			t.Abort()
			return rep, err
		}
		if err := t.Finish(); err != nil {
			return rep, fmt.Errorf("payload %s: %w", p.Name(), err)
		}
		pr.Size = n
		pr.Reused = res.Reused
		rep.Written += n
		rep.Reused += res.Reused
		if slot != "" && o.Done != nil {
			if err := o.Done(slot, pr.Hash, n); err != nil {
				return rep, err
			}
		}
		if slot != "" && o.SaveIndex != nil && p.Table != nil && p.Entry.Delta == nil && res.Sizes != nil {
			ix := &slotdb.Index{Chunker: p.Table.Chunker, HashAlg: p.Table.HashAlg, Hashes: p.Table.Hashes, Sizes: res.Sizes}
			if err := o.SaveIndex(slot, ix); err != nil {
				return rep, err
			}
		}
		rep.Payloads = append(rep.Payloads, pr)
	}
}
