package system

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/bascule-ota/bascule/internal/slotdb"
)

// State management statuses of `system info`.
const (
	StatusDisabled = "Disabled" // no StateDir
	StatusError    = "Error"    // the data partition failed to mount
	StatusActive   = "Active"
)

// Info is the `system info` report. It marshals to the JSON Rugix prints:
// camelCase keys, slots and groups in system order, absent values omitted.
type Info struct {
	Slots []SlotInfo
	Boot  *BootInfo // nil if the boot flow is unknown
	State StateInfo
}

// SlotInfo is one slot of the report.
type SlotInfo struct {
	Name   string
	Active bool
	// Hashes is nil when the slot database has no state for the slot; a
	// state without hashes shows as an empty map, as in Rugix.
	Hashes    map[string]string // algorithm JSON name -> digest string
	Size      *uint64
	UpdatedAt string // RFC 3339, "" if unknown
}

// BootInfo is the boot part of the report.
type BootInfo struct {
	BootFlow     string
	ActiveGroup  string // "" if unknown
	DefaultGroup string // "" if unknown
	Groups       []string
	// Firmware is what the Raspberry Pi firmware says it booted (from
	// /proc/device-tree/chosen/bootloader), a cross-check of ActiveGroup.
	// Bascule extension: the "firmware" key is absent when unknown.
	Firmware *FirmwareInfo
}

// FirmwareInfo is the firmware's own account of the boot.
type FirmwareInfo struct {
	Partition int
	Tryboot   bool
}

// StateInfo is the state management part of the report.
type StateInfo struct {
	Status        string // StatusDisabled, StatusError or StatusActive
	DataPartition string // only with StatusActive; "" if unknown
}

// InfoSource is what the report needs besides the System.
type InfoSource struct {
	BootFlow     string // name of the boot flow; "" leaves out the boot part
	DefaultGroup string // what the boot flow boots by default
	// LoadState returns the slot database entry of a slot (nil if none),
	// e.g. (*slotdb.DB).Load. Nil means no slot has state.
	LoadState func(slot string) (*slotdb.State, error)
	// DataDevice returns the device mounted at MountData. Nil or "" leaves
	// dataPartition out.
	DataDevice func() (string, error)
	// Root prefixes the /run/rugix paths probed for the state status; ""
	// is the real root. Tests point it at a temporary directory.
	Root string
	// Warn receives problems that do not stop the report, such as an
	// unreadable slot state. Nil drops them.
	Warn func(string)
}

