package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relais-mssante/relais/storage"
)

func runToken(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	e := &env{stdin: strings.NewReader(""), stdout: &out, stderr: &out}
	path := "admin token " + args[0]
	for _, c := range tokenCommands() {
		if c.path == path {
			err := c.run(e, args[1:])
			return out.String(), err
		}
	}
	t.Fatalf("no command %q", path)
	return "", nil
}

func tokenFixture(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	st, err := openStore(storeLocation{Data: dir}, discardLogger(), 0)
	require.NoError(t, err)
	defer st.Close()
	ctx := context.Background()
	_, err = st.AddDomain(ctx, "hopital.test")
	require.NoError(t, err)
	_, err = st.CreateAccount(ctx, "dpi@hopital.test", "DPI", "x")
	require.NoError(t, err)
	return dir
}

var secretRE = regexp.MustCompile(`(?m)^token: (rls_[A-Za-z0-9_-]{43})$`)

// TestTokenLifecycle: create prints a secret whose SHA-256 the store finds;
// list shows it without the secret; revoke makes it useless.
func TestTokenLifecycle(t *testing.T) {
	dir := tokenFixture(t)
	out, err := runToken(t, "create", "DPI@hopital.test", "--name", "DPI CH Exemple", "--data", dir)
	require.NoError(t, err, out)
	m := secretRE.FindStringSubmatch(out)
	require.NotNil(t, m, out)
	secret := m[1]
	assert.Contains(t, out, "created for dpi@hopital.test (DPI CH Exemple), never expires")

	out2, err := runToken(t, "create", "dpi@hopital.test", "--name", "second", "--expires", "90d", "--data", dir)
	require.NoError(t, err, out2)
	m2 := secretRE.FindStringSubmatch(out2)
	require.NotNil(t, m2, out2)
	assert.NotEqual(t, secret, m2[1], "a new secret each time")
	assert.Contains(t, out2, "expires "+time.Now().Add(90*24*time.Hour).UTC().Format("2006-01-02"))

	st, err := openStore(storeLocation{Data: dir}, discardLogger(), 0)
	require.NoError(t, err)
	sum := sha256.Sum256([]byte(secret))
	tok, err := st.APITokenByHash(context.Background(), hex.EncodeToString(sum[:]), time.Now())
	require.NoError(t, err)
	assert.Equal(t, "DPI CH Exemple", tok.Name)
	assert.Equal(t, "dpi@hopital.test", tok.Address)
	require.NoError(t, st.Close())

	list, err := runToken(t, "list", "--data", dir)
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(list), "\n")
	require.Len(t, lines, 3, list)
	assert.Regexp(t, `^ID\s+ACCOUNT\s+NAME\s+STATE\s+CREATED\s+EXPIRES\s+LAST USED$`, lines[0])
	assert.Regexp(t, `^`+strconv.FormatInt(tok.ID, 10)+`\s+dpi@hopital.test\s+DPI CH Exemple\s+active\s+\d{4}-\d\d-\d\d \d\d:\d\d\s+never\s+\d{4}-`, lines[1])
	assert.Regexp(t, `\s+second\s+active\s+.*\s+never$`, lines[2])
	assert.NotContains(t, list, "rls_", "secrets are never listed")
	assert.NotContains(t, list, hex.EncodeToString(sum[:]), "nor their hashes")

	out, err = runToken(t, "revoke", strconv.FormatInt(tok.ID, 10), "--data", dir)
	require.NoError(t, err)
	assert.Equal(t, "token "+strconv.FormatInt(tok.ID, 10)+" revoked\n", out)
	list, err = runToken(t, "list", "--data", dir)
	require.NoError(t, err)
	assert.Regexp(t, `(?m)^`+strconv.FormatInt(tok.ID, 10)+`\s+dpi@hopital.test\s+DPI CH Exemple\s+revoked\s`, list)

	st, err = openStore(storeLocation{Data: dir}, discardLogger(), 0)
	require.NoError(t, err)
	defer st.Close()
	_, err = st.APITokenByHash(context.Background(), hex.EncodeToString(sum[:]), time.Now())
	require.ErrorIs(t, err, storage.ErrNotFound)
}

func TestTokenErrors(t *testing.T) {
	dir := tokenFixture(t)
	_, err := runToken(t, "create", "nobody@hopital.test", "--name", "x", "--data", dir)
	require.ErrorContains(t, err, "no account nobody@hopital.test")
	_, err = runToken(t, "create", "dpi@hopital.test", "--data", dir)
	require.ErrorIs(t, err, errUsage, "--name is required")
	_, err = runToken(t, "create", "dpi@hopital.test", "--name", "x", "--expires", "soon", "--data", dir)
	require.ErrorContains(t, err, "--expires")
	_, err = runToken(t, "create", "dpi@hopital.test", "--name", "x", "--expires", "-5h", "--data", dir)
	require.ErrorContains(t, err, "--expires")
	_, err = runToken(t, "revoke", "42", "--data", dir)
	require.ErrorContains(t, err, "no API token 42")
	_, err = runToken(t, "revoke", "abc", "--data", dir)
	require.ErrorContains(t, err, "not a token id")
	out, err := runToken(t, "list", "--data", dir)
	require.NoError(t, err)
	assert.Equal(t, "no API tokens\n", out)
	_, err = runToken(t, "list", "extra", "--data", dir)
	require.True(t, errors.Is(err, errUsage))
}

func TestParseLifetime(t *testing.T) {
	for in, want := range map[string]time.Duration{"90d": 90 * 24 * time.Hour, "1d": 24 * time.Hour, "720h": 720 * time.Hour, "30m": 30 * time.Minute} {
		got, err := parseLifetime(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, in := range []string{"", "0d", "d", "x", "-1d", "0s", "1y"} {
		_, err := parseLifetime(in)
		assert.Error(t, err, in)
	}
}
