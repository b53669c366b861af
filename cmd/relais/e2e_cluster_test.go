package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/stretchr/testify/require"

	"github.com/relais-mssante/relais/chat"
	"github.com/relais-mssante/relais/storage/postgres/pgtest"
)

// TestClusterTwoNodes runs two relais serve processes on one PostgreSQL
// database (issue 7): mail delivered through node 1 wakes an IMAP IDLE on
// node 2, a chat message posted on node 2 reaches a WebSocket on node 1,
// and deliveries through both nodes at once into one mailbox get distinct,
// increasing UIDs.
func TestClusterTwoNodes(t *testing.T) {
	base := pgtest.URL(t)
	schema := pgtest.Schema(t, "cluster")
	dbURL := base + "&search_path=" + schema
	if !strings.Contains(base, "?") {
		dbURL = base + "?search_path=" + schema
	}

	// Node 1 makes the installation (demo domain, CA); node 2 gets a copy
	// of its data directory, as nodes share the CA's files.
	dir1 := t.TempDir()
	n1 := startServe(t, dir1, clusterArgs(dir1, dbURL)...)
	require.NotEmpty(t, n1.passwords[claire])
	dir2 := t.TempDir()
	require.NoError(t, os.CopyFS(dir2, os.DirFS(dir1)))
	n2 := startServe(t, dir2, clusterArgs(dir2, dbURL)...)
	n2.passwords = n1.passwords

	t.Run("IDLE on node 2 wakes for mail through node 1", func(t *testing.T) {
		exists := make(chan uint32, 16)
		c, err := imapclient.DialTLS(n2.addrs["imaps"], &imapclient.Options{
			TLSConfig: n2.tlsConfig(),
			UnilateralDataHandler: &imapclient.UnilateralDataHandler{
				Mailbox: func(d *imapclient.UnilateralDataMailbox) {
					if d.NumMessages != nil {
						exists <- *d.NumMessages
					}
				},
			},
		})
		require.NoError(t, err)
		defer c.Close()
		require.NoError(t, c.Login(claire, n1.passwords[claire]).Wait())
		sel, err := c.Select("INBOX", nil).Wait()
		require.NoError(t, err)
		before := sel.NumMessages
		idle, err := c.Idle()
		require.NoError(t, err)

		sendMail(t, n1, lucas, claire, "Cluster IDLE")
		select {
		case n := <-exists:
			require.Equal(t, before+1, n)
		case <-time.After(10 * time.Second):
			t.Fatal("no EXISTS on node 2 within 10 s of a delivery through node 1")
		}
		require.NoError(t, idle.Close())
		require.NoError(t, idle.Wait())
	})

	t.Run("chat posted on node 2 reaches a socket on node 1", func(t *testing.T) {
		tokClaire := apiToken(t, n1, dbURL, claire)
		tokLucas := apiToken(t, n2, dbURL, lucas)
		var room struct {
			ID int64 `json:"id"`
		}
		status := chatREST(t, n2, tokLucas, "POST", "/api/v1/chat/rooms",
			map[string]any{"kind": "team", "name": "Coordination cluster", "members": []string{claire}}, &room)
		require.Equal(t, http.StatusCreated, status)
		require.NotZero(t, room.ID)

		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		ws, _, err := websocket.Dial(ctx, "wss://"+n1.addrs["http"]+chat.WebSocketPath, &websocket.DialOptions{
			HTTPHeader: http.Header{"Authorization": {"Bearer " + tokClaire}},
			HTTPClient: &http.Client{Transport: &http.Transport{TLSClientConfig: n1.tlsConfig()}},
		})
		require.NoError(t, err)
		defer ws.CloseNow()
		writeFrame(ctx, t, ws, map[string]any{"type": "hello", "v": 1})
		readUntil(ctx, t, ws, "welcome")
		writeFrame(ctx, t, ws, map[string]any{"type": "subscribe", "rooms": map[string]uint64{fmt.Sprint(room.ID): 0}})
		readUntil(ctx, t, ws, "subscribed")

		status = chatREST(t, n2, tokLucas, "POST", fmt.Sprintf("/api/v1/chat/rooms/%d/messages", room.ID),
			map[string]any{"clientId": "c1", "body": "Sortie prévue demain, passage IDE à 9 h"}, nil)
		require.Equal(t, http.StatusCreated, status)
		for {
			f := readUntil(ctx, t, ws, "message")
			msg, _ := f["message"].(map[string]any)
			if msg["body"] == "Sortie prévue demain, passage IDE à 9 h" {
				require.EqualValues(t, room.ID, f["room"])
				break
			}
		}
	})

	t.Run("concurrent deliveries through both nodes", func(t *testing.T) {
		c := n1.imapLogin(lucas, n1.passwords[lucas])
		defer c.Close()
		sel, err := c.Select("INBOX", nil).Wait()
		require.NoError(t, err)
		before := sel.NumMessages

		const perNode = 10
		var wg sync.WaitGroup
		for _, n := range []*instance{n1, n2} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range perNode {
					sendMail(t, n, claire, lucas, fmt.Sprintf("burst %d", i))
				}
			}()
		}
		wg.Wait()
		require.NoError(t, c.Noop().Wait())
		msgs, err := c.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true}).Collect()
		require.NoError(t, err)
		require.Len(t, msgs, int(before)+2*perNode)
		uids := make([]uint32, len(msgs))
		for i, m := range msgs {
			uids[i] = uint32(m.UID)
		}
		require.True(t, sort.SliceIsSorted(uids, func(i, j int) bool { return uids[i] < uids[j] }), "UIDs in sequence order: %v", uids)
		for i := 1; i < len(uids); i++ {
			require.Less(t, uids[i-1], uids[i], "UIDs strictly increasing: %v", uids)
		}
	})

	n2.stop()
	n1.stop()
}

