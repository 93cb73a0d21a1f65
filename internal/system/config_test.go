package system

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func parse(t *testing.T, toml string) (*Config, []string) {
	t.Helper()
	c, warnings, err := ParseConfig([]byte(toml), "system.toml")
	if err != nil {
		t.Fatal(err)
	}
	return c, warnings
}

func TestFullConfig(t *testing.T) {
	c, warnings, err := LoadConfig(filepath.Join("testdata", "full.toml"))
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		ConfigPartition: PartitionConfig{Partition: 1, Path: MountConfig},
		DataPartition: PartitionConfig{
			Device: "/dev/disk/by-label/data", Path: MountData, Protected: true, FailOnMountError: true,
			Driver: &DriverConfig{
				Type: "luks2-tpm2", PCRs: []uint32{7}, Device: "/dev/tpmrm0", Label: "state",
				MapperName: "data-crypt", AdditionalMkfsOptions: []string{"-O", "^metadata_csum"},
			},
		},
		Slots: []SlotConfig{
			{Name: "boot-a", Type: SlotBlock, Partition: 2},
			{Name: "boot-b", Type: SlotBlock, Partition: 3},
			{Name: "system-a", Type: SlotBlock, Device: "/dev/mmcblk0p5", Immutable: true},
			{Name: "system-b", Type: SlotBlock, Partition: 6, Immutable: true, Optional: true},
			{Name: "app-config", Type: SlotFile, Path: "/var/lib/app/config.tar"},
			{Name: "app", Type: SlotCustom, Handler: []string{"/usr/bin/install-app", "--verbose"}},
		},
		BootGroups: []GroupConfig{
			{Name: "a", Slots: map[string]string{"boot": "boot-a", "system": "system-a", "config": "app-config"}},
			{Name: "b", Slots: map[string]string{"boot": "boot-b", "system": "system-b"}},
		},
		BootFlow: &BootFlowConfig{Type: "rauc-uboot", GroupNames: []string{"A", "B"}, DefaultAttempts: 5},
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("config:\n%+v\nwant:\n%+v", c, want)
	}
	wantWarnings := []string{
		"testdata/full.toml: data-partition: both device and partition are set; device /dev/disk/by-label/data wins",
	}
	if !reflect.DeepEqual(warnings, wantWarnings) {
		t.Errorf("warnings %q, want %q", warnings, wantWarnings)
	}
}

func TestMissingFileIsDefaults(t *testing.T) {
	c, warnings, err := LoadConfig(filepath.Join(t.TempDir(), "system.toml"))
	if err != nil || warnings != nil {
		t.Fatal(err, warnings)
	}
	if !reflect.DeepEqual(c, DefaultConfig()) {
		t.Errorf("config %+v", c)
	}
	if c.Slots != nil || c.BootGroups != nil || c.BootFlow != nil || !c.ConfigPartition.Protected {
		t.Errorf("defaults %+v", c)
	}
}

func TestUnreadableFile(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := LoadConfig(dir); err == nil { // a directory
		t.Error("no error")
	}
}

func TestEmptyFileIsDefaults(t *testing.T) {
	c, warnings := parse(t, "")
	if len(warnings) != 0 || !reflect.DeepEqual(c, DefaultConfig()) {
		t.Errorf("config %+v, warnings %q", c, warnings)
	}
}

func TestBootFlowKeys(t *testing.T) {
	for _, tc := range []struct {
		toml string
		want BootFlowConfig
	}{
		{`type = "rpi-tryboot"`, BootFlowConfig{Type: "rpi-tryboot"}},
		{`type = "rpi-uboot"`, BootFlowConfig{Type: "rpi-uboot"}},
		{`type = "uboot"`, BootFlowConfig{Type: "uboot"}},
		{`type = "grub"`, BootFlowConfig{Type: "grub"}},
		{`type = "rauc-grub"`, BootFlowConfig{Type: "rauc-grub", DefaultAttempts: 3}},
		{"type = \"mender-grub\"", BootFlowConfig{Type: "mender-grub", BootDir: "/boot", BootPartA: 2, BootPartB: 3}},
		{"type = \"mender-uboot\"\nboot-dir = \"/b\"\nboot-part-a = 4\nboot-part-b = 5",
			BootFlowConfig{Type: "mender-uboot", BootDir: "/b", BootPartA: 4, BootPartB: 5}},
		{"type = \"custom\"\ncontroller = \"/usr/bin/flow\"", BootFlowConfig{Type: "custom", Controller: "/usr/bin/flow"}},
		{"type = \"systemd-boot\"\nentries = { a = \"rugix-a.conf\", b = \"rugix-b.conf\" }",
			BootFlowConfig{Type: "systemd-boot", Entries: map[string]string{"a": "rugix-a.conf", "b": "rugix-b.conf"}}},
	} {
		c, warnings := parse(t, "[boot-flow]\n"+tc.toml)
		if !reflect.DeepEqual(*c.BootFlow, tc.want) || len(warnings) != 0 {
			t.Errorf("%s:\n got %+v %q\nwant %+v", tc.toml, *c.BootFlow, warnings, tc.want)
		}
	}
}

