package chat

import (
	"context"
	"sync"

	"github.com/relais-mssante/relais/storage"
)

// ringSize is how many recent events of a room the node keeps encoded.
const ringSize = 64

// recent is the fast path of the fan-out: the last events of each room
// that has subscribers on this node, encoded once. The first connection
// that reads an event from the store leaves it here; the room's other
// connections send it from here after checking, at that moment, that
// their account is still a member. The store stays the source of truth:
// what is not here (a gap, an older event) is read from it.
type recent struct {
	mu    sync.Mutex
	rooms map[storage.RoomID][]ringEntry // contiguous seqs, oldest first
}

type ringEntry struct {
	seq    uint64
	sender storage.AccountID
	frame  []byte // as everyone sees it
	own    []byte // as its sender sees it (with the client id)
}

func newRecent() *recent { return &recent{rooms: make(map[storage.RoomID][]ringEntry)} }

// remember adds events read from the store (in seq order).
func (r *recent) remember(ctx context.Context, s *Server, room storage.RoomID, msgs []storage.ChatMessage) {
	if len(msgs) == 0 {
		return
	}
	ents := make([]ringEntry, 0, len(msgs))
	for _, m := range msgs {
		v := s.messageView(ctx, m, 0)
		e := ringEntry{seq: m.Seq, sender: m.Sender}
		e.frame = encode(outFrame{Type: eventType(m.Kind), Room: room, Seq: m.Seq, Target: m.Target, Message: v})
		if m.Sender != 0 && m.ClientID != "" {
			v.ClientID = m.ClientID
			e.own = encode(outFrame{Type: eventType(m.Kind), Room: room, Seq: m.Seq, Target: m.Target, Message: v})
		} else {
			e.own = e.frame
		}
		ents = append(ents, e)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	cur := r.rooms[room]
	for _, e := range ents {
		switch {
		case len(cur) == 0 || e.seq == cur[len(cur)-1].seq+1:
			cur = append(cur, e)
		case e.seq > cur[len(cur)-1].seq+1:
			cur = append(cur[:0:0], e) // a gap: start again from here
		}
	}
	if len(cur) > ringSize {
		cur = append(cur[:0:0], cur[len(cur)-ringSize:]...)
	}
	r.rooms[room] = cur
}

// between returns the events after..upTo if they are all here.
func (r *recent) between(room storage.RoomID, after, upTo uint64) []ringEntry {
	r.mu.Lock()
	defer r.mu.Unlock()
	cur := r.rooms[room]
	if len(cur) == 0 || upTo <= after || cur[0].seq > after+1 || cur[len(cur)-1].seq < upTo {
		return nil
	}
	i := int(after + 1 - cur[0].seq)
	j := int(upTo - cur[0].seq + 1)
	return cur[i:j:j]
}

// forget drops a room nobody on this node follows any more.
func (r *recent) forget(room storage.RoomID) {
	r.mu.Lock()
	delete(r.rooms, room)
	r.mu.Unlock()
}
