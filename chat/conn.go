package chat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"

	"github.com/relais-mssante/relais/storage"
)

// pullPage is how many events one store read returns while catching up.
const pullPage = 200

// conn is one WebSocket client. The reader goroutine (serveWS's) parses
// frames and commits what the client asks; the writer goroutine is the only
// one that writes to the socket and owns the subscriptions, so a room's
// events leave in sequence order.
type conn struct {
	s    *Server
	ws   *websocket.Conn
	acct storage.Account
	log  *slog.Logger
	q    *sendQueue

	ctx    context.Context
	cancel context.CancelFunc

	closeOnce sync.Once
	pinging   atomic.Bool
	closing   atomic.Bool   // close was called
	closed    chan struct{} // closed once a close started by close has ended

	// Reader-owned.
	lastTyping map[storage.RoomID]time.Time
	lastRead   map[storage.RoomID]uint64

	// Writer-owned: subscribed rooms and the last seq sent in each.
	rooms map[storage.RoomID]uint64
	// Writer-owned: the newest notification sent.
	lastNotification storage.NotificationID
}

type subscribeCmd struct {
	rooms map[storage.RoomID]uint64
	ref   string
}

var connIDs struct {
	sync.Mutex
	n uint64
}

func nextConnID() uint64 {
	connIDs.Lock()
	defer connIDs.Unlock()
	connIDs.n++
	return connIDs.n
}

// serveWS authenticates, checks the Origin (the library's check, kept:
// a SameSite=Strict cookie is still sent by a page of the same site on
// another port), upgrades and runs the connection.
func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	acct, ok := s.authenticate(r)
	if !ok {
		s.audit(r.Context(), 0, "chat.connect", "", storage.AuditDenied, "not authenticated")
		writeJSONError(w, http.StatusUnauthorized, CodeUnauthorized, "a session or a bearer token is required")
		return
	}
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		// The request's own host is always allowed; Origins adds the
		// configured host:port patterns (never *, never
		// InsecureSkipVerify). RFC 6455 10.2.
		OriginPatterns:  s.cfg.Origins,
		CompressionMode: websocket.CompressionDisabled,
	})
	if err != nil {
		// Accept has answered (403 for a refused Origin).
		s.audit(r.Context(), acct.ID, "chat.connect", "", storage.AuditDenied, "handshake refused: "+err.Error())
		return
	}
	ws.SetReadLimit(s.limits.MaxFrame)
	s.names.remember(acct)
	ctx, cancel := context.WithCancel(context.Background())
	c := &conn{
		s: s, ws: ws, acct: acct, q: newSendQueue(s.limits.Queue),
		log: s.log.With("conn", nextConnID(), "account", int64(acct.ID)),
		ctx: ctx, cancel: cancel, closed: make(chan struct{}),
		lastTyping: make(map[storage.RoomID]time.Time),
		lastRead:   make(map[storage.RoomID]uint64),
		rooms:      make(map[storage.RoomID]uint64),
	}
	if !s.hub.register(c, s.limits.ConnsPerUser) {
		cancel()
		s.audit(r.Context(), acct.ID, "chat.connect", "", storage.AuditDenied, "too many connections")
		ws.Close(websocket.StatusPolicyViolation, "too many connections")
		return
	}
	s.wg.Add(1)
	defer s.wg.Done()
	s.count(func(st *Stats) { st.Connections++; st.Accepted++ })
	defer s.count(func(st *Stats) { st.Connections-- })
	c.run()
}

// run serves the connection until it ends.
func (c *conn) run() {
	// Subscribe to the feed before anything else: whatever commits after
	// this point is announced to the writer, so nothing falls between a
	// replay and the live events.
	sub := c.s.store.Subscribe(c.acct.ID)
	writerDone := make(chan struct{})
	go func() { defer close(writerDone); c.writeLoop(sub) }()
	c.readLoop()
	// A close frame being sent (policy, UTF-8...) leaves before the end.
	if c.closing.Load() {
		select {
		case <-c.closed:
		case <-time.After(c.s.limits.WriteTimeout):
		}
	}
	c.cancel()
	<-writerDone
	sub.Close()
	c.s.hub.unregister(c)
	c.ws.CloseNow()
}

