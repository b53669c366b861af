package document

import (
	"bytes"
	"errors"
	"fmt"
	"net/mail"
	"net/textproto"
	"path"
	"sort"
	"strings"

	"github.com/relais-mssante/relais/document/cda"
	"github.com/relais-mssante/relais/document/xdm"
)

// XDMFilename is the attachment name of an XDM package in an MSSanté mail
// (Référentiel socle MSSanté #2 ECO.2.1.1; IHE ITI TF-1 16 for XDM over
// e-mail). It is matched without regard to case.
const XDMFilename = "IHE_XDM.ZIP"

// MediaTypeCDA is the media type of a CDA document sent on its own
// (HL7 CDA R2, media type registration).
const MediaTypeCDA = "application/hl7-cda+xml"

// Analyze finds the structured documents of a message (IHE_XDM.ZIP
// attachments, application/hl7-cda+xml parts, bare CDA .xml attachments),
// parses them within limits and checks the MSSanté rules. It never fails on
// bad input: problems are in the result. msg is never modified.
func Analyze(msg []byte, lim Limits) (a Analysis) {
	lim = lim.withDefaults()
	defer func() {
		// The parsers below bound their input, but a panic in any of them
		// must not take the delivery down: it becomes a problem.
		if r := recover(); r != nil {
			a.attempt = true
			a.Problems = append(a.Problems, Problem{Code: CodeOther, Text: "internal error while reading the structured documents"})
		}
	}()
	if int64(len(msg)) > lim.MaxMessage {
		a.Problems = append(a.Problems, Problem{Warning: true, Text: "message too large to look for structured documents"})
		return a
	}
	m, err := mail.ReadMessage(bytes.NewReader(msg))
	if err != nil {
		return a // not a message we can read; nothing to find
	}
	a.Subject = clean(decodeHeader(m.Header.Get("Subject")), 998)
	a.MessageID = clean(m.Header.Get("Message-Id"), 998)

	w := &walker{lim: lim}
	_ = w.walk(textproto.MIMEHeader(m.Header), m.Body, 0) // errStop: keep what was read

	var pdfs []leaf
	for _, lf := range w.leaves {
		switch classify(lf) {
		case kindPDF:
			pdfs = append(pdfs, lf)
		case kindZip:
			a.readXDM(lf, lim)
		case kindCDA:
			a.readCDA(lf, lim, true)
		case kindXML:
			a.readCDA(lf, lim, false)
		}
	}
	a.dedupe()
	if len(a.Documents) == 0 && !a.attempt {
		return a
	}
	if len(w.notes) > 0 {
		a.Problems = append(a.Problems, Problem{Warning: true, Text: "MIME structure: " + strings.Join(w.notes, ", ")})
	}
	for i := range a.Documents {
		d := &a.Documents[i]
		if len(pdfs) > 0 {
			d.PDF = true
		}
		checkDocument(d)
	}
	a.checkMessage(textproto.MIMEHeader(m.Header), pdfs)
	return a
}

type kind int

const (
	kindOther kind = iota
	kindPDF
	kindZip
	kindCDA // declared application/hl7-cda+xml
	kindXML // an XML attachment that may be a CDA
)

func classify(lf leaf) kind {
	ext := strings.ToLower(path.Ext(lf.filename))
	switch {
	case lf.mediaType == "message/rfc822" || lf.mediaType == "message/global":
		return kindOther
	case strings.EqualFold(lf.filename, XDMFilename),
		ext == ".zip",
		lf.mediaType == "application/zip", lf.mediaType == "application/x-zip-compressed", lf.mediaType == "application/x-zip":
		return kindZip
	case lf.mediaType == MediaTypeCDA:
		return kindCDA
	case lf.mediaType == "application/pdf" || ext == ".pdf":
		return kindPDF
	case ext == ".xml" || lf.mediaType == "text/xml" || lf.mediaType == "application/xml":
		return kindXML
	}
	return kindOther
}

func displayName(lf leaf, fallback string) string {
	if lf.filename != "" {
		return lf.filename
	}
	return fallback
}

