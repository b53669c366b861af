package smime

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/subtle"
	"crypto/x509"
	"encoding/asn1"
	"fmt"
)

// EnvelopedData is written and read here rather than by the pkcs7 library:
// the library picks its algorithms through process-wide variables (DES-CBC
// by default, racy to switch per call), reads only issuer+serial recipient
// identifiers, and its CBC unpadding indexes out of range on a crafted
// padding byte. This is the small part of RFC 5652 6 that S/MIME needs.

// keyTransRecipientInfo is RFC 5652 6.2.1.
type keyTransRecipientInfo struct {
	Version                int
	RID                    asn1.RawValue
	KeyEncryptionAlgorithm algorithm
	EncryptedKey           []byte
}

// encryptedContentInfo is RFC 5652 6.1.
type encryptedContentInfo struct {
	ContentType                asn1.ObjectIdentifier
	ContentEncryptionAlgorithm algorithm
	EncryptedContent           asn1.RawValue `asn1:"optional,tag:0"`
}

// envelopedData is RFC 5652 6.1, for reading.
type envelopedData struct {
	Version              int
	OriginatorInfo       asn1.RawValue   `asn1:"optional,tag:0"`
	RecipientInfos       []asn1.RawValue `asn1:"set"`
	EncryptedContentInfo encryptedContentInfo
	UnprotectedAttrs     asn1.RawValue `asn1:"optional,tag:1"`
}

// envelopedDataOut is RFC 5652 6.1 for writing: version 0 since every
// recipient is a version 0 KeyTransRecipientInfo and there is neither
// originatorInfo nor unprotectedAttrs.
type envelopedDataOut struct {
	Version              int
	RecipientInfos       []keyTransOut `asn1:"set"`
	EncryptedContentInfo encryptedContentInfo
}

type keyTransOut struct {
	Version                int
	RID                    issuerAndSerial
	KeyEncryptionAlgorithm algorithm
	EncryptedKey           []byte
}

// rsaesOAEPParams is RFC 4055 3.1 (RFC 3560 2.2): absent fields mean SHA-1,
// MGF1 with SHA-1 and an empty label.
type rsaesOAEPParams struct {
	Hash    algorithm `asn1:"optional,explicit,tag:0"`
	MGF     algorithm `asn1:"optional,explicit,tag:1"`
	PSource algorithm `asn1:"optional,explicit,tag:2"`
}

// minRSABits is the smallest recipient key accepted for encryption (issue:
// RSA 2048+; RFC 8551 2.3 asks for at least 2048 too).
const minRSABits = 2048

// envelope encrypts content for recipients: AES-256-CBC content encryption
// (RFC 3565 2.1, RFC 8551 2.7 MUST), RSA key transport with PKCS#1 v1.5
// (RFC 3370 4.2.1) or, with oaep, RSAES-OAEP with SHA-256 and MGF1-SHA-256
// (RFC 3560 3, RFC 4055 3). Returns a DER ContentInfo.
func envelope(content []byte, recipients []*x509.Certificate, oaep bool) ([]byte, error) {
	// RFC 5652 6.3: PKCS #7 padding, always at least one byte.
	pad := aes.BlockSize - len(content)%aes.BlockSize
	padded := make([]byte, len(content)+pad)
	copy(padded, content)
	for i := len(content); i < len(padded); i++ {
		padded[i] = byte(pad)
	}
	return envelopeBlocks(padded, recipients, oaep)
}

