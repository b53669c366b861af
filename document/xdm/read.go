package xdm

import (
	"archive/zip"
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
)

// ratioFloor: entries smaller than this are not held to MaxRatio (small
// repetitive XML legitimately compresses well).
const ratioFloor = 1 << 20

func (lim Limits) withDefaults() Limits {
	if lim.MaxEntries <= 0 {
		lim.MaxEntries = DefaultMaxEntries
	}
	if lim.MaxTotal <= 0 {
		lim.MaxTotal = DefaultMaxTotal
	}
	if lim.MaxFile <= 0 {
		lim.MaxFile = DefaultMaxFile
	}
	if lim.MaxRatio <= 0 {
		lim.MaxRatio = DefaultMaxRatio
	}
	return lim
}

// cleanName checks a ZIP entry name (APPNOTE 4.4.17: relative, forward
// slashes) and returns it cleaned. Absolute paths, drive letters,
// backslashes, ".." components and NUL are refused (zip-slip).
func cleanName(n string) (string, error) {
	if n == "" || strings.ContainsAny(n, "\x00\\") || strings.HasPrefix(n, "/") ||
		(len(n) >= 2 && n[1] == ':') {
		return "", fmt.Errorf("%w: %q", ErrPathEscape, n)
	}
	for _, part := range strings.Split(strings.TrimSuffix(n, "/"), "/") {
		if part == ".." {
			return "", fmt.Errorf("%w: %q", ErrPathEscape, n)
		}
	}
	return path.Clean(n), nil
}

