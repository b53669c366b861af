package directory

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"testing"
	"time"
)

var dnCases = []struct {
	in, want string
}{
	{"CN=medimail-asip.example.fr,OU=318310021300028,O=GIP EXEMPLE,ST=Haute-Garonne (31),C=FR",
		"CN=medimail-asip.example.fr,OU=318310021300028,O=gip exemple,ST=haute-garonne (31),C=fr"},
	// Spacing and case of types and values.
	{"cn = Medimail-ASIP.example.fr , ou=318310021300028,  o=GIP   Exemple ,S=HAUTE-GARONNE (31), c=fr",
		"CN=medimail-asip.example.fr,OU=318310021300028,O=gip exemple,ST=haute-garonne (31),C=fr"},
	// OIDs and aliases.
	{"2.5.4.3=mx.example.fr,OID.2.5.4.10=Exemple,2.5.4.6=FR", "CN=mx.example.fr,O=exemple,C=fr"},
	{"E=Admin@Example.fr,CN=x", "EMAILADDRESS=admin@example.fr,CN=x"},
	{"emailAddress=admin@example.fr,CN=x", "EMAILADDRESS=admin@example.fr,CN=x"},
	{"1.2.840.113549.1.9.1=admin@example.fr,CN=x", "EMAILADDRESS=admin@example.fr,CN=x"},
	{"organizationName=Exemple,countryName=FR", "O=exemple,C=fr"},
	// Escapes: special characters, hex pairs (UTF-8 bytes), quoted value.
	{`O=Opérateur Bêta\, Santé,C=FR`, `O=opérateur bêta\, santé,C=fr`},
	{`O=Op\C3\A9rateur B\C3\AAta\2C Sant\C3\A9,C=FR`, `O=opérateur bêta\, santé,C=fr`},
	{`O="Opérateur Bêta, Santé",C=FR`, `O=opérateur bêta\, santé,C=fr`},
	{`CN=a\+b\=c\<d\>\;e\"f\\g`, `CN=a\+b\=c\<d\>\;e\"f\\g`},
	{`CN=\#1,O=\ lead`, `CN=\#1,O=lead`},
	{`O=CRLCC "PAUL STRAUSS",C=FR`, `O=crlcc \"paul strauss\",C=fr`},
	// A BER value: a string type gives its text, another stays hex.
	{"CN=#0c046d782e66,C=FR", "CN=mx.f,C=fr"},
	{"CN=x,1.3.6.1.4.1.99999.1=#0401ff", "CN=x,1.3.6.1.4.1.99999.1=#0401ff"},
	// Multi-valued RDN: order of its attributes does not count.
	{"SERIALNUMBER=G-0001+CN=MSS.example,C=FR", "CN=mss.example+SERIALNUMBER=g-0001,C=fr"},
	{"CN=mss.example + serialNumber=G-0001;C=FR", "CN=mss.example+SERIALNUMBER=g-0001,C=fr"},
	// Unicode: NFKC and folding.
	{"O=ＡＢＣ\u00a0Santé,C=FR", "O=abc santé,C=fr"},
	{"O=Sante\u0301", "O=santé"},
}

func TestCanonicalDN(t *testing.T) {
	for _, c := range dnCases {
		got, err := CanonicalDN(c.in)
		if err != nil {
			t.Errorf("CanonicalDN(%q): %v", c.in, err)
			continue
		}
		if got != c.want {
			t.Errorf("CanonicalDN(%q)\n got %q\nwant %q", c.in, got, c.want)
		}
		again, err := CanonicalDN(got)
		if err != nil || again != got {
			t.Errorf("CanonicalDN(%q) is not stable: %q, %v", got, again, err)
		}
	}
}

func TestCanonicalDNDifferent(t *testing.T) {
	// Order of RDNs counts; so do values.
	pairs := [][2]string{
		{"CN=a,O=b", "O=b,CN=a"},
		{"CN=a,O=b", "CN=a,O=c"},
		{"CN=a+O=b", "CN=a,O=b"},
		{`CN=a\,b`, "CN=a,CN=b"},
	}
	for _, p := range pairs {
		a, err1 := CanonicalDN(p[0])
		b, err2 := CanonicalDN(p[1])
		if err1 != nil || err2 != nil || a == b {
			t.Errorf("%q and %q: %q, %q (%v, %v)", p[0], p[1], a, b, err1, err2)
		}
	}
}

