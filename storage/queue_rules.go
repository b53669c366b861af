package storage

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Rules of the outbound queue and the delivery status shared by every
// Store implementation: what an Outbound, an AttemptResult and a
// DeliveryStatus must look like, and how they are normalised before they
// are stored.

// Bounds on the text the queue and the delivery status keep.
const (
	// MaxDetail bounds a stored remote reply, DSN diagnostic or MDN
	// disposition (a remote server chooses how long its reply is).
	MaxDetail = 1000
	// MaxEnvID bounds an ENVID (RFC 3461 4.4: at most 100 characters).
	MaxEnvID = 100
	// MaxORCPT bounds an ORCPT parameter (RFC 3461 4.2: at most 500).
	MaxORCPT = 500
	// MaxPath bounds a path (RFC 5321 4.5.3.1.3: at most 256 octets).
	MaxPath = 256
	// MaxMessageID bounds a Message-ID (RFC 5322 2.1.1: a header line is
	// at most 998 characters).
	MaxMessageID = 998
)

// TruncateText bounds s to n bytes without splitting a UTF-8 sequence,
// replaces invalid bytes with U+FFFD and drops NUL bytes (text a remote
// server or a document chose; PostgreSQL's TEXT cannot hold NUL, and both
// stores keep the same bytes).
func TruncateText(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "")
	}
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i]
}

// PlainText reports whether s fits in one header or envelope line of at
// most max bytes: valid UTF-8 (RFC 6532 3.2), no CR, LF or NUL.
func PlainText(s string, max int) bool {
	return len(s) <= max && !strings.ContainsAny(s, "\r\n\x00") && utf8.ValidString(s)
}

