// Package document finds the structured health documents of a mail (an
// IHE_XDM.ZIP package, a CDA R2 document sent as application/hl7-cda+xml or
// as a bare .xml attachment), checks them against the MSSanté rules, and
// builds the mails that carry or answer them.
//
// Specifications implemented:
//   - Référentiel socle MSSanté #2, "Clients de messageries sécurisées de
//     santé" (ANS), ECO.2.1.x (IHE_XDM.ZIP and a PDF copy, one patient per
//     message) and ECO.2.4.x (X-MSS-CODECDA, X-MSS-INS, X-MSS-NIL, X-MSS-MES);
//   - CI-SIS "volet Transmission au LPS de documents CDA provenant d'un
//     courriel MSSanté" (ansforge IG-hl7v2-volet-trans-lps-doc-cda-courriel-mss
//     v1.1.3): subject "XDM/1.0/DDM+<libellé> <NOM> <prénom> <date de
//     naissance>", application error codes 900-906, the error MDN (annexe
//     "Structure du MDN") and the error mail (annexe "courriel standard");
//   - RFC 5322, RFC 2045-2047, RFC 2231 (MIME), RFC 8098 and RFC 6522 (MDN).
//
// The package reads untrusted input: every size, count and depth is bounded,
// nothing panics (a recovered panic becomes a Problem), and the message
// given to Analyze is never modified.
package document

import (
	"github.com/relais-mssante/relais/document/cda"
	"github.com/relais-mssante/relais/document/xdm"
)

// Application error codes of the CI-SIS volet (IG trans-cda-mss, annexe
// "Codes erreurs de traitement du message HL7 MDM", table applicationErrorCode,
// v1.1.2 for 905 and 906).
const (
	CodeVersion        = 900 // wrong document version on replace/delete
	CodeAuthor         = 901 // author not allowed to replace/delete
	CodeUnknownPatient = 902 // unknown patient
	CodeNoINS          = 903 // INS missing from the document
	CodeINSMismatch    = 904 // INS does not match the consumer's record
	CodeINSIncomplete  = 905 // INS present, identity traits incomplete
	CodeOther          = 906 // any other error
)

// labels are the official labels of the codes (IG trans-cda-mss, error-codes).
var labels = map[int]string{
	CodeVersion:        "Version du document incorrecte lors d'une demande de remplacement/suppression",
	CodeAuthor:         "Auteur non autorisé à remplacer ou supprimer un document",
	CodeUnknownPatient: "Identifiant patient inconnu",
	CodeNoINS:          "INS non présent dans le document",
	CodeINSMismatch:    "L'INS transmis ne correspond pas exactement à celui stocké dans la base du consommateur",
	CodeINSIncomplete:  "L'INS transmis n'est pas complet",
	CodeOther:          "Erreur 'Autre'",
}

// Label returns the official French label of an application error code
// (900-906), or "" for any other code.
func Label(code int) string { return labels[code] }

// HeaderName is the header field HeaderFields writes. The delivery pipeline
// must remove any field of this name a sender put in the message before
// prepending its own, or a sender could forge the verdict.
const HeaderName = "X-Relais-Document"

// Problem is one thing wrong with a message or a document.
type Problem struct {
	// Code is the CI-SIS application error code (900-906) when the problem
	// prevents integration and the rules give one, else 0.
	Code int
	// Text says what is wrong, for people and logs. It never contains the
	// patient's identity; it may contain an attachment name.
	Text string
	// Warning marks a departure from the MSSanté rules that does not
	// prevent integration (a missing X-MSS header, no PDF copy...). Warnings
	// do not make an Analysis invalid.
	Warning bool
}

func (p Problem) String() string {
	s := p.Text
	if p.Code != 0 {
		s = itoa(p.Code) + " " + s
	}
	if p.Warning {
		s = "warning: " + s
	}
	return s
}

// Limits bound Analyze. Zero fields take the defaults.
type Limits struct {
	MaxMessage   int64 // whole message, default 64 MiB
	MaxPart      int64 // one decoded MIME part, default 60 MiB
	MaxParts     int   // MIME parts, default 200
	MaxDepth     int   // MIME nesting, default 16
	MaxDocuments int   // CDA documents per message, default 20
	CDA          cda.Limits
	XDM          xdm.Limits
}

// Default limits.
const (
	DefaultMaxMessage   = 64 << 20
	DefaultMaxPart      = 60 << 20
	DefaultMaxParts     = 200
	DefaultMaxDepth     = 16
	DefaultMaxDocuments = 20
)

