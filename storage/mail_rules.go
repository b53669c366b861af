package storage

import (
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/relais-mssante/relais/storage/summary"
)

// The rules below are shared by every Store implementation, so that names,
// addresses, flags and stored summaries are the same bytes whichever
// database holds them.

// NormDomain lower-cases a domain name and checks it is a plausible A-label
// host name (RFC 5321 4.1.2 Domain; IDNA conversion is the caller's).
func NormDomain(name string) (string, error) {
	d := strings.ToLower(strings.TrimSuffix(strings.TrimSpace(name), "."))
	if d == "" || len(d) > 253 {
		return "", fmt.Errorf("domain %q: %w", name, ErrInvalid)
	}
	for i := 0; i < len(d); i++ {
		c := d[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return "", fmt.Errorf("domain %q: %w", name, ErrInvalid)
		}
	}
	return d, nil
}

// NormAddress splits an address into its canonical form (local part as
// given, domain lower-case), its lookup key (all lower-case) and its domain.
func NormAddress(address string) (canon, key, domain string, err error) {
	local, dom, ok := strings.Cut(strings.TrimSpace(address), "@")
	if !ok || local == "" || strings.ContainsAny(local, " \t\r\n<>@\x00") || len(local) > 64 || !utf8.ValidString(local) {
		return "", "", "", fmt.Errorf("address %q: %w", address, ErrInvalid)
	}
	if dom, err = NormDomain(dom); err != nil {
		return "", "", "", err
	}
	canon = local + "@" + dom
	return canon, strings.ToLower(canon), dom, nil
}

const mailboxDelim = string(MailboxDelimiter)

// NormMailboxName validates a mailbox name and spells INBOX (and the INBOX
// prefix of its children) in upper case: RFC 9051 5.1, INBOX is
// case-insensitive, every other name is case-sensitive.
func NormMailboxName(name string) (string, error) {
	if name == "" || len(name) > 1000 || !utf8.ValidString(name) {
		return "", fmt.Errorf("mailbox name %q: %w", name, ErrInvalid)
	}
	if strings.EqualFold(name, "INBOX") {
		return "INBOX", nil
	}
	if len(name) > 6 && strings.EqualFold(name[:6], "INBOX"+mailboxDelim) {
		name = "INBOX" + name[5:]
	}
	for _, level := range strings.Split(name, mailboxDelim) {
		if level == "" {
			return "", fmt.Errorf("mailbox name %q: empty level: %w", name, ErrInvalid)
		}
	}
	for _, r := range name {
		// RFC 9051 5.1: no wildcards (list-wildcards) nor controls in names.
		if r < 0x20 || r == 0x7f || r == '*' || r == '%' {
			return "", fmt.Errorf("mailbox name %q: %w", name, ErrInvalid)
		}
	}
	return name, nil
}

// ValidSpecialUse reports whether su is one of the SpecialUse constants
// (RFC 6154 2).
func ValidSpecialUse(su string) bool {
	switch su {
	case SpecialUseNone, SpecialUseSent, SpecialUseDrafts, SpecialUseTrash,
		SpecialUseJunk, SpecialUseArchive, SpecialUseAll, SpecialUseFlagged:
		return true
	}
	return false
}

// MailboxParents returns the superior names of name, shortest first
// ("a/b/c" -> "a", "a/b").
func MailboxParents(name string) []string {
	var out []string
	for i := 0; i < len(name); i++ {
		if name[i] == MailboxDelimiter {
			out = append(out, name[:i])
		}
	}
	return out
}

// systemFlags maps the lower-case spelling of each system flag (RFC 9051
// 2.3.2) to its canonical case, which is what we store and return.
var systemFlags = map[string]string{
	`\seen`:     FlagSeen,
	`\answered`: FlagAnswered,
	`\flagged`:  FlagFlagged,
	`\deleted`:  FlagDeleted,
	`\draft`:    FlagDraft,
}

