package system

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/BurntSushi/toml"
)

// Well-known paths of a Rugix-compatible system.
const (
	ConfigPath      = "/etc/rugix/system.toml"
	MountSystem     = "/run/rugix/mounts/system"
	MountConfig     = "/run/rugix/mounts/config"
	MountData       = "/run/rugix/mounts/data"
	StateDir        = "/run/rugix/state"
	DataMountErrLog = MountData + "/.rugix/data-mount-error.log"
)

// Slot types.
const (
	SlotBlock  = "block"
	SlotFile   = "file"
	SlotCustom = "custom"
)

// BootFlowTypes are the values [boot-flow] type may take. "systemd-boot"
// exists only in Rugix 1.x; it is accepted so that 1.x configs load.
var BootFlowTypes = []string{
	"rpi-tryboot", "rpi-uboot", "uboot", "grub",
	"rauc-uboot", "rauc-grub", "mender-grub", "mender-uboot",
	"systemd-boot", "custom",
}

// DriverTypes are the values [data-partition.driver] type may take (1.x).
var DriverTypes = []string{"plaintext-ext4", "luks2-passphrase", "luks2-tpm2", "custom"}

// Config is /etc/rugix/system.toml after defaults that do not depend on the
// root disk have been applied. Nil Slots or BootGroups mean "not configured":
// New then uses the defaults of §3.1, which depend on the partition table.
type Config struct {
	ConfigPartition PartitionConfig
	DataPartition   PartitionConfig
	Slots           []SlotConfig  // file order; nil = defaults
	BootGroups      []GroupConfig // file order; nil = defaults
	BootFlow        *BootFlowConfig
}

// PartitionConfig is [config-partition] or [data-partition].
type PartitionConfig struct {
	Disabled bool
	// Device, when set, wins over Partition (Rugix warns, and so do we).
	Device string
	// Partition is the partition number on the root disk; 0 means the
	// default for the partition table (1 for config, 7 MBR / 6 GPT for data).
	Partition int
	// Path is where the partition is mounted.
	Path string
	// Protected makes writers remount the config partition read-write and
	// back. It defaults to true.
	Protected bool
	// MountScript mounts the data partition: <script> <mountpoint> [<device>].
	MountScript string
	// FailOnMountError (1.x) stops init instead of continuing with
	// ephemeral state when the data partition cannot be mounted.
	FailOnMountError bool
	// Driver (1.x) formats, mounts and wipes the data partition.
	Driver *DriverConfig
}

// DriverConfig is [data-partition.driver] of Rugix 1.x. Keys that do not
// apply to Type are left empty; defaults are filled in.
type DriverConfig struct {
	Type                  string
	Label                 string   // all but custom; default "data"
	AdditionalOptions     []string // plaintext-ext4: extra mkfs.ext4 options
	AdditionalMkfsOptions []string // luks2-*: extra mkfs.ext4 options
	PassphraseFile        string   // luks2-passphrase, required
	MapperName            string   // luks2-*; default "rugix-data"
	PCRs                  []uint32 // luks2-tpm2
	Device                string   // luks2-tpm2: TPM device; default "auto"
	FormatScript          string   // custom
	MountScript           string   // custom, required
	WipeScript            string   // custom
}

// SlotConfig is one [slots.<name>] table.
type SlotConfig struct {
	Name      string
	Type      string // SlotBlock, SlotFile or SlotCustom
	Device    string // block
	Partition int    // block; 0 = not set
	Path      string // file
	Handler   []string
	Immutable bool
	Optional  bool // block, 1.x: the device may be absent
}

// GroupConfig is one [boot-groups.<name>] table.
type GroupConfig struct {
	Name  string
	Slots map[string]string // alias -> slot name
}