// envelopeBlocks is envelope for content already padded to whole blocks.
func envelopeBlocks(padded []byte, recipients []*x509.Certificate, oaep bool) ([]byte, error) {
	if len(recipients) == 0 {
		return nil, fmt.Errorf("smime: encrypting: no recipient certificate")
	}
	key := make([]byte, 32)
	iv := make([]byte, aes.BlockSize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("smime: encrypting: %w", err)
	}
	if _, err := rand.Read(iv); err != nil {
		return nil, fmt.Errorf("smime: encrypting: %w", err)
	}
	var ris []keyTransOut
	for _, cert := range recipients {
		pub, ok := cert.PublicKey.(*rsa.PublicKey)
		if !ok {
			return nil, fmt.Errorf("smime: encrypting to %s: only RSA recipients are supported", cert.Subject)
		}
		// RFC 8550 4.4.2, 4.4.4: a key for RSA key transport needs
		// keyEncipherment when keyUsage is present, and emailProtection
		// when extendedKeyUsage is.
		if cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageKeyEncipherment == 0 {
			return nil, fmt.Errorf("smime: encrypting to %s: %w: no keyEncipherment", cert.Subject, ErrKeyUsage)
		}
		if !ekuAllows(cert) {
			return nil, fmt.Errorf("smime: encrypting to %s: %w: not for email protection", cert.Subject, ErrKeyUsage)
		}
		if pub.N.BitLen() < minRSABits {
			return nil, fmt.Errorf("smime: encrypting to %s: RSA key of %d bits, need %d", cert.Subject, pub.N.BitLen(), minRSABits)
		}
		ri := keyTransOut{RID: issuerAndSerial{Issuer: asn1.RawValue{FullBytes: cert.RawIssuer}, Serial: cert.SerialNumber}}
		var err error
		if oaep {
			ri.KeyEncryptionAlgorithm = oaepSHA256Algorithm()
			ri.EncryptedKey, err = rsa.EncryptOAEP(crypto.SHA256.New(), rand.Reader, pub, key, nil)
		} else {
			ri.KeyEncryptionAlgorithm = algorithm{Algorithm: oidRSAEncryption, Parameters: asn1.NullRawValue}
			// PKCS#1 v1.5 key transport stays the default because it is
			// what every S/MIME client reads (RFC 8551 2.3 MUST support);
			// OAEP is WithOAEP.
			//lint:ignore SA1019 interoperability, see above.
			ri.EncryptedKey, err = rsa.EncryptPKCS1v15(rand.Reader, pub, key)
		}
		if err != nil {
			return nil, fmt.Errorf("smime: encrypting the content key to %s: %w", cert.Subject, err)
		}
		ris = append(ris, ri)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("smime: encrypting: %w", err)
	}
	ct := make([]byte, len(padded))
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(ct, padded)
	ivDER, err := asn1.Marshal(iv) // RFC 3565 4.1: AES-IV ::= OCTET STRING (SIZE(16))
	if err != nil {
		return nil, fmt.Errorf("smime: encrypting: %w", err)
	}
	ed := envelopedDataOut{
		RecipientInfos: ris,
		EncryptedContentInfo: encryptedContentInfo{
			ContentType:                oidData,
			ContentEncryptionAlgorithm: algorithm{Algorithm: oidAES256CBC, Parameters: asn1.RawValue{FullBytes: ivDER}},
			EncryptedContent:           asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, Bytes: ct},
		},
	}
	edDER, err := asn1.Marshal(ed)
	if err != nil {
		return nil, fmt.Errorf("smime: encoding EnvelopedData: %w", err)
	}
	out, err := asn1.Marshal(contentInfo{ContentType: oidEnvelopedData, Content: asn1.RawValue{FullBytes: edExplicit(edDER)}})
	if err != nil {
		return nil, fmt.Errorf("smime: encoding ContentInfo: %w", err)
	}
	return out, nil
}

// edExplicit wraps der in the [0] EXPLICIT tag of ContentInfo.content.
func edExplicit(der []byte) []byte {
	return appendTLV([]byte{0xa0}, der)
}

func oaepSHA256Algorithm() algorithm {
	sha256ID := algorithm{Algorithm: oidSHA256} // RFC 4055 2.1: parameters absent
	mgfParams, _ := asn1.Marshal(sha256ID)
	params, _ := asn1.Marshal(rsaesOAEPParams{
		Hash: sha256ID,
		MGF:  algorithm{Algorithm: oidMGF1, Parameters: asn1.RawValue{FullBytes: mgfParams}},
	})
	return algorithm{Algorithm: oidRSAESOAEP, Parameters: asn1.RawValue{FullBytes: params}}
}

