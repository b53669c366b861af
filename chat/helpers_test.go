package chat

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/relais-mssante/relais/storage"
	"github.com/relais-mssante/relais/storage/sqlite"
)

var _ Store = (*sqlite.Store)(nil)

// waitFor bounds every wait of a test: a safety net against a hang, never
// an assertion about speed.
const waitFor = 20 * time.Second

// cookieSessions stands for the web app's sessions: the relais_session
// cookie names an account.
type cookieSessions struct {
	mu sync.Mutex
	m  map[string]storage.Account
}

func (c *cookieSessions) Account(r *http.Request) (storage.Account, bool) {
	ck, err := r.Cookie("relais_session")
	if err != nil {
		return storage.Account{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	a, ok := c.m[ck.Value]
	return a, ok
}

// env is a chat server on 127.0.0.1 over a real SQLite store, with three
// accounts: alice, bob and carol.
type env struct {
	t                 *testing.T
	store             *sqlite.Store
	srv               *Server
	ts                *httptest.Server
	sessions          *cookieSessions
	alice, bob, carol storage.Account
	ctx               context.Context
}

type envOption func(*Config, *httptest.Server)

func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "relais.db"), sqlite.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.AddDomain(ctx, "demo.relais.test"); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, store: st, ctx: ctx, sessions: &cookieSessions{m: map[string]storage.Account{}}}
	for _, p := range []struct {
		a    *storage.Account
		addr string
		name string
	}{{&e.alice, "alice@demo.relais.test", "Alice TEST"}, {&e.bob, "bob@demo.relais.test", "Bob TEST"}, {&e.carol, "carol@demo.relais.test", "Carol TEST"}} {
		a, err := st.CreateAccount(ctx, p.addr, p.name, "x")
		if err != nil {
			t.Fatal(err)
		}
		*p.a = a
		e.sessions.m["sess-"+strings.Split(p.addr, "@")[0]] = a
	}
	e.ts = httptest.NewUnstartedServer(nil)
	cfg := Config{Store: st, Sessions: e.sessions, Tokens: BearerTokens{Store: st}, Directory: st,
		Logger: testLogger()}
	for _, o := range opts {
		o(&cfg, e.ts)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = srv
	e.ts.Config.Handler = srv.Handler()
	e.ts.Start()
	t.Cleanup(func() {
		e.ts.CloseClientConnections()
		srv.Close()
		e.ts.Close()
	})
	return e
}

func withLimits(l Limits) envOption {
	return func(c *Config, _ *httptest.Server) { c.Limits = l }
}

func (e *env) session(a storage.Account) string {
	return "sess-" + strings.Split(a.Address, "@")[0]
}

// patientRoom creates a patient room owned by alice with the members.
func (e *env) patientRoom(members ...storage.Account) storage.Room {
	e.t.Helper()
	var ids []storage.AccountID
	for _, m := range members {
		ids = append(ids, m.ID)
	}
	r, err := e.store.CreateRoom(e.ctx, storage.NewRoom{Kind: storage.RoomPatient, Name: "Cercle de soins test",
		PatientINS: "1 84 12 75 123 456 78", PatientName: "PATIENT Test", CreatedBy: e.alice.ID, Members: ids})
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

func (e *env) post(room storage.RoomID, from storage.Account, body string) storage.ChatMessage {
	e.t.Helper()
	m, _, err := e.store.Post(e.ctx, storage.NewChatMessage{Room: room, Sender: from.ID, Kind: storage.ChatText, Body: body})
	if err != nil {
		e.t.Fatal(err)
	}
	return m
}

// client is a real WebSocket client (coder/websocket Dial).
type client struct {
	t    *testing.T
	ws   *websocket.Conn
	acct storage.Account
	n    int
}

type frame struct {
	Type         string            `json:"type"`
	Code         string            `json:"code"`
	Message      json.RawMessage   `json:"message"`
	Ref          string            `json:"ref"`
	Room         storage.RoomID    `json:"room"`
	Seq          uint64            `json:"seq"`
	LastSeq      *uint64           `json:"lastSeq"`
	Target       uint64            `json:"target"`
	ClientID     string            `json:"clientId"`
	Duplicate    bool              `json:"duplicate"`
	Account      json.RawMessage   `json:"account"`
	Action       string            `json:"action"`
	Online       *bool             `json:"online"`
	Notification *notificationJSON `json:"notification"`
}

func (f frame) msg(t *testing.T) messageJSON {
	t.Helper()
	var m messageJSON
	if err := json.Unmarshal(f.Message, &m); err != nil {
		t.Fatalf("frame %s: message: %v", f.Type, err)
	}
	return m
}

func (e *env) origin() string { return e.ts.URL }

func (e *env) wsURL() string { return "ws" + strings.TrimPrefix(e.ts.URL, "http") + WebSocketPath }

// dialRaw dials with a's session cookie and the given Origin ("" for none).
func (e *env) dialRaw(a storage.Account, origin string, hc *http.Client) (*websocket.Conn, *http.Response, error) {
	h := http.Header{}
	h.Set("Cookie", "relais_session="+e.session(a))
	if origin != "" {
		h.Set("Origin", origin)
	}
	ctx, cancel := context.WithTimeout(e.ctx, waitFor)
	defer cancel()
	return websocket.Dial(ctx, e.wsURL(), &websocket.DialOptions{HTTPHeader: h, HTTPClient: hc})
}

// connect dials as a browser would, says hello and waits for welcome.
func (e *env) connect(a storage.Account) *client {
	e.t.Helper()
	ws, _, err := e.dialRaw(a, e.origin(), nil)
	if err != nil {
		e.t.Fatalf("dial as %s: %v", a.Address, err)
	}
	ws.SetReadLimit(1 << 20)
	c := &client{t: e.t, ws: ws, acct: a}
	e.t.Cleanup(func() { ws.CloseNow() })
	c.send(map[string]any{"type": "hello", "v": 1})
	if f := c.expect("welcome"); f.Type != "welcome" {
		e.t.Fatal("no welcome")
	}
	return c
}

func (c *client) send(v any) {
	c.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, b); err != nil {
		c.t.Fatalf("%s: write: %v", c.acct.Address, err)
	}
}

