package system

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fuzzSeeds are small configs covering each table; the committed corpus in
// testdata/fuzz/FuzzParseConfig is generated from them (see
// TestWriteFuzzCorpus) together with testdata/full.toml.
var fuzzSeeds = []string{
	"",
	"[config-partition]\ndevice = \"/dev/sda1\"\npartition = 1\nprotected = false\n",
	"[data-partition]\nmount-script = \"/m\"\nfail-on-mount-error = true\n",
	"[data-partition.driver]\ntype = \"luks2-passphrase\"\npassphrase-file = \"/k\"\n",
	"[slots.x]\ntype = \"custom\"\nhandler = [\"/h\"]\n[boot-groups.a]\nslots = { x = \"x\" }\n",
	"[boot-flow]\ntype = \"systemd-boot\"\nentries = { a = \"a.conf\" }\n",
	"slots = 1\n[boot-groups]\na.slots.b = \"c\"\n",
}

func FuzzParseConfig(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, warnings, err := ParseConfig(data, "fuzz.toml")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.toml: ") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		for _, w := range warnings {
			if !strings.HasPrefix(w, "fuzz.toml: ") {
				t.Fatalf("warning does not name the file: %q", w)
			}
		}
		for _, sl := range cfg.Slots {
			if _, ok := slotKeys[sl.Type]; !ok || validName(sl.Name) != nil {
				t.Fatalf("accepted slot %+v", sl)
			}
		}
		// Whatever parses must resolve without panicking.
		for _, table := range []string{TableDOS, TableGPT} {
			s, err := New(cfg, fakeDisk{table, 16}, runningFrom(179, 5), devOf)
			if err != nil {
				continue
			}
			if _, err := json.Marshal(s.Info(InfoSource{BootFlow: "grub", Root: "/nonexistent"})); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// TestWriteFuzzCorpus regenerates the committed seed corpus:
// BASCULE_WRITE_FUZZ_CORPUS=1 go test -run TestWriteFuzzCorpus ./internal/system
func TestWriteFuzzCorpus(t *testing.T) {
	if os.Getenv("BASCULE_WRITE_FUZZ_CORPUS") == "" {
		t.Skip("set BASCULE_WRITE_FUZZ_CORPUS=1 to regenerate the seed corpus")
	}
	full, err := os.ReadFile(filepath.Join("testdata", "full.toml"))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzParseConfig")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, s := range append([]string{string(full)}, fuzzSeeds[1:]...) {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", s)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%d", i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
