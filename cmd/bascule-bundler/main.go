// Command bascule-bundler builds, inspects, signs and verifies update
// bundles. Its commands and flags are those of rugix-bundler, so existing
// build scripts keep working.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/bascule-ota/bascule/internal/version"
)

type command struct {
	name     string
	synopsis string
	summary  string
	run      func(args []string) error
}

var commands []command

func init() {
	commands = []command{
		{"bundle", "bundle [--json] <bundle-dir> <out.rugixb>", "build a bundle from a directory (rugix-bundle.toml + payloads/); prints the header hash", cmdBundle},
		{"hash", "hash <bundle>", "print the bundle's header hash", cmdHash},
		{"inspect", "inspect [--verify-bundle H] [--json] <bundle>", "list the payloads of a bundle", cmdInspect},
		{"verify", "verify [--verify-bundle H] [--json] <bundle>", "check every hash of a bundle (header, payload headers, blocks, files); writes nothing", cmdVerify},
		{"extract", "extract [--verify-bundle H] <bundle> <payload-index> <dst>", "write one decoded, verified payload to a file", cmdExtract},
		{"unpack", "unpack [--verify-bundle H] <bundle> <dir>", "recreate the bundle directory (needs the embedded manifest)", cmdUnpack},
		{"signatures", "signatures prepare|add|sign|list|verify ...", "sign bundles and check their signatures (run 'signatures help')", cmdSignatures},
		{"keys", "keys create-ca|create-signer ...", "create a root CA and signing certificates (run 'keys help')", cmdKeys},
		{"print-structure", "print-structure <bundle>", "dump the STLV atoms of a bundle (debugging)", cmdPrintStructure},
		{"version", "version", "print the version", func([]string) error { fmt.Println(version.String()); return nil }},
	}
}

func usage() string {
	var b strings.Builder
	b.WriteString("bascule-bundler " + version.String() + ": build and check Bascule/Rugix update bundles\n\nusage: bascule-bundler <command> [flags] [args]\n\ncommands:\n")
	for _, c := range commands {
		fmt.Fprintf(&b, "  %-16s %s\n", c.name, c.summary)
	}
	b.WriteString("\nRun 'bascule-bundler <command> --help' for the flags of a command.\n")
	return b.String()
}

func main() {
	args := os.Args[1:]
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage())
		os.Exit(2)
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Print(usage())
		return
	case "--version", "-V":
		fmt.Println(version.String())
		return
	}
	for _, c := range commands {
		if c.name != args[0] {
			continue
		}
		err := c.run(args[1:])
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "bascule-bundler: %v\n", err)
			os.Exit(1)
		}
		return
	}
	fmt.Fprintf(os.Stderr, "bascule-bundler: unknown command %q\n\n%s", args[0], usage())
	os.Exit(2)
}
