package pki

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Validity periods. IGC-Santé issues its end-entity certificates for three
// years; TLS server certificates stay under the 398 days clients accept.
const (
	rootValidity         = 20
	intermediateValidity = 12
	smimeValidity        = 3 * 365 * 24 * time.Hour
	serverValidity       = 397 * 24 * time.Hour
)

// Attribute types of the subjects (RFC 5280 4.1.2.4, RFC 4519).
var (
	oidCountry      = asn1.ObjectIdentifier{2, 5, 4, 6}
	oidOrganisation = asn1.ObjectIdentifier{2, 5, 4, 10}
	oidCommonName   = asn1.ObjectIdentifier{2, 5, 4, 3}
	oidSurname      = asn1.ObjectIdentifier{2, 5, 4, 4}
	oidGivenName    = asn1.ObjectIdentifier{2, 5, 4, 42}
	oidTitle        = asn1.ObjectIdentifier{2, 5, 4, 12}
	oidAnyPolicy    = asn1.ObjectIdentifier{2, 5, 29, 32, 0} // RFC 5280 4.2.1.4
)

// pkiName is the name of the hierarchy, in IGC-Santé's style: the CAs are
// "AC RACINE <pkiName>", "AC <pkiName> ORGANISATIONS", "AC <pkiName>
// PERSONNES" (IGC-Santé: "AC RACINE IGC-SANTE ELEMENTAIRE", "AC IGC-SANTE
// ELEMENTAIRE ORGANISATIONS"...), with OU=<pkiName> and O=<organisation>.
func pkiName(organisation string) string {
	return "RELAIS " + strings.ToUpper(organisation)
}

func caSubject(organisation, cn string) pkix.Name {
	return pkix.Name{
		Country:            []string{"FR"},
		Organization:       []string{organisation},
		OrganizationalUnit: []string{pkiName(organisation)},
		CommonName:         cn,
	}
}

// crlURL is the CRL distribution point of the certificates a CA issues.
func crlURL(base, caName string) string {
	return strings.TrimRight(base, "/") + "/pki/crl/" + caName + ".crl"
}

