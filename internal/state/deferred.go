package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// deferredMarker is the Rugix 1.x form of the deferred reboot marker.
type deferredMarker struct {
	Version   int     `json:"version"`
	BootGroup *string `json:"bootGroup"`
}

// ReadDeferredReboot reads the deferred reboot marker on the data
// partition mounted at dataDir. ok is false without a marker. group is the
// group to try; "" means "the spare group" (the legacy empty marker of
// Rugix 0.8, or a 1.x marker without a group).
func ReadDeferredReboot(dataDir string) (group string, ok bool, err error) {
	path := filepath.Join(dataDir, DeferredRebootMarker)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("read deferred reboot marker %s: %w", path, err)
	}
	group, err = ParseDeferredReboot(b)
	if err != nil {
		return "", true, fmt.Errorf("deferred reboot marker %s: %w", path, err)
	}
	return group, true, nil
}

// ParseDeferredReboot parses the contents of a deferred reboot marker: empty
// (Rugix 0.8) or {"version":1,"bootGroup":"b"} (Rugix 1.x).
func ParseDeferredReboot(b []byte) (group string, err error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return "", nil
	}
	var m deferredMarker
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&m); err != nil {
		return "", fmt.Errorf("not JSON: %w", err)
	}
	if m.Version != 1 {
		return "", fmt.Errorf("version %d is not supported (want 1)", m.Version)
	}
	if m.BootGroup == nil {
		return "", nil
	}
	return *m.BootGroup, nil
}

// WriteDeferredReboot writes the marker in the 1.x form.
func WriteDeferredReboot(dataDir, group string) error {
	path := filepath.Join(dataDir, DeferredRebootMarker)
	b, _ := json.Marshal(deferredMarker{Version: 1, BootGroup: &group})
	if err := writeFlag(path, b); err != nil {
		return fmt.Errorf("write deferred reboot marker %s: %w", path, err)
	}
	return nil
}

// ClearDeferredReboot removes the marker durably.
func ClearDeferredReboot(dataDir string) error {
	path := filepath.Join(dataDir, DeferredRebootMarker)
	if err := removeFlag(path); err != nil {
		return fmt.Errorf("remove deferred reboot marker %s: %w", path, err)
	}
	return nil
}
