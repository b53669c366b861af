package ldapd

import (
	"context"
	"errors"
	"strings"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"

	"github.com/relais-mssante/relais/storage"
)

// Search scopes, RFC 4511 4.5.1.2.
const (
	scopeBase = 0
	scopeOne  = 1
	scopeSub  = 2
)

// maxStorePages bounds the pages read per directory query while looking
// for entries the whole filter accepts.
const maxStorePages = 5

// searchResult collects what one search returns.
type searchResult struct {
	entries []*entry
	code    int
	diag    string
	matched string
}

// search handles a SearchRequest, RFC 4511 4.5.
func (c *conn) search(ctx context.Context, id int64, req searchRequest, paged bool) {
	res := c.runSearch(ctx, req)
	for _, e := range res.entries {
		_ = c.write(id, searchEntry(selectAttrs(e, req.attributes), req.typesOnly))
	}
	var controls []*ber.Packet
	if paged {
		controls = append(controls, pagedResultsDone())
	}
	_ = c.write(id, ldapResult(appSearchResDone, res.code, res.matched, res.diag), controls...)
	c.log.Debug("search", "scope", req.scope, "entries", len(res.entries), "result", res.code)
}

func (c *conn) runSearch(ctx context.Context, req searchRequest) searchResult {
	s := c.s
	// The root DSE, RFC 4512 5.1: readable before any bind.
	if req.base == "" && req.scope == scopeBase {
		var out []*entry
		if e := s.rootDSE(c.tls); req.filter.match(e) == tTrue {
			out = append(out, e)
		}
		return searchResult{entries: out}
	}
	if !c.tls && !s.cfg.AllowPlaintext {
		return searchResult{code: resultConfidentialityRequired, diag: "use StartTLS or LDAPS first"}
	}
	if c.bound == "" {
		return searchResult{code: resultInsufficientAccessRights, diag: "bind with your Relais address and password to search the directory"}
	}
	baseDN := req.base
	scope := req.scope
	if baseDN == "" { // the subtree of the root: our one naming context
		baseDN = s.cfg.BaseDN
		if scope == scopeOne {
			scope = scopeBase
		}
	}
	dn, err := ldap.ParseDN(baseDN)
	if err != nil {
		return searchResult{code: resultInvalidDNSyntax, diag: "invalid base DN"}
	}
	limit := s.cfg.MaxResults
	if req.sizeLimit > 0 && req.sizeLimit < int64(limit) {
		limit = int(req.sizeLimit)
	}
	var out []*entry
	addIf := func(e *entry) {
		if req.filter.match(e) == tTrue {
			out = append(out, e)
		}
	}
	people := false // whether the scope covers the person entries
	switch {
	case dn.EqualFold(s.base):
		if scope != scopeOne {
			addIf(s.baseEntry())
		}
		if scope != scopeBase {
			addIf(s.peopleEntry())
		}
		people = scope == scopeSub
	case dn.EqualFold(s.people):
		if scope != scopeOne {
			addIf(s.peopleEntry())
		}
		people = scope != scopeBase
	case len(dn.RDNs) == len(s.people.RDNs)+1 && s.people.AncestorOfFold(dn):
		// One person entry: base scope reads it; it has no children.
		if scope == scopeOne {
			return searchResult{}
		}
		e, found, err := c.personByDN(ctx, dn, req)
		if err != nil {
			c.log.Error("search: reading entry", "err", err)
			return searchResult{code: resultOther, diag: "directory unavailable"}
		}
		if !found {
			return searchResult{code: resultNoSuchObject, matched: s.peopleDN, diag: "no such entry"}
		}
		addIf(e)
		return searchResult{entries: out}
	case s.base.AncestorOfFold(dn):
		return searchResult{code: resultNoSuchObject, matched: s.cfg.BaseDN, diag: "no such entry"}
	default:
		return searchResult{code: resultNoSuchObject, diag: "outside the naming context " + s.cfg.BaseDN}
	}
	if len(out) > limit {
		return searchResult{entries: out[:limit], code: resultSizeLimitExceeded}
	}
	if !people {
		return searchResult{entries: out}
	}
	found, more, bounded, err := c.findPeople(ctx, req, limit-len(out))
	out = append(out, found...)
	switch {
	case err != nil:
		c.log.Error("search: directory", "err", err)
		return searchResult{entries: out, code: resultOther, diag: "directory unavailable"}
	case !bounded:
		// Never list the whole national directory.
		return searchResult{entries: out, code: resultUnwillingToPerform,
			diag: "the filter needs a criterion on cn, sn, givenName, displayName, mail, o, l, postalCode or employeeNumber"}
	case more:
		return searchResult{entries: out, code: resultSizeLimitExceeded} // RFC 4511 4.5.1.4
	}
	return searchResult{entries: out}
}

// wantsCertificates tells whether userCertificate is among the requested
// attributes (explicitly, or as a user attribute under "*" or none).
func wantsCertificates(requested []string) bool {
	if len(requested) == 0 {
		return true
	}
	for _, r := range requested {
		if r == "*" || attrKey(r) == "usercertificate" {
			return true
		}
	}
	return false
}

