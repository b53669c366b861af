package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/relais-mssante/relais/storage"
)

// The chat (storage.ChatStore) and the audit log (storage.AuditStore),
// tables in migration 6.
//
// Sequence numbers come from chat_rooms.last_seq, bumped by the write
// transaction that inserts the event: the single committer serialises
// writers, and a failed job rolls back to its savepoint with its bump, so a
// room's events are numbered without gaps in commit order.
//
// Search uses SQLite FTS5 (compiled into modernc.org/sqlite): chat_fts is a
// contentless table (contentless_delete=1) over the current body of each
// message, folded by storage.ChatSearchText (lower case, no accents, words
// of letters and digits), whose rowid is the message row's id. A query is
// folded the same way and each word becomes a prefix term, all required.

var (
	_ storage.ChatStore  = (*Store)(nil)
	_ storage.AuditStore = (*Store)(nil)
)

// maxSearchWords bounds the words of a search query (the rest are ignored).
const maxSearchWords = storage.MaxChatSearchWords

// chatRole returns acct's role in room; not a member and no such room are
// the same ErrNotFound.
func chatRole(ctx context.Context, q querier, room storage.RoomID, acct storage.AccountID) (storage.RoomRole, error) {
	var role string
	err := q.QueryRowContext(ctx, `SELECT role FROM chat_members WHERE room = ? AND account = ?`, room, acct).Scan(&role)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("room %d: %w", room, storage.ErrNotFound)
	}
	if err != nil {
		return "", err
	}
	return storage.RoomRole(role), nil
}

// publishRoom records change for every current member of room.
func publishRoom(ctx context.Context, q querier, ch *changes, room storage.RoomID, change storage.Change) error {
	rows, err := q.QueryContext(ctx, `SELECT account FROM chat_members WHERE room = ? ORDER BY account`, room)
	if err != nil {
		return err
	}
	defer rows.Close()
	var accts []storage.AccountID
	for rows.Next() {
		var a storage.AccountID
		if err := rows.Scan(&a); err != nil {
			return err
		}
		accts = append(accts, a)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for _, a := range accts {
		ch.add(a, change)
	}
	return nil
}

const roomCols = `r.id, r.kind, r.name, r.patient_ins, r.patient_name, r.created, r.created_by, r.last_seq`

func scanRoom(row interface{ Scan(...any) error }, extra ...any) (storage.Room, error) {
	var r storage.Room
	var kind string
	var created int64
	dest := append([]any{&r.ID, &kind, &r.Name, &r.PatientINS, &r.PatientName, &created, &r.CreatedBy, &r.LastSeq}, extra...)
	if err := row.Scan(dest...); err != nil {
		return r, err
	}
	r.Kind = storage.RoomKind(kind)
	r.Created = fromUnixNano(created)
	return r, nil
}

func roomByID(ctx context.Context, q querier, id storage.RoomID) (storage.Room, error) {
	r, err := scanRoom(q.QueryRowContext(ctx, `SELECT `+roomCols+` FROM chat_rooms r WHERE r.id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return r, fmt.Errorf("room %d: %w", id, storage.ErrNotFound)
	}
	return r, err
}

// CreateRoom creates a team or patient room, its creator owner and the
// other members RoleMember.
func (s *Store) CreateRoom(ctx context.Context, nr storage.NewRoom) (storage.Room, error) {
	const op = "create room"
	members, err := storage.CheckNewRoom(&nr)
	if err != nil {
		return storage.Room{}, fmt.Errorf("sqlite: %s: %w", op, err)
	}
	now := time.Now()
	room := storage.Room{Kind: nr.Kind, Name: nr.Name, PatientINS: nr.PatientINS, PatientName: nr.PatientName,
		Created: fromUnixNano(now.UnixNano()), CreatedBy: nr.CreatedBy}
	err = s.write(ctx, op, func(ctx context.Context, tx *sql.Tx, ch *changes) error {
		for _, a := range append([]storage.AccountID{nr.CreatedBy}, members...) {
			if err := accountExists(ctx, tx, a); err != nil {
				return err
			}
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO chat_rooms (kind, name, patient_ins, patient_name, created, created_by,
			last_seq, last_active) VALUES (?, ?, ?, ?, ?, ?, 0, ?)`,
			string(nr.Kind), nr.Name, nr.PatientINS, nr.PatientName, now.UnixNano(), nr.CreatedBy, now.UnixNano())
		if err != nil {
			return err
		}
		id, err := res.LastInsertId()
		if err != nil {
			return err
		}
		room.ID = storage.RoomID(id)
		if err := insertMember(ctx, tx, room.ID, nr.CreatedBy, storage.RoleOwner, 0, now); err != nil {
			return err
		}
		for _, m := range members {
			if err := insertMember(ctx, tx, room.ID, m, storage.RoleMember, nr.CreatedBy, now); err != nil {
				return err
			}
		}
		// Each member learns of its own membership (not N changes each).
		for _, a := range append([]storage.AccountID{nr.CreatedBy}, members...) {
			ch.add(a, storage.MemberChange(room.ID, 0, a))
		}
		return nil
	})
	if err != nil {
		return storage.Room{}, err
	}
	return room, nil
}

