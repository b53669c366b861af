package ldapd

import (
	"strings"

	"github.com/go-ldap/ldap/v3"

	"github.com/relais-mssante/relais/storage"
)

// entry is one LDAP entry built from the directory.
type entry struct {
	dn    string
	attrs []attribute
}

// attribute is one attribute of an entry; name is what the client sees.
type attribute struct {
	name   string
	key    string // attrKey(name)
	values [][]byte
	binary bool // transferred with ";binary" (RFC 4522), matched by presence only
}

func (e *entry) add(name string, values ...string) {
	var vs [][]byte
	seen := make(map[string]bool, len(values))
	for _, v := range values {
		v = strings.TrimSpace(v)
		if v == "" || seen[v] {
			continue
		}
		seen[v] = true
		vs = append(vs, []byte(v))
	}
	if len(vs) > 0 {
		e.attrs = append(e.attrs, attribute{name: name, key: attrKey(name), values: vs})
	}
}

func (e *entry) find(key string) *attribute {
	for i := range e.attrs {
		if e.attrs[i].key == key {
			return &e.attrs[i]
		}
	}
	return nil
}

func (e *entry) get(key string) [][]byte {
	if a := e.find(key); a != nil {
		return a.values
	}
	return nil
}

// selectAttrs keeps the attributes the client asked for, RFC 4511 4.5.1.8:
// none listed or "*" means all user attributes, "1.1" none, "+" all
// operational ones (the root DSE's are returned for "*" too, which
// clients browsing for namingContexts expect).
func selectAttrs(e *entry, requested []string) *entry {
	all := len(requested) == 0
	want := make(map[string]bool, len(requested))
	for _, r := range requested {
		switch r {
		case "*", "+":
			all = true
		case "1.1":
		default:
			want[attrKey(r)] = true
		}
	}
	out := &entry{dn: e.dn}
	for _, a := range e.attrs {
		if all || want[a.key] {
			out.attrs = append(out.attrs, a)
		}
	}
	return out
}

// civilityAbbrev turns the civility code or label into the form mail
// clients show ("Dr Claire MARTIN").
func civilityAbbrev(code, label string) string {
	switch strings.ToUpper(strings.TrimSpace(code)) {
	case "DR":
		return "Dr"
	case "PR":
		return "Pr"
	}
	switch fold(label) {
	case "docteur", "dr":
		return "Dr"
	case "professeur", "pr":
		return "Pr"
	}
	return ""
}

// street formats the L4 line of an AFNOR address.
func street(a storage.PostalAddress) string {
	return strings.Join(strings.Fields(strings.Join([]string{a.Number, a.Repetition, a.StreetType, a.Street}, " ")), " ")
}

// personDN is "mail=<address>,ou=people,<base>", the value escaped per
// RFC 4514 2.4.
func personDN(address, base string) string {
	return "mail=" + ldap.EscapeDN(address) + ",ou=people," + base
}

// owner is what is known about a mailbox's holder and place.
type owner struct {
	prof *storage.Professional
	org  *storage.Organisation // the structure of the mailbox, if known
}

// mailboxEntry builds the inetOrgPerson entry of one address (RFC 2798).
func mailboxEntry(m storage.MailboxEntry, o owner, base string) *entry {
	e := &entry{dn: personDN(m.Address, base)}
	e.add("objectClass", "top", "person", "organizationalPerson", "inetOrgPerson")

	family, given, civ := m.FamilyName, m.GivenName, civilityAbbrev("", m.Civility)
	profession, specialty := m.Profession, m.Specialty
	var rpps string
	if p := o.prof; p != nil {
		if p.FamilyName != "" {
			family, given = p.FamilyName, p.GivenName
		}
		if c := civilityAbbrev(p.CivilityCode, p.Civility); c != "" {
			civ = c
		}
		if p.Profession != "" {
			profession = p.Profession
		}
		if p.Specialty != "" {
			specialty = p.Specialty
		}
		if p.IDType == storage.IDTypeRPPS {
			rpps = p.Identifier
		}
	}
	if rpps == "" && len(m.Professional) == 12 && m.Professional[0] == '8' {
		rpps = m.Professional[1:] // "8" + RPPS, the national id
	}

	orgName := m.OrganisationName
	addr := m.StructureAddress
	if o.org != nil {
		if o.org.Name != "" {
			orgName = o.org.Name
		}
		if o.org.Address.City != "" || o.org.Address.PostalCode != "" {
			addr = o.org.Address
		}
	}

	person := strings.TrimSpace(given + " " + family)
	var display string
	switch {
	case person != "":
		display = person
		// cn is multi-valued so that "(cn=mart*)" and "(cn=claire*)"
		// both match; the first value is what clients show.
		first := display
		if civ != "" {
			first = civ + " " + display
		}
		e.add("cn", first, display, strings.TrimSpace(family+" "+given))
		e.add("sn", family)
		e.add("givenName", given)
	default: // an organisational or applicative mailbox
		// The directory names it by its structure (its search finds it so);
		// the description, when given, says which desk it is.
		display = firstNonEmpty(m.Description, m.OrganisationName, orgName, m.Service, m.Address)
		e.add("cn", display, m.OrganisationName, orgName)
		e.add("sn", display) // person requires sn (RFC 4519 3.12)
	}
	e.add("displayName", display)
	e.add("mail", m.Address)
	if specialty != "" && specialty != profession && profession != "" {
		e.add("title", profession+" - "+specialty)
	} else {
		e.add("title", firstNonEmpty(specialty, profession))
	}
	e.add("o", orgName)
	e.add("ou", m.Service)
	e.add("street", street(addr))
	e.add("postalCode", addr.PostalCode)
	e.add("l", addr.City)
	e.add("employeeNumber", rpps)
	return e
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if strings.TrimSpace(v) != "" {
			return v
		}
	}
	return ""
}

// hitEntries builds the entries of every address of a search hit.
func hitEntries(h storage.DirectoryHit, base string) []*entry {
	var out []*entry
	orgs := make(map[string]*storage.Organisation, len(h.Sites)+1)
	for i := range h.Sites {
		orgs[h.Sites[i].ID] = &h.Sites[i]
	}
	if h.Organisation != nil {
		orgs[h.Organisation.ID] = h.Organisation
	}
	boxes := h.Mailboxes
	if h.Mailbox != nil {
		boxes = append([]storage.MailboxEntry{*h.Mailbox}, boxes...)
	}
	for _, m := range boxes {
		if m.Address == "" {
			continue
		}
		o := owner{prof: h.Professional, org: orgs[m.Organisation]}
		if o.org == nil && h.Kind == storage.KindOrganisation {
			o.org = h.Organisation
		}
		if o.org == nil && len(h.Sites) == 1 && m.OrganisationName == "" {
			o.org = &h.Sites[0]
		}
		out = append(out, mailboxEntry(m, o, base))
	}
	return out
}

// addCertificates adds userCertificate;binary (RFC 4523 2.1; transferred
// with the binary option, RFC 4522) with every certificate's DER.
func addCertificates(e *entry, certs []storage.Certificate) {
	if len(certs) == 0 {
		return
	}
	a := attribute{name: "userCertificate;binary", key: "usercertificate", binary: true}
	for _, c := range certs {
		a.values = append(a.values, c.DER)
	}
	e.attrs = append(e.attrs, a)
}
