package bootstrap

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// DefaultConfigFile is where Rugix reads the bootstrapping configuration.
const DefaultConfigFile = "/etc/rugix/bootstrapping.toml"

// Layout types of [layout] type.
const (
	LayoutDefault = "default"
	LayoutMBR     = "mbr"
	LayoutGPT     = "gpt"
	LayoutNone    = "none"
)

// DefaultSystemSize is the size of each system partition of the default
// layout when bootstrapping.toml does not say.
const DefaultSystemSize = 4 << 30

// Partition types of the default layouts (§3.1).
const (
	mbrFAT32LBA = "c"
	mbrExtended = "5"
	mbrLinux    = "83"
	gptEFI      = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
	gptLinux    = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
)

// Config is bootstrapping.toml.
type Config struct {
	// Disabled skips bootstrapping; the marker is still removed, as Rugix
	// does.
	Disabled bool
	Layout   Layout
}

// Layout is [layout]: the partitions the root disk should have.
type Layout struct {
	// Type is LayoutDefault, LayoutMBR, LayoutGPT or LayoutNone.
	Type string
	// SystemSize is the size of each system partition of the default
	// layout, in bytes.
	SystemSize uint64
	// Partitions of an "mbr" or "gpt" layout, matched to the existing
	// partitions by index.
	Partitions []PartitionConfig
}

// PartitionConfig is one entry of [layout] partitions.
type PartitionConfig struct {
	// Name is written as the GPT partition name of a partition that
	// bootstrapping creates (a Bascule extension: Rugix ignores it).
	Name string
	// Size in bytes; 0 means the rest of the disk, or of the extended
	// partition for a logical partition.
	Size uint64
	// Type is an MBR type byte in hex ("0c", "83") or a GPT type GUID;
	// empty means Linux (83 or 0FC63DAF-…).
	Type string
	// Filesystem, if set, is created when bootstrapping creates the
	// partition, never on a partition that existed before.
	Filesystem *Filesystem
}

// Filesystem is the filesystem of a layout partition.
type Filesystem struct {
	Type              string // "ext4", the only type Rugix knows
	Label             string
	AdditionalOptions []string
}

// DefaultConfig is the configuration without bootstrapping.toml: the
// default layout with 4 GiB system partitions.
func DefaultConfig() *Config {
	return &Config{Layout: Layout{Type: LayoutDefault, SystemSize: DefaultSystemSize}}
}

// LoadConfig reads bootstrapping.toml; a missing file means the defaults.
// The strings returned are warnings about keys Rugix would ignore.
func LoadConfig(path string) (*Config, []string, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return DefaultConfig(), nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read bootstrapping config: %w", err)
	}
	return ParseConfig(data, path)
}

type rawConfig struct {
	Disabled *bool      `toml:"disabled"`
	Layout   *rawLayout `toml:"layout"`
}

type rawLayout struct {
	Type       *string        `toml:"type"`
	SystemSize any            `toml:"system-size"`
	Partitions []rawPartition `toml:"partitions"`
}

type rawPartition struct {
	Name       *string        `toml:"name"`
	Size       any            `toml:"size"`
	Type       *string        `toml:"type"`
	Filesystem *rawFilesystem `toml:"filesystem"`
}

type rawFilesystem struct {
	Type              *string  `toml:"type"`
	Label             *string  `toml:"label"`
	AdditionalOptions []string `toml:"additional-options"`
}

