package smime

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"testing"

	"github.com/smallstep/pkcs7"
	"github.com/stretchr/testify/require"
)

// pkcs7MIME wraps a CMS blob as an application/pkcs7-mime message.
func pkcs7MIME(der []byte, smimeType string) []byte {
	var b bytes.Buffer
	b.WriteString("From: <" + aliceAddr + ">\r\nTo: <" + bobAddr + ">\r\nSubject: crafted\r\nMIME-Version: 1.0\r\n")
	b.WriteString("Content-Type: application/pkcs7-mime; smime-type=" + smimeType + "; name=smime.p7m\r\n")
	b.WriteString("Content-Transfer-Encoding: base64\r\n\r\n")
	b.Write(base64Lines(der))
	return b.Bytes()
}

func rebuildRaw(fields []field, body []byte) []byte {
	var b bytes.Buffer
	for _, f := range fields {
		b.Write(f.raw)
	}
	b.WriteString("\r\n")
	b.Write(body)
	return b.Bytes()
}

func asnUnmarshal(b []byte, v any) ([]byte, error) { return asn1.Unmarshal(b, v) }

func rawOf(t *testing.T, v any) asn1.RawValue {
	t.Helper()
	der, err := asn1.Marshal(v)
	require.NoError(t, err)
	return asn1.RawValue{Bytes: der}
}

// libraryDecryptPanics runs the pkcs7 library's Decrypt on der.
func libraryDecryptPanics(der []byte, id Identity) (panicked bool) {
	defer func() {
		if recover() != nil {
			panicked = true
		}
	}()
	p7, err := pkcs7.Parse(der)
	if err != nil {
		return false
	}
	_, _ = p7.Decrypt(id.Cert, id.Key)
	return false
}

// authEnvelope builds an AuthEnvelopedData with AES-256-GCM (RFC 5083,
// RFC 5084) for tests and fuzz seeds; Relais itself does not send it.
func authEnvelope(t testing.TB, content []byte, recipient *x509.Certificate) []byte {
	t.Helper()
	key := make([]byte, 32)
	nonce := make([]byte, 12)
	_, _ = rand.Read(key)
	_, _ = rand.Read(nonce)
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	sealed := gcm.Seal(nil, nonce, content, nil)
	ct, mac := sealed[:len(content)], sealed[len(content):]
	ek, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, recipient.PublicKey.(*rsa.PublicKey), key, nil)
	if err != nil {
		t.Fatal(err)
	}
	params, err := asn1.Marshal(gcmParameters{Nonce: nonce, ICVLen: 16})
	if err != nil {
		t.Fatal(err)
	}
	ed := struct {
		Version                  int
		RecipientInfos           []keyTransOut `asn1:"set"`
		AuthEncryptedContentInfo encryptedContentInfo
		MAC                      []byte
	}{
		RecipientInfos: []keyTransOut{{
			RID:                    issuerAndSerial{Issuer: asn1.RawValue{FullBytes: recipient.RawIssuer}, Serial: recipient.SerialNumber},
			KeyEncryptionAlgorithm: oaepSHA256Algorithm(),
			EncryptedKey:           ek,
		}},
		AuthEncryptedContentInfo: encryptedContentInfo{
			ContentType:                oidData,
			ContentEncryptionAlgorithm: algorithm{Algorithm: oidAES256GCM, Parameters: asn1.RawValue{FullBytes: params}},
			EncryptedContent:           asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, Bytes: ct},
		},
		MAC: mac,
	}
	der, err := asn1.Marshal(ed)
	if err != nil {
		t.Fatal(err)
	}
	out, err := asn1.Marshal(contentInfo{ContentType: oidAuthEnvelopedData, Content: asn1.RawValue{FullBytes: edExplicit(der)}})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