// decryptEnveloped opens an EnvelopedData (the Content of a ContentInfo)
// with the first key whose certificate a RecipientInfo names, by
// issuer+serial or subject key identifier (RFC 5652 6.2.1).
func decryptEnveloped(content asn1.RawValue, keys []Identity) ([]byte, error) {
	var ed envelopedData
	if _, err := asn1.Unmarshal(content.Bytes, &ed); err != nil {
		return nil, fmt.Errorf("%w: EnvelopedData: %v", ErrMalformed, err)
	}
	eci := ed.EncryptedContentInfo
	keyLen, err := cbcKeyLen(eci.ContentEncryptionAlgorithm)
	if err != nil {
		return nil, err
	}
	ct, err := encryptedContent(eci)
	if err != nil {
		return nil, err
	}
	return openRecipients(ed.RecipientInfos, keys, keyLen, func(cek []byte) ([]byte, error) {
		return decryptCBC(eci.ContentEncryptionAlgorithm, cek, ct)
	})
}

func encryptedContent(eci encryptedContentInfo) ([]byte, error) {
	if eci.EncryptedContent.Class != asn1.ClassContextSpecific || eci.EncryptedContent.Tag != 0 {
		return nil, fmt.Errorf("%w: no encrypted content", ErrMalformed)
	}
	ct, err := octets(eci.EncryptedContent, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return ct, nil
}

// openRecipients finds the RecipientInfos that name one of keys, unwraps
// the content key and hands it to open; the first success wins.
func openRecipients(ris []asn1.RawValue, keys []Identity, keyLen int, open func(cek []byte) ([]byte, error)) ([]byte, error) {
	matched := false
	var lastErr error
	for _, id := range keys {
		if id.Cert == nil || id.Key == nil {
			continue
		}
		for _, raw := range ris {
			// Only KeyTransRecipientInfo (an untagged SEQUENCE) carries RSA
			// key transport; kari/kekri/pwri/ori are tagged [1]..[4].
			if raw.Class != asn1.ClassUniversal || raw.Tag != asn1.TagSequence {
				continue
			}
			var ri keyTransRecipientInfo
			if _, err := asn1.Unmarshal(raw.FullBytes, &ri); err != nil {
				continue
			}
			if !ridMatches(ri.RID, id.Cert.RawIssuer, id.Cert.SerialNumber, id.Cert.SubjectKeyId) {
				continue
			}
			matched = true
			cek, err := unwrapKey(ri, id.Key, keyLen)
			if err != nil {
				lastErr = err
				continue
			}
			pt, err := open(cek)
			if err != nil {
				lastErr = err
				continue
			}
			return pt, nil
		}
	}
	if !matched {
		return nil, fmt.Errorf("%w: no key for any of %d recipients", ErrNoKey, len(ris))
	}
	return nil, lastErr
}

// authEnvelopedData is RFC 5083 2.1.
type authEnvelopedData struct {
	Version                  int
	OriginatorInfo           asn1.RawValue   `asn1:"optional,tag:0"`
	RecipientInfos           []asn1.RawValue `asn1:"set"`
	AuthEncryptedContentInfo encryptedContentInfo
	AuthAttrs                asn1.RawValue `asn1:"optional,tag:1"`
	MAC                      []byte
	UnauthAttrs              asn1.RawValue `asn1:"optional,tag:2"`
}

// gcmParameters is RFC 5084 3.2.
type gcmParameters struct {
	Nonce  []byte
	ICVLen int `asn1:"default:12"`
}

// decryptAuthEnveloped opens an AuthEnvelopedData with AES-GCM (RFC 5083,
// RFC 5084; RFC 8551 2.7 makes AES-GCM a MUST for receiving agents). Relais
// does not send it: the Direct profile and older clients use AES-CBC.
func decryptAuthEnveloped(content asn1.RawValue, keys []Identity) ([]byte, error) {
	var ed authEnvelopedData
	if _, err := asn1.Unmarshal(content.Bytes, &ed); err != nil {
		return nil, fmt.Errorf("%w: AuthEnvelopedData: %v", ErrMalformed, err)
	}
	eci := ed.AuthEncryptedContentInfo
	var keyLen int
	switch alg := eci.ContentEncryptionAlgorithm.Algorithm; {
	case alg.Equal(oidAES128GCM):
		keyLen = 16
	case alg.Equal(oidAES256GCM):
		keyLen = 32
	default:
		return nil, fmt.Errorf("%w: authenticated content encryption %v", ErrUnsupported, alg)
	}
	var params gcmParameters
	if rest, err := asn1.Unmarshal(eci.ContentEncryptionAlgorithm.Parameters.FullBytes, &params); err != nil || len(rest) != 0 {
		return nil, fmt.Errorf("%w: GCM parameters", ErrMalformed)
	}
	if params.ICVLen < 12 || params.ICVLen > 16 || params.ICVLen != len(ed.MAC) || len(params.Nonce) == 0 || len(params.Nonce) > 64 {
		return nil, fmt.Errorf("%w: GCM parameters (nonce %d bytes, ICV %d, MAC %d)", ErrMalformed, len(params.Nonce), params.ICVLen, len(ed.MAC))
	}
	ct, err := encryptedContent(eci)
	if err != nil {
		return nil, err
	}
	// RFC 5083 2.2: the authenticated attributes, DER with the SET OF
	// tag, are the additional data.
	var aad []byte
	if len(ed.AuthAttrs.FullBytes) > 0 {
		aad = append([]byte{0x31}, ed.AuthAttrs.FullBytes[1:]...)
	}
	return openRecipients(ed.RecipientInfos, keys, keyLen, func(cek []byte) ([]byte, error) {
		block, err := aes.NewCipher(cek)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrDecrypt, err)
		}
		var gcm cipher.AEAD
		switch {
		case len(params.Nonce) == 12:
			gcm, err = cipher.NewGCMWithTagSize(block, params.ICVLen)
		case params.ICVLen == 16:
			gcm, err = cipher.NewGCMWithNonceSize(block, len(params.Nonce))
		default:
			return nil, fmt.Errorf("%w: GCM with %d-byte nonce and %d-byte tag", ErrUnsupported, len(params.Nonce), params.ICVLen)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrDecrypt, err)
		}
		pt, err := gcm.Open(nil, params.Nonce, append(append([]byte{}, ct...), ed.MAC...), aad)
		if err != nil {
			return nil, fmt.Errorf("%w: authentication failed (wrong key or changed content)", ErrDecrypt)
		}
		return pt, nil
	})
}

