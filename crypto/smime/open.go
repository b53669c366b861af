package smime

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"
)

// Detect tells what a message is, from its top-level Content-Type (RFC
// 8551 3.2.2 and 3.5; the x-pkcs7-* names of older clients included).
// When smime-type is missing, the CMS content type decides.
func Detect(msg []byte) (k Kind) {
	defer func() {
		if r := recover(); r != nil {
			recovered.Add(1)
			k = Plain
		}
	}()
	return detectMessage(msg)
}

func detectMessage(msg []byte) Kind {
	if len(msg) > MaxMessageSize {
		return Plain
	}
	fields, body, err := splitMessage(toCRLF(msg))
	if err != nil {
		return Plain
	}
	return detect(fields, body)
}

func detect(fields []field, body []byte) Kind {
	mt, params := mediaType(fields)
	switch mt {
	case "multipart/signed":
		switch strings.ToLower(params["protocol"]) {
		case "application/pkcs7-signature", "application/x-pkcs7-signature":
			return Signed
		}
	case "application/pkcs7-mime", "application/x-pkcs7-mime":
		switch strings.ToLower(params["smime-type"]) {
		case "enveloped-data", "authenveloped-data":
			return Encrypted
		case "signed-data", "certs-only":
			if strings.EqualFold(params["smime-type"], "certs-only") {
				return Plain
			}
			return Signed
		case "":
			der, err := decodeBase64(body)
			if err != nil {
				return Plain
			}
			ci, err := parseContentInfo(der)
			if err != nil {
				return Plain
			}
			switch {
			case ci.ContentType.Equal(oidEnvelopedData), ci.ContentType.Equal(oidAuthEnvelopedData):
				return Encrypted
			case ci.ContentType.Equal(oidSignedData):
				return Signed
			}
		}
	}
	return Plain
}

// Open undoes what Sign and Encrypt (or OpenSSL, Thunderbird, Outlook) did:
// decrypts with the first of keys that a RecipientInfo names, verifies a
// signature if any (chain, key usage, validity, revocation, From address),
// unwraps message/rfc822 when the signed content is one, and returns the
// inner message with the Result. It never panics.
//
// When a layer cannot be decrypted or parsed, Message is the original (its
// forged authentication fields removed) and Result says why; the error is
// Result.Err. A signature that fails still returns the inner message, with
// Verdict fail.
func Open(ctx context.Context, msg []byte, keys []Identity, opts VerifyOptions) (op Opened, err error) {
	original := msg
	defer func() {
		if r := recover(); r != nil {
			recovered.Add(1)
			op = Opened{Message: stripForged(original, opts.AuthServID),
				Result: Result{Verdict: "permerror", Err: fmt.Errorf("%w: internal error: %v", ErrMalformed, r)}}
			err = op.Result.Err
		}
	}()
	res := Result{Verdict: "none"}
	fail := func(e error, verdict string) (Opened, error) {
		res.Err = e
		res.Verdict = verdict
		return Opened{Message: stripForged(original, opts.AuthServID), Result: res}, e
	}
	if len(msg) > MaxMessageSize {
		return fail(fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(msg), MaxMessageSize), "permerror")
	}
	cur := toCRLF(msg)
	sigSeen := false
	for depth := 0; ; depth++ {
		if err := ctx.Err(); err != nil {
			return fail(err, "temperror")
		}
		fields, body, perr := splitMessage(cur)
		if perr != nil {
			if depth == 0 {
				break // not a message we understand: plain
			}
			return fail(fmt.Errorf("%w: inner message: %v", ErrMalformed, perr), "permerror")
		}
		kind := detect(fields, body)
		if kind == Plain {
			break
		}
		if depth == MaxDepth {
			return fail(fmt.Errorf("%w: more than %d layers", ErrTooDeep, MaxDepth), "permerror")
		}
		var entity []byte
		switch kind {
		case Encrypted:
			der, err := decodeBase64(body)
			if err != nil {
				return fail(err, "permerror")
			}
			ci, err := parseContentInfo(der)
			if err != nil {
				return fail(err, "permerror")
			}
			switch {
			case ci.ContentType.Equal(oidEnvelopedData):
				entity, err = decryptEnveloped(ci.Content, keys)
			case ci.ContentType.Equal(oidAuthEnvelopedData):
				entity, err = decryptAuthEnveloped(ci.Content, keys)
			default:
				err = fmt.Errorf("%w: content type %v is not enveloped-data", ErrMalformed, ci.ContentType)
			}
			if err != nil {
				return fail(err, "permerror")
			}
			res.Encrypted = true
		case Signed:
			content, sres, err := openSigned(ctx, fields, body, opts)
			if err != nil { // not verifiable at all: malformed
				return fail(err, "permerror")
			}
			res.Signed = true
			if !sigSeen {
				// The outermost signature is the one reported; an inner
				// one is verified too and can only make it worse.
				sigSeen = true
				res.Signer, res.Chain, res.ChainRoot, res.Revocation = sres.Signer, sres.Chain, sres.ChainRoot, sres.Revocation
				res.Verdict, res.Err = sres.Verdict, sres.Err
			} else if sres.Verdict != "pass" && res.Verdict == "pass" {
				res.Verdict, res.Err = sres.Verdict, sres.Err
			}
			entity = content
			// RFC 8550 3: the signer's address must match From. Checked
			// against the message the signature protects.
			if res.Signer != nil && res.Verdict == "pass" {
				from := fromOf(fields, entity)
				addr, ok := certCovers(res.Signer, from)
				if addr != "" {
					res.SignerAddress = addr
				}
				if !ok {
					res.Verdict = "fail"
					res.Err = fmt.Errorf("%w: From is %q, certificate is for %s", ErrAddress, from, strings.Join(certNames(res.Signer), ", "))
				}
			} else if res.Signer != nil && res.SignerAddress == "" && len(res.Signer.EmailAddresses) > 0 {
				res.SignerAddress = res.Signer.EmailAddresses[0]
			}
		}
		cur = rebuild(fields, entity)
	}
	return Opened{Message: stripForged(cur, opts.AuthServID), Result: res}, res.Err
}

