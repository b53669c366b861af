package document

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"strings"
	"time"

	"github.com/relais-mssante/relais/document/cda"
	"github.com/relais-mssante/relais/document/xdm"
)

// SubjectPrefix starts the subject of a mail carrying structured documents
// (IG trans-cda-mss, "Objet du MDN"/"courriel standard"; Référentiel socle
// MSSanté #2): "XDM/1.0/DDM+<libellé> <NOM> <prénom> <date de naissance>".
const SubjectPrefix = "XDM/1.0/DDM+"

// BuildRequest is a structured document to send by mail.
type BuildRequest struct {
	From     string   // the sender's address (a professional or an applicative mailbox)
	FromName string   // display name, optional
	To       []string // recipients' addresses
	CDA      []byte   // the CDA R2 document
	PDF      []byte   // its PDF/A rendering (ECO.2.1.1); optional
	NIL      string   // X-MSS-NIL: the sending product's reference (ECO.2.4.3); optional
	NoReply  bool     // X-MSS-MES: FIN, the patient may not reply (ECO.2.4.4)
	Now      time.Time
	Hostname string // for the Message-ID
	// SourceID is the XDS submission set sourceId (an OID of the sending
	// system, ITI TF-3 4.2.3.3.9); xdm.Build's default when empty.
	SourceID string
}

// Errors returned by Build (wrapped; test with errors.Is).
var (
	ErrBadRequest = errors.New("document: invalid request")
	ErrNotPDF     = errors.New("document: the rendering is not a PDF")
	ErrNotPDFA    = errors.New("document: the PDF does not declare PDF/A conformance")
	ErrNoPatient  = errors.New("document: the CDA identifies no patient")
)

// Build makes the mail a hospital sends (the documents API): the XDM package
// (xdm.Build) as IHE_XDM.ZIP, the PDF/A rendering when given, the subject
// "XDM/1.0/DDM+<libellé> <NOM> <prénom> <date de naissance>", the X-MSS-*
// headers and a short body. One CDA, so one patient, per message
// (Référentiel socle MSSanté #2: one patient per message). It returns the
// RFC 5322 message (CRLF line ends, 7-bit) and its Message-ID (with angle
// brackets).
func Build(req BuildRequest) ([]byte, string, error) {
	from, err := mail.ParseAddress(req.From)
	if err != nil {
		return nil, "", fmt.Errorf("document: build: sender %q: %w", req.From, ErrBadRequest)
	}
	if len(req.To) == 0 {
		return nil, "", fmt.Errorf("document: build: no recipient: %w", ErrBadRequest)
	}
	var to []string
	for _, t := range req.To {
		a, err := mail.ParseAddress(t)
		if err != nil {
			return nil, "", fmt.Errorf("document: build: recipient %q: %w", t, ErrBadRequest)
		}
		to = append(to, a.Address)
	}
	host := token(req.Hostname, 253)
	if host == "" {
		return nil, "", fmt.Errorf("document: build: no hostname: %w", ErrBadRequest)
	}
	now := req.Now
	if now.IsZero() {
		now = time.Now()
	}
	h, err := cda.Parse(bytes.NewReader(req.CDA), cda.Limits{})
	if err != nil {
		return nil, "", fmt.Errorf("document: build: reading the CDA: %w", err)
	}
	p := h.Patient
	if (p.INS == nil && len(p.IDs) == 0) || (p.Family == "" && p.BirthName == "") {
		return nil, "", fmt.Errorf("document: build: %w", ErrNoPatient)
	}
	if h.Type.Code == "" {
		return nil, "", fmt.Errorf("document: build: the CDA has no type code: %w", ErrBadRequest)
	}
	if req.PDF != nil {
		if !bytes.HasPrefix(req.PDF, []byte("%PDF-")) {
			return nil, "", fmt.Errorf("document: build: %w", ErrNotPDF)
		}
		// ECO.2.1.1: the copy is PDF/A-1.
		if !IsPDFA(req.PDF) {
			return nil, "", fmt.Errorf("document: build: %w", ErrNotPDFA)
		}
	}

	zipData, _, err := xdm.Build(xdm.BuildInput{
		Documents:  []xdm.Document{{Data: req.CDA, Header: h, MimeType: "text/xml"}},
		Sender:     senderAuthor(h, from.Address),
		Recipients: to,
		SourceID:   req.SourceID,
		Product:    product(req.NIL),
		Now:        now,
	})
	if err != nil {
		return nil, "", fmt.Errorf("document: build: XDM package: %w", err)
	}

	msgID, err := newMessageID(now, host)
	if err != nil {
		return nil, "", fmt.Errorf("document: build: %w", err)
	}
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	hdr := []field{
		{"Date", now.Format(time.RFC1123Z)}, // RFC 5322 3.3
		{"From", (&mail.Address{Name: clean(req.FromName, 100), Address: from.Address}).String()},
		{"To", strings.Join(to, ", ")},
		{"Subject", mime.QEncoding.Encode("utf-8", Subject(h))},
		{"Message-ID", msgID},
		{"MIME-Version", "1.0"},
		// ECO.2.4.1: the CDA type code(s), comma-separated.
		{"X-MSS-CODECDA", token(h.Type.Code, 64)},
		// ECO.2.4.2: O when the document carries the (qualified) INS.
		{"X-MSS-INS", yesNo(p.INS != nil && p.INS.Extension != "")},
	}
	if product := clean(req.NIL, 64); product != "" {
		hdr = append(hdr, field{"X-MSS-NIL", mime.QEncoding.Encode("utf-8", product)}) // ECO.2.4.3
	}
	if req.NoReply {
		hdr = append(hdr, field{"X-MSS-MES", "FIN"}) // ECO.2.4.4
	}
	hdr = append(hdr, field{"Content-Type", mime.FormatMediaType("multipart/mixed", map[string]string{"boundary": mw.Boundary()})})

	if err := writeText(mw, bodyText(h, req)); err != nil {
		return nil, "", fmt.Errorf("document: build: %w", err)
	}
	if err := writeAttachment(mw, "application/zip", XDMFilename, zipData); err != nil {
		return nil, "", fmt.Errorf("document: build: %w", err)
	}
	if req.PDF != nil {
		if err := writeAttachment(mw, "application/pdf", PDFFilename(h, now), req.PDF); err != nil {
			return nil, "", fmt.Errorf("document: build: %w", err)
		}
	}
	if err := mw.Close(); err != nil {
		return nil, "", fmt.Errorf("document: build: %w", err)
	}
	var out bytes.Buffer
	writeHeader(&out, hdr)
	out.WriteString("\r\n")
	out.Write(buf.Bytes())
	return out.Bytes(), msgID, nil
}

