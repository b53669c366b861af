package summary

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/emersion/go-imap/v2"
)

// Encoding: JSON mirror types. imap.BodyStructure is an interface, so each
// part carries a kind discriminator ("1" single part, "m" multipart).

const encodingVersion = 1

type wireMessage struct {
	V    int           `json:"v"`
	Env  *wireEnvelope `json:"env,omitempty"`
	Body *wirePart     `json:"body,omitempty"`
}

type wireEnvelope struct {
	Date      *time.Time     `json:"date,omitempty"`
	Subject   string         `json:"subj,omitempty"`
	From      []imap.Address `json:"from,omitempty"`
	Sender    []imap.Address `json:"sender,omitempty"`
	ReplyTo   []imap.Address `json:"replyto,omitempty"`
	To        []imap.Address `json:"to,omitempty"`
	Cc        []imap.Address `json:"cc,omitempty"`
	Bcc       []imap.Address `json:"bcc,omitempty"`
	InReplyTo []string       `json:"irt,omitempty"`
	MessageID string         `json:"mid,omitempty"`
}

type wireDisposition struct {
	Value  string            `json:"v"`
	Params map[string]string `json:"p"`
}

type wirePart struct {
	Kind string `json:"k"` // "1" or "m"

	// Single part (RFC 9051 7.5.2 body-type-1part).
	Type        string            `json:"t,omitempty"`
	Subtype     string            `json:"st,omitempty"`
	Params      map[string]string `json:"p"`
	ID          string            `json:"id,omitempty"`
	Description string            `json:"desc,omitempty"`
	Encoding    string            `json:"enc,omitempty"`
	Size        uint32            `json:"size,omitempty"`
	Text        *int64            `json:"text,omitempty"` // NumLines of a text/* part
	Msg         *wireRFC822       `json:"msg,omitempty"`

	// Multipart (body-type-mpart).
	Children []*wirePart `json:"parts,omitempty"`

	// Extension data; Ext tells whether Extended was present.
	Ext         bool              `json:"x,omitempty"`
	ExtParams   map[string]string `json:"xp"` // multipart only
	Disposition *wireDisposition  `json:"disp,omitempty"`
	Language    []string          `json:"lang,omitempty"`
	Location    string            `json:"loc,omitempty"`
}

type wireRFC822 struct {
	Env      *wireEnvelope `json:"env,omitempty"`
	Body     *wirePart     `json:"body,omitempty"`
	NumLines int64         `json:"lines"`
}

// Encode serialises m.
func Encode(m *Message) ([]byte, error) {
	if m == nil {
		return nil, fmt.Errorf("summary: encode: nil message")
	}
	w := wireMessage{V: encodingVersion, Env: toWireEnvelope(m.Envelope)}
	var err error
	if w.Body, err = toWirePart(m.Body, 0); err != nil {
		return nil, err
	}
	b, err := json.Marshal(&w)
	if err != nil {
		return nil, fmt.Errorf("summary: encode: %w", err)
	}
	return b, nil
}

// Decode parses what Encode produced.
func Decode(b []byte) (*Message, error) {
	var w wireMessage
	if err := json.Unmarshal(b, &w); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if w.V != encodingVersion {
		return nil, fmt.Errorf("%w: version %d", ErrCorrupt, w.V)
	}
	m := &Message{Envelope: fromWireEnvelope(w.Env)}
	var err error
	if m.Body, err = fromWirePart(w.Body, 0); err != nil {
		return nil, err
	}
	return m, nil
}

func toWireEnvelope(e *imap.Envelope) *wireEnvelope {
	if e == nil {
		return nil
	}
	w := &wireEnvelope{
		Subject: e.Subject, From: e.From, Sender: e.Sender, ReplyTo: e.ReplyTo,
		To: e.To, Cc: e.Cc, Bcc: e.Bcc, InReplyTo: e.InReplyTo, MessageID: e.MessageID,
	}
	if !e.Date.IsZero() {
		d := e.Date
		w.Date = &d
	}
	return w
}

func fromWireEnvelope(w *wireEnvelope) *imap.Envelope {
	if w == nil {
		return nil
	}
	e := &imap.Envelope{
		Subject: w.Subject, From: w.From, Sender: w.Sender, ReplyTo: w.ReplyTo,
		To: w.To, Cc: w.Cc, Bcc: w.Bcc, InReplyTo: w.InReplyTo, MessageID: w.MessageID,
	}
	if w.Date != nil {
		e.Date = *w.Date
	}
	return e
}

