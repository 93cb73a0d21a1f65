package bootstrap

import (
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]uint64{
		"4GiB":     4 << 30,
		"256MiB":   256 << 20,
		"256M":     256 << 20,
		"4G":       4 << 30,
		"4 GiB":    4 << 30,
		"4gib":     4 << 30,
		"1.5GiB":   3 << 29,
		"1.5 GB":   1500000000,
		"100":      100,
		"100B":     100,
		"1_000kB":  1000000,
		"2T":       2 << 40,
		"0.5KiB":   512,
		"1.0001K":  1024,
		"7EiB":     7 << 60,
		"3.999999": 3,
		"64MiB":    64 << 20,
	} {
		got, err := parseSize(in)
		if err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "GiB", "-1G", "4 GiBs", "4GiB ", "0", "0GiB", "0.0M", "1.5.5G", "8EiB", "99999999999999999999", "4 X", ".5G", " 4G"} {
		if got, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) = %d, want an error", in, got)
		} else if !strings.Contains(err.Error(), "invalid size") {
			t.Errorf("parseSize(%q): error %q", in, err)
		}
	}
}

// FuzzParseSize checks that parseSize never panics and agrees with a
// plain reading: "<whole>[.<fraction>] <unit>" is at least whole units and,
// with a fraction, less than whole+1 units.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"4GiB", "1.5 G", "1_000kB", "0", "18446744073709551615", "9.99999999999999999999999999EiB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseSize(s)
		if err != nil {
			return
		}
		if n == 0 || n > 1<<63-1 {
			t.Fatalf("parseSize(%q) = %d", s, n)
		}
		i := strings.IndexFunc(s, func(r rune) bool { return !(r >= '0' && r <= '9' || r == '_') })
		num, rest := s, ""
		if i >= 0 {
			num, rest = s[:i], s[i:]
		}
		frac := strings.HasPrefix(rest, ".")
		if frac {
			rest = strings.TrimLeft(rest[1:], "0123456789")
		}
		unit := uint64(1)
		if u := strings.ToLower(strings.TrimLeft(rest, " ")); u != "" {
			v, ok := sizeUnits[u]
			if !ok {
				t.Fatalf("parseSize(%q) accepted unit %q", s, u)
			}
			unit = v
		}
		whole, ok := new(big.Int).SetString(strings.ReplaceAll(num, "_", ""), 10)
		if !ok {
			t.Fatalf("parseSize(%q) accepted number %q", s, num)
		}
		lo := new(big.Int).Mul(whole, new(big.Int).SetUint64(unit))
		hi := new(big.Int).Add(lo, new(big.Int).SetUint64(unit))
		got := new(big.Int).SetUint64(n)
		if got.Cmp(lo) < 0 || (!frac && got.Cmp(lo) != 0) || (frac && got.Cmp(hi) >= 0) {
			t.Fatalf("parseSize(%q) = %d, want %v (+ less than %d for the fraction)", s, n, lo, unit)
		}
	})
}

func parse(t *testing.T, toml string) (*Config, []string) {
	t.Helper()
	cfg, warnings, err := ParseConfig([]byte(toml), "bootstrapping.toml")
	if err != nil {
		t.Fatalf("%s: %v", toml, err)
	}
	return cfg, warnings
}