// createHierarchy makes (or adopts) the root and makes both intermediates.
func (a *Authority) createHierarchy(st *state, now time.Time) error {
	org := st.idx.Organisation
	name := pkiName(org)
	root, rootKey, adopted, err := a.adoptLegacyRoot()
	if err != nil {
		return err
	}
	if root == nil {
		key, err := a.genKey()
		if err != nil {
			return fmt.Errorf("pki: generating the root key: %w", err)
		}
		// RFC 5280 4.2.1.9: a CA certificate, basicConstraints critical;
		// 4.2.1.3: keyCertSign and cRLSign.
		tmpl := &x509.Certificate{
			SerialNumber:          serial(),
			Subject:               caSubject(org, "AC RACINE "+name),
			NotBefore:             now.Add(-time.Hour),
			NotAfter:              now.AddDate(rootValidity, 0, 0),
			KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
			BasicConstraintsValid: true,
			IsCA:                  true,
			MaxPathLen:            1,
			SubjectKeyId:          keyID(&key.PublicKey),
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			return fmt.Errorf("pki: self-signing the root: %w", err)
		}
		if root, err = x509.ParseCertificate(der); err != nil {
			return fmt.Errorf("pki: parsing the root: %w", err)
		}
		rootKey = key
	}
	rootRec := &record{Serial: SerialString(root), Kind: KindCA, Name: CARoot, DER: root.Raw, HasKey: true, Created: now.UTC(), cert: root}
	if err := a.storeKey(rootRec.Serial, rootKey); err != nil {
		return err
	}
	st.idx.Certs = append(st.idx.Certs, rootRec)
	if adopted {
		a.log.Info("adopted the existing CA as the root of the PKI", "subject", root.Subject.String())
	}
	for _, inter := range []struct{ name, cn string }{
		{CAOrganisations, "AC " + name + " ORGANISATIONS"},
		{CAPersonnes, "AC " + name + " PERSONNES"},
	} {
		key, err := a.genKey()
		if err != nil {
			return fmt.Errorf("pki: generating the %s key: %w", inter.name, err)
		}
		tmpl := &x509.Certificate{
			SerialNumber:          serial(),
			Subject:               caSubject(org, inter.cn),
			NotBefore:             now.Add(-time.Hour),
			NotAfter:              minTime(now.AddDate(intermediateValidity, 0, 0), root.NotAfter),
			KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
			BasicConstraintsValid: true,
			IsCA:                  true,
			MaxPathLenZero:        true, // RFC 5280 4.2.1.9: issues end entities only
			SubjectKeyId:          keyID(&key.PublicKey),
			AuthorityKeyId:        root.SubjectKeyId,
			CRLDistributionPoints: []string{crlURL(st.idx.BaseURL, CARoot)},
			PolicyIdentifiers:     []asn1.ObjectIdentifier{oidAnyPolicy},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, root, &key.PublicKey, rootKey)
		if err != nil {
			return fmt.Errorf("pki: issuing the %s CA: %w", inter.name, err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return fmt.Errorf("pki: parsing the %s CA: %w", inter.name, err)
		}
		r := &record{Serial: SerialString(c), Kind: KindCA, Name: inter.name, Issuer: CARoot, DER: der, HasKey: true, Created: now.UTC(), cert: c}
		if err := a.storeKey(r.Serial, key); err != nil {
			return err
		}
		st.idx.Certs = append(st.idx.Certs, r)
	}
	st.bySerial, st.byEmail, st.cas = map[string]*record{}, map[string][]*record{}, map[string]*record{}
	for _, r := range st.idx.Certs {
		st.add(r)
	}
	return nil
}

// adoptLegacyRoot loads LegacyDir/ca.pem and ca-key.pem (the CA of
// LoadOrCreateCA) when both exist.
func (a *Authority) adoptLegacyRoot() (*x509.Certificate, crypto.Signer, bool, error) {
	if a.opts.LegacyDir == "" {
		return nil, nil, false, nil
	}
	certPEM, err := os.ReadFile(filepath.Join(a.opts.LegacyDir, CACertFile))
	if err != nil {
		return nil, nil, false, nil
	}
	if _, err := os.Stat(filepath.Join(a.opts.LegacyDir, CAKeyFile)); err != nil {
		return nil, nil, false, nil
	}
	ca, err := loadCA(certPEM, filepath.Join(a.opts.LegacyDir, CAKeyFile))
	if err != nil {
		return nil, nil, false, fmt.Errorf("pki: adopting the existing CA: %w", err)
	}
	if !ca.Cert.IsCA || ca.Cert.MaxPathLenZero {
		return nil, nil, false, nil
	}
	return ca.Cert, ca.key, true, nil
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// Request describes a certificate to issue.
type Request struct {
	Kind Kind
	// Emails are the rfc822Name subject alternative names (person and
	// organisation; RFC 8550 3).
	Emails []string
	// DNSNames are the server's names (IP addresses are accepted too), or
	// the mail domains an organisation certificate is bound to.
	DNSNames []string
	// CommonName overrides the default CN (person: "8"+RPPS as IGC-Santé
	// writes it, or the name; organisation: the first address; server: the
	// first DNS name).
	CommonName string
	// GivenName and Surname of a person (GN and SN in the subject).
	GivenName, Surname string
	// RPPS is a practitioner's 11-digit RPPS number. IGC-Santé puts the
	// national identifier "8"+RPPS in the CN of a person's certificate.
	RPPS string
	// Title is a person's profession ("Médecin").
	Title string
	// Organisation is the subject's O (default: the authority's).
	Organisation string
	// Validity overrides the default period.
	Validity time.Duration
}

// Certificate is one certificate of the authority, as List and Issue
// report it.
type Certificate struct {
	Serial      string
	Kind        Kind
	CAName      string // for kind ca
	Issuer      string // the issuing CA's name, empty when imported
	Subject     string
	Emails      []string
	DNSNames    []string
	NotBefore   time.Time
	NotAfter    time.Time
	Status      Status
	RevokedAt   time.Time
	Reason      RevocationReason
	Imported    bool
	HasKey      bool
	Renews      string // serial of the certificate this one renewed
	Certificate *x509.Certificate
	// Chain is the intermediates up to (not including) the root.
	Chain []*x509.Certificate
}

// PEM returns the certificate in PEM.
func (c Certificate) PEM() []byte { return certPEM(c.Certificate) }

func (a *Authority) view(st *state, r *record, now time.Time) Certificate {
	c := Certificate{
		Serial: r.Serial, Kind: r.Kind, CAName: r.Name, Issuer: r.Issuer, Subject: subjectString(r.cert),
		Emails: r.cert.EmailAddresses, DNSNames: r.cert.DNSNames, NotBefore: r.cert.NotBefore, NotAfter: r.cert.NotAfter,
		Status: r.status(now), Imported: r.Imported, HasKey: r.HasKey, Renews: r.Renews, Certificate: r.cert,
		Chain: st.chain(r),
	}
	for _, ip := range r.cert.IPAddresses {
		c.DNSNames = append(c.DNSNames, ip.String())
	}
	if r.Revoked != nil {
		c.RevokedAt, c.Reason = *r.Revoked, RevocationReason(r.Reason)
	}
	return c
}

func (r *record) status(now time.Time) Status {
	switch {
	case r.Revoked != nil && !now.Before(*r.Revoked):
		return StatusRevoked
	case now.Before(r.cert.NotBefore) || now.After(r.cert.NotAfter):
		return StatusExpired
	}
	return StatusValid
}

// chain returns the intermediates of r, up to (not including) a root.
func (st *state) chain(r *record) []*x509.Certificate {
	if r.Imported {
		var out []*x509.Certificate
		for _, der := range r.Chain {
			if c, err := x509.ParseCertificate(der); err == nil && !isSelfSigned(c) {
				out = append(out, c)
			}
		}
		return out
	}
	var out []*x509.Certificate
	for cur := r; cur.Issuer != "" && cur.Issuer != CARoot; {
		iss := st.cas[cur.Issuer]
		if iss == nil {
			break
		}
		out = append(out, iss.cert)
		cur = iss
	}
	return out
}

func isSelfSigned(c *x509.Certificate) bool {
	return string(c.RawIssuer) == string(c.RawSubject) && c.CheckSignatureFrom(c) == nil
}

// Issue makes a key and a certificate for req, and records both.
func (a *Authority) Issue(req Request) (Certificate, error) {
	var out Certificate
	err := a.update(func(st *state, now time.Time) error {
		r, err := a.issue(st, req, nil, now)
		if err != nil {
			return err
		}
		out = a.view(st, r, now)
		return nil
	})
	if err != nil {
		return Certificate{}, err
	}
	return out, nil
}

// issue does the work of Issue inside an update. rawSubject, when set, is
// reused as is (renewal).
func (a *Authority) issue(st *state, req Request, rawSubject []byte, now time.Time) (*record, error) {
	tmpl, caName, err := a.template(st, req, now)
	if err != nil {
		return nil, err
	}
	if rawSubject != nil {
		tmpl.RawSubject = rawSubject
	}
	ca := st.cas[caName]
	caKey, err := a.key(ca.Serial)
	if err != nil {
		return nil, err
	}
	key, err := a.genKey()
	if err != nil {
		return nil, fmt.Errorf("pki: generating a key: %w", err)
	}
	tmpl.SerialNumber = serial()
	tmpl.SubjectKeyId = keyID(&key.PublicKey)                            // RFC 5280 4.2.1.2
	tmpl.AuthorityKeyId = ca.cert.SubjectKeyId                           // RFC 5280 4.2.1.1
	tmpl.CRLDistributionPoints = []string{crlURL(a.baseURL(st), caName)} // RFC 5280 4.2.1.13
	if tmpl.NotAfter.After(ca.cert.NotAfter) {
		tmpl.NotAfter = ca.cert.NotAfter
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("pki: issuing a %s certificate: %w", req.Kind, err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pki: parsing the new certificate: %w", err)
	}
	r := &record{Serial: SerialString(c), Kind: req.Kind, Issuer: caName, DER: der, HasKey: true, Created: now.UTC(), cert: c}
	if err := a.storeKey(r.Serial, key); err != nil {
		return nil, err
	}
	st.idx.Certs = append(st.idx.Certs, r)
	st.add(r)
	return r, nil
}

func (a *Authority) baseURL(st *state) string {
	if a.opts.BaseURL != "" {
		return a.opts.BaseURL
	}
	return st.idx.BaseURL
}

// template checks req and builds the certificate profile of its kind.
func (a *Authority) template(st *state, req Request, now time.Time) (*x509.Certificate, string, error) {
	org := req.Organisation
	if org == "" {
		org = st.idx.Organisation
	}
	tmpl := &x509.Certificate{NotBefore: now.Add(-time.Hour)}
	validity := req.Validity
	var caName string
	switch req.Kind {
	case KindServer:
		if len(req.DNSNames) == 0 {
			return nil, "", errors.New("pki: a server certificate needs at least one DNS name")
		}
		seen := map[string]bool{}
		for _, n := range req.DNSNames {
			n = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(n)), ".")
			if seen[n] {
				continue
			}
			seen[n] = true
			if ip := net.ParseIP(n); ip != nil {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			} else if validDNSName(n) {
				tmpl.DNSNames = append(tmpl.DNSNames, n)
			} else {
				return nil, "", fmt.Errorf("pki: %q is not a DNS name", n)
			}
		}
		cn := req.CommonName
		if cn == "" {
			cn = strings.ToLower(req.DNSNames[0])
		}
		tmpl.Subject = pkix.Name{Country: []string{"FR"}, Organization: []string{org}, CommonName: cn}
		// RFC 5280 4.2.1.3 and 4.2.1.12: TLS server and client (operators
		// authenticate each other with the same certificate).
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
		caName = CAOrganisations
		if validity == 0 {
			validity = serverValidity
		}
	case KindOrganisation, KindPerson:
		if req.Kind == KindOrganisation && len(req.Emails) == 0 && len(req.DNSNames) > 0 {
			// The Direct Project's organisation-bound certificate: a
			// dNSName naming the mail domain (Direct Applicability
			// Statement 4.1; RFC 5280 4.2.1.6), which signs and decrypts
			// for every address of the domain that has none of its own.
			for _, d := range req.DNSNames {
				d = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(d)), ".")
				if d == "" || strings.ContainsAny(d, "@ /") || !strings.Contains(d, ".") {
					return nil, "", fmt.Errorf("pki: %q is not a mail domain", d)
				}
				if !slices.Contains(tmpl.DNSNames, d) {
					tmpl.DNSNames = append(tmpl.DNSNames, d)
				}
			}
		} else if len(req.Emails) == 0 {
			return nil, "", fmt.Errorf("pki: a %s certificate needs a mail address", req.Kind)
		} else if len(req.DNSNames) > 0 {
			return nil, "", fmt.Errorf("pki: a %s certificate names addresses or, for an organisation, domains, not both", req.Kind)
		}
		for _, e := range req.Emails {
			addr, err := mail.ParseAddress(e)
			if err != nil || addr.Name != "" || !strings.Contains(addr.Address, "@") {
				return nil, "", fmt.Errorf("pki: %q is not a mail address", e)
			}
			if !slices.Contains(tmpl.EmailAddresses, addr.Address) {
				tmpl.EmailAddresses = append(tmpl.EmailAddresses, addr.Address)
			}
		}
		// RFC 8550 4.4.2 and 4.4.4: digitalSignature to sign,
		// keyEncipherment to receive RSA key transport; emailProtection.
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}
		if validity == 0 {
			validity = smimeValidity
		}
		if req.Kind == KindOrganisation {
			cn := req.CommonName
			if cn == "" && len(tmpl.EmailAddresses) > 0 {
				cn = tmpl.EmailAddresses[0]
			} else if cn == "" {
				cn = tmpl.DNSNames[0]
			}
			tmpl.Subject = pkix.Name{Country: []string{"FR"}, Organization: []string{org}, CommonName: cn}
			caName = CAOrganisations
			break
		}
		raw, err := personSubject(req, req.Organisation)
		if err != nil {
			return nil, "", err
		}
		tmpl.RawSubject = raw
		caName = CAPersonnes
	default:
		return nil, "", fmt.Errorf("pki: cannot issue a certificate of kind %q", req.Kind)
	}
	tmpl.NotAfter = now.Add(validity)
	return tmpl, caName, nil
}

