// Package testserver runs what the network tests need, on loopback only: a
// real nginx serving a directory (range requests on, and a second location
// with them off), and a fault-injecting TCP proxy in front of it that cuts
// connections after a number of bytes, stalls them, or answers 5xx.
//
// nginx comes from Debian's nginx-light (or any nginx). Without it the
// tests are skipped, unless BASCULE_TEST_REQUIRE_NGINX=1 (CI), where a
// missing nginx fails them.
package testserver

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Nginx is a running nginx serving Root at URL ("http://127.0.0.1:port").
// Files are at URL+"/name"; URL+"/noranges/name" serves the same files with
// byte ranges disabled (max_ranges 0), so requests with Range get 200.
type Nginx struct {
	URL  string
	Addr string // 127.0.0.1:port
	Root string
	dir  string
}

// FindNginx returns the nginx binary, skipping the test (or failing it if
// BASCULE_TEST_REQUIRE_NGINX=1) when there is none.
func FindNginx(t testing.TB) string {
	t.Helper()
	for _, p := range []string{"nginx", "/usr/sbin/nginx"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("BASCULE_TEST_REQUIRE_NGINX") == "1" {
		t.Fatal("nginx not found and BASCULE_TEST_REQUIRE_NGINX=1 (apt-get install nginx-light)")
	}
	t.Skip("nginx not found (apt-get install nginx-light); set BASCULE_TEST_REQUIRE_NGINX=1 to make this a failure")
	return ""
}

// StartNginx starts nginx in the foreground (no daemon, no master
// process, so no user switch) serving root, with its configuration, logs
// and temporary files in a fresh temporary directory. It is stopped when the
// test ends.
func StartNginx(t testing.TB, root string) *Nginx {
	t.Helper()
	bin := FindNginx(t)
	dir := t.TempDir()
	port := freePort(t)
	n := &Nginx{Addr: fmt.Sprintf("127.0.0.1:%d", port), Root: root, dir: dir}
	n.URL = "http://" + n.Addr
	conf := fmt.Sprintf(`daemon off;
master_process off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log info;
events { worker_connections 128; }
http {
    log_format ranges '$status "$http_range" "$http_if_range" $body_bytes_sent "$http_user_agent"';
    access_log %[1]s/access.log ranges;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    default_type application/octet-stream;
    keepalive_requests 10000;
    server {
        listen %[2]s;
        root %[3]s;
        location /noranges/ {
            alias %[3]s/;
            max_ranges 0;
        }
    }
}
`, dir, n.Addr, root)
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", confPath)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start nginx: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", n.Addr, time.Second)
		if err == nil {
			c.Close()
			return n
		}
		select {
		case err := <-exited:
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("nginx exited: %v\n%s%s", err, out.String(), log)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx does not listen on %s", n.Addr)
		}
	}
}

// AccessLog returns the lines of the access log so far: status, "Range",
// "If-Range", body bytes sent and "User-Agent" of each request.
func (n *Nginx) AccessLog(t testing.TB) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(n.dir, "access.log"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// AccessLogN is AccessLog after waiting (up to 10 s) for at least n lines:
// nginx logs a request just after its last byte has been sent, so a client
// can be done before the line is written.
func (n *Nginx) AccessLogN(t testing.TB, lines int) []string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		l := n.AccessLog(t)
		if len(l) >= lines || time.Now().After(deadline) {
			return l
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ResetLog empties the access log.
func (n *Nginx) ResetLog(t testing.TB) {
	if err := os.Truncate(filepath.Join(n.dir, "access.log"), 0); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Fault is what the proxy does to one connection.
type Fault struct {
	// CutAfter > 0 closes the connection after that many bytes from the
	// server have been passed to the client.
	CutAfter int64
	// Stall stops passing data after CutAfter bytes, leaving the
	// connection open, instead of closing it.
	Stall bool
	// Status > 0 answers the first request with this status itself and
	// closes the connection; the server is not contacted.
	Status int
	// Before runs just before the cut or stall.
	Before func()
}

// Proxy passes TCP connections to a server, applying the fault its policy
// gives each connection (numbered from 0 in accept order).
type Proxy struct {
	Addr   string
	URL    string // "http://" + Addr
	target string
	policy func(conn int) Fault
	l      net.Listener

	conns      atomic.Int64
	downstream atomic.Int64 // bytes passed from the server to clients
	mu         sync.Mutex
	open       []net.Conn
	wg         sync.WaitGroup
}

// NewProxy starts a proxy to target (host:port). policy may be nil.
func NewProxy(t testing.TB, target string, policy func(conn int) Fault) *Proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if policy == nil {
		policy = func(int) Fault { return Fault{} }
	}
	p := &Proxy{Addr: l.Addr().String(), target: target, policy: policy, l: l}
	p.URL = "http://" + p.Addr
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.Close)
	return p
}

// Conns is the number of connections accepted.
func (p *Proxy) Conns() int { return int(p.conns.Load()) }

// Downstream is the number of bytes passed from the server to clients,
// headers included: what went over the "network".
func (p *Proxy) Downstream() int64 { return p.downstream.Load() }

// Close stops the proxy and drops every connection.
func (p *Proxy) Close() {
	p.l.Close()
	p.mu.Lock()
	for _, c := range p.open {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *Proxy) track(c net.Conn) {
	p.mu.Lock()
	p.open = append(p.open, c)
	p.mu.Unlock()
}

func (p *Proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		n := int(p.conns.Add(1)) - 1
		p.track(c)
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.handle(c, p.policy(n))
		}()
	}
}

func (p *Proxy) handle(c net.Conn, f Fault) {
	defer c.Close()
	if f.Status > 0 {
		r := bufio.NewReader(c)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			if line == "\r\n" {
				break
			}
		}
		if f.Before != nil {
			f.Before()
		}
		fmt.Fprintf(c, "HTTP/1.1 %d Injected\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", f.Status)
		return
	}
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	p.track(s)
	defer s.Close()
	clientDone := make(chan struct{})
	go func() {
		io.Copy(s, c)
		s.(*net.TCPConn).CloseWrite()
		close(clientDone)
	}()
	buf := make([]byte, 16<<10)
	var sent int64
	for {
		m, err := s.Read(buf)
		if m > 0 {
			chunk := buf[:m]
			if f.CutAfter > 0 && sent+int64(m) >= f.CutAfter {
				chunk = buf[:f.CutAfter-sent]
			}
			w, werr := c.Write(chunk)
			sent += int64(w)
			p.downstream.Add(int64(w))
			if werr != nil {
				return
			}
			if f.CutAfter > 0 && sent >= f.CutAfter {
				if f.Before != nil {
					f.Before()
				}
				if f.Stall {
					// Hold the connection open, passing nothing, until
					// the client gives up or the proxy is closed.
					<-clientDone
				}
				return
			}
		}
		if err != nil {
			return
		}
	}
}