func toWireDisposition(d *imap.BodyStructureDisposition) *wireDisposition {
	if d == nil {
		return nil
	}
	return &wireDisposition{Value: d.Value, Params: d.Params}
}

func fromWireDisposition(w *wireDisposition) *imap.BodyStructureDisposition {
	if w == nil {
		return nil
	}
	return &imap.BodyStructureDisposition{Value: w.Value, Params: w.Params}
}

func toWirePart(bs imap.BodyStructure, depth int) (*wirePart, error) {
	if depth > 2*MaxNesting+2 {
		return nil, fmt.Errorf("summary: encode: body structure too deep")
	}
	switch p := bs.(type) {
	case nil:
		return nil, nil
	case *imap.BodyStructureSinglePart:
		w := &wirePart{
			Kind: "1", Type: p.Type, Subtype: p.Subtype, Params: p.Params, ID: p.ID,
			Description: p.Description, Encoding: p.Encoding, Size: p.Size,
		}
		if p.Text != nil {
			n := p.Text.NumLines
			w.Text = &n
		}
		if p.MessageRFC822 != nil {
			body, err := toWirePart(p.MessageRFC822.BodyStructure, depth+1)
			if err != nil {
				return nil, err
			}
			w.Msg = &wireRFC822{
				Env:      toWireEnvelope(p.MessageRFC822.Envelope),
				Body:     body,
				NumLines: p.MessageRFC822.NumLines,
			}
		}
		if x := p.Extended; x != nil {
			w.Ext, w.Disposition, w.Language, w.Location = true, toWireDisposition(x.Disposition), x.Language, x.Location
		}
		return w, nil
	case *imap.BodyStructureMultiPart:
		w := &wirePart{Kind: "m", Subtype: p.Subtype}
		for _, c := range p.Children {
			cw, err := toWirePart(c, depth+1)
			if err != nil {
				return nil, err
			}
			if cw == nil {
				return nil, fmt.Errorf("summary: encode: nil child part")
			}
			w.Children = append(w.Children, cw)
		}
		if x := p.Extended; x != nil {
			w.Ext, w.ExtParams, w.Disposition, w.Language, w.Location = true, x.Params, toWireDisposition(x.Disposition), x.Language, x.Location
		}
		return w, nil
	default:
		return nil, fmt.Errorf("summary: encode: unknown body structure %T", bs)
	}
}

func fromWirePart(w *wirePart, depth int) (imap.BodyStructure, error) {
	if w == nil {
		return nil, nil
	}
	if depth > 2*MaxNesting+2 {
		return nil, fmt.Errorf("%w: too deep", ErrCorrupt)
	}
	switch w.Kind {
	case "1":
		p := &imap.BodyStructureSinglePart{
			Type: w.Type, Subtype: w.Subtype, Params: w.Params, ID: w.ID,
			Description: w.Description, Encoding: w.Encoding, Size: w.Size,
		}
		if w.Text != nil {
			p.Text = &imap.BodyStructureText{NumLines: *w.Text}
		}
		if w.Msg != nil {
			body, err := fromWirePart(w.Msg.Body, depth+1)
			if err != nil {
				return nil, err
			}
			p.MessageRFC822 = &imap.BodyStructureMessageRFC822{
				Envelope:      fromWireEnvelope(w.Msg.Env),
				BodyStructure: body,
				NumLines:      w.Msg.NumLines,
			}
		}
		if w.Ext {
			p.Extended = &imap.BodyStructureSinglePartExt{
				Disposition: fromWireDisposition(w.Disposition), Language: w.Language, Location: w.Location,
			}
		}
		return p, nil
	case "m":
		p := &imap.BodyStructureMultiPart{Subtype: w.Subtype}
		for _, cw := range w.Children {
			c, err := fromWirePart(cw, depth+1)
			if err != nil {
				return nil, err
			}
			if c == nil {
				return nil, fmt.Errorf("%w: nil child part", ErrCorrupt)
			}
			p.Children = append(p.Children, c)
		}
		if w.Ext {
			p.Extended = &imap.BodyStructureMultiPartExt{
				Params: w.ExtParams, Disposition: fromWireDisposition(w.Disposition), Language: w.Language, Location: w.Location,
			}
		}
		return p, nil
	default:
		return nil, fmt.Errorf("%w: part kind %q", ErrCorrupt, w.Kind)
	}
}