// BootFlowConfig is [boot-flow]. Keys that do not apply to Type are left
// empty; defaults are filled in.
type BootFlowConfig struct {
	Type            string
	GroupNames      []string          // rauc-*; nil = upper-cased group names
	DefaultAttempts int               // rauc-*; default 3
	BootDir         string            // mender-*; default "/boot"
	BootPartA       int               // mender-*; default 2
	BootPartB       int               // mender-*; default 3
	Controller      string            // custom, required
	Entries         map[string]string // systemd-boot: group -> entry id, required
	// KeepInit (rpi-*, Bascule extension) keeps a user's own init= when
	// cmdline.txt is patched after an install (rugix/rugix#125).
	KeepInit bool
}

// DefaultConfig is the configuration of a system without system.toml.
func DefaultConfig() *Config {
	return &Config{
		ConfigPartition: PartitionConfig{Path: MountConfig, Protected: true},
		DataPartition:   PartitionConfig{Path: MountData, Protected: true},
	}
}

// LoadConfig reads a system.toml. A missing file means all defaults. Keys
// Rugix does not know are reported as warnings, because Rugix ignores them
// silently and a typo would otherwise change behaviour unnoticed.
func LoadConfig(path string) (*Config, []string, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return DefaultConfig(), nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read system config: %w", err)
	}
	return ParseConfig(data, path)
}

// The raw* types mirror the file; pointers tell "absent" from zero values.
type rawConfig struct {
	ConfigPartition *rawPartition       `toml:"config-partition"`
	DataPartition   *rawPartition       `toml:"data-partition"`
	Slots           map[string]rawSlot  `toml:"slots"`
	BootGroups      map[string]rawGroup `toml:"boot-groups"`
	BootFlow        *rawBootFlow        `toml:"boot-flow"`
}

type rawPartition struct {
	Disabled         *bool      `toml:"disabled"`
	Device           *string    `toml:"device"`
	Partition        *uint32    `toml:"partition"`
	MountScript      *string    `toml:"mount-script"`
	Path             *string    `toml:"path"`
	Protected        *bool      `toml:"protected"`
	FailOnMountError *bool      `toml:"fail-on-mount-error"`
	Driver           *rawDriver `toml:"driver"`
}

type rawDriver struct {
	Type                  *string  `toml:"type"`
	Label                 *string  `toml:"label"`
	AdditionalOptions     []string `toml:"additional-options"`
	AdditionalMkfsOptions []string `toml:"additional-mkfs-options"`
	PassphraseFile        *string  `toml:"passphrase-file"`
	MapperName            *string  `toml:"mapper-name"`
	PCRs                  []uint32 `toml:"pcrs"`
	Device                *string  `toml:"device"`
	FormatScript          *string  `toml:"format-script"`
	MountScript           *string  `toml:"mount-script"`
	WipeScript            *string  `toml:"wipe-script"`
}

type rawSlot struct {
	Type      *string  `toml:"type"`
	Device    *string  `toml:"device"`
	Partition *uint32  `toml:"partition"`
	Path      *string  `toml:"path"`
	Handler   []string `toml:"handler"`
	Immutable *bool    `toml:"immutable"`
	Optional  *bool    `toml:"optional"`
}

type rawGroup struct {
	Slots map[string]string `toml:"slots"`
}

type rawBootFlow struct {
	Type            *string           `toml:"type"`
	GroupNames      []string          `toml:"group-names"`
	DefaultAttempts *uint32           `toml:"default-attempts"`
	BootDir         *string           `toml:"boot-dir"`
	BootPartA       *uint32           `toml:"boot-part-a"`
	BootPartB       *uint32           `toml:"boot-part-b"`
	Controller      *string           `toml:"controller"`
	Entries         map[string]string `toml:"entries"`
	KeepInit        *bool             `toml:"keep-init"`
}

