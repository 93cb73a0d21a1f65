// Package system models a Rugix-compatible A/B system: its configuration
// (/etc/rugix/system.toml, /etc/rugix/ctrl.toml), its slots and boot groups,
// which group is running, and the `system info` report.
//
// The package does not touch disks itself. The root disk and the device
// numbers come in through small interfaces and functions, so that the
// model can be tested with fakes and wired to the disk package later.
package system

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Disk is the root disk: the disk that holds the system partition.
type Disk interface {
	// Table is the partition table type, TableDOS or TableGPT.
	Table() string
	// PartitionPath is the device path of partition n, or "" if there is
	// no such partition.
	PartitionPath(n int) string
}

// diskPath is implemented by disks that know their own device path; it
// fills System.RootDevice.
type diskPath interface{ Path() string }

// Slot is an update target.
type Slot struct {
	Name      string
	Type      string // SlotBlock, SlotFile or SlotCustom
	Device    string // block: the device path, resolved from a partition number if need be
	Partition int    // block: the configured partition number, 0 if a device was given
	Path      string // file
	Handler   []string
	Immutable bool
	Optional  bool
	// Active is set for every slot of the active boot group.
	Active bool
	// Missing is set for an optional block slot whose device is absent.
	Missing bool

	dev uint64 // st_rdev of Device
}

// Group is a boot group: aliases that map to slot names.
type Group struct {
	Name  string
	Slots map[string]string // alias -> slot name
}

// System is a resolved system model.
type System struct {
	Config *Config
	// Layout is the default layout of the root disk, nil without a disk.
	Layout *Layout
	// Slots are in config order, or boot-a, boot-b, system-a, system-b.
	Slots []Slot
	// Groups are in config order, or a, b.
	Groups []Group
	// RootDevice is the root disk's device path, if the Disk has a
	// Path() string method; "" otherwise.
	RootDevice string

	disk      Disk
	active    string
	activeErr error
}

// New resolves cfg against the root disk. disk may be nil if nothing needs
// partition numbers resolved. systemDev returns st_dev of the mounted
// system (see SystemDevice); devOf returns st_rdev of a block device node
// (see DeviceNumber). A block slot whose device cannot be looked up is an
// error unless it is optional, as in Rugix, which refuses to start then.
func New(cfg *Config, disk Disk, systemDev func() (uint64, error), devOf func(path string) (uint64, error)) (*System, error) {
	if cfg == nil {
		cfg = DefaultConfig()
	}
	s := &System{Config: cfg, disk: disk}
	if disk != nil {
		l, err := DefaultLayout(disk.Table())
		if err != nil {
			return nil, fmt.Errorf("root disk: %w", err)
		}
		s.Layout = &l
		if p, ok := disk.(diskPath); ok {
			s.RootDevice = p.Path()
		}
	}
	slots := cfg.Slots
	if slots == nil {
		if s.Layout == nil {
			return nil, fmt.Errorf("no slots configured, and the default slots need the root disk's partition table")
		}
		slots = s.Layout.Slots()
	}
	seen := map[string]bool{}
	for _, c := range slots {
		if seen[c.Name] {
			return nil, fmt.Errorf("slot %q defined twice", c.Name)
		}
		seen[c.Name] = true
		slot := Slot{
			Name: c.Name, Type: c.Type, Device: c.Device, Partition: c.Partition,
			Path: c.Path, Handler: c.Handler, Immutable: c.Immutable, Optional: c.Optional,
		}
		if c.Type == SlotBlock {
			if slot.Device == "" {
				p, err := s.partitionPath(c.Partition)
				if err != nil {
					return nil, fmt.Errorf("slot %q: %w", c.Name, err)
				}
				slot.Device = p
			}
			if devOf != nil {
				dev, err := devOf(slot.Device)
				switch {
				case err == nil:
					slot.dev = dev
				case c.Optional:
					slot.Missing = true
				default:
					return nil, fmt.Errorf("slot %q: %w", c.Name, err)
				}
			}
		}
		s.Slots = append(s.Slots, slot)
	}
	groups := cfg.BootGroups
	if groups == nil {
		groups = defaultGroups()
	}
	for _, g := range groups {
		for _, alias := range sortedKeys(g.Slots) {
			if !seen[g.Slots[alias]] {
				return nil, fmt.Errorf("boot group %q: alias %q: unknown slot %q", g.Name, alias, g.Slots[alias])
			}
		}
		s.Groups = append(s.Groups, Group{Name: g.Name, Slots: g.Slots})
	}
	s.findActive(systemDev, devOf != nil)
	return s, nil
}

func (s *System) partitionPath(n int) (string, error) {
	if s.disk == nil {
		return "", fmt.Errorf("partition %d: root disk unknown", n)
	}
	p := s.disk.PartitionPath(n)
	if p == "" {
		return "", fmt.Errorf("partition %d: not found on the root disk", n)
	}
	return p, nil
}