// NanosOrZero encodes a time as the stores keep it: unix nanoseconds, 0 for
// the zero time.
func NanosOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// TimeOrZero decodes NanosOrZero: the zero time for 0, else the instant in
// UTC.
func TimeOrZero(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// NormNotify checks a NOTIFY list (RFC 3461 4.1: NEVER, or any of SUCCESS,
// FAILURE, DELAY) and returns it upper-case, deduplicated and
// comma-separated, as the stores keep it ("" for the default).
func NormNotify(list []string) (string, error) {
	seen := map[string]bool{}
	var out []string
	for _, k := range list {
		k = strings.ToUpper(strings.TrimSpace(k))
		switch k {
		case NotifyNever, NotifySuccess, NotifyFailure, NotifyDelay:
		default:
			return "", fmt.Errorf("NOTIFY %q: %w", k, ErrInvalid)
		}
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	if seen[NotifyNever] && len(out) > 1 {
		// RFC 3461 4.1: NEVER is used alone.
		return "", fmt.Errorf("NOTIFY NEVER with other keywords: %w", ErrInvalid)
	}
	return strings.Join(out, ","), nil
}

// SplitNotify decodes a stored NOTIFY list (NormNotify); nil for the
// default.
func SplitNotify(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// PreparedOutbound is an Outbound checked and normalised before its write
// transaction (PrepareOutbound).
type PreparedOutbound struct {
	Outbound Outbound
	// Recipients are canonical and deduplicated (a RCPT given twice is
	// delivered once), in envelope order; Domains and Notify (stored
	// form, NormNotify) go with them index by index.
	Recipients []OutboundRecipient
	Domains    []string
	Notify     []string
}

// PrepareOutbound checks an Outbound (ErrInvalid, or ErrTooLarge when Raw
// is over maxSize) and normalises its recipients.
func PrepareOutbound(out Outbound, maxSize int64) (*PreparedOutbound, error) {
	if len(out.Raw) == 0 {
		return nil, fmt.Errorf("empty message: %w", ErrInvalid)
	}
	if int64(len(out.Raw)) > maxSize {
		return nil, fmt.Errorf("message of %d bytes: %w", len(out.Raw), ErrTooLarge)
	}
	if len(out.Recipients) == 0 {
		return nil, fmt.Errorf("no recipients: %w", ErrInvalid)
	}
	if out.Account < 0 {
		return nil, fmt.Errorf("account %d: %w", out.Account, ErrInvalid)
	}
	if !PlainText(out.Sender, MaxPath) || !PlainText(out.MessageID, MaxMessageID) ||
		!PlainText(out.EnvID, MaxEnvID) {
		return nil, fmt.Errorf("sender, message id or envid: %w", ErrInvalid)
	}
	switch out.Ret { // RFC 3461 4.3
	case "", "FULL", "HDRS":
	default:
		return nil, fmt.Errorf("RET %q: %w", out.Ret, ErrInvalid)
	}
	p := &PreparedOutbound{Outbound: out}
	seen := map[string]bool{}
	for _, r := range out.Recipients {
		canon, _, domain, err := NormAddress(r.Address)
		if err != nil {
			return nil, err
		}
		if seen[canon] {
			continue // RCPT given twice: one delivery
		}
		seen[canon] = true
		notify, err := NormNotify(r.Notify)
		if err != nil {
			return nil, err
		}
		if !PlainText(r.ORCPT, MaxORCPT) {
			return nil, fmt.Errorf("ORCPT: %w", ErrInvalid)
		}
		p.Recipients = append(p.Recipients, OutboundRecipient{Address: canon, Notify: SplitNotify(notify), ORCPT: r.ORCPT})
		p.Domains = append(p.Domains, domain)
		p.Notify = append(p.Notify, notify)
	}
	return p, nil
}

// PrepareAttempts checks attempt results (ErrInvalid for an unknown state
// or a deferral without NextAttempt) and returns them with canonical
// addresses, bounded errors, and At set to now where it was zero.
func PrepareAttempts(results []AttemptResult, now time.Time) ([]AttemptResult, error) {
	out := make([]AttemptResult, 0, len(results))
	for _, r := range results {
		canon, _, _, err := NormAddress(r.Address)
		if err != nil {
			return nil, err
		}
		switch r.State {
		case QueuePending:
			if r.NextAttempt.IsZero() {
				return nil, fmt.Errorf("deferred without a next attempt: %w", ErrInvalid)
			}
		case QueueDelivered, QueueFailed:
		default:
			return nil, fmt.Errorf("state %q: %w", r.State, ErrInvalid)
		}
		if r.At.IsZero() {
			r.At = now
		}
		r.Address = canon
		r.Error = TruncateText(r.Error, MaxDetail)
		out = append(out, r)
	}
	return out, nil
}

// deliveryRank orders the states that only move forward; failed is handled
// apart (see DeliveryState).
var deliveryRank = map[DeliveryState]int{
	StatusQueued:    1,
	StatusDelayed:   2,
	StatusRelayed:   3,
	StatusDelivered: 4,
	StatusRead:      5,
}

// DeliveryStateAdvances reports whether a recipient at state from may move
// to state to (DeliveryState's order). The same state refreshes the detail.
func DeliveryStateAdvances(from, to DeliveryState) bool {
	switch {
	case from == to:
		return true
	case from == StatusFailed:
		// A late success report wins over a failure.
		return to == StatusDelivered || to == StatusRead
	case to == StatusFailed:
		return from == StatusQueued || from == StatusDelayed || from == StatusRelayed
	default:
		return deliveryRank[to] > deliveryRank[from]
	}
}

// NormDeliveryStatus checks a status (ErrInvalid for an unknown state, an
// empty or multi-line message id, a bad recipient), puts its recipient in
// canonical form, bounds its detail and sets Updated to now when zero.
func NormDeliveryStatus(st *DeliveryStatus, now time.Time) error {
	if _, ok := deliveryRank[st.State]; !ok && st.State != StatusFailed {
		return fmt.Errorf("delivery state %q: %w", st.State, ErrInvalid)
	}
	if st.MessageID == "" || !PlainText(st.MessageID, MaxMessageID) {
		return fmt.Errorf("message id: %w", ErrInvalid)
	}
	canon, _, _, err := NormAddress(st.Recipient)
	if err != nil {
		return err
	}
	st.Recipient = canon
	st.Detail = TruncateText(st.Detail, MaxDetail)
	if st.Updated.IsZero() {
		st.Updated = now
	}
	return nil
}

// PreparedSubmission is a Submission checked and normalised before its
// write transaction (PrepareSubmission), whose steps Write runs.
type PreparedSubmission struct {
	Local    *LocalDelivery    // nil without local recipients
	Outbound *PreparedOutbound // nil without Outbound
	// WithStatus: the submission names its Account and MessageID, so the
	// account must exist and Statuses are recorded.
	WithStatus bool
	Statuses   []DeliveryStatus
}

// PrepareSubmission checks a Submission (ErrInvalid without any recipient)
// and prepares its outbound part (PrepareOutbound), its statuses
// (StatusDelivered for each of LocalAddresses, StatusQueued for each
// outbound recipient, all at now) and its local copies (PrepareLocal), in
// that order.
func PrepareSubmission(sub Submission, maxSize int64, now time.Time, log *slog.Logger) (PreparedSubmission, error) {
	var p PreparedSubmission
	if len(sub.Local) == 0 && sub.Outbound == nil {
		return p, fmt.Errorf("no recipients: %w", ErrInvalid)
	}
	if sub.Outbound != nil {
		var err error
		if p.Outbound, err = PrepareOutbound(*sub.Outbound, maxSize); err != nil {
			return p, err
		}
	}
	p.WithStatus = sub.Account != 0 && sub.MessageID != ""
	if p.WithStatus {
		for _, a := range sub.LocalAddresses {
			p.Statuses = append(p.Statuses, DeliveryStatus{MessageID: sub.MessageID, Recipient: a, State: StatusDelivered, Updated: now})
		}
		if p.Outbound != nil {
			for _, r := range p.Outbound.Recipients {
				p.Statuses = append(p.Statuses, DeliveryStatus{MessageID: sub.MessageID, Recipient: r.Address, State: StatusQueued, Updated: now})
			}
		}
		for i := range p.Statuses {
			if err := NormDeliveryStatus(&p.Statuses[i], now); err != nil {
				return p, err
			}
		}
	}
	if len(sub.Local) > 0 {
		var err error
		if p.Local, err = PrepareLocal(sub.Raw, sub.InternalDate, sub.Local, maxSize, log); err != nil {
			return p, err
		}
	}
	return p, nil
}

// SubmitTx is a store's write transaction as PreparedSubmission.Write uses
// it: each method is one step, in the store's SQL.
type SubmitTx interface {
	// DeliverLocal stores the local copies, as Deliver does.
	DeliverLocal(ctx context.Context, ld *LocalDelivery) ([]Delivered, error)
	// Enqueue inserts the queue entry, its recipients due at once.
	Enqueue(ctx context.Context, p *PreparedOutbound) (QueueID, error)
	// AccountExists reports ErrNotFound for an unknown account.
	AccountExists(ctx context.Context, acct AccountID) error
	// SetStatus writes one status row of acct unless it would go
	// backwards (DeliveryStateAdvances).
	SetStatus(ctx context.Context, acct AccountID, st DeliveryStatus) error
}

// Write runs Submit's steps in tx, in order: the local copies, the queue
// entry, then (WithStatus) the check of the sender's account and its
// statuses. It returns the copies and the queue entry (0 when none).
func (p *PreparedSubmission) Write(ctx context.Context, tx SubmitTx, acct AccountID) ([]Delivered, QueueID, error) {
	var out []Delivered
	var id QueueID
	if p.Local != nil {
		d, err := tx.DeliverLocal(ctx, p.Local)
		if err != nil {
			return nil, 0, err
		}
		out = d
	}
	if p.Outbound != nil {
		q, err := tx.Enqueue(ctx, p.Outbound)
		if err != nil {
			return nil, 0, err
		}
		id = q
	}
	if p.WithStatus {
		if err := tx.AccountExists(ctx, acct); err != nil {
			return nil, 0, err
		}
		for _, st := range p.Statuses {
			if err := tx.SetStatus(ctx, acct, st); err != nil {
				return nil, 0, err
			}
		}
	}
	return out, id, nil
}

// PlanAttempts decides what RecordAttempt writes, given the state of each
// recipient of the entry (by canonical address) and results prepared by
// PrepareAttempts: an address not in the entry is ErrInvalid; a recipient
// already delivered or failed keeps its state (a late result changes
// nothing); with deferrals false, pending results are left out too (the
// caller's lease was taken over: the newer holder reschedules). It returns
// the results to apply, in order, and whether no recipient is left pending
// afterwards (the entry is then removed).
func PlanAttempts(states map[string]QueueState, results []AttemptResult, deferrals bool) (apply []AttemptResult, done bool, err error) {
	after := make(map[string]QueueState, len(states))
	for a, st := range states {
		after[a] = st
	}
	for _, r := range results {
		st, ok := after[r.Address]
		if !ok {
			return nil, false, fmt.Errorf("recipient not in entry: %w", ErrInvalid)
		}
		if st != QueuePending || (!deferrals && r.State == QueuePending) {
			continue
		}
		apply = append(apply, r)
		after[r.Address] = r.State
	}
	for _, st := range after {
		if st == QueuePending {
			return apply, false, nil
		}
	}
	return apply, true, nil
}

// EntriesInOrder returns entries in the order of ids (entries read by id
// for a list of ids in another order, such as LeaseDue's due order); ids
// without an entry are left out.
func EntriesInOrder[ID ~int64](entries []QueueEntry, ids []ID) []QueueEntry {
	byID := make(map[QueueID]QueueEntry, len(entries))
	for _, e := range entries {
		byID[e.ID] = e
	}
	out := make([]QueueEntry, 0, len(ids))
	for _, id := range ids {
		if e, ok := byID[QueueID(id)]; ok {
			out = append(out, e)
		}
	}
	return out
}

// QueueEntryRow is a queue entry's columns as the stores read them (times
// in unix nanoseconds, 0 for none).
type QueueEntryRow struct {
	ID, Account                        int64
	Sender, MessageID, Ret, EnvID      string
	Size, Created, Expires, LeaseUntil int64
}

// Dest returns pointers to r's fields for a row's Scan, in this order: id,
// account, sender, message_id, ret, envid, size, created, expires,
// lease_until.
func (r *QueueEntryRow) Dest() []any {
	return []any{&r.ID, &r.Account, &r.Sender, &r.MessageID, &r.Ret, &r.EnvID, &r.Size, &r.Created, &r.Expires, &r.LeaseUntil}
}

// Entry decodes r, without its recipients.
func (r *QueueEntryRow) Entry() QueueEntry {
	return QueueEntry{ID: QueueID(r.ID), Account: AccountID(r.Account), Sender: r.Sender, MessageID: r.MessageID,
		Ret: r.Ret, EnvID: r.EnvID, Size: r.Size, Created: time.Unix(0, r.Created).UTC(), Expires: TimeOrZero(r.Expires),
		LeaseUntil: TimeOrZero(r.LeaseUntil)}
}

// QueueRecipientRow is a queue recipient's columns as the stores read them
// (times in unix nanoseconds, 0 for none; Notify as NormNotify keeps it).
type QueueRecipientRow struct {
	Entry                                 int64
	Address, Domain, Notify, ORCPT, State string
	Attempts                              int64
	NextAttempt, LastAttempt              int64
	LastError                             string
	DelayNotified                         bool
}

// Dest returns pointers to r's fields for a row's Scan, in this order:
// entry, address, domain, notify, orcpt, state, attempts, next_attempt,
// last_attempt, last_error, delay_notified.
func (r *QueueRecipientRow) Dest() []any {
	return []any{&r.Entry, &r.Address, &r.Domain, &r.Notify, &r.ORCPT, &r.State, &r.Attempts, &r.NextAttempt,
		&r.LastAttempt, &r.LastError, &r.DelayNotified}
}

// Recipient decodes r; NextAttempt is kept for a pending recipient only.
func (r *QueueRecipientRow) Recipient() QueueRecipient {
	q := QueueRecipient{Domain: r.Domain, State: QueueState(r.State), Attempts: int(r.Attempts),
		LastAttempt: TimeOrZero(r.LastAttempt), LastError: r.LastError, DelayNotified: r.DelayNotified}
	q.Address, q.Notify, q.ORCPT = r.Address, SplitNotify(r.Notify), r.ORCPT
	if q.State == QueuePending {
		q.NextAttempt = TimeOrZero(r.NextAttempt)
	}
	return q
}

// AddQueueRecipient appends r to the recipients of entry id among entries
// (sorted by ID, as the stores read them); a recipient of no listed entry
// is left out.
func AddQueueRecipient(entries []QueueEntry, id QueueID, r QueueRecipient) {
	if i, ok := slices.BinarySearchFunc(entries, id, func(e QueueEntry, id QueueID) int { return cmp.Compare(e.ID, id) }); ok {
		entries[i].Recipients = append(entries[i].Recipients, r)
	}
}

// AttemptNextNanos is the next_attempt column RecordAttempt writes for u:
// its NextAttempt in unix nanoseconds while pending, else 0.
func AttemptNextNanos(u AttemptResult) int64 {
	if u.State != QueuePending {
		return 0
	}
	return u.NextAttempt.UnixNano()
}

// WalkQueue calls fn for every queue entry in id order, batch by batch:
// read returns the entries after an id (0 for the first batch), in id
// order, none at the end. fn runs between reads (outside any transaction,
// so it may call the store); an error from read or fn stops the walk and is
// returned.
func WalkQueue(read func(after QueueID) ([]QueueEntry, error), fn func(QueueEntry) error) error {
	var after QueueID
	for {
		batch, err := read(after)
		if err != nil || len(batch) == 0 {
			return err
		}
		for _, e := range batch {
			if err := fn(e); err != nil {
				return err
			}
		}
		after = batch[len(batch)-1].ID
	}
}