func (l Limits) withDefaults() Limits {
	if l.MaxMessage <= 0 {
		l.MaxMessage = DefaultMaxMessage
	}
	if l.MaxPart <= 0 {
		l.MaxPart = DefaultMaxPart
	}
	if l.MaxParts <= 0 {
		l.MaxParts = DefaultMaxParts
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultMaxDepth
	}
	if l.MaxDocuments <= 0 {
		l.MaxDocuments = DefaultMaxDocuments
	}
	return l
}

// Source kinds of a Document.
const (
	SourceXDM = "xdm" // a CDA inside an IHE XDM package
	SourceCDA = "cda" // a CDA attached on its own
)

// Document is one CDA document found in a message.
type Document struct {
	Source   string // SourceXDM or SourceCDA
	Filename string // the attachment's file name (IHE_XDM.ZIP, or the .xml)
	Subset   string // for SourceXDM: the subset folder as read, e.g. "IHE_XDM/SS000001"
	Path     string // for SourceXDM: the document's URI in the subset, e.g. "DOC0001.XML"
	Header   cda.Header
	Parsed   bool       // Header was read (false when the CDA could not be parsed)
	Entry    *xdm.Entry // the XDS document entry, for SourceXDM
	PDF      bool       // a PDF rendering accompanies it (mail attachment or XDM entry)
	Problems []Problem
}

// Valid reports whether the document itself has no blocking problem.
func (d Document) Valid() bool { return d.Parsed && !blocking(d.Problems) }

// Analysis is what Analyze found in a message.
type Analysis struct {
	Documents []Document // one per CDA found
	Problems  []Problem  // message-level problems (rules that span documents, broken packages)
	Subject   string     // decoded (RFC 2047) Subject
	MessageID string     // Message-ID, angle brackets included as written

	attempt bool // a broken attempt at a structured document was seen
}

// Has reports whether the message carries a structured document, or a
// broken attempt at one (an IHE_XDM.ZIP that fails to open, an
// application/hl7-cda+xml part that is not a readable CDA).
func (a Analysis) Has() bool { return len(a.Documents) > 0 || a.attempt }

// Valid reports whether the message has at least one document and no
// blocking problem, at message level or in any document.
func (a Analysis) Valid() bool {
	if len(a.Documents) == 0 || blocking(a.Problems) {
		return false
	}
	for _, d := range a.Documents {
		if !d.Valid() {
			return false
		}
	}
	return true
}

// Event is what the delivery pipeline turns into stored metadata and a
// "document received" event: one per document, or a single one when the
// message holds only a broken attempt at a document.
type Event struct {
	PatientINS  string // INS matricule (extension), "" if none
	INSKind     string // "NIR", "NIA", "NIR-test", "NIR-demo"
	INSRoot     string // the INS OID
	TypeCode    string // LOINC
	TypeDisplay string
	Title       string
	AuthorID    string // first author's identifier (RPPS "8..." or other), extension
	AuthorName  string
	Custodian   string
	DocumentID  string // ClinicalDocument/id, "root^extension"
	Source      string // SourceXDM or SourceCDA, "" for a broken attempt
	MessageID   string
	Valid       bool
	Problems    []Problem // the document's problems and the message-level ones
}

// Events returns one Event per document; for a message that only holds a
// broken attempt, one Event carrying the problems; nil when !a.Has().
func (a Analysis) Events() []Event {
	if !a.Has() {
		return nil
	}
	msgOK := !blocking(a.Problems)
	if len(a.Documents) == 0 {
		return []Event{{MessageID: a.MessageID, Problems: append([]Problem(nil), a.Problems...)}}
	}
	out := make([]Event, 0, len(a.Documents))
	for _, d := range a.Documents {
		h := d.Header
		e := Event{
			INSKind:     h.Patient.INSKind,
			TypeCode:    h.Type.Code,
			TypeDisplay: h.Type.Display,
			Title:       h.Title,
			Custodian:   h.Custodian.Name,
			Source:      d.Source,
			MessageID:   a.MessageID,
			Valid:       msgOK && d.Valid(),
		}
		if !h.ID.IsZero() {
			e.DocumentID = h.ID.String()
		}
		if ins := h.Patient.INS; ins != nil {
			e.PatientINS, e.INSRoot = ins.Extension, ins.Root
		}
		if len(h.Authors) > 0 {
			au := h.Authors[0]
			e.AuthorID = au.ID.Extension
			e.AuthorName = joinNonEmpty(" ", au.Prefix, au.Given, au.Family)
		}
		e.Problems = append(append([]Problem(nil), d.Problems...), a.Problems...)
		out = append(out, e)
	}
	return out
}

func blocking(ps []Problem) bool {
	for _, p := range ps {
		if !p.Warning {
			return true
		}
	}
	return false
}
