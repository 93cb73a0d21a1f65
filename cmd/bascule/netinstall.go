package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/bascule-ota/bascule/internal/bundle"
	"github.com/bascule-ota/bascule/internal/install"
	"github.com/bascule-ota/bascule/internal/slotdb"
	"github.com/bascule-ota/bascule/internal/source"
	"github.com/bascule-ota/bascule/internal/system"
	"github.com/bascule-ota/bascule/internal/version"
)

// seconds is a duration flag that takes Rugix 1.x's whole seconds ("5")
// or a Go duration ("500ms", "1m30s").
type seconds struct{ d *time.Duration }

func (s seconds) String() string {
	if s.d == nil {
		return ""
	}
	return s.d.String()
}

func (s seconds) Set(v string) error {
	if n, err := strconv.ParseUint(v, 10, 32); err == nil {
		*s.d = time.Duration(n) * time.Second
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return fmt.Errorf("%q is neither whole seconds nor a duration like 1s or 500ms", v)
	}
	*s.d = d
	return nil
}

// netFlags are the HTTP options of update install.
type netFlags struct {
	o          source.HTTPOptions
	maxRetries int
}

func (n *netFlags) register(fs *flag.FlagSet) {
	n.o.InitialBackoff, n.o.MaxBackoff = time.Second, 30*time.Second
	n.o.ConnectTimeout, n.o.IdleTimeout = 30*time.Second, 60*time.Second
	fs.IntVar(&n.maxRetries, "http-max-retries", 5, "HTTP: attempts in a row that may fail without progress before giving up")
	fs.Var(seconds{&n.o.InitialBackoff}, "http-retry-initial-backoff", "HTTP: wait before the first retry, doubling after each failure (seconds, or a duration like 500ms)")
	fs.Var(seconds{&n.o.MaxBackoff}, "http-retry-max-backoff", "HTTP: longest wait between retries")
	fs.Var(seconds{&n.o.ConnectTimeout}, "http-connect-timeout", "HTTP: timeout for connecting and the TLS handshake")
	fs.Var(seconds{&n.o.IdleTimeout}, "http-idle-timeout", "HTTP: a request that gets no data for this long is dropped and resumed")
	fs.BoolVar(&n.o.DisableRanges, "disable-range-queries", false, "HTTP: never use range requests (one plain GET)")
	fs.StringVar(&n.o.CACert, "ca-cert", "", "HTTPS: trust these CA certificates (PEM file or directory) instead of the system's")
}

func (n *netFlags) check() error {
	if n.maxRetries < 0 {
		return fmt.Errorf("--http-max-retries: %d is negative", n.maxRetries)
	}
	if n.o.InitialBackoff > n.o.MaxBackoff {
		return fmt.Errorf("--http-retry-initial-backoff %s exceeds --http-retry-max-backoff %s", n.o.InitialBackoff, n.o.MaxBackoff)
	}
	if n.o.ConnectTimeout <= 0 || n.o.IdleTimeout <= 0 {
		return fmt.Errorf("HTTP timeouts must be positive")
	}
	n.o.MaxRetries = n.maxRetries
	if n.maxRetries == 0 {
		n.o.MaxRetries = -1 // no retries
	}
	return nil
}

// openSource opens the bundle: standard input ("-"), an http:// or
// https:// URL, or a file.
// haveIndices says whether blocks may be taken from a slot (an HTTP
// download then starts with small requests, since skips will follow).
func openSource(src string, n netFlags, haveIndices bool) (source.Source, error) {
	switch {
	case src == "-":
		return source.NewStream(os.Stdin, -1), nil
	case strings.HasPrefix(src, "http://") || strings.HasPrefix(src, "https://"):
		o := n.o
		o.UserAgent = "bascule/" + version.String()
		o.Warn = warn
		o.ExpectSkips = haveIndices
		return source.OpenHTTP(src, o)
	case strings.HasPrefix(src, "http"):
		return nil, fmt.Errorf("%q: only http:// and https:// URLs are supported", src)
	}
	return source.OpenFile(src)
}

