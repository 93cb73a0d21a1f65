package slotdb

import (
	"bytes"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bascule-ota/bascule/internal/hashes"
)

func digest(t *testing.T, s string) hashes.Digest {
	t.Helper()
	d, err := hashes.ParseDigest(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

const hex32 = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

func TestStateRoundTrip(t *testing.T) {
	db := New(t.TempDir())
	size := uint64(123456789)
	at := time.Date(2025, 3, 4, 5, 6, 7, 890000000, time.UTC)
	in := &State{
		Hashes:    []hashes.Digest{digest(t, "sha512-256:"+hex32)},
		Size:      &size,
		UpdatedAt: &at,
	}
	if err := db.Save("system-a", in); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(db.Root(), "slots", "system-a", "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	// Exactly what Rugix 0.8.15 (si-crypto-hashes 0.1.2, "legacy") writes.
	want := `{"hashes":{"sha512_256":"sha512-256:` + hex32 + `"},"size":123456789,"updated_at":"2025-03-04T05:06:07.89Z"}`
	if string(raw) != want {
		t.Errorf("state.json:\n%s\nwant:\n%s", raw, want)
	}
	out, err := db.Load("system-a")
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Hashes) != 1 || !out.Hashes[0].Equal(in.Hashes[0]) || *out.Size != size || !out.UpdatedAt.Equal(at) {
		t.Errorf("loaded %+v", out)
	}
	if _, err := os.Stat(filepath.Join(db.Root(), "slots", "system-a", "state.json.tmp")); !os.IsNotExist(err) {
		t.Errorf("temporary file left behind: %v", err)
	}
}

func TestStateSpellings(t *testing.T) {
	for _, tc := range []struct{ name, json string }{
		{"underscore key, colon digest", `{"hashes":{"sha512_256":"sha512-256:` + hex32 + `"}}`},
		{"hyphen key, colon digest", `{"hashes":{"sha512-256":"sha512-256:` + hex32 + `"}}`},
		{"underscore key, underscore digest", `{"hashes":{"sha512_256":"sha512_256_` + hex32 + `"}}`},
		{"hyphen key, underscore digest", `{"hashes":{"sha512-256":"sha512-256_` + hex32 + `"}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s State
			if err := s.UnmarshalJSON([]byte(tc.json)); err != nil {
				t.Fatal(err)
			}
			d, ok := s.Hash(hashes.SHA512_256)
			if !ok || hex.EncodeToString(d.Sum) != hex32 {
				t.Errorf("hashes %+v", s.Hashes)
			}
			if s.Size != nil || s.UpdatedAt != nil {
				t.Errorf("absent fields set: %+v", s)
			}
		})
	}
}

func TestStateOffsetTimeAndUnknownKeys(t *testing.T) {
	var s State
	err := s.UnmarshalJSON([]byte(`{"size":0,"updated_at":"2025-01-01T02:00:00+02:00","future":1}`))
	if err != nil {
		t.Fatal(err)
	}
	if s.Size == nil || *s.Size != 0 || s.UpdatedAt == nil || !s.UpdatedAt.Equal(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("state %+v", s)
	}
	b, err := s.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"size":0,"updated_at":"2025-01-01T00:00:00Z"}`; string(b) != want {
		t.Errorf("re-encoded %s, want %s", b, want)
	}
}

func TestStateBad(t *testing.T) {
	for _, in := range []string{
		`{"hashes":{"md5":"md5:00"}}`,
		`{"hashes":{"sha256":"sha512-256:` + hex32 + `"}}`,
		`{"hashes":{"sha512_256":"sha512-256:00"}}`,
		`{"size":-1}`,
		`{"updated_at":"yesterday"}`,
		`[]`,
	} {
		var s State
		if err := s.UnmarshalJSON([]byte(in)); err == nil {
			t.Errorf("%s: no error", in)
		}
	}
}

func TestLoadMissing(t *testing.T) {
	db := New(t.TempDir())
	s, err := db.Load("boot-a")
	if s != nil || err != nil {
		t.Errorf("Load of a slot without state = %v, %v", s, err)
	}
	if err := db.Erase("boot-a"); err != nil {
		t.Errorf("Erase of a slot without directory: %v", err)
	}
}

func TestLoadCorruptNamesFile(t *testing.T) {
	db := New(t.TempDir())
	dir, _ := db.Dir("system-b")
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, StateFile), []byte(`{"size":`), 0o644)
	_, err := db.Load("system-b")
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, StateFile)) {
		t.Errorf("error %v does not name the file", err)
	}
}

