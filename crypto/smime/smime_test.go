package smime

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func signEncrypt(t testing.TB, f *fixture, msg []byte, opts ...EncryptOption) []byte {
	t.Helper()
	signed, err := Sign(msg, f.alice)
	require.NoError(t, err)
	enc, err := Encrypt(signed, []*x509.Certificate{f.bob.Cert}, opts...)
	require.NoError(t, err)
	return enc
}

func TestSignEncryptOpenRoundTrip(t *testing.T) {
	f := getFixture(t)
	msg := testMessage()
	enc := signEncrypt(t, f, msg)
	assert.Equal(t, Encrypted, Detect(enc))

	// Outer header: routing fields only, no Bcc, no X-Priority.
	fields, _, err := splitMessage(enc)
	require.NoError(t, err)
	for _, n := range []string{"from", "to", "subject", "date", "message-id", "disposition-notification-to"} {
		_, ok := get(fields, n)
		assert.True(t, ok, n)
	}
	_, ok := get(fields, "x-priority")
	assert.False(t, ok)
	ct, _ := get(fields, "content-type")
	assert.Contains(t, ct, "smime-type=enveloped-data")

	op, err := Open(context.Background(), enc, []Identity{f.bob}, f.opts())
	require.NoError(t, err)
	assert.Equal(t, msg, op.Message, "inner message byte for byte")
	r := op.Result
	assert.True(t, r.Encrypted)
	assert.True(t, r.Signed)
	assert.Equal(t, "pass", r.Verdict)
	assert.Equal(t, "ok", r.Chain)
	assert.Equal(t, "Relais Test Root CA", r.ChainRoot)
	assert.Equal(t, aliceAddr, r.SignerAddress)
	assert.Equal(t, "unknown (not checked)", r.Revocation)

	h := r.Header("mx.relais.example")
	for _, line := range strings.Split(strings.TrimSuffix(h, "\r\n"), "\r\n") {
		assert.LessOrEqual(t, len(line), 78)
	}
	h = strings.ReplaceAll(h, "\r\n ", " ") // unfold (RFC 5322 2.2.3)
	assert.Contains(t, h, "Authentication-Results: mx.relais.example; smime=pass")
	assert.Contains(t, h, `body.smime-identifier="`+aliceAddr+`"`)
	assert.Contains(t, h, "X-Relais-SMIME: signature valid, signed by Dr Alice Martin <"+aliceAddr+">")
	assert.Contains(t, h, "verified to Relais Test Root CA")
}

func TestOAEPAndLFInput(t *testing.T) {
	f := getFixture(t)
	lf := bytes.ReplaceAll(testMessage(), []byte("\r\n"), []byte("\n"))
	enc := signEncrypt(t, f, lf, WithOAEP())
	op, err := Open(context.Background(), enc, []Identity{f.alice, f.bob}, f.opts())
	require.NoError(t, err)
	assert.Equal(t, testMessage(), op.Message, "canonical CRLF form")
	assert.Equal(t, "pass", op.Result.Verdict)
}

func TestRevocation(t *testing.T) {
	f := getFixture(t)
	signed, err := Sign(testMessage(), f.alice)
	require.NoError(t, err)
	var asked []string
	o := f.opts()
	o.Revocation = func(_ context.Context, cert, issuer *x509.Certificate) (RevocationResult, error) {
		asked = append(asked, cert.Subject.CommonName+"<-"+issuer.Subject.CommonName)
		if cert.Equal(f.alice.Cert) {
			return RevocationResult{Status: "revoked", Detail: "keyCompromise, CRL of 2026-11-22"}, nil
		}
		return RevocationResult{Status: "good", Detail: "CRL of 2026-11-22"}, nil
	}
	op, err := Open(context.Background(), signed, nil, o)
	require.ErrorIs(t, err, ErrRevoked)
	assert.Equal(t, "fail", op.Result.Verdict)
	assert.Contains(t, op.Result.Revocation, "keyCompromise")
	assert.Equal(t, testMessage(), op.Message, "a failed signature still delivers the inner message")
	assert.Equal(t, []string{"Dr Alice Martin<-Relais Test Mail CA"}, asked)

	o.Revocation = func(context.Context, *x509.Certificate, *x509.Certificate) (RevocationResult, error) {
		return RevocationResult{Status: "good", Detail: "CRL of 2026-11-22"}, nil
	}
	op, err = Open(context.Background(), signed, nil, o)
	require.NoError(t, err)
	assert.Equal(t, "pass", op.Result.Verdict)
	assert.Contains(t, strings.ReplaceAll(op.Result.Header("mx.relais.example"), "\r\n ", " "), "not revoked (CRL of 2026-11-22)")

	o.Revocation = func(context.Context, *x509.Certificate, *x509.Certificate) (RevocationResult, error) {
		return RevocationResult{}, errors.New("CRL distribution point unreachable")
	}
	op, err = Open(context.Background(), signed, nil, o)
	require.ErrorIs(t, err, ErrRevocationTemp)
	assert.Equal(t, "temperror", op.Result.Verdict)
}

