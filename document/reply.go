package document

import (
	"bytes"
	"errors"
	"fmt"
	"mime"
	"mime/multipart"
	"net/mail"
	"net/textproto"
	"strings"
	"time"
)

// Errors of ErrorMDN and ErrorMail (wrapped; test with errors.Is).
var (
	// ErrNoMDNRequested: the original has no Disposition-Notification-To;
	// answer with ErrorMail instead (IG trans-cda-mss, "courriel standard").
	ErrNoMDNRequested = errors.New("document: the original message asks for no MDN")
	// ErrMDNNeedsConsent: Disposition-Notification-To differs from
	// Return-Path; RFC 8098 2.1 forbids an automatic MDN then. Answer with
	// ErrorMail, or ask a person.
	ErrMDNNeedsConsent = errors.New("document: Disposition-Notification-To differs from Return-Path")
	// ErrNotAnswerable: the original is itself a report (MDN, DSN) or an
	// automatic reply; answering it could loop (RFC 8098 2.1, RFC 3834 2).
	ErrNotAnswerable = errors.New("document: the original message must not be answered automatically")
	// ErrBadOriginal: the original cannot be read as a message.
	ErrBadOriginal = errors.New("document: unreadable original message")
)

// KOPrefix starts the subject of an error MDN or error mail (IG
// trans-cda-mss): "[KO Intégration système !][<code>] <original subject>".
const KOPrefix = "[KO Intégration système !]"

// original is what the answers need from the message they answer.
type original struct {
	raw        []byte // CRLF-normalised
	header     mail.Header
	messageID  string
	subject    string
	sender     string // From address
	dnt        string // Disposition-Notification-To address
	returnPath string
	origRcpt   string // Original-Recipient field value
}

func readOriginal(msg []byte) (*original, error) {
	m, err := mail.ReadMessage(bytes.NewReader(msg))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadOriginal, err)
	}
	o := &original{raw: crlf(msg), header: m.Header}
	if id := strings.Trim(strings.TrimSpace(m.Header.Get("Message-Id")), "<>"); id != "" {
		id = strings.Map(func(r rune) rune {
			if r == '<' || r == '>' || r <= ' ' || r == 0x7f {
				return -1
			}
			return r
		}, clean(id, 900))
		if id != "" {
			o.messageID = "<" + id + ">"
		}
	}
	o.subject = clean(decodeHeader(m.Header.Get("Subject")), 900)
	if from, err := mail.ParseAddress(m.Header.Get("From")); err == nil {
		o.sender = from.Address
	}
	if v := m.Header.Get("Disposition-Notification-To"); v != "" {
		if l, err := mail.ParseAddressList(v); err == nil && len(l) > 0 {
			o.dnt = l[0].Address
		}
	}
	if v := strings.TrimSpace(m.Header.Get("Return-Path")); v != "" {
		if a, err := mail.ParseAddress(v); err == nil {
			o.returnPath = a.Address
		} else if strings.Trim(v, "<> ") == "" {
			o.returnPath = "<>" // null reverse path
		}
	}
	o.origRcpt = clean(m.Header.Get("Original-Recipient"), 300)
	// RFC 8098 2.1 and RFC 3834 2: never answer a report or an automatic reply.
	ct, params, _ := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if strings.EqualFold(ct, "multipart/report") || strings.EqualFold(ct, "message/disposition-notification") ||
		strings.EqualFold(params["report-type"], "disposition-notification") {
		return nil, ErrNotAnswerable
	}
	if as := strings.ToLower(strings.TrimSpace(m.Header.Get("Auto-Submitted"))); strings.HasPrefix(as, "auto-replied") {
		return nil, ErrNotAnswerable
	}
	return o, nil
}

// crlf normalises line ends to CRLF (RFC 5322 2.3) without touching
// existing CRLF pairs.
func crlf(b []byte) []byte {
	if !bytes.Contains(b, []byte("\n")) {
		return b
	}
	var out bytes.Buffer
	out.Grow(len(b) + len(b)/40)
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case c == '\r' && i+1 < len(b) && b[i+1] == '\n':
			out.WriteString("\r\n")
			i++
		case c == '\n' || c == '\r':
			out.WriteString("\r\n")
		default:
			out.WriteByte(c)
		}
	}
	return out.Bytes()
}

