package chat

import (
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/relais-mssante/relais/storage"
)

// TestSendOrderAck: a sender's messages reach another member in sequence
// order, each ack comes after its commit, and the sender gets its own
// messages back with its client id.
func TestSendOrderAck(t *testing.T) {
	e := newEnv(t, withLimits(Limits{Burst: 100}))
	room := e.patientRoom(e.bob)
	alice, bob := e.connect(e.alice), e.connect(e.bob)
	alice.subscribe(map[storage.RoomID]uint64{room.ID: 0})
	alice.expect("subscribed")
	bob.subscribe(map[storage.RoomID]uint64{room.ID: 0})
	bob.expect("subscribed")

	const n = 30
	for i := range n {
		alice.sendMsg(room.ID, fmt.Sprintf("c%d", i), fmt.Sprintf("message %d", i))
	}
	acks := 0
	var own []frame
	for acks < n {
		f := alice.next()
		switch f.Type {
		case "ack":
			// Ack after commit: the store has the message already.
			m, err := e.store.Message(e.ctx, room.ID, e.alice.ID, f.Seq)
			if err != nil {
				t.Fatalf("ack for seq %d before the commit: %v", f.Seq, err)
			}
			if m.ClientID != f.ClientID || f.Ref != f.ClientID || f.Duplicate {
				t.Fatalf("ack %+v for message %+v", f, m)
			}
			acks++
		case "message":
			own = append(own, f)
		default:
			t.Fatalf("unexpected %s frame", f.Type)
		}
	}
	for i := range n {
		f := bob.expect("message")
		m := f.msg(t)
		if f.Seq != uint64(i+1) || m.Body != fmt.Sprintf("message %d", i) || f.Room != room.ID {
			t.Fatalf("bob frame %d: seq %d body %q", i, f.Seq, m.Body)
		}
		if m.ClientID != "" {
			t.Fatalf("bob sees alice's client id %q", m.ClientID)
		}
		if m.Sender != e.alice.ID || m.SenderAddress != e.alice.Address {
			t.Fatalf("sender %d %q", m.Sender, m.SenderAddress)
		}
	}
	for len(own) < n {
		own = append(own, alice.expect("message"))
	}
	for i, f := range own {
		if f.Seq != uint64(i+1) || f.msg(t).ClientID != fmt.Sprintf("c%d", i) {
			t.Fatalf("own message %d: seq %d clientId %q", i, f.Seq, f.msg(t).ClientID)
		}
	}
}

// TestIdempotentRetry: a retry with the same clientId is acked with the
// same seq and stored, and delivered, once.
func TestIdempotentRetry(t *testing.T) {
	e := newEnv(t)
	room := e.patientRoom(e.bob)
	alice, bob := e.connect(e.alice), e.connect(e.bob)
	bob.subscribe(map[storage.RoomID]uint64{room.ID: 0})
	bob.expect("subscribed")

	alice.sendMsg(room.ID, "retry-1", "une fois")
	first := alice.expect("ack")
	// The client lost the ack and reconnects: same clientId again.
	alice.ws.CloseNow()
	alice = e.connect(e.alice)
	alice.sendMsg(room.ID, "retry-1", "une fois")
	second := alice.expect("ack")
	if first.Seq != second.Seq || !second.Duplicate || first.Duplicate {
		t.Fatalf("acks %+v then %+v", first, second)
	}
	// Then a new message: bob sees seq 1 and seq 2 only.
	alice.sendMsg(room.ID, "retry-2", "deux")
	alice.expect("ack")
	if f := bob.expect("message"); f.Seq != 1 {
		t.Fatalf("seq %d", f.Seq)
	}
	if f := bob.expect("message"); f.Seq != 2 || f.msg(t).Body != "deux" {
		t.Fatalf("seq %d body %q: the retry was delivered twice", f.Seq, f.msg(t).Body)
	}
	msgs, err := e.store.MessagesAfter(e.ctx, room.ID, e.alice.ID, 0, 10)
	if err != nil || len(msgs) != 2 {
		t.Fatalf("stored %d messages, %v", len(msgs), err)
	}
}