func TestVerificationFailures(t *testing.T) {
	f := getFixture(t)
	cases := []struct {
		name string
		id   Identity
		want error
		text string
	}{
		{"expired", f.expired, ErrExpired, "expired"},
		{"untrusted root", f.untrusted, ErrUntrusted, "not issued by a trusted authority"},
		{"no digitalSignature", f.noDigSig, ErrKeyUsage, "not for digital signatures"},
		{"EKU serverAuth only", f.serverEKU, ErrKeyUsage, "not for email protection"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			signed, err := Sign(testMessage(), c.id)
			require.NoError(t, err)
			op, err := Open(context.Background(), signed, nil, f.opts())
			require.ErrorIs(t, err, c.want)
			assert.Contains(t, err.Error(), c.text)
			assert.Equal(t, "fail", op.Result.Verdict)
			assert.NotEqual(t, "ok", op.Result.Chain)
			assert.Equal(t, testMessage(), op.Message)
			h := strings.ReplaceAll(op.Result.Header("mx.relais.example"), "\r\n ", " ")
			assert.Contains(t, h, "smime=fail")
			assert.Contains(t, h, "signature NOT verified")
		})
	}

	t.Run("changed content", func(t *testing.T) {
		signed, err := Sign(testMessage(), f.alice)
		require.NoError(t, err)
		changed := bytes.Replace(signed, []byte("compte rendu fictif"), []byte("compte rendu FICTIF"), 1)
		require.NotEqual(t, signed, changed)
		op, err := Open(context.Background(), changed, nil, f.opts())
		require.ErrorIs(t, err, ErrBadSignature)
		assert.Contains(t, err.Error(), "content changed")
		assert.Equal(t, "fail", op.Result.Verdict)
	})

	t.Run("From not in certificate", func(t *testing.T) {
		msg := bytes.Replace(testMessage(), []byte("From: Dr Alice Martin <"+aliceAddr), []byte("From: Mallory <mallory@cabinet-b.example"), 1)
		signed, err := Sign(msg, f.alice)
		require.NoError(t, err)
		op, err := Open(context.Background(), signed, nil, f.opts())
		require.ErrorIs(t, err, ErrAddress)
		assert.Equal(t, "fail", op.Result.Verdict)
	})
}

