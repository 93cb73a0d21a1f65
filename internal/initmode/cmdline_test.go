package initmode

import (
	"reflect"
	"strings"
	"testing"
)

func TestSplitCmdline(t *testing.T) {
	got := splitCmdline("console=ttyS0  root=/dev/sda5 dyndbg=\"file a.c +p\" x\n")
	want := []string{"console=ttyS0", "root=/dev/sda5", "dyndbg=file a.c +p", "x"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%q", got)
	}
	if got := splitCmdline(""); len(got) != 0 {
		t.Fatalf("%q", got)
	}
}

func TestParseCmdline(t *testing.T) {
	for _, tc := range []struct {
		in    string
		want  kernelOptions
		warns int
	}{
		{"root=/dev/mmcblk0p5 init=/usr/bin/bascule ro", kernelOptions{init: DefaultInit}, 0},
		{"rugix.init.quiet bascule.init=/lib/systemd/systemd", kernelOptions{quiet: true, init: "/lib/systemd/systemd"}, 0},
		{"rugix.init.quiet=0 bascule.init.error-shell=/bin/sh", kernelOptions{init: DefaultInit, errorShell: "/bin/sh"}, 0},
		{"bascule.init=sbin/init bascule.init.error-shell=sh", kernelOptions{init: DefaultInit}, 2},
		// After "--" everything belongs to init.
		{"ro -- bascule.init=/bin/sh rugix.init.quiet", kernelOptions{init: DefaultInit}, 0},
	} {
		got, warns := parseCmdline(tc.in)
		if got != tc.want || len(warns) != tc.warns {
			t.Errorf("%q: %+v %q", tc.in, got, warns)
		}
	}
}

func TestValidMachineID(t *testing.T) {
	b := &boot{root: "/"}
	seen := map[string]bool{}
	for i := 0; i < 20; i++ {
		id, err := b.randomID()
		if err != nil {
			t.Fatal(err)
		}
		if !validMachineID([]byte(id+"\n")) || id[12] != '4' || !strings.ContainsRune("89ab", rune(id[16])) || seen[id] {
			t.Fatalf("machine ID %q", id)
		}
		seen[id] = true
	}
	for _, bad := range []string{"", "xyz", strings.Repeat("A", 32), strings.Repeat("0", 31) + "\n"} {
		if validMachineID([]byte(bad)) {
			t.Errorf("%q valid", bad)
		}
	}
}