// personSubject is IGC-Santé's subject of a practitioner:
// "C=FR, title=Médecin, CN=8<RPPS>+SN=<surname>+GN=<given name>", the CN,
// SN and GN forming one multi-valued RDN (RFC 5280 4.1.2.4). A person
// holds it in their own name: O only when the request names one.
func personSubject(req Request, org string) ([]byte, error) {
	if req.RPPS != "" && !validRPPS(req.RPPS) {
		return nil, fmt.Errorf("pki: %q is not an RPPS number (11 digits)", req.RPPS)
	}
	cn := req.CommonName
	if cn == "" && req.RPPS != "" {
		cn = "8" + req.RPPS
	}
	if cn == "" {
		cn = strings.TrimSpace(req.GivenName + " " + req.Surname)
	}
	if cn == "" {
		cn = req.Emails[0]
	}
	seq := pkix.RDNSequence{{{Type: oidCountry, Value: "FR"}}}
	if org != "" {
		seq = append(seq, pkix.RelativeDistinguishedNameSET{{Type: oidOrganisation, Value: org}})
	}
	if req.Title != "" {
		seq = append(seq, pkix.RelativeDistinguishedNameSET{{Type: oidTitle, Value: req.Title}})
	}
	last := pkix.RelativeDistinguishedNameSET{{Type: oidCommonName, Value: cn}}
	if req.Surname != "" {
		last = append(last, pkix.AttributeTypeAndValue{Type: oidSurname, Value: req.Surname})
	}
	if req.GivenName != "" {
		last = append(last, pkix.AttributeTypeAndValue{Type: oidGivenName, Value: req.GivenName})
	}
	seq = append(seq, last)
	raw, err := asn1.Marshal(seq)
	if err != nil {
		return nil, fmt.Errorf("pki: encoding the subject: %w", err)
	}
	return raw, nil
}

