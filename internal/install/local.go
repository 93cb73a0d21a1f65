package install

import (
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/bascule-ota/bascule/internal/slotdb"
)

// LocalSlot is a slot whose content is described by a block index: a
// place to take blocks from instead of the bundle (adaptive delta).
type LocalSlot struct {
	Name  string
	Path  string // the slot's device or file
	Index *slotdb.Index
	// Target is set for the slot being installed: its old content is
	// overwritten as the install goes, so a block of it may be gone by the
	// time it is needed (the hash check then fails and the bundle's copy is
	// used). It is tried after the other slots.
	Target bool
}

const maxMismatchWarnings = 5

type localLoc struct {
	slot int
	off  int64
	size uint32
}

// LocalBlocks finds blocks by hash in the indices of the device's slots and
// reads them. It trusts neither the index nor the slot: every block it
// returns has passed the decoder's hash check.
type LocalBlocks struct {
	slots []LocalSlot
	files []*os.File
	locs  map[string][]localLoc
	warn  func(string)

	mu         sync.Mutex
	Mismatches int // blocks that failed their check (slot changed since indexing)
}

// NewLocalBlocks opens the slots and maps every block hash of their indices
// to its places, the target slot's last. Slots that cannot be opened are
// left out with a warning.
func NewLocalBlocks(slots []LocalSlot, warn func(string)) *LocalBlocks {
	if warn == nil {
		warn = func(string) {}
	}
	l := &LocalBlocks{locs: map[string][]localLoc{}, warn: warn}
	for _, pass := range []bool{false, true} {
		for _, s := range slots {
			if s.Target != pass || s.Index == nil {
				continue
			}
			f, err := os.Open(s.Path)
			if err != nil {
				warn(fmt.Sprintf("slot %s: block index not used: %v", s.Name, err))
				continue
			}
			i := len(l.slots)
			l.slots = append(l.slots, s)
			l.files = append(l.files, f)
			var off int64
			for k, size := range s.Index.Sizes {
				key := string(s.Index.Hash(k))
				locs := l.locs[key]
				// One place per slot is enough.
				if len(locs) == 0 || locs[len(locs)-1].slot != i {
					l.locs[key] = append(locs, localLoc{slot: i, off: off, size: size})
				}
				off += int64(size)
			}
		}
	}
	return l
}

// Blocks is the number of distinct blocks known.
func (l *LocalBlocks) Blocks() int { return len(l.locs) }

// Has reports whether some slot's index lists a block with this hash.
func (l *LocalBlocks) Has(hash []byte) bool {
	_, ok := l.locs[string(hash)]
	return ok
}

// Read reads the block from the first place where it checks out. It may be
// called from several goroutines at once.
func (l *LocalBlocks) Read(hash []byte, check func([]byte) bool) ([]byte, bool) {
	for _, loc := range l.locs[string(hash)] {
		b := make([]byte, loc.size)
		n, err := l.files[loc.slot].ReadAt(b, loc.off)
		if err == io.EOF && n == len(b) {
			err = nil
		}
		if err == nil && check(b) {
			return b, true
		}
		s := l.slots[loc.slot]
		if s.Target {
			continue // already overwritten: expected
		}
		l.mu.Lock()
		l.Mismatches++
		if l.Mismatches > maxMismatchWarnings {
			if l.Mismatches == maxMismatchWarnings+1 {
				l.warn("more local blocks do not match their index; not reporting each")
			}
			l.mu.Unlock()
			continue
		}
		if err != nil {
			l.warn(fmt.Sprintf("slot %s: block at offset %d: %v; taking it from the bundle", s.Name, loc.off, err))
		} else {
			l.warn(fmt.Sprintf("slot %s: block at offset %d does not match its index (the slot changed since it was indexed); taking it from the bundle", s.Name, loc.off))
		}
		l.mu.Unlock()
	}
	return nil, false
}

// Close closes the slots.
func (l *LocalBlocks) Close() {
	for _, f := range l.files {
		f.Close()
	}
	l.files = nil
}