// Keys each variant of a tagged table uses; the others are warned about.
var (
	slotKeys = map[string][]string{
		SlotBlock:  {"type", "device", "partition", "immutable", "optional"},
		SlotFile:   {"type", "path", "immutable"},
		SlotCustom: {"type", "handler"},
	}
	bootFlowKeys = map[string][]string{
		"rauc-uboot":   {"type", "group-names", "default-attempts"},
		"rauc-grub":    {"type", "group-names", "default-attempts"},
		"mender-grub":  {"type", "boot-dir", "boot-part-a", "boot-part-b"},
		"mender-uboot": {"type", "boot-dir", "boot-part-a", "boot-part-b"},
		"custom":       {"type", "controller"},
		"systemd-boot": {"type", "entries"},
		"rpi-tryboot":  {"type", "keep-init"},
		"rpi-uboot":    {"type", "keep-init"},
	}
	driverKeys = map[string][]string{
		"plaintext-ext4":   {"type", "label", "additional-options"},
		"luks2-passphrase": {"type", "passphrase-file", "label", "mapper-name", "additional-mkfs-options"},
		"luks2-tpm2":       {"type", "pcrs", "device", "label", "mapper-name", "additional-mkfs-options"},
		"custom":           {"type", "format-script", "mount-script", "wipe-script"},
	}
)

// parser carries the file name and the TOML metadata through validation.
type parser struct {
	file     string
	md       toml.MetaData
	warnings []string
	// unknownKeys are the keys already warned about as undecoded.
	unknownKeys map[string]bool
}

func (p *parser) errorf(key toml.Key, format string, a ...any) error {
	return fmt.Errorf("%s: %s: %s", p.file, key, fmt.Sprintf(format, a...))
}

func (p *parser) warnf(format string, a ...any) {
	p.warnings = append(p.warnings, p.file+": "+fmt.Sprintf(format, a...))
}

// undecoded warns about the keys the decoder did not use, except those
// under a key that skip accepts. An unknown table is reported once, not
// with every key inside it.
func (p *parser) undecoded(skip func(toml.Key) bool) {
	keys := p.md.Undecoded()
	p.unknownKeys = map[string]bool{}
	for _, k := range keys {
		p.unknownKeys[k.String()] = true
	}
	for i, k := range keys {
		if skip != nil && skip(k) {
			continue
		}
		inner := false
		for j, o := range keys {
			inner = inner || (j != i && len(o) < len(k) && hasPrefix(k, o))
		}
		if !inner {
			p.warnf("unknown key %q ignored", k.String())
		}
	}
}

// table checks that key, if present, is a table. The TOML decoder silently
// drops a scalar where a map is expected, which would hide a broken config.
func (p *parser) table(key ...string) error {
	if t := p.md.Type(key...); t != "" && t != "Hash" {
		return p.errorf(toml.Key(key), "must be a table, not %s", strings.ToLower(t))
	}
	return nil
}

// onlyKeys warns about keys of the table at prefix that its variant ignores.
func (p *parser) onlyKeys(prefix toml.Key, allowed []string, what string) {
	for _, k := range p.md.Keys() {
		if len(k) != len(prefix)+1 || !hasPrefix(k, prefix) {
			continue
		}
		name := k[len(prefix)]
		ok := false
		for _, a := range allowed {
			ok = ok || a == name
		}
		if !ok && !p.unknownKeys[k.String()] {
			p.warnf("unknown key %q ignored (not used by %s)", k.String(), what)
		}
	}
}

func hasPrefix(k, prefix toml.Key) bool {
	for i := range prefix {
		if k[i] != prefix[i] {
			return false
		}
	}
	return true
}

// order returns the names of the sub-tables of key in file order.
func (p *parser) order(key string) []string {
	var names []string
	seen := map[string]bool{}
	for _, k := range p.md.Keys() {
		if len(k) >= 2 && k[0] == key && !seen[k[1]] {
			seen[k[1]] = true
			names = append(names, k[1])
		}
	}
	return names
}