func validRPPS(s string) bool {
	if len(s) != 11 {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

func validDNSName(n string) bool {
	if n == "" || len(n) > 253 {
		return false
	}
	for _, label := range strings.Split(n, ".") {
		if label == "" || len(label) > 63 || strings.HasPrefix(label, "-") || strings.HasSuffix(label, "-") {
			return false
		}
		for i, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '*' && i == 0 && len(label) == 1) {
				return false
			}
		}
	}
	return true
}

// Renew issues a new certificate with the same subject and alternative
// names as serial, with a new key and serial number. The old certificate
// stays valid until it expires, unless revoked.
func (a *Authority) Renew(serialHex string) (Certificate, error) {
	s := NormalizeSerial(serialHex)
	var out Certificate
	err := a.update(func(st *state, now time.Time) error {
		old := st.bySerial[s]
		if old == nil {
			return fmt.Errorf("%w: %s", ErrNotFound, serialHex)
		}
		if old.Imported || old.Kind == KindCA {
			return fmt.Errorf("pki: %s is not a certificate this authority issued to an end entity; renew it where it was issued", s)
		}
		req := Request{Kind: old.Kind, Emails: old.cert.EmailAddresses, DNSNames: old.cert.DNSNames}
		for _, ip := range old.cert.IPAddresses {
			req.DNSNames = append(req.DNSNames, ip.String())
		}
		req.Validity = old.cert.NotAfter.Sub(old.cert.NotBefore) - time.Hour
		if old.Kind == KindPerson {
			req.CommonName = "renewal" // replaced by the raw subject below
		}
		r, err := a.issue(st, req, old.cert.RawSubject, now)
		if err != nil {
			return err
		}
		r.Renews = old.Serial
		out = a.view(st, r, now)
		return nil
	})
	return out, err
}