// A crash between writing state.json.tmp and the rename leaves the tmp
// file behind: it must neither be read nor get in the way of the next Save.
func TestLeftoverTmp(t *testing.T) {
	db := New(t.TempDir())
	dir, _ := db.Dir("system-a")
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "state.json.tmp"), []byte(`{"size":99999999999,"garbage`), 0o644)
	if s, err := db.Load("system-a"); s != nil || err != nil {
		t.Fatalf("tmp file was read: %v, %v", s, err)
	}
	size := uint64(7)
	if err := db.Save("system-a", &State{Size: &size}); err != nil {
		t.Fatal(err)
	}
	s, err := db.Load("system-a")
	if err != nil || s == nil || *s.Size != 7 {
		t.Fatalf("after save: %+v, %v", s, err)
	}
	// An older complete state is replaced as a whole.
	size = 8
	if err := db.Save("system-a", &State{Size: &size}); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, StateFile))
	if string(raw) != `{"size":8}` {
		t.Errorf("state.json %s", raw)
	}
}

func TestEraseRemovesEverything(t *testing.T) {
	db := New(t.TempDir())
	size := uint64(1)
	db.Save("system-a", &State{Size: &size})
	db.Save("system-b", &State{Size: &size})
	dir, _ := db.Dir("system-a")
	os.WriteFile(filepath.Join(dir, "casync-64_sha512-256.rugix-block-index"), []byte("x"), 0o644)
	if err := db.Erase("system-a"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("slot directory still there: %v", err)
	}
	if s, _ := db.Load("system-b"); s == nil {
		t.Error("another slot was erased too")
	}
}

func TestBadSlotNames(t *testing.T) {
	db := New(t.TempDir())
	for _, name := range []string{"", ".", "..", "a/b", "../x"} {
		if err := db.Erase(name); err == nil {
			t.Errorf("Erase(%q) accepted", name)
		}
		if err := db.Save(name, &State{}); err == nil {
			t.Errorf("Save(%q) accepted", name)
		}
		if _, err := db.Load(name); err == nil {
			t.Errorf("Load(%q) accepted", name)
		}
	}
}

func TestEmptyState(t *testing.T) {
	b, err := (&State{}).MarshalJSON()
	if err != nil || !bytes.Equal(b, []byte(`{}`)) {
		t.Errorf("empty state = %s, %v", b, err)
	}
	two := &State{Hashes: []hashes.Digest{digest(t, "sha256:"+hex32), digest(t, "sha256:"+hex32)}}
	if _, err := two.MarshalJSON(); err == nil {
		t.Error("two hashes of one algorithm accepted")
	}
}

func TestInstalled(t *testing.T) {
	d := digest(t, "sha512-256:"+hex32)
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	b, _ := Installed(true, d, 42, now).MarshalJSON()
	if want := `{"hashes":{"sha512_256":"sha512-256:` + hex32 + `"},"size":42,"updated_at":"2025-01-01T00:00:00Z"}`; string(b) != want {
		t.Errorf("immutable: %s", b)
	}
	b, _ = Installed(false, d, 42, now).MarshalJSON()
	if want := `{"updated_at":"2025-01-01T00:00:00Z"}`; string(b) != want {
		t.Errorf("mutable: %s", b)
	}
}