func TestDriverKeys(t *testing.T) {
	for _, tc := range []struct {
		toml string
		want DriverConfig
	}{
		{`type = "plaintext-ext4"`, DriverConfig{Type: "plaintext-ext4", Label: "data"}},
		{"type = \"plaintext-ext4\"\nlabel = \"x\"\nadditional-options = [\"-m0\"]",
			DriverConfig{Type: "plaintext-ext4", Label: "x", AdditionalOptions: []string{"-m0"}}},
		{"type = \"luks2-passphrase\"\npassphrase-file = \"/etc/key\"",
			DriverConfig{Type: "luks2-passphrase", PassphraseFile: "/etc/key", Label: "data", MapperName: "rugix-data"}},
		{`type = "luks2-tpm2"`, DriverConfig{Type: "luks2-tpm2", Device: "auto", Label: "data", MapperName: "rugix-data"}},
		{"type = \"custom\"\nmount-script = \"/m\"\nformat-script = \"/f\"\nwipe-script = \"/w\"",
			DriverConfig{Type: "custom", MountScript: "/m", FormatScript: "/f", WipeScript: "/w"}},
	} {
		c, warnings := parse(t, "[data-partition.driver]\n"+tc.toml)
		if !reflect.DeepEqual(*c.DataPartition.Driver, tc.want) || len(warnings) != 0 {
			t.Errorf("%s:\n got %+v %q\nwant %+v", tc.toml, *c.DataPartition.Driver, warnings, tc.want)
		}
	}
}

func TestMountScript(t *testing.T) {
	c, warnings := parse(t, "[data-partition]\nmount-script = \"/usr/bin/mount-data\"\npartition = 8\n")
	if c.DataPartition.MountScript != "/usr/bin/mount-data" || c.DataPartition.Partition != 8 || len(warnings) != 0 {
		t.Errorf("data partition %+v, warnings %q", c.DataPartition, warnings)
	}
}

func TestUnknownKeyWarnings(t *testing.T) {
	_, warnings := parse(t, `
bootflow = "grub"
[config-partition]
protect = true
[slots.boot-a]
type = "block"
partition = 2
size = "256M"
path = "/x"
[slots.boot-b]
type = "block"
partition = 3
[slots.system-a]
type = "block"
partition = 5
[slots.system-b]
type = "custom"
handler = ["/bin/true"]
immutable = true
[slots."rootfs.0"]
type = "file"
path = "/data/rootfs"
optional = true
[boot-groups.a]
slots = { boot = "boot-a", system = "system-a" }
entries = 1
[boot-flow]
type = "grub"
controller = "/x"
[data-partition]
mount-script = "/m"
[extra]
x = 1
`)
	want := []string{
		`system.toml: unknown key "bootflow" ignored`,
		`system.toml: unknown key "config-partition.protect" ignored`,
		`system.toml: unknown key "slots.boot-a.size" ignored`,
		`system.toml: unknown key "boot-groups.a.entries" ignored`,
		`system.toml: unknown key "extra" ignored`,
	}
	got := strings.Join(warnings, "\n")
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("missing warning %s", w)
		}
	}
	if len(warnings) != 9 {
		t.Errorf("%d warnings, want 9:\n%s", len(warnings), got)
	}
	for _, w := range []string{
		`"slots.boot-a.path" ignored (not used by block slots)`,
		`"slots.system-b.immutable" ignored (not used by custom slots)`,
		`"slots.\"rootfs.0\".optional" ignored (not used by file slots)`,
		`"boot-flow.controller" ignored (not used by boot flow grub)`,
	} {
		if !strings.Contains(got, w) {
			t.Errorf("missing warning %s in:\n%s", w, got)
		}
	}
}

