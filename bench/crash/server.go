package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

// node is one relais serve process on a data directory, restarted on the
// same directory and ports after each kill.
type node struct {
	bin      string
	dataDir  string
	config   string
	database string // postgres://... or empty (SQLite in dataDir)
	logPath  string // the server's stderr, every start appended
	addrs    listeners

	cmd    *exec.Cmd
	exited chan error

	mu        sync.Mutex
	errLines  []string // level=ERROR lines since the last start
	startedAt time.Time
	readyAt   time.Time // when the startup window closed (zero: still open)
	startErrs []string  // level=ERROR lines logged before readiness
}

// listeners are the addresses the node serves on: chosen once, kept across
// restarts, so clients reconnect where they were.
type listeners struct {
	submission, imap, http string
}

// freeListeners picks free loopback ports (bound then released; the
// kernel does not hand them out again at once).
func freeListeners() (listeners, error) {
	var addrs [3]string
	for i := range addrs {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return listeners{}, fmt.Errorf("picking a free port: %w", err)
		}
		addrs[i] = ln.Addr().String()
		defer ln.Close()
	}
	return listeners{submission: addrs[0], imap: addrs[1], http: addrs[2]}, nil
}

// writeConfig writes the relais serve configuration: no demo, only the
// listeners the load uses (submission and IMAP with STARTTLS, HTTPS for
// the chat), everything else disabled.
func (n *node) writeConfig() error {
	cfg := fmt.Sprintf(`# relais crash-consistency run (bench/crash)
data = %q
hostname = "localhost"
demo = false
log = "info"

[listen]
  smtp = ""
  submission = %q
  submissions = ""
  imap = %q
  imaps = ""
  http = %q
  ldap = ""
  ldaps = ""
`, n.dataDir, n.addrs.submission, n.addrs.imap, n.addrs.http)
	if err := os.WriteFile(n.config, []byte(cfg), 0o600); err != nil {
		return fmt.Errorf("writing the configuration: %w", err)
	}
	return nil
}