func TestBadInput(t *testing.T) {
	f := getFixture(t)
	ctx := context.Background()
	enc := signEncrypt(t, f, testMessage())

	t.Run("no key for any recipient", func(t *testing.T) {
		op, err := Open(ctx, enc, []Identity{f.alice}, f.opts())
		require.ErrorIs(t, err, ErrNoKey)
		assert.Equal(t, enc, op.Message, "original delivered")
		assert.Equal(t, "permerror", op.Result.Verdict)
		assert.Contains(t, strings.ReplaceAll(op.Result.Header("mx.relais.example"), "\r\n ", " "), "S/MIME NOT processed (cannot decrypt: no key")
	})

	t.Run("truncated CMS", func(t *testing.T) {
		fields, body, err := splitMessage(enc)
		require.NoError(t, err)
		trunc := rebuildRaw(fields, body[:len(body)/2])
		op, err := Open(ctx, trunc, []Identity{f.bob}, f.opts())
		require.ErrorIs(t, err, ErrMalformed)
		assert.Equal(t, trunc, op.Message)
	})

	t.Run("bad padding", func(t *testing.T) {
		for _, last := range []byte{0x00, 0x11, 0xff, 0x05} {
			blocks := bytes.Repeat([]byte("A"), 32)
			blocks[31] = last // 0x05 with "AAAA" before: inconsistent padding
			der, err := envelopeBlocks(blocks, []*x509.Certificate{f.bob.Cert}, false)
			require.NoError(t, err)
			msg := pkcs7MIME(der, "enveloped-data")
			op, err := Open(ctx, msg, []Identity{f.bob}, f.opts())
			require.ErrorIs(t, err, ErrDecrypt, "padding byte %#x", last)
			assert.Contains(t, err.Error(), "bad padding")
			assert.Equal(t, msg, op.Message)
		}
	})

	t.Run("CEK that decrypts to garbage", func(t *testing.T) {
		der, err := envelope([]byte("Content-Type: text/plain\r\n\r\nx\r\n"), []*x509.Certificate{f.bob.Cert}, false)
		require.NoError(t, err)
		// Swap in a key transport block of the wrong length: PKCS#1 v1.5
		// implicit rejection turns it into a random key.
		ci, err := parseContentInfo(der)
		require.NoError(t, err)
		other, err := envelope([]byte("y"), []*x509.Certificate{f.bob.Cert}, false)
		require.NoError(t, err)
		ci2, err := parseContentInfo(other)
		require.NoError(t, err)
		// Same recipient, different CEK: the encrypted content of one with
		// the key of the other.
		var ed1, ed2 envelopedData
		_, err = asnUnmarshal(ci.Content.Bytes, &ed1)
		require.NoError(t, err)
		_, err = asnUnmarshal(ci2.Content.Bytes, &ed2)
		require.NoError(t, err)
		ed1.RecipientInfos = ed2.RecipientInfos
		_, err = decryptEnveloped(rawOf(t, ed1), []Identity{f.bob})
		require.ErrorIs(t, err, ErrDecrypt)
	})

	t.Run("random and hostile bytes", func(t *testing.T) {
		inputs := [][]byte{
			nil, []byte("\x00\xff\x30\x80"), bytes.Repeat([]byte{0x30, 0x80}, 5000),
			pkcs7MIME(bytes.Repeat([]byte{0x30, 0x80}, 5000), "enveloped-data"),
			pkcs7MIME([]byte{0x30, 0x84, 0xff, 0xff, 0xff, 0xff}, "signed-data"),
			[]byte("Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; boundary=x\r\n\r\n--x\r\n"),
		}
		for _, in := range inputs {
			op, _ := Open(ctx, in, []Identity{f.bob}, f.opts())
			assert.NotNil(t, op.Result.Verdict)
		}
	})

	t.Run("nested too deep", func(t *testing.T) {
		m := testMessage()
		var err error
		for range MaxDepth + 1 {
			m, err = Sign(m, f.alice)
			require.NoError(t, err)
		}
		op, err := Open(ctx, m, nil, f.opts())
		require.ErrorIs(t, err, ErrTooDeep)
		assert.Equal(t, m, op.Message)

		m = testMessage()
		for range MaxDepth {
			m, err = Sign(m, f.alice)
			require.NoError(t, err)
		}
		op, err = Open(ctx, m, nil, f.opts())
		require.NoError(t, err)
		assert.Equal(t, testMessage(), op.Message)
	})

	t.Run("too large", func(t *testing.T) {
		big := make([]byte, MaxMessageSize+1)
		op, err := Open(ctx, big, nil, f.opts())
		require.ErrorIs(t, err, ErrTooLarge)
		assert.Equal(t, "permerror", op.Result.Verdict)
	})
}

// TestLibraryPanicsOnBadPadding records why decryption is not the pkcs7
// library's: its unpad slices out of range on a padding byte larger than
// the content.
func TestLibraryPanicsOnBadPadding(t *testing.T) {
	f := getFixture(t)
	blocks := bytes.Repeat([]byte("A"), 16)
	blocks[15] = 0xff
	der, err := envelopeBlocks(blocks, []*x509.Certificate{f.bob.Cert}, false)
	require.NoError(t, err)
	panicked := libraryDecryptPanics(der, f.bob)
	assert.True(t, panicked, "smallstep/pkcs7 Decrypt panics on padding byte 0xff")
	// Ours: an error.
	_, err = Open(context.Background(), pkcs7MIME(der, "enveloped-data"), []Identity{f.bob}, f.opts())
	require.ErrorIs(t, err, ErrDecrypt)
}

func TestStripForged(t *testing.T) {
	f := getFixture(t)
	msg := append([]byte("Authentication-Results: mx.relais.example; smime=pass\r\n"+
		"Authentication-Results: other.example; spf=pass\r\n"+
		"X-Relais-SMIME: signature valid, signed by the President\r\n"), testMessage()...)
	signed, err := Sign(msg, f.alice)
	require.NoError(t, err)
	op, err := Open(context.Background(), signed, nil, f.opts())
	require.NoError(t, err)
	assert.NotContains(t, string(op.Message), "mx.relais.example")
	assert.NotContains(t, string(op.Message), "President")
	assert.Contains(t, string(op.Message), "Authentication-Results: other.example; spf=pass")
	assert.True(t, bytes.HasSuffix(op.Message, testMessage()))
}

