// Package cli holds the small pieces the command-line tools share: flag
// parsing that allows flags after positional arguments (as clap does, so
// rugix-bundler command lines work unchanged) and error reporting.
package cli

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
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

// Command is a subcommand; its Path may have several words ("system info").
type Command struct {
	Path     string
	Synopsis string
	Summary  string
	Run      func(args []string) error
}

// Tool is a program made of subcommands, like rugix-ctrl and rugix-bundler.
type Tool struct {
	Name     string // "bascule"
	Title    string // one line after the name in the usage
	Commands []Command
	Version  string
}

// Usage lists the commands.
func (t *Tool) Usage() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: %s\n\nusage: %s <command> [flags] [args]\n\ncommands:\n", t.Name, t.Version, t.Title, t.Name)
	width := 0
	for _, c := range t.Commands {
		width = max(width, len(c.Path))
	}
	for _, c := range t.Commands {
		fmt.Fprintf(&b, "  %-*s  %s\n", width, c.Path, c.Summary)
	}
	fmt.Fprintf(&b, "\nRun '%s <command> --help' for the flags of a command.\n", t.Name)
	return b.String()
}

// Main runs the command named by args and returns the exit status: 0, 1 for
// a failed command (its error printed as one line), 2 for a usage error.
func (t *Tool) Main(args []string) int {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, t.Usage())
		return 2
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Print(t.Usage())
		return 0
	case "--version", "-V":
		fmt.Println(t.Version)
		return 0
	}
	for _, c := range t.Commands {
		words := strings.Fields(c.Path)
		if len(args) < len(words) || strings.Join(args[:len(words)], " ") != c.Path {
			continue
		}
		err := c.Run(args[len(words):])
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", t.Name, err)
			return 1
		}
		return 0
	}
	// A group without its subcommand ("bascule system"): list the group.
	var group []string
	for _, c := range t.Commands {
		if strings.HasPrefix(c.Path, args[0]+" ") {
			group = append(group, fmt.Sprintf("  %s %s\n      %s\n", t.Name, c.Synopsis, c.Summary))
		}
	}
	if len(group) > 0 && (len(args) == 1 || args[1] == "help" || args[1] == "--help" || args[1] == "-h") {
		fmt.Fprintf(os.Stderr, "%s %s commands:\n%s", t.Name, args[0], strings.Join(group, ""))
		return 2
	}
	fmt.Fprintf(os.Stderr, "%s: unknown command %q (see '%s help')\n", t.Name, strings.Join(args, " "), t.Name)
	return 2
}

// Parse parses the flags of the command at path; --help prints its usage.
func (t *Tool) Parse(path string, fs *flag.FlagSet, args []string, minArgs, maxArgs int) ([]string, error) {
	pos, err := Parse(fs, args, minArgs, maxArgs)
	if errors.Is(err, flag.ErrHelp) {
		synopsis := path
		for _, c := range t.Commands {
			if c.Path == path {
				synopsis = c.Synopsis
			}
		}
		fmt.Print(Usage(fs, t.Name+" "+synopsis))
	}
	return pos, err
}

// PrintJSON writes v to standard output as JSON.
func PrintJSON(v any, pretty bool) error {
	enc := json.NewEncoder(os.Stdout)
	if pretty {
		enc.SetIndent("", "  ")
	}
	return enc.Encode(v)
}
