package chat

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/relais-mssante/relais/storage"
)

// TestDocumentNotification: a discharge letter for a patient's INS
// delivered to a member shows in every patient room of that INS the
// recipient belongs to, and in the recipient's feed, with a link.
func TestDocumentNotification(t *testing.T) {
	e := newEnv(t)
	room := e.patientRoom(e.bob)
	alice, bob := e.connect(e.alice), e.connect(e.bob)
	alice.subscribe(map[storage.RoomID]uint64{room.ID: 0})
	alice.expect("subscribed")
	bob.subscribe(map[storage.RoomID]uint64{room.ID: 0})
	bob.expect("subscribed")

	d, err := e.store.Append(e.ctx, e.bob.ID, "INBOX", storage.NewMessage{Raw: []byte("From: dpi@hopital.test\r\nTo: bob@demo.relais.test\r\nSubject: Lettre de liaison\r\n\r\nvoir XDM\r\n")})
	if err != nil {
		t.Fatal(err)
	}
	rec := storage.DocumentRecord{Account: e.bob.ID, Mailbox: d.Mailbox, UID: d.UID, Recipient: e.bob.Address,
		PatientINS: room.PatientINS, INSKind: "NIR", Title: "Lettre de liaison de sortie", Valid: true, Received: time.Now()}
	ids, err := e.store.AddDocuments(e.ctx, []storage.DocumentRecord{rec})
	if err != nil {
		t.Fatal(err)
	}
	rec.ID = ids[0]
	if err := e.srv.DocumentReceived(e.ctx, rec); err != nil {
		t.Fatal(err)
	}
	// Idempotent for the room: a second call posts nothing new there.
	if err := e.srv.DocumentReceived(e.ctx, rec); err != nil {
		t.Fatal(err)
	}
	link := fmt.Sprintf("/documents/%d", rec.ID)
	for _, c := range []*client{alice, bob} {
		f := c.expect("message")
		m := f.msg(t)
		if m.Kind != storage.ChatDocument || m.Sender != 0 || len(m.Attachments) != 1 || m.Attachments[0].Link != link ||
			!strings.Contains(m.Body, "Lettre de liaison de sortie") {
			t.Fatalf("%s: document message %+v", c.acct.Address, m)
		}
	}
	f := bob.expect("notification")
	if n := f.Notification; n == nil || n.Kind != storage.NotificationDocument || n.Link != link || n.Room != room.ID {
		t.Fatalf("notification %+v", f.Notification)
	}
	code, body := e.restDo(e.bob, "GET", "/api/v1/chat/notifications", "", nil)
	if code != 200 || body["unread"].(float64) != 2 {
		t.Fatalf("%d %v", code, body)
	}
	msgs, _ := e.store.MessagesAfter(e.ctx, room.ID, e.bob.ID, 0, 10)
	if len(msgs) != 1 {
		t.Fatalf("%d room messages, want 1", len(msgs))
	}
}

// TestMentionAndDirectNotify: mentions and direct messages notify.
func TestMentionAndDirectNotify(t *testing.T) {
	e := newEnv(t)
	room := e.patientRoom(e.bob, e.carol)
	bob, carol := e.connect(e.bob), e.connect(e.carol)
	alice := e.connect(e.alice)
	alice.send(map[string]any{"type": "send", "room": room.ID, "clientId": "m1", "body": "@Bob peux-tu passer ?", "mentions": []storage.AccountID{e.bob.ID}})
	alice.until(func(f frame) bool { return f.Type == "ack" })
	f := bob.expect("notification")
	if f.Notification.Kind != storage.NotificationMention || f.Notification.Room != room.ID || f.Notification.Seq != 1 {
		t.Fatalf("%+v", f.Notification)
	}
	code, body := e.restDo(e.alice, "POST", "/api/v1/chat/direct", e.origin(), map[string]string{"address": e.carol.Address})
	if code != 200 {
		t.Fatalf("direct: %d %v", code, body)
	}
	direct := storage.RoomID(body["id"].(float64))
	alice.sendMsg(direct, "d1", "message direct")
	alice.until(func(f frame) bool { return f.Type == "ack" })
	f, _ = carol.until(func(f frame) bool { return f.Type == "notification" })
	if f.Notification.Kind != storage.NotificationDirect || f.Notification.Room != direct {
		t.Fatalf("%+v", f.Notification)
	}
}