func TestDetect(t *testing.T) {
	f := getFixture(t)
	signed, err := Sign(testMessage(), f.alice)
	require.NoError(t, err)
	enc := signEncrypt(t, f, testMessage())
	assert.Equal(t, Plain, Detect(testMessage()))
	assert.Equal(t, Signed, Detect(signed))
	assert.Equal(t, Encrypted, Detect(enc))
	assert.Equal(t, Plain, Detect([]byte("garbage")))
	noType := bytes.Replace(enc, []byte("smime-type=enveloped-data;"), []byte(""), 1)
	assert.Equal(t, Encrypted, Detect(noType), "CMS content type decides")
	assert.Equal(t, Signed, Detect(pkcs7MIME([]byte{0}, "signed-data")))
	assert.Equal(t, "encrypted", Encrypted.String())
}

func TestHeaderSanitises(t *testing.T) {
	r := Result{Signed: true, Verdict: "fail", Err: errors.New("bad\r\nX-Evil: 1 \"quoted\"")}
	h := r.Header("mx.relais.example;\r\nX-Evil: 2")
	lines := strings.Split(strings.TrimSuffix(h, "\r\n"), "\r\n")
	for _, l := range lines {
		assert.False(t, strings.HasPrefix(l, "X-Evil"), l)
		if !strings.HasPrefix(l, "Authentication-Results:") && !strings.HasPrefix(l, headerName+":") {
			assert.True(t, strings.HasPrefix(l, " "), "continuation line %q", l)
		}
	}
	assert.Contains(t, h, `\"quoted\"`)
	plain := Result{Verdict: "none"}.Header("mx.relais.example")
	assert.Equal(t, "Authentication-Results: mx.relais.example; smime=none\r\nX-Relais-SMIME: not signed, not encrypted\r\n", plain)
}

// --- OpenSSL interoperability ---

func openssl(t *testing.T, args ...string) []byte {
	t.Helper()
	path, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed")
	}
	cmd := exec.Command(path, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "openssl %s: %s", strings.Join(args, " "), stderr.String())
	return out
}

func TestOpenSSLReadsRelais(t *testing.T) {
	f := getFixture(t)
	for _, oaep := range []bool{false, true} {
		name := "pkcs1v15"
		var opts []EncryptOption
		if oaep {
			name = "oaep-sha256"
			opts = append(opts, WithOAEP())
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			enc := signEncrypt(t, f, testMessage(), opts...)
			in := filepath.Join(dir, "enc.eml")
			require.NoError(t, os.WriteFile(in, enc, 0o600))
			dec := filepath.Join(dir, "dec.eml")
			openssl(t, "cms", "-decrypt", "-recip", f.path("bob.pem"), "-inkey", f.path("bob.key"), "-in", in, "-out", dec)
			out := openssl(t, "cms", "-verify", "-CAfile", f.path("root.pem"), "-purpose", "smimesign", "-in", dec)
			want := append([]byte("Content-Type: message/rfc822\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"), testMessage()...)
			assert.Equal(t, string(want), string(out))

			// Algorithms as OpenSSL reads them: AES-256-CBC, SHA-256, never
			// DES or SHA-1.
			envStruct := string(openssl(t, "cms", "-cmsout", "-print", "-in", in))
			assert.Contains(t, envStruct, "aes-256-cbc (2.16.840.1.101.3.4.1.42)")
			if oaep {
				assert.Contains(t, envStruct, "rsaesOaep")
			} else {
				assert.Contains(t, envStruct, "rsaEncryption (1.2.840.113549.1.1.1)")
			}
			sigStruct := string(openssl(t, "cms", "-cmsout", "-print", "-in", dec))
			assert.Contains(t, sigStruct, "digestAlgorithm: \n          algorithm: sha256 (2.16.840.1.101.3.4.2.1)")
			assert.Contains(t, sigStruct, "S/MIME Capabilities")
			for _, bad := range []string{"des-", "des3", "sha1 ", "sha1("} {
				assert.NotContains(t, envStruct+sigStruct, bad)
			}
		})
	}
}