// TestResumeAfterReconnect: a client that reconnects with its last seq
// gets exactly what it missed, then the live events: nothing lost, nothing
// twice.
func TestResumeAfterReconnect(t *testing.T) {
	e := newEnv(t)
	room := e.patientRoom(e.bob)
	for i := 1; i <= 5; i++ {
		e.post(room.ID, e.alice, fmt.Sprintf("avant %d", i))
	}
	bob := e.connect(e.bob)
	bob.subscribe(map[storage.RoomID]uint64{room.ID: 2})
	for want := uint64(3); want <= 5; want++ {
		if f := bob.expect("message"); f.Seq != want {
			t.Fatalf("replay: seq %d, want %d", f.Seq, want)
		}
	}
	if f := bob.expect("subscribed"); f.LastSeq == nil || *f.LastSeq != 5 {
		t.Fatalf("subscribed %+v", f)
	}
	bob.ws.CloseNow()
	for i := 6; i <= 9; i++ {
		e.post(room.ID, e.alice, fmt.Sprintf("pendant %d", i))
	}
	bob = e.connect(e.bob)
	bob.subscribe(map[storage.RoomID]uint64{room.ID: 5})
	alice := e.connect(e.alice)
	alice.sendMsg(room.ID, "live", "en direct")
	var seqs []uint64
	for len(seqs) < 5 {
		f := bob.next()
		switch f.Type {
		case "message":
			seqs = append(seqs, f.Seq)
		case "subscribed":
		default:
			t.Fatalf("unexpected %s", f.Type)
		}
	}
	for i, s := range seqs {
		if s != uint64(6+i) {
			t.Fatalf("after reconnect: seqs %v, want 6..10", seqs)
		}
	}
}

// TestResync: a gap larger than the replay bound is not replayed; the
// client is told to resynchronise and is not subscribed to that room.
func TestResync(t *testing.T) {
	e := newEnv(t, withLimits(Limits{Replay: 5}))
	room := e.patientRoom(e.bob)
	other := e.patientRoom(e.bob)
	for i := 1; i <= 8; i++ {
		e.post(room.ID, e.alice, fmt.Sprintf("m%d", i))
	}
	bob := e.connect(e.bob)
	bob.subscribe(map[storage.RoomID]uint64{room.ID: 1})
	f := bob.expect("resync")
	if f.Room != room.ID || f.LastSeq == nil || *f.LastSeq != 8 {
		t.Fatalf("resync %+v", f)
	}
	// A client ahead of the server resynchronises too.
	bob.subscribe(map[storage.RoomID]uint64{room.ID: 99})
	bob.expect("resync")
	// Within the bound: replayed.
	bob.subscribe(map[storage.RoomID]uint64{room.ID: 4, other.ID: 0})
	for want := uint64(5); want <= 8; want++ {
		if f := bob.expect("message"); f.Seq != want || f.Room != room.ID {
			t.Fatalf("seq %d room %d", f.Seq, f.Room)
		}
	}
	bob.expect("subscribed")
	bob.expect("subscribed")
}

// TestResyncLeavesRoomUnsubscribed: after a resync, the room's live events
// are not sent until the client subscribes again.
func TestResyncLeavesRoomUnsubscribed(t *testing.T) {
	e := newEnv(t, withLimits(Limits{Replay: 2}))
	room := e.patientRoom(e.bob)
	other := e.patientRoom(e.bob)
	for i := 1; i <= 4; i++ {
		e.post(room.ID, e.alice, "x")
	}
	bob := e.connect(e.bob)
	bob.subscribe(map[storage.RoomID]uint64{room.ID: 0, other.ID: 0})
	bob.expect("resync")
	bob.expect("subscribed")
	e.post(room.ID, e.alice, "not for bob's connection")
	e.post(other.ID, e.alice, "sentinel")
	// Changes reach bob's feed in commit order: the sentinel comes after
	// the first post, so receiving it proves the first was not sent.
	if f := bob.expect("message"); f.Room != other.ID {
		t.Fatalf("message of room %d after a resync", f.Room)
	}
}