// TestReadMarkersTypingPresence: read markers, typing and presence reach
// the other members.
func TestReadMarkersTypingPresence(t *testing.T) {
	e := newEnv(t)
	room := e.patientRoom(e.bob)
	e.post(room.ID, e.alice, "bonjour")
	alice := e.connect(e.alice)
	alice.subscribe(map[storage.RoomID]uint64{room.ID: 1})
	alice.expect("subscribed")
	bob := e.connect(e.bob)
	bob.subscribe(map[storage.RoomID]uint64{room.ID: 1})
	bob.expect("subscribed")
	// Alice learns that bob came online in the room.
	for {
		f, err := alice.read()
		if err != nil {
			t.Fatal(err)
		}
		if f.Type == "presence" && string(f.Account) == fmt.Sprint(e.bob.ID) && f.Online != nil && *f.Online {
			break
		}
	}
	bob.send(map[string]any{"type": "read", "room": room.ID, "seq": 1})
	f := alice.expect("read")
	if f.Room != room.ID || f.Seq != 1 || string(f.Account) != fmt.Sprint(e.bob.ID) {
		t.Fatalf("%+v", f)
	}
	bob.send(map[string]any{"type": "typing", "room": room.ID})
	for {
		f, err := alice.read()
		if err != nil {
			t.Fatal(err)
		}
		if f.Type == "typing" {
			if string(f.Account) != fmt.Sprint(e.bob.ID) {
				t.Fatalf("%+v", f)
			}
			break
		}
	}
	bob.ws.CloseNow()
	for {
		f, err := alice.read()
		if err != nil {
			t.Fatal(err)
		}
		if f.Type == "presence" && f.Online != nil && !*f.Online {
			break
		}
	}
}

// TestEditDelete: edits and deletions are events with their own seq.
func TestEditDelete(t *testing.T) {
	e := newEnv(t)
	room := e.patientRoom(e.bob)
	alice, bob := e.connect(e.alice), e.connect(e.bob)
	bob.subscribe(map[storage.RoomID]uint64{room.ID: 0})
	bob.expect("subscribed")
	alice.sendMsg(room.ID, "e1", "premier jet")
	alice.until(func(f frame) bool { return f.Type == "ack" })
	alice.send(map[string]any{"type": "edit", "room": room.ID, "clientId": "e2", "target": 1, "body": "corrigé"})
	alice.until(func(f frame) bool { return f.Type == "ack" })
	bob.send(map[string]any{"type": "delete", "room": room.ID, "clientId": "e3", "target": 1, "id": "del"})
	alice.send(map[string]any{"type": "delete", "room": room.ID, "clientId": "e4", "target": 1})
	alice.until(func(f frame) bool { return f.Type == "ack" })
	want := []struct {
		typ    string
		seq    uint64
		target uint64
	}{{"message", 1, 0}, {"edit", 2, 1}, {"delete", 3, 1}}
	var refused *frame
	for i := 0; i < len(want); {
		f := bob.next()
		if f.Type == "error" {
			refused = &f
			continue
		}
		if w := want[i]; f.Type != w.typ || f.Seq != w.seq || f.Target != w.target {
			t.Fatalf("got %s seq %d target %d, want %+v", f.Type, f.Seq, f.Target, w)
		}
		i++
	}
	if refused == nil {
		f := bob.expect("error")
		refused = &f
	}
	if refused.Code != CodeForbidden || refused.Ref != "del" {
		t.Fatalf("bob deleting alice's message: %+v", refused)
	}
	code, body := e.restDo(e.bob, "GET", fmt.Sprintf("/api/v1/chat/rooms/%d/messages/1/history", room.ID), "", nil)
	if code != 200 || len(body["versions"].([]any)) != 3 {
		t.Fatalf("history %d %v", code, body)
	}
}

