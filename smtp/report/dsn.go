package report

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net/textproto"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Action is a per-recipient DSN action, RFC 3464 2.3.3.
type Action string

const (
	ActionFailed    Action = "failed"
	ActionDelayed   Action = "delayed"
	ActionDelivered Action = "delivered"
	ActionRelayed   Action = "relayed"
	ActionExpanded  Action = "expanded"
)

// RET values, RFC 3461 4.3.
const (
	RetFull = "FULL"
	RetHdrs = "HDRS"
)

// MaxReturnedMessage is the largest original returned whole with RET=FULL;
// a larger one is returned as its headers (RFC 3461 4.3 lets the MTA
// return less than asked).
const MaxReturnedMessage = 10 << 20

// DSN is a delivery status notification to build.
type DSN struct {
	// ReportingMTA is our host name: Reporting-MTA (RFC 3464 2.2.2) and
	// the domain of From (MAILER-DAEMON@ReportingMTA) and of Message-ID.
	ReportingMTA string
	// To is the original message's reverse-path, who the DSN goes to.
	To string
	// EnvID is the RFC 3461 4.4 ENVID of the original, xtext decoded.
	EnvID string
	// Arrival is when Relais accepted the original (Arrival-Date, RFC 3464
	// 2.2.5); zero leaves it out.
	Arrival time.Time
	// Ret is the original's RET (RFC 3461 4.3). RFC 3461 leaves the choice
	// to the MTA when it is absent: Relais then returns the headers only
	// (text/rfc822-headers), because the body of a message here is health
	// data about a patient, and a report is one more copy of it, read and
	// kept by systems the body was not meant for. The sender still has
	// the message in its Sent folder.
	Ret string
	// Original is the original message as queued; its headers (or all of
	// it, with RET=FULL) are returned, its Message-ID answered.
	Original []byte
	// Recipients are the recipients this report is about (at least one).
	Recipients []Recipient
	// Date is the report's date (time.Now when zero).
	Date time.Time
}

// Recipient is one per-recipient block (RFC 3464 2.3). In a parsed report,
// Disposition is set instead of Action for an MDN.
type Recipient struct {
	// OriginalRecipient is the ORCPT as given ("rfc822;addr"), or "".
	OriginalRecipient string
	// FinalRecipient is the address the report is about (Final-Recipient,
	// 2.3.2), without its type.
	FinalRecipient string
	Action         Action
	// Status is the RFC 3463 code ("5.1.1", "4.4.7").
	Status string
	// RemoteMTA is the host name of the remote server that answered
	// (2.3.5), or "".
	RemoteMTA string
	// Diagnostic is the remote reply ("550 5.1.1 no such user"), or a
	// local explanation; 2.3.6 Diagnostic-Code ("smtp; ..." when it starts
	// with a reply code).
	Diagnostic     string
	LastAttempt    time.Time // 2.3.7; zero: left out
	WillRetryUntil time.Time // 2.3.9, delayed only; zero: left out
	// Disposition is the MDN disposition as received
	// ("manual-action/MDN-sent-manually; displayed"), parsed reports only.
	Disposition string
}