func insertMember(ctx context.Context, tx *sql.Tx, room storage.RoomID, acct storage.AccountID, role storage.RoomRole, by storage.AccountID, now time.Time) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO chat_members (room, account, role, added_by, added, read_seq, read_at)
		VALUES (?, ?, ?, ?, ?, 0, 0)`, room, acct, string(role), by, now.UnixNano())
	return err
}

// DirectRoom returns the direct room of a and b, creating it if needed.
func (s *Store) DirectRoom(ctx context.Context, a, b storage.AccountID) (storage.Room, error) {
	const op = "direct room"
	key, err := storage.CheckDirectPair(a, b)
	if err != nil {
		return storage.Room{}, fmt.Errorf("sqlite: %s: %w", op, err)
	}
	var room storage.Room
	// The common case, the room exists, needs no write.
	err = s.read(ctx, op, func(tx *sql.Tx) error {
		var err error
		room, err = scanRoom(tx.QueryRowContext(ctx, `SELECT `+roomCols+` FROM chat_rooms r WHERE r.direct_key = ?`, key))
		return err
	})
	if err == nil {
		return room, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return storage.Room{}, err
	}
	err = s.write(ctx, op, func(ctx context.Context, tx *sql.Tx, ch *changes) error {
		var err error
		room, err = scanRoom(tx.QueryRowContext(ctx, `SELECT `+roomCols+` FROM chat_rooms r WHERE r.direct_key = ?`, key))
		if err == nil {
			return nil // created meanwhile
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		for _, x := range []storage.AccountID{a, b} {
			if err := accountExists(ctx, tx, x); err != nil {
				return err
			}
		}
		now := time.Now()
		res, err := tx.ExecContext(ctx, `INSERT INTO chat_rooms (kind, name, patient_ins, patient_name, created, created_by,
			last_seq, last_active, direct_key) VALUES (?, '', '', '', ?, ?, 0, ?, ?)`,
			string(storage.RoomDirect), now.UnixNano(), a, now.UnixNano(), key)
		if err != nil {
			return err
		}
		id, err := res.LastInsertId()
		if err != nil {
			return err
		}
		room = storage.Room{ID: storage.RoomID(id), Kind: storage.RoomDirect, Created: fromUnixNano(now.UnixNano()), CreatedBy: a}
		// Both plain members: nobody manages a conversation of two, and
		// neither may delete the other's messages.
		if err := insertMember(ctx, tx, room.ID, a, storage.RoleMember, 0, now); err != nil {
			return err
		}
		if err := insertMember(ctx, tx, room.ID, b, storage.RoleMember, a, now); err != nil {
			return err
		}
		for _, x := range []storage.AccountID{a, b} {
			ch.add(x, storage.MemberChange(room.ID, 0, x))
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
	var room storage.Room
	err := s.read(ctx, "room", func(tx *sql.Tx) error {
		var err error
		room, err = scanRoom(tx.QueryRowContext(ctx, `SELECT `+roomCols+` FROM chat_members mb JOIN chat_rooms r ON r.id = mb.room
			WHERE mb.room = ? AND mb.account = ?`, id, acct))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("room %d: %w", id, storage.ErrNotFound)
		}
		return err
	})
	return room, err
}

// unreadExpr counts the messages of room r after member mb's marker that mb
// did not send; the (room, seq) index bounds the walk to the unread part.
const unreadExpr = `(SELECT count(*) FROM chat_messages m WHERE m.room = mb.room AND m.seq > mb.read_seq
	AND m.kind IN ('text', 'system', 'document') AND m.deleted = 0 AND m.sender != mb.account)`

// Rooms lists acct's rooms, most recently active first.
func (s *Store) Rooms(ctx context.Context, acct storage.AccountID) ([]storage.RoomSummary, error) {
	var out []storage.RoomSummary
	err := s.read(ctx, "rooms", func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT `+roomCols+`, r.last_active, mb.role, mb.read_seq, `+unreadExpr+`
			FROM chat_members mb JOIN chat_rooms r ON r.id = mb.room
			WHERE mb.account = ? ORDER BY r.last_active DESC, r.id DESC`, acct)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var sum storage.RoomSummary
			var active int64
			var role string
			sum.Room, err = scanRoom(rows, &active, &role, &sum.ReadSeq, &sum.Unread)
			if err != nil {
				return err
			}
			sum.LastActive = fromUnixNano(active)
			sum.Role = storage.RoomRole(role)
			out = append(out, sum)
		}
		return rows.Err()
	})
	return out, err
}

