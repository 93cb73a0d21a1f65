package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/bascule-ota/bascule/internal/bundle"
	"github.com/bascule-ota/bascule/internal/hashes"
	"github.com/bascule-ota/bascule/internal/hooks"
	"github.com/bascule-ota/bascule/internal/install"
	"github.com/bascule-ota/bascule/internal/progress"
	"github.com/bascule-ota/bascule/internal/sign"
	"github.com/bascule-ota/bascule/internal/slotdb"
	"github.com/bascule-ota/bascule/internal/system"
)

func cmdUpdateInstall(args []string) error {
	fs := flag.NewFlagSet("update install", flag.ContinueOnError)
	reboot := fs.String("reboot", "", "yes, no, deferred or set (default: yes for full bundles, no for incremental ones)")
	group := fs.String("boot-group", "", "boot group to install into (default: the inactive one)")
	keepOverlay := fs.Bool("keep-overlay", false, "keep the target group's overlay")
	bundleHash := fs.String("bundle-hash", "", "expected header hash of the bundle (sha512-256:<hex>)")
	verifyBundle := fs.String("verify-bundle", "", "the same as --bundle-hash (Rugix 0.8 name)")
	rootCert := fs.String("root-cert", "", "trust this root certificate (file or directory) instead of /etc/rugix/ctrl.toml's")
	insecure := fs.Bool("insecure-skip-bundle-verification", false, "install without a signature or bundle hash")
	var net netFlags
	net.register(fs)
	pos, err := tool.Parse("update install", fs, args, 1, 1)
	if err != nil {
		return err
	}
	if err := net.check(); err != nil {
		return err
	}
	switch *reboot {
	case "", "yes", "no", "deferred", "set":
	default:
		return fmt.Errorf("--reboot: %q is not yes, no, deferred or set", *reboot)
	}
	src := pos[0]
	policy := install.Policy{Insecure: *insecure, Warn: warn}
	if h := *bundleHash + *verifyBundle; h != "" {
		if *bundleHash != "" && *verifyBundle != "" {
			return errors.New("give either --bundle-hash or --verify-bundle, not both")
		}
		d, err := hashes.ParseDigest(h)
		if err != nil {
			return fmt.Errorf("--bundle-hash: %w", err)
		}
		policy.BundleHash = &d
	}
	roots := []string{}
	if *rootCert != "" {
		roots = []string{*rootCert}
	} else {
		ctrl, warns, err := system.LoadCtrlConfig(system.CtrlConfigPath)
		if err != nil {
			return err
		}
		for _, w := range warns {
			warn(w)
		}
		if ctrl.Signatures != nil {
			roots = ctrl.Signatures.Roots
		}
	}
	if len(roots) > 0 {
		r, err := sign.LoadRoots(roots...)
		if err != nil {
			return err
		}
		policy.Verifier = &sign.Verifier{Roots: r}
	}

	if err := lock(); err != nil {
		return err
	}
	d, err := openDevice()
	if err != nil {
		return err
	}
	def, err := d.defaultGroup()
	if err != nil {
		return err
	}
	if d.active == "" {
		return errors.New("the running root is not a slot of any boot group: refusing to install")
	}
	if def != d.active {
		return errors.New("System needs to be committed before installing an update.")
	}
	target := *group
	if target == "" {
		if target, err = d.sys.InactiveGroup(d.active); err != nil {
			return err
		}
	}
	if _, err := d.sys.Group(target); err != nil {
		return err
	}
	if target == d.active {
		return fmt.Errorf("boot group %s is the running one: refusing to install into it", target)
	}

	in, err := openSource(src, net, d.haveIndices())
	if err != nil {
		return err
	}
	defer in.Close()
	prog := newProgress(in.Size())
	var incremental bool
	env := []string{"RUGIX_BOOT_GROUP=" + target}
	opts := install.Options{
		Policy:   policy,
		Progress: prog.add,
		Warn:     warn,
		Prepare: func(r *bundle.Reader) error {
			incremental = r.Header.Incremental
			if err := hooks.Run(hooks.DefaultDir, "update-install", "pre-update", env, hooks.Options{Warn: warn}); err != nil {
				return err
			}
			if !*keepOverlay {
				if err := os.RemoveAll(filepath.Join(system.StateDir, "overlay", target)); err != nil {
					return err
				}
			}
			if incremental {
				return nil
			}
			// Until the new group is complete it must not be tried: disarm
			// a try left from an earlier, interrupted install.
			if err := d.flow.SetTryNext(def); err != nil {
				return fmt.Errorf("disarm boot group %s: %w", target, err)
			}
			return d.flow.PreInstall(target)
		},
		Resolve: func(p *bundle.Payload) (install.Target, string, error) {
			if p.Entry.IsExecute {
				t, err := install.OpenHandler(p.Entry.Execute, env)
				return t, "", err
			}
			slot, err := d.sys.SlotByAlias(target, p.Entry.Slot)
			if err != nil {
				return nil, "", nil // Rugix skips payloads for unknown slots
			}
			if slot.Active {
				return nil, "", fmt.Errorf("slot %s is in the running boot group: refusing to write it", slot.Name)
			}
			var t install.Target
			switch slot.Type {
			case system.SlotBlock:
				dev, err := d.sys.SlotDevice(slot)
				if err != nil {
					return nil, "", err
				}
				t, err = install.OpenBlock(dev)
				if err != nil {
					return nil, "", err
				}
			case system.SlotFile:
				t, err = install.OpenFile(slot.Path)
			default:
				t, err = install.OpenHandler(slot.Handler, env)
			}
			return t, slot.Name, err
		},
		Erase:      d.db.Erase,
		FindSource: install.ActiveSlotSource(d.sys, d.db),
		Done: func(name string, h hashes.Digest, n int64) error {
			slot, err := d.sys.Slot(name)
			if err != nil {
				return err
			}
			return d.db.Save(name, slotdb.Installed(slot.Immutable, h, uint64(n), time.Now()))
		},
		Local:     d.localSlots,
		SaveIndex: d.saveIndex,
	}
	rep, err := install.Run(in, opts)
	prog.done()
	if err != nil {
		return fmt.Errorf("bundle rejected: %w", err)
	}
	reportInstall(rep, in, target, prog.jsonOut)
	if err := hooks.Run(hooks.DefaultDir, "update-install", "post-update", env, hooks.Options{Warn: warn}); err != nil {
		return err
	}
	if incremental {
		return nil
	}
	if err := d.flow.PostInstall(target); err != nil {
		return fmt.Errorf("post-install of boot group %s: %w", target, err)
	}
	mode := *reboot
	if mode == "" {
		mode = "yes"
	}
	switch mode {
	case "yes":
		if err := d.flow.SetTryNext(target); err != nil {
			return fmt.Errorf("arm boot group %s: %w", target, err)
		}
		return d.flow.Reboot(true)
	case "set":
		return d.flow.Commit(target)
	case "deferred":
		marker := filepath.Join(system.MountData, ".rugix", "deferred-reboot-spare")
		if err := os.MkdirAll(filepath.Dir(marker), 0o755); err != nil {
			return err
		}
		b, _ := json.Marshal(map[string]any{"version": 1, "bootGroup": target})
		return os.WriteFile(marker, b, 0o644)
	}
	return nil
}