// ParseConfig parses the contents of a system.toml; file names it in
// messages.
func ParseConfig(data []byte, file string) (*Config, []string, error) {
	var raw rawConfig
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&raw)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", file, err)
	}
	p := &parser{file: file, md: md}
	p.undecoded(nil)
	for _, k := range []string{"slots", "boot-groups"} {
		if err := p.table(k); err != nil {
			return nil, nil, err
		}
	}
	c := DefaultConfig()
	if c.ConfigPartition, err = p.partition(raw.ConfigPartition, "config-partition", c.ConfigPartition); err != nil {
		return nil, nil, err
	}
	if c.ConfigPartition.Disabled {
		// Rugix 0.8 refuses to start without a config partition.
		return nil, nil, p.errorf(toml.Key{"config-partition", "disabled"}, "the config partition cannot be disabled")
	}
	if c.DataPartition, err = p.partition(raw.DataPartition, "data-partition", c.DataPartition); err != nil {
		return nil, nil, err
	}
	if raw.Slots != nil {
		c.Slots = []SlotConfig{}
		for _, name := range p.order("slots") {
			s, err := p.slot(name, raw.Slots[name])
			if err != nil {
				return nil, nil, err
			}
			c.Slots = append(c.Slots, s)
		}
	}
	if raw.BootGroups != nil {
		c.BootGroups = []GroupConfig{}
		for _, name := range p.order("boot-groups") {
			g, err := p.group(name, raw.BootGroups[name])
			if err != nil {
				return nil, nil, err
			}
			c.BootGroups = append(c.BootGroups, g)
		}
	}
	if err := c.checkGroups(file); err != nil {
		return nil, nil, err
	}
	if raw.BootFlow != nil {
		if c.BootFlow, err = p.bootFlow(raw.BootFlow); err != nil {
			return nil, nil, err
		}
	}
	return c, p.warnings, nil
}

func (p *parser) partition(r *rawPartition, name string, def PartitionConfig) (PartitionConfig, error) {
	c := def
	if r == nil {
		return c, nil
	}
	key := func(k string) toml.Key { return toml.Key{name, k} }
	if r.Disabled != nil {
		c.Disabled = *r.Disabled
	}
	if r.Partition != nil {
		if *r.Partition == 0 {
			return c, p.errorf(key("partition"), "partition numbers start at 1")
		}
		c.Partition = int(*r.Partition)
	}
	if r.Device != nil {
		if *r.Device == "" {
			return c, p.errorf(key("device"), "must not be empty")
		}
		c.Device = *r.Device
		if r.Partition != nil {
			p.warnf("%s: both device and partition are set; device %s wins", name, c.Device)
			c.Partition = 0
		}
	}
	if r.Path != nil {
		if !filepath.IsAbs(*r.Path) {
			return c, p.errorf(key("path"), "%q is not an absolute path", *r.Path)
		}
		c.Path = *r.Path
	}
	if r.Protected != nil {
		c.Protected = *r.Protected
	}
	if r.MountScript != nil {
		if name != "data-partition" {
			p.warnf("%s is only used in [data-partition]; ignored", key("mount-script"))
		}
		c.MountScript = *r.MountScript
	}
	if r.FailOnMountError != nil {
		if name != "data-partition" {
			p.warnf("%s is only used in [data-partition]; ignored", key("fail-on-mount-error"))
		}
		c.FailOnMountError = *r.FailOnMountError
	}
	if r.Driver != nil {
		if name != "data-partition" {
			return c, p.errorf(key("driver"), "a driver is only valid for the data partition")
		}
		if r.MountScript != nil {
			return c, p.errorf(key("driver"), "driver and mount-script exclude each other")
		}
		d, err := p.driver(r.Driver, key("driver"))
		if err != nil {
			return c, err
		}
		c.Driver = d
	}
	return c, nil
}