// RoomsByINS lists the patient rooms for ins that acct is a member of.
func (s *Store) RoomsByINS(ctx context.Context, acct storage.AccountID, ins string) ([]storage.Room, error) {
	ins = storage.NormINS(ins)
	if ins == "" {
		return nil, fmt.Errorf("sqlite: rooms by INS: empty INS: %w", storage.ErrInvalid)
	}
	var out []storage.Room
	err := s.read(ctx, "rooms by INS", func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT `+roomCols+` FROM chat_rooms r JOIN chat_members mb ON mb.room = r.id AND mb.account = ?
			WHERE r.patient_ins = ? AND r.kind = 'patient' ORDER BY r.id`, acct, ins)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			r, err := scanRoom(rows)
			if err != nil {
				return err
			}
			out = append(out, r)
		}
		return rows.Err()
	})
	return out, err
}

// AddMember adds acct to the room on behalf of by, a member.
func (s *Store) AddMember(ctx context.Context, room storage.RoomID, by, acct storage.AccountID, role storage.RoomRole) error {
	const op = "add member"
	if err := storage.CheckNewMember(role, acct); err != nil {
		return fmt.Errorf("sqlite: %s: %w", op, err)
	}
	return s.write(ctx, op, func(ctx context.Context, tx *sql.Tx, ch *changes) error {
		if _, err := chatRole(ctx, tx, room, by); err != nil {
			return err
		}
		r, err := roomByID(ctx, tx, room)
		if err != nil {
			return err
		}
		if err := storage.CheckMembersChange(r); err != nil {
			return err
		}
		if err := accountExists(ctx, tx, acct); err != nil {
			return err
		}
		if _, err := chatRole(ctx, tx, room, acct); err == nil {
			return fmt.Errorf("account %d in room %d: %w", acct, room, storage.ErrExists)
		} else if !errors.Is(err, storage.ErrNotFound) {
			return err
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM chat_members WHERE room = ?`, room).Scan(&n); err != nil {
			return err
		}
		if err := storage.CheckRoomSize(room, int64(n)); err != nil {
			return err
		}
		if err := insertMember(ctx, tx, room, acct, role, by, time.Now()); err != nil {
			return err
		}
		return publishRoom(ctx, tx, ch, room, storage.MemberChange(room, r.LastSeq, acct))
	})
}