func TestRelaisReadsOpenSSL(t *testing.T) {
	f := getFixture(t)
	dir := t.TempDir()
	// The content OpenSSL signs: a MIME entity; -from/-to/-subject put the
	// message header outside, as mail clients do.
	entity := filepath.Join(dir, "entity.txt")
	body := "Content-Type: text/plain; charset=us-ascii\r\n\r\nCompte rendu fictif.\r\n"
	require.NoError(t, os.WriteFile(entity, []byte(body), 0o600))
	hdr := []string{"-from", aliceAddr, "-to", bobAddr, "-subject", "Test OpenSSL"}
	sign := func(name string, extra ...string) string {
		out := filepath.Join(dir, name)
		args := append([]string{"cms", "-sign", "-md", "sha256", "-signer", f.path("alice.pem"), "-inkey", f.path("alice.key"),
			"-certfile", f.path("inter.pem"), "-in", entity, "-out", out}, hdr...)
		openssl(t, append(args, extra...)...)
		return out
	}
	encrypt := func(name, in string, extra ...string) string {
		out := filepath.Join(dir, name)
		args := append([]string{"cms", "-encrypt", "-aes256", "-in", in, "-out", out, "-recip", f.path("bob.pem")}, extra...)
		openssl(t, append(args, hdr...)...)
		return out
	}
	detached := sign("detached.eml")
	opaque := sign("opaque.eml", "-nodetach")
	keyid := sign("keyid.eml", "-keyid")
	streamed := sign("stream.eml", "-nodetach", "-stream")
	// A signed message as the content of encryption: strip nothing, the
	// whole S/MIME message is the entity.
	cases := []struct {
		name             string
		file             string
		signed, encypted bool
	}{
		{"sign detached", detached, true, false},
		{"sign opaque", opaque, true, false},
		{"sign keyid (SKI signer)", keyid, true, false},
		{"sign opaque BER stream", streamed, true, false},
		{"encrypt pkcs1v15", encrypt("e1.eml", entity), false, true},
		{"encrypt oaep", encrypt("e2.eml", entity, "-keyopt", "rsa_padding_mode:oaep"), false, true},
		{"encrypt oaep sha256", encrypt("e3.eml", entity, "-keyopt", "rsa_padding_mode:oaep", "-keyopt", "rsa_oaep_md:sha256"), false, true},
		{"encrypt keyid (SKI recipient)", encrypt("e4.eml", entity, "-keyid"), false, true},
		{"encrypt BER stream", encrypt("e5.eml", entity, "-stream"), false, true},
		{"encrypt aes-256-gcm (authEnveloped-data)", encrypt("e8.eml", entity, "-aes-256-gcm"), false, true},
		{"encrypt aes-128-gcm oaep", encrypt("e9.eml", entity, "-aes-128-gcm", "-keyopt", "rsa_padding_mode:oaep"), false, true},
		{"sign then encrypt", encrypt("e6.eml", detached), true, true},
		{"sign keyid then encrypt oaep", encrypt("e7.eml", keyid, "-keyopt", "rsa_padding_mode:oaep"), true, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			msg, err := os.ReadFile(c.file)
			require.NoError(t, err)
			if strings.Contains(c.name, "gcm") {
				require.Contains(t, string(msg), "smime-type=authEnveloped-data")
			}
			op, err := Open(context.Background(), msg, []Identity{f.bob}, f.opts())
			require.NoError(t, err)
			r := op.Result
			assert.Equal(t, c.signed, r.Signed)
			assert.Equal(t, c.encypted, r.Encrypted)
			if c.signed {
				assert.Equal(t, "pass", r.Verdict)
				assert.Equal(t, aliceAddr, r.SignerAddress)
			} else {
				assert.Equal(t, "none", r.Verdict)
			}
			assert.Contains(t, string(op.Message), "Compte rendu fictif.\r\n")
			assert.Contains(t, string(op.Message), "Subject: Test OpenSSL\r\n")
			assert.Equal(t, Plain, Detect(op.Message))
		})
	}

	t.Run("gcm with changed MAC", func(t *testing.T) {
		msg, err := os.ReadFile(filepath.Join(dir, "e8.eml"))
		require.NoError(t, err)
		fields, body, err := splitMessage(toCRLF(msg))
		require.NoError(t, err)
		require.Equal(t, Encrypted, detect(fields, body))
		der, err := decodeBase64(body)
		require.NoError(t, err)
		der[len(der)-1] ^= 1 // the MAC is the last field
		op, err := Open(context.Background(), pkcs7MIME(der, "authEnveloped-data"), []Identity{f.bob}, f.opts())
		require.ErrorIs(t, err, ErrDecrypt)
		assert.Contains(t, err.Error(), "authentication failed")
		assert.Equal(t, "permerror", op.Result.Verdict)
	})

	t.Run("changed content", func(t *testing.T) {
		msg, err := os.ReadFile(detached)
		require.NoError(t, err)
		changed := bytes.Replace(msg, []byte("rendu fictif"), []byte("rendu modifie"), 1)
		op, err := Open(context.Background(), changed, nil, f.opts())
		require.ErrorIs(t, err, ErrBadSignature)
		assert.Equal(t, "fail", op.Result.Verdict)
	})
}