// Read opens an XDM ZIP held in memory, enforcing lim, finds
// IHE_XDM/<subset>/METADATA.XML whatever the subset name (SUBSET01,
// SS000001...), parses the submission set and document entries, and checks
// each entry's file, SHA-1 hash and size. When several subsets exist, the
// first in name order is read (MSSanté: one submission set per message).
//
// Every entry of the archive is checked against the limits and path rules,
// even those Read does not need, so a package Read accepts is safe to
// extract as a whole.
func Read(zipData []byte, lim Limits) (p *Package, err error) {
	defer func() {
		// archive/zip should not panic on crafted input; if it does, it is
		// a bad package, not a crash.
		if r := recover(); r != nil {
			p, err = nil, fmt.Errorf("%w: %v", ErrNotZip, r)
		}
	}()
	lim = lim.withDefaults()
	if int64(len(zipData)) > lim.MaxTotal {
		return nil, fmt.Errorf("%w: archive of %d bytes (limit %d)", ErrZipBomb, len(zipData), lim.MaxTotal)
	}
	zr, err := zip.NewReader(bytes.NewReader(zipData), int64(len(zipData)))
	if errors.Is(err, zip.ErrInsecurePath) {
		return nil, fmt.Errorf("%w: %w", ErrPathEscape, err)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotZip, err)
	}
	if len(zr.File) > lim.MaxEntries {
		return nil, fmt.Errorf("%w: %d entries (limit %d)", ErrTooMany, len(zr.File), lim.MaxEntries)
	}
	files := map[string]*zip.File{} // by upper-cased clean name
	var declared uint64
	for _, f := range zr.File {
		name, err := cleanName(f.Name)
		if err != nil {
			return nil, err
		}
		mode := f.Mode()
		if mode&fs.ModeSymlink != 0 {
			return nil, fmt.Errorf("%w: %q", ErrSymlink, f.Name)
		}
		if mode.IsDir() || strings.HasSuffix(f.Name, "/") {
			continue
		}
		if !mode.IsRegular() {
			return nil, fmt.Errorf("%w: %q is not a regular file (mode %v)", ErrSymlink, f.Name, mode)
		}
		// Zip bombs: declared sizes first (cheap), actual sizes on reading.
		if f.UncompressedSize64 > uint64(lim.MaxFile) {
			return nil, fmt.Errorf("%w: %q declares %d bytes (limit %d)", ErrZipBomb, f.Name, f.UncompressedSize64, lim.MaxFile)
		}
		declared += f.UncompressedSize64
		if declared > uint64(lim.MaxTotal) {
			return nil, fmt.Errorf("%w: total declared size over %d bytes", ErrZipBomb, lim.MaxTotal)
		}
		if f.UncompressedSize64 > ratioFloor && f.UncompressedSize64/max(f.CompressedSize64, 1) > uint64(lim.MaxRatio) {
			return nil, fmt.Errorf("%w: %q compression ratio over %d", ErrZipBomb, f.Name, lim.MaxRatio)
		}
		key := strings.ToUpper(name)
		if _, dup := files[key]; dup {
			return nil, fmt.Errorf("%w: duplicate entry %q", ErrPathEscape, f.Name)
		}
		files[key] = f
	}

	// ITI TF-2b 3.32.4.1.2.2: IHE_XDM/<subset>/METADATA.XML.
	var subsets []string
	for key := range files {
		parts := strings.Split(key, "/")
		if len(parts) == 3 && parts[0] == "IHE_XDM" && parts[2] == "METADATA.XML" {
			subsets = append(subsets, key)
		}
	}
	if len(subsets) == 0 {
		return nil, ErrNoMetadata
	}
	sort.Strings(subsets)
	mf := files[subsets[0]]
	p = &Package{Files: map[string][]byte{}}
	p.Subset = path.Dir(path.Clean(mf.Name))

	var total int64
	read := func(f *zip.File) ([]byte, error) {
		rc, err := f.Open()
		if err != nil {
			return nil, fmt.Errorf("%w: %q: %w", ErrNotZip, f.Name, err)
		}
		defer rc.Close()
		limit := min(int64(f.UncompressedSize64), lim.MaxFile)
		b, err := io.ReadAll(io.LimitReader(rc, limit+1))
		if errors.Is(err, zip.ErrFormat) {
			// archive/zip stops an entry that inflates beyond its
			// declared size with ErrFormat.
			return nil, fmt.Errorf("%w: %q inflates beyond its declared size (or is corrupt)", ErrZipBomb, f.Name)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %q: %w", ErrNotZip, f.Name, err)
		}
		if int64(len(b)) > limit {
			// More data than declared: a lying header.
			return nil, fmt.Errorf("%w: %q inflates beyond its declared size", ErrZipBomb, f.Name)
		}
		total += int64(len(b))
		if total > lim.MaxTotal {
			return nil, fmt.Errorf("%w: total size over %d bytes", ErrZipBomb, lim.MaxTotal)
		}
		return b, nil
	}

	if p.Metadata, err = read(mf); err != nil {
		return nil, err
	}
	ss, entries, err := decodeMetadata(p.Metadata)
	if err != nil {
		return nil, fmt.Errorf("xdm: %s: %w", mf.Name, err)
	}
	p.SubmissionSet, p.Entries = ss, entries
	for _, n := range []string{"README.TXT", "INDEX.HTM"} {
		if f := files[n]; f != nil {
			b, err := read(f)
			if err != nil {
				return nil, err
			}
			if n == "README.TXT" {
				p.Readme = b
			} else {
				p.Index = b
			}
		}
	}
	subsetKey := strings.ToUpper(p.Subset)
	for i, e := range p.Entries {
		if e.URI == "" {
			return nil, fmt.Errorf("%w: entry %d has no URI", ErrMetadata, i+1)
		}
		// ITI TF-3 4.2.3.2.26: on XDM media the URI is relative to the
		// subset folder; tolerate one relative to the root too.
		rel, err := cleanName(e.URI)
		if err != nil {
			return nil, fmt.Errorf("entry URI: %w", err)
		}
		f := files[strings.ToUpper(path.Join(subsetKey, rel))]
		if f == nil {
			f = files[strings.ToUpper(rel)]
		}
		if f == nil {
			return nil, fmt.Errorf("%w: %q", ErrMissingFile, e.URI)
		}
		if _, dup := p.Files[e.URI]; dup {
			return nil, fmt.Errorf("%w: two entries share URI %q", ErrMetadata, e.URI)
		}
		b, err := read(f)
		if err != nil {
			return nil, err
		}
		sum := sha1.Sum(b)
		if e.Hash != "" && !strings.EqualFold(e.Hash, hex.EncodeToString(sum[:])) {
			return nil, fmt.Errorf("%w: %q: SHA-1 differs from metadata hash", ErrHash, e.URI)
		}
		if e.Size >= 0 && e.Size != int64(len(b)) {
			return nil, fmt.Errorf("%w: %q: %d bytes, metadata says %d", ErrHash, e.URI, len(b), e.Size)
		}
		p.Files[e.URI] = b
	}
	return p, nil
}

// IsLimit reports whether err is one of the safety refusals (bomb, path,
// symlink, too many entries), as opposed to an invalid but harmless package.
func IsLimit(err error) bool {
	return errors.Is(err, ErrZipBomb) || errors.Is(err, ErrPathEscape) || errors.Is(err, ErrSymlink) || errors.Is(err, ErrTooMany)
}
