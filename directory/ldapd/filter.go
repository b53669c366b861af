package ldapd

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	ber "github.com/go-asn1-ber/asn1-ber"
	"golang.org/x/text/runes"
	"golang.org/x/text/transform"
	"golang.org/x/text/unicode/norm"

	"github.com/relais-mssante/relais/storage"
)

// Search filters, RFC 4511 4.5.1.7 (BER) and RFC 4515 (string form).

type filterKind int

const (
	fAnd filterKind = iota
	fOr
	fNot
	fEqual
	fSubstrings
	fGreaterOrEqual
	fLessOrEqual
	fPresent
	fApprox
	fExtensible
)

// filter is a decoded search filter. attr is the attribute description
// normalised by attrKey.
type filter struct {
	kind     filterKind
	children []*filter
	attr     string
	value    string
	initial  string
	any      []string
	final    string
	// The assertion folded once (fold), for evaluation.
	fValue, fInitial, fFinal string
	fAny                     []string
}

// decodeFilter converts the BER Filter CHOICE, bounding depth and size.
func decodeFilter(p *ber.Packet) (*filter, error) {
	nodes := 0
	return decodeFilterNode(p, 0, &nodes)
}

func decodeFilterNode(p *ber.Packet, depth int, nodes *int) (*filter, error) {
	*nodes++
	if depth > maxFilterDepth || *nodes > maxFilterNodes {
		return nil, fmt.Errorf("%w: filter deeper than %d or larger than %d nodes", errProtocol, maxFilterDepth, maxFilterNodes)
	}
	if p.ClassType != ber.ClassContext {
		return nil, fmt.Errorf("%w: filter is not a context tag", errProtocol)
	}
	f := &filter{kind: filterKind(p.Tag)}
	switch p.Tag {
	case 0, 1, 2: // and [0] SET OF, or [1] SET OF, not [2] Filter
		if p.TagType != ber.TypeConstructed || (p.Tag == 2 && len(p.Children) != 1) {
			return nil, fmt.Errorf("%w: bad and/or/not", errProtocol)
		}
		for _, c := range p.Children {
			cf, err := decodeFilterNode(c, depth+1, nodes)
			if err != nil {
				return nil, err
			}
			f.children = append(f.children, cf)
		}
	case 3, 5, 6, 8: // AttributeValueAssertion
		if len(p.Children) != 2 {
			return nil, fmt.Errorf("%w: bad attribute value assertion", errProtocol)
		}
		f.attr = attrKey(stringOf(p.Children[0]))
		f.value = stringOf(p.Children[1])
	case 4: // SubstringFilter
		if len(p.Children) != 2 || len(p.Children[1].Children) == 0 {
			return nil, fmt.Errorf("%w: bad substring filter", errProtocol)
		}
		f.attr = attrKey(stringOf(p.Children[0]))
		subs := p.Children[1].Children
		for i, s := range subs {
			v := stringOf(s)
			switch {
			case s.Tag == 0 && i == 0:
				f.initial = v
			case s.Tag == 1:
				f.any = append(f.any, v)
			case s.Tag == 2 && i == len(subs)-1:
				f.final = v
			default:
				return nil, fmt.Errorf("%w: substring out of order", errProtocol)
			}
		}
	case 7: // present [7] AttributeDescription
		if p.TagType != ber.TypePrimitive {
			return nil, fmt.Errorf("%w: bad presence filter", errProtocol)
		}
		f.attr = attrKey(stringOf(p))
	case 9: // extensibleMatch: evaluated as Undefined
		for _, c := range p.Children {
			switch c.Tag {
			case 2:
				f.attr = attrKey(stringOf(c))
			case 3:
				f.value = stringOf(c)
			}
		}
	default:
		return nil, fmt.Errorf("%w: unknown filter tag %d", errProtocol, p.Tag)
	}
	f.fValue, f.fInitial, f.fFinal = fold(f.value), fold(f.initial), fold(f.final)
	for _, a := range f.any {
		f.fAny = append(f.fAny, fold(a))
	}
	return f, nil
}