func TestParseConfig(t *testing.T) {
	cfg, w := parse(t, "")
	if !reflect.DeepEqual(cfg, DefaultConfig()) || len(w) != 0 || cfg.Layout.SystemSize != 4<<30 {
		t.Errorf("empty file: %+v %v", cfg, w)
	}
	cfg, w = parse(t, "disabled = true\n[layout]\ntype = \"default\"\nsystem-size = \"256MiB\"\n")
	if !cfg.Disabled || !reflect.DeepEqual(cfg.Layout, Layout{Type: LayoutDefault, SystemSize: 256 << 20}) || len(w) != 0 {
		t.Errorf("default layout: %+v %v", cfg, w)
	}
	cfg, _ = parse(t, "[layout]\ntype = \"default\"\nsystem-size = 1048576\n")
	if cfg.Layout.SystemSize != 1<<20 {
		t.Errorf("integer system-size: %+v", cfg.Layout)
	}
	cfg, _ = parse(t, "[layout]\ntype = \"default\"\n")
	if cfg.Layout.SystemSize != DefaultSystemSize {
		t.Errorf("default without system-size: %+v", cfg.Layout)
	}
	cfg, w = parse(t, "[layout]\ntype = \"none\"\n")
	if cfg.Layout.Type != LayoutNone || len(w) != 0 {
		t.Errorf("none: %+v %v", cfg, w)
	}

	// The two examples of the Rugix documentation.
	cfg, w = parse(t, `[layout]
type = "mbr"
partitions = [
    { name = "config", size = "256MiB", type = "0c" },
    { name = "boot-a", size = "128MiB", type = "0c" },
    { name = "boot-b", size = "128MiB", type = "0c" },
    { name = "extended", type = "05" },
    { name = "system-a", size = "6GiB" },
    { name = "system-b", size = "6GiB" },
    { name = "data", filesystem = { type = "ext4" } },
]
`)
	want := []PartitionConfig{
		{Name: "config", Size: 256 << 20, Type: "c"},
		{Name: "boot-a", Size: 128 << 20, Type: "c"},
		{Name: "boot-b", Size: 128 << 20, Type: "c"},
		{Name: "extended", Type: "5"},
		{Name: "system-a", Size: 6 << 30},
		{Name: "system-b", Size: 6 << 30},
		{Name: "data", Filesystem: &Filesystem{Type: "ext4"}},
	}
	if cfg.Layout.Type != LayoutMBR || !reflect.DeepEqual(cfg.Layout.Partitions, want) || len(w) != 0 {
		t.Errorf("mbr example: %+v %v", cfg.Layout, w)
	}
	cfg, w = parse(t, `[layout]
type = "gpt"
partitions = [
    { name = "EFI", size = "256MiB", type = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b" },
    { name = "boot-a", size = "256MiB" },
    { name = "data", filesystem = { type = "ext4", label = "data", additional-options = ["-O", "^metadata_csum"] } },
]
`)
	want = []PartitionConfig{
		{Name: "EFI", Size: 256 << 20, Type: gptEFI},
		{Name: "boot-a", Size: 256 << 20},
		{Name: "data", Filesystem: &Filesystem{Type: "ext4", Label: "data", AdditionalOptions: []string{"-O", "^metadata_csum"}}},
	}
	if cfg.Layout.Type != LayoutGPT || !reflect.DeepEqual(cfg.Layout.Partitions, want) || len(w) != 0 {
		t.Errorf("gpt example: %+v %v", cfg.Layout, w)
	}
}

func TestParseConfigWarnings(t *testing.T) {
	_, w := parse(t, `disable = true
[layout]
type = "mbr"
system-size = "1G"
partitions = [{ size = "1G", tpye = "83", filesystem = { type = "ext4", lable = "x" } }]
[extra]
a = 1
`)
	joined := strings.Join(w, "\n")
	for _, key := range []string{`"disable"`, `"layout.partitions.tpye"`, `"layout.partitions.filesystem.lable"`, `"extra"`, "system-size ignored"} {
		if !strings.Contains(joined, key) {
			t.Errorf("no warning about %s in:\n%s", key, joined)
		}
	}
	if strings.Contains(joined, `"extra.a"`) {
		t.Errorf("warned about a key inside an unknown table:\n%s", joined)
	}
	for _, l := range w {
		if !strings.HasPrefix(l, "bootstrapping.toml: ") {
			t.Errorf("warning %q does not name the file", l)
		}
	}
	_, w = parse(t, "[layout]\ntype = \"none\"\nsystem-size = \"1G\"\n")
	if len(w) != 1 {
		t.Errorf("none with system-size: %v", w)
	}
}