// errorCode returns the code and label an answer reports for p: 906 when p
// has no code of the table (IG trans-cda-mss: "Si les autres codes erreurs
// ne correspondent pas au cas d'erreur rencontré ce code erreur peut être
// utilisé").
func errorCode(p Problem) (int, string) {
	if l := Label(p.Code); l != "" {
		return p.Code, l
	}
	return CodeOther, Label(CodeOther)
}

// koSubject is "[KO Intégration système !][<code>] <original subject>".
func koSubject(code int, orig string) string {
	if orig == "" {
		orig = strings.TrimSuffix(SubjectPrefix, "+")
	}
	return KOPrefix + "[" + itoa(code) + "] " + orig
}

// detail returns p.Text when it adds to the label.
func detail(p Problem, label string) string {
	t := clean(p.Text, 500)
	if t == "" || t == label {
		return ""
	}
	return t
}

// ErrorMDN builds the RFC 8098 MDN that answers a document that could not be
// integrated, as the IG trans-cda-mss (annexe "Structure du MDN", v1.1.3)
// profiles it: subject "[KO Intégration système !][<code>] <original
// subject>"; a multipart/report (RFC 6522) of a human-readable part, a
// message/disposition-notification part with Reporting-UA,
// Original-Recipient, Final-Recipient, Original-Message-ID,
// "Disposition: automatic-action/MDN-sent-automatically; processed/error"
// and "Error: <code>^<label>" (RFC 8098 3.2.6, 3.2.7), and the original
// message in full as message/rfc822. It goes from the recipient's address
// (from) to the address in the original's Disposition-Notification-To.
//
// Earlier versions of the IG wrote the error in the disposition modifier
// ("processed/Error: <code>^<label>"), which RFC 8098 3.2.6 does not allow;
// v1.1.3 moved the same string to the Error field, as done here.
func ErrorMDN(original []byte, from string, p Problem, now time.Time, hostname string) ([]byte, error) {
	o, err := readOriginal(original)
	if err != nil {
		return nil, fmt.Errorf("document: error MDN: %w", err)
	}
	if o.dnt == "" {
		return nil, fmt.Errorf("document: error MDN: %w", ErrNoMDNRequested)
	}
	// RFC 8098 2.1: no automatic MDN when Disposition-Notification-To and
	// Return-Path differ.
	if o.returnPath != "" && !strings.EqualFold(o.returnPath, o.dnt) {
		return nil, fmt.Errorf("document: error MDN: %w", ErrMDNNeedsConsent)
	}
	fromAddr, err := mail.ParseAddress(from)
	if err != nil {
		return nil, fmt.Errorf("document: error MDN: sender %q: %w", from, ErrBadRequest)
	}
	host := token(hostname, 253)
	if host == "" {
		return nil, fmt.Errorf("document: error MDN: no hostname: %w", ErrBadRequest)
	}
	code, label := errorCode(p)
	errString := itoa(code) + "^" + label // IG: "au minimum code erreur^libellé erreur"

	var body bytes.Buffer
	mw := multipart.NewWriter(&body)

	text := "Le document n’a pas pu être intégré.\n" +
		"Le système a retourné l'erreur " + errString + "\n"
	if d := detail(p, label); d != "" {
		text += "Détail : " + d + "\n"
	}
	if err := writeText(mw, text); err != nil {
		return nil, fmt.Errorf("document: error MDN: %w", err)
	}

	// RFC 8098 3.1: the machine-readable part.
	origRcpt := o.origRcpt
	if origRcpt == "" || !strings.Contains(origRcpt, ";") {
		origRcpt = "rfc822;" + fromAddr.Address
	}
	var dn strings.Builder
	dn.WriteString("Reporting-UA: " + host + "; Relais\r\n")               // 3.2.1
	dn.WriteString("Original-Recipient: " + origRcpt + "\r\n")             // 3.2.3
	dn.WriteString("Final-Recipient: rfc822;" + fromAddr.Address + "\r\n") // 3.2.4
	if o.messageID != "" {
		dn.WriteString("Original-Message-ID: " + o.messageID + "\r\n") // 3.2.5
	}
	dn.WriteString("Disposition: automatic-action/MDN-sent-automatically; processed/error\r\n") // 3.2.6
	dn.WriteString("Error: " + errString + "\r\n")                                              // 3.2.7
	h := textproto.MIMEHeader{}
	h.Set("Content-Type", "message/disposition-notification")
	// The IG's example carries the label in UTF-8, as the consumers expect.
	h.Set("Content-Transfer-Encoding", transferEncoding([]byte(dn.String())))
	pw, err := mw.CreatePart(h)
	if err != nil {
		return nil, fmt.Errorf("document: error MDN: %w", err)
	}
	if _, err := pw.Write([]byte(dn.String())); err != nil {
		return nil, fmt.Errorf("document: error MDN: %w", err)
	}
	if err := writeOriginal(mw, o.raw, false); err != nil {
		return nil, fmt.Errorf("document: error MDN: %w", err)
	}
	if err := mw.Close(); err != nil {
		return nil, fmt.Errorf("document: error MDN: %w", err)
	}
	msgID, err := newMessageID(now, host)
	if err != nil {
		return nil, fmt.Errorf("document: error MDN: %w", err)
	}
	hdr := []field{
		{"Date", now.Format(time.RFC1123Z)},
		{"From", fromAddr.Address},
		{"To", o.dnt}, // RFC 8098 2.1: to the Disposition-Notification-To address
		{"Subject", mime.QEncoding.Encode("utf-8", koSubject(code, o.subject))},
		{"Message-ID", msgID},
	}
	hdr = append(hdr, threading(o)...)
	hdr = append(hdr,
		field{"Auto-Submitted", "auto-replied"}, // RFC 3834 5
		field{"MIME-Version", "1.0"},
		field{"Content-Type", mime.FormatMediaType("multipart/report", map[string]string{
			"report-type": "disposition-notification", "boundary": mw.Boundary()})},
	)
	var out bytes.Buffer
	writeHeader(&out, hdr)
	out.WriteString("\r\n")
	out.Write(body.Bytes())
	return out.Bytes(), nil
}

