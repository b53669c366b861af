package ldapd_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/go-ldap/ldap/v3"

	"github.com/relais-mssante/relais/directory/ldapd"
)

func TestAutocompleteFilters(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ldapd.Config{})
	c := e.dialBound(t)
	tests := []struct {
		name   string
		filter string
		want   []string
		absent []string
	}{
		{"thunderbird prefix", "(|(cn=mart*)(mail=mart*)(sn=mart*)(givenName=mart*))",
			[]string{remoteClair, remoteMarc, userAddr}, []string{remoteHel, orgBox}},
		{"thunderbird two words", "(|(cn=claire*mar*)(mail=claire*mar*)(sn=claire*mar*))",
			[]string{remoteClair, userAddr}, []string{remoteMarc}},
		{"outlook", "(&(mail=*)(|(cn=mart*)(sn=mart*)(givenName=mart*)(mail=mart*)(displayName=mart*)))",
			[]string{remoteClair, remoteMarc}, []string{remoteHel}},
		{"accents folded", "(|(cn=helene*)(sn=dupre*))", []string{remoteHel}, []string{remoteClair}},
		{"family first", "(cn=martin claire*)", []string{remoteClair}, []string{remoteMarc}},
		{"certificate lookup", "(mail=" + remoteClair + ")", []string{remoteClair}, []string{remoteMarc, userAddr}},
		{"AND with city", "(&(sn=mart*)(l=paris))", []string{remoteClair, remoteMarc}, []string{userAddr}},
		{"NOT narrows", "(&(sn=mart*)(!(givenName=marc)))", []string{remoteClair}, []string{remoteMarc}},
		{"postal code", "(&(postalCode=690*)(cn=*))", nil, nil}, // postalCode alone is a criterion; cn=* presence
		{"rpps", "(employeeNumber=" + rppsClaire + ")", []string{remoteClair}, []string{remoteMarc}},
		{"organisational mailbox", "(|(cn=hopital fictif*)(mail=hopital*))", []string{orgBox}, []string{remoteHel}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := search(c, base, ldap.ScopeWholeSubtree, 0, tc.filter, "cn", "mail", "sn")
			if err != nil {
				t.Fatalf("search %s: %v", tc.filter, err)
			}
			got := mails(r)
			for _, w := range tc.want {
				if !got[w] {
					t.Errorf("%s: %s missing from %v", tc.filter, w, got)
				}
			}
			for _, a := range tc.absent {
				if got[a] {
					t.Errorf("%s: %s should not match", tc.filter, a)
				}
			}
			if tc.name == "postal code" && (len(got) != 1 || !got[remoteHel]) {
				t.Errorf("postalCode=690*: got %v, want only %s", got, remoteHel)
			}
		})
	}
}

func TestEntryAttributes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ldapd.Config{})
	c := e.dialBound(t)
	r, err := search(c, base, ldap.ScopeWholeSubtree, 0, "(mail="+remoteClair+")", "*")
	if err != nil || len(r.Entries) != 1 {
		t.Fatalf("search: %v, %d entries", err, len(r.Entries))
	}
	en := r.Entries[0]
	if want := "mail=" + remoteClair + ",ou=people," + base; en.DN != want {
		t.Errorf("DN = %q, want %q", en.DN, want)
	}
	checks := map[string]string{
		"cn": "Dr Claire MARTIN", "sn": "MARTIN", "givenName": "Claire", "displayName": "Claire MARTIN",
		"mail": remoteClair, "employeeNumber": rppsClaire, "o": "Hôpital Fictif de Test", "ou": "Médecine interne",
		"l": "Paris", "postalCode": "75011", "street": "12 Rue des Essais", "title": "Médecin - Médecine générale",
	}
	for attr, want := range checks {
		if got := en.GetAttributeValue(attr); got != want {
			t.Errorf("%s = %q, want %q", attr, got, want)
		}
	}
	oc := strings.Join(en.GetAttributeValues("objectClass"), ",")
	if oc != "top,person,organizationalPerson,inetOrgPerson" {
		t.Errorf("objectClass = %s", oc)
	}
	if got := en.GetRawAttributeValue("userCertificate;binary"); !bytes.Equal(got, e.certDER) {
		t.Errorf("userCertificate;binary under * = %d bytes, want the %d-byte DER", len(got), len(e.certDER))
	}
}