// Subject returns the subject of a mail carrying the document with header
// h (IG trans-cda-mss): "XDM/1.0/DDM+<libellé> <NOM> <prénom> <date de
// naissance>", the date as DD/MM/YYYY as in the IG's examples.
func Subject(h cda.Header) string {
	label := h.Title
	if strings.TrimSpace(label) == "" {
		label = h.Type.Display
	}
	family := h.Patient.Family
	if family == "" {
		family = h.Patient.BirthName
	}
	given := firstGiven(h.Patient)
	return SubjectPrefix + joinNonEmpty(" ", clean(label, 200), strings.ToUpper(clean(family, 100)), clean(given, 100), birthDate(h.Patient.BirthDate))
}

// firstGiven is the first of the patient's first names: the CI-SIS puts
// the list of birth first names, space-separated, in the first given
// element (Référentiel INS: "premier prénom").
func firstGiven(p cda.Patient) string {
	if len(p.Given) == 0 {
		return ""
	}
	if f := strings.Fields(p.Given[0]); len(f) > 0 {
		return f[0]
	}
	return ""
}

// birthDate turns YYYYMMDD[...] into DD/MM/YYYY; other forms as written.
func birthDate(s string) string {
	s = token(s, 32)
	if len(s) >= 8 && isDigits(s[:8]) {
		return s[6:8] + "/" + s[4:6] + "/" + s[:4]
	}
	return s
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// PDFFilename names the PDF copy after Référentiel socle MSSanté #2
// ECO.2.1.6 as the IG's example applies it: "<YYYYMMDD>_<libellé>_<NOM>_
// <prénom>.pdf", fields separated by "_" (labels may hold spaces and
// accents), the date being the document's.
func PDFFilename(h cda.Header, now time.Time) string {
	d := h.EffectiveTime
	if d.IsZero() {
		d = now
	}
	label := h.Type.Display
	if label == "" {
		label = h.Title
	}
	given := firstGiven(h.Patient)
	family := h.Patient.Family
	if family == "" {
		family = h.Patient.BirthName
	}
	parts := []string{d.Format("20060102")}
	for _, s := range []string{label, strings.ToUpper(family), given} {
		if s = fileSafe(s); s != "" {
			parts = append(parts, s)
		}
	}
	return strings.Join(parts, "_") + ".pdf"
}

// fileSafe drops the characters file systems refuse and the "_" separator.
func fileSafe(s string) string {
	s = clean(s, 80)
	return strings.Map(func(r rune) rune {
		switch r {
		case '/', '\\', ':', '*', '?', '"', '<', '>', '|', '_':
			return ' '
		}
		return r
	}, s)
}

func product(nilRef string) string {
	if p := clean(nilRef, 64); p != "" {
		return p
	}
	return "Relais"
}

func yesNo(b bool) string {
	if b {
		return "O"
	}
	return "N"
}

// senderAuthor is the submission set author: the CDA's first author
// (xdm.AuthorFromCDA, CI-SIS "Lien entre l'en-tête CDA et les métadonnées
// XDS") with the sender's MSSanté address as telecom (XTN).
func senderAuthor(h cda.Header, from string) xdm.XDSAuthor {
	var a xdm.XDSAuthor
	if len(h.Authors) > 0 {
		a = xdm.AuthorFromCDA(h.Authors[0])
	}
	a.Telecom = append(a.Telecom, "^^Internet^"+from)
	return a
}

func bodyText(h cda.Header, req BuildRequest) string {
	p := h.Patient
	given := firstGiven(p)
	family := p.Family
	if family == "" {
		family = p.BirthName
	}
	title := clean(h.Title, 200)
	if title == "" {
		title = clean(h.Type.Display, 200)
	}
	var b strings.Builder
	b.WriteString("Bonjour,\n\n")
	fmt.Fprintf(&b, "Vous trouverez ci-joint le document « %s » concernant %s", title, joinNonEmpty(" ", clean(given, 100), strings.ToUpper(clean(family, 100))))
	if d := birthDate(p.BirthDate); d != "" {
		fmt.Fprintf(&b, ", né(e) le %s", d)
	}
	b.WriteString(".\n\n")
	b.WriteString("La pièce jointe " + XDMFilename + " contient le document structuré (CDA) destiné à être intégré au dossier du patient")
	if req.PDF != nil {
		b.WriteString(" ; le fichier PDF en est la copie lisible")
	}
	b.WriteString(".\n")
	if req.NoReply {
		b.WriteString("\nIl n'est pas possible de répondre à ce message.\n")
	}
	if n := clean(req.FromName, 100); n != "" {
		b.WriteString("\nCordialement,\n" + n + "\n")
	}
	return b.String()
}

type field struct{ name, value string }

// writeHeader writes header fields, folding unstructured values at white
// space (RFC 5322 2.2.3).
func writeHeader(w *bytes.Buffer, fields []field) {
	for _, f := range fields {
		var b strings.Builder
		fold(&b, f.name+":", strings.Fields(f.value))
		w.WriteString(b.String())
	}
}

func newMessageID(now time.Time, host string) (string, error) {
	var r [12]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", fmt.Errorf("message id: %w", err)
	}
	// RFC 5322 3.6.4: a globally unique id-left@id-right.
	return "<" + now.UTC().Format("20060102150405") + "." + hex.EncodeToString(r[:]) + "@" + host + ">", nil
}

