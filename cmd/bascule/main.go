// Command bascule is the device side of Bascule: it installs update bundles
// into the inactive boot group, switches boot groups through the boot flow,
// and, as PID 1, prepares the root file system before the real init.
//
// This entry point only knows its version so far; the device commands land
// with the system model and the install path.
package main

import (
	"fmt"
	"os"

	"github.com/bascule-ota/bascule/internal/version"
)

const usage = `bascule %s: A/B over-the-air updates for embedded Linux

usage: bascule <command> [flags] [args]

commands:
  version    print the version

Device commands (system, update, slots, boot, state) are not implemented
in this version.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintf(os.Stderr, usage, version.String())
		os.Exit(2)
	}
	switch os.Args[1] {
	case "version", "--version", "-V":
		fmt.Println(version.String())
	case "help", "--help", "-h":
		fmt.Printf(usage, version.String())
	default:
		fmt.Fprintf(os.Stderr, "bascule: unknown command %q\n\n", os.Args[1])
		fmt.Fprintf(os.Stderr, usage, version.String())
		os.Exit(2)
	}
}
