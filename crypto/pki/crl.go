package pki

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"strings"
	"time"
)

// RevocationReason is a CRL reason code (RFC 5280 5.3.1).
type RevocationReason int

// The reason codes of RFC 5280 5.3.1 (7 is not used).
const (
	ReasonUnspecified          RevocationReason = 0
	ReasonKeyCompromise        RevocationReason = 1
	ReasonCACompromise         RevocationReason = 2
	ReasonAffiliationChanged   RevocationReason = 3
	ReasonSuperseded           RevocationReason = 4
	ReasonCessationOfOperation RevocationReason = 5
	ReasonCertificateHold      RevocationReason = 6
	ReasonRemoveFromCRL        RevocationReason = 8
	ReasonPrivilegeWithdrawn   RevocationReason = 9
	ReasonAACompromise         RevocationReason = 10
)

var reasonNames = map[RevocationReason]string{
	ReasonUnspecified: "unspecified", ReasonKeyCompromise: "keyCompromise", ReasonCACompromise: "cACompromise",
	ReasonAffiliationChanged: "affiliationChanged", ReasonSuperseded: "superseded",
	ReasonCessationOfOperation: "cessationOfOperation", ReasonCertificateHold: "certificateHold",
	ReasonRemoveFromCRL: "removeFromCRL", ReasonPrivilegeWithdrawn: "privilegeWithdrawn", ReasonAACompromise: "aACompromise",
}

func (r RevocationReason) String() string {
	if n, ok := reasonNames[r]; ok {
		return n
	}
	return fmt.Sprintf("reason(%d)", int(r))
}

// ParseReason accepts RFC 5280's names (case-insensitive) or numbers.
func ParseReason(s string) (RevocationReason, error) {
	for r, n := range reasonNames {
		if strings.EqualFold(s, n) || s == fmt.Sprint(int(r)) {
			return r, nil
		}
	}
	return 0, fmt.Errorf("pki: unknown revocation reason %q (keyCompromise, affiliationChanged, superseded, cessationOfOperation, privilegeWithdrawn, unspecified...)", s)
}

// crlValidity is the interval between thisUpdate and nextUpdate; a CRL is
// made again when less than crlRefresh of it remains.
const (
	crlValidity = 7 * 24 * time.Hour
	crlRefresh  = 4 * 24 * time.Hour
)

// Revoke revokes a certificate this authority issued; its CA's CRL is made
// again at once.
func (a *Authority) Revoke(serialHex string, reason RevocationReason) (Certificate, error) {
	s := NormalizeSerial(serialHex)
	if _, ok := reasonNames[reason]; !ok || reason == ReasonRemoveFromCRL {
		return Certificate{}, fmt.Errorf("pki: %s is not a reason to revoke", reason)
	}
	var out Certificate
	err := a.update(func(st *state, now time.Time) error {
		r := st.bySerial[s]
		if r == nil {
			return fmt.Errorf("%w: %s", ErrNotFound, serialHex)
		}
		if r.Imported || r.Issuer == "" {
			return fmt.Errorf("pki: %s was not issued here: only its issuer can revoke it", s)
		}
		if r.Revoked != nil {
			return fmt.Errorf("pki: %s is already revoked (%s)", s, RevocationReason(r.Reason))
		}
		t := now.UTC().Truncate(time.Second)
		r.Revoked, r.Reason = &t, int(reason)
		if err := a.makeCRL(st, r.Issuer, now); err != nil {
			return err
		}
		out = a.view(st, r, now)
		return nil
	})
	return out, err
}