// List returns every certificate, CAs included, oldest first.
func (a *Authority) List() ([]Certificate, error) {
	st, err := a.current()
	if err != nil {
		return nil, err
	}
	now := a.now()
	out := make([]Certificate, 0, len(st.idx.Certs))
	for _, r := range st.idx.Certs {
		out = append(out, a.view(st, r, now))
	}
	return out, nil
}

// Get returns one certificate by serial number.
func (a *Authority) Get(serialHex string) (Certificate, error) {
	st, err := a.current()
	if err != nil {
		return Certificate{}, err
	}
	r := st.bySerial[NormalizeSerial(serialHex)]
	if r == nil {
		return Certificate{}, fmt.Errorf("%w: %s", ErrNotFound, serialHex)
	}
	return a.view(st, r, a.now()), nil
}

// ExportKey returns the private key of a certificate in PKCS #8 PEM,
// unencrypted: for an administrator moving an identity to another system.
func (a *Authority) ExportKey(serialHex string) ([]byte, error) {
	c, err := a.Get(serialHex)
	if err != nil {
		return nil, err
	}
	if !c.HasKey || c.Kind == KindCA {
		return nil, fmt.Errorf("pki: no exportable key for %s", c.Serial)
	}
	k, err := a.key(c.Serial)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("pki: encoding the key: %w", err)
	}
	return pemBlock("PRIVATE KEY", der), nil
}

