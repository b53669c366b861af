// Package storage defines what Relais persists and the contract every store
// implementation honours: domains, accounts, mailboxes with persistent
// UIDVALIDITY/UIDNEXT/HIGHESTMODSEQ (RFC 9051 2.3.1.1, RFC 7162 3.1), messages
// kept as received plus a parsed summary, flags, subscriptions, and an
// ordered per-account change feed published after commit.
//
// Implementations live in subpackages (storage/sqlite, later storage/postgres)
// and are checked by the conformance suite in storage/storagetest. Callers
// declare the small interfaces they need; Store is the whole contract that
// implementations satisfy and the suite exercises.
//
// Every method that reads or writes user data takes the AccountID of the
// authenticated account, so that a query cannot forget its scope.
package storage

import (
	"context"
	"errors"
	"time"
)

// Errors returned by every implementation; wrap them with context and test
// with errors.Is.
var (
	ErrNotFound  = errors.New("storage: not found")
	ErrExists    = errors.New("storage: already exists")
	ErrInvalid   = errors.New("storage: invalid argument")
	ErrForbidden = errors.New("storage: operation not allowed") // e.g. deleting INBOX
	ErrTooLarge  = errors.New("storage: too large")
)

// AccountID identifies an account; MailboxID a mailbox (globally unique).
type (
	AccountID int64
	MailboxID int64
)

// Domain is a mail domain served by this installation.
type Domain struct {
	Name    string // lower-case, IDNA A-label form
	Created time.Time
}

// Account is a local mailbox owner (a practitioner, an organisation, a
// piece of hospital software).
type Account struct {
	ID           AccountID
	Address      string // canonical form: local part as given, domain lower-case
	Name         string // display name
	PasswordHash string // PHC string (argon2id), never logged
	Created      time.Time
}

// Special-use attributes, RFC 6154 2.
const (
	SpecialUseNone    = ""
	SpecialUseSent    = `\Sent`
	SpecialUseDrafts  = `\Drafts`
	SpecialUseTrash   = `\Trash`
	SpecialUseJunk    = `\Junk`
	SpecialUseArchive = `\Archive`
	SpecialUseAll     = `\All`
	SpecialUseFlagged = `\Flagged`
)

// DefaultMailboxes are created with every account, subscribed.
var DefaultMailboxes = []struct{ Name, SpecialUse string }{
	{"INBOX", SpecialUseNone},
	{"Sent", SpecialUseSent},
	{"Drafts", SpecialUseDrafts},
	{"Trash", SpecialUseTrash},
	{"Junk", SpecialUseJunk},
	{"Archive", SpecialUseArchive},
}

// MailboxDelimiter separates levels of mailbox names.
const MailboxDelimiter = '/'

// Mailbox is a folder of an account.
type Mailbox struct {
	ID            MailboxID
	Account       AccountID
	Name          string // full path with MailboxDelimiter; "INBOX" is always upper-case
	SpecialUse    string
	UIDValidity   uint32 // never reused for a name: a recreated mailbox gets a new one
	UIDNext       uint32 // never goes backwards
	HighestModSeq uint64 // never goes backwards
	Subscribed    bool
}

// MailboxCounts is what STATUS reports.
type MailboxCounts struct {
	Messages uint32
	Unseen   uint32 // messages without \Seen
	Deleted  uint32 // messages with \Deleted
	Size     int64  // sum of message sizes, RFC 8438
}

// System flags, RFC 9051 2.3.2. Stored and returned with this exact case;
// keywords are stored as given and compared case-insensitively.
const (
	FlagSeen     = `\Seen`
	FlagAnswered = `\Answered`
	FlagFlagged  = `\Flagged`
	FlagDeleted  = `\Deleted`
	FlagDraft    = `\Draft`
)

// NewMessage is a message to store: the raw RFC 5322 bytes exactly as
// received, never rewritten.
type NewMessage struct {
	Raw          []byte
	Flags        []string
	InternalDate time.Time // zero means now
}

// MessageInfo is everything FETCH needs without reading the raw bytes.
type MessageInfo struct {
	UID          uint32
	ModSeq       uint64
	Flags        []string
	InternalDate time.Time
	Size         int64
	// Summary is the parsed summary (see package storage/summary), encoded;
	// implementations store it at insert time and return it untouched.
	Summary []byte
}

// Recipient is one local delivery of a message.
type Recipient struct {
	Account AccountID
	Mailbox string // usually "INBOX"
	// SpecialUse, when set, sends the copy to the account's mailbox with
	// that attribute (RFC 6154), whatever the user renamed it to; when the
	// account has none, Mailbox is used, and created with the attribute if
	// it is missing. The sender's Sent copy uses it.
	SpecialUse string
	Flags      []string
}

// Delivered tells where one Recipient's copy landed.
type Delivered struct {
	Account     AccountID
	Mailbox     MailboxID
	UIDValidity uint32
	UID         uint32
}

// FlagOp is how StoreFlags changes flags (RFC 9051 6.4.6).
type FlagOp int

const (
	FlagsSet FlagOp = iota
	FlagsAdd
	FlagsRemove
)

// FlagUpdate reports a message whose flags StoreFlags changed.
type FlagUpdate struct {
	UID    uint32
	ModSeq uint64
	Flags  []string
}

