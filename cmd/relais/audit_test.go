package main

import (
	"bufio"
	"context"
	"encoding/json"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/relais-mssante/relais/crypto/pki"
	"github.com/relais-mssante/relais/storage"
)

// relaisCLI runs the relais binary with args (stdin given) and returns its
// stdout and stderr, failing the test on a non-zero exit.
func relaisCLI(t *testing.T, stdin string, args ...string) (string, string) {
	t.Helper()
	cmd := exec.Command(relaisBin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	require.NoError(t, cmd.Run(), "relais %v\nstdout: %s\nstderr: %s", args, out.String(), errOut.String())
	return out.String(), errOut.String()
}

func auditJSON(t *testing.T, out string) []auditLine {
	t.Helper()
	var lines []auditLine
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var l auditLine
		require.NoError(t, json.Unmarshal(sc.Bytes(), &l), sc.Text())
		lines = append(lines, l)
	}
	return lines
}

// TestAuditCommand: the administration commands record themselves, and
// relais audit shows them, with a chat service's entry, filtered by
// account, action, time and count, as a table or as JSON lines.
func TestAuditCommand(t *testing.T) {
	t.Setenv(pki.PassphraseEnv, "a synthetic test passphrase")
	dir := t.TempDir()
	d := "--data=" + dir
	const addr = "audit.user@hopital.test"

	relaisCLI(t, "", "admin", "domain", "add", "hopital.test", d)
	relaisCLI(t, "premier mot de passe\n", "admin", "user", "add", addr, "--password-stdin", d)
	relaisCLI(t, "second mot de passe\n", "admin", "user", "passwd", addr, "--password-stdin", d)
	out, _ := relaisCLI(t, "", "admin", "token", "create", addr, "--name", "DPI test", d)
	tokID := regexp.MustCompile(`token (\d+) created`).FindStringSubmatch(out)
	require.NotNil(t, tokID, out)
	relaisCLI(t, "", "admin", "token", "revoke", tokID[1], d)
	relaisCLI(t, "", "pki", "init", d, "--name", "Audit")
	out, _ = relaisCLI(t, "", "pki", "issue", d, "--kind", "organisation", "--email", "secretariat@hopital.test")
	serial := pkiSerialOf(t, out)
	relaisCLI(t, "", "pki", "revoke", d, serial, "--reason", "superseded")

	// A service's entry, as the chat writes it when the account reads a
	// room: the account is the actor.
	st, err := openStore(storeLocation{Data: dir}, discardLogger(), 0)
	require.NoError(t, err)
	acct, err := st.AccountByAddress(context.Background(), addr)
	require.NoError(t, err)
	_, err = st.AppendAudit(context.Background(), storage.AuditEntry{Account: acct.ID, Action: "chat.read", Object: "room:7",
		Outcome: storage.AuditOK, Detail: "tab\there, newline\nthere, escape \x1b[31m"})
	require.NoError(t, err)
	require.NoError(t, st.Close())

	out, _ = relaisCLI(t, "", "audit", "--json", d)
	all := auditJSON(t, out)
	var actions []string
	for _, l := range all {
		actions = append(actions, l.Action)
		assert.WithinDuration(t, time.Now(), l.Time, time.Minute)
	}
	assert.Equal(t, []string{auditUserAdd, auditUserPasswd, auditTokenCreate, auditTokenRevoke, auditPKIRevoke, "chat.read"}, actions)
	assert.Equal(t, "account:"+addr, all[0].Object)
	assert.Equal(t, storage.AccountID(0), all[0].Account, "an administrator is not an account")
	assert.Contains(t, all[0].Detail, "cli user ")
	assert.Equal(t, "token:"+tokID[1], all[3].Object)
	assert.Equal(t, "certificate:"+serial, all[4].Object)
	assert.Contains(t, all[4].Detail, "reason superseded")
	assert.Equal(t, addr, all[5].Address)
	for i := 1; i < len(all); i++ {
		assert.Greater(t, all[i].ID, all[i-1].ID, "oldest first")
	}

	// Filters.
	out, _ = relaisCLI(t, "", "audit", "--json", "--account", addr, d)
	if got := auditJSON(t, out); assert.Len(t, got, 1) {
		assert.Equal(t, "chat.read", got[0].Action)
	}
	out, _ = relaisCLI(t, "", "audit", "--json", "--action", auditTokenRevoke, d)
	assert.Len(t, auditJSON(t, out), 1)
	out, _ = relaisCLI(t, "", "audit", "--json", "--since", "1h", d)
	assert.Len(t, auditJSON(t, out), len(all))
	out, _ = relaisCLI(t, "", "audit", "--json", "--until", "1h", d)
	assert.Empty(t, auditJSON(t, out))
	out, _ = relaisCLI(t, "", "audit", "--json", "--since", time.Now().Add(time.Hour).UTC().Format(time.RFC3339), d)
	assert.Empty(t, auditJSON(t, out))
	out, errOut := relaisCLI(t, "", "audit", "--json", "--limit", "2", d)
	if got := auditJSON(t, out); assert.Len(t, got, 2) {
		assert.Equal(t, auditUserPasswd, got[1].Action)
	}
	assert.Contains(t, errOut, "more than 2 entries")

	// The table: a header, one line per entry, hostile characters made
	// harmless.
	out, _ = relaisCLI(t, "", "audit", d)
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	require.Len(t, lines, 1+len(all), out)
	assert.Regexp(t, `^ID\s+TIME\s+ACCOUNT\s+ACTION\s+OBJECT\s+OUTCOME\s+DETAIL$`, lines[0])
	assert.Regexp(t, `^1\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\s+-\s+admin\.user\.add\s+account:`+regexp.QuoteMeta(addr)+`\s+ok\s+cli user `, lines[1])
	last := lines[len(lines)-1]
	assert.Regexp(t, regexp.QuoteMeta(addr)+`\s+chat\.read\s+room:7\s+ok\s+tab here, newline there, escape \?\[31m$`, last)
	assert.NotContains(t, out, "\x1b")

	out, _ = relaisCLI(t, "", "audit", "--action", "nothing.such", d)
	assert.Contains(t, out, "(no entry)")
}

func TestAuditCommandErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--since", "yesterday"}, "--since"},
		{[]string{"--until", "-3h"}, "--until"},
		{[]string{"--since", "1h", "--until", "2h"}, "--until must be after --since"},
		{[]string{"--account", "nobody@hopital.test"}, "no account nobody@hopital.test"},
	} {
		cmd := exec.Command(relaisBin, append([]string{"audit", "--data", dir}, tc.args...)...)
		out, err := cmd.CombinedOutput()
		assert.Error(t, err, "%v", tc.args)
		assert.Contains(t, string(out), tc.want, "%v", tc.args)
	}
}

func TestParseAuditTime(t *testing.T) {
	now := time.Date(2026, 11, 23, 14, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"24h":                  now.Add(-24 * time.Hour),
		"7d":                   now.Add(-7 * 24 * time.Hour),
		"90m":                  now.Add(-90 * time.Minute),
		"2026-11-01T08:30:00Z": time.Date(2026, 11, 1, 8, 30, 0, 0, time.UTC),
		"2026-11-01":           time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC),
	} {
		got, err := parseAuditTime(in, now)
		require.NoError(t, err, in)
		assert.True(t, want.Equal(got), "%s: %v, want %v", in, got, want)
	}
	for _, bad := range []string{"", "soon", "-1h", "2026-13-01", "d"} {
		_, err := parseAuditTime(bad, now)
		assert.Error(t, err, bad)
	}
}
