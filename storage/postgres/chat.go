package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/relais-mssante/relais/storage"
)

// The chat (storage.ChatStore), migration 5 with the audit log (audit.go).
//
// Sequence numbers come from chat_rooms.last_seq. Post locks the room's row
// (SELECT ... FOR NO KEY UPDATE) before anything else it reads, then bumps
// it (UPDATE ... RETURNING) in the transaction that inserts the event: a
// second writer, on this node or another, waits for the first to commit and
// then reads the new value, so a room's events are numbered 1, 2, 3... with
// no gap (a failed transaction rolls its bump back) and in commit order.
// The lock is NO KEY UPDATE, not UPDATE, so that adding members (whose
// foreign key takes KEY SHARE on the room) does not wait for posts.
//
// Search uses only built-in features: search_key holds the current body of
// each message folded by storage.ChatSearchText (words of letters and digits
// separated by single spaces; empty for edit and delete events and deleted
// messages), and search_words, generated from it, is a tsvector whose
// lexemes are exactly those words (array_to_tsvector: no parser, no
// dictionary, no stemming), with a GIN index. A query's folded words become
// prefix terms ('word':*) all required; words longer than searchWordChars
// characters are indexed and queried by their first searchWordChars (a
// lexeme is at most 2047 bytes), and every candidate row is then checked
// against search_key itself: a query finds what the SQLite store's FTS5
// prefix query finds over the same folded text.
//
// Tables, columns and encodings mirror SQLite's migration 6 (times in unix
// nanoseconds, mentions and attachments as JSON text, empty when none);
// chat_notifications.read is BOOLEAN, and chat_messages.search_key /
// search_words are PostgreSQL's own: relais migrate must fill search_key,
// for every row of kind text, system or document with deleted = 0, with
// storage.ChatSearchText(body) (search_words follows by itself).
const schemaChat = `
CREATE TABLE chat_rooms (
	id           BIGSERIAL PRIMARY KEY,
	kind         TEXT NOT NULL,
	name         TEXT NOT NULL,
	patient_ins  TEXT NOT NULL,
	patient_name TEXT NOT NULL,
	created      BIGINT NOT NULL,
	created_by   BIGINT NOT NULL,
	last_seq     BIGINT NOT NULL,
	last_active  BIGINT NOT NULL,
	direct_key   TEXT UNIQUE -- "low:high" account ids for direct rooms, NULL otherwise
);
CREATE INDEX chat_rooms_ins ON chat_rooms(patient_ins) WHERE patient_ins != '';

CREATE TABLE chat_members (
	room     BIGINT NOT NULL REFERENCES chat_rooms(id),
	account  BIGINT NOT NULL,
	role     TEXT NOT NULL,
	added_by BIGINT NOT NULL,
	added    BIGINT NOT NULL,
	read_seq BIGINT NOT NULL,
	read_at  BIGINT NOT NULL,
	PRIMARY KEY (room, account)
);
CREATE INDEX chat_members_account ON chat_members(account, room);

CREATE TABLE chat_messages (
	id           BIGSERIAL PRIMARY KEY,
	room         BIGINT NOT NULL REFERENCES chat_rooms(id),
	seq          BIGINT NOT NULL,
	client_id    TEXT NOT NULL,
	sender       BIGINT NOT NULL,
	kind         TEXT NOT NULL,
	reply_to     BIGINT NOT NULL,
	target       BIGINT NOT NULL,
	mentions     TEXT NOT NULL, -- JSON array, '' when none
	attachments  TEXT NOT NULL, -- JSON array, '' when none
	created      BIGINT NOT NULL,
	edited       BIGINT NOT NULL,
	deleted      BIGINT NOT NULL,
	body         TEXT NOT NULL,
	orig_body    TEXT, -- the body as first posted, once edited
	search_key   TEXT NOT NULL DEFAULT '',
	search_words tsvector GENERATED ALWAYS AS
		(array_to_tsvector(string_to_array(regexp_replace(search_key, '(\S{200})\S+', '\1', 'g'), ' '))) STORED,
	UNIQUE (room, seq)
);
CREATE UNIQUE INDEX chat_messages_client ON chat_messages(room, sender, client_id) WHERE client_id != '';
CREATE INDEX chat_messages_target ON chat_messages(room, target, seq) WHERE target != 0;
CREATE INDEX chat_messages_search ON chat_messages USING gin (search_words);

CREATE TABLE chat_notifications (
	id       BIGSERIAL PRIMARY KEY,
	account  BIGINT NOT NULL,
	kind     TEXT NOT NULL,
	room     BIGINT NOT NULL,
	seq      BIGINT NOT NULL,
	document BIGINT NOT NULL,
	text     TEXT NOT NULL,
	created  BIGINT NOT NULL,
	read     BOOLEAN NOT NULL
);
CREATE INDEX chat_notifications_account ON chat_notifications(account, id);
CREATE INDEX chat_notifications_unread ON chat_notifications(account, id) WHERE NOT read;
` + schemaAudit