// close ends the connection with a close frame (RFC 6455 7.1.2) and stops
// its goroutines.
func (c *conn) close(code websocket.StatusCode, reason string) {
	c.closeOnce.Do(func() {
		c.closing.Store(true)
		c.log.Debug("chat: closing", "code", int(code), "reason", reason)
		go func() {
			// Close waits for the peer's close frame; do not hold the
			// caller (the writer) meanwhile.
			defer close(c.closed)
			c.ws.Close(code, reason)
			c.cancel()
		}()
	})
}

// slow disconnects a consumer that does not keep up (PROTOCOL.md 5).
func (c *conn) slow() {
	c.s.count(func(st *Stats) { st.SlowConsumers++ })
	c.log.Info("chat: slow consumer disconnected")
	c.close(websocket.StatusPolicyViolation, "slow consumer")
	// The socket may be full: the close frame may never leave.
	time.AfterFunc(c.s.limits.WriteTimeout, func() { c.ws.CloseNow() })
}

// enqueue queues a frame that may not be dropped.
func (c *conn) enqueue(frame []byte) {
	if !c.q.push(item{frame: frame}) {
		c.slow()
	}
}

// closeAfter has the writer send frame, then close the connection: the
// client learns why before the close.
func (c *conn) closeAfter(frame []byte, code websocket.StatusCode, reason string) {
	if !c.q.push(item{frame: frame, closeCode: code, closeReason: reason}) {
		c.close(code, reason)
	}
	// Stop reading; the writer ends the connection.
	select {
	case <-c.ctx.Done():
	case <-time.After(c.s.limits.WriteTimeout):
		c.close(code, reason)
	}
}

func (c *conn) sendError(code, msg, ref string, room storage.RoomID) {
	c.enqueue(errFrame(code, msg, ref, room))
}

// ping checks that the peer is alive (RFC 6455 5.5.2: the library
// answers pings and matches pongs); no pong in time closes the connection.
// It runs in its own short-lived goroutine: Ping waits for the pong.
func (c *conn) ping() {
	if !c.pinging.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer c.pinging.Store(false)
		ctx, cancel := context.WithTimeout(c.ctx, c.s.limits.PongTimeout)
		defer cancel()
		if err := c.ws.Ping(ctx); err != nil && c.ctx.Err() == nil {
			c.close(websocket.StatusPolicyViolation, "ping timeout")
		}
	}()
}

// readLoop reads frames until the connection ends.
func (c *conn) readLoop() {
	hctx, cancel := context.WithTimeout(c.ctx, c.s.limits.HelloTimeout)
	f, ok := c.readFrame(hctx)
	cancel()
	if !ok {
		return
	}
	if f.Type != "hello" {
		c.close(websocket.StatusPolicyViolation, "hello expected")
		return
	}
	if f.V != ProtocolVersion {
		c.closeAfter(errFrame(CodeUnsupportedVersion, "this server speaks version 1", f.ID, 0), websocket.StatusPolicyViolation, "unsupported version")
		return
	}
	c.enqueue(encode(outFrame{
		Type: "welcome", V: ProtocolVersion,
		Account:   accountJSON{ID: c.acct.ID, Address: c.acct.Address, Name: c.acct.Name},
		Heartbeat: int(c.s.limits.Heartbeat / time.Second),
		Limits: &limitsJSON{MaxBody: c.s.limits.MaxBody, MaxFrame: c.s.limits.MaxFrame,
			RatePerSecond: c.s.limits.RatePerSecond, Burst: c.s.limits.Burst, Replay: c.s.limits.Replay},
		Ref: f.ID,
	}))
	for {
		f, ok := c.readFrame(c.ctx)
		if !ok {
			return
		}
		if f == nil {
			continue
		}
		c.dispatch(f)
	}
}

// readFrame reads and parses one frame. ok false ends the connection; a
// nil frame with ok true was refused with an error frame.
func (c *conn) readFrame(ctx context.Context) (*inFrame, bool) {
	typ, data, err := c.ws.Read(ctx)
	if err != nil {
		if errors.Is(err, websocket.ErrMessageTooBig) {
			// The library closes with 1009 (RFC 6455 7.4.1).
			c.log.Info("chat: frame over the read limit")
		}
		return nil, false
	}
	if typ != websocket.MessageText {
		c.sendError(CodeBadRequest, "binary frames are not used", "", 0)
		return nil, true
	}
	// RFC 6455 8.1: a text frame that is not UTF-8 fails the connection
	// (1007, 7.4.1); the library does not check, so we do, and say why
	// first.
	if !utf8.Valid(data) {
		c.closeAfter(errFrame(CodeInvalidUTF8, "text frames must be UTF-8", "", 0), websocket.StatusInvalidFramePayloadData, "invalid UTF-8")
		return nil, false
	}
	var f inFrame
	if err := json.Unmarshal(data, &f); err != nil || f.Type == "" {
		c.sendError(CodeBadRequest, "a frame is a JSON object with a type", "", 0)
		return nil, true
	}
	if len(f.ID) > 64 {
		f.ID = f.ID[:64]
	}
	return &f, true
}