func certPEM(c *x509.Certificate) []byte {
	if c == nil {
		return nil
	}
	return pemBlock("CERTIFICATE", c.Raw)
}

// attrNames are the short names of RFC 4514 3 plus those IGC-Santé's
// subjects use, for display.
var attrNames = map[string]string{
	"2.5.4.3": "CN", "2.5.4.4": "SN", "2.5.4.42": "GN", "2.5.4.12": "title", "2.5.4.10": "O", "2.5.4.11": "OU",
	"2.5.4.6": "C", "2.5.4.7": "L", "2.5.4.8": "ST", "2.5.4.5": "serialNumber", "1.2.840.113549.1.9.1": "emailAddress",
}

// subjectString writes a certificate's subject as RFC 4514 does (last RDN
// first), with names for GN, SN and title that Go's pkix.Name leaves as
// OIDs.
func subjectString(c *x509.Certificate) string {
	var seq pkix.RDNSequence
	if rest, err := asn1.Unmarshal(c.RawSubject, &seq); err != nil || len(rest) > 0 {
		return c.Subject.String()
	}
	var b strings.Builder
	for i := len(seq) - 1; i >= 0; i-- {
		if i < len(seq)-1 {
			b.WriteByte(',')
		}
		for j, atv := range seq[i] {
			if j > 0 {
				b.WriteByte('+')
			}
			name, ok := attrNames[atv.Type.String()]
			if !ok {
				name = atv.Type.String()
			}
			b.WriteString(name)
			b.WriteByte('=')
			s, ok := atv.Value.(string)
			if !ok {
				s = fmt.Sprint(atv.Value)
			}
			b.WriteString(escapeDNValue(s))
		}
	}
	return b.String()
}

// escapeDNValue escapes an attribute value (RFC 4514 2.4).
func escapeDNValue(s string) string {
	var b strings.Builder
	for i, r := range s {
		switch {
		case strings.ContainsRune(`,+"\<>;`, r),
			i == 0 && (r == ' ' || r == '#'),
			i == len(s)-1 && r == ' ':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