// searchWordChars is how many characters of a word the search index keeps
// (the 200 of the regexp in schemaChat).
const searchWordChars = 200

var (
	_ storage.ChatStore  = (*Store)(nil)
	_ storage.AuditStore = (*Store)(nil)
)

// chatQuerier is what the chat reads with: a transaction or the pool.
type chatQuerier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func unixTime(n int64) time.Time { return time.Unix(0, n).UTC() }

// chatRole returns acct's role in room; not a member and no such room are
// the same ErrNotFound.
func chatRole(ctx context.Context, q chatQuerier, room storage.RoomID, acct storage.AccountID) (storage.RoomRole, error) {
	var role string
	err := q.QueryRow(ctx, `SELECT role FROM chat_members WHERE room = $1 AND account = $2`, room, acct).Scan(&role)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("room %d: %w", room, storage.ErrNotFound)
	}
	if err != nil {
		return "", err
	}
	return storage.RoomRole(role), nil
}

// chatAccountsExist reports ErrNotFound for the first of ids that is no
// account.
func chatAccountsExist(ctx context.Context, tx pgx.Tx, ids []storage.AccountID) error {
	list := make([]int64, len(ids))
	for i, id := range ids {
		list[i] = int64(id)
	}
	var missing int64
	err := tx.QueryRow(ctx, `SELECT a FROM unnest($1::bigint[]) WITH ORDINALITY AS x(a, i)
		WHERE NOT EXISTS (SELECT 1 FROM accounts WHERE id = x.a) ORDER BY i LIMIT 1`, list).Scan(&missing)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	return fmt.Errorf("account %d: %w", missing, storage.ErrNotFound)
}

// publishRoom records change for every current member of room.
func publishRoom(ctx context.Context, tx pgx.Tx, ch *changes, room storage.RoomID, change storage.Change) error {
	rows, err := tx.Query(ctx, `SELECT account FROM chat_members WHERE room = $1 ORDER BY account`, room)
	if err != nil {
		return err
	}
	accts, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return err
	}
	for _, a := range accts {
		ch.add(storage.AccountID(a), change)
	}
	return nil
}

const roomCols = `r.id, r.kind, r.name, r.patient_ins, r.patient_name, r.created, r.created_by, r.last_seq`

func scanRoom(row pgx.Row, extra ...any) (storage.Room, error) {
	var r storage.Room
	var id, createdBy, created int64
	var kind string
	dest := append([]any{&id, &kind, &r.Name, &r.PatientINS, &r.PatientName, &created, &createdBy, &r.LastSeq}, extra...)
	if err := row.Scan(dest...); err != nil {
		return r, err
	}
	r.ID, r.Kind, r.CreatedBy, r.Created = storage.RoomID(id), storage.RoomKind(kind), storage.AccountID(createdBy), unixTime(created)
	return r, nil
}

// lockRoom reads a room and locks its row until the transaction ends: the
// posts to the room wait, and so do other member additions.
func lockRoom(ctx context.Context, tx pgx.Tx, id storage.RoomID) (storage.Room, error) {
	r, err := scanRoom(tx.QueryRow(ctx, `SELECT `+roomCols+` FROM chat_rooms r WHERE r.id = $1 FOR NO KEY UPDATE`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return r, fmt.Errorf("room %d: %w", id, storage.ErrNotFound)
	}
	return r, err
}

func insertMembers(ctx context.Context, tx pgx.Tx, room storage.RoomID, accts []storage.AccountID, role storage.RoomRole, by storage.AccountID, now int64) error {
	if len(accts) == 0 {
		return nil
	}
	list := make([]int64, len(accts))
	for i, a := range accts {
		list[i] = int64(a)
	}
	_, err := tx.Exec(ctx, `INSERT INTO chat_members (room, account, role, added_by, added, read_seq, read_at)
		SELECT $1, a, $2, $3, $4, 0, 0 FROM unnest($5::bigint[]) AS a`, room, string(role), by, now, list)
	return err
}

// CreateRoom creates a team or patient room, its creator owner and the
// other members RoleMember.
func (s *Store) CreateRoom(ctx context.Context, nr storage.NewRoom) (storage.Room, error) {
	const op = "create room"
	members, err := storage.CheckNewRoom(&nr)
	if err != nil {
		return storage.Room{}, fmt.Errorf("postgres: %s: %w", op, err)
	}
	now := time.Now().UnixNano()
	room := storage.Room{Kind: nr.Kind, Name: nr.Name, PatientINS: nr.PatientINS, PatientName: nr.PatientName,
		Created: unixTime(now), CreatedBy: nr.CreatedBy}
	all := append([]storage.AccountID{nr.CreatedBy}, members...)
	err = s.write(ctx, op, func(ctx context.Context, tx pgx.Tx, ch *changes) error {
		if err := chatAccountsExist(ctx, tx, all); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `INSERT INTO chat_rooms (kind, name, patient_ins, patient_name, created, created_by,
			last_seq, last_active) VALUES ($1, $2, $3, $4, $5, $6, 0, $5) RETURNING id`,
			string(nr.Kind), nr.Name, nr.PatientINS, nr.PatientName, now, nr.CreatedBy).Scan(&room.ID); err != nil {
			return err
		}
		if err := insertMembers(ctx, tx, room.ID, all[:1], storage.RoleOwner, 0, now); err != nil {
			return err
		}
		if err := insertMembers(ctx, tx, room.ID, members, storage.RoleMember, nr.CreatedBy, now); err != nil {
			return err
		}
		// Each member learns of its own membership (not N changes each).
		for _, a := range all {
			ch.add(a, storage.MemberChange(room.ID, 0, a))
		}
		return nil
	})
	if err != nil {
		return storage.Room{}, err
	}
	return room, nil
}