// BuildDSN returns the DSN as an RFC 5322 message: multipart/report with a
// short French and English explanation, the message/delivery-status part,
// and the original (RET=FULL) or its headers.
func BuildDSN(d DSN) ([]byte, error) {
	if d.ReportingMTA == "" || strings.ContainsAny(d.ReportingMTA, " \r\n<>") {
		return nil, fmt.Errorf("report: bad reporting MTA %q", d.ReportingMTA)
	}
	if d.To == "" || strings.ContainsAny(d.To, "\r\n<>") {
		return nil, errors.New("report: a DSN needs the sender's address")
	}
	if len(d.Recipients) == 0 {
		return nil, errors.New("report: a DSN is about at least one recipient")
	}
	date := d.Date
	if date.IsZero() {
		date = time.Now()
	}
	global := !isASCII(d.To)
	for _, r := range d.Recipients {
		if r.FinalRecipient == "" || strings.ContainsAny(r.FinalRecipient+r.OriginalRecipient, "\r\n") {
			return nil, fmt.Errorf("report: bad final recipient %q", r.FinalRecipient)
		}
		switch r.Action {
		case ActionFailed, ActionDelayed, ActionDelivered, ActionRelayed, ActionExpanded:
		default:
			return nil, fmt.Errorf("report: bad action %q", r.Action)
		}
		if !validStatus(r.Status) {
			return nil, fmt.Errorf("report: bad status %q", r.Status)
		}
		if !isASCII(r.FinalRecipient) || !isASCII(r.OriginalRecipient) {
			global = true
		}
	}

	origHeader, origID := originalHeader(d.Original)
	boundary := randomToken(16)
	var b bytes.Buffer
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...); b.WriteString("\r\n") }

	// RFC 3464 3 / RFC 6522 3: the report's own header.
	w("From: %s", mime.QEncoding.Encode("utf-8", "Service de messagerie / Mail Delivery System")+" <MAILER-DAEMON@"+d.ReportingMTA+">")
	w("To: <%s>", d.To)
	w("Subject: %s", mime.QEncoding.Encode("utf-8", subject(d.Recipients)))
	w("Date: %s", date.Format(time.RFC1123Z))
	w("Message-ID: <%s@%s>", randomToken(12), d.ReportingMTA)
	if origID != "" {
		w("In-Reply-To: %s", origID)
		w("References: %s", origID)
	}
	w("Auto-Submitted: auto-replied") // RFC 3834 5
	w("MIME-Version: 1.0")
	w("Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"%s\"", boundary)
	w("")
	w("This is a MIME-encapsulated delivery status notification.")
	w("")

	// The human-readable part (RFC 6522 3, first part).
	w("--%s", boundary)
	w("Content-Description: Notification")
	w("Content-Type: text/plain; charset=utf-8")
	w("Content-Transfer-Encoding: quoted-printable")
	w("")
	qp := quotedprintable.NewWriter(&b)
	if _, err := qp.Write([]byte(humanText(d))); err != nil {
		return nil, fmt.Errorf("report: encoding the notification: %w", err)
	}
	if err := qp.Close(); err != nil {
		return nil, fmt.Errorf("report: encoding the notification: %w", err)
	}
	w("")

	// The machine-readable part (RFC 3464 2).
	w("--%s", boundary)
	w("Content-Description: Delivery report")
	if global {
		w("Content-Type: message/global-delivery-status") // RFC 6533 6.1
		w("Content-Transfer-Encoding: 8bit")
	} else {
		w("Content-Type: message/delivery-status")
	}
	w("")
	w("Reporting-MTA: dns; %s", d.ReportingMTA) // 2.2.2
	if d.EnvID != "" && isPrintable(d.EnvID) {
		w("Original-Envelope-Id: %s", d.EnvID) // 2.2.1
	}
	if !d.Arrival.IsZero() {
		w("Arrival-Date: %s", d.Arrival.Format(time.RFC1123Z)) // 2.2.5
	}
	for _, r := range d.Recipients {
		w("")
		if r.OriginalRecipient != "" {
			w("Original-Recipient: %s", r.OriginalRecipient) // 2.3.1
		}
		w("Final-Recipient: %s; %s", addressType(r.FinalRecipient), r.FinalRecipient) // 2.3.2
		w("Action: %s", r.Action)                                                     // 2.3.3
		w("Status: %s", r.Status)                                                     // 2.3.4
		if r.RemoteMTA != "" {
			w("Remote-MTA: dns; %s", r.RemoteMTA) // 2.3.5
		}
		if r.Diagnostic != "" {
			w("Diagnostic-Code: %s", foldField(diagnosticCode(r.Diagnostic))) // 2.3.6
		}
		if !r.LastAttempt.IsZero() {
			w("Last-Attempt-Date: %s", r.LastAttempt.Format(time.RFC1123Z)) // 2.3.7
		}
		if !r.WillRetryUntil.IsZero() && r.Action == ActionDelayed {
			w("Will-Retry-Until: %s", r.WillRetryUntil.Format(time.RFC1123Z)) // 2.3.9
		}
	}
	w("")

	// The returned content (RFC 3464 2, third part; RFC 3461 4.3).
	if len(d.Original) > 0 {
		w("--%s", boundary)
		if strings.EqualFold(d.Ret, RetFull) && len(d.Original) <= MaxReturnedMessage {
			w("Content-Description: Undelivered message")
			if global || !isASCII(string(origHeader)) {
				w("Content-Type: message/global") // RFC 6532 3.7
			} else {
				w("Content-Type: message/rfc822")
			}
			w("")
			b.Write(d.Original)
			if !bytes.HasSuffix(d.Original, []byte("\n")) {
				b.WriteString("\r\n")
			}
		} else {
			w("Content-Description: Undelivered message headers")
			if !isASCII(string(origHeader)) {
				w("Content-Type: message/global-headers") // RFC 6533 6.3
			} else {
				w("Content-Type: text/rfc822-headers") // RFC 6522 4
			}
			w("")
			b.Write(origHeader)
		}
		w("")
	}
	w("--%s--", boundary)
	return b.Bytes(), nil
}

