package report

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/textproto"
	"strings"

	"github.com/relais-mssante/relais/storage"
)

// Kind says what a report is.
type Kind string

const (
	KindDSN Kind = "dsn" // RFC 3464 delivery status notification
	KindMDN Kind = "mdn" // RFC 8098 message disposition notification
)

// Bounds of Parse.
const (
	// MaxReportSize is the most of a message Parse looks at: the report
	// parts come before the returned message, so a larger message is read
	// up to here and the rest ignored.
	MaxReportSize  = 1 << 20
	maxHeaderBytes = 64 << 10
	maxParts       = 16
	maxDepth       = 3
	maxStatusBytes = 64 << 10
	maxFields      = 1000
	maxRecipients  = 500
)

// ErrNotReport means the message is not a DSN or an MDN.
var ErrNotReport = errors.New("report: not a delivery or disposition report")

// Report is what a DSN or an MDN says about a message.
type Report struct {
	Kind Kind
	// OriginalMessageID is the Message-ID of the message the report is
	// about, with its angle brackets: an MDN's Original-Message-ID, a DSN's
	// returned message or headers, else the report's In-Reply-To or
	// References.
	OriginalMessageID string
	// Reporter is Reporting-MTA (DSN) or Reporting-UA (MDN), as given.
	Reporter string
	// EnvID is a DSN's Original-Envelope-Id.
	EnvID      string
	Recipients []Recipient
}

// Parse recognises a DSN (multipart/report; report-type=delivery-status,
// RFC 3464) or an MDN (report-type=disposition-notification, RFC 8098),
// possibly inside one multipart/signed layer, and returns what it says.
// Anything else is ErrNotReport.
func Parse(raw []byte) (rep Report, err error) {
	defer func() { // bounds are checked, but a parser must never take the server down
		if r := recover(); r != nil {
			rep, err = Report{}, fmt.Errorf("report: malformed report: %v", r)
		}
	}()
	if len(raw) > MaxReportSize {
		raw = raw[:MaxReportSize]
	}
	hdr, body, err := splitHeader(raw)
	if err != nil {
		return Report{}, err
	}
	p := parser{}
	if err := p.entity(hdr, body, 0); err != nil {
		return Report{}, err
	}
	if p.rep.Kind == "" {
		return Report{}, ErrNotReport
	}
	if p.rep.OriginalMessageID == "" {
		p.rep.OriginalMessageID = p.returnedID
	}
	if p.rep.OriginalMessageID == "" {
		p.rep.OriginalMessageID = cleanMsgID(hdr.Get("In-Reply-To"))
	}
	if p.rep.OriginalMessageID == "" {
		// References: the last one is the parent (RFC 5322 3.6.4).
		refs := strings.Fields(hdr.Get("References"))
		if len(refs) > 0 {
			p.rep.OriginalMessageID = cleanMsgID(refs[len(refs)-1])
		}
	}
	return p.rep, nil
}

type parser struct {
	rep        Report
	returnedID string
	parts      int
}

// entity handles one MIME entity: a multipart/report (the report), a
// multipart/signed around one, or nothing of interest.
func (p *parser) entity(h textproto.MIMEHeader, body []byte, depth int) error {
	if depth > maxDepth {
		return nil
	}
	mt, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil {
		return ErrNotReport
	}
	switch mt {
	case "multipart/report", "multipart/signed":
	default:
		return ErrNotReport
	}
	boundary := params["boundary"]
	if boundary == "" {
		return ErrNotReport
	}
	mr := multipart.NewReader(bytes.NewReader(body), boundary)
	first := true
	for {
		p.parts++
		if p.parts > maxParts {
			break
		}
		part, err := mr.NextRawPart() // raw: we decode ourselves, bounded
		if err == io.EOF {
			break
		}
		if err != nil {
			if p.rep.Kind != "" {
				break // a truncated returned message does not spoil the report
			}
			return fmt.Errorf("report: reading parts: %w", err)
		}
		isFirst := first
		first = false
		ct, _, _ := mime.ParseMediaType(part.Header.Get("Content-Type"))
		switch {
		case mt == "multipart/signed":
			if !isFirst {
				continue // the signature
			}
			if ct != "multipart/report" {
				return ErrNotReport // signed mail, not a signed report: no need to read it
			}
			data, err := readBounded(part, MaxReportSize)
			if err != nil && p.rep.Kind == "" {
				return err
			}
			if err := p.entity(part.Header, data, depth+1); err != nil {
				return err
			}
			return nil
		case ct == "message/delivery-status" || ct == "message/global-delivery-status":
			data, err := partData(part, maxStatusBytes)
			if err != nil {
				return err
			}
			if err := p.deliveryStatus(data); err != nil {
				return err
			}
		case ct == "message/disposition-notification" || ct == "message/global-disposition-notification":
			data, err := partData(part, maxStatusBytes)
			if err != nil {
				return err
			}
			if err := p.disposition(data); err != nil {
				return err
			}
		case ct == "message/rfc822" || ct == "message/global" || ct == "text/rfc822-headers" || ct == "message/global-headers":
			data, err := partData(part, maxHeaderBytes)
			if err != nil && !errors.Is(err, errTooLong) {
				continue
			}
			if h, _, err := splitHeader(data); err == nil {
				p.returnedID = cleanMsgID(h.Get("Message-Id"))
			}
		}
	}
	return nil
}

