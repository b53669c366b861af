package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/relais-mssante/relais/crypto/pki"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// pkiRun runs "relais pki ARGS..." in-process and returns stdout, stderr.
func pkiRun(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	e := &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errOut}
	err := run(e, append([]string{"pki"}, args...))
	return out.String(), errOut.String(), err
}

var pkiIssuedSerial = regexp.MustCompile(`certificate ([0-9a-f]+)\n`)

func pkiSerialOf(t *testing.T, out string) string {
	t.Helper()
	m := pkiIssuedSerial.FindStringSubmatch(out)
	require.NotNil(t, m, out)
	return m[1]
}

func TestPKICommands(t *testing.T) {
	t.Setenv(pki.PassphraseEnv, "a synthetic test passphrase")
	data := t.TempDir()
	d := "--data=" + data

	out, _, err := pkiRun(t, "init", d, "--name", "CHU de Démonstration")
	require.NoError(t, err)
	assert.Contains(t, out, "AC RACINE RELAIS CHU DE DÉMONSTRATION")
	assert.Contains(t, out, "AC RELAIS CHU DE DÉMONSTRATION PERSONNES")
	rootFile := filepath.Join(data, "ca.pem")
	require.FileExists(t, rootFile)
	_, _, err = pkiRun(t, "init", d)
	assert.ErrorContains(t, err, "exists already")

	certFile := filepath.Join(t.TempDir(), "claire.pem")
	out, _, err = pkiRun(t, "issue", d, "--kind", "person", "--email", "claire.martin@demo.mssante.test",
		"--rpps", "10000000001", "--given", "Claire", "--surname", "MARTIN", "--title", "Médecin", "--out-cert", certFile, "--publish")
	require.NoError(t, err)
	person := pkiSerialOf(t, out)
	assert.Contains(t, out, "SN=MARTIN+GN=Claire+CN=810000000001")
	assert.Contains(t, out, "https://localhost:8443/pki/crl/personnes.crl")
	assert.Contains(t, out, "published in the directory")
	if _, err := exec.LookPath("openssl"); err == nil {
		got, err := exec.Command("openssl", "verify", "-purpose", "smimesign", "-CAfile", rootFile, "-untrusted", certFile, certFile).CombinedOutput()
		require.NoError(t, err, string(got))
	}
	st, err := openStore(storeLocation{Data: data}, discardLogger(), 0)
	require.NoError(t, err)
	published, err := st.Certificates(context.Background(), "claire.martin@demo.mssante.test")
	require.NoError(t, err)
	require.NoError(t, st.Close())
	require.Len(t, published, 1)
	assert.Contains(t, published[0].Subject, "810000000001")

	out, _, err = pkiRun(t, "issue", d, "--kind", "organisation", "--email", "secretariat.chu@demo.mssante.test")
	require.NoError(t, err)
	org := pkiSerialOf(t, out)
	assert.Contains(t, out, "relais directory cert add secretariat.chu@demo.mssante.test")
	out, _, err = pkiRun(t, "issue", d, "--kind", "server", "--dns", "mail.demo.mssante.test,localhost")
	require.NoError(t, err)
	assert.Contains(t, out, "mail.demo.mssante.test, localhost")

	_, _, err = pkiRun(t, "issue", d, "--kind", "server", "--email", "x@demo.mssante.test")
	assert.Error(t, err)
	_, _, err = pkiRun(t, "issue", d, "--kind", "robot", "--email", "x@demo.mssante.test")
	assert.ErrorContains(t, err, "unknown kind")

	out, _, err = pkiRun(t, "list", d)
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 1+3+3, out)
	assert.True(t, strings.HasPrefix(lines[0], "SERIAL"))
	col := strings.Index(lines[0], "KIND")
	for _, l := range lines[1:] {
		assert.Equal(t, ' ', rune(l[col-1]), "aligned columns:\n%s", out)
	}

	out, _, err = pkiRun(t, "revoke", d, person, "--reason", "keyCompromise")
	require.NoError(t, err)
	assert.Contains(t, out, "revoked (keyCompromise)")
	out, _, err = pkiRun(t, "list", d, "--kind", "person")
	require.NoError(t, err)
	assert.NotContains(t, out, person)
	out, _, err = pkiRun(t, "list", d, "--all", "--kind", "person")
	require.NoError(t, err)
	assert.Contains(t, out, person)
	assert.Contains(t, out, "revoked (keyCompromise)")
	_, _, err = pkiRun(t, "revoke", d, person, "--reason", "boredom")
	assert.ErrorContains(t, err, "unknown revocation reason")

	out, _, err = pkiRun(t, "renew", d, org)
	require.NoError(t, err)
	assert.Contains(t, out, "renewed "+org+" as organisation certificate")

	out, _, err = pkiRun(t, "export", d, "--serial", org, "--chain")
	require.NoError(t, err)
	assert.Equal(t, 2, strings.Count(out, "BEGIN CERTIFICATE"))
	assert.NotContains(t, out, "PRIVATE KEY")
	_, _, err = pkiRun(t, "export", d, "--serial", org, "--with-key")
	assert.ErrorContains(t, err, "--yes-export-unencrypted-key")
	keyOut := filepath.Join(t.TempDir(), "org.pem")
	_, _, err = pkiRun(t, "export", d, "--serial", org, "--with-key", "--yes-export-unencrypted-key", "--out", keyOut)
	require.NoError(t, err)
	info, err := os.Stat(keyOut)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())

	t.Setenv(pki.PassphraseEnv, "not the passphrase")
	_, _, err = pkiRun(t, "list", d)
	assert.ErrorContains(t, err, "wrong passphrase")
	passFile := filepath.Join(t.TempDir(), "pass")
	require.NoError(t, os.WriteFile(passFile, []byte("a synthetic test passphrase\n"), 0o600))
	_, _, err = pkiRun(t, "list", d, "--passphrase-file", passFile)
	require.NoError(t, err, "the file wins over the environment")
}