// dispatch runs one client frame; a panic there is this frame's failure,
// not the server's.
func (c *conn) dispatch(f *inFrame) {
	defer func() {
		if v := recover(); v != nil {
			c.s.count(func(st *Stats) { st.Panics++ })
			c.log.Error("chat: panic in a frame", "panic", fmt.Sprint(v), "type", f.Type, "stack", string(debug.Stack()))
			c.sendError(CodeInternal, "internal error", f.ID, f.Room)
		}
	}()
	switch f.Type {
	case "subscribe":
		rooms, err := f.subscribeRooms(c.s.limits.RoomsPerSub)
		if err != nil {
			c.sendError(CodeBadRequest, err.Error(), f.ID, 0)
			return
		}
		if !c.q.push(item{sub: &subscribeCmd{rooms: rooms, ref: f.ID}}) {
			c.slow()
		}
	case "unsubscribe":
		ids, err := f.unsubscribeRooms()
		if err != nil {
			c.sendError(CodeBadRequest, err.Error(), f.ID, 0)
			return
		}
		if !c.q.push(item{unsub: ids}) {
			c.slow()
		}
	case "send", "edit", "delete":
		c.post(f)
	case "read":
		c.read(f)
	case "typing":
		c.typing(f)
	case "ping":
		c.enqueue(encode(outFrame{Type: "pong", Ref: f.ID}))
	case "hello":
		c.sendError(CodeBadRequest, "hello was already received", f.ID, 0)
	default:
		c.sendError(CodeBadRequest, "unknown frame type", f.ID, 0)
	}
}

// post commits a send, edit or delete and acks it after the commit.
func (c *conn) post(f *inFrame) {
	nm, code, msg := newMessage(f, c.acct.ID, c.s.limits.MaxBody)
	if code != "" {
		c.sendError(code, msg, f.ID, f.Room)
		return
	}
	m, dup, perr := c.s.postMessage(c.ctx, c.acct, nm)
	if perr != nil {
		c.sendError(perr.code, perr.msg, f.ID, f.Room)
		return
	}
	c.enqueue(encode(outFrame{Type: "ack", Ref: f.ID, Room: m.Room, ClientID: nm.ClientID, Seq: m.Seq, Duplicate: dup}))
}

// newMessage checks a send/edit/delete frame's shape (no store involved).
func newMessage(f *inFrame, sender storage.AccountID, maxBody int) (storage.NewChatMessage, string, string) {
	nm := storage.NewChatMessage{Room: f.Room, Sender: sender, ClientID: f.ClientID, Body: f.Body,
		ReplyTo: f.ReplyTo, Target: f.Target, Mentions: f.Mentions}
	switch f.Type {
	case "send":
		nm.Kind = storage.ChatText
	case "edit":
		nm.Kind = storage.ChatEdit
	case "delete":
		nm.Kind, nm.Body = storage.ChatDelete, ""
	}
	switch {
	case f.Room <= 0:
		return nm, CodeBadRequest, "room is required"
	case f.ClientID == "" || len(f.ClientID) > 64:
		return nm, CodeBadRequest, "clientId is required, at most 64 bytes"
	case len(f.Body) > maxBody:
		return nm, CodeTooLarge, fmt.Sprintf("the body is over %d bytes", maxBody)
	case nm.Kind != storage.ChatDelete && nm.Body == "":
		return nm, CodeBadRequest, "body is required"
	case nm.Kind != storage.ChatText && f.Target == 0:
		return nm, CodeBadRequest, "target is required"
	case len(f.Mentions) > storage.MaxMentions || len(f.Attachments) > storage.MaxAttachments:
		return nm, CodeTooLarge, "too many mentions or attachments"
	}
	for _, a := range f.Attachments {
		switch a.Kind {
		case storage.AttachDocument:
			if a.Document <= 0 {
				return nm, CodeBadRequest, "a document attachment needs document"
			}
		case storage.AttachMessage:
			if a.Mailbox <= 0 || a.UID == 0 {
				return nm, CodeBadRequest, "a message attachment needs mailbox and uid"
			}
		default:
			return nm, CodeBadRequest, "attachment kind is document or message"
		}
		nm.Attachments = append(nm.Attachments, storage.ChatAttachment{Kind: a.Kind, Document: a.Document, Mailbox: a.Mailbox, UID: a.UID})
	}
	return nm, "", ""
}