// aliases maps attribute type names (RFC 4519, RFC 2798) to the short name
// entries use.
var aliases = map[string]string{
	"commonname":                "cn",
	"surname":                   "sn",
	"gn":                        "givenname",
	"rfc822mailbox":             "mail",
	"localityname":              "l",
	"organizationname":          "o",
	"organizationalunitname":    "ou",
	"streetaddress":             "street",
	"domaincomponent":           "dc",
	"2.5.4.3":                   "cn",
	"2.5.4.4":                   "sn",
	"2.5.4.42":                  "givenname",
	"0.9.2342.19200300.100.1.3": "mail",
	"2.5.4.36":                  "usercertificate",
	"2.5.4.0":                   "objectclass",
}

// attrKey normalises an attribute description (RFC 4512 2.5) for
// comparison: lower case, aliases resolved, the ";binary" transfer option
// (RFC 4522) dropped since it does not name another attribute.
func attrKey(desc string) string {
	d := strings.ToLower(strings.TrimSpace(desc))
	if i := strings.IndexByte(d, ';'); i >= 0 {
		opts := strings.Split(d[i+1:], ";")
		d = d[:i]
		kept := opts[:0]
		for _, o := range opts {
			if o != "binary" {
				kept = append(kept, o)
			}
		}
		if len(kept) > 0 {
			d += ";" + strings.Join(kept, ";")
		}
	}
	if a, ok := aliases[d]; ok {
		return a
	}
	return d
}

// fold maps a value for case- and accent-insensitive comparison, as the
// directory's search does: "Hélène  Dupré" and "helene dupre" are equal
// (caseIgnoreMatch, RFC 4517 4.2.11, plus accent folding).
func fold(s string) string {
	out := s
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			t := transform.Chain(norm.NFD, runes.Remove(runes.In(unicode.Mn)), norm.NFC)
			var err error
			if out, _, err = transform.String(t, s); err != nil {
				out = s
			}
			break
		}
	}
	return strings.Join(strings.Fields(strings.ToLower(out)), " ")
}

// tristate is a filter result, RFC 4511 4.5.1.7: TRUE, FALSE or Undefined.
type tristate int

const (
	tFalse tristate = iota
	tTrue
	tUndefined
)

// match evaluates f on e, RFC 4511 4.5.1.7.
func (f *filter) match(e *entry) tristate {
	switch f.kind {
	case fAnd: // RFC 4526: the empty AND is TRUE
		res := tTrue
		for _, c := range f.children {
			switch c.match(e) {
			case tFalse:
				return tFalse
			case tUndefined:
				res = tUndefined
			}
		}
		return res
	case fOr: // the empty OR is FALSE
		res := tFalse
		for _, c := range f.children {
			switch c.match(e) {
			case tTrue:
				return tTrue
			case tUndefined:
				res = tUndefined
			}
		}
		return res
	case fNot:
		switch f.children[0].match(e) {
		case tTrue:
			return tFalse
		case tFalse:
			return tTrue
		}
		return tUndefined
	case fPresent:
		if f.attr == "objectclass" || len(e.get(f.attr)) > 0 {
			return tTrue
		}
		return tFalse
	case fExtensible:
		return tUndefined
	}
	a := e.find(f.attr)
	if a == nil {
		return tFalse
	}
	if a.binary { // certificates: only presence is meaningful here
		return tUndefined
	}
	for _, v := range a.values {
		if f.matchValue(fold(string(v))) {
			return tTrue
		}
	}
	return tFalse
}

func (f *filter) matchValue(v string) bool {
	switch f.kind {
	case fEqual, fApprox:
		return v == f.fValue
	case fGreaterOrEqual:
		return v >= f.fValue
	case fLessOrEqual:
		return v <= f.fValue
	case fSubstrings: // RFC 4517 4.2.30 caseIgnoreSubstringsMatch
		if !strings.HasPrefix(v, f.fInitial) {
			return false
		}
		v = v[len(f.fInitial):]
		for _, s := range f.fAny {
			i := strings.Index(v, s)
			if i < 0 {
				return false
			}
			v = v[i+len(s):]
		}
		return strings.HasSuffix(v, f.fFinal)
	}
	return false
}