func (p *parser) driver(r *rawDriver, prefix toml.Key) (*DriverConfig, error) {
	key := func(k string) toml.Key { return append(append(toml.Key{}, prefix...), k) }
	if r.Type == nil {
		return nil, p.errorf(key("type"), "missing (want one of %s)", strings.Join(DriverTypes, ", "))
	}
	allowed, ok := driverKeys[*r.Type]
	if !ok {
		return nil, p.errorf(key("type"), "unknown driver %q (want one of %s)", *r.Type, strings.Join(DriverTypes, ", "))
	}
	p.onlyKeys(prefix, allowed, "driver "+*r.Type)
	d := &DriverConfig{Type: *r.Type}
	use := func(k string) bool {
		for _, a := range allowed {
			if a == k {
				return true
			}
		}
		return false
	}
	if use("label") {
		d.Label = deref(r.Label, "data")
	}
	if use("mapper-name") {
		d.MapperName = deref(r.MapperName, "rugix-data")
	}
	if use("additional-options") {
		d.AdditionalOptions = r.AdditionalOptions
	}
	if use("additional-mkfs-options") {
		d.AdditionalMkfsOptions = r.AdditionalMkfsOptions
	}
	switch d.Type {
	case "luks2-passphrase":
		if r.PassphraseFile == nil || *r.PassphraseFile == "" {
			return nil, p.errorf(key("passphrase-file"), "required by the luks2-passphrase driver")
		}
		d.PassphraseFile = *r.PassphraseFile
	case "luks2-tpm2":
		d.PCRs = r.PCRs
		d.Device = deref(r.Device, "auto")
	case "custom":
		if r.MountScript == nil || *r.MountScript == "" {
			return nil, p.errorf(key("mount-script"), "required by the custom driver")
		}
		d.MountScript = *r.MountScript
		d.FormatScript = deref(r.FormatScript, "")
		d.WipeScript = deref(r.WipeScript, "")
	}
	return d, nil
}

// validName rejects names that would escape the directories named after
// slots (slot database) and groups (overlays).
func validName(s string) error {
	if s == "" || s == "." || s == ".." || strings.ContainsAny(s, "/\x00") {
		return fmt.Errorf("%q cannot be used as a name (it names a directory)", s)
	}
	return nil
}

func (p *parser) slot(name string, r rawSlot) (SlotConfig, error) {
	prefix := toml.Key{"slots", name}
	key := func(k string) toml.Key { return toml.Key{"slots", name, k} }
	if err := validName(name); err != nil {
		return SlotConfig{}, p.errorf(prefix, "%v", err)
	}
	if err := p.table("slots", name); err != nil {
		return SlotConfig{}, err
	}
	if r.Type == nil {
		return SlotConfig{}, p.errorf(key("type"), "missing (want block, file or custom)")
	}
	allowed, ok := slotKeys[*r.Type]
	if !ok {
		return SlotConfig{}, p.errorf(key("type"), "unknown slot type %q (want block, file or custom)", *r.Type)
	}
	p.onlyKeys(prefix, allowed, *r.Type+" slots")
	s := SlotConfig{Name: name, Type: *r.Type}
	switch s.Type {
	case SlotBlock:
		s.Immutable = deref(r.Immutable, false)
		s.Optional = deref(r.Optional, false)
		if r.Partition != nil {
			if *r.Partition == 0 {
				return s, p.errorf(key("partition"), "partition numbers start at 1")
			}
			s.Partition = int(*r.Partition)
		}
		if r.Device != nil {
			if *r.Device == "" {
				return s, p.errorf(key("device"), "must not be empty")
			}
			s.Device = *r.Device
			if s.Partition != 0 {
				// Rugix uses the device silently; say so.
				p.warnf("slots.%s: both device and partition are set; device %s wins", name, s.Device)
				s.Partition = 0
			}
		}
		if s.Device == "" && s.Partition == 0 {
			return s, p.errorf(prefix, "a block slot needs device or partition")
		}
	case SlotFile:
		s.Immutable = deref(r.Immutable, false)
		if r.Path == nil || *r.Path == "" {
			return s, p.errorf(key("path"), "required for file slots")
		}
		s.Path = *r.Path
		if !filepath.IsAbs(s.Path) {
			p.warnf("slots.%s.path: %q is relative to the working directory", name, s.Path)
		}
	case SlotCustom:
		if len(r.Handler) == 0 || r.Handler[0] == "" {
			return s, p.errorf(key("handler"), "required for custom slots (a command and its arguments)")
		}
		s.Handler = r.Handler
	}
	return s, nil
}

