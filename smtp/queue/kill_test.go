package queue_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relais-mssante/relais/directory"
	"github.com/relais-mssante/relais/smtp/queue"
	"github.com/relais-mssante/relais/storage"
	"github.com/relais-mssante/relais/storage/sqlite"
)

// Environment of the helper process of TestKill9DuringRelay.
const (
	helperDir   = "RELAIS_QUEUE_HELPER_DIR"
	helperRoute = "RELAIS_QUEUE_HELPER_ROUTE"
)

// TestKill9DuringRelay kills (SIGKILL) a process running the worker while
// the remote operator holds the end of DATA; a new worker on the same
// database delivers the message once its lease ran out: nothing is lost.
func TestKill9DuringRelay(t *testing.T) {
	if os.Getenv(helperDir) != "" {
		t.Skip("helper process")
	}
	r := startRemote(t, remoteOptions{})
	inData, release := make(chan struct{}), make(chan struct{})
	r.inData, r.release = inData, release
	defer close(release)

	e := newEnv(t, r.addr)
	id := e.enqueue(e.outbound(storage.OutboundRecipient{Address: rcpt}))
	dir := filepath.Dir(e.storePath)
	writePEM(t, filepath.Join(dir, "client.pem"), ourCert)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "ca.pem"), testCA.CertPEM(), 0o600))

	cmd := exec.Command(os.Args[0], "-test.run=^TestKill9Helper$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperDir+"="+dir, helperRoute+"="+r.addr)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	require.NoError(t, cmd.Start())
	select {
	case <-inData:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("the helper never reached DATA")
	}
	require.NoError(t, cmd.Process.Kill()) // SIGKILL
	_ = cmd.Wait()

	entry, err := e.store.QueueEntry(context.Background(), id)
	require.NoError(t, err, "still queued after kill -9")
	assert.Equal(t, storage.QueuePending, entry.Recipients[0].State)

	e.clock.Advance(2 * time.Minute) // past the helper's lease
	w, _ := e.start()
	w.Kick()
	e.waitGone(id)
	require.Len(t, r.received(), 1)
	assert.Equal(t, storage.StatusRelayed, e.status(rcpt).State)
}

// TestKill9Helper is the process TestKill9DuringRelay kills.
func TestKill9Helper(t *testing.T) {
	dir := os.Getenv(helperDir)
	if dir == "" {
		t.Skip("run by TestKill9DuringRelay")
	}
	st, err := sqlite.Open(filepath.Join(dir, "relais.db"), sqlite.Options{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	certPEM, err := os.ReadFile(filepath.Join(dir, "client.pem"))
	require.NoError(t, err)
	cert, err := tls.X509KeyPair(certPEM, certPEM)
	require.NoError(t, err)
	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	require.NoError(t, err)
	roots := x509.NewCertPool()
	require.True(t, roots.AppendCertsFromPEM(caPEM))
	w, err := queue.New(queue.Config{
		Hostname:   hostname,
		Store:      st,
		Routes:     map[string]string{remoteDomain: os.Getenv(helperRoute)},
		ClientCert: func() (*tls.Certificate, error) { return &cert, nil },
		RootCAs:    roots,
		Operators:  directory.NewTrust(st),
		LeaseFor:   time.Minute,
		Poll:       20 * time.Millisecond,
		Now:        func() time.Time { return time.Now().Add(time.Second) },
	})
	require.NoError(t, err)
	_ = w.Run(context.Background()) // until killed
}

func writePEM(t *testing.T, path string, c tls.Certificate) {
	t.Helper()
	var out []byte
	for _, der := range c.Certificate {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	key, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	require.NoError(t, err)
	out = append(out, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key})...)
	require.NoError(t, os.WriteFile(path, out, 0o600))
}
