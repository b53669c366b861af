package pki

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLoadOrCreateCAPersists(t *testing.T) {
	dir := t.TempDir()
	ca, created, err := LoadOrCreateCA(dir, "Relais test CA")
	require.NoError(t, err)
	assert.True(t, created)
	info, err := os.Stat(filepath.Join(dir, CAKeyFile))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())

	again, created, err := LoadOrCreateCA(dir, "ignored")
	require.NoError(t, err)
	assert.False(t, created)
	assert.Equal(t, ca.Cert.Raw, again.Cert.Raw)

	// The reloaded key still issues certificates that chain to the CA.
	cert, err := again.IssueServer("mail.example.test", "127.0.0.1")
	require.NoError(t, err)
	_, err = cert.Leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: "mail.example.test"})
	require.NoError(t, err)
	assert.Equal(t, []net.IP{net.ParseIP("127.0.0.1").To4()}, cert.Leaf.IPAddresses)
}

func TestLoadCARefusesMismatchedKey(t *testing.T) {
	dir := t.TempDir()
	_, _, err := LoadOrCreateCA(dir, "one")
	require.NoError(t, err)
	other := t.TempDir()
	_, _, err = LoadOrCreateCA(other, "two")
	require.NoError(t, err)
	// Put the other CA's key beside the first certificate.
	key, err := os.ReadFile(filepath.Join(other, CAKeyFile))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, CAKeyFile), key, 0o600))
	_, _, err = LoadOrCreateCA(dir, "one")
	require.ErrorContains(t, err, "does not match")
}

// TestServerTLSProfile checks the MSSanté profile with real handshakes:
// TLS 1.2 offers only 0xC030/0xC02F, TLS 1.1 and a non-GCM suite are refused.
func TestServerTLSProfile(t *testing.T) {
	ca, err := NewCA("profile CA")
	require.NoError(t, err)
	cert, err := ca.IssueServer("localhost", "127.0.0.1")
	require.NoError(t, err)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", ServerTLSConfig(cert))
	require.NoError(t, err)
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				_ = c.(*tls.Conn).Handshake()
				c.Close()
			}()
		}
	}()
	dial := func(cfg *tls.Config) (tls.ConnectionState, error) {
		cfg.RootCAs = ca.Pool()
		cfg.ServerName = "localhost"
		c, err := tls.Dial("tcp", ln.Addr().String(), cfg)
		if err != nil {
			return tls.ConnectionState{}, err
		}
		defer c.Close()
		return c.ConnectionState(), nil
	}
	st, err := dial(&tls.Config{MaxVersion: tls.VersionTLS12})
	require.NoError(t, err)
	assert.Contains(t, []uint16{0xC030, 0xC02F}, st.CipherSuite)

	_, err = dial(&tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA}})
	assert.Error(t, err)
	_, err = dial(&tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11})
	assert.Error(t, err)

	st, err = dial(&tls.Config{})
	require.NoError(t, err)
	assert.Equal(t, uint16(tls.VersionTLS13), st.Version)
}
