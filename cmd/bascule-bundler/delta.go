package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/bascule-ota/bascule/internal/bundle"
	"github.com/bascule-ota/bascule/internal/delta"
	"github.com/bascule-ota/bascule/internal/hashes"
	"github.com/bascule-ota/bascule/internal/progress"
)

// defaultDeltaSlots are rugix-bundler's: the system slot against the old
// system slot, and the boot slot against the old *system* slot (the boot
// partition is modified on the device, so its hash would not match).
var defaultDeltaSlots = []string{"system", "boot:system"}

// cmdDelta is `rugix-bundler delta`: a bundle in which each chosen slot
// payload of NEW is replaced by an xdelta3 patch against the payload of OLD
// for the same (or the named) slot. The patch goes in as "<file>.xdelta",
// block encoded with fixed-256 and xz (unless --without-compression), with
// a delta encoding naming the hash of the old payload (the input the device
// must have in a slot) and of the new one (what the device must end up
// with). Every other payload of NEW is carried over as it is.
func cmdDelta(args []string) error {
	fs := flag.NewFlagSet("delta", flag.ContinueOnError)
	var slots multiFlag
	fs.Var(&slots, "slot", "patch NEW's payload for this `slot` against OLD's for the same slot, or new:old against OLD's slot old (repeatable; default system and boot:system)")
	noCompress := fs.Bool("without-compression", false, "do not compress the patch blocks")
	xzCommand := xzFlag(fs)
	pos, err := tool.Parse("delta", fs, args, 3, 3)
	if err != nil {
		return err
	}
	xz, err := lookXZ(*xzCommand)
	if err != nil {
		return fmt.Errorf("delta: %w", err)
	}
	oldPath, newPath, out := pos[0], pos[1], pos[2]
	if fi, err := os.Stat(out); err == nil && !fi.Mode().IsRegular() {
		return fmt.Errorf("delta: output %s exists and is not a regular file", out)
	}
	if _, err := delta.LookPath(); err != nil {
		return fmt.Errorf("delta: %w", err)
	}
	explicit := len(slots) > 0
	if !explicit {
		slots = defaultDeltaSlots
	}
	type pair struct{ newSlot, oldSlot string }
	var pairs []pair
	for _, s := range slots {
		n, o, ok := strings.Cut(s, ":")
		if !ok {
			o = n
		}
		if n == "" || o == "" {
			return fmt.Errorf("delta: --slot %q: want new or new:old", s)
		}
		pairs = append(pairs, pair{n, o})
	}

	oldHdr, err := readHeader(oldPath)
	if err != nil {
		return err
	}
	newHdr, err := readHeader(newPath)
	if err != nil {
		return err
	}
	if !newHdr.HasManifest {
		return fmt.Errorf("delta: %s has no embedded manifest (needed to rebuild the bundle)", newPath)
	}
	m, err := bundle.ManifestFromJSON(newHdr.Manifest)
	if err != nil {
		return fmt.Errorf("delta: %s: %w", newPath, err)
	}
	if len(m.Payloads) != len(newHdr.Payloads) {
		return fmt.Errorf("delta: %s: embedded manifest lists %d payloads, the bundle has %d", newPath, len(m.Payloads), len(newHdr.Payloads))
	}
	slotIndex := func(h *bundle.Header, slot string) int {
		for i, e := range h.Payloads {
			if !e.IsExecute && e.Slot == slot {
				return i
			}
		}
		return -1
	}
	// Which payload of NEW is patched against which payload of OLD.
	against := map[int]int{}
	for _, p := range pairs {
		ni, oi := slotIndex(newHdr, p.newSlot), slotIndex(oldHdr, p.oldSlot)
		switch {
		case ni < 0 && explicit:
			return fmt.Errorf("delta: %s has no payload for slot %q", newPath, p.newSlot)
		case oi < 0 && explicit:
			return fmt.Errorf("delta: %s has no payload for slot %q", oldPath, p.oldSlot)
		case ni < 0 || oi < 0:
			continue // a default pair this bundle does not have
		}
		if _, dup := against[ni]; dup {
			return fmt.Errorf("delta: slot %q is named twice", p.newSlot)
		}
		if newHdr.Payloads[ni].Delta != nil {
			return fmt.Errorf("delta: payload for slot %q of %s is a delta already", p.newSlot, newPath)
		}
		against[ni] = oi
	}
	if len(against) == 0 {
		return fmt.Errorf("delta: no slot payload of %s has a counterpart in %s (slots: %s)", newPath, oldPath, strings.Join(slots, ", "))
	}

	work, err := os.MkdirTemp(filepath.Dir(filepath.Clean(out)), ".bascule-delta-*.tmp")
	if err != nil {
		return fmt.Errorf("delta: %w", err)
	}
	defer os.RemoveAll(work)
	dir := filepath.Join(work, "new")
	// Every payload of NEW, decoded and verified, as `unpack` would.
	names := map[string]bool{}
	if err := eachPayload(newPath, func(p *bundle.Payload) (string, error) {
		name := m.Payloads[p.Index].Filename
		if !filepath.IsLocal(name) || names[name] {
			return "", fmt.Errorf("payload %d: bad or duplicate file name %q", p.Index, name)
		}
		names[name] = true
		return filepath.Join(dir, "payloads", name), nil
	}); err != nil {
		return err
	}
	// The payloads of OLD that serve as delta sources.
	uses := map[int]int{}
	for _, oi := range against {
		uses[oi]++
	}
	// The old payload keeps its file name (in a directory of its own):
	// xdelta3 records the base names of its inputs in the patch, and this
	// way they are the ones rugix-bundler's patch records.
	oldNames := map[int]string{}
	if oldHdr.HasManifest {
		if om, err := bundle.ManifestFromJSON(oldHdr.Manifest); err == nil && len(om.Payloads) == len(oldHdr.Payloads) {
			for i, p := range om.Payloads {
				if filepath.IsLocal(p.Filename) {
					oldNames[i] = filepath.Base(p.Filename)
				}
			}
		}
	}
	oldFile := func(oi int) string {
		name := oldNames[oi]
		if name == "" {
			name = fmt.Sprintf("payload-%d", oi)
		}
		return filepath.Join(work, fmt.Sprintf("old-%d", oi), name)
	}
	if err := eachPayload(oldPath, func(p *bundle.Payload) (string, error) {
		if uses[p.Index] == 0 {
			return "", nil
		}
		return oldFile(p.Index), nil
	}); err != nil {
		return err
	}

	alg := newHdr.HashAlg
	for ni := range m.Payloads {
		oi, ok := against[ni]
		if !ok {
			continue
		}
		mp := &m.Payloads[ni]
		newFile := filepath.Join(dir, "payloads", mp.Filename)
		// The input hash is the hash of the old slot content in the new
		// bundle's hash algorithm: it is what the device recorded in its
		// slot database when it installed OLD (if OLD used that algorithm).
		oldHash := hashes.Digest{Alg: alg, Sum: oldHdr.Payloads[oi].FileHash}
		if oldHdr.HashAlg != alg {
			if oldHash, err = hashFile(alg, oldFile(oi)); err != nil {
				return fmt.Errorf("delta: %w", err)
			}
		}
		newHash := hashes.Digest{Alg: alg, Sum: newHdr.Payloads[ni].FileHash}
		patchName := mp.Filename + ".xdelta"
		if names[patchName] {
			return fmt.Errorf("delta: payload file %q exists in %s already", patchName, newPath)
		}
		names[patchName] = true
		fmt.Fprintf(os.Stderr, "bascule-bundler: slot %s: xdelta3 against slot %s of %s\n", mp.Delivery.Slot, oldHdr.Payloads[oi].Slot, oldPath)
		if err := delta.Encode(oldFile(oi), newFile, filepath.Join(dir, "payloads", patchName)); err != nil {
			return fmt.Errorf("delta: slot %s: %w", mp.Delivery.Slot, err)
		}
		if err := os.Remove(newFile); err != nil {
			return fmt.Errorf("delta: %w", err)
		}
		if uses[oi]--; uses[oi] == 0 {
			if err := os.Remove(oldFile(oi)); err != nil {
				return fmt.Errorf("delta: %w", err)
			}
		}
		mp.Filename = patchName
		be := &bundle.ManifestBlockEnc{Chunker: "fixed-256"}
		if !*noCompress {
			be.Compression = &bundle.ManifestCompression{Type: bundle.CompressionXZ}
		}
		mp.BlockEncoding = be
		mp.DeltaEncoding = &bundle.ManifestDeltaEncode{
			Inputs:       []bundle.ManifestDeltaInput{{Hashes: []string{oldHash.String()}}},
			Format:       "xdelta",
			OriginalHash: newHash.String(),
		}
	}
	if err := os.WriteFile(filepath.Join(dir, bundle.ManifestFile), m.TOML(), 0o644); err != nil {
		return fmt.Errorf("delta: %w", err)
	}
	pm, err := bundle.LoadManifest(dir)
	if err != nil {
		return fmt.Errorf("delta: %w", err)
	}
	bar := progress.New("bundle", bundle.InputSize(dir, pm))
	d, err := bundle.BuildManifest(dir, pm, out, bundle.BuildOptions{Progress: bar.Add, XZCommand: xz})
	bar.Done()
	if err != nil {
		return fmt.Errorf("delta: %w", err)
	}
	fmt.Println(d)
	return nil
}

