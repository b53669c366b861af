package smime

import (
	"crypto"
	"crypto/subtle"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"

	"github.com/smallstep/pkcs7"
)

// smimeCapability is RFC 8551 2.5.2.
type smimeCapability struct {
	ID asn1.ObjectIdentifier
}

// signDetached makes a detached SignedData over content with SHA-256 (RFC
// 8551 2.1) and RSA PKCS#1 v1.5 (RFC 8551 2.2), with the signer's chain
// and an SMIMECapabilities attribute announcing AES-256/128-CBC (RFC 8551
// 2.5.2). The pkcs7 library writes the structure; its default digest is
// SHA-1, so the digest is always set here.
func signDetached(content []byte, id Identity) (der []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			recovered.Add(1)
			err = fmt.Errorf("smime: signing: library panic: %v", r)
		}
	}()
	sd, err := pkcs7.NewSignedData(content)
	if err != nil {
		return nil, fmt.Errorf("smime: signing: %w", err)
	}
	sd.SetDigestAlgorithm(pkcs7.OIDDigestAlgorithmSHA256)
	caps := []smimeCapability{{ID: oidAES256CBC}, {ID: oidAES128CBC}, {ID: oidRSAESOAEP}}
	cfg := pkcs7.SignerInfoConfig{ExtraSignedAttributes: []pkcs7.Attribute{{Type: oidSMIMECapabilities, Value: caps}}}
	if err := sd.AddSignerChain(id.Cert, id.Key, id.Chain, cfg); err != nil {
		return nil, fmt.Errorf("smime: signing as %s: %w", id.Cert.Subject, err)
	}
	sd.Detach()
	der, err = sd.Finish()
	if err != nil {
		return nil, fmt.Errorf("smime: signing: %w", err)
	}
	return der, nil
}

// SignedData reading is our own: the library ignores the error of its
// SignedData unmarshal, so a SignerInfo that names its signer by subject
// key identifier (RFC 5652 5.3, version 3, as `openssl cms -sign -keyid`
// and some Outlook versions write) silently disappears.

// signedData is RFC 5652 5.1.
type signedData struct {
	Version          int
	DigestAlgorithms asn1.RawValue
	EncapContentInfo encapContentInfo
	Certificates     asn1.RawValue   `asn1:"optional,tag:0"`
	CRLs             asn1.RawValue   `asn1:"optional,tag:1"`
	SignerInfos      []asn1.RawValue `asn1:"set"`
}

// encapContentInfo is RFC 5652 5.2.
type encapContentInfo struct {
	EContentType asn1.ObjectIdentifier
	EContent     asn1.RawValue `asn1:"explicit,optional,tag:0"`
}

// signerInfo is RFC 5652 5.3.
type signerInfo struct {
	Version            int
	SID                asn1.RawValue
	DigestAlgorithm    algorithm
	SignedAttrs        asn1.RawValue `asn1:"optional,tag:0"`
	SignatureAlgorithm algorithm
	Signature          []byte
	UnsignedAttrs      asn1.RawValue `asn1:"optional,tag:1"`
}

// attribute is RFC 5652 5.3 Attribute.
type attribute struct {
	Type   asn1.ObjectIdentifier
	Values asn1.RawValue `asn1:"set"`
}

// parsedSigned is a SignedData ready for verification.
type parsedSigned struct {
	sd      signedData
	content []byte // encapsulated content, nil when detached
	certs   []*x509.Certificate
	signers []signerInfo
}

func parseSignedData(ci contentInfo) (*parsedSigned, error) {
	if !ci.ContentType.Equal(oidSignedData) {
		return nil, fmt.Errorf("%w: content type %v is not signed-data", ErrMalformed, ci.ContentType)
	}
	p := &parsedSigned{}
	if _, err := asn1.Unmarshal(ci.Content.Bytes, &p.sd); err != nil {
		return nil, fmt.Errorf("%w: SignedData: %v", ErrMalformed, err)
	}
	if e := p.sd.EncapContentInfo.EContent; len(e.FullBytes) > 0 {
		var inner asn1.RawValue
		if _, err := asn1.Unmarshal(e.Bytes, &inner); err != nil {
			return nil, fmt.Errorf("%w: eContent: %v", ErrMalformed, err)
		}
		c, err := octets(inner, 0)
		if err != nil {
			return nil, fmt.Errorf("%w: eContent: %v", ErrMalformed, err)
		}
		p.content = c
	}
	// RFC 5652 10.2.3 CertificateChoices: only plain certificates
	// (untagged SEQUENCE) matter; attribute and other certificates skipped.
	for r := p.sd.Certificates.Bytes; len(r) > 0; {
		var c asn1.RawValue
		nr, err := asn1.Unmarshal(r, &c)
		if err != nil {
			return nil, fmt.Errorf("%w: certificates: %v", ErrMalformed, err)
		}
		r = nr
		if c.Class != asn1.ClassUniversal || c.Tag != asn1.TagSequence {
			continue
		}
		cert, err := x509.ParseCertificate(c.FullBytes)
		if err != nil {
			continue // an unparsable extra certificate is not the signer's problem
		}
		p.certs = append(p.certs, cert)
		if len(p.certs) > 32 {
			return nil, fmt.Errorf("%w: too many certificates", ErrMalformed)
		}
	}
	for _, raw := range p.sd.SignerInfos {
		var si signerInfo
		if rest, err := asn1.Unmarshal(raw.FullBytes, &si); err != nil || len(rest) != 0 {
			return nil, fmt.Errorf("%w: SignerInfo: %v", ErrMalformed, err)
		}
		p.signers = append(p.signers, si)
		if len(p.signers) > 8 {
			return nil, fmt.Errorf("%w: too many signers", ErrMalformed)
		}
	}
	if len(p.signers) == 0 {
		return nil, fmt.Errorf("%w: no SignerInfo", ErrMalformed)
	}
	return p, nil
}

