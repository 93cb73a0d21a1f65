// Package delta runs the xdelta3 tool for static delta updates, as Rugix
// does: `xdelta3 -e -s OLD NEW PATCH` on the host and
// `xdelta3 -d -c -s SOURCE` (patch on standard input, the new slot content
// on standard output) on the device. The patches are xdelta3's VCDIFF
// dialect, which Rugix calls the "xdelta" delta format.
package delta

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
)

// Tool is the program that is run; tests may point it elsewhere.
var Tool = "xdelta3"

// ErrNotFound says that xdelta3 is not installed.
var ErrNotFound = errors.New("xdelta3 not found: install it (Debian: apt-get install xdelta3)")

// LookPath finds xdelta3 in PATH.
func LookPath() (string, error) {
	p, err := exec.LookPath(Tool)
	if err != nil {
		return "", ErrNotFound
	}
	return p, nil
}

// Encode writes to patch an xdelta3 patch that turns old into new. patch
// must not exist (xdelta3 refuses to overwrite it).
func Encode(old, new, patch string) error {
	xd, err := LookPath()
	if err != nil {
		return err
	}
	cmd := exec.Command(xd, "-e", "-s", old, new, patch)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("xdelta3 -e -s %s %s: %w%s", old, new, err, tail(&stderr))
	}
	return nil
}

// Decoder is a running `xdelta3 -d -c -s SOURCE`: the patch is written to
// it, the reconstructed file goes to the writer given to NewDecoder.
type Decoder struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr bytes.Buffer
	failed bool
}

// NewDecoder starts xdelta3 with source as the file the patch refers to.
// Its output is copied to out; Close waits for it.
func NewDecoder(source string, out io.Writer) (*Decoder, error) {
	xd, err := LookPath()
	if err != nil {
		return nil, err
	}
	d := &Decoder{cmd: exec.Command(xd, "-d", "-c", "-s", source)}
	d.cmd.Stdout = out
	d.cmd.Stderr = &d.stderr
	if d.stdin, err = d.cmd.StdinPipe(); err != nil {
		return nil, fmt.Errorf("xdelta3: %w", err)
	}
	if err := d.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start xdelta3: %w", err)
	}
	return d, nil
}

// Write passes patch bytes to xdelta3. If xdelta3 has stopped reading (it
// rejected the patch), the error says what it printed.
func (d *Decoder) Write(p []byte) (int, error) {
	n, err := d.stdin.Write(p)
	if err != nil {
		d.failed = true
		d.stdin.Close()
		werr := d.cmd.Wait()
		return n, fmt.Errorf("xdelta3 -d stopped reading the patch (%v)%s", werr, tail(&d.stderr))
	}
	return n, nil
}

// Close ends the patch and waits for xdelta3; a non-zero exit status is
// an error naming what xdelta3 printed.
func (d *Decoder) Close() error {
	if d.failed {
		return errors.New("xdelta3 -d failed")
	}
	d.stdin.Close()
	if err := d.cmd.Wait(); err != nil {
		return fmt.Errorf("xdelta3 -d: %w%s", err, tail(&d.stderr))
	}
	return nil
}

// Abort stops xdelta3 without waiting for the rest of the patch.
func (d *Decoder) Abort() {
	if d.failed {
		return
	}
	d.failed = true
	d.stdin.Close()
	d.cmd.Process.Kill()
	d.cmd.Wait()
}

// tail is the last line xdelta3 printed, for error messages.
func tail(b *bytes.Buffer) string {
	s := strings.TrimSpace(b.String())
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	if s == "" {
		return ""
	}
	return ": " + s
}
