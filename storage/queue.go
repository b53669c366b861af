package storage

import (
	"context"
	"time"
)

// The outbound queue (RFC 5321 4.5.4: a message accepted for a remote
// recipient is kept until it is delivered or fails for good) and the
// delivery status a sender sees for each recipient of a message.

// QueueID identifies an outbound queue entry.
type QueueID int64

// DSN NOTIFY keywords, RFC 3461 4.1.
const (
	NotifyNever   = "NEVER"
	NotifySuccess = "SUCCESS"
	NotifyFailure = "FAILURE"
	NotifyDelay   = "DELAY"
)

// OutboundRecipient is one remote recipient of a queued message.
type OutboundRecipient struct {
	// Address is stored in canonical form (local part as given, domain
	// lower-case); an entry keeps one recipient per canonical address.
	Address string
	// Notify is the RFC 3461 4.1 NOTIFY list as given on RCPT; empty means
	// the default (FAILURE and DELAY, RFC 3461 4.1).
	Notify []string
	// ORCPT is the RFC 3461 4.2 original recipient as given
	// ("rfc822;addr", xtext decoded), or "".
	ORCPT string
}

// Outbound is a message to queue for remote delivery.
type Outbound struct {
	// Account is the submitting account, 0 for mail Relais itself sends
	// (DSNs, MDN relays).
	Account AccountID
	// Sender is the reverse-path; "" is the null sender (RFC 5321 4.5.5).
	Sender string
	// MessageID is the message's Message-ID header (without <>), used for
	// delivery status; may be "".
	MessageID string
	// Raw is what goes on the wire, signed; encryption to each recipient's
	// certificate happens at delivery time. Stored once per entry; larger
	// than the store's maximum message size is ErrTooLarge.
	Raw        []byte
	Recipients []OutboundRecipient // at least one
	Ret        string              // RFC 3461 4.3: "FULL", "HDRS" or ""
	EnvID      string              // RFC 3461 4.4, xtext decoded, or ""
	// Expires is when recipients still pending fail for good (the queue
	// worker enforces it; zero: never).
	Expires time.Time
}

// QueueState is where one recipient of a queue entry stands.
type QueueState string

const (
	QueuePending   QueueState = "pending"   // waiting for its next attempt
	QueueDelivered QueueState = "delivered" // the remote operator answered 250
	QueueFailed    QueueState = "failed"    // permanent failure, expiry or drop
)

// QueueRecipient is one recipient of a queue entry and its progress.
type QueueRecipient struct {
	OutboundRecipient
	Domain        string // lower-case domain of Address
	State         QueueState
	Attempts      int
	NextAttempt   time.Time // when State is QueuePending; a new entry's recipients are due at once
	LastAttempt   time.Time // zero before the first attempt
	LastError     string    // the last remote reply or local error, for DSNs and the queue list
	DelayNotified bool      // a delay DSN was sent for this recipient
}

// QueueEntry is a queued message and its recipients (the raw bytes are
// read with QueueMessage).
type QueueEntry struct {
	ID         QueueID
	Account    AccountID
	Sender     string
	MessageID  string
	Ret        string
	EnvID      string
	Size       int64
	Created    time.Time
	Expires    time.Time
	LeaseUntil time.Time // zero when not leased
	Recipients []QueueRecipient
}

// AttemptResult is the outcome of one delivery attempt for one recipient.
type AttemptResult struct {
	Address string
	// State: QueuePending (deferred: try again at NextAttempt),
	// QueueDelivered or QueueFailed.
	State         QueueState
	NextAttempt   time.Time // required (non-zero) for QueuePending
	Error         string    // stored as LastError (bounded: long replies are cut)
	DelayNotified bool      // set it once the delay DSN went out; never cleared
	At            time.Time // zero means now
}

// Submission is one message accepted by SMTP (or the documents API): its
// local copies, its outbound entry, and its delivery status, all committed
// in one transaction.
//
// At least one of Local and Outbound is needed (ErrInvalid otherwise); an
// unknown local account or mailbox fails the whole submission (ErrNotFound)
// and nothing of it is stored.
type Submission struct {
	Raw          []byte // the local copies' bytes (INBOX copies, Sent copy); unused without Local
	InternalDate time.Time
	Local        []Recipient
	Outbound     *Outbound // nil when every recipient is local
	// Status: when Account and MessageID are set, the delivery status of
	// each address of LocalAddresses is recorded as StatusDelivered and that
	// of each outbound recipient as StatusQueued, in the same transaction.
	Account        AccountID
	MessageID      string
	LocalAddresses []string
}

