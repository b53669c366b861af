package chat

import (
	"sync"

	"github.com/relais-mssante/relais/storage"
)

// hub is the in-memory part of one node's fan-out: the connections of each
// account, and who is subscribed to which room, for what is not stored
// (typing, presence). Stored events never go through it: they follow the
// storage feed (see the package comment), so the hub holds no membership.
type hub struct {
	mu       sync.Mutex
	accounts map[storage.AccountID]map[*conn]struct{}
	rooms    map[storage.RoomID]map[*conn]struct{}
	onEmpty  func(storage.RoomID) // called with mu held when a room loses its last subscriber
}

func newHub() *hub {
	return &hub{
		accounts: make(map[storage.AccountID]map[*conn]struct{}),
		rooms:    make(map[storage.RoomID]map[*conn]struct{}),
	}
}

// followed tells whether a connection of this node follows the room.
func (h *hub) followed(room storage.RoomID) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.rooms[room]) > 0
}

// register adds a connection unless its account already has max.
func (h *hub) register(c *conn, max int) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	m := h.accounts[c.acct.ID]
	if len(m) >= max {
		return false
	}
	if m == nil {
		m = make(map[*conn]struct{})
		h.accounts[c.acct.ID] = m
	}
	m[c] = struct{}{}
	return true
}

// unregister removes a connection from its account and every room,
// announcing that its account went offline where it was the last one.
func (h *hub) unregister(c *conn) {
	h.mu.Lock()
	if m := h.accounts[c.acct.ID]; m != nil {
		delete(m, c)
		if len(m) == 0 {
			delete(h.accounts, c.acct.ID)
		}
	}
	var left []storage.RoomID
	for room, m := range h.rooms {
		if _, ok := m[c]; ok {
			left = append(left, room)
		}
	}
	h.mu.Unlock()
	for _, room := range left {
		h.leave(room, c)
	}
}

// onlineIn reports whether acct has a connection subscribed to room; h.mu held.
func (h *hub) onlineIn(room storage.RoomID, acct storage.AccountID) bool {
	for o := range h.rooms[room] {
		if o.acct.ID == acct {
			return true
		}
	}
	return false
}

// join subscribes c to room's ephemeral frames and returns the other
// accounts online there; if c's account was not, the others are told.
func (h *hub) join(room storage.RoomID, c *conn) []storage.AccountID {
	h.mu.Lock()
	defer h.mu.Unlock()
	m := h.rooms[room]
	if m == nil {
		m = make(map[*conn]struct{})
		h.rooms[room] = m
	}
	if _, ok := m[c]; ok {
		return nil
	}
	was := h.onlineIn(room, c.acct.ID)
	seen := make(map[storage.AccountID]bool)
	var others []storage.AccountID
	for o := range m {
		if o.acct.ID != c.acct.ID && !seen[o.acct.ID] {
			seen[o.acct.ID] = true
			others = append(others, o.acct.ID)
		}
	}
	m[c] = struct{}{}
	if !was {
		h.broadcastLocked(room, c.acct.ID, presenceFrame(room, c.acct, true))
	}
	return others
}

// leave unsubscribes c from room; if its account has no connection left
// there, the others are told it went offline.
func (h *hub) leave(room storage.RoomID, c *conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	m := h.rooms[room]
	if _, ok := m[c]; !ok {
		return
	}
	delete(m, c)
	if len(m) == 0 {
		delete(h.rooms, room)
		if h.onEmpty != nil {
			h.onEmpty(room)
		}
		return
	}
	if !h.onlineIn(room, c.acct.ID) {
		h.broadcastLocked(room, c.acct.ID, presenceFrame(room, c.acct, false))
	}
}

// broadcast queues a droppable frame for every connection subscribed to
// room except those of the account except.
func (h *hub) broadcast(room storage.RoomID, except storage.AccountID, frame []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.broadcastLocked(room, except, frame)
}

func (h *hub) broadcastLocked(room storage.RoomID, except storage.AccountID, frame []byte) {
	for o := range h.rooms[room] {
		if o.acct.ID != except {
			o.q.push(item{frame: frame, room: room, droppable: true})
		}
	}
}

func presenceFrame(room storage.RoomID, a storage.Account, online bool) []byte {
	return encode(outFrame{Type: "presence", Room: room, Account: a.ID, Address: a.Address, Name: a.Name, Online: &online})
}