// readXDM reads a ZIP attachment as an IHE XDM package. An attachment named
// IHE_XDM.ZIP that does not open is a broken attempt; any other ZIP without
// XDM metadata is an ordinary attachment.
func (a *Analysis) readXDM(lf leaf, lim Limits) {
	named := strings.EqualFold(lf.filename, XDMFilename)
	name := displayName(lf, XDMFilename)
	if lf.truncated {
		if named {
			a.attempt = true
			a.Problems = append(a.Problems, Problem{Code: CodeOther, Text: name + ": attachment exceeds the size limit"})
		}
		return
	}
	// Any other ZIP is an XDM package only if it has an IHE_XDM folder:
	// entry names are stored in clear (APPNOTE 4.3.7, 4.3.12), so looking
	// for the name costs no decompression, and an ordinary archive that
	// compresses well is never mistaken for a broken package.
	if !named && !bytes.Contains(lf.data, []byte("IHE_XDM/")) && !bytes.Contains(lf.data, []byte("ihe_xdm/")) {
		return
	}
	pkg, err := xdm.Read(lf.data, lim.XDM)
	if err != nil {
		if !named && (errors.Is(err, xdm.ErrNotZip) || errors.Is(err, xdm.ErrNoMetadata)) {
			return
		}
		a.attempt = true
		a.Problems = append(a.Problems, Problem{Code: CodeOther, Text: name + ": not a readable IHE XDM package: " + clean(err.Error(), 300)})
		return
	}
	first := len(a.Documents)
	pdfInside := false
	for i := range pkg.Entries {
		e := &pkg.Entries[i]
		data := pkg.Files[e.URI]
		mt := strings.ToLower(e.MimeType)
		if mt == "application/pdf" {
			pdfInside = true
			continue
		}
		if !isXMLType(mt) && !looksLikeCDA(data) {
			continue
		}
		if len(a.Documents) >= lim.MaxDocuments {
			a.Problems = append(a.Problems, Problem{Code: CodeOther, Text: fmt.Sprintf("more than %d documents in one message", lim.MaxDocuments)})
			break
		}
		d := Document{Source: SourceXDM, Filename: name, Subset: pkg.Subset, Path: clean(e.URI, 255), Entry: e}
		h, err := cda.Parse(bytes.NewReader(data), lim.CDA)
		if err != nil {
			d.Problems = append(d.Problems, Problem{Code: CodeOther, Text: "CDA " + d.Path + " in " + name + " unreadable: " + clean(err.Error(), 300)})
		} else {
			d.Header, d.Parsed = h, true
		}
		a.Documents = append(a.Documents, d)
	}
	if len(a.Documents) == first {
		a.attempt = true
		a.Problems = append(a.Problems, Problem{Code: CodeOther, Text: name + ": the IHE XDM package holds no CDA document"})
		return
	}
	for i := first; i < len(a.Documents); i++ {
		a.Documents[i].PDF = pdfInside
	}
	// IHE ITI TF-3 4.2.3.2: the document entry describes the document; the
	// CI-SIS derives it from the CDA header. A contradiction is a problem.
	for _, p := range pkg.Check(nil) {
		text := "METADATA.XML contradicts the CDA: " + clean(p.Field, 64) + ": " + clean(p.Detail, 200)
		placed := false
		for i := first; i < len(a.Documents); i++ {
			if d := &a.Documents[i]; d.Path == p.Entry && p.Field == "patientId" && d.Parsed && d.Header.Patient.INS == nil {
				placed = true // a CDA without INS: reported once, as 903, by checkDocument
				break
			}
			if a.Documents[i].Path == p.Entry {
				a.Documents[i].Problems = append(a.Documents[i].Problems, Problem{Code: CodeOther, Text: text})
				placed = true
				break
			}
		}
		if !placed {
			a.Problems = append(a.Problems, Problem{Code: CodeOther, Text: name + ": " + text})
		}
	}
}

func isXMLType(mt string) bool {
	return mt == "text/xml" || mt == "application/xml" || mt == MediaTypeCDA || strings.HasSuffix(mt, "+xml")
}

// readCDA reads an attachment as a CDA document. A part declared
// application/hl7-cda+xml that does not parse is a broken attempt; any other
// XML attachment that is not a ClinicalDocument is ignored.
func (a *Analysis) readCDA(lf leaf, lim Limits, declared bool) {
	name := displayName(lf, "CDA attachment")
	if lf.truncated {
		if declared {
			a.attempt = true
			a.Problems = append(a.Problems, Problem{Code: CodeOther, Text: name + ": attachment exceeds the size limit"})
		}
		return
	}
	if !declared && !looksLikeCDA(lf.data) {
		return
	}
	if len(a.Documents) >= lim.MaxDocuments {
		a.Problems = append(a.Problems, Problem{Code: CodeOther, Text: fmt.Sprintf("more than %d documents in one message", lim.MaxDocuments)})
		return
	}
	h, err := cda.Parse(bytes.NewReader(lf.data), lim.CDA)
	d := Document{Source: SourceCDA, Filename: name}
	if err != nil {
		if !declared && errors.Is(err, cda.ErrNotCDA) {
			return
		}
		a.attempt = true
		d.Problems = append(d.Problems, Problem{Code: CodeOther, Text: name + ": unreadable CDA: " + clean(err.Error(), 300)})
	} else {
		d.Header, d.Parsed = h, true
	}
	a.Documents = append(a.Documents, d)
}

