package disk

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// needTools skips the test unless all the named programs are installed.
func needTools(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			t.Skipf("%s not installed", n)
		}
	}
}

// run runs a command and returns its standard output, failing the test with
// the command's standard error if it fails.
func run(t testing.TB, stdin string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// sfdiskImage creates a sparse image file of size bytes in a temporary
// directory and writes the partition table of script to it with sfdisk;
// "IMG" in the script stands for the image's path, for partition names.
func sfdiskImage(t testing.TB, size int64, script string) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, size); err != nil {
		t.Fatal(err)
	}
	script = strings.ReplaceAll(script, "IMG", img)
	run(t, script, "sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", img)
	return img
}

// sfdiskDump is the part of "sfdisk --json" that a Table is checked against.
type sfdiskDump struct {
	PartitionTable struct {
		Label      string `json:"label"`
		ID         string `json:"id"`
		Device     string `json:"device"`
		SectorSize int    `json:"sectorsize"`
		Partitions []struct {
			Node     string `json:"node"`
			Start    uint64 `json:"start"`
			Size     uint64 `json:"size"`
			Type     string `json:"type"`
			UUID     string `json:"uuid"`
			Name     string `json:"name"`
			Bootable bool   `json:"bootable"`
		} `json:"partitions"`
	} `json:"partitiontable"`
}

// trailingNumber returns the number at the end of a partition node name.
func trailingNumber(t testing.TB, node string) int {
	t.Helper()
	i := len(node)
	for i > 0 && node[i-1] >= '0' && node[i-1] <= '9' {
		i--
	}
	n, err := strconv.Atoi(node[i:])
	if err != nil {
		t.Fatalf("no partition number in %q", node)
	}
	return n
}

// checkAgainstSfdisk compares got with what sfdisk and partx (libblkid) read
// from dev.
func checkAgainstSfdisk(t *testing.T, dev string, got *Table) {
	t.Helper()
	var d sfdiskDump
	if err := json.Unmarshal([]byte(run(t, "", "sfdisk", "--json", dev)), &d); err != nil {
		t.Fatalf("parse sfdisk --json %s: %v", dev, err)
	}
	pt := d.PartitionTable
	if got.Type != pt.Label {
		t.Errorf("Type = %q, sfdisk says %q", got.Type, pt.Label)
	}
	wantID := strings.ToLower(strings.TrimPrefix(pt.ID, "0x"))
	if got.DiskID != wantID {
		t.Errorf("DiskID = %q, sfdisk says %q", got.DiskID, pt.ID)
	}
	if got.SectorSize != pt.SectorSize {
		t.Errorf("SectorSize = %d, sfdisk says %d", got.SectorSize, pt.SectorSize)
	}
	if len(got.Partitions) != len(pt.Partitions) {
		t.Fatalf("%d partitions, sfdisk lists %d:\n%+v", len(got.Partitions), len(pt.Partitions), got.Partitions)
	}
	ss := uint64(pt.SectorSize)
	for i, sp := range pt.Partitions {
		p := got.Partitions[i]
		n := trailingNumber(t, sp.Node)
		if p.Number != n || p.Start != sp.Start*ss || p.Size != sp.Size*ss || p.Type != sp.Type ||
			p.Name != sp.Name || p.Bootable != sp.Bootable {
			t.Errorf("partition %+v, sfdisk says %+v", p, sp)
		}
		if sp.UUID != "" && p.UUID != strings.ToLower(sp.UUID) {
			t.Errorf("partition %d UUID = %q, sfdisk says %q", n, p.UUID, sp.UUID)
		}
		ext := pt.Label == "dos" && (sp.Type == "5" || sp.Type == "f" || sp.Type == "85")
		if p.Extended != ext {
			t.Errorf("partition %d Extended = %v, type %s", n, p.Extended, sp.Type)
		}
	}
	// partx prints the PARTUUID as libblkid (and so blkid) derives it.
	uuids := map[int]string{}
	for _, line := range strings.Split(strings.TrimSpace(run(t, "", "partx", "--noheadings", "--raw", "--output", "NR,UUID", dev)), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			t.Fatalf("partx line %q", line)
		}
		n, _ := strconv.Atoi(f[0])
		uuids[n] = f[1]
	}
	if len(uuids) != len(got.Partitions) {
		t.Errorf("partx lists %d partitions, want %d", len(uuids), len(got.Partitions))
	}
	for _, p := range got.Partitions {
		if uuids[p.Number] != p.UUID {
			t.Errorf("partition %d UUID = %q, partx says %q", p.Number, p.UUID, uuids[p.Number])
		}
	}
}