func (p *parser) group(name string, r rawGroup) (GroupConfig, error) {
	prefix := toml.Key{"boot-groups", name}
	if err := validName(name); err != nil {
		return GroupConfig{}, p.errorf(prefix, "%v", err)
	}
	if err := p.table("boot-groups", name); err != nil {
		return GroupConfig{}, err
	}
	if err := p.table("boot-groups", name, "slots"); err != nil {
		return GroupConfig{}, err
	}
	if !p.md.IsDefined("boot-groups", name, "slots") {
		return GroupConfig{}, p.errorf(append(prefix, "slots"), "missing (a table alias = \"slot\")")
	}
	g := GroupConfig{Name: name, Slots: map[string]string{}}
	for alias, slot := range r.Slots {
		g.Slots[alias] = slot
	}
	return g, nil
}

func (p *parser) bootFlow(r *rawBootFlow) (*BootFlowConfig, error) {
	prefix := toml.Key{"boot-flow"}
	key := func(k string) toml.Key { return toml.Key{"boot-flow", k} }
	if r.Type == nil {
		return nil, p.errorf(key("type"), "missing (want one of %s)", strings.Join(BootFlowTypes, ", "))
	}
	known := false
	for _, t := range BootFlowTypes {
		known = known || t == *r.Type
	}
	if !known {
		return nil, p.errorf(key("type"), "unknown boot flow %q (want one of %s)", *r.Type, strings.Join(BootFlowTypes, ", "))
	}
	allowed := bootFlowKeys[*r.Type]
	if allowed == nil {
		allowed = []string{"type"}
	}
	p.onlyKeys(prefix, allowed, "boot flow "+*r.Type)
	b := &BootFlowConfig{Type: *r.Type}
	switch b.Type {
	case "rauc-uboot", "rauc-grub":
		b.GroupNames = r.GroupNames
		b.DefaultAttempts = int(deref(r.DefaultAttempts, 3))
	case "mender-grub", "mender-uboot":
		b.BootDir = deref(r.BootDir, "/boot")
		b.BootPartA = int(deref(r.BootPartA, 2))
		b.BootPartB = int(deref(r.BootPartB, 3))
	case "rpi-tryboot", "rpi-uboot":
		b.KeepInit = deref(r.KeepInit, false)
	case "custom":
		if r.Controller == nil || *r.Controller == "" {
			return nil, p.errorf(key("controller"), "required for the custom boot flow")
		}
		b.Controller = *r.Controller
	case "systemd-boot":
		if err := p.table("boot-flow", "entries"); err != nil {
			return nil, err
		}
		if len(r.Entries) == 0 {
			return nil, p.errorf(key("entries"), "required for systemd-boot (a table group = \"entry\")")
		}
		b.Entries = r.Entries
	}
	return b, nil
}

// checkGroups makes sure every boot group refers to existing slots, the
// default groups included. Default slots have the same names for MBR and
// GPT disks, so this does not need the disk.
func (c *Config) checkGroups(file string) error {
	slots := map[string]bool{}
	if c.Slots == nil {
		for _, s := range defaultSlotNames {
			slots[s] = true
		}
	} else {
		for _, s := range c.Slots {
			slots[s.Name] = true
		}
	}
	if c.BootGroups == nil {
		for _, g := range defaultGroups() {
			for _, alias := range sortedKeys(g.Slots) {
				if s := g.Slots[alias]; !slots[s] {
					return fmt.Errorf("%s: boot-groups: not configured, and the default group %s needs slot %q, which [slots] does not define", file, g.Name, s)
				}
			}
		}
		return nil
	}
	for _, g := range c.BootGroups {
		for _, alias := range sortedKeys(g.Slots) {
			if s := g.Slots[alias]; !slots[s] {
				return fmt.Errorf("%s: %s: unknown slot %q", file, toml.Key{"boot-groups", g.Name, "slots", alias}, s)
			}
		}
	}
	return nil
}

func deref[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}
