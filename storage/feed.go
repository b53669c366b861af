package storage

import "sync"

// ChangeKind says what a Change is about.
type ChangeKind int

const (
	ChangeMessageAdded ChangeKind = iota + 1
	ChangeFlags
	ChangeExpunged
	ChangeMailboxCreated
	ChangeMailboxDeleted
	ChangeMailboxRenamed
	// ChangeDocumentReceived: a structured document was recorded for a
	// delivered message (Document, Mailbox, UID).
	ChangeDocumentReceived
	// ChangeChat: a room changed (Room, Seq, Chat, Account): published on
	// the feed of every member of the room after the commit, and on the
	// feed of a member just removed. Chat says what changed:
	// ChatChangeEvent (an event was added: Seq is its sequence number,
	// Account its sender, 0 for Relais),
	// ChatChangeRead (Account's read marker moved to Seq),
	// ChatChangeMember (Account was added or removed; Seq is the room's
	// LastSeq; when a room is created, each member gets only the change
	// about itself). A reader that needs more reads the store, scoped to its
	// account, and so sees a removal at once.
	ChangeChat
	// ChangeChatNotification: Notification was appended to the account's
	// notification feed (Room and Seq copied from it).
	ChangeChatNotification
)

// ChatChange says what a ChangeChat is about.
type ChatChange int

const (
	ChatChangeEvent ChatChange = iota + 1
	ChatChangeRead
	ChatChangeMember
)

// Change is one committed modification of an account's data.
type Change struct {
	Kind    ChangeKind
	Mailbox MailboxID
	UID     uint32   // message changes
	ModSeq  uint64   // message changes
	Flags   []string // ChangeMessageAdded, ChangeFlags
	Name    string   // mailbox changes: the (new) name
	// Document is the ChangeDocumentReceived's record.
	Document DocumentID
	// Chat changes (ChangeChat, ChangeChatNotification).
	Room         RoomID
	Seq          uint64
	Chat         ChatChange
	Account      AccountID // ChatChangeEvent: the sender; ChatChangeRead: whose marker; ChatChangeMember: which member
	Notification NotificationID
}

// DefaultBacklog is how many changes a subscriber may leave unread before it
// is marked overflowed.
const DefaultBacklog = 10000

// Feed fans committed changes out to the subscribers of each account. It is
// the in-process half of the change feed: implementations call Publish after
// each commit, in commit order, and may bridge it across nodes.
type Feed struct {
	mu      sync.Mutex
	backlog int
	subs    map[AccountID]map[*Subscription]struct{}
}

// NewFeed returns a Feed whose subscribers overflow after backlog unread
// changes (DefaultBacklog when backlog <= 0).
func NewFeed(backlog int) *Feed {
	if backlog <= 0 {
		backlog = DefaultBacklog
	}
	return &Feed{backlog: backlog, subs: make(map[AccountID]map[*Subscription]struct{})}
}

// Subscribe registers a reader of the account's changes.
func (f *Feed) Subscribe(acct AccountID) *Subscription {
	s := &Subscription{feed: f, acct: acct, ready: make(chan struct{}, 1), max: f.backlog}
	f.mu.Lock()
	defer f.mu.Unlock()
	m := f.subs[acct]
	if m == nil {
		m = make(map[*Subscription]struct{})
		f.subs[acct] = m
	}
	m[s] = struct{}{}
	return s
}

// Publish hands changes (one committed transaction's worth, in order) to
// every subscriber of the account. It never blocks.
func (f *Feed) Publish(acct AccountID, changes ...Change) {
	if len(changes) == 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for s := range f.subs[acct] {
		s.push(changes)
	}
}

func (f *Feed) unsubscribe(s *Subscription) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if m := f.subs[s.acct]; m != nil {
		delete(m, s)
		if len(m) == 0 {
			delete(f.subs, s.acct)
		}
	}
}

// Subscription is one reader's position in an account's feed.
type Subscription struct {
	feed  *Feed
	acct  AccountID
	ready chan struct{}
	max   int

	mu         sync.Mutex
	pending    []Change
	overflowed bool
	closed     bool
}

func (s *Subscription) push(changes []Change) {
	s.mu.Lock()
	if !s.closed && !s.overflowed {
		if len(s.pending)+len(changes) > s.max {
			s.overflowed = true
			s.pending = nil
		} else {
			s.pending = append(s.pending, changes...)
		}
	}
	s.mu.Unlock()
	select {
	case s.ready <- struct{}{}:
	default:
	}
}

// Ready is signalled (without blocking the publisher) when changes may be
// waiting; call Next to take them.
func (s *Subscription) Ready() <-chan struct{} { return s.ready }

// Next takes the pending changes. overflowed reports that changes were lost
// because the reader fell too far behind: it must resynchronise from the
// store, after which the subscription carries on from there.
func (s *Subscription) Next() (changes []Change, overflowed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	changes, overflowed = s.pending, s.overflowed
	s.pending, s.overflowed = nil, false
	return changes, overflowed
}

// Close stops the subscription.
func (s *Subscription) Close() {
	s.mu.Lock()
	already := s.closed
	s.closed = true
	s.pending = nil
	s.mu.Unlock()
	if !already {
		s.feed.unsubscribe(s)
	}
}

// Lost marks every subscriber overflowed: changes may have been missed (the
// link that brings other nodes' changes was down), so every reader must
// resynchronise from the store.
func (f *Feed) Lost() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, m := range f.subs {
		for s := range m {
			s.lose()
		}
	}
}

func (s *Subscription) lose() {
	s.mu.Lock()
	if !s.closed {
		s.overflowed = true
		s.pending = nil
	}
	s.mu.Unlock()
	select {
	case s.ready <- struct{}{}:
	default:
	}
}