// DirectRoom returns the direct room of a and b, creating it if needed:
// the unique direct_key makes concurrent first calls, from any node, agree
// on one room.
func (s *Store) DirectRoom(ctx context.Context, a, b storage.AccountID) (storage.Room, error) {
	const op = "direct room"
	key, err := storage.CheckDirectPair(a, b)
	if err != nil {
		return storage.Room{}, fmt.Errorf("postgres: %s: %w", op, err)
	}
	const byKey = `SELECT ` + roomCols + ` FROM chat_rooms r WHERE r.direct_key = $1`
	// The common case, the room exists, needs no write.
	room, err := scanRoom(s.pool.QueryRow(ctx, byKey, key))
	if err == nil {
		return room, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return storage.Room{}, fmt.Errorf("postgres: %s: %w", op, err)
	}
	err = s.write(ctx, op, func(ctx context.Context, tx pgx.Tx, ch *changes) error {
		if err := chatAccountsExist(ctx, tx, []storage.AccountID{a, b}); err != nil {
			return err
		}
		now := time.Now().UnixNano()
		var id storage.RoomID
		err := tx.QueryRow(ctx, `INSERT INTO chat_rooms (kind, name, patient_ins, patient_name, created, created_by,
			last_seq, last_active, direct_key) VALUES ($1, '', '', '', $2, $3, 0, $2, $4)
			ON CONFLICT (direct_key) DO NOTHING RETURNING id`, string(storage.RoomDirect), now, a, key).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			// Created meanwhile (the INSERT waited for it): this
			// statement's snapshot sees it.
			room, err = scanRoom(tx.QueryRow(ctx, byKey, key))
			return err
		}
		if err != nil {
			return err
		}
		room = storage.Room{ID: id, Kind: storage.RoomDirect, Created: unixTime(now), CreatedBy: a}
		// Both plain members: nobody manages a conversation of two, and
		// neither may delete the other's messages.
		if err := insertMembers(ctx, tx, id, []storage.AccountID{a}, storage.RoleMember, 0, now); err != nil {
			return err
		}
		if err := insertMembers(ctx, tx, id, []storage.AccountID{b}, storage.RoleMember, a, now); err != nil {
			return err
		}
		for _, x := range []storage.AccountID{a, b} {
			ch.add(x, storage.MemberChange(id, 0, x))
		}
		return nil
	})
	if err != nil {
		return storage.Room{}, err
	}
	return room, nil
}

// Room returns a room acct is a member of.
func (s *Store) Room(ctx context.Context, acct storage.AccountID, id storage.RoomID) (storage.Room, error) {
	room, err := scanRoom(s.pool.QueryRow(ctx, `SELECT `+roomCols+` FROM chat_members mb JOIN chat_rooms r ON r.id = mb.room
		WHERE mb.room = $1 AND mb.account = $2`, id, acct))
	if errors.Is(err, pgx.ErrNoRows) {
		err = fmt.Errorf("room %d: %w", id, storage.ErrNotFound)
	}
	if err != nil {
		return storage.Room{}, fmt.Errorf("postgres: room: %w", err)
	}
	return room, nil
}

// unreadExpr counts the messages of room mb.room after member mb's marker
// that mb did not send; the (room, seq) index bounds the walk to the
// unread part.
const unreadExpr = `(SELECT count(*) FROM chat_messages m WHERE m.room = mb.room AND m.seq > mb.read_seq
	AND m.kind IN ('text', 'system', 'document') AND m.deleted = 0 AND m.sender != mb.account)`