// haveIndices reports whether any slot has a block index file.
func (d *device) haveIndices() bool {
	for _, s := range d.sys.Slots {
		if files, err := d.db.ListIndices(s.Name); err == nil && len(files) > 0 {
			return true
		}
	}
	return false
}

// localSlots lists, for a block-encoded payload, every slot with a block
// index of the payload's chunker and hash algorithm: the blocks adaptive
// delta takes from the device. It runs before the target slot's database
// entry is erased, so the target's old index is among them.
func (d *device) localSlots(p *bundle.Payload, target string) ([]install.LocalSlot, error) {
	b := p.Header.Block
	if b == nil {
		return nil, nil
	}
	var out []install.LocalSlot
	for i := range d.sys.Slots {
		slot := &d.sys.Slots[i]
		if slot.Type == system.SlotCustom || slot.Missing {
			continue
		}
		files, err := d.db.ListIndices(slot.Name)
		if err != nil {
			warn(err.Error())
			continue
		}
		for _, f := range files {
			if f.Chunker != b.Chunker || f.HashAlg != b.HashAlg {
				continue
			}
			ix, err := slotdb.ReadIndex(f.Path)
			if err != nil {
				warn(fmt.Sprintf("slot %s: %v", slot.Name, err))
				break
			}
			path, err := d.sys.SlotDevice(slot)
			if err != nil {
				break
			}
			out = append(out, install.LocalSlot{Name: slot.Name, Path: path, Index: ix, Target: slot.Name == target})
			break
		}
	}
	return out, nil
}

// saveIndex stores the block index of an immutable slot just installed (a
// Bascule extension: Rugix indexes only on `slots create-index`), so that
// the next update is an adaptive delta without a manual step. A mutable
// slot's content changes once used, so it gets none.
func (d *device) saveIndex(name string, ix *slotdb.Index) error {
	slot, err := d.sys.Slot(name)
	if err != nil || !slot.Immutable {
		return err
	}
	dir, err := d.db.Dir(name)
	if err != nil {
		return err
	}
	// The index only makes later updates cheaper: failing to store it
	// must not fail an install that is complete and verified.
	if _, err := slotdb.WriteIndex(dir, ix); err != nil {
		warn(fmt.Sprintf("slot %s: block index not stored (the next update downloads more): %v", name, err))
	}
	return nil
}

// installStats is the final JSON line of an install (stdout not a
// terminal), after the UpdateProgress lines.
type installStats struct {
	Event        string `json:"event"`
	BundleSize   int64  `json:"bundleSize"`
	Downloaded   int64  `json:"downloaded"`
	Reused       int64  `json:"reused"`
	Written      int64  `json:"written"`
	HTTPRequests int    `json:"httpRequests,omitempty"`
	HTTPRetries  int    `json:"httpRetries,omitempty"`
}

// reportInstall says what the install cost: bytes read from the source
// (downloaded), taken from local slots, and written.
func reportInstall(rep *install.Report, in source.Source, target string, jsonOut bool) {
	st := in.Stats()
	size := in.Size()
	share := ""
	if size > 0 {
		share = fmt.Sprintf(" (%.1f%% of %d)", 100*float64(st.Read)/float64(size), size)
	}
	if st.Requests > 0 {
		share += fmt.Sprintf(" in %d HTTP requests, %d of them retries", st.Requests, st.Retries)
	}
	fmt.Fprintf(os.Stderr, "Installed bundle %s into boot group %s: %d bytes written, %d of them reused from local slots; %d bytes of the bundle read%s\n",
		rep.HeaderHash, target, rep.Written, rep.Reused, st.Read, share)
	if rep.LocalMismatches > 0 {
		warn(fmt.Sprintf("%d local blocks did not match their slot's block index and were taken from the bundle", rep.LocalMismatches))
	}
	if jsonOut {
		b, _ := json.Marshal(installStats{Event: "UpdateStats", BundleSize: size, Downloaded: st.Read, Reused: rep.Reused, Written: rep.Written, HTTPRequests: st.Requests, HTTPRetries: st.Retries})
		fmt.Printf("%s\n", b)
	}
}
