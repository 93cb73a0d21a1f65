package initmode

import (
	"strings"
)

// DefaultInit is what pre-init hands over to unless the kernel command
// line names another program with bascule.init=.
const DefaultInit = "/sbin/init"

// kernelOptions are the pre-init options of the kernel command line.
// init= cannot name the real init: it names bascule itself.
type kernelOptions struct {
	// quiet (rugix.init.quiet, as in Rugix 1.x) prints errors only.
	quiet bool
	// init (bascule.init=PATH) is the program to hand over to.
	init string
	// errorShell (bascule.init.error-shell=PATH) is started on the
	// console when pre-init fails on a committed system, before the real
	// init is started on the read-only system.
	errorShell string
}

// parseCmdline reads the options from /proc/cmdline. Like the kernel it
// splits at white space outside double quotes, drops the quotes, and
// stops at "--" (what follows belongs to init). Invalid values are
// returned as warnings and ignored.
func parseCmdline(s string) (kernelOptions, []string) {
	ko := kernelOptions{init: DefaultInit}
	var warnings []string
	for _, arg := range splitCmdline(s) {
		if arg == "--" {
			break
		}
		key, val, hasVal := strings.Cut(arg, "=")
		switch key {
		case "rugix.init.quiet", "bascule.init.quiet":
			ko.quiet = !hasVal || (val != "0" && val != "false" && val != "no")
		case "bascule.init":
			if !strings.HasPrefix(val, "/") {
				warnings = append(warnings, "bascule.init="+val+" ignored: not an absolute path")
				continue
			}
			ko.init = val
		case "bascule.init.error-shell":
			if val != "" && !strings.HasPrefix(val, "/") {
				warnings = append(warnings, "bascule.init.error-shell="+val+" ignored: not an absolute path")
				continue
			}
			ko.errorShell = val
		}
	}
	return ko, warnings
}

func splitCmdline(s string) []string {
	var args []string
	var cur strings.Builder
	inQuote, inArg := false, false
	for _, r := range s {
		switch {
		case r == '"':
			inQuote = !inQuote
			inArg = true
		case !inQuote && (r == ' ' || r == '\t' || r == '\n' || r == '\r'):
			if inArg {
				args = append(args, cur.String())
				cur.Reset()
				inArg = false
			}
		default:
			cur.WriteRune(r)
			inArg = true
		}
	}
	if inArg {
		args = append(args, cur.String())
	}
	return args
}