// TestPKIImportAndAnchors moves an identity from one installation to
// another and trusts the first one's root.
func TestPKIImportAndAnchors(t *testing.T) {
	t.Setenv(pki.PassphraseEnv, "")
	one, two := t.TempDir(), t.TempDir()
	_, errOut, err := pkiRun(t, "init", "--data", one, "--name", "Operateur Un")
	require.NoError(t, err)
	assert.Contains(t, errOut, "only as safe as that file", "the warning without a passphrase")
	_, _, err = pkiRun(t, "init", "--data", two, "--name", "Operateur Deux")
	require.NoError(t, err)

	out, _, err := pkiRun(t, "issue", "--data", one, "--kind", "organisation", "--email", "accueil@un.test")
	require.NoError(t, err)
	serial := pkiSerialOf(t, out)
	bundle := filepath.Join(t.TempDir(), "bundle.pem")
	_, _, err = pkiRun(t, "export", "--data", one, "--serial", serial, "--chain", "--with-key", "--yes-export-unencrypted-key", "--out", bundle)
	require.NoError(t, err)

	out, errOut, err = pkiRun(t, "import", "--data", two, "--cert", bundle, "--key", bundle)
	require.NoError(t, err)
	assert.Contains(t, out, "imported organisation certificate "+serial)
	assert.Contains(t, errOut, "anchor add", "not trusted yet")

	out, _, err = pkiRun(t, "anchor", "add", "--data", two, filepath.Join(one, "ca.pem"))
	require.NoError(t, err)
	assert.Contains(t, out, "1 trust anchor(s) added")
	out, _, err = pkiRun(t, "anchor", "list", "--data", two)
	require.NoError(t, err)
	assert.Contains(t, out, "AC RACINE RELAIS OPERATEUR UN")

	out, _, err = pkiRun(t, "list", "--data", two, "--kind", "organisation")
	require.NoError(t, err)
	assert.Contains(t, out, serial)
	assert.Contains(t, out, "imported")
	_, _, err = pkiRun(t, "revoke", "--data", two, serial)
	assert.ErrorContains(t, err, "not issued here")
}

func TestPKIUsage(t *testing.T) {
	_, errOut, err := pkiRun(t)
	assert.ErrorIs(t, err, errUsage)
	assert.Contains(t, errOut, "pki anchor add", "the usage lists the pki commands")
	_, errOut, err = pkiRun(t, "frobnicate")
	assert.ErrorIs(t, err, errUsage)
	assert.Contains(t, errOut, "unknown command")
	_, _, err = pkiRun(t, "list", "--data", t.TempDir())
	assert.ErrorContains(t, err, "relais pki init")
}

// TestEnsureIdentity is what the demo bootstrap does: one person
// certificate per practitioner, published in the directory, once.
func TestEnsureIdentity(t *testing.T) {
	t.Setenv(pki.PassphraseEnv, "")
	cfg := DefaultConfig()
	cfg.Data = t.TempDir()
	a, err := openAuthority(cfg, "", discardLogger(), true)
	require.NoError(t, err)
	st, err := openStore(cfg.store(), discardLogger(), 0)
	require.NoError(t, err)
	defer st.Close()
	ctx := context.Background()
	req := pki.Request{Kind: pki.KindPerson, Emails: []string{"ines.petit@demo.mssante.test"}, GivenName: "Inès", Surname: "PETIT", RPPS: "10000000004"}
	c, issued, err := ensureIdentity(ctx, a, st, req)
	require.NoError(t, err)
	assert.True(t, issued)
	again, issued, err := ensureIdentity(ctx, a, st, req)
	require.NoError(t, err)
	assert.False(t, issued)
	assert.Equal(t, c.Serial, again.Serial)
	published, err := st.Certificates(ctx, "ines.petit@demo.mssante.test")
	require.NoError(t, err)
	require.Len(t, published, 1)
	assert.Equal(t, c.Certificate.Raw, published[0].DER)
	require.FileExists(t, filepath.Join(cfg.Data, "ca.pem"))

	// relais serve's TLS certificate comes from the same authority.
	tlsCert, err := a.ServerCertificate(cfg.Hostname, "localhost", "127.0.0.1", "::1")
	require.NoError(t, err)
	assert.Len(t, tlsCert.Certificate, 2)
}