// TestNonMemberRefused: a non-member can neither subscribe nor send nor
// mark read, gets the same answer as for a missing room, and every refusal
// is audited.
func TestNonMemberRefused(t *testing.T) {
	e := newEnv(t)
	room := e.patientRoom(e.bob)
	e.post(room.ID, e.alice, "secret")
	carol := e.connect(e.carol)
	carol.subscribe(map[storage.RoomID]uint64{room.ID: 0})
	f1 := carol.expect("error")
	carol.subscribe(map[storage.RoomID]uint64{room.ID + 1000: 0})
	f2 := carol.expect("error")
	if f1.Code != CodeNotFound || f2.Code != CodeNotFound || string(f1.Message) != string(f2.Message) {
		t.Fatalf("member room %+v, missing room %+v: they must not differ", f1, f2)
	}
	carol.sendMsg(room.ID, "c1", "intrusion")
	if f := carol.expect("error"); f.Code != CodeNotFound || f.Ref != "c1" {
		t.Fatalf("send: %+v", f)
	}
	carol.send(map[string]any{"type": "read", "room": room.ID, "seq": 1})
	if f := carol.expect("error"); f.Code != CodeNotFound {
		t.Fatalf("read: %+v", f)
	}
	carol.send(map[string]any{"type": "typing", "room": room.ID})
	if f := carol.expect("error"); f.Code != CodeNotFound {
		t.Fatalf("typing: %+v", f)
	}
	if n := len(e.denied("chat.subscribe")); n != 2 {
		t.Fatalf("%d subscribe refusals audited, want 2", n)
	}
	if n := len(e.denied("chat.send")); n != 1 {
		t.Fatalf("%d send refusals audited", n)
	}
	if n := len(e.denied("chat.read")); n != 1 {
		t.Fatalf("%d read refusals audited", n)
	}
	es := e.denied("chat.send")
	if es[0].Account != e.carol.ID || es[0].Object != fmt.Sprintf("room:%d", room.ID) {
		t.Fatalf("audit entry %+v", es[0])
	}
}

// TestRemovedMemberStopsAtOnce: once an owner removes a member, that
// member's connection is told and receives nothing more from the room.
func TestRemovedMemberStopsAtOnce(t *testing.T) {
	e := newEnv(t)
	room := e.patientRoom(e.bob)
	other := e.patientRoom(e.bob)
	bob := e.connect(e.bob)
	bob.subscribe(map[storage.RoomID]uint64{room.ID: 0, other.ID: 0})
	bob.expect("subscribed")
	bob.expect("subscribed")

	code, _ := e.restDo(e.alice, "DELETE", fmt.Sprintf("/api/v1/chat/rooms/%d/members/%d", room.ID, e.bob.ID), e.origin(), nil)
	if code != 204 {
		t.Fatalf("remove: %d", code)
	}
	f := bob.expect("member")
	if f.Room != room.ID || f.Action != "removed" || string(f.Account) != fmt.Sprint(e.bob.ID) {
		t.Fatalf("member frame %+v", f)
	}
	e.post(room.ID, e.alice, "after the removal")
	e.post(other.ID, e.alice, "sentinel")
	if f := bob.expect("message"); f.Room != other.ID {
		t.Fatalf("removed member received room %d's message", f.Room)
	}
	// Subscribing again is refused like any non-member.
	bob.subscribe(map[storage.RoomID]uint64{room.ID: 0})
	if f := bob.expect("error"); f.Code != CodeNotFound {
		t.Fatalf("%+v", f)
	}
}