// deliveryStatus parses a message/delivery-status body, RFC 3464 2.1: a
// per-message group, then one group per recipient, separated by blank
// lines.
func (p *parser) deliveryStatus(data []byte) error {
	groups, err := fieldGroups(data)
	if err != nil {
		return err
	}
	if len(groups) < 2 {
		return fmt.Errorf("report: delivery-status without a recipient: %w", ErrNotReport)
	}
	p.rep.Kind = KindDSN
	p.rep.Reporter = typedValue(groups[0].Get("Reporting-Mta")) // 2.2.2
	p.rep.EnvID = strings.TrimSpace(groups[0].Get("Original-Envelope-Id"))
	for _, g := range groups[1:] {
		r := Recipient{
			OriginalRecipient: strings.TrimSpace(g.Get("Original-Recipient")),
			FinalRecipient:    typedValue(g.Get("Final-Recipient")),                        // 2.3.2
			Action:            Action(strings.ToLower(strings.TrimSpace(g.Get("Action")))), // 2.3.3
			Status:            firstWord(g.Get("Status")),                                  // 2.3.4
			RemoteMTA:         typedValue(g.Get("Remote-Mta")),
			Diagnostic:        typedValue(g.Get("Diagnostic-Code")),
		}
		if r.FinalRecipient == "" {
			continue
		}
		if len(p.rep.Recipients) >= maxRecipients {
			break
		}
		p.rep.Recipients = append(p.rep.Recipients, r)
	}
	return nil
}

// disposition parses a message/disposition-notification body, RFC 8098
// 3.2.
func (p *parser) disposition(data []byte) error {
	groups, err := fieldGroups(data)
	if err != nil {
		return err
	}
	if len(groups) == 0 {
		return ErrNotReport
	}
	g := groups[0]
	p.rep.Kind = KindMDN
	p.rep.Reporter = strings.TrimSpace(g.Get("Reporting-Ua"))          // 3.2.1
	p.rep.OriginalMessageID = cleanMsgID(g.Get("Original-Message-Id")) // 3.2.5
	r := Recipient{
		OriginalRecipient: strings.TrimSpace(g.Get("Original-Recipient")), // 3.2.3
		FinalRecipient:    typedValue(g.Get("Final-Recipient")),           // 3.2.4
		Disposition:       oneLine(g.Get("Disposition")),                  // 3.2.6
	}
	if r.FinalRecipient == "" {
		r.FinalRecipient = typedValue(r.OriginalRecipient)
	}
	p.rep.Recipients = append(p.rep.Recipients, r)
	return nil
}

// DispositionType returns the disposition-type of an MDN's Disposition
// ("displayed", "deleted", "dispatched", "processed"; RFC 8098 3.2.6.2),
// lower-case, or "".
func (r Recipient) DispositionType() string {
	_, after, ok := strings.Cut(r.Disposition, ";")
	if !ok {
		return ""
	}
	t, _, _ := strings.Cut(after, "/") // modifiers follow a '/'
	return strings.ToLower(strings.TrimSpace(t))
}

