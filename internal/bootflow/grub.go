package bootflow

import (
	"bytes"
	"fmt"
	"os"

	"github.com/bascule-ota/bascule/internal/atomicfile"
)

// Files of the grub flow on the config partition. The directory is still
// called rugpi, as in Rugix.
const (
	grubPrimary   = "rugpi/primary.grubenv"
	grubSecondary = "rugpi/secondary.grubenv"
	grubSpare     = "rugpi/boot_spare.grubenv"
)

// grub is the grub flow. Rugix's first-stage grub.cfg loads the secondary
// and then the primary environment, each only if its .sha1 sidecar
// matches, so the primary wins; rugpi_bootpart defaults to 2. If
// boot_spare.grubenv says rugpi_boot_spare=true it boots the other
// partition and saves false back.
type grub struct{ abEnv }

func (f *grub) Name() string { return Grub }

// Default evaluates the environments exactly as grub.cfg does, so that a
// commit cut short between the two copies reports what will really boot.
func (f *grub) Default() (string, error) {
	bootpart := "2"
	anyExists := false
	for _, name := range []string{grubSecondary, grubPrimary} {
		v, exists, ok := readVerifiedGrubEnv(f.configPath(name), "/"+name)
		anyExists = anyExists || exists
		if !ok {
			continue
		}
		if p, set := v.get("rugpi_bootpart"); set {
			bootpart = p
		}
	}
	if !anyExists {
		return "", fmt.Errorf("neither %s nor %s exists", f.configPath(grubPrimary), f.configPath(grubSecondary))
	}
	return f.group(bootpart)
}

// SetTryNext writes boot_spare.grubenv with "true" or "false" (the strings
// Rugix's code writes; its docs say 1/0). Rugix writes it in place; a torn
// block only means the default boots. Bascule uses atomicfile anyway.
func (f *grub) SetTryNext(group string) error {
	if _, err := f.part(group); err != nil {
		return err
	}
	def, err := f.Default()
	if err != nil {
		return err
	}
	spare := "false"
	if group != def {
		spare = "true"
	}
	data, err := encodeGrubEnv(envVars{{"rugpi_boot_spare", spare}})
	if err != nil {
		return err
	}
	path := f.configPath(grubSpare)
	if cur, err := os.ReadFile(path); err == nil && bytes.Equal(cur, data) {
		return nil
	}
	return f.writable(func() error { return atomicfile.Write(path, data, 0o644) })
}

// Commit writes the secondary copy and then the primary one, as Rugix
// does. For each, the sidecar is replaced before the environment, so a cut
// in between leaves a copy GRUB rejects, and the other copy decides: the
// old primary while the secondary is written, the new secondary while the
// primary is written. If the primary is already unusable (an earlier cut),
// the secondary is what boots, so the primary is written first instead.
func (f *grub) Commit(active string) error {
	part, err := f.part(active)
	if err != nil {
		return err
	}
	env, err := encodeGrubEnv(envVars{{"rugpi_bootpart", fmt.Sprint(part)}})
	if err != nil {
		return err
	}
	if f.hasCopies(env) {
		return nil
	}
	order := []string{grubSecondary, grubPrimary}
	if _, _, ok := readVerifiedGrubEnv(f.configPath(grubPrimary), "/"+grubPrimary); !ok {
		order = []string{grubPrimary, grubSecondary}
	}
	return f.writable(func() error {
		for _, name := range order {
			path := f.configPath(name)
			if err := atomicfile.Write(path+".sha1", grubSidecar(env, "/"+name), 0o644); err != nil {
				return err
			}
			if err := atomicfile.Write(path, env, 0o644); err != nil {
				return err
			}
		}
		return nil
	})
}

// hasCopies reports whether both copies and their sidecars already are
// exactly what Commit would write.
func (f *grub) hasCopies(env []byte) bool {
	for _, name := range []string{grubSecondary, grubPrimary} {
		path := f.configPath(name)
		cur, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(cur, env) {
			return false
		}
		sidecar, err := os.ReadFile(path + ".sha1")
		if err != nil || !bytes.Equal(sidecar, grubSidecar(env, "/"+name)) {
			return false
		}
	}
	return true
}

func (f *grub) PostInstall(group string) error { return grubPostInstall(f.abEnv, group) }
