package cda

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

func (lim Limits) withDefaults() Limits {
	if lim.MaxBytes <= 0 {
		lim.MaxBytes = DefaultMaxBytes
	}
	if lim.MaxDepth <= 0 {
		lim.MaxDepth = DefaultMaxDepth
	}
	if lim.MaxTokens <= 0 {
		lim.MaxTokens = DefaultMaxTokens
	}
	return lim
}

// countingReader fails once more than max bytes have been read.
type countingReader struct {
	r   io.Reader
	n   int64
	max int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	if c.n > c.max {
		return 0, ErrTooLarge
	}
	// Read at most one byte beyond the limit, to detect overflow.
	if rem := c.max + 1 - c.n; int64(len(p)) > rem {
		p = p[:rem]
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.n > c.max {
		return n, ErrTooLarge
	}
	return n, err
}

// charsetReader accepts the encodings a French CDA may declare besides
// UTF-8: US-ASCII (a subset) and ISO-8859-1 (converted byte by byte).
func charsetReader(label string, in io.Reader) (io.Reader, error) {
	switch strings.ToLower(strings.TrimSpace(label)) {
	case "utf-8", "utf8", "us-ascii", "ascii":
		return in, nil
	case "iso-8859-1", "iso8859-1", "latin1", "latin-1", "l1":
		return &latin1Reader{r: in}, nil
	}
	return nil, fmt.Errorf("unsupported encoding %q", label)
}

type latin1Reader struct {
	r   io.Reader
	buf []byte
}

func (l *latin1Reader) Read(p []byte) (int, error) {
	for len(l.buf) == 0 {
		tmp := make([]byte, max(len(p)/2, 1))
		n, err := l.r.Read(tmp)
		for _, b := range tmp[:n] {
			l.buf = utf8.AppendRune(l.buf, rune(b))
		}
		if n == 0 && err != nil {
			return 0, err
		}
	}
	n := copy(p, l.buf)
	l.buf = l.buf[n:]
	return n, nil
}

// Walk reads an XML document from r with the defences this package applies
// to CDA documents, and calls fn for every token (copies, safe to retain):
//
//   - any DOCTYPE (or other <!...> declaration) is refused with ErrDoctype, so
//     no entity can be declared; undeclared entity references are errors
//     (encoding/xml in strict mode);
//   - more than lim.MaxBytes bytes: ErrTooLarge; nesting deeper than
//     lim.MaxDepth: ErrTooDeep; more than lim.MaxTokens tokens: ErrTooMany;
//   - malformed XML, trailing garbage or a second root: ErrMalformed.
//
// xdm uses it for METADATA.XML. Errors are wrapped; test with errors.Is.
func Walk(r io.Reader, lim Limits, fn func(depth int, tok xml.Token) error) error {
	lim = lim.withDefaults()
	cr := &countingReader{r: r, max: lim.MaxBytes}
	d := xml.NewDecoder(cr)
	d.Strict = true
	d.CharsetReader = charsetReader
	depth, tokens, roots := 0, 0, 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			if errors.Is(err, ErrTooLarge) || cr.n > cr.max {
				return fmt.Errorf("%w (limit %d bytes)", ErrTooLarge, lim.MaxBytes)
			}
			return fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		tokens++
		if tokens > lim.MaxTokens {
			return fmt.Errorf("%w (limit %d)", ErrTooMany, lim.MaxTokens)
		}
		switch t := tok.(type) {
		case xml.Directive:
			// XML 1.0 2.8: the document type declaration is where entities
			// are declared. Refuse it, and any other markup declaration.
			if bytes.HasPrefix(bytes.TrimSpace(bytes.ToUpper(t)), []byte("DOCTYPE")) {
				return ErrDoctype
			}
			return fmt.Errorf("%w: markup declaration <!%.20s", ErrDoctype, t)
		case xml.StartElement:
			if depth == 0 {
				roots++
				if roots > 1 {
					return fmt.Errorf("%w: more than one root element", ErrMalformed)
				}
			}
			depth++
			if depth > lim.MaxDepth {
				return fmt.Errorf("%w (limit %d)", ErrTooDeep, lim.MaxDepth)
			}
		case xml.EndElement:
			depth--
		case xml.CharData:
			if depth == 0 && len(bytes.TrimSpace(t)) > 0 {
				return fmt.Errorf("%w: text outside the root element", ErrMalformed)
			}
		}
		if err := fn(depth, xml.CopyToken(tok)); err != nil {
			return err
		}
	}
	if roots == 0 {
		return fmt.Errorf("%w: no root element", ErrMalformed)
	}
	return nil
}