func TestCanonicalDNErrors(t *testing.T) {
	for _, in := range []string{
		"", "   ", "CN", "=x", "CN=a,", "CN=a,,O=b", "CN=a+", `CN=a\`, `CN=a\zz`, `CN=a\4`, `CN="a`,
		"C N=x", "1..2=x", "1.=x", "12=x", "CN=#zz", "CN=#", "CN=\xff\xfe", "CN=a;O=b,=c",
	} {
		if got, err := CanonicalDN(in); err == nil {
			t.Errorf("CanonicalDN(%q) = %q, want an error", in, got)
		}
	}
	long := make([]byte, maxDNLength+1)
	for i := range long {
		long[i] = 'a'
	}
	if _, err := CanonicalDN("CN=" + string(long)); err == nil {
		t.Error("no error for an oversized DN")
	}
	many := "CN=a"
	for range maxDNRDNs {
		many += ",CN=a"
	}
	if _, err := CanonicalDN(many); err == nil {
		t.Error("no error for too many RDNs")
	}
}

// selfSigned makes a certificate whose subject is name (ASN.1 order).
func selfSigned(t *testing.T, name pkix.RDNSequence) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := asn1.Marshal(name)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), RawSubject: raw,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"mx.operateur-alpha.example"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func TestCanonicalSubjectMatchesListDN(t *testing.T) {
	oid := func(ids ...int) asn1.ObjectIdentifier { return ids }
	atv := func(o asn1.ObjectIdentifier, v string) pkix.AttributeTypeAndValue {
		return pkix.AttributeTypeAndValue{Type: o, Value: v}
	}
	cases := []struct {
		name pkix.RDNSequence
		dn   string
	}{
		{pkix.Name{
			CommonName: "mx.operateur-alpha.example", OrganizationalUnit: []string{"99900000000017"},
			Organization: []string{"Opérateur Alpha"}, Province: []string{"Ille-et-Vilaine (35)"}, Country: []string{"FR"},
		}.ToRDNSequence(),
			"CN=mx.operateur-alpha.example,OU=99900000000017,O=Opérateur Alpha,ST=Ille-et-Vilaine (35),C=FR"},
		{pkix.RDNSequence{
			{atv(oid(2, 5, 4, 6), "FR")},
			{atv(oid(2, 5, 4, 10), "Gamma Santé")},
			{atv(oid(2, 5, 4, 11), "Messagerie")},
			{atv(oid(2, 5, 4, 3), "mss.gamma-sante.example"), atv(oid(2, 5, 4, 5), "G-0001")},
		}, "SERIALNUMBER=G-0001 + CN=MSS.gamma-sante.example, OU=Messagerie, O=Gamma Santé, C=FR"},
		{pkix.RDNSequence{
			{atv(oid(2, 5, 4, 6), "FR")},
			{atv(oid(1, 2, 840, 113549, 1, 9, 1), "postmaster@example.fr")},
			{atv(oid(2, 5, 4, 3), "mx.example.fr")},
		}, "CN=mx.example.fr,E=Postmaster@example.fr,C=FR"},
	}
	for _, c := range cases {
		cert := selfSigned(t, c.name)
		got, err := CanonicalSubject(cert)
		if err != nil {
			t.Fatal(err)
		}
		want, err := CanonicalDN(c.dn)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("certificate %q\n got %q\nwant %q (from %q)", cert.Subject, got, want, c.dn)
		}
		// The standard library's string form reads back to the same key.
		if fromString, err := CanonicalDN(c.name.String()); err != nil || fromString != want {
			t.Errorf("CanonicalDN(%q) = %q, %v; want %q", c.name.String(), fromString, err, want)
		}
	}
	other := selfSigned(t, pkix.Name{CommonName: "mx.operateur-alpha.example", Country: []string{"FR"}}.ToRDNSequence())
	got, _ := CanonicalSubject(other)
	if want, _ := CanonicalDN("CN=mx.operateur-alpha.example,O=Opérateur Alpha,C=FR"); got == want {
		t.Error("a subject without O matches a DN with O")
	}
}

func FuzzCanonicalDN(f *testing.F) {
	for _, c := range dnCases {
		f.Add(c.in)
	}
	f.Add(`CN=relais.operateur-beta.example,OU=99900000000025,O=Opérateur Bêta\2C Santé,L=Brest,C=FR`)
	f.Fuzz(func(t *testing.T, s string) {
		got, err := CanonicalDN(s)
		if err != nil {
			return
		}
		if len(s) > maxDNLength {
			t.Fatalf("accepted %d bytes", len(s))
		}
		again, err := CanonicalDN(got)
		if err != nil {
			t.Fatalf("canonical form %q of %q does not parse: %v", got, s, err)
		}
		if again != got {
			t.Fatalf("not stable: %q -> %q -> %q", s, got, again)
		}
	})
}