func TestNormalizeBER(t *testing.T) {
	f := getFixture(t)
	der, err := envelope([]byte("x"), []*x509.Certificate{f.bob.Cert}, false)
	require.NoError(t, err)
	out, err := normalizeBER(der)
	require.NoError(t, err)
	assert.Equal(t, &der[0], &out[0], "DER is not copied")

	// SEQUENCE(indefinite){ OCTET STRING 0x81-form length 2 "ab" } with a
	// non-minimal length inside.
	ber := []byte{0x30, 0x80, 0x04, 0x81, 0x02, 'a', 'b', 0x00, 0x00}
	out, err = normalizeBER(ber)
	require.NoError(t, err)
	assert.Equal(t, []byte{0x30, 0x04, 0x04, 0x02, 'a', 'b'}, out)

	deep := append(bytes.Repeat([]byte{0x30, 0x80}, maxBERDepth+2), bytes.Repeat([]byte{0, 0}, maxBERDepth+2)...)
	_, err = normalizeBER(deep)
	require.Error(t, err)
	_, err = normalizeBER([]byte{0x30, 0x84, 0x7f, 0xff, 0xff, 0xff})
	require.Error(t, err)
}

func TestEncryptRefusesWrongRecipients(t *testing.T) {
	f := getFixture(t)
	_, err := Encrypt(testMessage(), []*x509.Certificate{f.serverEKU.Cert})
	require.ErrorIs(t, err, ErrKeyUsage)
	_, err = Encrypt(testMessage(), nil)
	require.Error(t, err)
	_, err = Encrypt(testMessage(), []*x509.Certificate{f.root})
	require.ErrorIs(t, err, ErrKeyUsage, "a CA certificate has no keyEncipherment")
}

func TestEncryptedOnlyAndCancel(t *testing.T) {
	f := getFixture(t)
	enc, err := Encrypt(testMessage(), []*x509.Certificate{f.alice.Cert, f.bob.Cert})
	require.NoError(t, err)
	op, err := Open(context.Background(), enc, []Identity{f.bob}, f.opts())
	require.NoError(t, err)
	assert.True(t, op.Result.Encrypted)
	assert.False(t, op.Result.Signed)
	assert.Equal(t, "none", op.Result.Verdict)
	assert.Contains(t, string(op.Message), "Subject: Compte rendu de sortie (patient fictif)\r\n")
	assert.True(t, bytes.HasSuffix(op.Message, bytes.SplitN(testMessage(), []byte("\r\n\r\n"), 2)[1]))
	assert.Equal(t, "Authentication-Results: mx.relais.example; smime=none\r\nX-Relais-SMIME: not signed, was encrypted\r\n",
		op.Result.Header("mx.relais.example"))

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	op, err = Open(ctx, enc, []Identity{f.bob}, f.opts())
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, "temperror", op.Result.Verdict)
	assert.Equal(t, enc, op.Message)
}

// TestAuthEnvelopedGCM checks the AES-GCM reader on a blob built here that
// OpenSSL also reads: both must recover the same content.
func TestAuthEnvelopedGCM(t *testing.T) {
	f := getFixture(t)
	entity := "Content-Type: text/plain\r\n\r\nGCM fictif.\r\n"
	msg := pkcs7MIME(authEnvelope(t, []byte(entity), f.bob.Cert), "authEnveloped-data")
	op, err := Open(context.Background(), msg, []Identity{f.bob}, f.opts())
	require.NoError(t, err)
	assert.True(t, op.Result.Encrypted)
	assert.True(t, bytes.HasSuffix(op.Message, []byte("\r\n\r\nGCM fictif.\r\n")))

	in := filepath.Join(t.TempDir(), "gcm.eml")
	require.NoError(t, os.WriteFile(in, msg, 0o600))
	out := openssl(t, "cms", "-decrypt", "-recip", f.path("bob.pem"), "-inkey", f.path("bob.key"), "-in", in)
	assert.Equal(t, entity, string(out))
}
