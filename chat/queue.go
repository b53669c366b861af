package chat

import (
	"sync"

	"github.com/coder/websocket"

	"github.com/relais-mssante/relais/storage"
)

// item is one frame waiting for a connection's writer, or a command the
// writer runs in order with the frames (a subscription).
type item struct {
	frame     []byte
	room      storage.RoomID // room-scoped frames are checked for membership when written
	droppable bool           // typing, presence: dropped first when the queue is full
	sub       *subscribeCmd
	unsub     []storage.RoomID
	// closeCode, when set, closes the connection after frame is written.
	closeCode   websocket.StatusCode
	closeReason string
}

// sendQueue is a connection's bounded queue (PROTOCOL.md 5). When it is
// full, a droppable frame is dropped, and a frame that cannot be dropped
// evicts the oldest droppable one; when none can be evicted the consumer is
// too slow: push reports it and the connection is closed.
type sendQueue struct {
	mu      sync.Mutex
	items   []item
	max     int
	ready   chan struct{}
	dropped int
}

func newSendQueue(max int) *sendQueue {
	return &sendQueue{max: max, ready: make(chan struct{}, 1)}
}

// push adds it; ok false means the queue overflowed with frames that may
// not be dropped.
func (q *sendQueue) push(it item) (ok bool) {
	q.mu.Lock()
	defer func() {
		q.mu.Unlock()
		select {
		case q.ready <- struct{}{}:
		default:
		}
	}()
	if len(q.items) < q.max {
		q.items = append(q.items, it)
		return true
	}
	if it.droppable {
		q.dropped++
		return true
	}
	for i, old := range q.items {
		if old.droppable {
			q.dropped++
			copy(q.items[i:], q.items[i+1:])
			q.items[len(q.items)-1] = it
			return true
		}
	}
	return false
}

// take removes every waiting item.
func (q *sendQueue) take() []item {
	q.mu.Lock()
	defer q.mu.Unlock()
	its := q.items
	q.items = nil
	return its
}

// takeDropped returns and resets the count of dropped frames.
func (q *sendQueue) takeDropped() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := q.dropped
	q.dropped = 0
	return n
}