// DeliveryState maps a report's verdict on a recipient to the status the
// sender sees; ok is false when the report changes nothing.
func (r Recipient) DeliveryState() (state storage.DeliveryState, detail string, ok bool) {
	if r.Disposition != "" { // MDN
		switch r.DispositionType() {
		case "displayed":
			return storage.StatusRead, r.Disposition, true // RFC 8098 3.2.6.2
		case "dispatched", "processed":
			return storage.StatusDelivered, r.Disposition, true
		}
		return "", "", false
	}
	detail = r.Diagnostic
	if detail == "" {
		detail = r.Status
	}
	switch r.Action { // RFC 3464 2.3.3
	case ActionDelivered:
		return storage.StatusDelivered, detail, true
	case ActionRelayed, ActionExpanded:
		return storage.StatusRelayed, detail, true
	case ActionDelayed:
		return storage.StatusDelayed, detail, true
	case ActionFailed:
		return storage.StatusFailed, detail, true
	}
	return "", "", false
}

var errTooLong = errors.New("report: part too long")

// partData reads a part's body, decoding its Content-Transfer-Encoding,
// at most limit bytes (errTooLong with the first limit bytes beyond).
func partData(part *multipart.Part, limit int) ([]byte, error) {
	var r io.Reader = part
	switch strings.ToLower(strings.TrimSpace(part.Header.Get("Content-Transfer-Encoding"))) {
	case "base64":
		r = base64.NewDecoder(base64.StdEncoding, &newlineSkipper{r: part})
	case "quoted-printable":
		r = quotedprintable.NewReader(part)
	}
	return readBounded(r, limit)
}

func readBounded(r io.Reader, limit int) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, int64(limit)+1))
	if err != nil {
		return data, fmt.Errorf("report: reading a part: %w", err)
	}
	if len(data) > limit {
		return data[:limit], errTooLong
	}
	return data, nil
}

// newlineSkipper drops CR and LF so that base64 lines decode as one.
type newlineSkipper struct{ r io.Reader }

func (n *newlineSkipper) Read(p []byte) (int, error) {
	c, err := n.r.Read(p)
	j := 0
	for _, b := range p[:c] {
		if b != '\r' && b != '\n' {
			p[j] = b
			j++
		}
	}
	return j, err
}

// fieldGroups splits a status body into groups of header fields (RFC
// 3464 2.1), unfolding continuation lines.
func fieldGroups(data []byte) ([]textproto.MIMEHeader, error) {
	var groups []textproto.MIMEHeader
	cur := textproto.MIMEHeader{}
	var last string
	fields := 0
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 4096), maxStatusBytes)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(line) == "" {
			if len(cur) > 0 {
				groups = append(groups, cur)
				cur = textproto.MIMEHeader{}
			}
			last = ""
			continue
		}
		if line[0] == ' ' || line[0] == '\t' { // RFC 5322 2.2.3 folding
			if last != "" {
				vals := cur[last]
				vals[len(vals)-1] += " " + strings.TrimSpace(line)
			}
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		fields++
		if fields > maxFields {
			return nil, fmt.Errorf("report: more than %d fields", maxFields)
		}
		last = textproto.CanonicalMIMEHeaderKey(strings.TrimSpace(name))
		cur[last] = append(cur[last], strings.TrimSpace(value))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("report: reading status fields: %w", err)
	}
	if len(cur) > 0 {
		groups = append(groups, cur)
	}
	return groups, nil
}

// typedValue returns the value after "type;" ("rfc822; a@b" gives "a@b",
// "smtp; 550 ..." gives "550 ..."), trimmed; a value without a type is
// returned whole.
func typedValue(s string) string {
	if _, v, ok := strings.Cut(s, ";"); ok {
		s = v
	}
	return oneLine(strings.TrimSpace(s))
}

func firstWord(s string) string {
	f := strings.Fields(s)
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

// splitHeader parses the header section at the start of raw, bounded.
func splitHeader(raw []byte) (textproto.MIMEHeader, []byte, error) {
	end, bodyStart := -1, len(raw)
	if i := bytes.Index(raw, []byte("\r\n\r\n")); i >= 0 {
		end, bodyStart = i+4, i+4
	}
	if i := bytes.Index(raw, []byte("\n\n")); i >= 0 && (end < 0 || i+2 < end) {
		end, bodyStart = i+2, i+2
	}
	if end < 0 {
		end = len(raw)
	}
	if end > maxHeaderBytes {
		return nil, nil, fmt.Errorf("report: header longer than %d bytes: %w", maxHeaderBytes, ErrNotReport)
	}
	h, err := textproto.NewReader(bufio.NewReader(bytes.NewReader(withBlankLine(raw[:end])))).ReadMIMEHeader()
	if err != nil && len(h) == 0 {
		return nil, nil, fmt.Errorf("report: reading the header: %w", ErrNotReport)
	}
	return h, raw[bodyStart:], nil
}
