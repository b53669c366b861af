package directory

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"golang.org/x/text/encoding/charmap"

	"github.com/relais-mssante/relais/storage"
)

// The MSSanté trust list (listeblanchemssante.xml, published by the ANS,
// GitHub ansforge/MSS-liste-blanche): root ListeBlancheMSSante in the
// namespace TrustListNamespace, DateDeGeneration, then
// ListeDomaines/Domaine with Nom, Description, DNCertificatOperateur,
// ResponsableContact, SupportContact and DateMAJ; one Domaine per (domain,
// operator certificate DN) pair.

// TrustListNamespace is the namespace of the trust list's elements.
const TrustListNamespace = "https://listeblanche.mssante.fr/schema"

// Bounds of the trust list parser.
const (
	maxXMLDepth   = 16
	maxXMLRun     = 1 << 20  // bytes from one '<' to the next
	maxXMLField   = 8 << 10  // bytes of one field of a Domaine
	maxXMLElement = 64 << 10 // bytes of one Domaine element
)

// trustRecord is one Domaine element as read.
type trustRecord struct {
	line   int
	fields map[string]*strings.Builder
	reason string // set when a bound was exceeded
	start  int64
}

// parseTrustRecord checks a Domaine element and makes its entry.
func parseTrustRecord(rec *trustRecord) (storage.TrustEntry, *rowError) {
	g := func(name string) string {
		if b := rec.fields[name]; b != nil {
			return strings.TrimSpace(b.String())
		}
		return ""
	}
	// A stored entry always has a valid domain: a bad one read here can
	// protect nothing, so it still counts as read (the real list has
	// "sessad@ase.ditepbeziers.mssante.fr", which must not block every
	// removal).
	domain := strings.TrimSuffix(strings.ToLower(g("Nom")), ".")
	key := domain
	if rec.reason != "" {
		return storage.TrustEntry{}, &rowError{key, rec.reason}
	}
	if err := checkDomain(domain); err != nil {
		return storage.TrustEntry{}, &rowError{key, err.Error()}
	}
	e := storage.TrustEntry{
		Domain:             domain,
		Description:        g("Description"),
		OperatorDN:         g("DNCertificatOperateur"),
		ResponsibleContact: g("ResponsableContact"),
		SupportContact:     g("SupportContact"),
	}
	if e.OperatorDN == "" {
		return storage.TrustEntry{}, &rowError{key, "empty DNCertificatOperateur"}
	}
	opKey, err := CanonicalDN(e.OperatorDN)
	if err != nil {
		return storage.TrustEntry{}, &rowError{key, err.Error()}
	}
	e.OperatorKey = opKey
	if d := g("DateMAJ"); d != "" {
		t, err := time.Parse(time.RFC3339, d)
		if err != nil {
			return storage.TrustEntry{}, &rowError{key, fmt.Sprintf("bad DateMAJ %q", truncate(d, 40))}
		}
		e.Updated = t.UTC()
	}
	h := newHasher()
	h.add(e.Domain, e.Description, e.OperatorDN, e.OperatorKey, e.ResponsibleContact, e.SupportContact,
		e.Updated.Format(time.RFC3339Nano))
	e.Hash = h.sum()
	return e, nil
}

// checkDomain accepts a lower-case ASCII domain name (an A-label form,
// RFC 5890 2.3.2.1; RFC 1035 2.3.4 lengths).
func checkDomain(d string) error {
	if d == "" {
		return errors.New("empty domain (Nom)")
	}
	if len(d) > 253 {
		return errors.New("domain longer than 253 bytes")
	}
	for label := range strings.SplitSeq(d, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("bad domain %q", truncate(d, 100))
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
				return fmt.Errorf("bad domain %q (not an ASCII A-label)", truncate(d, 100))
			}
		}
	}
	if !strings.Contains(d, ".") {
		return fmt.Errorf("bad domain %q (no dot)", d)
	}
	return nil
}

// xmlGuard bounds the bytes between two '<', so that the XML decoder
// never buffers a huge token (a text, a tag, a comment).
type xmlGuard struct {
	r   io.Reader
	run int
	err error
}

func (g *xmlGuard) Read(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	n, err := g.r.Read(p)
	for i, c := range p[:n] {
		if c == '<' {
			g.run = 0
			continue
		}
		g.run++
		if g.run > maxXMLRun {
			g.err = fmt.Errorf("text or tag longer than %d bytes", maxXMLRun)
			return i, g.err
		}
	}
	return n, err
}

// trustFields are the children of Domaine that are read.
var trustFields = map[string]bool{
	"Nom": true, "Description": true, "DNCertificatOperateur": true,
	"ResponsableContact": true, "SupportContact": true, "DateMAJ": true,
}

// trustDecoder streams the Domaine elements of a trust list.
type trustDecoder struct {
	d     *xml.Decoder
	depth int
	root  bool
	rec   *trustRecord
	field string // the child of Domaine being read
	// truncated: the document ends, outside any Domaine, before the root
	// element is closed (the copy in shared/samples lacks its
	// </ListeBlancheMSSante>).
	truncated bool
}