// TestOriginRefused: the library's Origin check is kept: a page of the
// same host on another port is refused even with a valid session cookie;
// no Origin (a non-browser client) and the server's own origin pass.
func TestOriginRefused(t *testing.T) {
	e := newEnv(t)
	host := strings.TrimPrefix(e.ts.URL, "http://")
	h, _, _ := strings.Cut(host, ":")
	_, resp, err := e.dialRaw(e.alice, "http://"+h+":1", nil)
	if err == nil {
		t.Fatal("a foreign Origin was accepted")
	}
	if resp == nil || resp.StatusCode != 403 {
		t.Fatalf("response %v", resp)
	}
	if len(e.denied("chat.connect")) != 1 {
		t.Fatal("refused Origin not audited")
	}
	// No session: 401.
	_, resp, err = e.dialRaw(storage.Account{Address: "nobody@x"}, e.origin(), nil)
	if err == nil || resp == nil || resp.StatusCode != 401 {
		t.Fatalf("no session: %v %v", err, resp)
	}
	ws, _, err := e.dialRaw(e.alice, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	ws.CloseNow()
	e.connect(e.alice)
}

// TestRateLimit: sends beyond the per-user bucket get a rate_limited error
// frame (and an audit entry); the connection stays usable.
func TestRateLimit(t *testing.T) {
	// A clock that does not move: no token comes back during the test.
	fixed := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	e := newEnv(t, withLimits(Limits{RatePerSecond: 1, Burst: 3}), func(c *Config, _ *httptest.Server) { c.Now = func() time.Time { return fixed } })
	room := e.patientRoom(e.bob)
	alice := e.connect(e.alice)
	for i := range 3 {
		alice.sendMsg(room.ID, fmt.Sprintf("r%d", i), "ok")
		alice.until(func(f frame) bool { return f.Type == "ack" })
	}
	alice.sendMsg(room.ID, "r3", "too many")
	f, _ := alice.until(func(f frame) bool { return f.Type == "error" || f.Type == "ack" })
	if f.Type != "error" || f.Code != CodeRateLimited || f.Ref != "r3" {
		t.Fatalf("%+v", f)
	}
	if len(e.denied("chat.send")) != 1 {
		t.Fatal("rate limit not audited")
	}
	// A second connection of the same user shares the bucket.
	alice2 := e.connect(e.alice)
	alice2.sendMsg(room.ID, "r4", "still too many")
	if f := alice2.expect("error"); f.Code != CodeRateLimited {
		t.Fatalf("%+v", f)
	}
	alice.send(map[string]any{"type": "ping", "id": "p"})
	alice.until(func(f frame) bool { return f.Type == "pong" })
}

// TestOversize: a body over the limit gets too_large; a frame over the read
// limit closes the connection with 1009.
func TestOversize(t *testing.T) {
	e := newEnv(t)
	room := e.patientRoom(e.bob)
	alice := e.connect(e.alice)
	alice.sendMsg(room.ID, "big", strings.Repeat("é", storage.MaxChatBody/2+1))
	if f := alice.expect("error"); f.Code != CodeTooLarge || f.Ref != "big" {
		t.Fatalf("%+v", f)
	}
	alice.sendMsg(room.ID, "huge", strings.Repeat("a", 70<<10))
	if code := alice.closeStatus(); code != websocket.StatusMessageTooBig {
		t.Fatalf("close status %d, want 1009", code)
	}
}

// TestInvalidUTF8: a text frame that is not UTF-8 gets an error frame,
// then the connection is failed with 1007 (RFC 6455 8.1).
func TestInvalidUTF8(t *testing.T) {
	e := newEnv(t)
	alice := e.connect(e.alice)
	ctx, cancel := contextTimeout()
	defer cancel()
	if err := alice.ws.Write(ctx, websocket.MessageText, []byte("{\"type\":\"ping\",\"id\":\"\xff\xfe\"}")); err != nil {
		t.Fatal(err)
	}
	if f := alice.expect("error"); f.Code != CodeInvalidUTF8 {
		t.Fatalf("%+v", f)
	}
	if code := alice.closeStatus(); code != websocket.StatusInvalidFramePayloadData {
		t.Fatalf("close status %d, want 1007", code)
	}
}

// TestHelloRequired: the first frame must be hello with v 1.
func TestHelloRequired(t *testing.T) {
	e := newEnv(t)
	ws, _, err := e.dialRaw(e.alice, e.origin(), nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &client{t: t, ws: ws, acct: e.alice}
	c.send(map[string]any{"type": "subscribe", "rooms": map[string]int{}})
	if code := c.closeStatus(); code != websocket.StatusPolicyViolation {
		t.Fatalf("close %d", code)
	}
	ws, _, err = e.dialRaw(e.alice, e.origin(), nil)
	if err != nil {
		t.Fatal(err)
	}
	c = &client{t: t, ws: ws, acct: e.alice}
	c.send(map[string]any{"type": "hello", "v": 2})
	if f := c.expect("error"); f.Code != CodeUnsupportedVersion {
		t.Fatalf("%+v", f)
	}
	if code := c.closeStatus(); code != websocket.StatusPolicyViolation {
		t.Fatalf("close %d", code)
	}
}