// rebuild makes the message that a decrypted or verified entity stands
// for: a message/rfc822 entity is the message itself (the Direct profile);
// otherwise the outer message fields with the entity's Content-* fields
// and body.
func rebuild(outer []field, entity []byte) []byte {
	efields, ebody, err := splitMessage(entity)
	if err != nil {
		efields, ebody = nil, entity
		if bytes.HasPrefix(entity, []byte("\r\n")) {
			ebody = entity[2:]
		}
	}
	if mt, _ := mediaType(efields); mt == "message/rfc822" {
		return ebody
	}
	var out bytes.Buffer
	writeOuter(&out, outer, func(n string) bool { return !isMIMEField(n) })
	for _, f := range efields {
		if isMIMEField(f.name) {
			out.Write(f.raw)
		}
	}
	out.WriteString("\r\n")
	out.Write(ebody)
	return out.Bytes()
}

// fromOf returns the From address the signature covers: the wrapped
// message's when the entity is message/rfc822, else the outer one.
func fromOf(outer []field, entity []byte) string {
	fields := outer
	if ef, eb, err := splitMessage(entity); err == nil {
		if mt, _ := mediaType(ef); mt == "message/rfc822" {
			if inner, _, err := splitMessage(eb); err == nil {
				fields = inner
			}
		}
	}
	v, _ := get(fields, "from")
	a, err := mail.ParseAddress(v)
	if err != nil {
		if l, err := mail.ParseAddressList(v); err == nil && len(l) > 0 {
			return l[0].Address
		}
		return v
	}
	return a.Address
}

// certCovers tells whether cert is for address: an rfc822Name (RFC 8550
// 3) or, for the Direct Project's organisation certificates, a dNSName
// equal to the address's domain.
func certCovers(cert *x509.Certificate, address string) (string, bool) {
	for _, e := range cert.EmailAddresses {
		if strings.EqualFold(e, address) {
			return e, true
		}
	}
	if at := strings.LastIndexByte(address, '@'); at > 0 {
		for _, d := range cert.DNSNames {
			if strings.EqualFold(d, address[at+1:]) {
				return address, true
			}
		}
	}
	if len(cert.EmailAddresses) > 0 {
		return cert.EmailAddresses[0], false
	}
	return "", false
}

func certNames(cert *x509.Certificate) []string {
	names := append([]string{}, cert.EmailAddresses...)
	names = append(names, cert.DNSNames...)
	if len(names) == 0 {
		names = []string{"no address"}
	}
	return names
}

// sigResult is the verification of one SignedData.
type sigResult struct {
	Signer                       *x509.Certificate
	Chain, ChainRoot, Revocation string
	Verdict                      string
	Err                          error
}