// subject is the report's Subject, French then English.
func subject(rcpts []Recipient) string {
	failed, delayed := false, false
	for _, r := range rcpts {
		switch r.Action {
		case ActionFailed:
			failed = true
		case ActionDelayed:
			delayed = true
		}
	}
	switch {
	case failed:
		return "Message non remis / Undelivered mail returned to sender"
	case delayed:
		return "Remise retardée / Delivery delayed"
	default:
		return "Avis de remise / Delivery report"
	}
}

// humanText is the first part: what happened, in French then English,
// with the recipients and the reasons (no message content).
func humanText(d DSN) string {
	var fr, en strings.Builder
	var list strings.Builder
	for _, r := range d.Recipients {
		fmt.Fprintf(&list, "  <%s>: %s", r.FinalRecipient, r.Action)
		if r.Diagnostic != "" {
			fmt.Fprintf(&list, " (%s)", oneLine(r.Diagnostic))
		}
		list.WriteString("\r\n")
	}
	switch subject(d.Recipients) {
	case subject([]Recipient{{Action: ActionFailed}}):
		fr.WriteString("Votre message n'a pas pu être remis à un ou plusieurs destinataires ; il ne sera plus retenté.\r\n")
		en.WriteString("Your message could not be delivered to one or more recipients; it will not be retried.\r\n")
	case subject([]Recipient{{Action: ActionDelayed}}):
		fr.WriteString("Votre message n'a pas encore pu être remis ; de nouvelles tentatives auront lieu")
		en.WriteString("Your message could not be delivered yet; delivery will be retried")
		var until time.Time
		for _, r := range d.Recipients {
			if r.WillRetryUntil.After(until) {
				until = r.WillRetryUntil
			}
		}
		if !until.IsZero() {
			fmt.Fprintf(&fr, " jusqu'au %s", until.UTC().Format("02/01/2006 15:04 MST"))
			fmt.Fprintf(&en, " until %s", until.UTC().Format("2006-01-02 15:04 MST"))
		}
		fr.WriteString(". Vous n'avez rien à faire.\r\n")
		en.WriteString(". You need not do anything.\r\n")
	default:
		delivered := slices.ContainsFunc(d.Recipients, func(r Recipient) bool { return r.Action == ActionDelivered })
		if delivered {
			fr.WriteString("Votre message a été remis dans la boîte du destinataire.\r\n")
			en.WriteString("Your message was delivered to the recipient's mailbox.\r\n")
		} else {
			fr.WriteString("Votre message a été transmis à l'opérateur du destinataire, qui ne confirmera pas sa remise.\r\n")
			en.WriteString("Your message was handed to the recipient's operator, which will not confirm its delivery.\r\n")
		}
	}
	return fr.String() + "\r\n" + list.String() + "\r\n" + en.String() + "\r\n" + list.String() +
		"\r\n-- \r\n" + d.ReportingMTA + "\r\n"
}

