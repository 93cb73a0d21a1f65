package system

import (
	"fmt"
	"sort"
)

// Partition table types, as Disk.Table reports them.
const (
	TableDOS = "dos" // MBR
	TableGPT = "gpt"
)

// Layout is the default partition numbering of a root disk (§3.1). The MBR
// layout has an extended partition at 4, which shifts everything after it.
type Layout struct {
	Table   string // TableDOS or TableGPT
	Config  int
	BootA   int
	BootB   int
	SystemA int
	SystemB int
	Data    int
}

// DefaultLayout returns the default layout for a partition table type.
func DefaultLayout(table string) (Layout, error) {
	switch table {
	case TableDOS:
		return Layout{Table: table, Config: 1, BootA: 2, BootB: 3, SystemA: 5, SystemB: 6, Data: 7}, nil
	case TableGPT:
		return Layout{Table: table, Config: 1, BootA: 2, BootB: 3, SystemA: 4, SystemB: 5, Data: 6}, nil
	}
	return Layout{}, fmt.Errorf("unknown partition table type %q (want %q or %q)", table, TableDOS, TableGPT)
}

var defaultSlotNames = []string{"boot-a", "boot-b", "system-a", "system-b"}

// Slots returns the default slots of the layout: boot slots are mutable,
// system slots immutable (so their hashes are recorded for delta updates).
func (l Layout) Slots() []SlotConfig {
	return []SlotConfig{
		{Name: "boot-a", Type: SlotBlock, Partition: l.BootA},
		{Name: "boot-b", Type: SlotBlock, Partition: l.BootB},
		{Name: "system-a", Type: SlotBlock, Partition: l.SystemA, Immutable: true},
		{Name: "system-b", Type: SlotBlock, Partition: l.SystemB, Immutable: true},
	}
}

// defaultGroups are the groups a and b of a system without [boot-groups].
func defaultGroups() []GroupConfig {
	return []GroupConfig{
		{Name: "a", Slots: map[string]string{"boot": "boot-a", "system": "system-a"}},
		{Name: "b", Slots: map[string]string{"boot": "boot-b", "system": "system-b"}},
	}
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
