package smime

import (
	"context"
	"crypto/x509"
	"testing"
	"time"
)

// fuzzSeeds are real outputs of Sign and Encrypt plus crafted blobs.
func fuzzSeeds(t testing.TB) (msgs, ders [][]byte) {
	f := getFixture(t)
	signed, err := Sign(testMessage(), f.alice)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := Encrypt(signed, []*x509.Certificate{f.bob.Cert})
	if err != nil {
		t.Fatal(err)
	}
	oaep, err := Encrypt(testMessage(), []*x509.Certificate{f.bob.Cert}, WithOAEP())
	if err != nil {
		t.Fatal(err)
	}
	msgs = [][]byte{testMessage(), signed, enc, oaep, []byte("Content-Type: application/pkcs7-mime\r\n\r\nMIA=\r\n")}
	for _, m := range msgs[1:4] {
		fields, body, err := splitMessage(m)
		if err != nil {
			t.Fatal(err)
		}
		if _, params := mediaType(fields); params["boundary"] != "" {
			parts, err := multipartParts(body, params["boundary"], 2)
			if err != nil || len(parts) != 2 {
				t.Fatal("seed: multipart", err)
			}
			_, body, _ = splitMessage(parts[1])
		}
		der, err := decodeBase64(body)
		if err != nil {
			t.Fatal(err)
		}
		ders = append(ders, der)
	}
	ders = append(ders, authEnvelope(t, []byte("Content-Type: text/plain\r\n\r\nx\r\n"), f.bob.Cert))
	ders = append(ders, []byte{0x30, 0x80, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03, 0xa0, 0x80, 0x00, 0x00, 0x00, 0x00})
	return msgs, ders
}

func FuzzOpen(f *testing.F) {
	fx := getFixture(f)
	msgs, _ := fuzzSeeds(f)
	for _, m := range msgs {
		f.Add(m)
	}
	opts := fx.opts()
	opts.Now = func() time.Time { return fx.now }
	f.Fuzz(func(t *testing.T, msg []byte) {
		op, _ := Open(context.Background(), msg, []Identity{fx.bob}, opts)
		if op.Result.Verdict == "" {
			t.Fatal("empty verdict")
		}
		if op.Message == nil && len(msg) > 0 {
			t.Fatal("message lost")
		}
		_ = op.Result.Header("mx.relais.example")
		if RecoveredPanics() != 0 {
			t.Fatalf("panic recovered in Open: %v", op.Result.Err)
		}
	})
}

func FuzzDetect(f *testing.F) {
	msgs, _ := fuzzSeeds(f)
	for _, m := range msgs {
		f.Add(m)
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		_ = detectMessage(msg) // unprotected: a panic must fail here
	})
}

// FuzzParseCMS drives the CMS layer directly: BER normalisation,
// ContentInfo, SignedData and EnvelopedData parsing and decryption.
func FuzzParseCMS(f *testing.F) {
	fx := getFixture(f)
	_, ders := fuzzSeeds(f)
	for _, d := range ders {
		f.Add(d)
	}
	f.Fuzz(func(t *testing.T, der []byte) {
		ci, err := parseContentInfo(der)
		if err != nil {
			return
		}
		if p, err := parseSignedData(ci); err == nil {
			content := p.content
			if content == nil {
				content = []byte("x")
			}
			_ = verify(context.Background(), p, content, fx.opts())
		}
		_, _ = decryptEnveloped(ci.Content, []Identity{fx.bob})
		_, _ = decryptAuthEnveloped(ci.Content, []Identity{fx.bob})
	})
}
