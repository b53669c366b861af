package main

import (
	"fmt"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/stretchr/testify/require"

	"github.com/relais-mssante/relais/storage/postgres/pgtest"
)

// TestMigrateToPostgres moves a demo installation that has served mail and
// chat from SQLite to PostgreSQL with relais migrate, then serves it from
// PostgreSQL: the same UIDVALIDITY, UIDs and bytes over IMAP, the chat
// history and its search, the API tokens, the directory; new mail gets
// higher UIDs. A second migrate into the same database is refused.
func TestMigrateToPostgres(t *testing.T) {
	base := pgtest.URL(t)
	schema := pgtest.Schema(t, "migrate")
	sep := "&"
	if !strings.Contains(base, "?") {
		sep = "?"
	}
	dbURL := base + sep + "search_path=" + schema

	dir := t.TempDir()
	in := startRelais(t, dir)
	passwords := in.passwords
	sendMail(t, in, claire, lucas, "Avant la migration")
	sendMail(t, in, claire, lucas, "Avant la migration, deux")
	tokLucas := apiToken(t, in, "", lucas)
	var room struct {
		ID int64 `json:"id"`
	}
	require.Equal(t, http.StatusCreated, chatREST(t, in, tokLucas, "POST", "/api/v1/chat/rooms",
		map[string]any{"kind": "team", "name": "Équipe migration", "members": []string{claire}}, &room))
	require.Equal(t, http.StatusCreated, chatREST(t, in, tokLucas, "POST", fmt.Sprintf("/api/v1/chat/rooms/%d/messages", room.ID),
		map[string]any{"clientId": "m1", "body": "Kinésithérapie à domicile organisée"}, nil))

	before := inboxSnapshot(t, in, lucas, passwords[lucas])
	require.Len(t, before.uids, 2)
	dirBefore := in.relais("directory", "search", "martin", "--json")
	in.stop()

	migrate := func() (string, error) {
		out, err := exec.Command(relaisBin, "migrate", "--from", "sqlite:"+dir, "--to", dbURL).CombinedOutput()
		return string(out), err
	}
	out, err := migrate()
	require.NoError(t, err, out)
	require.Contains(t, out, "checked, in one transaction")
	require.NotContains(t, out, "search_path="+schema+"&", "the URL is printed redacted, not echoed")
	out, err = migrate()
	require.Error(t, err, out)
	require.Contains(t, out, "already holds data")

	pg := startServe(t, dir, "--data", dir, "--database", dbURL,
		"--smtp", "127.0.0.1:0", "--submission", "127.0.0.1:0", "--submissions", "127.0.0.1:0",
		"--imap", "127.0.0.1:0", "--imaps", "127.0.0.1:0", "--http", "127.0.0.1:0",
		"--ldap", "", "--ldaps", "", "--log", "debug")
	pg.passwords = passwords
	after := inboxSnapshot(t, pg, lucas, passwords[lucas])
	require.Equal(t, before, after, "IMAP state after the move")

	// The token was moved too; the chat history and its search answer.
	var msgs struct {
		Messages []struct {
			Body string `json:"body"`
		} `json:"messages"`
	}
	require.Equal(t, http.StatusOK, chatREST(t, pg, tokLucas, "GET", fmt.Sprintf("/api/v1/chat/rooms/%d/messages", room.ID), nil, &msgs))
	var bodies []string
	for _, m := range msgs.Messages {
		bodies = append(bodies, m.Body)
	}
	require.Contains(t, bodies, "Kinésithérapie à domicile organisée")
	var found struct {
		Messages []struct {
			Body string `json:"body"`
		} `json:"messages"`
	}
	require.Equal(t, http.StatusOK, chatREST(t, pg, tokLucas, "GET", "/api/v1/chat/search?q="+url.QueryEscape("kinesi"), nil, &found))
	require.Len(t, found.Messages, 1)

	dirAfter := runRelais(t, "directory", "search", "martin", "--json", "--data", dir, "--database", dbURL)
	require.JSONEq(t, dirBefore, dirAfter)

	// New mail continues the UIDs.
	sendMail(t, pg, claire, lucas, "Après la migration")
	final := inboxSnapshot(t, pg, lucas, passwords[lucas])
	require.Equal(t, before.uidValidity, final.uidValidity)
	require.Len(t, final.uids, 3)
	require.Greater(t, final.uids[2], before.uids[1])
	pg.stop()
}

type mailboxSnapshot struct {
	uidValidity uint32
	uids        []imap.UID
	bodies      []string
}

func inboxSnapshot(t *testing.T, in *instance, user, password string) mailboxSnapshot {
	t.Helper()
	c := in.imapLogin(user, password)
	defer c.Close()
	sel, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait()
	require.NoError(t, err)
	snap := mailboxSnapshot{uidValidity: sel.UIDValidity}
	if sel.NumMessages == 0 {
		return snap
	}
	section := &imap.FetchItemBodySection{Peek: true}
	msgs, err := c.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true,
		BodySection: []*imap.FetchItemBodySection{section}}).Collect()
	require.NoError(t, err)
	for _, m := range msgs {
		snap.uids = append(snap.uids, m.UID)
		snap.bodies = append(snap.bodies, string(m.FindBodySection(section)))
	}
	return snap
}

func runRelais(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(relaisBin, args...).CombinedOutput()
	require.NoError(t, err, "relais %v: %s", args, out)
	return string(out)
}