// DeliveryState is what the sender sees of one recipient of a message.
// States only move forward: queued < delayed < relayed < delivered < read;
// failed replaces queued, delayed or relayed, and nothing replaces failed
// except delivered or read (a late success report wins over a guess).
// An update to the current state refreshes Detail and Updated.
type DeliveryState string

const (
	StatusQueued    DeliveryState = "queued"    // accepted by Relais, not yet handed on
	StatusDelayed   DeliveryState = "delayed"   // attempts failed temporarily
	StatusRelayed   DeliveryState = "relayed"   // the recipient's operator accepted it
	StatusDelivered DeliveryState = "delivered" // in the recipient's mailbox (local delivery or a success DSN)
	StatusRead      DeliveryState = "read"      // an MDN said displayed (RFC 8098)
	StatusFailed    DeliveryState = "failed"    // will not be delivered; Detail says why
)

// DeliveryStatus is the status of one recipient of a sent message.
type DeliveryStatus struct {
	MessageID string
	Recipient string // address, as the sender gave it (domain lower-cased)
	State     DeliveryState
	Detail    string    // the remote reply, DSN diagnostic or MDN disposition (bounded: long ones are cut)
	Updated   time.Time // zero in SetDeliveryStatus means now
}

// QueueStore is the outbound queue and the delivery status.
type QueueStore interface {
	// Submit stores a submission in one transaction (see Submission) and
	// returns the local copies and the queue entry's id (0 without
	// Outbound). Without Outbound it is Deliver plus the status.
	Submit(ctx context.Context, s Submission) ([]Delivered, QueueID, error)
	// Enqueue queues a message alone (DSNs, messages from the documents
	// API), durably.
	Enqueue(ctx context.Context, out Outbound) (QueueID, error)
	// LeaseDue returns up to limit entries that have a pending recipient
	// whose NextAttempt is at or before now and are not leased, and leases
	// them until now+leaseFor: no other LeaseDue returns them before that
	// (several workers, later several nodes, share one queue). An expired
	// lease no longer counts (a worker that died loses nothing). Oldest
	// NextAttempt first (of each entry's earliest due pending recipient).
	// Each entry carries all its recipients: the worker attempts those
	// pending with NextAttempt at or before now. limit and leaseFor must be
	// positive (ErrInvalid).
	LeaseDue(ctx context.Context, now time.Time, limit int, leaseFor time.Duration) ([]QueueEntry, error)
	// QueueMessage returns an entry's raw bytes (ErrNotFound).
	QueueMessage(ctx context.Context, id QueueID) ([]byte, error)
	// RecordAttempt stores the outcome for some recipients of an entry and
	// releases its lease. Each result counts one attempt. A recipient
	// already delivered or failed keeps its state (a late result from a
	// worker whose lease ran out changes nothing). An entry whose
	// recipients are all delivered or failed is removed (its raw bytes with
	// it). Unknown addresses, unknown states and a pending result without
	// NextAttempt are ErrInvalid (nothing is recorded); a missing entry
	// ErrNotFound.
	RecordAttempt(ctx context.Context, id QueueID, results []AttemptResult) error
	// QueueEntry returns one entry (ErrNotFound); QueueEntries all of them,
	// in id order.
	QueueEntry(ctx context.Context, id QueueID) (QueueEntry, error)
	QueueEntries(ctx context.Context, fn func(QueueEntry) error) error
	// RetryQueue makes every pending recipient of the entry due at now and
	// drops its lease (ErrNotFound).
	RetryQueue(ctx context.Context, id QueueID, now time.Time) error
	// DropQueue removes an entry (ErrNotFound); the caller records the
	// failed status and sends DSNs first if it wants them.
	DropQueue(ctx context.Context, id QueueID) error

	// SetDeliveryStatus records a recipient's status for a message sent by
	// acct, following DeliveryState's order (an update that would go
	// backwards is ignored without error). An unknown (acct, messageID,
	// recipient) creates the row. The recipient is stored in canonical form
	// (domain lower-case); an unknown account is ErrNotFound, an empty
	// message id or unknown state ErrInvalid.
	SetDeliveryStatus(ctx context.Context, acct AccountID, st DeliveryStatus) error
	// DeliveryStatuses returns the status of each recipient of a message
	// sent by acct, ordered by recipient in byte order (empty, not ErrNotFound, when the
	// message is unknown).
	DeliveryStatuses(ctx context.Context, acct AccountID, messageID string) ([]DeliveryStatus, error)
}