func TestDeviceAndPartition(t *testing.T) {
	c, warnings := parse(t, `
[slots.boot-a]
type = "block"
device = "/dev/sda2"
partition = 2
[slots.boot-b]
type = "block"
partition = 3
[slots.system-a]
type = "block"
partition = 4
[slots.system-b]
type = "block"
partition = 5
`)
	if s := c.Slots[0]; s.Device != "/dev/sda2" || s.Partition != 0 {
		t.Errorf("slot %+v: device should win", s)
	}
	if len(warnings) != 1 || warnings[0] != "system.toml: slots.boot-a: both device and partition are set; device /dev/sda2 wins" {
		t.Errorf("warnings %q", warnings)
	}
}

func TestConfigErrors(t *testing.T) {
	slots := `
[slots.boot-a]
type = "block"
partition = 2
[slots.boot-b]
type = "block"
partition = 3
[slots.system-a]
type = "block"
partition = 4
[slots.system-b]
type = "block"
partition = 5
`
	for _, tc := range []struct{ name, toml, want string }{
		{"bad type", "[slots.x]\ntype = \"block\"\npartition = \"two\"", `"slots.x.partition"`},
		{"negative", "[slots.x]\ntype = \"block\"\npartition = -1", `"slots.x.partition"`},
		{"partition 0", slots + "[slots.x]\ntype = \"block\"\npartition = 0", "slots.x.partition: partition numbers start at 1"},
		{"bool", "[config-partition]\nprotected = \"yes\"", `"config-partition.protected"`},
		{"syntax", "[slots.x\n", "system.toml"},
		{"no type", slots + "[slots.x]\npartition = 2", "slots.x.type: missing"},
		{"unknown slot type", slots + "[slots.x]\ntype = \"raw\"", `slots.x.type: unknown slot type "raw"`},
		{"block without device", slots + "[slots.x]\ntype = \"block\"", "slots.x: a block slot needs device or partition"},
		{"file without path", slots + "[slots.x]\ntype = \"file\"", "slots.x.path: required for file slots"},
		{"custom without handler", slots + "[slots.x]\ntype = \"custom\"", "slots.x.handler: required for custom slots"},
		{"custom empty handler", slots + "[slots.x]\ntype = \"custom\"\nhandler = []", "slots.x.handler: required"},
		{"slot name", slots + "[slots.\"..\"]\ntype = \"custom\"\nhandler = [\"x\"]", `slots."..": ".." cannot be used`},
		{"slot name slash", slots + "[slots.\"a/b\"]\ntype = \"custom\"\nhandler = [\"x\"]", `slots."a/b"`},
		{"slots scalar", "slots = 3", "slots: must be a table, not integer"},
		{"slot scalar", "[slots]\nx = 3", `"slots.x"`},
		{"group unknown slot", slots + "[boot-groups.a]\nslots = { boot = \"boot-a\", system = \"system-c\" }",
			`boot-groups.a.slots.system: unknown slot "system-c"`},
		{"group unknown default slot", "[boot-groups.a]\nslots = { system = \"rootfs\" }",
			`boot-groups.a.slots.system: unknown slot "rootfs"`},
		{"group without slots", slots + "[boot-groups.a]", "boot-groups.a.slots: missing"},
		{"group slots scalar", slots + "[boot-groups.a]\nslots = 1", "boot-groups.a.slots: must be a table"},
		{"default groups need default slots", "[slots.rootfs]\ntype = \"block\"\npartition = 2",
			`boot-groups: not configured, and the default group a needs slot "boot-a"`},
		{"unknown boot flow", "[boot-flow]\ntype = \"lilo\"", `boot-flow.type: unknown boot flow "lilo"`},
		{"boot flow without type", "[boot-flow]\ncontroller = \"/x\"", "boot-flow.type: missing"},
		{"custom flow without controller", "[boot-flow]\ntype = \"custom\"", "boot-flow.controller: required"},
		{"systemd-boot without entries", "[boot-flow]\ntype = \"systemd-boot\"", "boot-flow.entries: required"},
		{"config partition disabled", "[config-partition]\ndisabled = true", "config-partition.disabled: the config partition cannot be disabled"},
		{"relative mount path", "[data-partition]\npath = \"data\"", "data-partition.path"},
		{"driver and mount script", "[data-partition]\nmount-script = \"/m\"\n[data-partition.driver]\ntype = \"plaintext-ext4\"",
			"data-partition.driver: driver and mount-script exclude each other"},
		{"driver on config partition", "[config-partition.driver]\ntype = \"plaintext-ext4\"", "config-partition.driver: a driver is only valid"},
		{"unknown driver", "[data-partition.driver]\ntype = \"zfs\"", `data-partition.driver.type: unknown driver "zfs"`},
		{"passphrase driver without file", "[data-partition.driver]\ntype = \"luks2-passphrase\"", "data-partition.driver.passphrase-file: required"},
		{"custom driver without mount script", "[data-partition.driver]\ntype = \"custom\"", "data-partition.driver.mount-script: required"},
	} {
		_, _, err := ParseConfig([]byte(tc.toml), "system.toml")
		if err == nil {
			t.Errorf("%s: no error", tc.name)
			continue
		}
		if msg := err.Error(); !strings.HasPrefix(msg, "system.toml: ") || !strings.Contains(msg, tc.want) {
			t.Errorf("%s: error %q, want it to name the file and contain %s", tc.name, msg, tc.want)
		}
	}
}