func TestParseConfigErrors(t *testing.T) {
	for toml, want := range map[string]string{
		"disabled = \"yes\"":             "disabled",
		"layout = 1":                     "expected table",
		"[layout]\nsystem-size = \"1G\"": "type is missing",
		"[layout]\ntype = \"lvm\"":       "unknown layout",
		"[layout]\ntype = \"default\"\nsystem-size = \"big\"":                                          "layout.system-size",
		"[layout]\ntype = \"default\"\nsystem-size = 0":                                                "must be positive",
		"[layout]\ntype = \"default\"\nsystem-size = true":                                             "a size must be",
		"[layout]\ntype = \"mbr\"":                                                                     "needs partitions",
		"[layout]\ntype = \"mbr\"\npartitions = [{ size = \"1Q\" }]":                                   "partitions[0]: size",
		"[layout]\ntype = \"mbr\"\npartitions = [{}, { type = \"0x83\" }]":                             "partitions[1]: type",
		"[layout]\ntype = \"mbr\"\npartitions = [{ type = \"100\" }]":                                  "type",
		"[layout]\ntype = \"mbr\"\npartitions = [{ type = \"00\" }]":                                   "type",
		"[layout]\ntype = \"gpt\"\npartitions = [{ type = \"C12A7328-F81F-11D2-BA4B-00A0C93EC9XB\" }]": "invalid GUID",
		"[layout]\ntype = \"gpt\"\npartitions = [{ filesystem = { type = \"vfat\" } }]":                "unsupported type",
		"[layout]\ntype = \"gpt\"\npartitions = [{ filesystem = { label = \"x\" } }]":                  "type is missing",
		"[layout\n": "bootstrapping.toml",
	} {
		_, _, err := ParseConfig([]byte(toml), "bootstrapping.toml")
		if err == nil || !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), "bootstrapping.toml") {
			t.Errorf("%q: err = %v, want %q", toml, err, want)
		}
	}
}

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	cfg, w, err := LoadConfig(filepath.Join(dir, "missing.toml"))
	if err != nil || !reflect.DeepEqual(cfg, DefaultConfig()) || w != nil {
		t.Errorf("missing file: %+v %v %v", cfg, w, err)
	}
	path := filepath.Join(dir, "bootstrapping.toml")
	os.WriteFile(path, []byte("[layout]\ntype = \"none\"\n"), 0o644)
	if cfg, _, err := LoadConfig(path); err != nil || cfg.Layout.Type != LayoutNone {
		t.Errorf("%+v %v", cfg, err)
	}
	if _, _, err := LoadConfig(dir); err == nil {
		t.Error("reading a directory succeeded")
	}
}

// FuzzParseConfig feeds arbitrary files to ParseConfig: it must not panic,
// and what it accepts must be usable.
func FuzzParseConfig(f *testing.F) {
	f.Add("[layout]\ntype = \"default\"\nsystem-size = \"4GiB\"\n")
	f.Add("[layout]\ntype = \"mbr\"\npartitions = [{ size = \"1.5G\", type = \"0c\" }, { type = \"05\" }, { filesystem = { type = \"ext4\" } }]\n")
	f.Add("disabled = true\n[layout]\ntype = \"none\"\n")
	f.Fuzz(func(t *testing.T, s string) {
		cfg, _, err := ParseConfig([]byte(s), "f.toml")
		if err != nil {
			return
		}
		switch cfg.Layout.Type {
		case LayoutDefault:
			if cfg.Layout.SystemSize == 0 {
				t.Fatal("default layout without a system size")
			}
		case LayoutMBR, LayoutGPT:
			for _, p := range cfg.Layout.Partitions {
				if p.Type != "" && len(p.Type) != 36 && !isExtended(p.Type) {
					if _, err := normalizeType(p.Type); err != nil {
						t.Fatalf("type %q accepted: %v", p.Type, err)
					}
				}
			}
		case LayoutNone:
		default:
			t.Fatalf("layout type %q", cfg.Layout.Type)
		}
	})
}