func newTrustDecoder(r io.Reader) *trustDecoder {
	d := xml.NewDecoder(&xmlGuard{r: r})
	d.Strict = true
	d.CharsetReader = func(label string, in io.Reader) (io.Reader, error) {
		switch strings.ToLower(label) {
		case "iso-8859-1", "latin1", "windows-1252", "cp1252":
			return charmap.Windows1252.NewDecoder().Reader(in), nil
		case "iso-8859-15", "latin9":
			return charmap.ISO8859_15.NewDecoder().Reader(in), nil
		}
		return nil, fmt.Errorf("unsupported XML encoding %q", label)
	}
	return &trustDecoder{d: d}
}

// next returns the next Domaine element, io.EOF at the end of the
// document. Errors are fatal (malformed XML, a DOCTYPE, a bound).
func (td *trustDecoder) next() (*trustRecord, error) {
	for {
		tok, err := td.d.Token()
		if errors.Is(err, io.EOF) {
			if !td.root {
				return nil, errors.New("directory: trust list: no ListeBlancheMSSante element")
			}
			if td.depth != 0 {
				return nil, errors.New("directory: trust list: unexpected end of file")
			}
			return nil, io.EOF
		}
		var syntax *xml.SyntaxError
		if errors.As(err, &syntax) && syntax.Msg == "unexpected EOF" && td.root && td.rec == nil && td.depth <= 2 {
			td.truncated = true
			return nil, io.EOF
		}
		if err != nil {
			line, _ := td.d.InputPos()
			return nil, fmt.Errorf("directory: trust list line %d: %w", line, err)
		}
		switch t := tok.(type) {
		case xml.Directive:
			// No DTD: no entity can be declared, none expanded.
			line, _ := td.d.InputPos()
			return nil, fmt.Errorf("directory: trust list line %d: DOCTYPE and other directives are not allowed", line)
		case xml.StartElement:
			td.depth++
			if td.depth > maxXMLDepth {
				line, _ := td.d.InputPos()
				return nil, fmt.Errorf("directory: trust list line %d: elements nested deeper than %d", line, maxXMLDepth)
			}
			switch {
			case td.depth == 1:
				if t.Name.Local != "ListeBlancheMSSante" {
					return nil, fmt.Errorf("directory: trust list: root element %q, want ListeBlancheMSSante", t.Name.Local)
				}
				td.root = true
			case t.Name.Local == "Domaine" && td.rec == nil:
				line, _ := td.d.InputPos()
				td.rec = &trustRecord{line: line, fields: map[string]*strings.Builder{}, start: td.d.InputOffset()}
			case td.rec != nil && td.field == "":
				td.field = t.Name.Local
				if td.rec.fields[td.field] == nil && trustFields[td.field] {
					td.rec.fields[td.field] = &strings.Builder{}
				}
			}
		case xml.CharData:
			if td.rec == nil || td.field == "" || td.rec.reason != "" {
				continue
			}
			b := td.rec.fields[td.field]
			if b == nil {
				continue // an unknown child
			}
			if b.Len()+len(t) > maxXMLField {
				td.rec.reason = fmt.Sprintf("%s longer than %d bytes", td.field, maxXMLField)
				continue
			}
			b.Write(t)
		case xml.EndElement:
			td.depth--
			if td.rec == nil {
				continue
			}
			if td.d.InputOffset()-td.rec.start > maxXMLElement && td.rec.reason == "" {
				td.rec.reason = fmt.Sprintf("Domaine element longer than %d bytes", maxXMLElement)
			}
			if td.field != "" && t.Name.Local == td.field {
				td.field = ""
			} else if t.Name.Local == "Domaine" && td.field == "" {
				rec := td.rec
				td.rec = nil
				return rec, nil
			}
		}
	}
}

func (im *importer) importTrustList(r io.Reader) error {
	if err := im.load(storage.KindTrust); err != nil {
		return err
	}
	cr := &countingReader{r: r}
	im.bytes = func() int64 { return cr.n }
	td := newTrustDecoder(cr)
	trust := im.tables[storage.KindTrust]
	for {
		rec, err := td.next()
		if errors.Is(err, io.EOF) {
			if td.truncated {
				why := "the file ends before </ListeBlancheMSSante> and may be incomplete"
				im.sum.Warnings = append(im.sum.Warnings, why)
				im.keep[storage.KindTrust] = why
			}
			return nil
		}
		if err != nil {
			return err
		}
		if err := im.row(); err != nil {
			return err
		}
		e, rerr := parseTrustRecord(rec)
		if rerr != nil {
			im.reject(rec.line, rerr.key, rerr.reason)
			if rerr.key != "" {
				im.protectedDomains[rerr.key] = true
			}
			continue
		}
		key := e.Domain + " " + e.OperatorKey
		st, h := trust.lookup(key)
		if st.flags&seen != 0 {
			im.reject(rec.line, key, fmt.Sprintf("duplicate domain and operator (first at line %d)", st.line))
			continue
		}
		if trust.record(h, st, e.Hash, rec.line, 0) {
			im.batch.Trust = append(im.batch.Trust, e)
			im.pending++
			if err := im.maybeFlush(); err != nil {
				return err
			}
		}
	}
}