// ParseConfig parses the contents of a bootstrapping.toml; file names it
// in messages. Unknown keys are warnings, as Rugix ignores them and a typo
// would otherwise go unnoticed; values of the wrong type are errors.
func ParseConfig(data []byte, file string) (*Config, []string, error) {
	var raw rawConfig
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&raw)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", file, err)
	}
	errorf := func(format string, a ...any) error {
		return fmt.Errorf("%s: %s", file, fmt.Sprintf(format, a...))
	}
	var warnings []string
	warnf := func(format string, a ...any) {
		warnings = append(warnings, file+": "+fmt.Sprintf(format, a...))
	}
	// An unknown table is reported once, not with every key inside it.
	undecoded := md.Undecoded()
	for _, k := range undecoded {
		inner := false
		for _, o := range undecoded {
			inner = inner || (len(o) < len(k) && strings.HasPrefix(k.String()+".", o.String()+"."))
		}
		if !inner {
			warnf("unknown key %q ignored", k.String())
		}
	}

	cfg := DefaultConfig()
	if raw.Disabled != nil {
		cfg.Disabled = *raw.Disabled
	}
	l := raw.Layout
	if l == nil {
		return cfg, warnings, nil
	}
	if l.Type == nil {
		return nil, nil, errorf("layout: type is missing (one of %q, %q, %q, %q)", LayoutDefault, LayoutMBR, LayoutGPT, LayoutNone)
	}
	cfg.Layout = Layout{Type: *l.Type}
	switch *l.Type {
	case LayoutDefault:
		cfg.Layout.SystemSize = DefaultSystemSize
		if l.SystemSize != nil {
			if cfg.Layout.SystemSize, err = sizeValue(l.SystemSize); err != nil {
				return nil, nil, errorf("layout.system-size: %v", err)
			}
		}
		if l.Partitions != nil {
			warnf("layout.partitions ignored by the %q layout", LayoutDefault)
		}
	case LayoutMBR, LayoutGPT:
		if l.Partitions == nil {
			return nil, nil, errorf("layout: the %q layout needs partitions", *l.Type)
		}
		if l.SystemSize != nil {
			warnf("layout.system-size ignored by the %q layout (only %q uses it)", *l.Type, LayoutDefault)
		}
		for i, rp := range l.Partitions {
			pc, err := partitionConfig(rp, *l.Type)
			if err != nil {
				return nil, nil, errorf("layout.partitions[%d]: %v", i, err)
			}
			cfg.Layout.Partitions = append(cfg.Layout.Partitions, pc)
		}
	case LayoutNone:
		if l.SystemSize != nil || l.Partitions != nil {
			warnf("layout: system-size and partitions ignored by the %q layout", LayoutNone)
		}
	default:
		return nil, nil, errorf("layout.type: unknown layout %q (want %q, %q, %q or %q)", *l.Type, LayoutDefault, LayoutMBR, LayoutGPT, LayoutNone)
	}
	return cfg, warnings, nil
}

func partitionConfig(rp rawPartition, layout string) (PartitionConfig, error) {
	var pc PartitionConfig
	if rp.Name != nil {
		pc.Name = *rp.Name
	}
	if rp.Size != nil {
		size, err := sizeValue(rp.Size)
		if err != nil {
			return pc, fmt.Errorf("size: %v", err)
		}
		pc.Size = size
	}
	if rp.Type != nil {
		typ, err := normalizeType(*rp.Type)
		if err != nil {
			return pc, err
		}
		pc.Type = typ
	}
	if f := rp.Filesystem; f != nil {
		if f.Type == nil {
			return pc, errors.New("filesystem: type is missing (\"ext4\")")
		}
		if *f.Type != "ext4" {
			return pc, fmt.Errorf("filesystem: unsupported type %q (only \"ext4\")", *f.Type)
		}
		pc.Filesystem = &Filesystem{Type: *f.Type, AdditionalOptions: f.AdditionalOptions}
		if f.Label != nil {
			pc.Filesystem.Label = *f.Label
		}
	}
	return pc, nil
}

// normalizeType checks a partition type and spells it the way disk.Table
// does: an MBR type byte in lowercase hex without leading zeros, a GPT type
// GUID in uppercase. Like Rugix, a 36-character string is a GUID and
// anything else a hex byte.
func normalizeType(s string) (string, error) {
	if len(s) == 36 {
		for i, c := range s {
			dash := i == 8 || i == 13 || i == 18 || i == 23
			if dash != (c == '-') || (!dash && !strings.ContainsRune("0123456789abcdefABCDEF", c)) {
				return "", fmt.Errorf("type: invalid GUID %q", s)
			}
		}
		return strings.ToUpper(s), nil
	}
	b, err := strconv.ParseUint(s, 16, 8)
	if err != nil || b == 0 {
		return "", fmt.Errorf("type: %q is neither an MBR type byte in hex (\"0c\", \"83\") nor a GPT type GUID", s)
	}
	return strconv.FormatUint(b, 16), nil
}

// partitionsFor returns the partitions of the layout for a disk with a
// table of type table ("dos" or "gpt"). The default layout becomes the
// Rugix default for that table, with an ext4 data partition labelled
// "data".
func (l Layout) partitionsFor(table string) []PartitionConfig {
	if l.Type != LayoutDefault {
		return l.Partitions
	}
	data := &Filesystem{Type: "ext4", Label: "data"}
	if table == "gpt" {
		return []PartitionConfig{
			{Size: 256 << 20, Type: gptEFI},
			{Size: 256 << 20, Type: gptLinux},
			{Size: 256 << 20, Type: gptLinux},
			{Size: l.SystemSize, Type: gptLinux},
			{Size: l.SystemSize, Type: gptLinux},
			{Type: gptLinux, Filesystem: data},
		}
	}
	return []PartitionConfig{
		{Size: 256 << 20, Type: mbrFAT32LBA},
		{Size: 128 << 20, Type: mbrFAT32LBA},
		{Size: 128 << 20, Type: mbrFAT32LBA},
		{Type: mbrExtended},
		{Size: l.SystemSize, Type: mbrLinux},
		{Size: l.SystemSize, Type: mbrLinux},
		{Type: mbrLinux, Filesystem: data},
	}
}