func TestSlotOrderIsFileOrder(t *testing.T) {
	c, _ := parse(t, `
[slots.zeta]
type = "file"
path = "/z"
[slots.alpha]
type = "file"
path = "/a"
[slots.mid]
type = "file"
path = "/m"
[boot-groups.second]
slots = { x = "zeta" }
[boot-groups.first]
slots = { x = "alpha" }
`)
	var names []string
	for _, s := range c.Slots {
		names = append(names, s.Name)
	}
	for _, g := range c.BootGroups {
		names = append(names, g.Name)
	}
	if got := strings.Join(names, " "); got != "zeta alpha mid second first" {
		t.Errorf("order %s", got)
	}
}

func TestCtrlConfig(t *testing.T) {
	c, warnings, err := ParseCtrlConfig([]byte(`
[signatures]
roots = ["/etc/rugix/root.pem", "/etc/rugix/backup-root.pem"]
[compatibility]
require-bundle-components = true
[grants]
namespace = "fleet"
identity-helper = "/usr/bin/identity"
[[grants.authorities]]
root = "/etc/rugix/grants.pem"
permissions = ["system"]
[extra]
x = 1
`), "ctrl.toml")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.Signatures.Roots, []string{"/etc/rugix/root.pem", "/etc/rugix/backup-root.pem"}) || !c.RequireBundleComponents {
		t.Errorf("config %+v", c)
	}
	if c.Grants["namespace"] != "fleet" || len(c.Grants["authorities"].([]map[string]any)) != 1 {
		t.Errorf("grants %#v", c.Grants)
	}
	want := []string{
		`ctrl.toml: unknown key "extra" ignored`,
		"ctrl.toml: [grants] is kept but not enforced: Bascule does not implement install grants",
	}
	if !reflect.DeepEqual(warnings, want) {
		t.Errorf("warnings %q, want %q", warnings, want)
	}

	c, warnings, err = LoadCtrlConfig(filepath.Join(t.TempDir(), "ctrl.toml"))
	if err != nil || warnings != nil || c.Signatures != nil || c.Grants != nil || c.RequireBundleComponents {
		t.Errorf("missing file: %+v %q %v", c, warnings, err)
	}

	for _, tc := range []struct{ toml, want string }{
		{"[signatures]\n", "ctrl.toml: signatures.roots: missing"},
		{"[signatures]\nroots = \"/x.pem\"", `"signatures.roots"`},
		{"[signatures]\nroots = [\"\"]", "signatures.roots: entry 0 is empty"},
		{"[compatibility]\nrequire-bundle-components = 1", `"compatibility.require-bundle-components"`},
		{"grants = 1", "grants: must be a table"},
	} {
		_, _, err := ParseCtrlConfig([]byte(tc.toml), "ctrl.toml")
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "ctrl.toml: ") {
			t.Errorf("%q: error %v, want %s", tc.toml, err, tc.want)
		}
	}
}

func TestLoadCtrlConfigFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ctrl.toml")
	os.WriteFile(path, []byte("[signatures]\nroots = [\"/r.pem\"]\n"), 0o644)
	c, _, err := LoadCtrlConfig(path)
	if err != nil || len(c.Signatures.Roots) != 1 {
		t.Fatalf("%+v %v", c, err)
	}
}

func TestKeepInit(t *testing.T) {
	cfg, warns, err := ParseConfig([]byte("[boot-flow]\ntype = \"rpi-tryboot\"\nkeep-init = true\n"), "system.toml")
	if err != nil || len(warns) != 0 || !cfg.BootFlow.KeepInit {
		t.Fatalf("%+v %v %v", cfg.BootFlow, warns, err)
	}
	_, warns, err = ParseConfig([]byte("[boot-flow]\ntype = \"grub\"\nkeep-init = true\n"), "system.toml")
	if err != nil || len(warns) != 1 || !strings.Contains(warns[0], "keep-init") {
		t.Fatalf("keep-init on grub: %v %v", warns, err)
	}
}