func (c *conn) read(f *inFrame) {
	if f.Room <= 0 {
		c.sendError(CodeBadRequest, "room is required", f.ID, 0)
		return
	}
	if f.Seq <= c.lastRead[f.Room] {
		return // markers only move forward
	}
	if perr := c.s.setRead(c.ctx, c.acct, f.Room, f.Seq); perr != nil {
		c.sendError(perr.code, perr.msg, f.ID, f.Room)
		return
	}
	c.lastRead[f.Room] = f.Seq
}

func (c *conn) typing(f *inFrame) {
	if f.Room <= 0 {
		c.sendError(CodeBadRequest, "room is required", f.ID, 0)
		return
	}
	now := c.s.cfg.Now()
	if now.Sub(c.lastTyping[f.Room]) < c.s.limits.TypingInterval {
		return
	}
	ok, err := c.s.store.IsMember(c.ctx, f.Room, c.acct.ID)
	if err != nil {
		c.log.Error("chat: membership", "err", err)
		c.sendError(CodeInternal, "internal error", f.ID, f.Room)
		return
	}
	if !ok {
		c.s.refuse(c.ctx, c.acct.ID, "chat.typing", f.Room, "not a member")
		c.sendError(CodeNotFound, "no such room", f.ID, f.Room)
		return
	}
	c.lastTyping[f.Room] = now
	c.s.hub.broadcast(f.Room, c.acct.ID, encode(outFrame{Type: "typing", Room: f.Room, Account: c.acct.ID, Address: c.acct.Address, Name: c.acct.Name}))
}