// Info builds the `system info` report.
func (s *System) Info(src InfoSource) *Info {
	warn := func(format string, a ...any) {
		if src.Warn != nil {
			src.Warn(fmt.Sprintf(format, a...))
		}
	}
	info := &Info{}
	for _, slot := range s.Slots {
		si := SlotInfo{Name: slot.Name, Active: slot.Active}
		if src.LoadState != nil {
			st, err := src.LoadState(slot.Name)
			if err != nil {
				// Rugix reports the slot without state in this case.
				warn("slot %s: %v", slot.Name, err)
			}
			if st != nil {
				si.Hashes = map[string]string{}
				for _, d := range st.Hashes {
					si.Hashes[d.Alg.JSONName()] = d.String()
				}
				si.Size = st.Size
				if st.UpdatedAt != nil {
					si.UpdatedAt = st.UpdatedAt.UTC().Format(time.RFC3339Nano)
				}
			}
		}
		info.Slots = append(info.Slots, si)
	}
	if src.BootFlow != "" {
		b := &BootInfo{BootFlow: src.BootFlow, ActiveGroup: s.active, DefaultGroup: src.DefaultGroup}
		for _, g := range s.Groups {
			b.Groups = append(b.Groups, g.Name)
		}
		info.Boot = b
	}
	root := src.Root
	if root == "" {
		root = "/"
	}
	switch {
	case !exists(filepath.Join(root, StateDir)):
		info.State.Status = StatusDisabled
	case exists(filepath.Join(root, DataMountErrLog)):
		info.State.Status = StatusError
	default:
		info.State.Status = StatusActive
		if src.DataDevice != nil {
			dev, err := src.DataDevice()
			if err != nil {
				warn("data partition: %v", err)
			}
			info.State.DataPartition = dev
		}
	}
	return info
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// MarshalJSON writes the report with the key order and omissions of
// Rugix's output schema (rugix-ctrl-output-info.schema.json).
func (i *Info) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(`{"slots":{`)
	for n, s := range i.Slots {
		if n > 0 {
			b.WriteByte(',')
		}
		writeJSON(&b, s.Name)
		b.WriteString(`:{"active":`)
		writeJSON(&b, s.Active)
		if s.Hashes != nil {
			b.WriteString(`,"hashes":`)
			writeJSON(&b, s.Hashes) // keys sorted
		}
		if s.Size != nil {
			b.WriteString(`,"size":`)
			writeJSON(&b, *s.Size)
		}
		if s.UpdatedAt != "" {
			b.WriteString(`,"updatedAt":`)
			writeJSON(&b, s.UpdatedAt)
		}
		b.WriteByte('}')
	}
	b.WriteByte('}')
	if i.Boot != nil {
		b.WriteString(`,"boot":{"bootFlow":`)
		writeJSON(&b, i.Boot.BootFlow)
		if i.Boot.ActiveGroup != "" {
			b.WriteString(`,"activeGroup":`)
			writeJSON(&b, i.Boot.ActiveGroup)
		}
		if i.Boot.DefaultGroup != "" {
			b.WriteString(`,"defaultGroup":`)
			writeJSON(&b, i.Boot.DefaultGroup)
		}
		b.WriteString(`,"groups":{`)
		for n, g := range i.Boot.Groups {
			if n > 0 {
				b.WriteByte(',')
			}
			writeJSON(&b, g)
			b.WriteString(`:{}`)
		}
		b.WriteString(`}`)
		if f := i.Boot.Firmware; f != nil {
			b.WriteString(`,"firmware":{"partition":`)
			writeJSON(&b, f.Partition)
			b.WriteString(`,"tryboot":`)
			writeJSON(&b, f.Tryboot)
			b.WriteString(`}`)
		}
		b.WriteString(`}`)
	}
	b.WriteString(`,"state":{"status":`)
	writeJSON(&b, i.State.Status)
	if i.State.Status == StatusActive && i.State.DataPartition != "" {
		b.WriteString(`,"dataPartition":`)
		writeJSON(&b, i.State.DataPartition)
	}
	b.WriteString(`}}`)
	return b.Bytes(), nil
}

// writeJSON appends the encoding of a string, bool, number or string map,
// which cannot fail. Like serde_json it leaves <, > and & unescaped.
func writeJSON(b *bytes.Buffer, v any) {
	e := json.NewEncoder(b)
	e.SetEscapeHTML(false)
	if err := e.Encode(v); err != nil {
		panic(err)
	}
	b.Truncate(b.Len() - 1) // Encode's newline
}

// WriteSummary prints the human-readable summary Rugix writes to stderr.
func (i *Info) WriteSummary(w io.Writer) error {
	var b bytes.Buffer
	if i.Boot != nil {
		fmt.Fprintf(&b, "Boot Flow: %s\n", i.Boot.BootFlow)
		fmt.Fprintf(&b, "Active Boot Group: %s\n", orUnknown(i.Boot.ActiveGroup))
		fmt.Fprintf(&b, "Default Boot Group: %s\n", orUnknown(i.Boot.DefaultGroup))
	}
	for _, s := range i.Slots {
		state := "inactive"
		if s.Active {
			state = "active"
		}
		fmt.Fprintf(&b, "Slot %q: %s\n", s.Name, state)
	}
	_, err := w.Write(b.Bytes())
	return err
}

func orUnknown(s string) string {
	if s == "" {
		return "<unknown>"
	}
	return s
}