// openSigned reads a multipart/signed or pkcs7-mime signed-data entity,
// returns the signed content and the verification. The error is for
// entities too broken to say anything about.
func openSigned(ctx context.Context, fields []field, body []byte, opts VerifyOptions) ([]byte, sigResult, error) {
	var content, der []byte
	mt, params := mediaType(fields)
	if mt == "multipart/signed" {
		// RFC 1847 2.1, RFC 8551 3.5.3: two parts, the content and the
		// detached signature.
		parts, err := multipartParts(body, params["boundary"], 2)
		if err != nil {
			return nil, sigResult{}, err
		}
		if len(parts) != 2 {
			return nil, sigResult{}, fmt.Errorf("%w: multipart/signed with %d parts", ErrMalformed, len(parts))
		}
		content = parts[0]
		sf, sb, err := splitMessage(parts[1])
		if err != nil {
			return nil, sigResult{}, fmt.Errorf("%w: signature part: %v", ErrMalformed, err)
		}
		smt, _ := mediaType(sf)
		if smt != "application/pkcs7-signature" && smt != "application/x-pkcs7-signature" {
			return nil, sigResult{}, fmt.Errorf("%w: signature part is %s", ErrMalformed, smt)
		}
		if der, err = decodeBase64(sb); err != nil {
			return nil, sigResult{}, err
		}
	} else {
		var err error
		if der, err = decodeBase64(body); err != nil {
			return nil, sigResult{}, err
		}
	}
	ci, err := parseContentInfo(der)
	if err != nil {
		return nil, sigResult{}, err
	}
	p, err := parseSignedData(ci)
	if err != nil {
		return nil, sigResult{}, err
	}
	if content == nil {
		if p.content == nil {
			return nil, sigResult{}, fmt.Errorf("%w: signed-data without content", ErrMalformed)
		}
		// RFC 8551 3.5.2: the encapsulated content is a MIME entity
		// (in canonical form, but accept bare LF).
		content = toCRLF(p.content)
	}
	return content, verify(ctx, p, content, opts), nil
}

// verify checks the signature, then the chain (validity, key usage,
// trust), then revocation. The first SignerInfo that passes wins; if none
// does, the first one's failure is reported.
func verify(ctx context.Context, p *parsedSigned, content []byte, opts VerifyOptions) sigResult {
	var first *sigResult
	for _, si := range p.signers {
		r := verifyOne(ctx, p, si, content, opts)
		if r.Verdict == "pass" {
			return r
		}
		if first == nil {
			first = &r
		}
	}
	return *first
}

func verifyOne(ctx context.Context, p *parsedSigned, si signerInfo, content []byte, opts VerifyOptions) sigResult {
	r := sigResult{Chain: "not checked", Revocation: "unknown (not checked)"}
	cert, err := p.checkSignature(si, content)
	r.Signer = cert
	if err != nil {
		r.Verdict, r.Err = "fail", err
		if errors.Is(err, ErrMalformed) || errors.Is(err, ErrUnsupported) {
			r.Verdict = "permerror"
		}
		return r
	}
	now := time.Now()
	if opts.Now != nil {
		now = opts.Now()
	}
	chain, err := verifyChain(cert, p.certs, opts, now)
	if err != nil {
		r.Chain, r.Verdict, r.Err = err.Error(), "fail", err
		return r
	}
	r.Chain = "ok"
	r.ChainRoot = commonName(chain[len(chain)-1])
	rev, err := checkRevocation(ctx, chain, opts)
	r.Revocation = rev
	if err != nil {
		r.Err = err
		if errors.Is(err, ErrRevoked) {
			r.Verdict = "fail"
		} else {
			r.Verdict = "temperror"
		}
		return r
	}
	r.Verdict = "pass"
	return r
}