// unwrapKey decrypts the content-encryption key.
func unwrapKey(ri keyTransRecipientInfo, key crypto.Signer, keyLen int) ([]byte, error) {
	dec, ok := key.(crypto.Decrypter)
	if !ok {
		return nil, fmt.Errorf("%w: key cannot decrypt", ErrDecrypt)
	}
	var opts crypto.DecrypterOpts
	switch alg := ri.KeyEncryptionAlgorithm; {
	case alg.Algorithm.Equal(oidRSAEncryption):
		// RFC 3218 2.3 (Bleichenbacher): on a padding error, use a random
		// key of the right length rather than report it; the content
		// decryption then fails like any wrong key.
		//lint:ignore SA1019 received mail uses it (RFC 8551 2.3); implicit rejection above.
		opts = &rsa.PKCS1v15DecryptOptions{SessionKeyLen: keyLen}
	case alg.Algorithm.Equal(oidRSAESOAEP):
		o, err := oaepOptions(alg)
		if err != nil {
			return nil, err
		}
		opts = o
	default:
		return nil, fmt.Errorf("%w: key transport %v", ErrUnsupported, alg.Algorithm)
	}
	cek, err := dec.Decrypt(rand.Reader, ri.EncryptedKey, opts)
	if err != nil {
		return nil, fmt.Errorf("%w: content key: %v", ErrDecrypt, err)
	}
	if len(cek) != keyLen {
		return nil, fmt.Errorf("%w: content key of %d bytes", ErrDecrypt, len(cek))
	}
	return cek, nil
}

