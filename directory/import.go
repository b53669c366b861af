package directory

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"
	"unicode"

	"golang.org/x/text/unicode/norm"

	"github.com/relais-mssante/relais/storage"
)

// ImportStore is what an import needs from the store: the current content
// of a source, and a way to write differences.
type ImportStore interface {
	ApplyDirectory(ctx context.Context, b storage.DirectoryBatch) error
	DirectoryHashes(ctx context.Context, kind storage.EntryKind, source string, fn func(key string, hash uint64) error) error
}

// Format is a national file format; its name is also the source of the
// entries it fills (storage.SourceRPPS, ...).
type Format string

const (
	FormatRPPS      Format = storage.SourceRPPS      // PS_LibreAcces_Personne_activite
	FormatMSSante   Format = storage.SourceMSSante   // Extraction_Correspondance_MSSante
	FormatTrustList Format = storage.SourceTrustList // listeblanchemssante.xml
)

// ParseFormat returns the format named s ("rpps", "mssante", "trustlist").
func ParseFormat(s string) (Format, error) {
	switch f := Format(strings.ToLower(strings.TrimSpace(s))); f {
	case FormatRPPS, FormatMSSante, FormatTrustList:
		return f, nil
	}
	return "", fmt.Errorf("directory: unknown file kind %q (want rpps, mssante or trustlist)", s)
}

// Defaults of Options.
const (
	DefaultBatchSize       = 10000
	DefaultMaxRemovalRatio = 0.10
	// MinMassRemoval: removing at most this many entries is never a mass
	// removal, so that a small directory can lose one entry.
	MinMassRemoval      = 10
	maxRejectionDetails = 1000
)

// Options tune an import. The zero value is usable.
type Options struct {
	// BatchSize is the number of entries per ApplyDirectory (one
	// transaction); 0 means DefaultBatchSize.
	BatchSize int
	// MaxLine bounds a line of a pipe-separated file; 0 means DefaultMaxLine.
	MaxLine int
	// AllowMassRemoval applies removals even when they exceed
	// MaxRemovalRatio of the existing entries or when rejected lines had
	// no readable identifier.
	AllowMassRemoval bool
	// MaxRemovalRatio: 0 means DefaultMaxRemovalRatio.
	MaxRemovalRatio float64
	// Total is the size of the input, when known, passed to Progress.
	Total int64
	// Progress, when set, is called at most about ten times a second and
	// once at the end.
	Progress func(Progress)
	Logger   *slog.Logger
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// BulkThreshold is how many written entries make an import consider
	// bulk mode (see BulkStore); 0 means DefaultBulkThreshold.
	BulkThreshold int
}

// Progress reports how far an import is.
type Progress struct {
	Bytes, Total int64  // bytes of input read; Total from Options (may be 0)
	Rows         int    // data rows (or XML entries) read
	Phase        string // after the rows: what the import is doing ("" while reading)
}

// Counts are the outcome of an import for one kind of entry.
type Counts struct {
	Added, Updated, Unchanged, Removed int
}

// Summary is the outcome of an import.
type Summary struct {
	Format   Format
	Encoding string // of the input file
	Rows     int    // data rows (XML: Domaine elements) read, rejected ones included
	Counts   map[storage.EntryKind]Counts
	Rejected int         // rows rejected
	Details  []Rejection // the first 1,000 rejections
	// RemovalsSkipped says why entries absent from the file were kept;
	// RemovalsPending is how many.
	RemovalsSkipped string
	RemovalsPending int
	Warnings        []string // about the file as a whole
	Batches         int      // ApplyDirectory calls
	Bulk            bool     // loaded in bulk mode, the search indexes rebuilt at the end
	Duration        time.Duration
}