// readHeader reads and decodes the header of a bundle file.
func readHeader(path string) (*bundle.Header, error) {
	r, f, err := openBundle(path, "")
	if err != nil {
		return nil, err
	}
	f.Close()
	return r.Header, nil
}

// eachPayload decodes and verifies the payloads of a bundle, each into the
// file dst names ("" skips the payload).
func eachPayload(path string, dst func(p *bundle.Payload) (string, error)) error {
	r, f, err := openBundle(path, "")
	if err != nil {
		return err
	}
	defer f.Close()
	for {
		p, err := r.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("bundle rejected: %s: %w", path, err)
		}
		out, err := dst(p)
		if err != nil {
			return fmt.Errorf("delta: %s: %w", path, err)
		}
		if out == "" {
			if err := p.Skip(); err != nil {
				return fmt.Errorf("bundle rejected: %s: %w", path, err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			return err
		}
		bar := progress.New(fmt.Sprintf("%s payload %d", filepath.Base(path), p.Index), int64(p.DataLen))
		err = writeVerified(p, out, bar)
		bar.Done()
		if err != nil {
			return fmt.Errorf("bundle rejected: %s: %w", path, err)
		}
	}
}

func hashFile(alg hashes.Algorithm, path string) (hashes.Digest, error) {
	f, err := os.Open(path)
	if err != nil {
		return hashes.Digest{}, err
	}
	defer f.Close()
	h := alg.New()
	if _, err := io.Copy(h, f); err != nil {
		return hashes.Digest{}, fmt.Errorf("hash %s: %w", path, err)
	}
	return hashes.Digest{Alg: alg, Sum: h.Sum(nil)}, nil
}