// TestREST: member-checked, non-leaking, Origin-checked REST surface.
func TestREST(t *testing.T) {
	e := newEnv(t)
	code, body := e.restDo(e.alice, "POST", "/api/v1/chat/rooms", e.origin(), map[string]any{
		"kind": "patient", "name": "Cercle test", "patientIns": "2 99 01 75 000 000 00", "patientName": "PATIENTE Test"})
	if code != 201 {
		t.Fatalf("create: %d %v", code, body)
	}
	id := int64(body["id"].(float64))
	path := fmt.Sprintf("/api/v1/chat/rooms/%d", id)
	// Cross-origin writes with the cookie are refused, as are writes
	// without Origin.
	if code, _ := e.restDo(e.alice, "POST", path+"/members", "http://127.0.0.1:1", map[string]string{"address": e.bob.Address}); code != 403 {
		t.Fatalf("cross-origin: %d", code)
	}
	if code, _ := e.restDo(e.alice, "POST", path+"/members", "", map[string]string{"address": e.bob.Address}); code != 403 {
		t.Fatalf("no origin: %d", code)
	}
	if code, b := e.restDo(e.alice, "POST", path+"/members", e.origin(), map[string]string{"address": e.bob.Address}); code != 201 {
		t.Fatalf("add: %d %v", code, b)
	}
	// Bob is a member, not an owner: he cannot add carol.
	if code, _ := e.restDo(e.bob, "POST", path+"/members", e.origin(), map[string]string{"address": e.carol.Address}); code != 403 {
		t.Fatalf("member adding: %d", code)
	}
	// Carol: 404 for this room exactly as for a missing one.
	c1, b1 := e.restDo(e.carol, "GET", path, "", nil)
	c2, b2 := e.restDo(e.carol, "GET", fmt.Sprintf("/api/v1/chat/rooms/%d", id+1000), "", nil)
	if c1 != 404 || c2 != 404 || fmt.Sprint(b1) != fmt.Sprint(b2) {
		t.Fatalf("non-member %d %v, missing %d %v", c1, b1, c2, b2)
	}
	if c, _ := e.restDo(e.carol, "GET", path+"/messages", "", nil); c != 404 {
		t.Fatalf("history: %d", c)
	}
	if len(e.denied("chat.room.read")) != 2 {
		t.Fatal("refusals not audited")
	}
	code, body = e.restDo(e.bob, "GET", path, "", nil)
	if code != 200 || len(body["members"].([]any)) != 2 {
		t.Fatalf("room: %d %v", code, body)
	}
	if code, b := e.restDo(e.bob, "POST", path+"/messages", e.origin(), map[string]any{"clientId": "r1", "body": "Hôpital de jour demain"}); code != 201 {
		t.Fatalf("post: %d %v", code, b)
	}
	code, body = e.restDo(e.alice, "GET", path+"/messages", "", nil)
	if code != 200 || len(body["messages"].([]any)) != 2 { // the system message of bob's addition, bob's message
		t.Fatalf("messages: %d %v", code, body)
	}
	code, body = e.restDo(e.alice, "GET", "/api/v1/chat/search?q=hopital", "", nil)
	if code != 200 || len(body["messages"].([]any)) != 1 {
		t.Fatalf("search: %d %v", code, body)
	}
	if code, body = e.restDo(e.carol, "GET", "/api/v1/chat/search?q=hopital", "", nil); code != 200 || len(body["messages"].([]any)) != 0 {
		t.Fatalf("carol's search: %d %v", code, body)
	}
	code, body = e.restDo(e.alice, "GET", "/api/v1/chat/rooms", "", nil)
	if code != 200 || len(body["rooms"].([]any)) != 1 {
		t.Fatalf("rooms: %d %v", code, body)
	}
	if code, body = e.restDo(e.alice, "GET", "/api/v1/chat/people?q=bob@demo.relais.test", "", nil); code != 200 || len(body["people"].([]any)) != 1 {
		t.Fatalf("people: %d %v", code, body)
	}
	// No session at all.
	resp, err := http.Get(e.ts.URL + "/api/v1/chat/rooms")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("anonymous: %d", resp.StatusCode)
	}
}