// String is the summary for an administrator.
func (s Summary) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d rows read (%s) in %s, %d rejected\n", s.Format, s.Rows, s.Encoding, s.Duration.Round(time.Millisecond), s.Rejected)
	kinds := make([]string, 0, len(s.Counts))
	for k := range s.Counts {
		kinds = append(kinds, string(k))
	}
	slices.Sort(kinds)
	for _, k := range kinds {
		c := s.Counts[storage.EntryKind(k)]
		fmt.Fprintf(&b, "  %-13s added %d, updated %d, unchanged %d, removed %d\n", k, c.Added, c.Updated, c.Unchanged, c.Removed)
	}
	for _, w := range s.Warnings {
		fmt.Fprintf(&b, "  warning: %s\n", w)
	}
	if s.Bulk {
		fmt.Fprintf(&b, "  loaded in bulk: the search indexes were rebuilt at the end\n")
	}
	if s.RemovalsSkipped != "" {
		fmt.Fprintf(&b, "  %d removals skipped: %s\n", s.RemovalsPending, s.RemovalsSkipped)
	}
	for _, r := range s.Details {
		fmt.Fprintf(&b, "  rejected %s\n", r)
	}
	if s.Rejected > len(s.Details) {
		fmt.Fprintf(&b, "  ... and %d more rejections\n", s.Rejected-len(s.Details))
	}
	return b.String()
}

// Import reads a national file from r and applies it to the store as the
// entries of its source: new and changed entries are written in batches,
// entries of the source absent from the file are removed (with the
// safety rules of Options), unchanged ones are not touched. A re-import of
// the same file writes nothing. Bad rows are rejected with their line
// number and the import goes on; the error is for what stops it (an
// unreadable file, a missing column, the store).
func Import(ctx context.Context, st ImportStore, f Format, r io.Reader, opts Options) (sum Summary, err error) {
	im := newImporter(ctx, st, f, opts)
	defer func() {
		// Whatever happened, the search indexes come back.
		if endErr := im.endBulk(); endErr != nil && err == nil {
			err = endErr
		}
	}()
	switch f {
	case FormatRPPS:
		err = im.importRPPS(r)
	case FormatMSSante:
		err = im.importMSSante(r)
	case FormatTrustList:
		err = im.importTrustList(r)
	default:
		_, err = ParseFormat(string(f))
	}
	if err == nil {
		err = im.finish()
	}
	// A batch may still be in flight after an error.
	if werr := im.wait(); werr != nil && err == nil {
		err = werr
	}
	if endErr := im.endBulk(); endErr != nil && err == nil {
		err = endErr
	}
	im.sum.Duration = im.now().Sub(im.start)
	for k, t := range im.tables {
		im.sum.Counts[k] = t.counts
	}
	if err != nil {
		return im.sum, err
	}
	im.log.Info("directory import", "format", string(f), "rows", im.sum.Rows, "rejected", im.sum.Rejected,
		"encoding", im.sum.Encoding, "duration", im.sum.Duration, "removals_skipped", im.sum.RemovalsPending)
	return im.sum, nil
}

// BulkStore is implemented by stores that load faster without their
// search indexes (storage/sqlite): between BeginDirectoryBulk and
// EndDirectoryBulk they drop the indexes whose keys arrive in random order
// and rebuild each by one sort at the end. Lookups by key stay correct and
// fast meanwhile; searches are slow until the end.
type BulkStore interface {
	BeginDirectoryBulk(ctx context.Context) error
	EndDirectoryBulk(ctx context.Context) error
}

// DefaultBulkThreshold is how many entries an import writes before it
// considers bulk mode: below it, maintaining the indexes row by row costs
// less than rebuilding them.
const DefaultBulkThreshold = 100_000

// maybeBulk switches to bulk mode once the import has written many
// entries and most of what it writes is new (a first import, or a file
// that replaces most of the directory): the indexes are then cheaper to
// rebuild than to maintain. A differential re-import stays out of it, so
// searches keep their speed while it runs.
func (im *importer) maybeBulk() error {
	if im.bulk || im.bulkChecked {
		return nil
	}
	bs, ok := im.st.(BulkStore)
	if !ok {
		im.bulkChecked = true
		return nil
	}
	written, existing := 0, 0
	for _, t := range im.tables {
		written += t.counts.Added + t.counts.Updated
		existing += t.existing
	}
	threshold := im.opts.BulkThreshold
	if threshold <= 0 {
		threshold = DefaultBulkThreshold
	}
	if written < threshold {
		return nil
	}
	im.bulkChecked = true
	if written < existing {
		return nil
	}
	if err := bs.BeginDirectoryBulk(im.ctx); err != nil {
		return fmt.Errorf("directory: entering bulk mode: %w", err)
	}
	im.bulk = true
	im.sum.Bulk = true
	im.log.Info("directory import: bulk mode (search indexes rebuilt at the end)", "format", im.source, "written", written, "existing", existing)
	return nil
}

