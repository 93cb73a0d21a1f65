package system

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bascule-ota/bascule/internal/hashes"
	"github.com/bascule-ota/bascule/internal/slotdb"
)

const sum = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"

func infoSystem(t *testing.T) *System {
	t.Helper()
	s, err := New(nil, fakeDisk{TableDOS, 7}, runningFrom(179, 5), devOf)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func stateRoot(t *testing.T, dirs ...string) string {
	t.Helper()
	root := t.TempDir()
	for _, d := range dirs {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// The shape of the reference's example (§2.1), which follows Rugix's
// output schema: every slot has "active"; hashes, size and updatedAt only
// with a slot database entry; groups are empty objects.
func TestInfoJSON(t *testing.T) {
	s := infoSystem(t)
	size := uint64(123)
	at := time.Date(2025, 6, 1, 12, 30, 0, 0, time.FixedZone("CEST", 2*3600))
	d, err := hashes.ParseDigest("sha512-256:" + sum)
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]*slotdb.State{
		"system-a": {Hashes: []hashes.Digest{d}, Size: &size, UpdatedAt: &at},
		"boot-b":   {}, // recorded without hashes
	}
	var warnings []string
	info := s.Info(InfoSource{
		BootFlow:     "rpi-tryboot",
		DefaultGroup: "a",
		LoadState: func(slot string) (*slotdb.State, error) {
			if slot == "system-b" {
				return nil, errors.New("state.json: unexpected end of JSON input")
			}
			return states[slot], nil
		},
		DataDevice: func() (string, error) { return "/dev/mmcblk0p7", nil },
		Root:       stateRoot(t, StateDir),
		Warn:       func(m string) { warnings = append(warnings, m) },
	})
	got, err := json.Marshal(info)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"slots":{` +
		`"boot-a":{"active":true},` +
		`"boot-b":{"active":false,"hashes":{}},` +
		`"system-a":{"active":true,"hashes":{"sha512_256":"sha512-256:` + sum + `"},"size":123,"updatedAt":"2025-06-01T10:30:00Z"},` +
		`"system-b":{"active":false}},` +
		`"boot":{"bootFlow":"rpi-tryboot","activeGroup":"a","defaultGroup":"a","groups":{"a":{},"b":{}}},` +
		`"state":{"status":"Active","dataPartition":"/dev/mmcblk0p7"}}`
	if string(got) != want {
		t.Errorf("JSON:\n%s\nwant:\n%s", got, want)
	}
	if len(warnings) != 1 || warnings[0] != "slot system-b: state.json: unexpected end of JSON input" {
		t.Errorf("warnings %q", warnings)
	}

	var b bytes.Buffer
	if err := info.WriteSummary(&b); err != nil {
		t.Fatal(err)
	}
	wantSummary := "Boot Flow: rpi-tryboot\nActive Boot Group: a\nDefault Boot Group: a\n" +
		"Slot \"boot-a\": active\nSlot \"boot-b\": inactive\nSlot \"system-a\": active\nSlot \"system-b\": inactive\n"
	if b.String() != wantSummary {
		t.Errorf("summary:\n%s\nwant:\n%s", b.String(), wantSummary)
	}
}

func TestInfoStateStatus(t *testing.T) {
	s := infoSystem(t)
	dataDev := func() (string, error) { return "/dev/mmcblk0p7", nil }
	for _, tc := range []struct {
		name string
		root string
		want string
	}{
		{"no state dir", stateRoot(t), `{"status":"Disabled"}`},
		{"mount error", stateRoot(t, StateDir, filepath.Dir(DataMountErrLog)), `{"status":"Active","dataPartition":"/dev/mmcblk0p7"}`},
		{"active", stateRoot(t, StateDir), `{"status":"Active","dataPartition":"/dev/mmcblk0p7"}`},
	} {
		if tc.name == "mount error" {
			os.WriteFile(filepath.Join(tc.root, DataMountErrLog), []byte("mount: failed"), 0o644)
			tc.want = `{"status":"Error"}`
		}
		info := s.Info(InfoSource{DataDevice: dataDev, Root: tc.root})
		got, _ := json.Marshal(info)
		// infoSystem runs from partition 5: group a.
		want := `{"slots":{"boot-a":{"active":true},"boot-b":{"active":false},"system-a":{"active":true},"system-b":{"active":false}},"state":` + tc.want + `}`
		if string(got) != want {
			t.Errorf("%s:\n%s\nwant:\n%s", tc.name, got, want)
		}
	}
}

func TestInfoUnknownActive(t *testing.T) {
	s, err := New(nil, fakeDisk{TableGPT, 6}, runningFrom(8, 1), devOf)
	if err != nil {
		t.Fatal(err)
	}
	info := s.Info(InfoSource{BootFlow: "grub", Root: stateRoot(t, StateDir)})
	got, _ := json.Marshal(info)
	want := `{"slots":{"boot-a":{"active":false},"boot-b":{"active":false},"system-a":{"active":false},"system-b":{"active":false}},` +
		`"boot":{"bootFlow":"grub","groups":{"a":{},"b":{}}},"state":{"status":"Active"}}`
	if string(got) != want {
		t.Errorf("JSON:\n%s\nwant:\n%s", got, want)
	}
	var b bytes.Buffer
	info.WriteSummary(&b)
	if want := "Boot Flow: grub\nActive Boot Group: <unknown>\nDefault Boot Group: <unknown>\n"; !bytes.HasPrefix(b.Bytes(), []byte(want)) {
		t.Errorf("summary %q", b.String())
	}
}

func TestInfoFirmware(t *testing.T) {
	i := &Info{Boot: &BootInfo{BootFlow: "rpi-tryboot", ActiveGroup: "b", Groups: []string{"a", "b"}, Firmware: &FirmwareInfo{Partition: 3, Tryboot: true}}, State: StateInfo{Status: StatusDisabled}}
	b, err := i.MarshalJSON()
	want := `{"slots":{},"boot":{"bootFlow":"rpi-tryboot","activeGroup":"b","groups":{"a":{},"b":{}},"firmware":{"partition":3,"tryboot":true}},"state":{"status":"Disabled"}}`
	if err != nil || string(b) != want {
		t.Fatalf("got %s\nwant %s", b, want)
	}
}