func clusterArgs(dir, dbURL string) []string {
	return []string{"--data", dir, "--database", dbURL,
		"--smtp", "127.0.0.1:0", "--submission", "127.0.0.1:0", "--submissions", "127.0.0.1:0",
		"--imap", "127.0.0.1:0", "--imaps", "127.0.0.1:0", "--http", "127.0.0.1:0",
		"--ldap", "", "--ldaps", "", "--log", "debug"}
}

// sendMail submits one short message through the node's submissions port.
func sendMail(t *testing.T, n *instance, from, to, subject string) {
	c, err := smtp.DialTLS(n.addrs["submissions"], n.tlsConfig())
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.Auth(sasl.NewPlainClient("", from, n.passwords[from])))
	msg := fmt.Sprintf("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\nMessage-ID: <%d.%s>\r\n\r\nBonjour.\r\n",
		from, to, subject, time.Now().UnixNano(), from)
	require.NoError(t, c.SendMail(from, []string{to}, strings.NewReader(msg)))
	require.NoError(t, c.Quit())
}

// apiToken creates an API token for address with the CLI, on the node's
// database (dbURL, or SQLite in its data directory when empty).
func apiToken(t *testing.T, n *instance, dbURL, address string) string {
	args := []string{"admin", "token", "create", address, "--name", "test", "--data", n.dir}
	if dbURL != "" {
		args = append(args, "--database", dbURL)
	}
	cmd := exec.Command(relaisBin, args...)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	m := tokenLine.FindStringSubmatch(string(out))
	require.NotNil(t, m, "%s", out)
	return m[1]
}

// chatREST calls the chat REST API with a bearer token and decodes the JSON
// answer into out (when not nil).
func chatREST(t *testing.T, n *instance, token, method, path string, body, out any) int {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(t, err)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "https://"+n.addrs["http"]+path, rd)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: n.tlsConfig()}, Timeout: 30 * time.Second}
	resp, err := hc.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	if out != nil && resp.StatusCode < 300 {
		require.NoError(t, json.Unmarshal(data, out), "%s", data)
	}
	if resp.StatusCode >= 300 {
		t.Logf("%s %s: %d %s", method, path, resp.StatusCode, data)
	}
	return resp.StatusCode
}

func writeFrame(ctx context.Context, t *testing.T, ws *websocket.Conn, v any) {
	b, err := json.Marshal(v)
	require.NoError(t, err)
	require.NoError(t, ws.Write(ctx, websocket.MessageText, b))
}

// readUntil reads frames until one of the given type, failing on an error
// frame.
func readUntil(ctx context.Context, t *testing.T, ws *websocket.Conn, typ string) map[string]any {
	for {
		_, data, err := ws.Read(ctx)
		require.NoError(t, err, "waiting for a %s frame", typ)
		var f map[string]any
		require.NoError(t, json.Unmarshal(data, &f))
		switch f["type"] {
		case typ:
			return f
		case "error":
			t.Fatalf("error frame while waiting for %s: %s", typ, data)
		}
	}
}