// endBulk rebuilds the indexes after a bulk import, even one that failed
// or was cancelled (with a context of its own then).
func (im *importer) endBulk() error {
	if !im.bulk {
		return nil
	}
	im.bulk = false
	if im.opts.Progress != nil {
		im.opts.Progress(Progress{Bytes: im.bytes(), Total: im.opts.Total, Rows: im.sum.Rows, Phase: "rebuilding the search indexes"})
	}
	ctx := context.WithoutCancel(im.ctx)
	if err := im.st.(BulkStore).EndDirectoryBulk(ctx); err != nil {
		return fmt.Errorf("directory: rebuilding the search indexes: %w", err)
	}
	return nil
}

// Entry state flags of a table.
const (
	inStore   = 1 << iota // the store had the key before the import
	seen                  // the file has the key (or a rejected line protects it)
	protected             // kept because a rejected line names it
)

type entryState struct {
	stored uint64 // the hash in the store
	aux    uint64 // per format: the hash of names, of the line...
	line   int32  // where the file first had the key
	flags  uint8
}

// table tracks one kind of entry through an import. Keys are kept as
// their 64-bit FNV-1a digest: a collision can only make an entry look
// changed (it is rewritten) or keep a stale entry (not removed), never lose
// one.
type table struct {
	kind     storage.EntryKind
	m        map[uint64]entryState
	existing int
	counts   Counts
}

type importer struct {
	ctx     context.Context
	st      ImportStore
	opts    Options
	log     *slog.Logger
	now     func() time.Time
	start   time.Time
	source  string
	sum     Summary
	tables  map[storage.EntryKind]*table
	order   []storage.EntryKind // removal order
	batch   storage.DirectoryBatch
	pending int
	unkeyed int // rejections without a readable key
	// protectedProfs are professionals named by rejected lines: their
	// activities stay.
	protectedProfs map[string]bool
	// protectedDomains are trust list domains named by rejected entries:
	// all their entries stay.
	protectedDomains map[string]bool
	// keep names the kinds whose removals are skipped, and why.
	keep         map[storage.EntryKind]string
	lastProgress time.Time
	bytes        func() int64
	// bulk: the store is in bulk mode (BulkStore); bulkChecked: the
	// decision is taken.
	bulk, bulkChecked bool
	// inflight receives the outcome of the batch being written (flush).
	inflight chan error
}

func newImporter(ctx context.Context, st ImportStore, f Format, opts Options) *importer {
	if opts.BatchSize <= 0 {
		opts.BatchSize = DefaultBatchSize
	}
	if opts.MaxRemovalRatio <= 0 {
		opts.MaxRemovalRatio = DefaultMaxRemovalRatio
	}
	im := &importer{
		ctx: ctx, st: st, opts: opts, log: opts.Logger, now: opts.Now,
		source:           string(f),
		sum:              Summary{Format: f, Encoding: EncodingUTF8, Counts: map[storage.EntryKind]Counts{}},
		tables:           map[storage.EntryKind]*table{},
		protectedProfs:   map[string]bool{},
		protectedDomains: map[string]bool{},
		keep:             map[storage.EntryKind]string{},
		bytes:            func() int64 { return 0 },
	}
	if im.log == nil {
		im.log = slog.New(slog.DiscardHandler)
	}
	if im.now == nil {
		im.now = time.Now
	}
	im.start = im.now()
	im.batch.Source = im.source
	return im
}

// load reads the source's current keys and hashes of the kinds, in
// removal order.
func (im *importer) load(kinds ...storage.EntryKind) error {
	for _, k := range kinds {
		t := &table{kind: k, m: map[uint64]entryState{}}
		err := im.st.DirectoryHashes(im.ctx, k, im.source, func(key string, hash uint64) error {
			t.m[keyHash(key)] = entryState{stored: hash, flags: inStore}
			t.existing++
			return nil
		})
		if err != nil {
			return fmt.Errorf("directory: loading the %s entries of %s: %w", k, im.source, err)
		}
		im.tables[k] = t
		im.order = append(im.order, k)
	}
	return nil
}

