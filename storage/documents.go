package storage

import (
	"context"
	"time"
)

// Structured documents (a discharge letter as CDA, in an IHE XDM package)
// found in delivered messages, the API tokens hospital software sends them
// with, and the documents sent through the API.

// DocumentID identifies a received structured document.
type DocumentID int64

// DocumentRecord is one structured document of one delivered message copy:
// what package document extracted from its CDA header, and whether it
// passed the MSSanté rules.
type DocumentRecord struct {
	ID          DocumentID // assigned by AddDocuments
	Account     AccountID  // the recipient, owner of the copy
	Mailbox     MailboxID
	UID         uint32
	MessageID   string // Message-ID of the mail, without <>
	Recipient   string // the recipient's address
	PatientINS  string // the INS (NIR or NIA) as written, "" when none
	INSKind     string // "NIR", "NIA", "NIR-test", "NIR-demo", ""
	PatientName string // family and given names, for display
	TypeCode    string // LOINC document type
	TypeDisplay string
	Title       string
	AuthorID    string // RPPS ("8"+number) when given
	AuthorName  string
	Custodian   string
	Valid       bool
	Problems    string // why it is not valid, human readable ("903 INS absent; ...")
	Metadata    []byte // the full extraction, JSON, at most 1 MiB
	Received    time.Time
}

// APIToken is a bearer token hospital software uses on the documents API,
// on behalf of an account. Only the SHA-256 of the secret is stored.
type APIToken struct {
	ID       int64
	Account  AccountID
	Address  string // the account's address (read only: filled by APITokenByHash and APITokens)
	Name     string // what the administrator called it ("DPI CH Exemple")
	Hash     string // hex SHA-256 of the secret
	Created  time.Time
	Expires  time.Time // zero: never
	LastUsed time.Time
	Revoked  bool
}

// SentDocument is a document sent through the documents API: its public id
// and the message that carries it (its delivery status is the message's).
type SentDocument struct {
	ID         string // public, opaque, unique
	Account    AccountID
	MessageID  string
	Recipients []string
	Created    time.Time
}

// DocumentStore keeps structured documents and API tokens.
type DocumentStore interface {
	// AddDocuments records the documents of delivered message copies (each
	// record names its Account, Mailbox and UID) in one transaction and
	// publishes a ChangeDocumentReceived on each owner's feed after the
	// commit. It returns the ids in order. A copy that is not in its
	// account's mailbox is ErrNotFound, Metadata over 1 MiB ErrTooLarge,
	// and then nothing is recorded; over-long text fields are cut.
	AddDocuments(ctx context.Context, docs []DocumentRecord) ([]DocumentID, error)
	// Documents returns the documents of one message copy, in id order
	// (ErrNotFound when the mailbox is not the account's).
	Documents(ctx context.Context, acct AccountID, mbox MailboxID, uid uint32) ([]DocumentRecord, error)
	// Document returns one document of the account (ErrNotFound).
	Document(ctx context.Context, acct AccountID, id DocumentID) (DocumentRecord, error)
	// DocumentsByPatient returns the account's documents about one INS,
	// newest (Received) first, at most limit. An empty INS or a limit
	// below 1 is ErrInvalid.
	DocumentsByPatient(ctx context.Context, acct AccountID, ins string, limit int) ([]DocumentRecord, error)

	// CreateAPIToken stores a token (ID, Address and Created assigned); the
	// account must exist (ErrNotFound), the hash be a lower-case hex
	// SHA-256 (ErrInvalid) that is new (ErrExists).
	CreateAPIToken(ctx context.Context, t APIToken) (APIToken, error)
	// APITokenByHash finds a token that is neither revoked nor expired at
	// now (ErrNotFound otherwise) and records its use in LastUsed (at most
	// once a minute: a busy client does not write on every request).
	APITokenByHash(ctx context.Context, hash string, now time.Time) (APIToken, error)
	APITokens(ctx context.Context) ([]APIToken, error)  // by id
	RevokeAPIToken(ctx context.Context, id int64) error // ErrNotFound

	// AddSentDocument records a document sent through the API (ErrExists
	// on a duplicate ID); SentDocument reads it back for its account only
	// (ErrNotFound for another account's).
	AddSentDocument(ctx context.Context, d SentDocument) error
	SentDocument(ctx context.Context, acct AccountID, id string) (SentDocument, error)
}