// Rooms lists acct's rooms, most recently active first.
func (s *Store) Rooms(ctx context.Context, acct storage.AccountID) ([]storage.RoomSummary, error) {
	var out []storage.RoomSummary
	err := s.read(ctx, "rooms", func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+roomCols+`, r.last_active, mb.role, mb.read_seq, `+unreadExpr+`
			FROM chat_members mb JOIN chat_rooms r ON r.id = mb.room
			WHERE mb.account = $1 ORDER BY r.last_active DESC, r.id DESC`, acct)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (storage.RoomSummary, error) {
			var sum storage.RoomSummary
			var active, unread int64
			var role string
			r, err := scanRoom(row, &active, &role, &sum.ReadSeq, &unread)
			sum.Room, sum.LastActive, sum.Role, sum.Unread = r, unixTime(active), storage.RoomRole(role), int(unread)
			return sum, err
		})
		return err
	})
	return out, err
}

// RoomsByINS lists the patient rooms for ins that acct is a member of.
func (s *Store) RoomsByINS(ctx context.Context, acct storage.AccountID, ins string) ([]storage.Room, error) {
	ins = storage.NormINS(ins)
	if ins == "" {
		return nil, fmt.Errorf("postgres: rooms by INS: empty INS: %w", storage.ErrInvalid)
	}
	rows, err := s.pool.Query(ctx, `SELECT `+roomCols+` FROM chat_rooms r JOIN chat_members mb ON mb.room = r.id AND mb.account = $1
		WHERE r.patient_ins = $2 AND r.kind = 'patient' ORDER BY r.id`, acct, ins)
	if err != nil {
		return nil, fmt.Errorf("postgres: rooms by INS: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (storage.Room, error) { return scanRoom(row) })
	if err != nil {
		return nil, fmt.Errorf("postgres: rooms by INS: %w", err)
	}
	return out, nil
}

// AddMember adds acct to the room on behalf of by, a member. The room's
// row is locked, so that concurrent additions count each other against
// MaxRoomMembers.
func (s *Store) AddMember(ctx context.Context, room storage.RoomID, by, acct storage.AccountID, role storage.RoomRole) error {
	const op = "add member"
	if err := storage.CheckNewMember(role, acct); err != nil {
		return fmt.Errorf("postgres: %s: %w", op, err)
	}
	return s.write(ctx, op, func(ctx context.Context, tx pgx.Tx, ch *changes) error {
		if _, err := chatRole(ctx, tx, room, by); err != nil {
			return err
		}
		r, err := lockRoom(ctx, tx, room)
		if err != nil {
			return err
		}
		if err := storage.CheckMembersChange(r); err != nil {
			return err
		}
		if err := chatAccountsExist(ctx, tx, []storage.AccountID{acct}); err != nil {
			return err
		}
		if _, err := chatRole(ctx, tx, room, acct); err == nil {
			return fmt.Errorf("account %d in room %d: %w", acct, room, storage.ErrExists)
		} else if !errors.Is(err, storage.ErrNotFound) {
			return err
		}
		var n int64
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM chat_members WHERE room = $1`, room).Scan(&n); err != nil {
			return err
		}
		if err := storage.CheckRoomSize(room, n); err != nil {
			return err
		}
		if err := insertMembers(ctx, tx, room, []storage.AccountID{acct}, role, by, time.Now().UnixNano()); err != nil {
			return err
		}
		return publishRoom(ctx, tx, ch, room, storage.MemberChange(room, r.LastSeq, acct))
	})
}

// RemoveMember removes acct from the room on behalf of by, a member.
func (s *Store) RemoveMember(ctx context.Context, room storage.RoomID, by, acct storage.AccountID) error {
	const op = "remove member"
	return s.write(ctx, op, func(ctx context.Context, tx pgx.Tx, ch *changes) error {
		if _, err := chatRole(ctx, tx, room, by); err != nil {
			return err
		}
		r, err := scanRoom(tx.QueryRow(ctx, `SELECT `+roomCols+` FROM chat_rooms r WHERE r.id = $1`, room))
		if err != nil {
			return err // the member row above names it
		}
		if err := storage.CheckMembersChange(r); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `DELETE FROM chat_members WHERE room = $1 AND account = $2`, room, acct)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("account %d in room %d: %w", acct, room, storage.ErrNotFound)
		}
		change := storage.MemberChange(room, r.LastSeq, acct)
		if err := publishRoom(ctx, tx, ch, room, change); err != nil {
			return err
		}
		ch.add(acct, change) // the removed member's connections drop the room
		return nil
	})
}

// Members lists the room's members; acct must be one.
func (s *Store) Members(ctx context.Context, room storage.RoomID, acct storage.AccountID) ([]storage.RoomMember, error) {
	var out []storage.RoomMember
	err := s.read(ctx, "members", func(tx pgx.Tx) error {
		if _, err := chatRole(ctx, tx, room, acct); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT account, role, added_by, added FROM chat_members WHERE room = $1 ORDER BY account`, room)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (storage.RoomMember, error) {
			m := storage.RoomMember{Room: room}
			var a, by, added int64
			var role string
			err := row.Scan(&a, &role, &by, &added)
			m.Account, m.Role, m.AddedBy, m.Added = storage.AccountID(a), storage.RoomRole(role), storage.AccountID(by), unixTime(added)
			return m, err
		})
		return err
	})
	return out, err
}