// oaepOptions reads RSAES-OAEP-params (RFC 4055 3.1, RFC 3560 2.2).
func oaepOptions(alg algorithm) (*rsa.OAEPOptions, error) {
	p := rsaesOAEPParams{}
	if len(alg.Parameters.FullBytes) > 0 && alg.Parameters.Tag != asn1.TagNull {
		if rest, err := asn1.Unmarshal(alg.Parameters.FullBytes, &p); err != nil || len(rest) != 0 {
			return nil, fmt.Errorf("%w: RSAES-OAEP parameters", ErrMalformed)
		}
	}
	o := &rsa.OAEPOptions{Hash: crypto.SHA1, MGFHash: crypto.SHA1}
	if len(p.Hash.Algorithm) > 0 {
		h, ok := hashByOID(p.Hash.Algorithm)
		if !ok {
			return nil, fmt.Errorf("%w: OAEP hash %v", ErrUnsupported, p.Hash.Algorithm)
		}
		o.Hash = h
	}
	if len(p.MGF.Algorithm) > 0 {
		if !p.MGF.Algorithm.Equal(oidMGF1) {
			return nil, fmt.Errorf("%w: OAEP mask generation %v", ErrUnsupported, p.MGF.Algorithm)
		}
		var mh algorithm
		if _, err := asn1.Unmarshal(p.MGF.Parameters.FullBytes, &mh); err != nil {
			return nil, fmt.Errorf("%w: MGF1 parameters", ErrMalformed)
		}
		h, ok := hashByOID(mh.Algorithm)
		if !ok {
			return nil, fmt.Errorf("%w: MGF1 hash %v", ErrUnsupported, mh.Algorithm)
		}
		o.MGFHash = h
	}
	if len(p.PSource.Algorithm) > 0 {
		if !p.PSource.Algorithm.Equal(oidPSpecified) {
			return nil, fmt.Errorf("%w: OAEP label source", ErrUnsupported)
		}
		var label []byte
		if _, err := asn1.Unmarshal(p.PSource.Parameters.FullBytes, &label); err != nil {
			return nil, fmt.Errorf("%w: OAEP label", ErrMalformed)
		}
		o.Label = label
	}
	return o, nil
}

// cbcKeyLen checks the content-encryption algorithm: AES-CBC only (RFC
// 3565); DES and 3DES are refused (RFC 8551 2.7 dropped them).
func cbcKeyLen(alg algorithm) (int, error) {
	switch {
	case alg.Algorithm.Equal(oidAES128CBC):
		return 16, nil
	case alg.Algorithm.Equal(oidAES192CBC):
		return 24, nil
	case alg.Algorithm.Equal(oidAES256CBC):
		return 32, nil
	case alg.Algorithm.Equal(oidDESCBC), alg.Algorithm.Equal(oidDESEDE3):
		return 0, fmt.Errorf("%w: content encrypted with DES/3DES (refused)", ErrUnsupported)
	}
	return 0, fmt.Errorf("%w: content encryption %v", ErrUnsupported, alg.Algorithm)
}

// decryptCBC decrypts AES-CBC content and removes the RFC 5652 6.3 padding,
// checking it without branching on secret bytes.
func decryptCBC(alg algorithm, key, ct []byte) ([]byte, error) {
	var iv []byte
	if rest, err := asn1.Unmarshal(alg.Parameters.FullBytes, &iv); err != nil || len(rest) != 0 || len(iv) != aes.BlockSize {
		return nil, fmt.Errorf("%w: AES IV", ErrMalformed)
	}
	if len(ct) == 0 || len(ct)%aes.BlockSize != 0 {
		return nil, fmt.Errorf("%w: encrypted content of %d bytes is not whole blocks", ErrMalformed, len(ct))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDecrypt, err)
	}
	pt := make([]byte, len(ct))
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(pt, ct)
	n := int(pt[len(pt)-1])
	good := subtle.ConstantTimeLessOrEq(1, n) & subtle.ConstantTimeLessOrEq(n, aes.BlockSize)
	for i := 0; i < aes.BlockSize; i++ {
		inPad := subtle.ConstantTimeLessOrEq(i+1, n)
		eq := subtle.ConstantTimeByteEq(pt[len(pt)-1-i], byte(n))
		good &= subtle.ConstantTimeSelect(inPad, eq, 1)
	}
	if good != 1 {
		return nil, fmt.Errorf("%w: bad padding (wrong key or corrupted content)", ErrDecrypt)
	}
	return pt[:len(pt)-n], nil
}

func ekuAllows(cert *x509.Certificate) bool {
	if len(cert.ExtKeyUsage) == 0 && len(cert.UnknownExtKeyUsage) == 0 {
		return true
	}
	for _, u := range cert.ExtKeyUsage {
		if u == x509.ExtKeyUsageEmailProtection || u == x509.ExtKeyUsageAny {
			return true
		}
	}
	return false
}