// admin runs a relais administration command on the node's data (the
// server may be stopped or running), with stdin as its standard input.
func (n *node) admin(stdin string, args ...string) (string, error) {
	args = append(args, "--data", n.dataDir)
	if n.database != "" {
		args = append(args, "--database", n.database)
	}
	cmd := exec.Command(n.bin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("relais %s: %w: %s", strings.Join(args[:min(3, len(args))], " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

var listenLine = regexp.MustCompile(`^listening: (\S+)\s+(\S+)`)

// start runs relais serve and waits until it is ready: every listener
// printed, the "relais started" log line written, and each port answering
// its protocol's greeting (SMTP 220, IMAP * OK, HTTPS /healthz 200), all
// within bound. The error lines it logged until then are startErrors.
func (n *node) start(bound time.Duration, tlsConfig *tls.Config, banner string) (time.Duration, error) {
	args := []string{"serve", "--config", n.config}
	if n.database != "" {
		args = append(args, "--database", n.database)
	}
	cmd := exec.Command(n.bin, args...)
	// If this program dies, the server dies with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return 0, err
	}
	logFile, err := os.OpenFile(n.logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return 0, fmt.Errorf("server log: %w", err)
	}
	fmt.Fprintf(logFile, "==== %s %s\n", time.Now().UTC().Format(time.RFC3339Nano), banner)

	n.mu.Lock()
	n.errLines, n.startErrs, n.readyAt = nil, nil, time.Time{}
	n.startedAt = time.Now()
	n.mu.Unlock()
	began := time.Now()
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return 0, fmt.Errorf("starting relais serve: %w", err)
	}
	n.cmd = cmd
	n.exited = make(chan error, 1)

	listening := make(chan string, 16)
	started := make(chan struct{})
	var pipes sync.WaitGroup
	pipes.Add(2)
	go func() {
		defer pipes.Done()
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			fmt.Fprintf(logFile, "stdout: %s\n", sc.Text())
			if m := listenLine.FindStringSubmatch(sc.Text()); m != nil {
				listening <- m[1]
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	go func() {
		defer pipes.Done()
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		once := sync.Once{}
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(logFile, line)
			if strings.Contains(line, "level=ERROR") {
				n.mu.Lock()
				n.errLines = append(n.errLines, line)
				if n.readyAt.IsZero() {
					n.startErrs = append(n.startErrs, line)
				}
				n.mu.Unlock()
			}
			if strings.Contains(line, `msg="relais started"`) {
				once.Do(func() { close(started) })
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	go func() {
		pipes.Wait()
		err := cmd.Wait()
		logFile.Close()
		n.exited <- err
	}()

	deadline := time.Now().Add(bound)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	fail := func(err error) (time.Duration, error) {
		n.kill()
		return 0, err
	}
	want := map[string]bool{"submission": true, "imap": true, "http": true}
	for len(want) > 0 {
		select {
		case name := <-listening:
			delete(want, name)
		case err := <-n.exited:
			n.exited <- err
			return 0, fmt.Errorf("relais serve exited before it was ready: %v (log: %s)", err, n.logPath)
		case <-ctx.Done():
			return fail(fmt.Errorf("relais serve: listeners not up within %v (log: %s)", bound, n.logPath))
		}
	}
	select {
	case <-started:
	case err := <-n.exited:
		n.exited <- err
		return 0, fmt.Errorf("relais serve exited before it was ready: %v (log: %s)", err, n.logPath)
	case <-ctx.Done():
		return fail(fmt.Errorf(`relais serve: no "relais started" within %v (log: %s)`, bound, n.logPath))
	}
	if err := n.probe(ctx, tlsConfig); err != nil {
		return fail(fmt.Errorf("relais serve: not answering within %v: %w (log: %s)", bound, err, n.logPath))
	}
	ready := time.Since(began)
	n.mu.Lock()
	n.readyAt = time.Now()
	n.mu.Unlock()
	return ready, nil
}

// probe checks that every port answers with its protocol's greeting,
// retrying until ctx ends.
func (n *node) probe(ctx context.Context, tlsConfig *tls.Config) error {
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConfig, DisableKeepAlives: true}}
	checks := []struct {
		name  string
		check func() error
	}{
		{"submission", func() error { return greeting(ctx, n.addrs.submission, "220 ") }}, // RFC 5321 4.3.1
		{"imap", func() error { return greeting(ctx, n.addrs.imap, "* OK") }},             // RFC 9051 7.1.1
		{"http", func() error {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+n.addrs.http+"/healthz", nil)
			if err != nil {
				return err
			}
			resp, err := hc.Do(req)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("GET /healthz: %s", resp.Status)
			}
			return nil
		}},
	}
	for _, c := range checks {
		for {
			err := c.check()
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return fmt.Errorf("%s: %w", c.name, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

// greeting connects to addr and reads the first line, which must start
// with prefix.
func greeting(ctx context.Context, addr, prefix string) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return fmt.Errorf("reading the greeting: %w", err)
	}
	if !strings.HasPrefix(line, prefix) {
		return fmt.Errorf("greeting %q, want %q", strings.TrimSpace(line), prefix)
	}
	return nil
}

// startErrors returns the error-level lines logged before readiness.
func (n *node) startErrors() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.startErrs...)
}

// runErrors returns the error-level lines logged since the last start.
func (n *node) runErrors() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.errLines...)
}

// kill sends SIGKILL (kill -9): nothing gets flushed or closed.
func (n *node) kill() {
	if n.cmd == nil {
		return
	}
	n.cmd.Process.Signal(syscall.SIGKILL)
	<-n.exited
	n.cmd = nil
}

// stop sends SIGTERM and requires a clean exit within grace.
func (n *node) stop(grace time.Duration) error {
	if n.cmd == nil {
		return nil
	}
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-n.exited:
		n.cmd = nil
		if err != nil {
			return fmt.Errorf("relais serve after SIGTERM: %w", err)
		}
		return nil
	case <-time.After(grace):
		n.kill()
		return fmt.Errorf("relais serve did not stop within %v of SIGTERM", grace)
	}
}

// clientTLS trusts the node's CA (created in the data directory by
// relais pki init) for the name the server certificate carries.
func (n *node) clientTLS() (*tls.Config, error) {
	pemBytes, err := os.ReadFile(filepath.Join(n.dataDir, "ca.pem"))
	if err != nil {
		return nil, fmt.Errorf("reading the CA certificate: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		return nil, errors.New("no certificate in ca.pem")
	}
	return &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}, nil
}
