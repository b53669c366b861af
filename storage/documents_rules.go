package storage

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Rules of the document store shared by every Store implementation: the
// bounds on a document record (its fields come from an untrusted CDA
// header), API tokens and sent documents.

const (
	// MaxDocumentMetadata bounds DocumentRecord.Metadata (the contract's
	// 1 MiB); larger is ErrTooLarge.
	MaxDocumentMetadata = 1 << 20
	// MaxDocumentText bounds each text field of a document record; longer
	// values are cut.
	MaxDocumentText = 1000
	// MaxDocumentProblems bounds DocumentRecord.Problems.
	MaxDocumentProblems = 8000
	// MaxDocumentsPerCall bounds AddDocuments (ErrTooLarge above): one
	// message rarely carries more than a handful of documents, for a few
	// hundred recipients at most.
	MaxDocumentsPerCall = 10000
	// MaxTokenName bounds an API token's name.
	MaxTokenName = 200
	// MaxSentDocumentID bounds a sent document's public id, and
	// MaxSentRecipients its recipient list.
	MaxSentDocumentID = 100
	MaxSentRecipients = 1000
	// TokenUseGranularity: APITokenByHash records a use only when the
	// stored LastUsed is older than this, so that a busy client does not
	// turn every request into a write.
	TokenUseGranularity = time.Minute
)

// PrepareDocument checks a DocumentRecord (ErrTooLarge for Metadata over
// MaxDocumentMetadata, ErrInvalid without account, mailbox or UID or with a
// multi-line message id) and bounds its text fields. A zero Received
// becomes now, a nil Metadata empty.
func PrepareDocument(d DocumentRecord, now time.Time) (DocumentRecord, error) {
	if len(d.Metadata) > MaxDocumentMetadata {
		return d, fmt.Errorf("document metadata of %d bytes: %w", len(d.Metadata), ErrTooLarge)
	}
	if d.Account <= 0 || d.Mailbox <= 0 || d.UID == 0 {
		return d, fmt.Errorf("document without account, mailbox or uid: %w", ErrInvalid)
	}
	if !PlainText(d.MessageID, MaxMessageID) {
		return d, fmt.Errorf("document message id: %w", ErrInvalid)
	}
	for _, f := range []*string{&d.Recipient, &d.PatientINS, &d.INSKind, &d.PatientName, &d.TypeCode,
		&d.TypeDisplay, &d.Title, &d.AuthorID, &d.AuthorName, &d.Custodian} {
		*f = TruncateText(*f, MaxDocumentText)
	}
	d.Problems = TruncateText(d.Problems, MaxDocumentProblems)
	if d.Received.IsZero() {
		d.Received = now
	}
	if d.Metadata == nil {
		d.Metadata = []byte{}
	}
	return d, nil
}

// PrepareDocuments checks a batch for AddDocuments (ErrTooLarge above
// MaxDocumentsPerCall) and each record (PrepareDocument).
func PrepareDocuments(docs []DocumentRecord, now time.Time) ([]DocumentRecord, error) {
	if len(docs) > MaxDocumentsPerCall {
		return nil, fmt.Errorf("%d documents: %w", len(docs), ErrTooLarge)
	}
	out := make([]DocumentRecord, len(docs))
	for i, d := range docs {
		p, err := PrepareDocument(d, now)
		if err != nil {
			return nil, err
		}
		out[i] = p
	}
	return out, nil
}

// ValidTokenHash reports whether h is a lower-case hex SHA-256, the only
// form an API token's hash is stored and looked up in.
func ValidTokenHash(h string) bool {
	if len(h) != 64 || strings.ToLower(h) != h {
		return false
	}
	_, err := hex.DecodeString(h)
	return err == nil
}

// CheckAPIToken checks a token to create: a valid hash (ValidTokenHash) and
// a one-line name of at most MaxTokenName bytes (ErrInvalid otherwise).
func CheckAPIToken(t APIToken) error {
	if !ValidTokenHash(t.Hash) {
		return fmt.Errorf("hash is not a hex SHA-256: %w", ErrInvalid)
	}
	if t.Name == "" || !PlainText(t.Name, MaxTokenName) {
		return fmt.Errorf("token name: %w", ErrInvalid)
	}
	return nil
}

// PrepareSentDocument checks a document sent through the API: a one-line
// id and message id, and 1 to MaxSentRecipients one-line recipients
// (ErrInvalid otherwise). It sets a zero Created to now and returns the
// recipients as the stores keep them: a JSON array of strings.
func PrepareSentDocument(d SentDocument, now time.Time) (SentDocument, string, error) {
	if d.ID == "" || !PlainText(d.ID, MaxSentDocumentID) || !PlainText(d.MessageID, MaxMessageID) {
		return d, "", fmt.Errorf("sent document id or message id: %w", ErrInvalid)
	}
	if len(d.Recipients) == 0 || len(d.Recipients) > MaxSentRecipients {
		return d, "", fmt.Errorf("sent document with %d recipients: %w", len(d.Recipients), ErrInvalid)
	}
	for _, r := range d.Recipients {
		if !PlainText(r, MaxPath) {
			return d, "", fmt.Errorf("sent document recipient: %w", ErrInvalid)
		}
	}
	rcpts, err := json.Marshal(d.Recipients)
	if err != nil {
		return d, "", err
	}
	if d.Created.IsZero() {
		d.Created = now
	}
	return d, string(rcpts), nil
}

