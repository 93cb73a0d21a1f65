// Package slotdb is the slot database of Rugix: for every slot a directory
// <root>/slots/<slot>/ holding state.json (hash, size and time of the last
// install into the slot) and block index files, from which adaptive delta
// updates take blocks that the device already has.
//
// Installing into a slot erases its directory first, so a state or index
// never describes content that was partly overwritten.
package slotdb

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/bascule-ota/bascule/internal/hashes"
)

// Roots of the slot database: on the data partition when it is mounted,
// else on the root file system.
const (
	DataRoot = "/run/rugix/mounts/data/rugix"
	VarRoot  = "/var/lib/rugix"
)

// StateFile is the name of a slot's state in its directory.
const StateFile = "state.json"

// DefaultRoot picks the root as Rugix does: DataRoot if the data partition
// mount point exists, else VarRoot.
func DefaultRoot() string {
	if _, err := os.Stat(filepath.Dir(DataRoot)); err == nil {
		return DataRoot
	}
	return VarRoot
}

// DB is a slot database rooted at a directory such as DataRoot.
type DB struct {
	root string
}

// New returns the database at root. Nothing is created until a slot is
// saved.
func New(root string) *DB { return &DB{root: root} }

// Root is the database's root directory.
func (db *DB) Root() string { return db.root }

// Dir is the directory of a slot. Names that would leave the slots
// directory are rejected, since Erase removes the directory recursively.
func (db *DB) Dir(slot string) (string, error) {
	if slot == "" || slot == "." || slot == ".." || strings.ContainsAny(slot, "/\x00") {
		return "", fmt.Errorf("slot database: invalid slot name %q", slot)
	}
	return filepath.Join(db.root, "slots", slot), nil
}

// Erase removes everything known about a slot. It is called before a slot
// is written. A slot without a directory is not an error.
func (db *DB) Erase(slot string) error {
	dir, err := db.Dir(slot)
	if err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("erase slot %s: %w", slot, err)
	}
	// Make the removal durable before the slot is overwritten, so that a
	// crash cannot bring back a state describing the old content.
	if err := syncDir(filepath.Dir(dir)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("erase slot %s: %w", slot, err)
	}
	return nil
}

// State is what the database records about a slot's content. Every field
// is optional, as in Rugix.
type State struct {
	Hashes    []hashes.Digest // at most one per algorithm
	Size      *uint64         // length of the content at the start of the slot
	UpdatedAt *time.Time
}

// Hash returns the recorded digest for alg.
func (s *State) Hash(alg hashes.Algorithm) (hashes.Digest, bool) {
	for _, d := range s.Hashes {
		if d.Alg == alg {
			return d, true
		}
	}
	return hashes.Digest{}, false
}

// Installed is the state to save after a payload was written to a slot.
// As in Rugix, hash and size are recorded only for immutable slots: the
// content of a mutable slot changes once it is in use, so its hash would
// soon be wrong. The time is always recorded.
func Installed(immutable bool, d hashes.Digest, size uint64, now time.Time) *State {
	s := &State{UpdatedAt: &now}
	if immutable {
		s.Hashes = []hashes.Digest{d}
		s.Size = &size
	}
	return s
}

// stateJSON is state.json as Rugix 0.8 writes it: the hash map is keyed by
// the si-crypto-hashes algorithm name ("sha512_256") and holds the legacy
// digest string ("sha512-256:<hex>"); absent fields are omitted.
type stateJSON struct {
	Hashes    map[string]string `json:"hashes,omitempty"`
	Size      *uint64           `json:"size,omitempty"`
	UpdatedAt *string           `json:"updated_at,omitempty"`
}

// MarshalJSON encodes the state the way Rugix writes state.json.
func (s State) MarshalJSON() ([]byte, error) {
	var j stateJSON
	for _, d := range s.Hashes {
		if j.Hashes == nil {
			j.Hashes = map[string]string{}
		}
		key := d.Alg.JSONName()
		if _, dup := j.Hashes[key]; dup {
			return nil, fmt.Errorf("two %s hashes", d.Alg)
		}
		j.Hashes[key] = d.String()
	}
	j.Size = s.Size
	if s.UpdatedAt != nil {
		t := s.UpdatedAt.UTC().Format(time.RFC3339Nano)
		j.UpdatedAt = &t
	}
	return json.Marshal(j)
}

// UnmarshalJSON accepts both spellings of the algorithm keys ("sha512_256",
// "sha512-256") and both digest separators (':' and '_'), since the
// si-crypto-hashes version decides what Rugix writes.
func (s *State) UnmarshalJSON(b []byte) error {
	var j stateJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*s = State{Size: j.Size}
	keys := make([]string, 0, len(j.Hashes))
	for k := range j.Hashes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		alg, err := hashes.Parse(k)
		if err != nil {
			return fmt.Errorf("hashes: %w", err)
		}
		d, err := hashes.ParseDigest(j.Hashes[k])
		if err != nil {
			return fmt.Errorf("hashes.%s: %w", k, err)
		}
		if d.Alg != alg {
			return fmt.Errorf("hashes.%s: holds a %s digest", k, d.Alg)
		}
		if _, dup := s.Hash(alg); dup {
			return fmt.Errorf("hashes: %s appears twice", alg)
		}
		s.Hashes = append(s.Hashes, d)
	}
	if j.UpdatedAt != nil {
		t, err := time.Parse(time.RFC3339Nano, *j.UpdatedAt)
		if err != nil {
			return fmt.Errorf("updated_at: %w", err)
		}
		s.UpdatedAt = &t
	}
	return nil
}

// Load reads a slot's state. A slot without state.json has no state: nil
// and no error.
func (db *DB) Load(slot string) (*State, error) {
	dir, err := db.Dir(slot)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, StateFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read slot state: %w", err)
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &s, nil
}

// Save records a slot's state. The file is replaced atomically: a crash
// leaves the old state or the new one, never a torn file. A state.json.tmp
// left by an earlier crash is overwritten.
func (db *DB) Save(slot string, s *State) error {
	dir, err := db.Dir(slot)
	if err != nil {
		return err
	}
	b, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("slot %s state: %w", slot, err)
	}
	if err := mkdirDurable(dir); err != nil {
		return err
	}
	return writeAtomic(filepath.Join(dir, StateFile), b)
}

// mkdirDurable creates dir and its parents, syncing each parent whose
// entries changed.
func mkdirDurable(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := mkdirDurable(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return syncDir(parent)
}

// writeAtomic writes path via path.tmp, fsync, rename and fsync of the
// directory.
func writeAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