func TestAttributeSelection(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ldapd.Config{})
	c := e.dialBound(t)
	filter := "(mail=" + remoteClair + ")"
	for _, tc := range []struct {
		attrs []string
		want  []string
	}{
		{[]string{"cn", "mail"}, []string{"cn", "mail"}},
		{[]string{"1.1"}, nil},
		{[]string{"userCertificate;binary"}, []string{"userCertificate;binary"}},
		{[]string{"userCertificate"}, []string{"userCertificate;binary"}},
		{[]string{"CN", "Mail"}, []string{"cn", "mail"}},
	} {
		r, err := search(c, base, ldap.ScopeWholeSubtree, 0, filter, tc.attrs...)
		if err != nil || len(r.Entries) != 1 {
			t.Fatalf("%v: %v", tc.attrs, err)
		}
		var got []string
		for _, a := range r.Entries[0].Attributes {
			got = append(got, a.Name)
		}
		if strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("attributes %v: got %v, want %v", tc.attrs, got, tc.want)
		}
		if len(tc.want) == 1 && strings.HasPrefix(tc.want[0], "userCertificate") {
			if !bytes.Equal(r.Entries[0].GetRawAttributeValue("userCertificate;binary"), e.certDER) {
				t.Errorf("%v: certificate bytes differ from the DER", tc.attrs)
			}
		}
	}
	// An address without certificate has no userCertificate.
	r, err := search(c, base, ldap.ScopeWholeSubtree, 0, "(mail="+remoteMarc+")", "userCertificate;binary")
	if err != nil || len(r.Entries) != 1 || len(r.Entries[0].Attributes) != 0 {
		t.Errorf("no-certificate address: %v %+v", err, r)
	}
	// The presence filter on the certificate selects the address that has one.
	r, err = search(c, base, ldap.ScopeWholeSubtree, 0, "(&(sn=mart*)(userCertificate;binary=*))", "mail")
	if err != nil || len(r.Entries) != 1 || r.Entries[0].GetAttributeValue("mail") != remoteClair {
		t.Errorf("(userCertificate=*): %v %v", err, mails(r))
	}
}

func TestSizeLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ldapd.Config{MaxResults: 8})
	c := e.dialBound(t)
	filter := "(|(cn=paul*)(sn=martinon*))" // the 12 MARTINONs
	r, err := search(c, base, ldap.ScopeWholeSubtree, 5, filter, "mail")
	if resultCode(err) != ldap.LDAPResultSizeLimitExceeded {
		t.Fatalf("sizeLimit 5: err %v, want sizeLimitExceeded", err)
	}
	if r == nil || len(r.Entries) != 5 {
		t.Fatalf("sizeLimit 5: %d entries", len(r.Entries))
	}
	// MaxResults caps a client that asks for more or for no limit.
	for _, limit := range []int{0, 50} {
		r, err = search(c, base, ldap.ScopeWholeSubtree, limit, filter, "mail")
		if resultCode(err) != ldap.LDAPResultSizeLimitExceeded || len(r.Entries) != 8 {
			t.Errorf("sizeLimit %d: err %v, %d entries, want 8 and sizeLimitExceeded", limit, err, len(r.Entries))
		}
	}
	// Exactly as many as there are: no error.
	r, err = search(c, base, ldap.ScopeWholeSubtree, 0, "(sn=martinon1*)", "mail") // 1, 10, 11, 12
	if err != nil || len(r.Entries) != 4 {
		t.Errorf("(sn=martinon1*): %v, %d entries, want 4", err, len(r.Entries))
	}
}

func TestUnboundedFilterRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ldapd.Config{})
	c := e.dialBound(t)
	for _, f := range []string{"(objectClass=*)", "(!(cn=a*))", "(cn=*art*)", "(|(cn=mart*)(objectClass=*))"} {
		r, err := search(c, base, ldap.ScopeWholeSubtree, 0, f, "mail")
		if resultCode(err) != ldap.LDAPResultUnwillingToPerform {
			t.Errorf("%s: err %v, want unwillingToPerform", f, err)
		}
		if got := mails(r); len(got) > 1 || (len(got) == 1 && !got[""]) {
			t.Errorf("%s returned people: %v", f, got)
		}
	}
}