// RemoveMember removes acct from the room on behalf of by, a member.
func (s *Store) RemoveMember(ctx context.Context, room storage.RoomID, by, acct storage.AccountID) error {
	const op = "remove member"
	return s.write(ctx, op, func(ctx context.Context, tx *sql.Tx, ch *changes) error {
		if _, err := chatRole(ctx, tx, room, by); err != nil {
			return err
		}
		r, err := roomByID(ctx, tx, room)
		if err != nil {
			return err
		}
		if err := storage.CheckMembersChange(r); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM chat_members WHERE room = ? AND account = ?`, room, acct)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
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
	err := s.read(ctx, "members", func(tx *sql.Tx) error {
		if _, err := chatRole(ctx, tx, room, acct); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `SELECT account, role, added_by, added FROM chat_members WHERE room = ? ORDER BY account`, room)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			m := storage.RoomMember{Room: room}
			var role string
			var added int64
			if err := rows.Scan(&m.Account, &role, &m.AddedBy, &added); err != nil {
				return err
			}
			m.Role, m.Added = storage.RoomRole(role), fromUnixNano(added)
			out = append(out, m)
		}
		return rows.Err()
	})
	return out, err
}

// IsMember is one primary-key lookup, outside any transaction.
func (s *Store) IsMember(ctx context.Context, room storage.RoomID, acct storage.AccountID) (bool, error) {
	var one int
	err := s.rdb.QueryRowContext(ctx, `SELECT 1 FROM chat_members WHERE room = ? AND account = ?`, room, acct).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("sqlite: is member: %w", err)
	}
	return true, nil
}

// MemberRole returns acct's role in the room.
func (s *Store) MemberRole(ctx context.Context, room storage.RoomID, acct storage.AccountID) (storage.RoomRole, error) {
	role, err := chatRole(ctx, s.rdb, room, acct)
	if err != nil {
		return "", fmt.Errorf("sqlite: member role: %w", err)
	}
	return role, nil
}

// Queries repeat the WHERE of a partial index (client_id != '', target !=
// 0) so that SQLite may use it: it does not infer it from a bound value.

// msgCols and msgJoin read an event with, for an edit or deletion, whether
// its target is deleted (an edit's body is hidden then).
const (
	msgCols = `m.room, m.seq, m.client_id, m.sender, m.kind, m.body, m.reply_to, m.target, m.mentions, m.attachments,
	m.created, m.edited, m.deleted, COALESCE(t.deleted, 0)`
	msgJoin = ` LEFT JOIN chat_messages t ON m.target != 0 AND t.room = m.room AND t.seq = m.target`
)

func scanChatMessage(row interface{ Scan(...any) error }) (storage.ChatMessage, error) {
	var r storage.ChatMessageRow
	if err := row.Scan(r.Dest()...); err != nil {
		return storage.ChatMessage{}, err
	}
	return r.Message()
}

func scanChatMessages(rows *sql.Rows) ([]storage.ChatMessage, error) {
	defer rows.Close()
	var out []storage.ChatMessage
	for rows.Next() {
		m, err := scanChatMessage(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

func messageTarget(ctx context.Context, q querier, room storage.RoomID, seq uint64) (storage.ChatTarget, error) {
	var id, sender, deleted int64
	var kind string
	err := q.QueryRowContext(ctx, `SELECT id, sender, kind, deleted FROM chat_messages WHERE room = ? AND seq = ?`, room, seq).
		Scan(&id, &sender, &kind, &deleted)
	if errors.Is(err, sql.ErrNoRows) {
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
		return storage.ChatMessage{}, false, fmt.Errorf("sqlite: %s: %w", op, err)
	}
	mentions, attachments, folded, err := storage.EncodePost(&m)
	if err != nil {
		return storage.ChatMessage{}, false, fmt.Errorf("sqlite: %s: %w", op, err)
	}
	var out storage.ChatMessage
	var dup bool
	err = s.write(ctx, op, func(ctx context.Context, tx *sql.Tx, ch *changes) error {
		out, dup = storage.ChatMessage{}, false
		var role storage.RoomRole
		if m.Sender != 0 {
			var err error
			if role, err = chatRole(ctx, tx, m.Room, m.Sender); err != nil {
				return err
			}
		} else if _, err := roomByID(ctx, tx, m.Room); err != nil {
			return err
		}
		if m.ClientID != "" {
			got, err := scanChatMessage(tx.QueryRowContext(ctx, `SELECT `+msgCols+` FROM chat_messages m`+msgJoin+`
				WHERE m.room = ? AND m.sender = ? AND m.client_id = ? AND m.client_id != ''`, m.Room, m.Sender, m.ClientID))
			if err == nil {
				out, dup = got, true
				return nil
			}
			if !errors.Is(err, sql.ErrNoRows) {
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
		if err := tx.QueryRowContext(ctx, `UPDATE chat_rooms SET last_seq = last_seq + 1, last_active = ? WHERE id = ? RETURNING last_seq`,
			now, m.Room).Scan(&seq); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO chat_messages (room, seq, client_id, sender, kind, reply_to, target,
			mentions, attachments, created, edited, deleted, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 0, ?)`,
			m.Room, seq, m.ClientID, m.Sender, string(m.Kind), m.ReplyTo, m.Target, mentions, attachments, now, m.Body)
		if err != nil {
			return err
		}
		id, err := res.LastInsertId()
		if err != nil {
			return err
		}
		switch m.Kind {
		case storage.ChatEdit:
			// SET expressions read the row as it was: orig_body keeps the
			// first body.
			if _, err := tx.ExecContext(ctx, `UPDATE chat_messages SET orig_body = COALESCE(orig_body, body), body = ?, edited = ?
				WHERE id = ?`, m.Body, now, target.ID); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `DELETE FROM chat_fts WHERE rowid = ?`, target.ID); err != nil {
				return err
			}
			if folded != "" {
				if _, err := tx.ExecContext(ctx, `INSERT INTO chat_fts (rowid, body) VALUES (?, ?)`, target.ID, folded); err != nil {
					return err
				}
			}
		case storage.ChatDelete:
			if _, err := tx.ExecContext(ctx, `UPDATE chat_messages SET deleted = ? WHERE id = ?`, now, target.ID); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `DELETE FROM chat_fts WHERE rowid = ?`, target.ID); err != nil {
				return err
			}
		default:
			if folded != "" {
				if _, err := tx.ExecContext(ctx, `INSERT INTO chat_fts (rowid, body) VALUES (?, ?)`, id, folded); err != nil {
					return err
				}
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
	err := s.read(ctx, "message", func(tx *sql.Tx) error {
		if _, err := chatRole(ctx, tx, room, acct); err != nil {
			return err
		}
		var err error
		out, err = scanChatMessage(tx.QueryRowContext(ctx, `SELECT `+msgCols+` FROM chat_messages m`+msgJoin+`
			WHERE m.room = ? AND m.seq = ?`, room, storage.ClampSeq(seq)))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("message %d of room %d: %w", seq, room, storage.ErrNotFound)
		}
		return err
	})
	return out, err
}