// findPeople runs the directory queries derived from the filter and keeps
// the entries the whole filter matches, up to limit; more tells that
// others exist. bounded is false when the filter gives no criterion.
func (c *conn) findPeople(ctx context.Context, req searchRequest, limit int) (found []*entry, more, bounded bool, err error) {
	qs, ok := req.filter.queries()
	if !ok {
		return nil, false, false, nil
	}
	filterCerts := req.filter.mentions("usercertificate")
	wantCerts := wantsCertificates(req.attributes)
	seen := make(map[string]bool)
	for _, q := range qs {
		q.Limit = min(limit+1, 200)
		for range maxStorePages {
			page, err := c.s.dir.SearchDirectory(ctx, q)
			if err != nil {
				return found, false, true, err
			}
			for _, h := range page.Hits {
				for _, e := range hitEntries(h, c.s.cfg.BaseDN) {
					key := strings.ToLower(string(e.get("mail")[0]))
					if seen[key] {
						continue
					}
					seen[key] = true
					if filterCerts {
						if err := c.attachCertificates(ctx, e); err != nil {
							return found, false, true, err
						}
					}
					if req.filter.match(e) != tTrue {
						continue
					}
					if len(found) == limit {
						return found, true, true, nil
					}
					if wantCerts && !filterCerts {
						if err := c.attachCertificates(ctx, e); err != nil {
							return found, false, true, err
						}
					}
					found = append(found, e)
				}
			}
			if !page.More || len(page.Hits) == 0 {
				break
			}
			q.Offset += len(page.Hits)
		}
	}
	return found, false, true, nil
}

func (c *conn) attachCertificates(ctx context.Context, e *entry) error {
	certs, err := c.s.dir.Certificates(ctx, string(e.get("mail")[0]))
	if err != nil {
		return err
	}
	addCertificates(e, certs)
	return nil
}

// personByDN reads the entry "mail=ADDR,ou=people,BASE".
func (c *conn) personByDN(ctx context.Context, dn *ldap.DN, req searchRequest) (*entry, bool, error) {
	var addr string
	for _, a := range dn.RDNs[0].Attributes {
		if attrKey(a.Type) == "mail" {
			addr = a.Value
		}
	}
	if addr == "" || len(dn.RDNs[0].Attributes) != 1 {
		return nil, false, nil
	}
	page, err := c.s.dir.SearchDirectory(ctx, storage.DirectoryQuery{Address: addr, Limit: 20})
	if err != nil {
		return nil, false, err
	}
	var e *entry
	for _, h := range page.Hits {
		for _, he := range hitEntries(h, c.s.cfg.BaseDN) {
			if strings.EqualFold(string(he.get("mail")[0]), addr) {
				e = he
				break
			}
		}
		if e != nil {
			break
		}
	}
	if e == nil {
		boxes, err := c.s.dir.MailboxEntries(ctx, addr)
		if errors.Is(err, storage.ErrNotFound) {
			return nil, false, nil
		}
		if err != nil {
			return nil, false, err
		}
		if len(boxes) == 0 {
			return nil, false, nil
		}
		e = mailboxEntry(boxes[0], owner{}, c.s.cfg.BaseDN)
	}
	if wantsCertificates(req.attributes) || req.filter.mentions("usercertificate") {
		if err := c.attachCertificates(ctx, e); err != nil {
			return nil, false, err
		}
	}
	return e, true, nil
}

// rootDSE is the entry of RFC 4512 5.1.
func (s *Server) rootDSE(isTLS bool) *entry {
	e := &entry{}
	e.add("objectClass", "top")
	e.add("namingContexts", s.cfg.BaseDN)
	e.add("supportedLDAPVersion", "3")
	if s.cfg.TLS != nil && !isTLS {
		e.add("supportedExtension", oidStartTLS) // RFC 4511 4.14
	}
	e.add("supportedControl", oidPagedResults)
	// supportedSASLMechanisms: none (simple bind only), so absent.
	e.add("vendorName", "Relais") // RFC 3045
	return e
}

// baseEntry is the entry of the naming context itself.
func (s *Server) baseEntry() *entry {
	e := &entry{dn: s.cfg.BaseDN}
	rdn := s.base.RDNs[0].Attributes[0]
	switch attrKey(rdn.Type) {
	case "dc":
		e.add("objectClass", "top", "domain") // RFC 4524 5.4
	case "o":
		e.add("objectClass", "top", "organization")
	case "ou":
		e.add("objectClass", "top", "organizationalUnit")
	default:
		e.add("objectClass", "top", "extensibleObject")
	}
	e.add(rdn.Type, rdn.Value)
	return e
}

// peopleEntry is "ou=people,BASE", the parent of the person entries.
func (s *Server) peopleEntry() *entry {
	e := &entry{dn: s.peopleDN}
	e.add("objectClass", "top", "organizationalUnit")
	e.add("ou", "people")
	return e
}
