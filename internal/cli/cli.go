// Package cli holds the small pieces the command-line tools share: flag
// parsing that allows flags after positional arguments (as clap does, so
// rugix-bundler command lines work unchanged) and error reporting.
package cli

import (
	"flag"
	"fmt"
	"io"
	"strings"
)

// Parse parses args with fs, accepting flags anywhere until "--", and
// checks the number of positional arguments against the usage string.
func Parse(fs *flag.FlagSet, args []string, minArgs, maxArgs int) ([]string, error) {
	fs.SetOutput(io.Discard)
	var pos []string
	for len(args) > 0 {
		if err := fs.Parse(args); err != nil {
			return nil, fmt.Errorf("%s: %w (see --help)", fs.Name(), err)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	if len(pos) < minArgs || (maxArgs >= 0 && len(pos) > maxArgs) {
		return nil, fmt.Errorf("%s: wrong number of arguments (see --help)", fs.Name())
	}
	return pos, nil
}

// Usage formats the help of a flag set.
func Usage(fs *flag.FlagSet, synopsis string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "usage: %s\n", synopsis)
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		if name != "" {
			name = " " + name
		}
		fmt.Fprintf(&b, "  --%s%s\n    \t%s\n", f.Name, name, usage)
	})
	return b.String()
}