// verifyChain checks key usage (RFC 8550 4.4.2: digitalSignature or
// nonRepudiation), then builds a chain to the roots valid now and for
// email protection (RFC 8550 4.4.4).
func verifyChain(cert *x509.Certificate, embedded []*x509.Certificate, opts VerifyOptions, now time.Time) ([]*x509.Certificate, error) {
	if cert.KeyUsage != 0 && cert.KeyUsage&(x509.KeyUsageDigitalSignature|x509.KeyUsageContentCommitment) == 0 {
		return nil, fmt.Errorf("%w: certificate of %s is not for digital signatures", ErrKeyUsage, commonName(cert))
	}
	inter := x509.NewCertPool()
	if opts.Intermediates != nil {
		inter = opts.Intermediates.Clone()
	}
	for _, c := range embedded {
		if c != cert {
			inter.AddCert(c)
		}
	}
	chains, err := cert.Verify(x509.VerifyOptions{
		Roots:         opts.Roots,
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
	})
	if err != nil {
		var inv x509.CertificateInvalidError
		var ua x509.UnknownAuthorityError
		switch {
		case errors.As(err, &inv) && inv.Reason == x509.Expired && now.Before(inv.Cert.NotBefore):
			return nil, fmt.Errorf("%w: %s, valid from %s", ErrNotYetValid, commonName(inv.Cert), inv.Cert.NotBefore.UTC().Format(time.RFC3339))
		case errors.As(err, &inv) && inv.Reason == x509.Expired:
			return nil, fmt.Errorf("%w: %s, valid until %s", ErrExpired, commonName(inv.Cert), inv.Cert.NotAfter.UTC().Format(time.RFC3339))
		case errors.As(err, &inv) && inv.Reason == x509.IncompatibleUsage:
			return nil, fmt.Errorf("%w: certificate of %s is not for email protection", ErrKeyUsage, commonName(cert))
		case errors.As(err, &ua):
			return nil, fmt.Errorf("%w: %s is not issued by a trusted authority", ErrUntrusted, commonName(cert))
		}
		return nil, fmt.Errorf("%w: %v", ErrUntrusted, err)
	}
	return chains[0], nil
}

// checkRevocation asks opts.Revocation about every certificate of the
// chain but the root. Returns the summary for the leaf, or the first
// revoked certificate.
func checkRevocation(ctx context.Context, chain []*x509.Certificate, opts VerifyOptions) (string, error) {
	if opts.Revocation == nil {
		return "unknown (not checked)", nil
	}
	summary := ""
	for i := 0; i+1 < len(chain); i++ {
		rr, err := opts.Revocation(ctx, chain[i], chain[i+1])
		if err != nil {
			return "unknown (" + err.Error() + ")", fmt.Errorf("%w: %s: %v", ErrRevocationTemp, commonName(chain[i]), err)
		}
		s := strings.ToLower(rr.Status)
		if s == "revoked" {
			d := "revoked"
			if rr.Detail != "" {
				d += " (" + rr.Detail + ")"
			}
			return d, fmt.Errorf("%w: %s: %s", ErrRevoked, commonName(chain[i]), rr.Detail)
		}
		if s != "good" {
			s = "unknown"
		}
		if i == 0 {
			summary = s
			if rr.Detail != "" {
				summary += " (" + rr.Detail + ")"
			}
		} else if s == "unknown" && strings.HasPrefix(summary, "good") {
			summary = "unknown (issuer " + commonName(chain[i]) + " not checked)"
		}
	}
	return summary, nil
}

func commonName(c *x509.Certificate) string {
	if c == nil {
		return ""
	}
	if c.Subject.CommonName != "" {
		return c.Subject.CommonName
	}
	return c.Subject.String()
}

// stripForged removes, from the top-level header of msg, the
// Authentication-Results fields that claim authServID and every
// X-Relais-SMIME field (RFC 8601 5: a receiver removes such fields it did
// not add). Returned unchanged when there is nothing to remove.
func stripForged(msg []byte, authServID string) []byte {
	fields, body, err := splitMessage(msg)
	if err != nil {
		return msg
	}
	drop := func(f field) bool {
		switch f.name {
		case strings.ToLower(headerName):
			return true
		case "authentication-results":
			id := f.value()
			if i := strings.IndexByte(id, ';'); i >= 0 {
				id = id[:i]
			}
			if j := strings.IndexAny(id, " \t("); j >= 0 {
				id = id[:j] // RFC 8601 2.2: authserv-id [ CFWS authres-version ]
			}
			return authServID != "" && strings.EqualFold(strings.TrimSpace(id), authServID)
		}
		return false
	}
	n := 0
	for _, f := range fields {
		if drop(f) {
			n++
		}
	}
	if n == 0 {
		return msg
	}
	var out bytes.Buffer
	for _, f := range fields {
		if !drop(f) {
			out.Write(f.raw)
		}
	}
	if body != nil || bytes.Contains(msg, []byte("\r\n\r\n")) {
		out.WriteString("\r\n")
		out.Write(body)
	}
	return out.Bytes()
}
