// Package version holds the version stamped into the binaries at build time
// (-ldflags "-X github.com/bascule-ota/bascule/internal/version.Version=1.2.3").
package version

import "runtime/debug"

// Version is set by the linker; otherwise it is taken from the module or VCS
// information Go records.
var Version = ""

// String returns the version.
func String() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v := bi.Main.Version; v != "" && v != "(devel)" {
			return v
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return "dev-" + s.Value[:12]
			}
		}
	}
	return "dev"
}