// ErrorMail builds the error mail that answers a document that could not be
// integrated when the sender asked for no MDN (IG trans-cda-mss, annexe
// "courriel standard", v1.1.3): subject "[KO Intégration système !][<code>]
// <original subject>", a human-readable part with the code and label, and
// the original message in full as a message/rfc822 attachment
// (message_original.eml); its attachments are not repeated. It goes from
// the recipient's address (from) to the original's From address.
func ErrorMail(original []byte, from string, p Problem, now time.Time, hostname string) ([]byte, error) {
	o, err := readOriginal(original)
	if err != nil {
		return nil, fmt.Errorf("document: error mail: %w", err)
	}
	if o.sender == "" {
		return nil, fmt.Errorf("document: error mail: the original has no From address: %w", ErrBadOriginal)
	}
	fromAddr, err := mail.ParseAddress(from)
	if err != nil {
		return nil, fmt.Errorf("document: error mail: sender %q: %w", from, ErrBadRequest)
	}
	host := token(hostname, 253)
	if host == "" {
		return nil, fmt.Errorf("document: error mail: no hostname: %w", ErrBadRequest)
	}
	code, label := errorCode(p)

	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	var t strings.Builder
	t.WriteString("Bonjour,\n\n")
	t.WriteString("Le document envoyé n’a pas pu être intégré correctement dans le système.\n")
	t.WriteString("Voici les détails de l’erreur rencontrée :\n\n")
	t.WriteString("- Erreur détectée : " + label + "\n")
	t.WriteString("- Code d’erreur : " + itoa(code) + "\n")
	if d := detail(p, label); d != "" {
		t.WriteString("- Détail : " + d + "\n")
	}
	t.WriteString("\nVous trouverez en pièce jointe le courriel d'origine, avec son contenu et\n")
	t.WriteString("ses fichiers (archive IHE_XDM.ZIP et compte rendu au format PDF).\n\n")
	t.WriteString("Veuillez vérifier les informations fournies et soumettre à nouveau les documents après correction.\n\n")
	t.WriteString("Cordialement,\n" + fromAddr.Address + "\n")
	if err := writeText(mw, t.String()); err != nil {
		return nil, fmt.Errorf("document: error mail: %w", err)
	}
	if err := writeOriginal(mw, o.raw, true); err != nil {
		return nil, fmt.Errorf("document: error mail: %w", err)
	}
	if err := mw.Close(); err != nil {
		return nil, fmt.Errorf("document: error mail: %w", err)
	}
	msgID, err := newMessageID(now, host)
	if err != nil {
		return nil, fmt.Errorf("document: error mail: %w", err)
	}
	hdr := []field{
		{"Date", now.Format(time.RFC1123Z)},
		{"From", fromAddr.Address},
		{"To", o.sender},
		{"Subject", mime.QEncoding.Encode("utf-8", koSubject(code, o.subject))},
		{"Message-ID", msgID},
	}
	hdr = append(hdr, threading(o)...)
	hdr = append(hdr,
		field{"Auto-Submitted", "auto-replied"}, // RFC 3834 5
		field{"MIME-Version", "1.0"},
		field{"Content-Type", mime.FormatMediaType("multipart/mixed", map[string]string{"boundary": mw.Boundary()})},
	)
	var out bytes.Buffer
	writeHeader(&out, hdr)
	out.WriteString("\r\n")
	out.Write(body.Bytes())
	return out.Bytes(), nil
}