func TestTreeEntries(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ldapd.Config{})
	c := e.dialBound(t)
	r, err := search(c, base, ldap.ScopeBaseObject, 0, "(objectClass=*)")
	if err != nil || len(r.Entries) != 1 || r.Entries[0].DN != base || r.Entries[0].GetAttributeValue("dc") != "demo" {
		t.Fatalf("base entry: %v %+v", err, r)
	}
	r, err = search(c, base, ldap.ScopeSingleLevel, 0, "(objectClass=*)")
	if err != nil || len(r.Entries) != 1 || r.Entries[0].DN != "ou=people,"+base {
		t.Fatalf("one level: %v %+v", err, r)
	}
	dn := "mail=" + remoteMarc + ",ou=people," + base
	r, err = search(c, dn, ldap.ScopeBaseObject, 0, "(objectClass=*)", "cn", "userCertificate;binary")
	if err != nil || len(r.Entries) != 1 || r.Entries[0].GetAttributeValue("cn") != "Marc MARTINEZ" {
		t.Fatalf("read %s: %v %+v", dn, err, r)
	}
	// One level under ou=people with a criterion works like a subtree.
	r, err = search(c, "ou=people,"+base, ldap.ScopeSingleLevel, 0, "(sn=dupr*)", "mail")
	if err != nil || !mails(r)[remoteHel] {
		t.Fatalf("one level under people: %v %v", err, mails(r))
	}
	_, err = search(c, "mail=nobody@nowhere.test,ou=people,"+base, ldap.ScopeBaseObject, 0, "(objectClass=*)")
	if resultCode(err) != ldap.LDAPResultNoSuchObject {
		t.Errorf("absent entry: %v, want noSuchObject", err)
	}
	_, err = search(c, "o=elsewhere", ldap.ScopeWholeSubtree, 0, "(cn=a*)")
	if resultCode(err) != ldap.LDAPResultNoSuchObject {
		t.Errorf("outside the base: %v, want noSuchObject", err)
	}
}

func TestLDAPS(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ldapd.Config{})
	c, err := ldap.DialURL("ldaps://"+e.ldaps, ldap.DialWithTLSConfig(e.clientTLS()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Bind("uid="+userAddr+",ou=people,"+base, userPass); err != nil {
		t.Fatalf("bind with a uid= DN: %v", err)
	}
	r, err := search(c, base, ldap.ScopeWholeSubtree, 0, "(mail="+remoteClair+")", "userCertificate;binary")
	if err != nil || len(r.Entries) != 1 {
		t.Fatalf("search: %v", err)
	}
	if !bytes.Equal(r.Entries[0].GetRawAttributeValue("userCertificate;binary"), e.certDER) {
		t.Error("certificate over LDAPS differs from the DER")
	}
	// StartTLS on a TLS connection is an operationsError (RFC 4511 4.14.1).
	if err := c.StartTLS(e.clientTLS()); err == nil {
		t.Error("StartTLS inside LDAPS succeeded")
	}
}

func TestPagedResultsControl(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ldapd.Config{})
	c := e.dialBound(t)
	// Outlook and others page; the server answers in one page.
	r, err := c.SearchWithPaging(ldap.NewSearchRequest(base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
		"(sn=martinon*)", []string{"mail"}, nil), 5)
	if err != nil || len(r.Entries) != manyMartins {
		t.Fatalf("paged search: %v, %d entries", err, len(r.Entries))
	}
}

func TestReadOnly(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ldapd.Config{})
	c := e.dialBound(t)
	err := c.Del(ldap.NewDelRequest("mail="+remoteMarc+",ou=people,"+base, nil))
	if resultCode(err) != ldap.LDAPResultUnwillingToPerform {
		t.Errorf("delete: %v, want unwillingToPerform", err)
	}
	// The connection goes on.
	if _, err := search(c, base, ldap.ScopeWholeSubtree, 0, "(sn=dupr*)", "mail"); err != nil {
		t.Errorf("search after delete: %v", err)
	}
}

// BenchmarkAutocomplete is one Thunderbird autocomplete search over a
// bound StartTLS connection, on the small seeded directory: the LDAP
// layer's cost (decode, queries, entries, filter, encode), not the
// store's at 2M rows.
func BenchmarkAutocomplete(b *testing.B) {
	e := newEnv(b, ldapd.Config{})
	c := e.dialBound(b)
	req := ldap.NewSearchRequest(base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
		"(|(cn=mart*)(mail=mart*)(sn=mart*)(givenName=mart*))", []string{"cn", "mail", "sn", "givenName"}, nil)
	for b.Loop() {
		r, err := c.Search(req)
		if err != nil || len(r.Entries) == 0 {
			b.Fatalf("%v, %d entries", err, len(r.Entries))
		}
	}
}
