package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/stretchr/testify/require"

	"github.com/relais-mssante/relais/directory"
)

// relaisBin is the binary under test, built once by TestMain.
var relaisBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "relais-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	relaisBin = filepath.Join(dir, "relais")
	build := exec.Command("go", "build", "-o", relaisBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building relais:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// instance is a relais serve process on loopback ports chosen by the kernel.
type instance struct {
	t         *testing.T
	dir       string
	cmd       *exec.Cmd
	addrs     map[string]string // listener name -> host:port
	passwords map[string]string // demo address -> password, first start only
	stderr    *syncBuffer
	exited    chan error
	operator  *tls.Config // see otherOperator
}

var listenLine = regexp.MustCompile(`^listening: (\S+)\s+(\S+)`)
var demoLine = regexp.MustCompile(`^  (\S+@demo\.mssante\.test)\s+(\S+)`)

// startRelais runs relais serve on dir (created by the caller or a new
// temporary one) and waits until it prints how to connect a mail client.
func startRelais(t *testing.T, dir string) *instance {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	return startServe(t, dir, "--data", dir,
		"--smtp", "127.0.0.1:0", "--submission", "127.0.0.1:0", "--submissions", "127.0.0.1:0",
		"--imap", "127.0.0.1:0", "--imaps", "127.0.0.1:0", "--http", "127.0.0.1:0",
		"--ldap", "127.0.0.1:0", "--ldaps", "127.0.0.1:0", "--log", "debug")
}

// startServe runs relais serve with args on dir and waits until it is
// ready.
func startServe(t *testing.T, dir string, args ...string) *instance {
	t.Helper()
	cmd := exec.Command(relaisBin, append([]string{"serve"}, args...)...)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	in := &instance{t: t, dir: dir, cmd: cmd, addrs: map[string]string{}, passwords: map[string]string{}, stderr: &syncBuffer{}, exited: make(chan error, 1)}
	cmd.Stderr = in.stderr
	require.NoError(t, cmd.Start())
	go func() { in.exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-in.exited
		}
		if t.Failed() {
			t.Logf("relais stderr:\n%s", in.stderr.String())
		}
	})

	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		signalled := false
		for sc.Scan() {
			line := sc.Text()
			if m := listenLine.FindStringSubmatch(line); m != nil {
				in.addrs[m[1]] = m[2]
			}
			if m := demoLine.FindStringSubmatch(line); m != nil {
				in.passwords[m[1]] = m[2]
			}
			if strings.HasPrefix(line, "mail client:") && !signalled {
				signalled = true
				close(ready)
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	select {
	case <-ready:
	case err := <-in.exited:
		in.exited <- err
		t.Fatalf("relais exited before it was ready: %v\n%s", err, in.stderr.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("relais not ready after 60 s\n%s", in.stderr.String())
	}
	return in
}

// stop sends SIGTERM and requires a clean exit.
func (in *instance) stop() {
	in.t.Helper()
	require.NoError(in.t, in.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-in.exited:
		require.NoError(in.t, err, "relais exit after SIGTERM\n%s", in.stderr.String())
	case <-time.After(40 * time.Second):
		in.t.Fatal("relais did not stop within 40 s of SIGTERM")
	}
}

// kill sends SIGKILL: no chance to flush or close anything.
func (in *instance) kill() {
	in.t.Helper()
	require.NoError(in.t, in.cmd.Process.Kill())
	<-in.exited
}

func (in *instance) caFile() string { return filepath.Join(in.dir, "ca.pem") }

func (in *instance) tlsConfig() *tls.Config {
	in.t.Helper()
	pemBytes, err := os.ReadFile(in.caFile())
	require.NoError(in.t, err)
	pool := x509.NewCertPool()
	require.True(in.t, pool.AppendCertsFromPEM(pemBytes))
	return &tls.Config{RootCAs: pool, ServerName: "localhost"}
}

// imapLogin opens an IMAPS session as address.
func (in *instance) imapLogin(address, password string) *imapclient.Client {
	in.t.Helper()
	c, err := imapclient.DialTLS(in.addrs["imaps"], &imapclient.Options{TLSConfig: in.tlsConfig()})
	require.NoError(in.t, err)
	in.t.Cleanup(func() { c.Close() })
	require.NoError(in.t, c.Login(address, password).Wait())
	return c
}

// runTool runs an external client and returns its combined output; the
// test is skipped when the tool is not installed.
func runTool(t *testing.T, stdin string, name string, args ...string) (string, error) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("%s is not installed (make test-deps installs it)", name)
	}
	cmd := exec.Command(name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func splitAddr(t *testing.T, addr string) (host, port string) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	return host, port
}

// relais runs a relais command on the instance's data directory and
// returns its output, failing the test on error.
func (in *instance) relais(args ...string) string {
	in.t.Helper()
	cmd := exec.Command(relaisBin, append(args, "--data", in.dir)...)
	out, err := cmd.CombinedOutput()
	require.NoError(in.t, err, "relais %v: %s", args, out)
	return string(out)
}

var issuedSerial = regexp.MustCompile(`certificate ([0-9a-f]+)`)

// otherOperator makes "other-operator.test" an operator of the instance's
// trust space, the way an administrator would: a server certificate for its
// MTA (issued here by the instance's own ORGANISATIONS CA, so that it chains
// to a trust anchor), and a trust list naming its DN, imported. It returns
// the TLS client configuration that MTA uses on port 25.
func (in *instance) otherOperator() *tls.Config {
	in.t.Helper()
	if in.operator != nil {
		return in.operator
	}
	tmp := in.t.TempDir()
	out := in.relais("pki", "issue", "--kind", "server", "--dns", "mta.other-operator.test", "--org", "Other operator")
	m := issuedSerial.FindStringSubmatch(out)
	require.NotNil(in.t, m, "serial in %q", out)
	keyFile := filepath.Join(tmp, "mta.pem")
	in.relais("pki", "export", "--serial", m[1], "--chain", "--with-key", "--yes-export-unencrypted-key", "--out", keyFile)
	pemBytes, err := os.ReadFile(keyFile)
	require.NoError(in.t, err)
	cert, err := tls.X509KeyPair(pemBytes, pemBytes)
	require.NoError(in.t, err)
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	require.NoError(in.t, err)
	in.importTrustList(trustDomain{"other-operator.test", leaf})
	cfg := in.tlsConfig()
	cfg.Certificates = []tls.Certificate{cert}
	in.operator = cfg
	return cfg
}

type trustDomain struct {
	domain string
	cert   *x509.Certificate // the operator's server certificate
}

// importTrustList writes a listeblanchemssante.xml naming each operator's
// certificate DN for its domain, and imports it.
func (in *instance) importTrustList(domains ...trustDomain) {
	in.t.Helper()
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?><ListeBlancheMSSante xmlns="https://listeblanche.mssante.fr/schema">` + "\n<ListeDomaines>\n")
	for _, d := range domains {
		dn, err := directory.SubjectDN(d.cert)
		require.NoError(in.t, err)
		var esc strings.Builder
		require.NoError(in.t, xml.EscapeText(&esc, []byte(dn)))
		fmt.Fprintf(&b, "<Domaine><Nom>%s</Nom><Description>TEST OPERATOR</Description><DNCertificatOperateur>%s</DNCertificatOperateur><DateMAJ>2026-11-01T08:00:00Z</DateMAJ></Domaine>\n", d.domain, esc.String())
	}
	b.WriteString("</ListeDomaines>\n</ListeBlancheMSSante>\n")
	file := filepath.Join(in.t.TempDir(), "listeblanchemssante.xml")
	require.NoError(in.t, os.WriteFile(file, []byte(b.String()), 0o600))
	in.relais("directory", "import", "--kind", "trustlist", "--allow-mass-removal", file)
}