// makeCRL signs a new CRL for the CA name (RFC 5280 5) and writes it to
// crl/NAME.crl.
func (a *Authority) makeCRL(st *state, name string, now time.Time) error {
	ca := st.cas[name]
	if ca == nil {
		return fmt.Errorf("pki: no CA named %q", name)
	}
	key, err := a.key(ca.Serial)
	if err != nil {
		return err
	}
	info := st.idx.CRLs[name]
	info.Number++
	info.ThisUpdate = now.UTC().Truncate(time.Second)
	info.NextUpdate = info.ThisUpdate.Add(crlValidity)
	tmpl := &x509.RevocationList{
		Number:     big.NewInt(info.Number), // RFC 5280 5.2.3, monotonically increasing
		ThisUpdate: info.ThisUpdate,         // RFC 5280 5.1.2.4
		NextUpdate: info.NextUpdate,         // RFC 5280 5.1.2.5
	}
	for _, r := range st.idx.Certs {
		if r.Issuer != name || r.Revoked == nil {
			continue
		}
		// RFC 5280 5.3.1: the reason code is absent when unspecified (Go
		// omits a zero ReasonCode).
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{
			SerialNumber: r.cert.SerialNumber, RevocationTime: *r.Revoked, ReasonCode: r.Reason,
		})
	}
	// The authority key identifier (RFC 5280 5.2.1) comes from the issuer's
	// subject key identifier.
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, ca.cert, key)
	if err != nil {
		return fmt.Errorf("pki: signing the CRL of %s: %w", name, err)
	}
	if err := writeAtomic(a.path("crl", name+".crl"), der, 0o644); err != nil {
		return err
	}
	st.idx.CRLs[name] = info
	return nil
}

// CRL returns the current CRL (DER) of the CA name, making a new one when
// it is missing or close to its nextUpdate.
func (a *Authority) CRL(name string) ([]byte, error) {
	st, err := a.current()
	if err != nil {
		return nil, err
	}
	if st.cas[name] == nil {
		return nil, fmt.Errorf("%w: no CA named %q", ErrNotFound, name)
	}
	info := st.idx.CRLs[name]
	der, err := os.ReadFile(a.path("crl", name+".crl"))
	if err == nil && a.now().Before(info.NextUpdate.Add(-crlRefresh)) {
		return der, nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("pki: reading the CRL of %s: %w", name, err)
	}
	err = a.update(func(st *state, now time.Time) error {
		// Another writer may have refreshed it meanwhile.
		if _, err := os.Stat(a.path("crl", name+".crl")); err == nil && now.Before(st.idx.CRLs[name].NextUpdate.Add(-crlRefresh)) {
			return nil
		}
		return a.makeCRL(st, name, now)
	})
	if err != nil {
		return nil, err
	}
	der, err = os.ReadFile(a.path("crl", name+".crl"))
	if err != nil {
		return nil, fmt.Errorf("pki: reading the CRL of %s: %w", name, err)
	}
	return der, nil
}

// Handler serves the CRLs and CA certificates:
//
//	GET /pki/crl/NAME.crl   application/pkix-crl (RFC 5280 4.2.1.13, RFC 2585 4.2)
//	GET /pki/ca/NAME.pem    the CA certificate in PEM
//	GET /pki/ca/NAME.crt    the CA certificate in DER, application/pkix-cert (RFC 2585 4.1)
//
// NAME is racine, organisations or personnes. Mount it on the HTTP mux
// with mux.Handle("/pki/", a.Handler()).
func (a *Authority) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /pki/crl/{file}", func(w http.ResponseWriter, r *http.Request) {
		name, ok := strings.CutSuffix(r.PathValue("file"), ".crl")
		if !ok || !isCAName(name) {
			http.NotFound(w, r)
			return
		}
		der, err := a.CRL(name)
		if err != nil {
			a.log.Error("serving a CRL", "ca", name, "err", err)
			http.Error(w, "CRL unavailable", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/pkix-crl")
		w.Header().Set("Cache-Control", "max-age=3600")
		_, _ = w.Write(der)
	})
	mux.HandleFunc("GET /pki/ca/{file}", func(w http.ResponseWriter, r *http.Request) {
		file := r.PathValue("file")
		dot := strings.LastIndexByte(file, '.')
		if dot < 0 || !isCAName(file[:dot]) {
			http.NotFound(w, r)
			return
		}
		c, err := a.CA(file[:dot])
		if err != nil {
			http.NotFound(w, r)
			return
		}
		switch file[dot:] {
		case ".pem":
			w.Header().Set("Content-Type", "application/x-pem-file")
			_, _ = w.Write(certPEM(c))
		case ".crt", ".cer", ".der":
			w.Header().Set("Content-Type", "application/pkix-cert")
			_, _ = w.Write(c.Raw)
		default:
			http.NotFound(w, r)
		}
	})
	return mux
}

func isCAName(s string) bool {
	return s == CARoot || s == CAOrganisations || s == CAPersonnes
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}