// MessagesAfter returns the events after a sequence number, in order.
func (s *Store) MessagesAfter(ctx context.Context, room storage.RoomID, acct storage.AccountID, after uint64, limit int) ([]storage.ChatMessage, error) {
	limit, err := storage.ChatLimit(limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: messages after: %w", err)
	}
	var out []storage.ChatMessage
	err = s.read(ctx, "messages after", func(tx *sql.Tx) error {
		if _, err := chatRole(ctx, tx, room, acct); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `SELECT `+msgCols+` FROM chat_messages m`+msgJoin+`
			WHERE m.room = ? AND m.seq > ? ORDER BY m.seq LIMIT ?`, room, storage.ClampSeq(after), limit)
		if err != nil {
			return err
		}
		out, err = scanChatMessages(rows)
		return err
	})
	return out, err
}

// MessagesBefore returns the last events before a sequence number, in order.
func (s *Store) MessagesBefore(ctx context.Context, room storage.RoomID, acct storage.AccountID, before uint64, limit int) ([]storage.ChatMessage, error) {
	limit, err := storage.ChatLimit(limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: messages before: %w", err)
	}
	before = storage.ChatBefore(before)
	var out []storage.ChatMessage
	err = s.read(ctx, "messages before", func(tx *sql.Tx) error {
		if _, err := chatRole(ctx, tx, room, acct); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `SELECT `+msgCols+` FROM chat_messages m`+msgJoin+`
			WHERE m.room = ? AND m.seq < ? ORDER BY m.seq DESC LIMIT ?`, room, before, limit)
		if err != nil {
			return err
		}
		out, err = scanChatMessages(rows)
		return err
	})
	slices.Reverse(out)
	return out, err
}

