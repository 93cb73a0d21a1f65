package state

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
)

// State configuration files, read from the system (not the overlay).
const (
	ConfigPath = "/etc/rugix/state.toml"
	ConfigDir  = "/etc/rugix/state"
)

// Overlay modes of the root file system.
const (
	// OverlayPersist keeps the overlay of each boot group across boots.
	OverlayPersist = "persist"
	// OverlayDiscard (the default) starts every boot from the pristine
	// system, unless the force-persist flag is set.
	OverlayDiscard = "discard"
	// OverlayInMemory keeps the overlay on the /run tmpfs.
	OverlayInMemory = "in-memory"
	// OverlayDisabled boots the read-only system without an overlay.
	OverlayDisabled = "disabled"
)

var overlayModes = []string{OverlayPersist, OverlayDiscard, OverlayInMemory, OverlayDisabled}

// Config is the merged state configuration.
type Config struct {
	// Overlay is one of the Overlay* modes.
	Overlay string
	// OverlayFallback (Rugix 1.x) is OverlayInMemory to retry with an
	// in-memory overlay when the configured one cannot be mounted, else "".
	OverlayFallback string
	// Persist lists what is bind-mounted from the profile into the root,
	// in file order.
	Persist []Persist
}

// Persist is one [[persist]] entry: exactly one of Directory and File.
type Persist struct {
	Directory string
	File      string
	// Default is the content of a persisted file the system does not
	// have; nil means empty.
	Default *string
	// Origin is the file the entry comes from, for messages.
	Origin string
}

// Path is the persisted path in the root file system.
func (p Persist) Path() string {
	if p.Directory != "" {
		return p.Directory
	}
	return p.File
}

type rawState struct {
	Overlay         *string      `toml:"overlay"`
	OverlayFallback *string      `toml:"overlay-fallback"`
	Persist         []rawPersist `toml:"persist"`
}

type rawPersist struct {
	Directory *string `toml:"directory"`
	File      *string `toml:"file"`
	Default   *string `toml:"default"`
}

// stateFile is one parsed file before merging.
type stateFile struct {
	name            string
	overlay         string
	overlayFallback string
	persist         []Persist
}

// LoadConfig reads <root>/etc/rugix/state.toml and then every file in
// <root>/etc/rugix/state/ in name order, and merges them: the first
// overlay setting wins, persist entries are concatenated. Rugix reads the
// directory in the order the file system lists it and silently ignores
// files it cannot parse; here the order is fixed and such files are
// skipped with a warning. Missing files are not an error.
func LoadConfig(root string) (*Config, []string) {
	var warnings []string
	var files []string
	files = append(files, filepath.Join(root, ConfigPath))
	dir := filepath.Join(root, ConfigDir)
	if entries, err := os.ReadDir(dir); err == nil {
		var names []string
		for _, e := range entries {
			if !strings.HasPrefix(e.Name(), ".") {
				names = append(names, e.Name())
			}
		}
		sort.Strings(names)
		for _, n := range names {
			files = append(files, filepath.Join(dir, n))
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		warnings = append(warnings, fmt.Sprintf("state config directory %s: %v", dir, err))
	}
	var parsed []stateFile
	for _, path := range files {
		fi, err := os.Stat(path)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err == nil && !fi.Mode().IsRegular() {
			continue
		}
		var data []byte
		if err == nil {
			data, err = os.ReadFile(path)
		}
		if err != nil {
			warnings = append(warnings, fmt.Sprintf("state config %s skipped: %v", path, err))
			continue
		}
		f, warns, err := parseFile(data, path)
		warnings = append(warnings, warns...)
		if err != nil {
			warnings = append(warnings, fmt.Sprintf("state config %s skipped: %v", path, err))
			continue
		}
		parsed = append(parsed, f)
	}
	c, warns := merge(parsed)
	return c, append(warnings, warns...)
}

// ParseConfig parses one state.toml on its own; file names it in messages.
func ParseConfig(data []byte, file string) (*Config, []string, error) {
	f, warnings, err := parseFile(data, file)
	if err != nil {
		return nil, warnings, err
	}
	c, warns := merge([]stateFile{f})
	return c, append(warnings, warns...), nil
}

// parseFile checks one file. A file with an invalid value is rejected as
// a whole, as Rugix does; unknown keys only produce warnings.
func parseFile(data []byte, file string) (stateFile, []string, error) {
	f := stateFile{name: file}
	var raw rawState
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&raw)
	if err != nil {
		return f, nil, err
	}
	var warnings []string
	for _, k := range md.Undecoded() {
		warnings = append(warnings, fmt.Sprintf("%s: unknown key %q ignored", file, k.String()))
	}
	if raw.Overlay != nil {
		if !contains(overlayModes, *raw.Overlay) {
			return f, warnings, fmt.Errorf("overlay = %q (want one of %s)", *raw.Overlay, strings.Join(overlayModes, ", "))
		}
		f.overlay = *raw.Overlay
	}
	if raw.OverlayFallback != nil {
		if *raw.OverlayFallback != OverlayInMemory {
			return f, warnings, fmt.Errorf("overlay-fallback = %q (want %q)", *raw.OverlayFallback, OverlayInMemory)
		}
		f.overlayFallback = *raw.OverlayFallback
	}
	for i, r := range raw.Persist {
		p := Persist{Default: r.Default, Origin: file}
		switch {
		case r.Directory != nil && r.File != nil:
			return f, warnings, fmt.Errorf("persist[%d]: both directory and file are set", i)
		case r.Directory != nil:
			if r.Default != nil {
				return f, warnings, fmt.Errorf("persist[%d]: default is only for files", i)
			}
			p.Directory = *r.Directory
		case r.File != nil:
			p.File = *r.File
		default:
			return f, warnings, fmt.Errorf("persist[%d]: needs directory or file", i)
		}
		clean, err := CleanPersistPath(p.Path())
		if err != nil {
			return f, warnings, fmt.Errorf("persist[%d]: %w", i, err)
		}
		if p.Directory != "" {
			p.Directory = clean
		} else {
			p.File = clean
		}
		f.persist = append(f.persist, p)
	}
	return f, warnings, nil
}

// CleanPersistPath checks that a persisted path is absolute and not the
// root itself, and returns it cleaned.
func CleanPersistPath(p string) (string, error) {
	if !filepath.IsAbs(p) {
		return "", fmt.Errorf("%q is not an absolute path", p)
	}
	c := filepath.Clean(p)
	if c == "/" {
		return "", errors.New(`"/" cannot be persisted`)
	}
	return c, nil
}

func merge(files []stateFile) (*Config, []string) {
	c := &Config{}
	var warnings []string
	var overlayFrom string
	seen := map[string]string{}
	for _, f := range files {
		if f.overlay != "" {
			if c.Overlay == "" {
				c.Overlay, overlayFrom = f.overlay, f.name
			} else if f.overlay != c.Overlay {
				warnings = append(warnings, fmt.Sprintf("%s: overlay = %q ignored: %s already set %q", f.name, f.overlay, overlayFrom, c.Overlay))
			}
		}
		if f.overlayFallback != "" && c.OverlayFallback == "" {
			c.OverlayFallback = f.overlayFallback
		}
		for _, p := range f.persist {
			if prev, dup := seen[p.Path()]; dup {
				warnings = append(warnings, fmt.Sprintf("%s: %s is already persisted by %s; ignored", f.name, p.Path(), prev))
				continue
			}
			seen[p.Path()] = f.name
			c.Persist = append(c.Persist, p)
		}
	}
	if c.Overlay == "" {
		c.Overlay = OverlayDiscard
	}
	return c, warnings
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