// CopyResult is COPYUID/MOVE's answer (RFC 4315 3): source UIDs and the
// new UIDs in the destination, in the same order.
type CopyResult struct {
	UIDValidity uint32 // of the destination
	SourceUIDs  []uint32
	DestUIDs    []uint32
}

// Store is the whole persistence contract. Every mutating method commits
// durably (fsync, WAL) before it returns nil, then publishes its changes on
// the feed in commit order.
type Store interface {
	// Domains.
	AddDomain(ctx context.Context, name string) (Domain, error) // ErrExists
	Domains(ctx context.Context) ([]Domain, error)
	HasDomain(ctx context.Context, name string) (bool, error)

	// Accounts. CreateAccount also creates DefaultMailboxes; its domain must
	// exist (ErrNotFound otherwise), its address must be new (ErrExists).
	CreateAccount(ctx context.Context, address, name, passwordHash string) (Account, error)
	AccountByAddress(ctx context.Context, address string) (Account, error) // case-insensitive on the domain and the local part
	Accounts(ctx context.Context) ([]Account, error)
	SetPasswordHash(ctx context.Context, id AccountID, passwordHash string) error

	// Mailboxes. Names are matched case-sensitively except INBOX, which is
	// case-insensitive (RFC 9051 5.1). Creating "a/b/c" creates missing
	// parents. Deleting INBOX is ErrForbidden; deleting a mailbox that has
	// children removes only that mailbox (RFC 9051 6.3.9).
	Mailboxes(ctx context.Context, acct AccountID) ([]Mailbox, error) // sorted by name
	MailboxByName(ctx context.Context, acct AccountID, name string) (Mailbox, error)
	CreateMailbox(ctx context.Context, acct AccountID, name, specialUse string) (Mailbox, error)
	DeleteMailbox(ctx context.Context, acct AccountID, name string) error
	RenameMailbox(ctx context.Context, acct AccountID, from, to string) error // RFC 9051 6.3.6, INBOX rename moves its messages
	SetSubscribed(ctx context.Context, acct AccountID, name string, subscribed bool) error
	MailboxCounts(ctx context.Context, acct AccountID, mbox MailboxID) (MailboxCounts, error)

	// Messages. Append stores one message in one mailbox (IMAP APPEND).
	Append(ctx context.Context, acct AccountID, mailbox string, msg NewMessage) (Delivered, error)
	// Deliver stores one message for several recipients in one transaction
	// (SMTP DATA: every local recipient, plus the sender's Sent copy):
	// either every copy is committed or none.
	Deliver(ctx context.Context, raw []byte, internalDate time.Time, rcpts []Recipient) ([]Delivered, error)
	// Messages lists a mailbox in UID order (the sequence numbers are the
	// positions in this list).
	Messages(ctx context.Context, acct AccountID, mbox MailboxID) ([]MessageInfo, error)
	// MessageIndex lists a mailbox like Messages but with Summary nil: it
	// reads UID, ModSeq, Flags, InternalDate and Size only, cheaply enough
	// for SELECT and SEARCH on large mailboxes.
	MessageIndex(ctx context.Context, acct AccountID, mbox MailboxID) ([]MessageInfo, error)
	// MessagesByUID returns the listed UIDs that still exist, in UID order.
	MessagesByUID(ctx context.Context, acct AccountID, mbox MailboxID, uids []uint32) ([]MessageInfo, error)
	// RawMessage returns the bytes as received.
	RawMessage(ctx context.Context, acct AccountID, mbox MailboxID, uid uint32) ([]byte, error)
	// SearchText returns the message's text for TEXT/BODY search: decoded
	// header values and text parts, folded by summary.Fold.
	SearchText(ctx context.Context, acct AccountID, mbox MailboxID, uid uint32) (header, body string, err error)
	// StoreFlags changes flags; unchangedSince > 0 applies RFC 7162
	// CONDSTORE: messages whose modseq is higher are left alone and returned
	// in failed.
	StoreFlags(ctx context.Context, acct AccountID, mbox MailboxID, uids []uint32, op FlagOp, flags []string, unchangedSince uint64) (updated []FlagUpdate, failed []uint32, err error)
	// Expunge removes the listed messages that carry \Deleted (all such
	// messages when uids is nil) and returns the removed UIDs in order.
	Expunge(ctx context.Context, acct AccountID, mbox MailboxID, uids []uint32) ([]uint32, error)
	Copy(ctx context.Context, acct AccountID, from MailboxID, uids []uint32, to string) (CopyResult, error)
	// Move is atomic: copy, then expunge from the source, one transaction
	// (RFC 6851).
	Move(ctx context.Context, acct AccountID, from MailboxID, uids []uint32, to string) (CopyResult, error)

	// Subscribe starts reading the account's change feed. Changes committed
	// after Subscribe returns are delivered, in commit order.
	Subscribe(acct AccountID) *Subscription

	// The directory (directory.go).
	DirectoryStore

	// The outbound queue and delivery status (queue.go).
	QueueStore

	// Structured documents and API tokens (documents.go).
	DocumentStore

	// The chat and the audit log (chat.go).
	ChatStore

	Close() error
}