// MessageHistory returns every version of a message.
func (s *Store) MessageHistory(ctx context.Context, room storage.RoomID, acct storage.AccountID, seq uint64) ([]storage.ChatRevision, error) {
	seq = storage.ClampSeq(seq)
	var out []storage.ChatRevision
	err := s.read(ctx, "message history", func(tx *sql.Tx) error {
		if _, err := chatRole(ctx, tx, room, acct); err != nil {
			return err
		}
		var kind, body string
		var sender, created int64
		err := tx.QueryRowContext(ctx, `SELECT kind, sender, COALESCE(orig_body, body), created FROM chat_messages
			WHERE room = ? AND seq = ?`, room, seq).Scan(&kind, &sender, &body, &created)
		if errors.Is(err, sql.ErrNoRows) || err == nil && !storage.ChatKind(kind).IsMessage() {
			return fmt.Errorf("message %d of room %d: %w", seq, room, storage.ErrNotFound)
		}
		if err != nil {
			return err
		}
		out = append(out, storage.NewChatRevision(seq, kind, sender, body, created))
		rows, err := tx.QueryContext(ctx, `SELECT seq, kind, sender, body, created FROM chat_messages
			WHERE room = ? AND target = ? AND target != 0 ORDER BY seq`, room, seq)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var rseq uint64
			if err := rows.Scan(&rseq, &kind, &sender, &body, &created); err != nil {
				return err
			}
			out = append(out, storage.NewChatRevision(rseq, kind, sender, body, created))
		}
		return rows.Err()
	})
	return out, err
}

// ftsQuery turns a user's query into an FTS5 query: every folded word, as
// a quoted prefix term, all required.
func ftsQuery(query string) string { return ftsTerms(storage.ChatSearchWords(query)) }

// ftsTerms is ftsQuery of already folded words (storage.ChatSearchWords).
func ftsTerms(words []string) string {
	terms := make([]string, len(words))
	for i, w := range words {
		terms[i] = `"` + strings.ReplaceAll(w, `"`, `""`) + `"*`
	}
	return strings.Join(terms, " AND ")
}

