package smime

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"testing"
)

// message10KiB is a synthetic message with a 10 KiB text body.
func message10KiB() []byte {
	line := []byte("Ligne de compte rendu fictif pour la mesure, sans donnee reelle.\r\n")
	body := bytes.Repeat(line, 10*1024/len(line)+1)[:10*1024]
	h := bytes.SplitAfterN(testMessage(), []byte("\r\n\r\n"), 2)[0]
	return append(append([]byte{}, h...), body...)
}

// BenchmarkSignEncrypt10KiB measures Sign then Encrypt to one recipient,
// the work of one outbound message.
func BenchmarkSignEncrypt10KiB(b *testing.B) {
	f := getFixture(b)
	msg := message10KiB()
	recips := []*x509.Certificate{f.bob.Cert}
	b.SetBytes(int64(len(msg)))
	b.ResetTimer()
	for b.Loop() {
		s, err := Sign(msg, f.alice)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Encrypt(s, recips); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkOpen10KiB measures decrypt + verify of what Sign+Encrypt made.
func BenchmarkOpen10KiB(b *testing.B) {
	f := getFixture(b)
	s, err := Sign(message10KiB(), f.alice)
	if err != nil {
		b.Fatal(err)
	}
	enc, err := Encrypt(s, []*x509.Certificate{f.bob.Cert})
	if err != nil {
		b.Fatal(err)
	}
	keys := []Identity{f.bob}
	opts := f.opts()
	b.SetBytes(int64(len(enc)))
	b.ResetTimer()
	for b.Loop() {
		op, err := Open(context.Background(), enc, keys, opts)
		if err != nil || op.Result.Verdict != "pass" {
			b.Fatal(err, op.Result.Verdict)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkRSASign2048 is Go's raw RSA-2048 PKCS#1 v1.5 SHA-256 signature,
// the floor under BenchmarkSignEncrypt10KiB and the figure to set beside
// `openssl speed rsa2048`.
func BenchmarkRSASign2048(b *testing.B) {
	f := getFixture(b)
	digest := sha256.Sum256([]byte("x"))
	for b.Loop() {
		if _, err := f.alice.Key.Sign(rand.Reader, digest[:], crypto.SHA256); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sign/s")
}