// Node is a minimal element tree built by Tree, for small documents (a CDA
// header, METADATA.XML).
type Node struct {
	Name     xml.Name
	Attr     []xml.Attr
	Children []*Node
	Text     string // concatenated character data directly inside the element
	text     []byte // accumulates Text while parsing (amortised appends)
}

func (n *Node) finish() {
	n.Text = string(n.text)
	n.text = nil
	for _, c := range n.Children {
		c.finish()
	}
}

// Get returns the value of the attribute with this local name ("" if absent).
func (n *Node) Get(local string) string {
	if n == nil {
		return ""
	}
	for _, a := range n.Attr {
		if a.Name.Local == local {
			return a.Value
		}
	}
	return ""
}

// Child returns the first child element with this local name, or nil.
func (n *Node) Child(local string) *Node {
	if n == nil {
		return nil
	}
	for _, c := range n.Children {
		if c.Name.Local == local {
			return c
		}
	}
	return nil
}

// All returns the child elements with this local name.
func (n *Node) All(local string) []*Node {
	if n == nil {
		return nil
	}
	var out []*Node
	for _, c := range n.Children {
		if c.Name.Local == local {
			out = append(out, c)
		}
	}
	return out
}

// Path follows child elements by local name; nil if any step is missing.
func (n *Node) Path(locals ...string) *Node {
	for _, l := range locals {
		n = n.Child(l)
		if n == nil {
			return nil
		}
	}
	return n
}

// MaxTreeNodes bounds the elements Tree keeps in memory (a CDA header or a
// METADATA.XML of 1000 entries is far below it), so that a document within
// the byte and token limits cannot still cost hundreds of megabytes.
const MaxTreeNodes = 250_000

// Tree parses r with Walk and returns the root element. keep, when not nil,
// is called for every start element (with its ancestors' local names) and
// says whether to keep it; a dropped element's subtree is still checked, and
// still shown to keep (whose answer is then ignored), but not stored.
func Tree(r io.Reader, lim Limits, keep func(stack []string, el xml.StartElement) bool) (*Node, error) {
	var root *Node
	var stack []*Node // kept nodes; nil entries for dropped subtrees
	var names []string
	skip := 0 // depth at which a dropped subtree started (0: none)
	kept := 0
	err := Walk(r, lim, func(depth int, tok xml.Token) error {
		switch t := tok.(type) {
		case xml.StartElement:
			if keep != nil && !keep(names, t) && skip == 0 {
				skip = depth
			}
			names = append(names, t.Name.Local)
			if skip != 0 {
				stack = append(stack, nil)
				return nil
			}
			kept++
			if kept > MaxTreeNodes {
				return fmt.Errorf("%w: more than %d elements kept in memory", ErrTooMany, MaxTreeNodes)
			}
			n := &Node{Name: t.Name, Attr: t.Attr}
			if len(stack) == 0 {
				root = n
			} else if p := stack[len(stack)-1]; p != nil {
				p.Children = append(p.Children, n)
			}
			stack = append(stack, n)
		case xml.EndElement:
			if skip != 0 && depth+1 == skip {
				skip = 0
			}
			stack = stack[:len(stack)-1]
			names = names[:len(names)-1]
		case xml.CharData:
			if len(stack) > 0 {
				if p := stack[len(stack)-1]; p != nil {
					p.text = append(p.text, t...)
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	root.finish()
	return root, nil
}