// diagnosticCode renders a Diagnostic-Code value: "smtp; <reply>" when the
// diagnostic is an SMTP reply, "x-local; <text>" otherwise (RFC 3464
// 2.3.6: diagnostic-type ";" text).
func diagnosticCode(s string) string {
	s = oneLine(s)
	if len(s) >= 3 && s[0] >= '2' && s[0] <= '5' && isDigit(s[1]) && isDigit(s[2]) && (len(s) == 3 || s[3] == ' ' || s[3] == '-') {
		return "smtp; " + s
	}
	return "x-local; " + s
}

// foldField folds a long field value at spaces (RFC 5322 2.2.3).
func foldField(s string) string {
	const width = 72
	var b strings.Builder
	line := 0
	for i, word := range strings.Split(s, " ") {
		if i > 0 {
			if line+1+len(word) > width && line > 0 {
				b.WriteString("\r\n    ")
				line = 4
			} else {
				b.WriteByte(' ')
				line++
			}
		}
		b.WriteString(word)
		line += len(word)
	}
	return b.String()
}

// oneLine joins a multi-line reply and drops control characters, bounded.
func oneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' || r == '\t' {
			return ' '
		}
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			return -1
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 900 {
		s = s[:900]
		for !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
	}
	return s
}

func addressType(addr string) string {
	if isASCII(addr) {
		return "rfc822"
	}
	return "utf-8" // RFC 6533 3
}

// originalHeader returns the header section of msg (up to and including
// the blank line) and its Message-ID with angle brackets, "" if none.
func originalHeader(msg []byte) (header []byte, msgID string) {
	if len(msg) == 0 {
		return nil, ""
	}
	end := len(msg)
	if i := bytes.Index(msg, []byte("\r\n\r\n")); i >= 0 {
		end = i + 4
	} else if i := bytes.Index(msg, []byte("\n\n")); i >= 0 {
		end = i + 2
	}
	if end > maxHeaderBytes {
		end = maxHeaderBytes
	}
	header = msg[:end]
	h, err := textproto.NewReader(bufio.NewReader(bytes.NewReader(withBlankLine(header)))).ReadMIMEHeader()
	if err == nil || len(h) > 0 {
		msgID = cleanMsgID(h.Get("Message-Id"))
	}
	return header, msgID
}

func withBlankLine(h []byte) []byte {
	if bytes.HasSuffix(h, []byte("\n\n")) || bytes.HasSuffix(h, []byte("\r\n\r\n")) {
		return h
	}
	return append(append([]byte(nil), h...), "\r\n\r\n"...)
}

// cleanMsgID returns the first "<...>" of s, or "".
func cleanMsgID(s string) string {
	i := strings.IndexByte(s, '<')
	if i < 0 {
		return ""
	}
	j := strings.IndexByte(s[i:], '>')
	if j < 0 {
		return ""
	}
	id := s[i : i+j+1]
	if len(id) < 3 || len(id) > 998 || strings.ContainsAny(id, " \t\r\n") {
		return ""
	}
	return id
}

// validStatus checks an RFC 3463 2 status code: class.subject.detail.
func validStatus(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) != 3 || (parts[0] != "2" && parts[0] != "4" && parts[0] != "5") {
		return false
	}
	for _, p := range parts[1:] {
		if p == "" || len(p) > 3 {
			return false
		}
		for i := 0; i < len(p); i++ {
			if !isDigit(p[i]) {
				return false
			}
		}
	}
	return true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func isPrintable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b)
}
