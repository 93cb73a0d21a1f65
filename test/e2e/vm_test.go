//go:build e2e

package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// vm is one run of QEMU: one boot of the emulated device, from power-on to
// the guest's restart (QEMU runs with -no-reboot and exits) or to a power
// cut (SIGKILL). Its serial console is read into a buffer, every line
// stamped with the host time it arrived, and written to a log file.
type vm struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	started time.Time
	log     *os.File

	mu      sync.Mutex
	console []byte
	stamps  []lineStamp // end offset of each complete line and its arrival
	changed chan struct{}
	exited  chan struct{} // closed when QEMU has exited
	waitErr error
	seq     int
}

type lineStamp struct {
	end int
	at  time.Time
}

// startVM starts QEMU with args; the console goes to logPath as well.
func startVM(args []string, logPath string) (*vm, error) {
	log, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "### qemu-system-aarch64 %s\n", strings.Join(args, " "))
	cmd := exec.Command("qemu-system-aarch64", args...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		log.Close()
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		log.Close()
		return nil, err
	}
	cmd.Stderr = log
	v := &vm{cmd: cmd, stdin: stdin, log: log, changed: make(chan struct{}, 1), exited: make(chan struct{})}
	v.started = time.Now()
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("start qemu: %w", err)
	}
	readDone := make(chan struct{})
	go v.read(stdout, readDone)
	go func() {
		<-readDone
		err := cmd.Wait()
		v.mu.Lock()
		v.waitErr = err
		v.mu.Unlock()
		log.Close()
		close(v.exited)
	}()
	return v, nil
}

// read copies the console into the buffer and the log.
func (v *vm) read(r io.Reader, done chan<- struct{}) {
	defer close(done)
	buf := make([]byte, 4096)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			now := time.Now()
			v.mu.Lock()
			for i, c := range buf[:n] {
				if c == '\n' {
					v.stamps = append(v.stamps, lineStamp{end: len(v.console) + i + 1, at: now})
				}
			}
			v.console = append(v.console, buf[:n]...)
			v.mu.Unlock()
			v.log.Write(buf[:n])
			select {
			case v.changed <- struct{}{}:
			default:
			}
		}
		if err != nil {
			return
		}
	}
}

// text is the console so far.
func (v *vm) text() string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return string(v.console)
}

// size is the length of the console so far: an offset to search from.
func (v *vm) size() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.console)
}

// stampAt is the arrival time of the line that contains offset off.
func (v *vm) stampAt(off int) time.Time {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, s := range v.stamps {
		if s.end > off {
			return s.at
		}
	}
	return time.Now()
}

// hasExited reports whether QEMU has ended.
func (v *vm) hasExited() bool {
	select {
	case <-v.exited:
		return true
	default:
		return false
	}
}

// errExited is returned by expect when QEMU ended before the match.
var errExited = errors.New("qemu exited")

// expect waits until re matches the console after offset from and returns
// the submatches and the offset just past the match. A line still being
// written can match too: patterns that need a whole line end with \n.
func (v *vm) expect(re *regexp.Regexp, from int, timeout time.Duration) ([]string, int, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		v.mu.Lock()
		text := v.console[from:]
		loc := re.FindSubmatchIndex(text)
		var m []string
		if loc != nil {
			for i := 0; i < len(loc); i += 2 {
				if loc[i] < 0 {
					m = append(m, "")
				} else {
					m = append(m, string(text[loc[i]:loc[i+1]]))
				}
			}
		}
		v.mu.Unlock()
		if loc != nil {
			return m, from + loc[1], nil
		}
		select {
		case <-v.changed:
		case <-v.exited:
			// One last look: the reader has finished.
			v.mu.Lock()
			loc = re.FindIndex(v.console[from:])
			v.mu.Unlock()
			if loc == nil {
				v.mu.Lock()
				status := v.waitErr
				v.mu.Unlock()
				return nil, 0, fmt.Errorf("waiting for %q: %w (status: %v)", re, errExited, status)
			}
		case <-deadline.C:
			return nil, 0, fmt.Errorf("waiting for %q: no match within %v", re, timeout)
		}
	}
}

// send writes a line to the serial console.
func (v *vm) send(line string) error {
	_, err := io.WriteString(v.stdin, line+"\n")
	return err
}

// run runs a shell command on the serial console and returns its output
// (\r\n turned into \n) and exit status. The markers around it are split
// by quotes in the command line so that the echo of the typed line never
// matches them.
func (v *vm) run(command string, timeout time.Duration) (string, int, error) {
	v.seq++
	id := v.seq
	from := v.size()
	if err := v.send(fmt.Sprintf(`echo "@@B""EG:%d@@"; %s; echo "@@E""ND:%d:$?@@"`, id, command, id)); err != nil {
		return "", -1, err
	}
	re := regexp.MustCompile(fmt.Sprintf(`(?s)@@BEG:%d@@\r?\n(.*?)@@END:%d:(\d+)@@`, id, id))
	m, _, err := v.expect(re, from, timeout)
	if err != nil {
		return "", -1, fmt.Errorf("%s: %w", command, err)
	}
	rc, _ := strconv.Atoi(m[2])
	return strings.ReplaceAll(m[1], "\r\n", "\n"), rc, nil
}

// waitShell waits until the console shell answers.
func (v *vm) waitShell(from int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		v.seq++
		re := regexp.MustCompile(fmt.Sprintf(`@@RDY:%d@@`, v.seq))
		if err := v.send(fmt.Sprintf(`echo "@@R""DY:%d@@"`, v.seq)); err != nil {
			return err
		}
		_, _, err := v.expect(re, from, 2*time.Second)
		if err == nil {
			return nil
		}
		if errors.Is(err, errExited) {
			return err
		}
	}
	return fmt.Errorf("no shell on the console within %v", timeout)
}

// wait waits for QEMU to end by itself: the guest restarted or powered off.
func (v *vm) wait(timeout time.Duration) error {
	if v.hasExited() {
		return nil
	}
	select {
	case <-v.exited:
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("the guest did not restart within %v", timeout)
	}
}

// kill cuts the power: SIGKILL to QEMU. Writes QEMU made to the disk image
// survive (they are in the host's page cache); what the guest had not yet
// written out of its own page cache is lost, as on a real power cut. It
// reports whether QEMU was still running, i.e. whether the cut happened.
func (v *vm) kill() bool {
	if v.hasExited() {
		return false
	}
	_ = v.cmd.Process.Signal(syscall.SIGKILL)
	<-v.exited
	return true
}

// tail is the end of the console, for error messages.
func (v *vm) tail(n int) string {
	t := v.text()
	lines := strings.Split(strings.ReplaceAll(t, "\r\n", "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// has reports whether the console holds s after offset from.
func (v *vm) has(s string, from int) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	if from > len(v.console) {
		return false
	}
	return bytes.Contains(v.console[from:], []byte(s))
}