// IsMember is one primary-key lookup, outside any transaction.
func (s *Store) IsMember(ctx context.Context, room storage.RoomID, acct storage.AccountID) (bool, error) {
	var ok bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM chat_members WHERE room = $1 AND account = $2)`, room, acct).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("postgres: is member: %w", err)
	}
	return ok, nil
}

// MemberRole returns acct's role in the room.
func (s *Store) MemberRole(ctx context.Context, room storage.RoomID, acct storage.AccountID) (storage.RoomRole, error) {
	role, err := chatRole(ctx, s.pool, room, acct)
	if err != nil {
		return "", fmt.Errorf("postgres: member role: %w", err)
	}
	return role, nil
}

// msgCols and msgJoin read an event with, for an edit or deletion, whether
// its target is deleted (an edit's body is hidden then).
const (
	msgCols = `m.room, m.seq, m.client_id, m.sender, m.kind, m.body, m.reply_to, m.target, m.mentions, m.attachments,
	m.created, m.edited, m.deleted, COALESCE(t.deleted, 0)`
	msgJoin = ` LEFT JOIN chat_messages t ON m.target != 0 AND t.room = m.room AND t.seq = m.target`
)

func scanChatMessage(row pgx.Row) (storage.ChatMessage, error) {
	var r storage.ChatMessageRow
	if err := row.Scan(r.Dest()...); err != nil {
		return storage.ChatMessage{}, err
	}
	return r.Message()
}

func scanChatMessages(rows pgx.Rows) ([]storage.ChatMessage, error) {
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (storage.ChatMessage, error) { return scanChatMessage(row) })
}

func messageTarget(ctx context.Context, tx pgx.Tx, room storage.RoomID, seq uint64) (storage.ChatTarget, error) {
	var id, sender, deleted int64
	var kind string
	err := tx.QueryRow(ctx, `SELECT id, sender, kind, deleted FROM chat_messages WHERE room = $1 AND seq = $2`, room, seq).
		Scan(&id, &sender, &kind, &deleted)
	if errors.Is(err, pgx.ErrNoRows) {
		return storage.ChatTarget{}, fmt.Errorf("message %d of room %d: %w", seq, room, storage.ErrNotFound)
	}
	if err != nil {
		return storage.ChatTarget{}, err
	}
	return storage.NewChatTarget(room, seq, id, sender, kind, deleted)
}

// Post adds an event to a room (see storage.ChatStore.Post).
func (s *Store) Post(ctx context.Context, m storage.NewChatMessage) (storage.ChatMessage, bool, error) {
	const op = "post"
	if err := storage.CheckPost(&m); err != nil {
		return storage.ChatMessage{}, false, fmt.Errorf("postgres: %s: %w", op, err)
	}
	mentions, attachments, folded, err := storage.EncodePost(&m)
	if err != nil {
		return storage.ChatMessage{}, false, fmt.Errorf("postgres: %s: %w", op, err)
	}
	var out storage.ChatMessage
	var dup bool
	err = s.write(ctx, op, func(ctx context.Context, tx pgx.Tx, ch *changes) error {
		out, dup = storage.ChatMessage{}, false
		// The room lock first: every read below sees the events
		// committed before it, and no other post runs until commit.
		if _, err := lockRoom(ctx, tx, m.Room); err != nil {
			return err
		}
		var role storage.RoomRole
		if m.Sender != 0 {
			var err error
			if role, err = chatRole(ctx, tx, m.Room, m.Sender); err != nil {
				return err
			}
		}
		if m.ClientID != "" {
			got, err := scanChatMessage(tx.QueryRow(ctx, `SELECT `+msgCols+` FROM chat_messages m`+msgJoin+`
				WHERE m.room = $1 AND m.sender = $2 AND m.client_id = $3 AND m.client_id != ''`, m.Room, m.Sender, m.ClientID))
			if err == nil {
				out, dup = got, true
				return nil
			}
			if !errors.Is(err, pgx.ErrNoRows) {
				return err
			}
		}
		target, err := storage.PostTarget(&m, role, func(seq uint64) (storage.ChatTarget, error) {
			return messageTarget(ctx, tx, m.Room, seq)
		})
		if err != nil {
			return err
		}
		now := time.Now().UnixNano()
		var seq uint64
		if err := tx.QueryRow(ctx, `UPDATE chat_rooms SET last_seq = last_seq + 1, last_active = $1 WHERE id = $2 RETURNING last_seq`,
			now, m.Room).Scan(&seq); err != nil {
			return err
		}
		key := ""
		if m.Kind.IsMessage() {
			key = folded
		}
		if _, err := tx.Exec(ctx, `INSERT INTO chat_messages (room, seq, client_id, sender, kind, reply_to, target,
			mentions, attachments, created, edited, deleted, body, search_key)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 0, 0, $11, $12)`,
			m.Room, seq, m.ClientID, m.Sender, string(m.Kind), m.ReplyTo, m.Target, mentions, attachments, now, m.Body, key); err != nil {
			return err
		}
		switch m.Kind {
		case storage.ChatEdit:
			// SET expressions read the row as it was: orig_body keeps the
			// first body.
			if _, err := tx.Exec(ctx, `UPDATE chat_messages SET orig_body = COALESCE(orig_body, body), body = $1, edited = $2,
				search_key = $3 WHERE id = $4`, m.Body, now, folded, target.ID); err != nil {
				return err
			}
		case storage.ChatDelete:
			if _, err := tx.Exec(ctx, `UPDATE chat_messages SET deleted = $1, search_key = '' WHERE id = $2`, now, target.ID); err != nil {
				return err
			}
		}
		var change storage.Change
		out, change = storage.PostedMessage(&m, seq, now)
		return publishRoom(ctx, tx, ch, m.Room, change)
	})
	if err != nil {
		return storage.ChatMessage{}, false, err
	}
	return out, dup, nil
}

// Message returns one event of the room.
func (s *Store) Message(ctx context.Context, room storage.RoomID, acct storage.AccountID, seq uint64) (storage.ChatMessage, error) {
	var out storage.ChatMessage
	err := s.read(ctx, "message", func(tx pgx.Tx) error {
		if _, err := chatRole(ctx, tx, room, acct); err != nil {
			return err
		}
		var err error
		out, err = scanChatMessage(tx.QueryRow(ctx, `SELECT `+msgCols+` FROM chat_messages m`+msgJoin+`
			WHERE m.room = $1 AND m.seq = $2`, room, storage.ClampSeq(seq)))
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("message %d of room %d: %w", seq, room, storage.ErrNotFound)
		}
		return err
	})
	return out, err
}

// messagesPage reads one page of a room's events for a member.
func (s *Store) messagesPage(ctx context.Context, op string, room storage.RoomID, acct storage.AccountID, query string, args ...any) ([]storage.ChatMessage, error) {
	var out []storage.ChatMessage
	err := s.read(ctx, op, func(tx pgx.Tx) error {
		if _, err := chatRole(ctx, tx, room, acct); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, query, args...)
		if err != nil {
			return err
		}
		out, err = scanChatMessages(rows)
		return err
	})
	return out, err
}

// MessagesAfter returns the events after a sequence number, in order.
func (s *Store) MessagesAfter(ctx context.Context, room storage.RoomID, acct storage.AccountID, after uint64, limit int) ([]storage.ChatMessage, error) {
	limit, err := storage.ChatLimit(limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: messages after: %w", err)
	}
	return s.messagesPage(ctx, "messages after", room, acct, `SELECT `+msgCols+` FROM chat_messages m`+msgJoin+`
		WHERE m.room = $1 AND m.seq > $2 ORDER BY m.seq LIMIT $3`, room, storage.ClampSeq(after), limit)
}

// MessagesBefore returns the last events before a sequence number, in order.
func (s *Store) MessagesBefore(ctx context.Context, room storage.RoomID, acct storage.AccountID, before uint64, limit int) ([]storage.ChatMessage, error) {
	limit, err := storage.ChatLimit(limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: messages before: %w", err)
	}
	out, err := s.messagesPage(ctx, "messages before", room, acct, `SELECT `+msgCols+` FROM chat_messages m`+msgJoin+`
		WHERE m.room = $1 AND m.seq < $2 ORDER BY m.seq DESC LIMIT $3`, room, storage.ChatBefore(before), limit)
	slices.Reverse(out)
	return out, err
}

// MessageHistory returns every version of a message.
func (s *Store) MessageHistory(ctx context.Context, room storage.RoomID, acct storage.AccountID, seq uint64) ([]storage.ChatRevision, error) {
	seq = storage.ClampSeq(seq)
	var out []storage.ChatRevision
	err := s.read(ctx, "message history", func(tx pgx.Tx) error {
		if _, err := chatRole(ctx, tx, room, acct); err != nil {
			return err
		}
		var kind, body string
		var sender, created int64
		err := tx.QueryRow(ctx, `SELECT kind, sender, COALESCE(orig_body, body), created FROM chat_messages
			WHERE room = $1 AND seq = $2`, room, seq).Scan(&kind, &sender, &body, &created)
		if errors.Is(err, pgx.ErrNoRows) || err == nil && !storage.ChatKind(kind).IsMessage() {
			return fmt.Errorf("message %d of room %d: %w", seq, room, storage.ErrNotFound)
		}
		if err != nil {
			return err
		}
		first := storage.NewChatRevision(seq, kind, sender, body, created)
		rows, err := tx.Query(ctx, `SELECT seq, kind, sender, body, created FROM chat_messages
			WHERE room = $1 AND target = $2 AND target != 0 ORDER BY seq`, room, seq)
		if err != nil {
			return err
		}
		revs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (storage.ChatRevision, error) {
			var rseq uint64
			err := row.Scan(&rseq, &kind, &sender, &body, &created)
			return storage.NewChatRevision(rseq, kind, sender, body, created), err
		})
		out = append([]storage.ChatRevision{first}, revs...)
		return err
	})
	return out, err
}

// searchQuery turns folded words into a tsquery of prefix terms, all
// required, each cut to what the index keeps (searchWordChars).
func searchQuery(words []string) string {
	terms := make([]string, len(words))
	for i, w := range words {
		if utf8.RuneCountInString(w) > searchWordChars {
			w = string([]rune(w)[:searchWordChars])
		}
		// A quoted lexeme, taken as is (folded words hold letters and
		// digits only; quote anyway).
		w = strings.ReplaceAll(strings.ReplaceAll(w, `\`, `\\`), `'`, `''`)
		terms[i] = `'` + w + `':*`
	}
	return strings.Join(terms, " & ")
}