// SearchMessages searches the messages of acct's rooms (FTS5, see above).
func (s *Store) SearchMessages(ctx context.Context, acct storage.AccountID, query string, limit int) ([]storage.ChatMessage, error) {
	words, limit, err := storage.CheckChatSearch(query, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: search messages: %w", err)
	}
	q := ftsTerms(words)
	var out []storage.ChatMessage
	err = s.read(ctx, "search messages", func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT `+msgCols+` FROM chat_fts f
			JOIN chat_messages m ON m.id = f.rowid
			JOIN chat_members mb ON mb.room = m.room AND mb.account = ?`+msgJoin+`
			WHERE chat_fts MATCH ? AND m.deleted = 0 ORDER BY m.id DESC LIMIT ?`, acct, q, limit)
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
	marker := func(ctx context.Context, q querier) (cur, last uint64, err error) {
		err = q.QueryRowContext(ctx, `SELECT mb.read_seq, r.last_seq FROM chat_members mb JOIN chat_rooms r ON r.id = mb.room
			WHERE mb.room = ? AND mb.account = ?`, room, acct).Scan(&cur, &last)
		if errors.Is(err, sql.ErrNoRows) {
			err = fmt.Errorf("room %d: %w", room, storage.ErrNotFound)
		}
		return cur, last, err
	}
	// Most calls do not move the marker (a client re-reading): no write.
	var cur uint64
	err := s.read(ctx, op, func(tx *sql.Tx) error {
		var last uint64
		var err error
		cur, last, err = marker(ctx, tx)
		if _, move := storage.ReadMarkerTo(seq, cur, last); err == nil && !move {
			seq = 0
		}
		return err
	})
	if err != nil || seq == 0 {
		return cur, err
	}
	err = s.write(ctx, op, func(ctx context.Context, tx *sql.Tx, ch *changes) error {
		c, last, err := marker(ctx, tx)
		if err != nil {
			return err
		}
		cur = c
		to, move := storage.ReadMarkerTo(seq, c, last)
		if !move {
			return nil
		}
		if _, err := tx.ExecContext(ctx, `UPDATE chat_members SET read_seq = ?, read_at = ? WHERE room = ? AND account = ?`,
			to, time.Now().UnixNano(), room, acct); err != nil {
			return err
		}
		cur = to
		return publishRoom(ctx, tx, ch, room, storage.ReadChange(room, to, acct))
	})
	return cur, err
}

// ReadMarkers returns every member's read marker.
func (s *Store) ReadMarkers(ctx context.Context, room storage.RoomID, acct storage.AccountID) ([]storage.ReadMarker, error) {
	var out []storage.ReadMarker
	err := s.read(ctx, "read markers", func(tx *sql.Tx) error {
		if _, err := chatRole(ctx, tx, room, acct); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `SELECT account, read_seq, read_at FROM chat_members WHERE room = ? ORDER BY account`, room)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var m storage.ReadMarker
			var at int64
			if err := rows.Scan(&m.Account, &m.Seq, &at); err != nil {
				return err
			}
			m.Updated = timeOrZero(at)
			out = append(out, m)
		}
		return rows.Err()
	})
	return out, err
}

// UnreadCounts counts the unread messages of each of acct's rooms.
func (s *Store) UnreadCounts(ctx context.Context, acct storage.AccountID) (map[storage.RoomID]int, error) {
	out := make(map[storage.RoomID]int)
	err := s.read(ctx, "unread counts", func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT mb.room, `+unreadExpr+` FROM chat_members mb WHERE mb.account = ?`, acct)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var room storage.RoomID
			var n int
			if err := rows.Scan(&room, &n); err != nil {
				return err
			}
			if n > 0 {
				out[room] = n
			}
		}
		return rows.Err()
	})
	return out, err
}

// Notify appends to an account's notification feed.
func (s *Store) Notify(ctx context.Context, n storage.Notification) (storage.Notification, error) {
	const op = "notify"
	if err := storage.CheckNotification(&n); err != nil {
		return n, fmt.Errorf("sqlite: %s: %w", op, err)
	}
	err := s.write(ctx, op, func(ctx context.Context, tx *sql.Tx, ch *changes) error {
		if err := accountExists(ctx, tx, n.Account); err != nil {
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
			err := tx.QueryRowContext(ctx, `SELECT 1 FROM documents WHERE id = ? AND account = ?`, n.Document, n.Account).Scan(&one)
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("document %d: %w", n.Document, storage.ErrNotFound)
			}
			if err != nil {
				return err
			}
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO chat_notifications (account, kind, room, seq, document, text, created, read)
			VALUES (?, ?, ?, ?, ?, ?, ?, 0)`, n.Account, string(n.Kind), n.Room, n.Seq, n.Document, n.Text, n.Created.UnixNano())
		if err != nil {
			return err
		}
		id, err := res.LastInsertId()
		if err != nil {
			return err
		}
		n.ID = storage.NotificationID(id)
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
		return nil, fmt.Errorf("sqlite: notifications: %w", err)
	}
	var out []storage.Notification
	err = s.read(ctx, "notifications", func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT id, kind, room, seq, document, text, created, read FROM chat_notifications
			WHERE account = ? AND id > ? ORDER BY id LIMIT ?`, acct, after, limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var r storage.NotificationRow
			if err := rows.Scan(r.Dest()...); err != nil {
				return err
			}
			out = append(out, r.Notification(acct))
		}
		return rows.Err()
	})
	return out, err
}

