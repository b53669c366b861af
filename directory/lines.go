package directory

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding/charmap"
)

// Encodings a national file may come in. The RPPS extraction has been
// published in Windows-1252 at times (shared/samples/national-files.md).
const (
	EncodingUTF8        = "UTF-8"
	EncodingWindows1252 = "Windows-1252"
)

const (
	// DefaultMaxLine bounds one line of a pipe-separated file. The longest
	// real RPPS line is well under 2 KiB.
	DefaultMaxLine = 64 << 10
	// sniffSize is how much of a file decides its encoding.
	sniffSize = 64 << 10
)

// Line is one line of a file, without its terminator (LF or CRLF).
type Line struct {
	Num  int    // 1-based line number
	Text string // the line, UTF-8; empty when Err is set
	// Err is why the line cannot be used (too long, invalid UTF-8); the
	// reader has already moved past it.
	Err error
	// NoNewline reports a last line that ends without a newline: with too
	// few columns it is a truncated file.
	NoNewline bool
}

// ErrLineTooLong is the reason of a line longer than the reader's bound.
var ErrLineTooLong = errors.New("line too long")

// LineReader reads a text file line by line with a bound on the length of
// a line: a longer line is skipped to its newline without being held in
// memory and reported with its number. It skips a UTF-8 byte order mark,
// accepts LF and CRLF, and decodes the file as Windows-1252 when its first
// 64 KiB are not valid UTF-8.
type LineReader struct {
	count    *countingReader
	br       *bufio.Reader
	max      int
	num      int
	encoding string
	eof      bool
}

// NewLineReader detects the encoding of r and returns a reader of its
// lines. maxLine <= 0 means DefaultMaxLine.
func NewLineReader(r io.Reader, maxLine int) (*LineReader, error) {
	if maxLine <= 0 {
		maxLine = DefaultMaxLine
	}
	cr := &countingReader{r: r}
	size := max(maxLine+2, sniffSize) // room for the line and its CRLF
	br := bufio.NewReaderSize(cr, size)
	head, err := br.Peek(sniffSize)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		return nil, fmt.Errorf("directory: reading the start of the file: %w", err)
	}
	lr := &LineReader{count: cr, br: br, max: maxLine, encoding: EncodingUTF8}
	if bytes.HasPrefix(head, []byte("\xEF\xBB\xBF")) {
		_, _ = br.Discard(3)
		head = head[3:]
	}
	if !validUTF8Prefix(head, len(head) == sniffSize) {
		lr.encoding = EncodingWindows1252
		// Every byte is a character in Windows-1252 (the five undefined
		// ones decode to U+FFFD), so the decoded text is valid UTF-8.
		dec := charmap.Windows1252.NewDecoder().Reader(br)
		lr.br = bufio.NewReaderSize(dec, size)
	}
	return lr, nil
}

// validUTF8Prefix reports whether b is valid UTF-8, tolerating a rune cut
// at the end when b is only the beginning of the input.
func validUTF8Prefix(b []byte, truncated bool) bool {
	if utf8.Valid(b) {
		return true
	}
	if !truncated {
		return false
	}
	for cut := 1; cut <= utf8.UTFMax-1 && cut < len(b); cut++ {
		if utf8.Valid(b[:len(b)-cut]) {
			return true
		}
	}
	return false
}

// Encoding is the detected encoding of the file.
func (lr *LineReader) Encoding() string { return lr.encoding }

// Bytes is how many bytes of the underlying reader were consumed so far
// (read ahead by at most the buffer size).
func (lr *LineReader) Bytes() int64 { return lr.count.n }

// Next returns the next line, or io.EOF after the last one. Other errors
// come from the underlying reader and end the file.
func (lr *LineReader) Next() (Line, error) {
	if lr.eof {
		return Line{}, io.EOF
	}
	b, err := lr.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		lr.num++
		num := lr.num
		n := int64(len(b))
		for errors.Is(err, bufio.ErrBufferFull) {
			b, err = lr.br.ReadSlice('\n')
			n += int64(len(b))
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return Line{}, fmt.Errorf("directory: line %d: %w", num, err)
		}
		if errors.Is(err, io.EOF) {
			lr.eof = true
		}
		switch {
		case bytes.HasSuffix(b, []byte("\r\n")):
			n -= 2
		case bytes.HasSuffix(b, []byte("\n")):
			n--
		}
		return Line{Num: num, Err: fmt.Errorf("%w (%d bytes, limit %d)", ErrLineTooLong, n, lr.max)}, nil
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return Line{}, fmt.Errorf("directory: line %d: %w", lr.num+1, err)
	}
	if errors.Is(err, io.EOF) {
		lr.eof = true
		if len(b) == 0 {
			return Line{}, io.EOF
		}
	}
	lr.num++
	l := Line{Num: lr.num, NoNewline: lr.eof}
	b = bytes.TrimSuffix(b, []byte("\n"))
	b = bytes.TrimSuffix(b, []byte("\r"))
	if len(b) > lr.max {
		l.Err = fmt.Errorf("%w (%d bytes, limit %d)", ErrLineTooLong, len(b), lr.max)
		return l, nil
	}
	if !utf8.Valid(b) {
		l.Err = fmt.Errorf("invalid UTF-8 at byte %d", invalidUTF8At(b)+1)
		return l, nil
	}
	l.Text = string(b)
	return l, nil
}

// invalidUTF8At returns the offset of the first invalid byte of b.
func invalidUTF8At(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return len(b)
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// splitFields splits a pipe-separated line into dst (reused). The national
// files have no quoting: '|' never occurs inside a value.
func splitFields(dst []string, line string) []string {
	dst = dst[:0]
	for {
		i := strings.IndexByte(line, '|')
		if i < 0 {
			return append(dst, line)
		}
		dst = append(dst, line[:i])
		line = line[i+1:]
	}
}

// Rejection is a line (or XML element) the import could not use.
type Rejection struct {
	Line   int
	Key    string // the entry's identifier when it could be read
	Reason string
}

func (r Rejection) String() string {
	s := "line " + strconv.Itoa(r.Line)
	if r.Key != "" {
		s += " (" + r.Key + ")"
	}
	return s + ": " + r.Reason
}