// writeText adds a text/plain UTF-8 part in quoted-printable (RFC 2045
// 6.7), CRLF line ends.
func writeText(mw *multipart.Writer, text string) error {
	h := textproto.MIMEHeader{}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Content-Transfer-Encoding", "quoted-printable")
	pw, err := mw.CreatePart(h)
	if err != nil {
		return fmt.Errorf("text part: %w", err)
	}
	qw := quotedprintable.NewWriter(pw)
	if _, err := io.WriteString(qw, strings.ReplaceAll(text, "\n", "\r\n")); err != nil {
		return fmt.Errorf("text part: %w", err)
	}
	if err := qw.Close(); err != nil {
		return fmt.Errorf("text part: %w", err)
	}
	return nil
}

// writeAttachment adds a base64 attachment (RFC 2045 6.8, lines of 76),
// its name in Content-Type name and Content-Disposition filename, RFC 2231
// encoded when not ASCII (mime.FormatMediaType does it).
func writeAttachment(mw *multipart.Writer, mediaType, name string, data []byte) error {
	h := textproto.MIMEHeader{}
	h.Set("Content-Type", mime.FormatMediaType(mediaType, map[string]string{"name": name}))
	h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": name}))
	h.Set("Content-Transfer-Encoding", "base64")
	pw, err := mw.CreatePart(h)
	if err != nil {
		return fmt.Errorf("attachment %s: %w", name, err)
	}
	if err := writeBase64(pw, data); err != nil {
		return fmt.Errorf("attachment %s: %w", name, err)
	}
	return nil
}

func writeBase64(w io.Writer, data []byte) error {
	enc := base64.StdEncoding.EncodeToString(data)
	var b bytes.Buffer
	for len(enc) > 76 {
		b.WriteString(enc[:76])
		b.WriteString("\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc)
	b.WriteString("\r\n")
	_, err := w.Write(b.Bytes())
	return err
}