// next reads the next frame other than presence and typing.
func (c *client) next() frame {
	c.t.Helper()
	for {
		f, err := c.read()
		if err != nil {
			c.t.Fatalf("%s: read: %v", c.acct.Address, err)
		}
		if f.Type != "presence" && f.Type != "typing" {
			return f
		}
	}
}

func (c *client) read() (frame, error) {
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	typ, data, err := c.ws.Read(ctx)
	if err != nil {
		return frame{}, err
	}
	if typ != websocket.MessageText {
		return frame{}, fmt.Errorf("binary frame")
	}
	var f frame
	if err := json.Unmarshal(data, &f); err != nil {
		return frame{}, fmt.Errorf("frame %q: %w", data, err)
	}
	return f, nil
}

// expect reads frames (skipping presence and typing) until one of type
// typ, failing on an error frame or any other type.
func (c *client) expect(typ string) frame {
	c.t.Helper()
	f := c.next()
	if f.Type != typ {
		c.t.Fatalf("%s: got %s frame (code %q, message %s), want %s", c.acct.Address, f.Type, f.Code, f.Message, typ)
	}
	return f
}

// until reads until a frame satisfying ok, returning those skipped.
func (c *client) until(ok func(frame) bool) (frame, []frame) {
	c.t.Helper()
	var skipped []frame
	for {
		f := c.next()
		if ok(f) {
			return f, skipped
		}
		skipped = append(skipped, f)
	}
}

func (c *client) subscribe(rooms map[storage.RoomID]uint64) {
	c.t.Helper()
	m := map[string]uint64{}
	for id, s := range rooms {
		m[fmt.Sprint(id)] = s
	}
	c.n++
	c.send(map[string]any{"type": "subscribe", "id": fmt.Sprintf("sub-%d", c.n), "rooms": m})
}

func (c *client) sendMsg(room storage.RoomID, clientID, body string) {
	c.t.Helper()
	c.send(map[string]any{"type": "send", "id": clientID, "room": room, "clientId": clientID, "body": body})
}

// closeStatus reads until the connection ends and returns its close code.
func (c *client) closeStatus() websocket.StatusCode {
	c.t.Helper()
	for {
		_, err := c.read()
		if err != nil {
			return websocket.CloseStatus(err)
		}
	}
}

// restDo calls the REST surface as a's browser session.
func (e *env) restDo(a storage.Account, method, path, origin string, body any) (int, map[string]any) {
	e.t.Helper()
	var rd *strings.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = strings.NewReader(string(b))
	} else {
		rd = strings.NewReader("")
	}
	req, err := http.NewRequest(method, e.ts.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Cookie", "relais_session="+e.session(a))
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if resp.StatusCode != http.StatusNoContent {
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil && !errors.Is(err, net.ErrClosed) {
			e.t.Fatalf("%s %s: %d, body: %v", method, path, resp.StatusCode, err)
		}
	}
	return resp.StatusCode, out
}

// audits returns the audit entries with outcome denied.
func (e *env) denied(action string) []storage.AuditEntry {
	e.t.Helper()
	es, err := e.store.Audit(e.ctx, storage.AuditFilter{Action: action, Outcome: storage.AuditDenied})
	if err != nil {
		e.t.Fatal(err)
	}
	return es
}

func contextTimeout() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), waitFor)
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func testLogger() *slog.Logger {
	if os.Getenv("CHAT_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}