// lookup returns the state of key.
func (t *table) lookup(key string) (entryState, uint64) {
	h := keyHash(key)
	return t.m[h], h
}

// record marks the entry as present in the file with its content hash and
// says whether it must be written.
func (t *table) record(h uint64, st entryState, hash uint64, line int, aux uint64) bool {
	st.flags = st.flags&^protected | seen
	st.line = int32(line)
	st.aux = aux
	t.m[h] = st
	switch {
	case st.flags&inStore == 0:
		t.counts.Added++
		return true
	case st.stored != hash:
		t.counts.Updated++
		return true
	default:
		t.counts.Unchanged++
		return false
	}
}

// protect keeps key from removal.
func (t *table) protect(key string) {
	h := keyHash(key)
	st := t.m[h]
	if st.flags&seen == 0 {
		st.flags |= seen | protected
		t.m[h] = st
	}
}

// reject records a rejected row. key is the identifier read from the row
// ("" when none could be read: removals are then unsafe).
func (im *importer) reject(line int, key, reason string) {
	im.sum.Rejected++
	if key == "" {
		im.unkeyed++
	}
	if len(im.sum.Details) < maxRejectionDetails {
		im.sum.Details = append(im.sum.Details, Rejection{Line: line, Key: key, Reason: reason})
	}
}

// maybeFlush writes the batch when it is full; callers call it only where
// the batch holds whole records.
func (im *importer) maybeFlush() error {
	if im.pending >= im.opts.BatchSize {
		return im.flush()
	}
	return nil
}

// flush hands the batch to the store and returns without waiting for
// it: reading and parsing the next batch overlaps with writing this one
// (a pipeline of depth one, so at most two batches are in memory). An
// error of the write comes back from the next flush or from wait.
func (im *importer) flush() error {
	if im.pending == 0 {
		return nil
	}
	if err := im.wait(); err != nil {
		return err
	}
	if err := im.maybeBulk(); err != nil {
		return err
	}
	b, n := im.batch, im.pending
	done := make(chan error, 1)
	im.inflight = done
	go func() {
		if err := im.st.ApplyDirectory(im.ctx, b); err != nil {
			done <- fmt.Errorf("directory: writing a batch of %d %s entries: %w", n, im.source, err)
			return
		}
		done <- nil
	}()
	im.sum.Batches++
	im.batch = storage.DirectoryBatch{Source: im.source}
	im.pending = 0
	return nil
}

// wait waits for the batch being written, if any, and returns its error.
func (im *importer) wait() error {
	if im.inflight == nil {
		return nil
	}
	err := <-im.inflight
	im.inflight = nil
	return err
}

// row is called for every data row: context checks and progress.
func (im *importer) row() error {
	im.sum.Rows++
	if im.sum.Rows&255 != 0 {
		return nil
	}
	if err := im.ctx.Err(); err != nil {
		return err
	}
	im.progress(false)
	return nil
}

func (im *importer) progress(final bool) {
	if im.opts.Progress == nil {
		return
	}
	now := im.now()
	if !final && now.Sub(im.lastProgress) < 100*time.Millisecond {
		return
	}
	im.lastProgress = now
	im.opts.Progress(Progress{Bytes: im.bytes(), Total: im.opts.Total, Rows: im.sum.Rows})
}

