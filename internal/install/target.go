package install

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
)

// Target receives one decoded payload. ReadAt reads back what was written
// (deduplicated blocks are copied from earlier in the same payload); targets
// that cannot do that return an error from it.
type Target interface {
	io.Writer
	io.ReaderAt
	// Finish makes the payload durable (fsync, rename, handler exit status).
	Finish() error
	// Abort gives up: temporary files are removed, handlers killed.
	Abort()
}

// blockTarget writes a block device (or an image file standing in for one)
// from offset 0, without truncating it.
type blockTarget struct {
	f  *os.File
	bw *bufio.Writer
}

// OpenBlock opens a block slot for writing.
func OpenBlock(dev string) (Target, error) {
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("open slot device: %w", err)
	}
	return &blockTarget{f: f, bw: bufio.NewWriterSize(f, 1<<20)}, nil
}

func (t *blockTarget) Write(p []byte) (int, error) { return t.bw.Write(p) }

func (t *blockTarget) ReadAt(p []byte, off int64) (int, error) {
	if err := t.bw.Flush(); err != nil {
		return 0, err
	}
	return t.f.ReadAt(p, off)
}

func (t *blockTarget) Finish() error {
	err := t.bw.Flush()
	if err == nil {
		err = t.f.Sync()
	}
	if cerr := t.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", t.f.Name(), err)
	}
	return nil
}

func (t *blockTarget) Abort() {
	t.bw.Flush()
	t.f.Sync()
	t.f.Close()
}

// fileTarget writes a file slot through a temporary file that replaces the
// slot file only when the payload is complete and verified.
type fileTarget struct {
	path string
	tmp  *os.File
	bw   *bufio.Writer
}

// OpenFile opens a file slot for writing.
func OpenFile(path string) (Target, error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return nil, fmt.Errorf("open file slot: %w", err)
	}
	return &fileTarget{path: path, tmp: tmp, bw: bufio.NewWriterSize(tmp, 1<<20)}, nil
}

func (t *fileTarget) Write(p []byte) (int, error) { return t.bw.Write(p) }

func (t *fileTarget) ReadAt(p []byte, off int64) (int, error) {
	if err := t.bw.Flush(); err != nil {
		return 0, err
	}
	return t.tmp.ReadAt(p, off)
}

func (t *fileTarget) Finish() error {
	err := t.bw.Flush()
	if err == nil {
		err = t.tmp.Sync()
	}
	if cerr := t.tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(t.tmp.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(t.tmp.Name(), t.path)
	}
	if err == nil {
		err = syncDir(filepath.Dir(t.path))
	}
	if err != nil {
		os.Remove(t.tmp.Name())
		return fmt.Errorf("write file slot %s: %w", t.path, err)
	}
	return nil
}

func (t *fileTarget) Abort() {
	t.tmp.Close()
	os.Remove(t.tmp.Name())
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// handlerTarget streams a payload into a command's standard input: custom
// slots and execute payloads.
type handlerTarget struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr bytes.Buffer
}

// OpenHandler starts argv with the payload on its standard input.
func OpenHandler(argv []string, env []string) (Target, error) {
	if len(argv) == 0 {
		return nil, fmt.Errorf("empty handler")
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout = os.Stderr
	t := &handlerTarget{cmd: cmd}
	cmd.Stderr = io.MultiWriter(os.Stderr, &t.stderr)
	var err error
	if t.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start handler %q: %w", argv[0], err)
	}
	return t, nil
}

func (t *handlerTarget) Write(p []byte) (int, error) {
	n, err := t.stdin.Write(p)
	if err != nil {
		return n, fmt.Errorf("handler %q: %w", t.cmd.Path, err)
	}
	return n, nil
}

func (t *handlerTarget) ReadAt([]byte, int64) (int, error) {
	return 0, fmt.Errorf("handler %q: deduplicated payloads cannot go to a handler (it cannot be read back)", t.cmd.Path)
}

func (t *handlerTarget) Finish() error {
	t.stdin.Close()
	if err := t.cmd.Wait(); err != nil {
		return fmt.Errorf("handler %q: %w", t.cmd.Path, err)
	}
	return nil
}

func (t *handlerTarget) Abort() {
	t.stdin.Close()
	t.cmd.Process.Kill()
	t.cmd.Wait()
}
