package document

import "testing"

func BenchmarkAnalyzeBuilt(b *testing.B) {
	msg, _ := buildTestMessage(b, fixtureCDA(b), testPDF())
	b.ReportAllocs()
	for b.Loop() {
		if a := Analyze(msg, Limits{}); !a.Valid() {
			b.Fatal("invalid")
		}
	}
}