// finish writes the last batch, then removes the entries of the source
// that the file no longer has, unless that is unsafe.
func (im *importer) finish() error {
	if err := im.flush(); err != nil {
		return err
	}
	if err := im.wait(); err != nil {
		return err
	}
	im.progress(true)
	removals, existing, kept := 0, 0, 0
	var keptWhy []string
	for _, k := range im.order {
		t := im.tables[k]
		existing += t.existing
		n := 0
		for _, st := range t.m {
			if st.flags&inStore != 0 && st.flags&seen == 0 {
				n++
			}
		}
		if why := im.keep[k]; why != "" && n > 0 {
			kept += n
			keptWhy = append(keptWhy, fmt.Sprintf("%d %s entries kept: %s", n, k, why))
			continue
		}
		removals += n
	}
	why := ""
	switch {
	case removals == 0 || im.opts.AllowMassRemoval:
	case im.unkeyed > 0:
		why = fmt.Sprintf("%d rejected rows had no readable identifier (use AllowMassRemoval to remove anyway)", im.unkeyed)
	case removals > MinMassRemoval && float64(removals) > im.opts.MaxRemovalRatio*float64(existing):
		why = fmt.Sprintf("%d of %d entries would be removed, more than %.0f%% (use AllowMassRemoval to remove anyway)",
			removals, existing, 100*im.opts.MaxRemovalRatio)
	}
	if why != "" {
		keptWhy = append([]string{why}, keptWhy...)
		kept += removals
		removals = 0
	}
	im.sum.RemovalsSkipped = strings.Join(keptWhy, "; ")
	im.sum.RemovalsPending = kept
	if removals == 0 {
		return nil
	}
	var refs []storage.EntryRef
	for _, k := range im.order {
		t := im.tables[k]
		err := im.st.DirectoryHashes(im.ctx, k, im.source, func(key string, _ uint64) error {
			st := t.m[keyHash(key)]
			if st.flags&seen != 0 || im.keep[k] != "" {
				return nil
			}
			switch k {
			case storage.KindActivity:
				if prof, _, _ := strings.Cut(key, "/"); im.protectedProfs[prof] {
					return nil
				}
			case storage.KindTrust:
				if domain, _, _ := strings.Cut(key, " "); im.protectedDomains[domain] {
					return nil
				}
			}
			refs = append(refs, storage.EntryRef{Kind: k, Key: key})
			return nil
		})
		if err != nil {
			return fmt.Errorf("directory: listing the %s entries of %s: %w", k, im.source, err)
		}
	}
	for len(refs) > 0 {
		n := min(len(refs), im.opts.BatchSize)
		b := storage.DirectoryBatch{Source: im.source, Delete: refs[:n]}
		if err := im.st.ApplyDirectory(im.ctx, b); err != nil {
			return fmt.Errorf("directory: removing %d %s entries: %w", n, im.source, err)
		}
		im.sum.Batches++
		for _, ref := range refs[:n] {
			t := im.tables[ref.Kind]
			t.counts.Removed++
		}
		refs = refs[n:]
	}
	return nil
}

// FNV-1a 64 (http://www.isthe.com/chongo/tech/comp/fnv/).
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func keyHash(s string) uint64 {
	h := uint64(fnvOffset)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}

// hasher digests the fields of an entry: FNV-1a 64 over each field
// followed by 0xFF, a byte that never occurs in UTF-8, so that field
// boundaries count. The result is stable across runs and versions.
type hasher uint64

func newHasher() hasher { return fnvOffset }

func (h *hasher) add(fields ...string) {
	x := uint64(*h)
	for _, s := range fields {
		for i := 0; i < len(s); i++ {
			x ^= uint64(s[i])
			x *= fnvPrime
		}
		x ^= 0xFF
		x *= fnvPrime
	}
	*h = hasher(x)
}

func (h *hasher) addAddress(a *storage.PostalAddress) {
	h.add(a.Recipient, a.Location, a.Number, a.Repetition, a.StreetType, a.Street, a.Distribution,
		a.Cedex, a.PostalCode, a.CityCode, a.City, a.Department, a.Country)
}

func (h hasher) sum() uint64 { return uint64(h) }

// ErrMissingColumn is returned (wrapped) when a file lacks a required
// column.
var ErrMissingColumn = errors.New("missing required column")

// column describes a column of a pipe-separated file, by the normalised
// forms of the header names it is known under.
type column struct {
	names    []string
	required bool
}

// normHeader folds a header name for matching: accents and case removed,
// and everything but letters and digits dropped ("Type d'identifiant PP"
// -> "typedidentifiantpp").
func normHeader(s string) string {
	var b strings.Builder
	for _, r := range norm.NFD.String(s) {
		switch {
		case unicode.Is(unicode.Mn, r):
		case r == 'œ' || r == 'Œ':
			b.WriteString("oe")
		case r == 'æ' || r == 'Æ':
			b.WriteString("ae")
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(unicode.ToLower(r))
		}
	}
	return b.String()
}