// dedupe drops a bare CDA that is also in an XDM package of the message
// (same ClinicalDocument/id).
func (a *Analysis) dedupe() {
	inXDM := map[cda.ID]bool{}
	for _, d := range a.Documents {
		if d.Source == SourceXDM && d.Parsed && !d.Header.ID.IsZero() {
			inXDM[d.Header.ID] = true
		}
	}
	if len(inXDM) == 0 {
		return
	}
	out := a.Documents[:0]
	for _, d := range a.Documents {
		if d.Source == SourceCDA && d.Parsed && inXDM[d.Header.ID] {
			continue
		}
		out = append(out, d)
	}
	a.Documents = out
}

// checkDocument applies the rules on one CDA header.
func checkDocument(d *Document) {
	if !d.Parsed {
		return
	}
	h := d.Header
	p := h.Patient
	if p.INS == nil || strings.TrimSpace(p.INS.Extension) == "" {
		// IG trans-cda-mss, error-codes: 903 "INS non présent dans le document".
		d.Problems = append(d.Problems, Problem{Code: CodeNoINS, Text: Label(CodeNoINS)})
	} else {
		// Référentiel INS: the INS is the matricule plus the identity traits
		// (birth name, first names, birth date, sex). Missing traits: 905.
		var missing []string
		if p.BirthName == "" && p.Family == "" {
			missing = append(missing, "family name")
		}
		if len(p.Given) == 0 {
			missing = append(missing, "given name")
		}
		if p.BirthDate == "" {
			missing = append(missing, "birth date")
		}
		if p.Gender == "" {
			missing = append(missing, "sex")
		}
		if len(missing) > 0 {
			d.Problems = append(d.Problems, Problem{Code: CodeINSIncomplete, Text: Label(CodeINSIncomplete) + " (missing: " + strings.Join(missing, ", ") + ")"})
		}
		switch insCheck(p.INS.Extension) {
		case insMalformed:
			d.Problems = append(d.Problems, Problem{Code: CodeOther, Text: "INS matricule malformed (15 characters expected)"})
		case insBadKey:
			d.Problems = append(d.Problems, Problem{Warning: true, Text: "INS matricule control key does not match"})
		}
	}
	if h.ID.IsZero() {
		d.Problems = append(d.Problems, Problem{Code: CodeOther, Text: "document identifier (ClinicalDocument/id) missing"})
	}
	if h.Type.Code == "" {
		d.Problems = append(d.Problems, Problem{Code: CodeOther, Text: "document type (ClinicalDocument/code) missing"})
	} else if h.Type.System != "" && h.Type.System != cda.OIDLOINC {
		d.Problems = append(d.Problems, Problem{Warning: true, Text: "document type is not a LOINC code"})
	}
	if strings.TrimSpace(h.Title) == "" {
		d.Problems = append(d.Problems, Problem{Warning: true, Text: "document title missing"})
	}
}

type insVerdict int

const (
	insOK insVerdict = iota
	insMalformed
	insBadKey
)

// insCheck checks an INS matricule (NIR or NIA): 13 characters and a 2-digit
// key, key = 97 - (number mod 97), Corsican departments 2A and 2B counted
// as 19 and 18 (INSEE NIR rules, Référentiel INS).
func insCheck(s string) insVerdict {
	if len(s) != 15 {
		return insMalformed
	}
	body := []byte(strings.ToUpper(s[:13]))
	switch string(body[5:7]) {
	case "2A":
		body[5], body[6] = '1', '9'
	case "2B":
		body[5], body[6] = '1', '8'
	}
	var n uint64
	for _, c := range body {
		if c < '0' || c > '9' {
			return insMalformed
		}
		n = n*10 + uint64(c-'0')
	}
	k := 0
	for _, c := range []byte(s[13:]) {
		if c < '0' || c > '9' {
			return insMalformed
		}
		k = k*10 + int(c-'0')
	}
	if uint64(k) != 97-n%97 {
		return insBadKey
	}
	return insOK
}