// SearchMessages searches the messages of acct's rooms (see the top of
// this file).
func (s *Store) SearchMessages(ctx context.Context, acct storage.AccountID, query string, limit int) ([]storage.ChatMessage, error) {
	words, limit, err := storage.CheckChatSearch(query, limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: search messages: %w", err)
	}
	var out []storage.ChatMessage
	err = s.read(ctx, "search messages", func(tx pgx.Tx) error {
		// The tsquery finds the candidates through the GIN index; the
		// strpos test keeps those where every word starts a word of the
		// text (exact for words longer than the index keeps).
		rows, err := tx.Query(ctx, `SELECT `+msgCols+` FROM chat_messages m
			JOIN chat_members mb ON mb.room = m.room AND mb.account = $1`+msgJoin+`
			WHERE m.search_words @@ $2::tsquery AND m.deleted = 0
			AND NOT EXISTS (SELECT 1 FROM unnest($3::text[]) AS w WHERE strpos(' ' || m.search_key, ' ' || w) = 0)
			ORDER BY m.id DESC LIMIT $4`, acct, searchQuery(words), words, limit)
		if err != nil {
			return err
		}
		out, err = scanChatMessages(rows)
		return err
	})
	return out, err
}

// SetReadMarker moves acct's read marker forward.
func (s *Store) SetReadMarker(ctx context.Context, room storage.RoomID, acct storage.AccountID, seq uint64) (uint64, error) {
	const op = "set read marker"
	marker := func(ctx context.Context, q chatQuerier) (cur, last uint64, err error) {
		err = q.QueryRow(ctx, `SELECT mb.read_seq, r.last_seq FROM chat_members mb JOIN chat_rooms r ON r.id = mb.room
			WHERE mb.room = $1 AND mb.account = $2`, room, acct).Scan(&cur, &last)
		if errors.Is(err, pgx.ErrNoRows) {
			err = fmt.Errorf("room %d: %w", room, storage.ErrNotFound)
		}
		return cur, last, err
	}
	// Most calls do not move the marker (a client re-reading): no write.
	cur, last, err := marker(ctx, s.pool)
	if err != nil {
		return 0, fmt.Errorf("postgres: %s: %w", op, err)
	}
	if _, move := storage.ReadMarkerTo(seq, cur, last); !move {
		return cur, nil
	}
	err = s.write(ctx, op, func(ctx context.Context, tx pgx.Tx, ch *changes) error {
		c, last, err := marker(ctx, tx)
		if err != nil {
			return err
		}
		cur = c
		to, move := storage.ReadMarkerTo(seq, c, last)
		if !move {
			return nil
		}
		// The row lock of the UPDATE orders concurrent moves; the marker
		// only goes forward.
		err = tx.QueryRow(ctx, `UPDATE chat_members SET read_seq = $1, read_at = $2
			WHERE room = $3 AND account = $4 AND read_seq < $1 RETURNING read_seq`,
			to, time.Now().UnixNano(), room, acct).Scan(&cur)
		if errors.Is(err, pgx.ErrNoRows) {
			// Moved at least as far meanwhile, or removed.
			cur, _, err = marker(ctx, tx)
			return err
		}
		if err != nil {
			return err
		}
		return publishRoom(ctx, tx, ch, room, storage.ReadChange(room, to, acct))
	})
	return cur, err
}

