package ldapd

import (
	"bytes"
	"testing"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"

	"github.com/relais-mssante/relais/storage"
)

// The filter translation and evaluation without a socket.

var filterCases = []struct {
	filter  string
	queries []storage.DirectoryQuery // nil with ok false: no criterion
	claire  bool                     // matches the sample entry
}{
	{"(|(cn=mart*)(mail=mart*)(sn=mart*)(givenName=mart*))", []storage.DirectoryQuery{{Name: "mart"}, {Address: "mart"}}, true},
	{"(|(cn=claire*mar*)(mail=claire*mar*)(sn=claire*mar*))", []storage.DirectoryQuery{{Name: "claire mar"}, {Address: "claire"}}, true},
	{"(&(mail=*)(|(cn=mart*)(sn=mart*)(givenName=mart*)(mail=mart*)(displayName=mart*)))", []storage.DirectoryQuery{{Name: "mart"}, {Address: "mart"}}, true},
	{"(mail=claire.martin@hopital-fictif.mssante.test)", []storage.DirectoryQuery{{Address: "claire.martin@hopital-fictif.mssante.test"}}, true},
	{"(&(sn=mart*)(l=Paris)(postalCode=75*))", []storage.DirectoryQuery{{Name: "mart", City: "Paris", PostalCode: "75"}}, true},
	{"(employeeNumber=10000000001)", []storage.DirectoryQuery{{Identifier: "10000000001"}}, true},
	{"(commonName=dr claire*)", []storage.DirectoryQuery{{Name: "dr claire"}}, true},
	{"(&(sn=mart*)(!(givenName=claire)))", []storage.DirectoryQuery{{Name: "mart"}}, false},
	{"(cn=hélène*)", []storage.DirectoryQuery{{Name: "hélène"}}, false},
	{"(objectClass=*)", nil, true},
	{"(!(cn=x*))", nil, true},
	{"(cn=*tin)", nil, true},
	{"(employeeNumber=1000*)", nil, true},
	{"(|(cn=mart*)(objectClass=*))", nil, true},
	{"(title=médecin*)", nil, true},
}

func sampleEntry() *entry {
	return mailboxEntry(storage.MailboxEntry{
		Address: "claire.martin@hopital-fictif.mssante.test", Professional: "810000000001",
		FamilyName: "MARTIN", GivenName: "Claire", Civility: "Docteur", Profession: "Médecin",
		OrganisationName: "Hôpital Fictif", StructureAddress: storage.PostalAddress{PostalCode: "75011", City: "Paris"},
	}, owner{}, "dc=test")
}

func compile(t testing.TB, s string) *filter {
	t.Helper()
	p, err := ldap.CompileFilter(s)
	if err != nil {
		t.Fatalf("CompileFilter(%s): %v", s, err)
	}
	// Round-trip through bytes, as the server receives it.
	p2, err := ber.DecodePacketErr(p.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	f, err := decodeFilter(p2)
	if err != nil {
		t.Fatalf("decodeFilter(%s): %v", s, err)
	}
	return f
}

func TestFilterQueries(t *testing.T) {
	t.Parallel()
	e := sampleEntry()
	for _, tc := range filterCases {
		f := compile(t, tc.filter)
		qs, ok := f.queries()
		if ok != (tc.queries != nil) {
			t.Errorf("%s: bounded = %v, want %v (%+v)", tc.filter, ok, tc.queries != nil, qs)
			continue
		}
		if ok && (len(qs) != len(tc.queries) || !sameQueries(qs, tc.queries)) {
			t.Errorf("%s: queries %+v, want %+v", tc.filter, qs, tc.queries)
		}
		if got := f.match(e) == tTrue; got != tc.claire {
			t.Errorf("%s: match = %v, want %v", tc.filter, got, tc.claire)
		}
	}
}

func sameQueries(a, b []storage.DirectoryQuery) bool {
	for _, q := range b {
		if !containsQuery(a, q) {
			return false
		}
	}
	return true
}

func TestBindAddress(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]string{
		"claire.martin@demo.mssante.test":                        "claire.martin@demo.mssante.test",
		"mail=claire.martin@demo.mssante.test,ou=people,dc=test": "claire.martin@demo.mssante.test",
		"UID=claire.martin@demo.mssante.test,ou=people,dc=test":  "claire.martin@demo.mssante.test",
		"mail=a\\2Cb@demo.mssante.test,ou=people,dc=test":        "a,b@demo.mssante.test",
		"cn=Claire MARTIN,ou=people,dc=test":                     "",
		"not an address":                                         "",
		"uid=claire,dc=test":                                     "",
	} {
		got, ok := bindAddress(name)
		if got != want || ok != (want != "") {
			t.Errorf("bindAddress(%q) = %q, %v; want %q", name, got, ok, want)
		}
	}
}

func TestPersonDNEscaped(t *testing.T) {
	t.Parallel()
	dn := personDN(`a+b,"c"@x.test`, "dc=test")
	parsed, err := ldap.ParseDN(dn)
	if err != nil {
		t.Fatal(err)
	}
	if v := parsed.RDNs[0].Attributes[0].Value; v != `a+b,"c"@x.test` {
		t.Errorf("round trip of %s: %q", dn, v)
	}
}

// searchPacket builds the bytes of an LDAPMessage with a SearchRequest.
func searchPacket(t testing.TB, filter string, attrs ...string) []byte {
	fp, err := ldap.CompileFilter(filter)
	if err != nil {
		t.Fatal(err)
	}
	req := ber.Encode(ber.ClassApplication, ber.TypeConstructed, appSearchRequest, nil, "search")
	req.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, "dc=test", ""))
	req.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagEnumerated, int64(2), ""))
	req.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagEnumerated, int64(0), ""))
	req.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, int64(10), ""))
	req.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, int64(0), ""))
	req.AppendChild(ber.NewBoolean(ber.ClassUniversal, ber.TypePrimitive, ber.TagBoolean, false, ""))
	req.AppendChild(fp)
	as := ber.NewSequence("attributes")
	for _, a := range attrs {
		as.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, a, ""))
	}
	req.AppendChild(as)
	return envelope(7, req).Bytes()
}

// FuzzRequest feeds arbitrary bytes to the request decoder, then the
// filter translation and evaluation: none may panic, and a decoded filter
// that is bounded gives at most maxQueries queries.
func FuzzRequest(f *testing.F) {
	for _, tc := range filterCases {
		f.Add(searchPacket(f, tc.filter, "cn", "mail", "userCertificate;binary"))
	}
	f.Add(searchPacket(f, "(&(|(a=b)(c~=d))(!(e>=f))(g<=h)(:dn:2.4.8.10:=x)(mail=*))"))
	e := sampleEntry()
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := readMessage(bytes.NewReader(data))
		if err != nil {
			return
		}
		if m.op.Tag != appSearchRequest {
			_, _ = decodeBind(m.op)
			_, _ = decodeExtended(m.op)
			return
		}
		s, err := decodeSearch(m.op)
		if err != nil {
			return
		}
		qs, ok := s.filter.queries()
		if ok && len(qs) > maxQueries {
			t.Fatalf("%d queries", len(qs))
		}
		_ = s.filter.match(e)
		_ = selectAttrs(e, s.attributes)
	})
}
