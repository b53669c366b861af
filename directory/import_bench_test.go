package directory

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relais-mssante/relais/directory/synth"
	"github.com/relais-mssante/relais/storage"
)

// BenchmarkImportRPPS imports a synthetic RPPS file of
// RELAIS_BENCH_RPPS_ROWS lines (default 100,000) into a fresh SQLite
// store, then imports it again (nothing changes). The target: 2
// million lines in under 60 s. RELAIS_BENCH_BATCH sets Options.BatchSize.
//
//	RELAIS_BENCH_RPPS_ROWS=2000000 go test -run '^$' -bench ImportRPPS -benchtime 1x ./directory/
func BenchmarkImportRPPS(b *testing.B) {
	rows := 100_000
	if s := os.Getenv("RELAIS_BENCH_RPPS_ROWS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			b.Fatalf("RELAIS_BENCH_RPPS_ROWS=%q", s)
		}
		rows = n
	}
	batch := 0
	if s := os.Getenv("RELAIS_BENCH_BATCH"); s != "" {
		batch, _ = strconv.Atoi(s)
	}
	path := filepath.Join(b.TempDir(), "PS_LibreAcces_Personne_activite.txt")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(f)
	if err := synth.RPPS(w, synth.Options{Rows: rows, Seed: 1}); err != nil {
		b.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	info, _ := f.Stat()
	f.Close()
	b.ResetTimer()
	var first, second time.Duration
	for range b.N {
		b.StopTimer()
		st := openStore(b)
		b.StartTimer()
		for pass := range 2 {
			in, err := os.Open(path)
			if err != nil {
				b.Fatal(err)
			}
			start := time.Now()
			sum, err := Import(context.Background(), st, FormatRPPS, in, Options{Total: info.Size(), BatchSize: batch})
			d := time.Since(start)
			in.Close()
			if err != nil {
				b.Fatal(err)
			}
			if sum.Rows != rows || sum.Rejected != 0 {
				b.Fatalf("summary:\n%s", sum)
			}
			if pass == 0 {
				first += d
				b.Logf("first import: %s", sum)
			} else {
				second += d
				if sum.Batches != 0 || sum.Counts[storage.KindActivity].Unchanged != rows {
					b.Fatalf("re-import:\n%s", sum)
				}
			}
		}
	}
	n := float64(b.N)
	b.ReportMetric(first.Seconds()/n, "import-s")
	b.ReportMetric(float64(rows)*n/first.Seconds(), "import-rows/s")
	b.ReportMetric(second.Seconds()/n, "reimport-s")
	b.ReportMetric(float64(rows)*n/second.Seconds(), "reimport-rows/s")
	b.ReportMetric(float64(info.Size())/(1<<20), "file-MiB")
}

// The pipeline the benchmark measures (flush writes a batch while the
// next is read) must not lose a write error.

// failingStore fails its second batch.
type failingStore struct {
	ImportStore
	n atomic.Int32
}

var errBatch = errors.New("disk full")

func (f *failingStore) ApplyDirectory(ctx context.Context, b storage.DirectoryBatch) error {
	if f.n.Add(1) == 2 {
		return errBatch
	}
	return f.ImportStore.ApplyDirectory(ctx, b)
}

// A batch's write runs while the next is parsed; its error still ends
// the import, and no batch is written after it.
func TestImportPipelineError(t *testing.T) {
	var file bytes.Buffer
	if err := synth.RPPS(&file, synth.Options{Rows: 5000, Seed: 3}); err != nil {
		t.Fatal(err)
	}
	st := &failingStore{ImportStore: openStore(t)}
	_, err := Import(context.Background(), st, FormatRPPS, &file, Options{BatchSize: 500})
	if !errors.Is(err, errBatch) {
		t.Fatalf("err = %v, want %v", err, errBatch)
	}
	if n := st.n.Load(); n != 2 {
		t.Errorf("%d batches sent, want 2: none after the failing one", n)
	}
}