// findActive applies the 0.8 rule: the first group with a block slot on
// the device the system runs from is active, and so are all its slots.
// The kernel command line is not consulted, as in Rugix.
func (s *System) findActive(systemDev func() (uint64, error), haveDevs bool) {
	if systemDev == nil || !haveDevs {
		s.activeErr = fmt.Errorf("active boot group unknown: no device numbers")
		return
	}
	dev, err := systemDev()
	if err != nil {
		s.activeErr = fmt.Errorf("active boot group unknown: %w", err)
		return
	}
	for _, g := range s.Groups {
		for _, alias := range sortedKeys(g.Slots) {
			slot := s.slot(g.Slots[alias])
			if slot.Type == SlotBlock && !slot.Missing && slot.dev == dev {
				s.active = g.Name
				for _, name := range g.Slots {
					s.slot(name).Active = true
				}
				return
			}
		}
	}
	s.activeErr = fmt.Errorf("active boot group unknown: no boot group has a block slot on the system device %d:%d",
		unix.Major(dev), unix.Minor(dev))
}

func (s *System) slot(name string) *Slot {
	for i := range s.Slots {
		if s.Slots[i].Name == name {
			return &s.Slots[i]
		}
	}
	return nil
}

// Active is the group the system runs from.
func (s *System) Active() (string, error) {
	if s.active == "" {
		return "", s.activeErr
	}
	return s.active, nil
}

// NeedsCommit reports whether the running group differs from the default
// group def, which the boot flow knows. An unknown active group needs a
// commit too, so that nothing is installed over a system of unclear state.
func (s *System) NeedsCommit(def string) bool { return s.active == "" || s.active != def }

// Spare is the first group that is not the default group def, "" if none.
func (s *System) Spare(def string) string {
	for _, g := range s.Groups {
		if g.Name != def {
			return g.Name
		}
	}
	return ""
}

// Group looks a boot group up by name.
func (s *System) Group(name string) (*Group, error) {
	for i := range s.Groups {
		if s.Groups[i].Name == name {
			return &s.Groups[i], nil
		}
	}
	return nil, fmt.Errorf("no boot group %q", name)
}

// Slot looks a slot up by its global name.
func (s *System) Slot(name string) (*Slot, error) {
	if slot := s.slot(name); slot != nil {
		return slot, nil
	}
	return nil, fmt.Errorf("no slot %q", name)
}

// SlotByAlias resolves a bundle payload's slot: an alias of group, else a
// global slot name. group "" skips the alias lookup.
func (s *System) SlotByAlias(group, alias string) (*Slot, error) {
	if group != "" {
		g, err := s.Group(group)
		if err != nil {
			return nil, err
		}
		if name, ok := g.Slots[alias]; ok {
			return s.Slot(name)
		}
	}
	if slot := s.slot(alias); slot != nil {
		return slot, nil
	}
	if group != "" {
		return nil, fmt.Errorf("no slot %q in boot group %q nor a slot of that name", alias, group)
	}
	return nil, fmt.Errorf("no slot %q", alias)
}

// InactiveGroup picks the update target when none is given: with at most
// two groups the one that is not active. With more groups the choice is
// ambiguous and the caller must name one.
func (s *System) InactiveGroup(active string) (string, error) {
	if len(s.Groups) > 2 {
		return "", fmt.Errorf("%d boot groups: name the boot group to install to", len(s.Groups))
	}
	if active == "" {
		return "", fmt.Errorf("active boot group unknown: name the boot group to install to")
	}
	for _, g := range s.Groups {
		if g.Name != active {
			return g.Name, nil
		}
	}
	return "", fmt.Errorf("no boot group other than %q", active)
}

// SlotDevice is the path a slot's content is read from and written to:
// the device of a block slot, the path of a file slot. Custom slots have
// none.
func (s *System) SlotDevice(slot *Slot) (string, error) {
	switch slot.Type {
	case SlotBlock:
		if slot.Missing {
			return "", fmt.Errorf("slot %q: optional device %s is absent", slot.Name, slot.Device)
		}
		return slot.Device, nil
	case SlotFile:
		return slot.Path, nil
	}
	return "", fmt.Errorf("slot %q: a %s slot has no device", slot.Name, slot.Type)
}

// ConfigPartitionDevice is the device of the config partition: the
// configured device, else the configured or default partition (1) of the
// root disk.
func (s *System) ConfigPartitionDevice() (string, error) {
	return s.partitionDevice("config partition", s.Config.ConfigPartition, 1)
}

// DataPartitionDevice is the device of the data partition: the configured
// device, else the configured or default partition (7 MBR, 6 GPT). It is ""
// with no error if the data partition is disabled.
func (s *System) DataPartitionDevice() (string, error) {
	def := 0
	if s.Layout != nil {
		def = s.Layout.Data
	}
	return s.partitionDevice("data partition", s.Config.DataPartition, def)
}

func (s *System) partitionDevice(what string, c PartitionConfig, def int) (string, error) {
	if c.Disabled {
		return "", nil
	}
	if c.Device != "" {
		return c.Device, nil
	}
	n := c.Partition
	if n == 0 {
		n = def
	}
	if n == 0 {
		return "", fmt.Errorf("%s: root disk unknown", what)
	}
	p, err := s.partitionPath(n)
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	return p, nil
}