// writeLoop is the only writer of the socket.
func (c *conn) writeLoop(sub *storage.Subscription) {
	defer func() {
		if v := recover(); v != nil {
			c.s.count(func(st *Stats) { st.Panics++ })
			c.log.Error("chat: panic in the writer", "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			c.close(websocket.StatusInternalError, "internal error")
		}
	}()
	ping := time.NewTicker(c.s.limits.PingInterval)
	defer ping.Stop()
	for {
		var err error
		select {
		case <-c.ctx.Done():
			return
		case <-c.s.ctx.Done():
			c.close(websocket.StatusGoingAway, "server shutting down")
			return
		case <-ping.C:
			c.ping()
		case <-c.q.ready:
			for _, it := range c.q.take() {
				if err = c.handleItem(it); err != nil {
					break
				}
			}
			if n := c.q.takeDropped(); n > 0 {
				c.s.count(func(st *Stats) { st.DroppedFrames += n })
			}
		case <-sub.Ready():
			changes, overflowed := sub.Next()
			if overflowed {
				// Changes were lost: catch every subscribed room up from
				// the store.
				for _, room := range c.subscribed() {
					if err = c.pull(room, 0); err != nil {
						break
					}
				}
			}
			for _, ch := range changes {
				if err != nil {
					break
				}
				err = c.handleChange(ch)
			}
		}
		if err != nil {
			if c.ctx.Err() == nil {
				c.log.Debug("chat: writer stops", "err", err)
			}
			c.cancel()
			return
		}
	}
}

func (c *conn) subscribed() []storage.RoomID {
	ids := make([]storage.RoomID, 0, len(c.rooms))
	for id := range c.rooms {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// write sends one frame; a consumer that does not take it within
// WriteTimeout is too slow and is disconnected.
func (c *conn) write(frame []byte) error {
	ctx, cancel := context.WithTimeout(c.ctx, c.s.limits.WriteTimeout)
	defer cancel()
	err := c.ws.Write(ctx, websocket.MessageText, frame)
	// The write's own deadline, not the connection's end (ctx.Err keeps
	// the first cause).
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		c.slow()
	}
	return err
}

func (c *conn) handleItem(it item) error {
	switch {
	case it.sub != nil:
		return c.subscribe(it.sub)
	case it.unsub != nil:
		for _, room := range it.unsub {
			delete(c.rooms, room)
			c.s.hub.leave(room, c)
		}
		return nil
	case it.room != 0:
		// A room's ephemeral frame: only to a member, now.
		if _, ok := c.rooms[it.room]; !ok {
			return nil
		}
		ok, err := c.s.store.IsMember(c.ctx, it.room, c.acct.ID)
		if err != nil {
			return nil // dropped: typing and presence may be
		}
		if !ok {
			return c.lostRoom(it.room, true)
		}
	}
	if err := c.write(it.frame); err != nil {
		return err
	}
	if it.closeCode != 0 {
		c.close(it.closeCode, it.closeReason)
	}
	return nil
}

// subscribe replays what each room missed, or asks for a resync.
func (c *conn) subscribe(cmd *subscribeCmd) error {
	ids := make([]storage.RoomID, 0, len(cmd.rooms))
	for id := range cmd.rooms {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		last := cmd.rooms[id]
		r, err := c.s.store.Room(c.ctx, c.acct.ID, id)
		if errors.Is(err, storage.ErrNotFound) {
			c.s.refuse(c.ctx, c.acct.ID, "chat.subscribe", id, "not a member or no such room")
			c.unsubscribe(id)
			if err := c.write(errFrame(CodeNotFound, "no such room", cmd.ref, id)); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			c.log.Error("chat: reading a room", "err", err, "room", int64(id))
			if err := c.write(errFrame(CodeInternal, "internal error", cmd.ref, id)); err != nil {
				return err
			}
			continue
		}
		if last > r.LastSeq || r.LastSeq-last > uint64(c.s.limits.Replay) {
			// The gap is too large to replay (or the client is ahead of
			// this store): the client reloads the room.
			c.unsubscribe(id)
			ls := r.LastSeq
			if err := c.write(encode(outFrame{Type: "resync", Room: id, LastSeq: &ls, Ref: cmd.ref})); err != nil {
				return err
			}
			continue
		}
		c.rooms[id] = last
		if err := c.pull(id, 0); err != nil {
			return err
		}
		cur, ok := c.rooms[id]
		if !ok {
			continue // membership ended meanwhile
		}
		if err := c.write(encode(outFrame{Type: "subscribed", Room: id, LastSeq: &cur, Ref: cmd.ref})); err != nil {
			return err
		}
		for _, other := range c.s.hub.join(id, c) {
			a := c.s.names.lookup(c.ctx, other)
			if err := c.write(presenceFrame(id, a, true)); err != nil {
				return err
			}
		}
	}
	return nil
}

func (c *conn) unsubscribe(room storage.RoomID) {
	delete(c.rooms, room)
	c.s.hub.leave(room, c)
}

// pull sends the room's events after the last one sent, up to upTo when
// known (0: as far as the store goes). Recent events come from the node's
// cache after an IsMember check made now; the others are read from the
// store as this account. Either way a member no longer is refused at once.
func (c *conn) pull(room storage.RoomID, upTo uint64) error {
	if after, ok := c.rooms[room]; ok && upTo > after {
		if ents := c.s.recent.between(room, after, upTo); ents != nil {
			member, err := c.s.store.IsMember(c.ctx, room, c.acct.ID)
			if err != nil {
				if c.ctx.Err() != nil {
					return err
				}
				c.log.Error("chat: membership", "err", err, "room", int64(room))
				return nil
			}
			if !member {
				return c.lostRoom(room, true)
			}
			for _, e := range ents {
				f := e.frame
				if e.sender == c.acct.ID {
					f = e.own
				}
				if err := c.write(f); err != nil {
					return err
				}
				c.rooms[room] = e.seq
			}
			return nil
		}
	}
	for {
		after, ok := c.rooms[room]
		if !ok {
			return nil
		}
		msgs, err := c.s.store.MessagesAfter(c.ctx, room, c.acct.ID, after, pullPage)
		if errors.Is(err, storage.ErrNotFound) {
			return c.lostRoom(room, true)
		}
		if err != nil {
			if c.ctx.Err() != nil {
				return err
			}
			// Transient: the next change of the room catches up.
			c.log.Error("chat: reading events", "err", err, "room", int64(room))
			return nil
		}
		if c.s.hub.followed(room) {
			c.s.recent.remember(c.ctx, c.s, room, msgs)
		}
		for _, m := range msgs {
			if m.Seq <= after {
				continue
			}
			v := c.s.messageView(c.ctx, m, c.acct.ID)
			if err := c.write(encode(outFrame{Type: eventType(m.Kind), Room: room, Seq: m.Seq, Target: m.Target, Message: v})); err != nil {
				return err
			}
			after = m.Seq
			c.rooms[room] = after
		}
		if len(msgs) < pullPage {
			return nil
		}
	}
}

// lostRoom ends a subscription whose membership ended: the client is told
// it was removed and nothing more of the room is sent. refused records the
// refusal in the audit log (a delivery that membership no longer allows).
func (c *conn) lostRoom(room storage.RoomID, refused bool) error {
	if _, ok := c.rooms[room]; !ok {
		return nil
	}
	c.unsubscribe(room)
	if refused {
		c.s.refuse(c.ctx, c.acct.ID, "chat.deliver", room, "not a member")
	}
	return c.write(encode(outFrame{Type: "member", Room: room, Account: c.acct.ID, Address: c.acct.Address, Name: c.acct.Name, Action: "removed"}))
}

// handleChange turns a feed change into frames.
func (c *conn) handleChange(ch storage.Change) error {
	switch ch.Kind {
	case storage.ChangeChatNotification:
		if ch.Notification <= c.lastNotification {
			return nil
		}
		ns, err := c.s.store.Notifications(c.ctx, c.acct.ID, ch.Notification-1, 1)
		if err != nil || len(ns) == 0 || ns[0].ID != ch.Notification {
			return nil
		}
		c.lastNotification = ch.Notification
		return c.write(encode(outFrame{Type: "notification", Notification: notificationView(ns[0])}))
	case storage.ChangeChat:
	default:
		return nil
	}
	_, subscribed := c.rooms[ch.Room]
	switch ch.Chat {
	case storage.ChatChangeEvent:
		if subscribed && ch.Seq > c.rooms[ch.Room] {
			return c.pull(ch.Room, ch.Seq)
		}
	case storage.ChatChangeRead:
		if !subscribed {
			return nil
		}
		ok, err := c.s.store.IsMember(c.ctx, ch.Room, c.acct.ID)
		if err != nil {
			return nil
		}
		if !ok {
			return c.lostRoom(ch.Room, false)
		}
		a := c.s.names.lookup(c.ctx, ch.Account)
		return c.write(encode(outFrame{Type: "read", Room: ch.Room, Account: ch.Account, Address: a.Address, Name: a.Name, Seq: ch.Seq}))
	case storage.ChatChangeMember:
		me, err := c.s.store.IsMember(c.ctx, ch.Room, c.acct.ID)
		if err != nil {
			return nil
		}
		if !me {
			if ch.Account == c.acct.ID && !subscribed {
				// Removed from a room this connection did not follow:
				// the room list still changes.
				return c.write(encode(outFrame{Type: "member", Room: ch.Room, Account: c.acct.ID, Address: c.acct.Address, Name: c.acct.Name, Action: "removed"}))
			}
			return c.lostRoom(ch.Room, false)
		}
		if ch.Account != c.acct.ID && !subscribed {
			return nil
		}
		role, err := c.s.store.MemberRole(c.ctx, ch.Room, ch.Account)
		action := "added"
		if errors.Is(err, storage.ErrNotFound) {
			action, role = "removed", ""
		} else if err != nil {
			return nil
		}
		a := c.s.names.lookup(c.ctx, ch.Account)
		return c.write(encode(outFrame{Type: "member", Room: ch.Room, Account: ch.Account, Address: a.Address, Name: a.Name, Action: action, Role: role}))
	}
	return nil
}

// refuse records an authorization refusal in the audit log.
func (s *Server) refuse(ctx context.Context, acct storage.AccountID, action string, room storage.RoomID, detail string) {
	s.audit(ctx, acct, action, roomObject(room), storage.AuditDenied, detail)
}

func roomObject(room storage.RoomID) string {
	if room == 0 {
		return ""
	}
	return "room:" + strconv.FormatInt(int64(room), 10)
}