// smallBuffers makes the server's sockets keep little unsent data, so a
// client that stops reading blocks the server's writes soon.
type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetWriteBuffer(4096)
	}
	return c, err
}

// TestSlowConsumer: a client that stops reading is disconnected; the
// others keep receiving.
func TestSlowConsumer(t *testing.T) {
	e := newEnv(t, withLimits(Limits{WriteTimeout: 200 * time.Millisecond, Queue: 8, RatePerSecond: 1e6, Burst: 1e6}),
		func(_ *Config, ts *httptest.Server) { ts.Listener = smallBuffers{ts.Listener} })
	room := e.patientRoom(e.bob, e.carol)
	// Carol's client reads with a tiny receive buffer and then stops.
	dialer := &net.Dialer{Control: nil}
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dialer.DialContext(ctx, network, addr)
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetReadBuffer(4096)
		}
		return c, err
	}}}
	ws, _, err := e.dialRaw(e.carol, e.origin(), hc)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	carol := &client{t: t, ws: ws, acct: e.carol}
	carol.send(map[string]any{"type": "hello", "v": 1})
	carol.expect("welcome")
	carol.subscribe(map[storage.RoomID]uint64{room.ID: 0})
	carol.expect("subscribed")
	bob := e.connect(e.bob)
	bob.subscribe(map[storage.RoomID]uint64{room.ID: 0})
	bob.expect("subscribed")

	big := strings.Repeat("x", storage.MaxChatBody-100)
	deadline := time.Now().Add(waitFor)
	sent := 0
	for e.srv.Stats().SlowConsumers == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no slow consumer after %d messages", sent)
		}
		e.post(room.ID, e.alice, big)
		sent++
		// Bob keeps reading.
		if f := bob.expect("message"); f.Seq != uint64(sent) {
			t.Fatalf("bob: seq %d, want %d", f.Seq, sent)
		}
	}
	if e.srv.Stats().SlowConsumers != 1 {
		t.Fatalf("stats %+v", e.srv.Stats())
	}
	// Carol's connection ends once she reads what was buffered.
	for {
		if _, err := carol.read(); err != nil {
			break
		}
	}
}

// TestSendQueueDropsEphemeralFirst: a full queue drops typing and
// presence before anything else, and reports overflow only when nothing
// can be dropped.
func TestSendQueueDropsEphemeralFirst(t *testing.T) {
	q := newSendQueue(3)
	must := func(ok bool) {
		t.Helper()
		if !ok {
			t.Fatal("push refused")
		}
	}
	must(q.push(item{frame: []byte("typing"), droppable: true}))
	must(q.push(item{frame: []byte("a")}))
	must(q.push(item{frame: []byte("presence"), droppable: true}))
	must(q.push(item{frame: []byte("typing2"), droppable: true})) // dropped
	must(q.push(item{frame: []byte("b")}))                        // evicts "typing"
	must(q.push(item{frame: []byte("c")}))                        // evicts "presence"
	if q.push(item{frame: []byte("d")}) {
		t.Fatal("overflow not reported")
	}
	var got []string
	for _, it := range q.take() {
		got = append(got, string(it.frame))
	}
	if strings.Join(got, ",") != "a,b,c" || q.takeDropped() != 3 {
		t.Fatalf("queue %v", got)
	}
}

// TestBearerToken: a non-browser client authenticates with an API token.
func TestBearerToken(t *testing.T) {
	e := newEnv(t)
	secret := "chat-test-token-secret"
	if _, err := e.store.CreateAPIToken(e.ctx, storage.APIToken{Account: e.bob.ID, Name: "test", Hash: sha256Hex(secret)}); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", e.ts.URL+"/api/v1/chat/me", nil)
	req.Header.Set("Authorization", "Bearer "+secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("%d", resp.StatusCode)
	}
}