// patientKey identifies a patient across documents: the INS, else the first
// identifier, else the identity traits.
func patientKey(p cda.Patient) string {
	if p.INS != nil && p.INS.Extension != "" {
		return "ins:" + p.INS.Extension
	}
	if len(p.IDs) > 0 {
		return "id:" + p.IDs[0].String()
	}
	return "traits:" + strings.ToUpper(p.Family) + "|" + strings.Join(p.Given, " ") + "|" + p.BirthDate
}

// checkMessage applies the rules that span the message (Référentiel socle
// MSSanté #2 ECO.2.1.x, ECO.2.4.x).
func (a *Analysis) checkMessage(h textproto.MIMEHeader, pdfs []leaf) {
	patients := map[string]bool{}
	types := map[string]bool{}
	anyINS, anyXDM, anyBare := false, false, false
	for _, d := range a.Documents {
		if d.Source == SourceXDM {
			anyXDM = true
		} else {
			anyBare = true
		}
		if !d.Parsed {
			continue
		}
		patients[patientKey(d.Header.Patient)] = true
		if d.Header.Type.Code != "" {
			types[d.Header.Type.Code] = true
		}
		if d.Header.Patient.INS != nil {
			anyINS = true
		}
	}
	if len(patients) > 1 {
		a.Problems = append(a.Problems, Problem{Code: CodeOther, Text: fmt.Sprintf("documents for %d patients in one message (MSSanté: one patient per message)", len(patients))})
	}
	if len(a.Documents) == 0 {
		return
	}
	// ECO.2.1.1: the documents travel as IHE_XDM.ZIP and as a PDF/A copy.
	if anyBare && !anyXDM {
		a.Problems = append(a.Problems, Problem{Warning: true, Text: "CDA not packed as " + XDMFilename})
	}
	hasPDF := len(pdfs) > 0
	for _, d := range a.Documents {
		hasPDF = hasPDF || d.PDF
	}
	if !hasPDF {
		a.Problems = append(a.Problems, Problem{Warning: true, Text: "no PDF copy of the documents"})
	}
	for _, lf := range pdfs {
		if !lf.truncated && !IsPDFA(lf.data) {
			a.Problems = append(a.Problems, Problem{Warning: true, Text: displayName(lf, "PDF attachment") + ": not declared PDF/A"})
		}
	}
	if !anyXDM {
		return
	}
	// IG trans-cda-mss: subject "XDM/1.0/DDM+<libellé> <NOM> <prénom> <date>".
	if !strings.HasPrefix(a.Subject, SubjectPrefix) {
		a.Problems = append(a.Problems, Problem{Warning: true, Text: "subject does not start with " + SubjectPrefix})
	}
	// ECO.2.4.1: X-MSS-CODECDA carries the code of every CDA document.
	if v := h.Get("X-Mss-Codecda"); v == "" {
		a.Problems = append(a.Problems, Problem{Warning: true, Text: "X-MSS-CODECDA header missing"})
	} else {
		got := map[string]bool{}
		for _, c := range strings.Split(v, ",") {
			if c = strings.TrimSpace(c); c != "" {
				got[c] = true
			}
		}
		if !sameSet(got, types) {
			a.Problems = append(a.Problems, Problem{Warning: true, Text: "X-MSS-CODECDA does not list the document types (" + token(v, 100) + " vs " + strings.Join(sortedKeys(types), ",") + ")"})
		}
	}
	// ECO.2.4.2: X-MSS-INS is O when a qualified INS is in the documents, N
	// otherwise.
	switch v := strings.ToUpper(strings.TrimSpace(h.Get("X-Mss-Ins"))); {
	case v == "":
		a.Problems = append(a.Problems, Problem{Warning: true, Text: "X-MSS-INS header missing"})
	case v == "O" && !anyINS, v == "N" && anyINS:
		a.Problems = append(a.Problems, Problem{Warning: true, Text: "X-MSS-INS contradicts the documents"})
	case v != "O" && v != "N":
		a.Problems = append(a.Problems, Problem{Warning: true, Text: "X-MSS-INS is neither O nor N"})
	}
}

func sameSet(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// IsPDFA reports whether data is a PDF whose XMP metadata declares PDF/A
// conformance (ISO 19005-1 6.7.11: pdfaid:part in the document's metadata
// stream, which PDF/A forbids to compress, 6.7.2).
func IsPDFA(data []byte) bool {
	if !bytes.HasPrefix(bytes.TrimLeft(data[:min(len(data), 1024)], "\x00\t\r\n "), []byte("%PDF-")) {
		return false
	}
	return bytes.Contains(data, []byte("pdfaid:part")) || bytes.Contains(data, []byte("pdfaid:Part"))
}
