package bundle

import (
	"strings"
	"testing"
)

func TestManifestDefaultsAndAlias(t *testing.T) {
	m, err := ParseManifest([]byte(`
update-type = "incremental"
[[payloads]]
filename = "a.img"
delivery = { type = "slot", slot = "system" }
[payloads.block-encoding]
chunker = "casync-64"
deduplication = true
compression = { type = "xz" }
`), "m.toml")
	if err != nil {
		t.Fatal(err)
	}
	s := m.Specs[0].Block
	if !m.Incremental || m.HashAlg.String() != "sha512-256" || s.HashAlg.String() != "sha512-256" || !s.Dedup || s.Level != 6 {
		t.Fatalf("defaults/alias: %+v %+v", m, s)
	}
	// The embedded JSON uses Rugix's spelling and key order.
	want := `{"update-type":"incremental","payloads":[{"delivery":{"type":"slot","slot":"system"},"filename":"a.img","block-encoding":{"chunker":"casync-64","deduplicate":true,"compression":{"type":"xz"}}}]}`
	if got := m.JSON(); got != want {
		t.Fatalf("JSON\n got %s\nwant %s", got, want)
	}
	if len(m.Warnings) != 0 {
		t.Fatalf("warnings %v", m.Warnings)
	}
	// The TOML written by unpack parses back to the same JSON.
	back, err := ParseManifest(m.TOML(), "unpacked")
	if err != nil || back.JSON() != want {
		t.Fatalf("TOML round trip: %v\n%s", err, m.TOML())
	}
}

func TestManifestUnknownKeyWarns(t *testing.T) {
	m, err := ParseManifest([]byte(`
update-type = "full"
hash-algoritm = "sha256"
[[payloads]]
filename = "a.img"
delivery = { type = "slot", slot = "system", slott = "x" }
`), "dir/rugix-bundle.toml")
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(m.Warnings, "\n")
	for _, k := range []string{`dir/rugix-bundle.toml: unknown key "hash-algoritm"`, `"payloads.delivery.slott"`} {
		if !strings.Contains(got, k) {
			t.Errorf("warnings %q lack %s", got, k)
		}
	}
}

func TestManifestErrors(t *testing.T) {
	base := "update-type = \"full\"\n[[payloads]]\nfilename = \"a.img\"\ndelivery = { type = \"slot\", slot = \"s\" }\n"
	for want, text := range map[string]string{
		"update-type: missing":                                  "[[payloads]]\nfilename = \"a\"\ndelivery = { type = \"slot\", slot = \"s\" }\n",
		`update-type: "partial"`:                                "update-type = \"partial\"\n",
		"hash-algorithm: unknown hash algorithm \"md5\"":        "update-type = \"full\"\nhash-algorithm = \"md5\"\n",
		"payloads[0].filename: missing":                         "update-type = \"full\"\n[[payloads]]\ndelivery = { type = \"slot\", slot = \"s\" }\n",
		"payloads[0].filename: \"../x\"":                        "update-type = \"full\"\n[[payloads]]\nfilename = \"../x\"\ndelivery = { type = \"slot\", slot = \"s\" }\n",
		"payloads[0].delivery.slot: missing":                    "update-type = \"full\"\n[[payloads]]\nfilename = \"a\"\ndelivery = { type = \"slot\" }\n",
		"payloads[0].delivery.handler: missing":                 "update-type = \"full\"\n[[payloads]]\nfilename = \"a\"\ndelivery = { type = \"execute\" }\n",
		"payloads[0].delivery.type: \"copy\"":                   "update-type = \"full\"\n[[payloads]]\nfilename = \"a\"\ndelivery = { type = \"copy\" }\n",
		"payloads[0].block-encoding.chunker: missing":           base + "[payloads.block-encoding]\ndeduplicate = true\n",
		"payloads[0].block-encoding.chunker: invalid chunker":   base + "[payloads.block-encoding]\nchunker = \"rabin-64\"\n",
		"payloads[0].block-encoding.compression.level: 12":      base + "[payloads.block-encoding]\nchunker = \"fixed-64\"\ncompression = { type = \"xz\", level = 12 }\n",
		"payloads[0].block-encoding.compression.type: \"gzip\"": base + "[payloads.block-encoding]\nchunker = \"fixed-64\"\ncompression = { type = \"gzip\" }\n",
		"deduplicate and deduplication disagree":                base + "[payloads.block-encoding]\nchunker = \"fixed-64\"\ndeduplicate = true\ndeduplication = false\n",
		"payloads[0].delta-encoding.format":                     base + "[payloads.delta-encoding]\nformat = \"bsdiff\"\noriginal-hash = \"x\"\n",
		"payloads[0].delta-encoding.original-hash":              base + "[payloads.delta-encoding]\nformat = \"xdelta\"\noriginal-hash = \"sha256:00\"\n",
		"m.toml: toml:": "update-type = \n",
	} {
		_, err := ParseManifest([]byte(text), "m.toml")
		if err == nil || !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), "m.toml: ") {
			t.Errorf("want error containing %q, got %v", want, err)
		}
	}
}
