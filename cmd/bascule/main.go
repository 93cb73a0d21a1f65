// Command bascule is the device side of Bascule: it installs update bundles
// into the inactive boot group, switches boot groups through the boot flow,
// and, as PID 1, prepares the root file system before the real init. Its
// commands and flags are those of rugix-ctrl.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bascule-ota/bascule/internal/bootflow"
	"github.com/bascule-ota/bascule/internal/cli"
	"github.com/bascule-ota/bascule/internal/initmode"
	"github.com/bascule-ota/bascule/internal/version"
)

type command struct {
	path     string // "system info"
	synopsis string
	summary  string
	run      func(args []string) error
}

var commands []command

func init() {
	commands = []command{
		{"update install", "update install [flags] <bundle|->", "install a bundle into the inactive boot group", cmdUpdateInstall},
		{"system info", "system info [--json]", "show boot flow, groups and slots", cmdSystemInfo},
		{"system commit", "system commit [--if-healthy]", "make the running boot group the default", cmdSystemCommit},
		{"system reboot", "system reboot [--spare]", "reboot, optionally trying the spare group once", cmdSystemReboot},
		{"slots create-index", "slots create-index <slot> <chunker> <hash-algorithm>", "index a slot's blocks for delta updates (e.g. system-a casync-64 sha512-256)", cmdSlotsCreateIndex},
		{"slots inspect", "slots inspect <slot>", "show a slot's recorded hash and block indices", cmdSlotsInspect},
		{"slots verify", "slots verify <slot>", "re-hash an immutable slot and compare with what was installed", cmdSlotsVerify},
		{"boot mark-good", "boot mark-good [group]", "mark a boot group good (flows that support it)", cmdBootMark(true)},
		{"boot mark-bad", "boot mark-bad <group>", "mark a boot group bad (flows that support it)", cmdBootMark(false)},
		{"state reset", "state reset [--backup] [--backup-name NAME]", "reset the state at the next boot (reboots now)", cmdStateReset},
		{"state overlay force-persist", "state overlay force-persist true|false", "keep a discarded overlay across boots (or stop keeping it)", cmdStateForcePersist},
		{"data wipe", "data wipe --yes [--no-reboot]", "erase the data partition at the next boot (reboots now)", cmdDataWipe},
		{"utils find-block-device", "utils find-block-device <path>", "print the block device behind a path as JSON", cmdFindBlockDevice},
		{"utils is-mount-point", "utils is-mount-point <path>", "print true or false", cmdIsMountPoint},
		{"utils resolve-partition", "utils resolve-partition [--disk D] <n>", "print partition n of the root disk (or D) as JSON", cmdResolvePartition},
		{"version", "version", "print the version", func([]string) error { fmt.Println(version.String()); return nil }},
	}
}

func usage() string {
	var b strings.Builder
	b.WriteString("bascule " + version.String() + ": A/B over-the-air updates for embedded Linux\n\nusage: bascule <command> [flags] [args]\n\ncommands:\n")
	for _, c := range commands {
		fmt.Fprintf(&b, "  %-26s %s\n", c.path, c.summary)
	}
	b.WriteString("\nRun 'bascule <command> --help' for the flags of a command.\n")
	return b.String()
}

func main() {
	if os.Getpid() == 1 {
		initMode()
	}
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
		words := strings.Fields(c.path)
		if len(args) < len(words) || strings.Join(args[:len(words)], " ") != c.path {
			continue
		}
		err := c.run(args[len(words):])
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "bascule: %v\n", err)
			os.Exit(1)
		}
		return
	}
	fmt.Fprintf(os.Stderr, "bascule: unknown command %q\n\n%s", strings.Join(args, " "), usage())
	os.Exit(2)
}

// initMode runs when the kernel starts bascule as PID 1: pre-init, then
// the real init (internal/initmode; docs/init.md). Run returns only when
// no init at all could be started. PID 1 must not exit (the kernel would
// panic), so the machine reboots after time to read the console.
func initMode() {
	err := initmode.Run(initmode.Options{Args: os.Args[1:]})
	fmt.Fprintf(os.Stderr, "bascule: %v\nbascule: rebooting in 30 seconds\n", err)
	time.Sleep(30 * time.Second)
	unix.Sync()
	if err := bootflow.SysReboot(unix.LINUX_REBOOT_CMD_RESTART, ""); err != nil {
		fmt.Fprintf(os.Stderr, "bascule: %v\n", err)
	}
	select {}
}

func parse(synopsis string, fs *flag.FlagSet, args []string, minArgs, maxArgs int) ([]string, error) {
	pos, err := cli.Parse(fs, args, minArgs, maxArgs)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Print(cli.Usage(fs, "bascule "+synopsis))
	}
	return pos, err
}

func synopsis(path string) string {
	for _, c := range commands {
		if c.path == path {
			return c.synopsis
		}
	}
	return path
}

func printJSON(v any, pretty bool) error {
	enc := json.NewEncoder(os.Stdout)
	if pretty {
		enc.SetIndent("", "  ")
	}
	return enc.Encode(v)
}