// mentions tells whether the filter tests attribute key.
func (f *filter) mentions(key string) bool {
	if f.attr == key {
		return true
	}
	for _, c := range f.children {
		if c.mentions(key) {
			return true
		}
	}
	return false
}

// maxQueries bounds the directory queries one search filter expands to.
const maxQueries = 16

// queries derives directory queries whose union contains every person
// entry the filter can match. ok is false when the filter gives no usable
// criterion (for example "(objectClass=*)" or a NOT): the caller must not
// list the whole directory then. The results are a superset: the caller
// evaluates the whole filter on each entry afterwards.
func (f *filter) queries() (qs []storage.DirectoryQuery, ok bool) {
	switch f.kind {
	case fAnd:
		// Any constrained conjunct bounds the conjunction; take the one
		// with the fewest queries, and narrow it with the single-query
		// conjuncts whose fields do not conflict.
		var best []storage.DirectoryQuery
		var singles []storage.DirectoryQuery
		for _, c := range f.children {
			cq, cok := c.queries()
			if !cok {
				continue
			}
			if best == nil || len(cq) < len(best) {
				best = cq
			}
			if len(cq) == 1 {
				singles = append(singles, cq[0])
			}
		}
		if best == nil {
			return nil, false
		}
		if len(best) == 1 {
			q := best[0]
			for _, s := range singles {
				q = narrow(q, s)
			}
			return []storage.DirectoryQuery{q}, true
		}
		return best, true
	case fOr:
		if len(f.children) == 0 {
			return nil, true // the empty OR matches nothing
		}
		for _, c := range f.children {
			cq, cok := c.queries()
			if !cok {
				return nil, false
			}
			for _, q := range cq {
				if !containsQuery(qs, q) {
					qs = append(qs, q)
				}
			}
			if len(qs) > maxQueries {
				return nil, false
			}
		}
		return qs, true
	case fEqual, fApprox:
		return assertionQuery(f.attr, f.value, true)
	case fSubstrings:
		if f.initial == "" {
			return nil, false // "*mart*": the store searches by prefix only
		}
		// Thunderbird's "(cn=claire*mar*)" is a prefix of each word:
		// the store's Name takes the words ("claire mar").
		text := f.initial
		if isNameAttr(f.attr) {
			for _, a := range f.any {
				text += " " + a
			}
		}
		return assertionQuery(f.attr, text, false)
	}
	return nil, false
}

func isNameAttr(key string) bool {
	switch key {
	case "cn", "sn", "givenname", "displayname", "o":
		return true
	}
	return false
}

// assertionQuery maps one assertion to a query; exact tells an equality
// (needed for the identifier, which the store matches exactly).
func assertionQuery(key, value string, exact bool) ([]storage.DirectoryQuery, bool) {
	value = strings.TrimSpace(value)
	if value == "" {
		return nil, false
	}
	var q storage.DirectoryQuery
	switch {
	case isNameAttr(key):
		q.Name = value
	case key == "mail":
		q.Address = value
	case key == "l":
		q.City = value
	case key == "postalcode":
		q.PostalCode = value
	case key == "employeenumber" && exact:
		q.Identifier = value
	default:
		return nil, false
	}
	return []storage.DirectoryQuery{q}, true
}

// narrow adds to q the fields of s that q does not set yet.
func narrow(q, s storage.DirectoryQuery) storage.DirectoryQuery {
	if q.Name == "" {
		q.Name = s.Name
	}
	if q.Address == "" {
		q.Address = s.Address
	}
	if q.City == "" {
		q.City = s.City
	}
	if q.PostalCode == "" {
		q.PostalCode = s.PostalCode
	}
	if q.Identifier == "" {
		q.Identifier = s.Identifier
	}
	return q
}

func containsQuery(qs []storage.DirectoryQuery, q storage.DirectoryQuery) bool {
	for _, x := range qs {
		if x.Name == q.Name && x.Address == q.Address && x.City == q.City && x.PostalCode == q.PostalCode && x.Identifier == q.Identifier {
			return true
		}
	}
	return false
}