// signerCert finds the certificate a SignerIdentifier names (RFC 5652 5.3).
func (p *parsedSigned) signerCert(si signerInfo) *x509.Certificate {
	for _, c := range p.certs {
		if ridMatches(si.SID, c.RawIssuer, c.SerialNumber, c.SubjectKeyId) {
			return c
		}
	}
	return nil
}

// checkSignature verifies one SignerInfo over content (RFC 5652 5.4, 5.6)
// and returns the signer's certificate. It does not look at the chain.
func (p *parsedSigned) checkSignature(si signerInfo, content []byte) (*x509.Certificate, error) {
	cert := p.signerCert(si)
	if cert == nil {
		return nil, fmt.Errorf("%w: the signer's certificate is not in the message", ErrBadSignature)
	}
	h, ok := hashByOID(si.DigestAlgorithm.Algorithm)
	if !ok {
		return cert, fmt.Errorf("%w: digest algorithm %v", ErrUnsupported, si.DigestAlgorithm.Algorithm)
	}
	if h == crypto.SHA1 {
		return cert, fmt.Errorf("%w: SHA-1 digests are refused", ErrBadSignature)
	}
	signed := content
	if len(si.SignedAttrs.FullBytes) > 0 {
		// RFC 5652 5.4: the message digest is over the content, the
		// signature over the DER of the SET OF signed attributes (the
		// [0] IMPLICIT tag replaced by the SET tag).
		var attrs []attribute
		if _, err := asn1.UnmarshalWithParams(si.SignedAttrs.FullBytes, &attrs, "set,tag:0"); err != nil {
			return cert, fmt.Errorf("%w: signed attributes: %v", ErrMalformed, err)
		}
		var digest []byte
		var ctype asn1.ObjectIdentifier
		for _, a := range attrs {
			switch {
			case a.Type.Equal(oidAttrMessageDigest):
				if _, err := asn1.Unmarshal(a.Values.Bytes, &digest); err != nil {
					return cert, fmt.Errorf("%w: message-digest attribute", ErrMalformed)
				}
			case a.Type.Equal(oidAttrContentType):
				if _, err := asn1.Unmarshal(a.Values.Bytes, &ctype); err != nil {
					return cert, fmt.Errorf("%w: content-type attribute", ErrMalformed)
				}
			}
		}
		// RFC 5652 11.1, 11.2: both attributes are required.
		if digest == nil || ctype == nil {
			return cert, fmt.Errorf("%w: signed attributes lack content-type or message-digest", ErrMalformed)
		}
		if !ctype.Equal(p.sd.EncapContentInfo.EContentType) {
			return cert, fmt.Errorf("%w: content-type attribute does not match", ErrBadSignature)
		}
		hh := h.New()
		hh.Write(content)
		if subtle.ConstantTimeCompare(hh.Sum(nil), digest) != 1 {
			return cert, fmt.Errorf("%w: content changed after signing (digest mismatch)", ErrBadSignature)
		}
		signed = append([]byte{0x31}, si.SignedAttrs.FullBytes[1:]...)
	}
	alg, err := signatureAlgorithm(si, h)
	if err != nil {
		return cert, err
	}
	if err := cert.CheckSignature(alg, signed, si.Signature); err != nil {
		var insecure x509.InsecureAlgorithmError
		if errors.As(err, &insecure) {
			return cert, fmt.Errorf("%w: %v", ErrUnsupported, err)
		}
		if len(si.SignedAttrs.FullBytes) == 0 {
			return cert, fmt.Errorf("%w: content changed or wrong signature: %v", ErrBadSignature, err)
		}
		return cert, fmt.Errorf("%w: signature does not verify: %v", ErrBadSignature, err)
	}
	return cert, nil
}

// signatureAlgorithm maps SignerInfo's signatureAlgorithm and digest to
// crypto/x509's (RFC 3370 3.2, RFC 4056, RFC 5754 3).
func signatureAlgorithm(si signerInfo, h crypto.Hash) (x509.SignatureAlgorithm, error) {
	a := si.SignatureAlgorithm.Algorithm
	switch {
	case a.Equal(oidRSAEncryption), a.Equal(oidSHA256WithRSA), a.Equal(oidSHA384WithRSA), a.Equal(oidSHA512WithRSA), a.Equal(oidSHA1WithRSA):
		switch h {
		case crypto.SHA256:
			return x509.SHA256WithRSA, nil
		case crypto.SHA384:
			return x509.SHA384WithRSA, nil
		case crypto.SHA512:
			return x509.SHA512WithRSA, nil
		}
	case a.Equal(oidRSASSAPSS):
		switch h {
		case crypto.SHA256:
			return x509.SHA256WithRSAPSS, nil
		case crypto.SHA384:
			return x509.SHA384WithRSAPSS, nil
		case crypto.SHA512:
			return x509.SHA512WithRSAPSS, nil
		}
	case a.Equal(oidECPublicKey), a.Equal(oidECDSASHA256), a.Equal(oidECDSASHA384), a.Equal(oidECDSASHA512):
		switch h {
		case crypto.SHA256:
			return x509.ECDSAWithSHA256, nil
		case crypto.SHA384:
			return x509.ECDSAWithSHA384, nil
		case crypto.SHA512:
			return x509.ECDSAWithSHA512, nil
		}
	}
	return 0, fmt.Errorf("%w: signature algorithm %v with %v", ErrUnsupported, a, h)
}