// UnreadNotifications counts acct's unread notifications.
func (s *Store) UnreadNotifications(ctx context.Context, acct storage.AccountID) (int, error) {
	var n int
	if err := s.rdb.QueryRowContext(ctx, `SELECT count(*) FROM chat_notifications WHERE account = ? AND read = 0`, acct).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite: unread notifications: %w", err)
	}
	return n, nil
}

// MarkNotificationsRead marks acct's notifications up to an id read.
func (s *Store) MarkNotificationsRead(ctx context.Context, acct storage.AccountID, upTo storage.NotificationID) error {
	return s.write(ctx, "mark notifications read", func(ctx context.Context, tx *sql.Tx, _ *changes) error {
		_, err := tx.ExecContext(ctx, `UPDATE chat_notifications SET read = 1 WHERE account = ? AND id <= ? AND read = 0`, acct, upTo)
		return err
	})
}

// AppendAudit appends an entry to the audit log.
func (s *Store) AppendAudit(ctx context.Context, e storage.AuditEntry) (storage.AuditID, error) {
	if err := storage.CheckAuditEntry(&e); err != nil {
		return 0, fmt.Errorf("sqlite: append audit: %w", err)
	}
	var id storage.AuditID
	err := s.write(ctx, "append audit", func(ctx context.Context, tx *sql.Tx, _ *changes) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO audit_log (time, account, action, object, outcome, detail) VALUES (?, ?, ?, ?, ?, ?)`,
			e.Time.UnixNano(), e.Account, e.Action, e.Object, e.Outcome, e.Detail)
		if err != nil {
			return err
		}
		n, err := res.LastInsertId()
		id = storage.AuditID(n)
		return err
	})
	return id, err
}

// Audit reads the audit log.
func (s *Store) Audit(ctx context.Context, f storage.AuditFilter) ([]storage.AuditEntry, error) {
	var where []string
	var args []any
	if f.Account != 0 {
		where, args = append(where, "account = ?"), append(args, f.Account)
	}
	if f.Action != "" {
		where, args = append(where, "action = ?"), append(args, f.Action)
	}
	if f.Outcome != "" {
		where, args = append(where, "outcome = ?"), append(args, f.Outcome)
	}
	if !f.Since.IsZero() {
		where, args = append(where, "time >= ?"), append(args, f.Since.UnixNano())
	}
	if !f.Until.IsZero() {
		where, args = append(where, "time < ?"), append(args, f.Until.UnixNano())
	}
	if f.AfterID > 0 {
		where, args = append(where, "id > ?"), append(args, f.AfterID)
	}
	limit := storage.AuditLimit(f.Limit)
	q := `SELECT id, time, account, action, object, outcome, detail FROM audit_log`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY id LIMIT ?"
	args = append(args, limit)
	var out []storage.AuditEntry
	err := s.read(ctx, "audit", func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var e storage.AuditEntry
			var at int64
			if err := rows.Scan(&e.ID, &at, &e.Account, &e.Action, &e.Object, &e.Outcome, &e.Detail); err != nil {
				return err
			}
			e.Time = fromUnixNano(at)
			out = append(out, e)
		}
		return rows.Err()
	})
	return out, err
}