// threading links the answer to the original (RFC 5322 3.6.4).
func threading(o *original) []field {
	if o.messageID == "" {
		return nil
	}
	return []field{{"In-Reply-To", o.messageID}, {"References", o.messageID}}
}

// writeOriginal adds the original message, unchanged but for line ends, as
// message/rfc822 (RFC 2046 5.2.1: 7bit or 8bit, no other encoding).
func writeOriginal(mw *multipart.Writer, raw []byte, attachment bool) error {
	h := textproto.MIMEHeader{}
	h.Set("Content-Type", "message/rfc822")
	h.Set("Content-Transfer-Encoding", transferEncoding(raw))
	if attachment {
		h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": "message_original.eml"}))
	}
	pw, err := mw.CreatePart(h)
	if err != nil {
		return fmt.Errorf("original message part: %w", err)
	}
	if _, err := pw.Write(raw); err != nil {
		return fmt.Errorf("original message part: %w", err)
	}
	if !bytes.HasSuffix(raw, []byte("\r\n")) {
		if _, err := pw.Write([]byte("\r\n")); err != nil {
			return fmt.Errorf("original message part: %w", err)
		}
	}
	return nil
}

// transferEncoding is "7bit" for ASCII content, else "8bit" (RFC 2045 6.2).
func transferEncoding(b []byte) string {
	for _, c := range b {
		if c >= 0x80 {
			return "8bit"
		}
	}
	return "7bit"
}

// Answer builds the answer the IG trans-cda-mss prescribes for a document
// that could not be integrated: the error MDN when the original asks for
// one and RFC 8098 2.1 allows sending it automatically, else the error mail.
// It returns the message and the address to send it to. Send either with a
// null reverse path (MAIL FROM:<>, RFC 8098 2.1, RFC 3834 3.3).
func Answer(original []byte, from string, p Problem, now time.Time, hostname string) ([]byte, string, error) {
	o, err := readOriginal(original)
	if err != nil {
		return nil, "", fmt.Errorf("document: answer: %w", err)
	}
	if o.dnt != "" && (o.returnPath == "" || strings.EqualFold(o.returnPath, o.dnt)) {
		msg, err := ErrorMDN(original, from, p, now, hostname)
		return msg, o.dnt, err
	}
	msg, err := ErrorMail(original, from, p, now, hostname)
	return msg, o.sender, err
}

// RemoveHeaderFields returns msg without the HeaderName fields of its
// top-level header, so that a sender cannot forge the verdict the delivery
// pipeline prepends. The body is untouched; msg itself is returned when it
// has no such field.
func RemoveHeaderFields(msg []byte) []byte {
	var out []byte
	dropping := false
	i := 0
	for i < len(msg) {
		end := bytes.IndexByte(msg[i:], '\n')
		if end < 0 {
			end = len(msg)
		} else {
			end += i + 1
		}
		line := msg[i:end]
		if len(bytes.TrimRight(line, "\r\n")) == 0 {
			break // end of the header section (RFC 5322 2.1)
		}
		cont := line[0] == ' ' || line[0] == '\t'
		if !cont {
			colon := bytes.IndexByte(line, ':')
			dropping = colon > 0 && strings.EqualFold(strings.TrimSpace(string(line[:colon])), HeaderName)
			if dropping && out == nil {
				out = append(make([]byte, 0, len(msg)), msg[:i]...)
			}
		}
		if out != nil && !dropping {
			out = append(out, line...)
		}
		i = end
	}
	if out == nil {
		return msg
	}
	return append(out, msg[i:]...)
}