// TokenUsable reports whether a stored token may be used at now: not
// revoked, and not expired (a token is refused from its Expires instant).
func TokenUsable(t APIToken, now time.Time) bool {
	return !t.Revoked && (t.Expires.IsZero() || now.Before(t.Expires))
}

// TokenUseDue reports whether APITokenByHash records a use of t at now: at
// most once per TokenUseGranularity.
func TokenUseDue(t APIToken, now time.Time) bool {
	return t.LastUsed.IsZero() || now.Sub(t.LastUsed) >= TokenUseGranularity
}

// DocumentRow is a document record's columns as the stores read them
// (Received in unix nanoseconds).
type DocumentRow struct {
	ID, Account, Mailbox, UID, Received int64
	MessageID, Recipient, PatientINS, INSKind, PatientName, TypeCode, TypeDisplay,
	Title, AuthorID, AuthorName, Custodian, Problems string
	Valid    bool
	Metadata []byte
}

// Dest returns pointers to r's fields for a row's Scan, in this order: id,
// account, mailbox, uid, message_id, recipient, patient_ins, ins_kind,
// patient_name, type_code, type_display, title, author_id, author_name,
// custodian, valid, problems, received, metadata.
func (r *DocumentRow) Dest() []any {
	return []any{&r.ID, &r.Account, &r.Mailbox, &r.UID, &r.MessageID, &r.Recipient, &r.PatientINS, &r.INSKind,
		&r.PatientName, &r.TypeCode, &r.TypeDisplay, &r.Title, &r.AuthorID, &r.AuthorName, &r.Custodian, &r.Valid,
		&r.Problems, &r.Received, &r.Metadata}
}

// Record decodes r. Metadata is r's slice: scan the next row into a new
// DocumentRow (or a cleared Metadata) so that records do not share bytes.
func (r *DocumentRow) Record() DocumentRecord {
	return DocumentRecord{ID: DocumentID(r.ID), Account: AccountID(r.Account), Mailbox: MailboxID(r.Mailbox),
		UID: uint32(r.UID), MessageID: r.MessageID, Recipient: r.Recipient, PatientINS: r.PatientINS,
		INSKind: r.INSKind, PatientName: r.PatientName, TypeCode: r.TypeCode, TypeDisplay: r.TypeDisplay,
		Title: r.Title, AuthorID: r.AuthorID, AuthorName: r.AuthorName, Custodian: r.Custodian, Valid: r.Valid,
		Problems: r.Problems, Metadata: r.Metadata, Received: time.Unix(0, r.Received).UTC()}
}

// APITokenRow is an API token's columns, with its account's address, as
// the stores read them (times in unix nanoseconds, 0 for none).
type APITokenRow struct {
	ID, Account                int64
	Address, Name, Hash        string
	Created, Expires, LastUsed int64
	Revoked                    bool
}

// Dest returns pointers to r's fields for a row's Scan, in this order: id,
// account, address, name, hash, created, expires, last_used, revoked.
func (r *APITokenRow) Dest() []any {
	return []any{&r.ID, &r.Account, &r.Address, &r.Name, &r.Hash, &r.Created, &r.Expires, &r.LastUsed, &r.Revoked}
}

// Token decodes r.
func (r *APITokenRow) Token() APIToken {
	return APIToken{ID: r.ID, Account: AccountID(r.Account), Address: r.Address, Name: r.Name, Hash: r.Hash,
		Created: time.Unix(0, r.Created).UTC(), Expires: TimeOrZero(r.Expires), LastUsed: TimeOrZero(r.LastUsed),
		Revoked: r.Revoked}
}

// TokenUsed records in t a use at now that the store wrote (TokenUseDue):
// LastUsed only moves forward.
func TokenUsed(t *APIToken, now time.Time) {
	if now.After(t.LastUsed) {
		t.LastUsed = now.UTC()
	}
}

// CheckPatientQuery checks DocumentsByPatient's arguments: an empty INS
// (documents without one) or a limit below 1 is ErrInvalid.
func CheckPatientQuery(ins string, limit int) error {
	if ins == "" || limit < 1 {
		return fmt.Errorf("empty INS or limit %d: %w", limit, ErrInvalid)
	}
	return nil
}

// DecodeSentDocument fills d's Recipients and Created from their columns:
// a JSON array of strings (PrepareSentDocument) and unix nanoseconds.
func DecodeSentDocument(d *SentDocument, recipients string, created int64) error {
	d.Created = time.Unix(0, created).UTC()
	if err := json.Unmarshal([]byte(recipients), &d.Recipients); err != nil {
		return fmt.Errorf("sent document %q recipients: %w", d.ID, err)
	}
	return nil
}

// DocumentChange is the change published to d's account when d is
// recorded as document id.
func DocumentChange(d DocumentRecord, id DocumentID) Change {
	return Change{Kind: ChangeDocumentReceived, Mailbox: d.Mailbox, UID: d.UID, Document: id}
}