// headerSuffixes are the qualifiers some versions of the files append to
// a column name: "Code postal (coord. structure)", "Raison Sociale
// structure BAL".
var headerSuffixes = []string{"coordstructure", "structurebal"}

// headerIndex maps columns to their positions in a header, -1 for an
// absent optional column. It fails, naming every missing required column.
func headerIndex(header []string, cols []column) ([]int, error) {
	normed := make([]string, len(header))
	stripped := make([]string, len(header))
	for i, h := range header {
		normed[i] = normHeader(h)
		stripped[i] = normed[i]
		for _, suf := range headerSuffixes {
			if s, ok := strings.CutSuffix(normed[i], suf); ok && s != "" {
				stripped[i] = s
				break
			}
		}
	}
	idx := make([]int, len(cols))
	var missing []string
	for c, col := range cols {
		idx[c] = -1
	find:
		for _, forms := range [][]string{normed, stripped} {
			for _, name := range col.names {
				if i := slices.Index(forms, name); i >= 0 {
					idx[c] = i
					break find
				}
			}
		}
		if idx[c] < 0 && col.required {
			missing = append(missing, col.names[0])
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("directory: %w: %s", ErrMissingColumn, strings.Join(missing, ", "))
	}
	return idx, nil
}

// table reader shared by the pipe-separated formats.
type pipeFile struct {
	lr     *LineReader
	width  int  // columns of the header, trailing empty one removed
	trail  bool // the header ends with '|'
	fields []string
}

// openPipeFile reads the header of a pipe-separated file.
func openPipeFile(r io.Reader, maxLine int) (*pipeFile, []string, error) {
	lr, err := NewLineReader(r, maxLine)
	if err != nil {
		return nil, nil, err
	}
	for {
		l, err := lr.Next()
		if errors.Is(err, io.EOF) {
			return nil, nil, errors.New("directory: empty file, no header line")
		}
		if err != nil {
			return nil, nil, err
		}
		if l.Err != nil {
			return nil, nil, fmt.Errorf("directory: header line %d: %w", l.Num, l.Err)
		}
		if strings.TrimSpace(l.Text) == "" {
			continue
		}
		header := splitFields(nil, l.Text)
		pf := &pipeFile{lr: lr}
		if len(header) > 1 && header[len(header)-1] == "" {
			header = header[:len(header)-1]
			pf.trail = true
		}
		pf.width = len(header)
		return pf, header, nil
	}
}

// rowResult is a data line split into its columns, or why it cannot be.
type rowResult struct {
	num    int
	fields []string // exactly width columns
	raw    []string // the columns as split, for reading a key of a bad row
	reason string
}

// next returns the next non-blank data line, io.EOF at the end.
func (pf *pipeFile) next() (rowResult, error) {
	for {
		l, err := pf.lr.Next()
		if err != nil {
			return rowResult{}, err
		}
		if l.Err != nil {
			return rowResult{num: l.Num, reason: l.Err.Error()}, nil
		}
		if strings.TrimSpace(l.Text) == "" {
			continue
		}
		pf.fields = splitFields(pf.fields, l.Text)
		f := pf.fields
		// A file whose header ends with '|' has it on every line (the
		// RPPS extraction): a line without it lacks a column.
		complete := !pf.trail
		if pf.trail && len(f) > 0 && f[len(f)-1] == "" {
			f = f[:len(f)-1]
			complete = true
		}
		res := rowResult{num: l.Num, raw: f}
		switch {
		case len(f) == pf.width && complete:
			res.fields = f
		case l.NoNewline && len(f) < pf.width:
			res.reason = fmt.Sprintf("truncated last line: %d columns, want %d", len(f), pf.width)
		case len(f) == pf.width:
			res.reason = "no '|' at the end of the line"
		default:
			res.reason = fmt.Sprintf("%d columns, want %d", len(f), pf.width)
		}
		return res, nil
	}
}

// get returns column c of fields, trimmed; "" for an absent column.
func get(fields []string, idx []int, c int) string {
	i := idx[c]
	if i < 0 || i >= len(fields) {
		return ""
	}
	return strings.TrimSpace(fields[i])
}