// validKeyword reports whether k is an atom (RFC 9051 9: flag-keyword = atom;
// atom-char excludes "(" ")" "{" SP CTL "%" "*" DQUOTE "\" "]").
func validKeyword(k string) bool {
	if k == "" || len(k) > 255 {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c <= 0x20 || c >= 0x7f || strings.IndexByte(`(){%*"\]`, c) >= 0 {
			return false
		}
	}
	return true
}

// NormFlags canonicalises system flags, checks keywords and removes
// duplicates (compared case-insensitively), keeping the first spelling.
// \Recent cannot be stored (RFC 9051 2.3.2 removed it) and is dropped.
func NormFlags(in []string) ([]string, error) {
	out := make([]string, 0, len(in))
	for _, f := range in {
		if strings.HasPrefix(f, `\`) {
			lf := strings.ToLower(f)
			canon, ok := systemFlags[lf]
			if !ok {
				if lf == `\recent` {
					continue
				}
				return nil, fmt.Errorf("flag %q: %w", f, ErrInvalid)
			}
			f = canon
		} else if !validKeyword(f) {
			return nil, fmt.Errorf("keyword %q: %w", f, ErrInvalid)
		}
		if !HasFlag(out, f) {
			out = append(out, f)
		}
	}
	return out, nil
}

// HasFlag reports whether flags holds f, compared case-insensitively.
func HasFlag(flags []string, f string) bool {
	for _, g := range flags {
		if strings.EqualFold(g, f) {
			return true
		}
	}
	return false
}

// ApplyFlags computes the new flag list of one message (RFC 9051 6.4.6) and
// whether it differs (as a set) from cur. flags must be normalised
// (NormFlags).
func ApplyFlags(cur []string, op FlagOp, flags []string) ([]string, bool) {
	var next []string
	switch op {
	case FlagsSet:
		next = append([]string{}, flags...)
	case FlagsAdd:
		next = append([]string{}, cur...)
		for _, f := range flags {
			if !HasFlag(next, f) {
				next = append(next, f)
			}
		}
	case FlagsRemove:
		next = make([]string, 0, len(cur))
		for _, f := range cur {
			if !HasFlag(flags, f) {
				next = append(next, f)
			}
		}
	}
	if len(next) != len(cur) {
		return next, true
	}
	for _, f := range next {
		if !HasFlag(cur, f) {
			return next, true
		}
	}
	return next, false
}

// JoinFlags encodes a flag list as stored in the messages table: the flags
// separated by single spaces.
func JoinFlags(flags []string) string { return strings.Join(flags, " ") }

// SplitFlags decodes a stored flag list (JoinFlags); never nil.
func SplitFlags(s string) []string {
	f := strings.Fields(s)
	if f == nil {
		f = []string{}
	}
	return f
}

// ParsedMessage is a message ready to store: parsed once, whatever the
// number of copies.
type ParsedMessage struct {
	Raw []byte
	// Summary is the encoded summary.Message (summary.Encode).
	Summary []byte
	// SearchHeader and SearchBody are summary.SearchText's folded text.
	SearchHeader, SearchBody string
	InternalDate             time.Time // never zero
}

// ParseMessage checks a message's size (ErrInvalid when empty, ErrTooLarge
// above maxSize) and computes what the stores keep beside the raw bytes. A
// message the parser rejects is still stored, with summary.Minimal (logged
// without its content). A zero internalDate means now.
func ParseMessage(raw []byte, internalDate time.Time, maxSize int64, log *slog.Logger) (*ParsedMessage, error) {
	if len(raw) == 0 {
		return nil, fmt.Errorf("empty message: %w", ErrInvalid)
	}
	if int64(len(raw)) > maxSize {
		return nil, fmt.Errorf("message of %d bytes: %w", len(raw), ErrTooLarge)
	}
	sum, err := summary.Parse(raw)
	if err != nil {
		log.Warn("storage: message summary: unparsable message, storing a minimal summary", "err", err, "size", len(raw))
		sum = summary.Minimal(raw)
	}
	enc, err := summary.Encode(sum)
	if err != nil {
		if enc, err = summary.Encode(summary.Minimal(raw)); err != nil {
			return nil, err
		}
	}
	header, body := summary.SearchText(raw)
	if internalDate.IsZero() {
		internalDate = time.Now()
	}
	return &ParsedMessage{Raw: raw, Summary: enc, SearchHeader: header, SearchBody: body, InternalDate: internalDate}, nil
}

// LocalTarget is where one Recipient's copy goes, normalised: its mailbox
// name (NormMailboxName) and its flags (NormFlags).
type LocalTarget struct {
	Mailbox string
	Flags   []string
}

// LocalDelivery is a message checked and parsed for its local copies
// (PrepareLocal), ready for a store's write transaction (Deliver, Append,
// Submit): Targets[i] is where Recipients[i]'s copy goes.
type LocalDelivery struct {
	Parsed     *ParsedMessage
	Recipients []Recipient
	Targets    []LocalTarget
}

// PrepareLocal checks the recipients (ErrInvalid when there is none,
// ErrNotFound for a mailbox name that cannot exist, ErrInvalid for a bad
// flag) and parses the message (ParseMessage), outside any transaction.
func PrepareLocal(raw []byte, internalDate time.Time, rcpts []Recipient, maxSize int64, log *slog.Logger) (*LocalDelivery, error) {
	if len(rcpts) == 0 {
		return nil, fmt.Errorf("no recipients: %w", ErrInvalid)
	}
	targets := make([]LocalTarget, len(rcpts))
	for i, r := range rcpts {
		name, err := NormMailboxName(r.Mailbox)
		if err != nil {
			return nil, ErrNotFound
		}
		flags, err := NormFlags(r.Flags)
		if err != nil {
			return nil, err
		}
		targets[i] = LocalTarget{name, flags}
	}
	p, err := ParseMessage(raw, internalDate, maxSize, log)
	if err != nil {
		return nil, err
	}
	return &LocalDelivery{Parsed: p, Recipients: rcpts, Targets: targets}, nil
}

// Stored returns what Deliver reports for the i-th copy, stored in m with
// uid and modseq, and the change it publishes to the recipient's account.
func (ld *LocalDelivery) Stored(i int, m Mailbox, uid uint32, modseq uint64) (Delivered, Change) {
	acct, flags := ld.Recipients[i].Account, ld.Targets[i].Flags
	return Delivered{Account: acct, Mailbox: m.ID, UIDValidity: m.UIDValidity, UID: uid},
		Change{Kind: ChangeMessageAdded, Mailbox: m.ID, UID: uid, ModSeq: modseq, Flags: flags}
}

// CheckRename normalises the names of a rename (RFC 9051 6.3.6): a from
// that cannot name a mailbox is ErrNotFound, a bad to ErrInvalid, renaming
// to INBOX ErrExists (it always exists) and renaming a mailbox under
// itself ErrInvalid.
func CheckRename(from, to string) (string, string, error) {
	from, err := NormMailboxName(from)
	if err != nil {
		return "", "", ErrNotFound
	}
	if to, err = NormMailboxName(to); err != nil {
		return "", "", err
	}
	if to == "INBOX" {
		return "", "", fmt.Errorf("INBOX: %w", ErrExists)
	}
	if from != "INBOX" && strings.HasPrefix(to, from+mailboxDelim) {
		return "", "", fmt.Errorf("mailbox %q into itself: %w", from, ErrInvalid)
	}
	return from, to, nil
}

// MailboxRename is one mailbox a rename changes, from its Old name to its
// New one.
type MailboxRename struct {
	ID       MailboxID
	Old, New string
}

// ChildPrefix is what the names of the children of mailbox name start
// with (name and the delimiter).
func ChildPrefix(name string) string { return name + mailboxDelim }

// RenameChild returns the rename of child old (a name starting with
// ChildPrefix(from)) when from becomes to: "a/x" becomes "b/x".
func RenameChild(from, to string, id MailboxID, old string) MailboxRename {
	return MailboxRename{ID: id, Old: old, New: to + old[len(from):]}
}

// MessageInfoRow is a message's columns as the stores list them: uid,
// modseq, flags (JoinFlags), internal date in unix nanoseconds, size and
// encoded summary.
type MessageInfoRow struct {
	UID, ModSeq, InternalDate, Size int64
	Flags                           string
	Summary                         []byte
}

// Dest returns pointers to r's fields for a row's Scan, in this order:
// uid, modseq, flags, internaldate, size, summary.
func (r *MessageInfoRow) Dest() []any {
	return []any{&r.UID, &r.ModSeq, &r.Flags, &r.InternalDate, &r.Size, &r.Summary}
}

// Info decodes r.
func (r *MessageInfoRow) Info() MessageInfo {
	return MessageInfo{UID: uint32(r.UID), ModSeq: uint64(r.ModSeq), Flags: SplitFlags(r.Flags),
		InternalDate: time.Unix(0, r.InternalDate).UTC(), Size: r.Size, Summary: r.Summary}
}

// CheckFlagOp checks StoreFlags' operation (ErrInvalid when unknown) and
// returns its flags normalised (NormFlags).
func CheckFlagOp(op FlagOp, flags []string) ([]string, error) {
	if op != FlagsSet && op != FlagsAdd && op != FlagsRemove {
		return nil, fmt.Errorf("op %d: %w", op, ErrInvalid)
	}
	return NormFlags(flags)
}

// FlagPlan is what StoreFlags does (RFC 9051 6.4.6, RFC 7162 3.1.3),
// message by message (Add): Updates holds the messages whose flags change,
// with their new flags (ModSeq not set yet), and Failed the UIDs whose
// modseq is above UnchangedSince (when it is not 0), left alone.
type FlagPlan struct {
	Op             FlagOp
	Flags          []string // normalised (CheckFlagOp)
	UnchangedSince uint64

	Updates []FlagUpdate
	Failed  []uint32
}

// Add plans the change of one message, read with its modseq and stored
// flags (JoinFlags).
func (p *FlagPlan) Add(uid uint32, modseq uint64, stored string) {
	if p.UnchangedSince > 0 && modseq > p.UnchangedSince {
		p.Failed = append(p.Failed, uid)
		return
	}
	if next, changed := ApplyFlags(SplitFlags(stored), p.Op, p.Flags); changed {
		p.Updates = append(p.Updates, FlagUpdate{UID: uid, Flags: next})
	}
}

// Done sets modseq, the one new modseq of every update, and returns the
// updates and the changes to publish for mailbox mbox.
func (p *FlagPlan) Done(mbox MailboxID, modseq uint64) ([]FlagUpdate, []Change) {
	changes := make([]Change, len(p.Updates))
	for i := range p.Updates {
		u := &p.Updates[i]
		u.ModSeq = modseq
		changes[i] = Change{Kind: ChangeFlags, Mailbox: mbox, UID: u.UID, ModSeq: modseq, Flags: u.Flags}
	}
	return p.Updates, changes
}

// Change is the change a rename publishes for r.
func (r MailboxRename) Change() Change {
	return Change{Kind: ChangeMailboxRenamed, Mailbox: r.ID, Name: r.New}
}

// CheckRenameTargets reports ErrExists for the first of renames whose new
// name is taken, as exists (a read of the store) tells.
func CheckRenameTargets(renames []MailboxRename, exists func(name string) (bool, error)) error {
	for _, r := range renames {
		if ok, err := exists(r.New); err != nil {
			return err
		} else if ok {
			return fmt.Errorf("mailbox %q: %w", r.New, ErrExists)
		}
	}
	return nil
}