// ReadMarkers returns every member's read marker.
func (s *Store) ReadMarkers(ctx context.Context, room storage.RoomID, acct storage.AccountID) ([]storage.ReadMarker, error) {
	var out []storage.ReadMarker
	err := s.read(ctx, "read markers", func(tx pgx.Tx) error {
		if _, err := chatRole(ctx, tx, room, acct); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT account, read_seq, read_at FROM chat_members WHERE room = $1 ORDER BY account`, room)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (storage.ReadMarker, error) {
			var m storage.ReadMarker
			var a, at int64
			err := row.Scan(&a, &m.Seq, &at)
			m.Account, m.Updated = storage.AccountID(a), storage.TimeOrZero(at)
			return m, err
		})
		return err
	})
	return out, err
}

// UnreadCounts counts the unread messages of each of acct's rooms.
func (s *Store) UnreadCounts(ctx context.Context, acct storage.AccountID) (map[storage.RoomID]int, error) {
	rows, err := s.pool.Query(ctx, `SELECT mb.room, `+unreadExpr+` FROM chat_members mb WHERE mb.account = $1`, acct)
	if err != nil {
		return nil, fmt.Errorf("postgres: unread counts: %w", err)
	}
	out := make(map[storage.RoomID]int)
	var room, n int64
	_, err = pgx.ForEachRow(rows, []any{&room, &n}, func() error {
		if n > 0 {
			out[storage.RoomID(room)] = int(n)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: unread counts: %w", err)
	}
	return out, nil
}

// Notify appends to an account's notification feed. The account's row is
// locked until commit, so that one account's notification ids increase in
// commit order, whichever node appends them (Notifications pages by id).
func (s *Store) Notify(ctx context.Context, n storage.Notification) (storage.Notification, error) {
	const op = "notify"
	if err := storage.CheckNotification(&n); err != nil {
		return n, fmt.Errorf("postgres: %s: %w", op, err)
	}
	err := s.write(ctx, op, func(ctx context.Context, tx pgx.Tx, ch *changes) error {
		if err := lockAccount(ctx, tx, n.Account); err != nil {
			return err
		}
		if n.Room != 0 {
			if _, err := chatRole(ctx, tx, n.Room, n.Account); err != nil {
				return err
			}
		}
		if n.Document != 0 {
			// The link opens the account's own copy of the document.
			var one int
			err := tx.QueryRow(ctx, `SELECT 1 FROM documents WHERE id = $1 AND account = $2`, n.Document, n.Account).Scan(&one)
			if errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("document %d: %w", n.Document, storage.ErrNotFound)
			}
			if err != nil {
				return err
			}
		}
		if err := tx.QueryRow(ctx, `INSERT INTO chat_notifications (account, kind, room, seq, document, text, created, read)
			VALUES ($1, $2, $3, $4, $5, $6, $7, false) RETURNING id`,
			n.Account, string(n.Kind), n.Room, n.Seq, n.Document, n.Text, n.Created.UnixNano()).Scan(&n.ID); err != nil {
			return err
		}
		ch.add(n.Account, storage.NotificationChange(n))
		return nil
	})
	if err != nil {
		return storage.Notification{}, err
	}
	return n, nil
}

// Notifications returns acct's notifications after an id.
func (s *Store) Notifications(ctx context.Context, acct storage.AccountID, after storage.NotificationID, limit int) ([]storage.Notification, error) {
	limit, err := storage.ChatLimit(limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: notifications: %w", err)
	}
	rows, err := s.pool.Query(ctx, `SELECT id, kind, room, seq, document, text, created, read FROM chat_notifications
		WHERE account = $1 AND id > $2 ORDER BY id LIMIT $3`, acct, after, limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: notifications: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (storage.Notification, error) {
		var r storage.NotificationRow
		err := row.Scan(r.Dest()...)
		return r.Notification(acct), err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: notifications: %w", err)
	}
	return out, nil
}

// UnreadNotifications counts acct's unread notifications.
func (s *Store) UnreadNotifications(ctx context.Context, acct storage.AccountID) (int, error) {
	var n int64
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM chat_notifications WHERE account = $1 AND NOT read`, acct).Scan(&n); err != nil {
		return 0, fmt.Errorf("postgres: unread notifications: %w", err)
	}
	return int(n), nil
}

// MarkNotificationsRead marks acct's notifications up to an id read.
func (s *Store) MarkNotificationsRead(ctx context.Context, acct storage.AccountID, upTo storage.NotificationID) error {
	return s.write(ctx, "mark notifications read", func(ctx context.Context, tx pgx.Tx, _ *changes) error {
		_, err := tx.Exec(ctx, `UPDATE chat_notifications SET read = true WHERE account = $1 AND id <= $2 AND NOT read`, acct, upTo)
		return err
	})
}