// installProgress reports progress: a bar on a terminal, JSON lines
// ({"event":"UpdateProgress","progress":12.34}) when stdout is not one, and
// the update-install/progress hooks about every 0.9 %.
type installProgress struct {
	mu       sync.Mutex
	bar      *progress.Bar
	total    int64
	done_    int64
	lastHook float64
	jsonOut  bool
}

func newProgress(total int64) *installProgress {
	return &installProgress{bar: progress.New("install", total), total: total, jsonOut: !progress.IsTerminal(os.Stdout)}
}

func (p *installProgress) add(n int64) {
	p.bar.Add(n)
	if p.total <= 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done_ += n
	pct := 100 * float64(p.done_) / float64(p.total)
	if pct-p.lastHook < 0.9 {
		return
	}
	p.lastHook = pct
	if p.jsonOut {
		fmt.Printf("{\"event\":\"UpdateProgress\",\"progress\":%.2f}\n", pct)
	}
	env := []string{fmt.Sprintf("RUGIX_UPDATE_PROGRESS=%.2f", pct)}
	if err := hooks.Run(hooks.DefaultDir, "update-install", "progress", env, hooks.Options{Stdout: io.Discard, Stderr: io.Discard, Warn: func(string) {}}); err != nil {
		warn(err.Error())
	}
}

func (p *installProgress) done() { p.bar.Done() }
