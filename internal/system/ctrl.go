package system

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/BurntSushi/toml"
)

// CtrlConfigPath is the Rugix Ctrl 1.x configuration file.
const CtrlConfigPath = "/etc/rugix/ctrl.toml"

// CtrlConfig is /etc/rugix/ctrl.toml (Rugix 1.x).
type CtrlConfig struct {
	// Signatures is nil when [signatures] is absent.
	Signatures *SignaturesConfig
	// RequireBundleComponents is compatibility.require-bundle-components:
	// reject bundles without component metadata.
	RequireBundleComponents bool
	// Grants is the [grants] table, kept verbatim; nil when absent. Its
	// schema is still moving upstream, so its keys are not checked.
	Grants map[string]any
}

// SignaturesConfig is [signatures].
type SignaturesConfig struct {
	// Roots are the paths of the trusted root certificates. The
	// --root-cert flag of `update install` overrides them.
	Roots []string
}

type rawCtrl struct {
	Signatures *struct {
		Roots *[]string `toml:"roots"`
	} `toml:"signatures"`
	Compatibility *struct {
		RequireBundleComponents *bool `toml:"require-bundle-components"`
	} `toml:"compatibility"`
	Grants map[string]any `toml:"grants"`
}

// LoadCtrlConfig reads ctrl.toml. A missing file is an empty config.
// Unknown keys are warnings, as in LoadConfig.
func LoadCtrlConfig(path string) (*CtrlConfig, []string, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &CtrlConfig{}, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read ctrl config: %w", err)
	}
	return ParseCtrlConfig(data, path)
}

// ParseCtrlConfig parses the contents of a ctrl.toml; file names it in
// messages.
func ParseCtrlConfig(data []byte, file string) (*CtrlConfig, []string, error) {
	var raw rawCtrl
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&raw)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", file, err)
	}
	p := &parser{file: file, md: md}
	// Keys inside [grants] land in the map, but the decoder reports those
	// of nested tables as undecoded.
	p.undecoded(func(k toml.Key) bool { return k[0] == "grants" })
	if err := p.table("grants"); err != nil {
		return nil, nil, err
	}
	c := &CtrlConfig{Grants: raw.Grants}
	if c.Grants != nil {
		// A grant policy asks for every install to be authorised; saying
		// nothing would let an operator believe it is enforced.
		p.warnf("[grants] is kept but not enforced: Bascule does not implement install grants")
	}
	if raw.Signatures != nil {
		if raw.Signatures.Roots == nil {
			return nil, nil, p.errorf(toml.Key{"signatures", "roots"}, "missing (a list of root certificate paths)")
		}
		for i, r := range *raw.Signatures.Roots {
			if r == "" {
				return nil, nil, p.errorf(toml.Key{"signatures", "roots"}, "entry %d is empty", i)
			}
		}
		c.Signatures = &SignaturesConfig{Roots: *raw.Signatures.Roots}
	}
	if raw.Compatibility != nil && raw.Compatibility.RequireBundleComponents != nil {
		c.RequireBundleComponents = *raw.Compatibility.RequireBundleComponents
	}
	return c, p.warnings, nil
}
