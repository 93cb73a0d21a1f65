package install

import (
	"fmt"
	"io"

	"github.com/bascule-ota/bascule/internal/bundle"
	"github.com/bascule-ota/bascule/internal/hashes"
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
	Warn func(string)
}

// PayloadReport says what happened to one payload.
type PayloadReport struct {
	Index   int
	Slot    string // "" for execute payloads
	Skipped bool
	Size    int64
	Hash    hashes.Digest
}

// Report summarizes an install.
type Report struct {
	HeaderHash  hashes.Digest
	Incremental bool
	Payloads    []PayloadReport
	Written     int64
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
	for i, e := range r.Header.Payloads {
		if e.Delta != nil {
			return rep, fmt.Errorf("payload %d: delta-encoded payloads are not supported by this version", i)
		}
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
		if slot != "" && o.Erase != nil {
			if err := o.Erase(slot); err != nil {
				t.Abort()
				return rep, err
			}
		}
		n, err := p.Decode(t, bundle.DecodeOptions{Workers: o.Workers, Progress: o.Progress, Readback: t})
		if err != nil {
			t.Abort()
			return rep, err
		}
		if err := t.Finish(); err != nil {
			return rep, fmt.Errorf("payload %s: %w", p.Name(), err)
		}
		pr.Size = n
		pr.Hash = hashes.Digest{Alg: r.Header.HashAlg, Sum: p.Entry.FileHash}
		rep.Written += n
		if slot != "" && o.Done != nil {
			if err := o.Done(slot, pr.Hash, n); err != nil {
				return rep, err
			}
		}
		rep.Payloads = append(rep.Payloads, pr)
	}
}
