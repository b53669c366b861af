package ldapd

import (
	"errors"
	"fmt"
	"io"

	ber "github.com/go-asn1-ber/asn1-ber"
)

// The LDAP messages this read-only server decodes and encodes, RFC 4511 4.
// BER itself is go-asn1-ber's; this file only maps packets to requests.

// Application tags of protocolOp, RFC 4511 4.2 to 4.14.
const (
	appBindRequest      ber.Tag = 0
	appBindResponse     ber.Tag = 1
	appUnbindRequest    ber.Tag = 2
	appSearchRequest    ber.Tag = 3
	appSearchResEntry   ber.Tag = 4
	appSearchResDone    ber.Tag = 5
	appModifyRequest    ber.Tag = 6
	appAddRequest       ber.Tag = 8
	appDelRequest       ber.Tag = 10
	appModDNRequest     ber.Tag = 12
	appCompareRequest   ber.Tag = 14
	appAbandonRequest   ber.Tag = 16
	appExtendedRequest  ber.Tag = 23
	appExtendedResponse ber.Tag = 24
)

// Result codes, RFC 4511 4.1.9 and Appendix A.
const (
	resultSuccess                  = 0
	resultOperationsError          = 1
	resultProtocolError            = 2
	resultSizeLimitExceeded        = 4
	resultAuthMethodNotSupported   = 7
	resultUnavailableCriticalExt   = 12
	resultConfidentialityRequired  = 13
	resultNoSuchObject             = 32
	resultInvalidDNSyntax          = 34
	resultInvalidCredentials       = 49
	resultInsufficientAccessRights = 50
	resultUnavailable              = 52
	resultUnwillingToPerform       = 53
	resultOther                    = 80
	oidStartTLS                    = "1.3.6.1.4.1.1466.20037" // RFC 4511 4.14.1
	oidNoticeOfDisconnection       = "1.3.6.1.4.1.1466.20036" // RFC 4511 4.4.1
	oidPagedResults                = "1.2.840.113556.1.4.319" // RFC 2696
	maxRequestBytes                = 256 << 10                // one LDAP request; real ones are < 1 KiB
	maxFilterDepth                 = 16
	maxFilterNodes                 = 256
	maxRequestedAttrs              = 64
)

// message is a decoded LDAPMessage envelope, RFC 4511 4.2.
type message struct {
	id       int64
	op       *ber.Packet
	controls []control
}

// control is a request control, RFC 4511 4.1.11.
type control struct {
	oid      string
	critical bool
	value    []byte
}

var errProtocol = errors.New("ldapd: malformed request")

// readMessage reads one LDAPMessage from r, at most maxRequestBytes long.
func readMessage(r io.Reader) (*message, error) {
	lr := &io.LimitedReader{R: r, N: maxRequestBytes}
	p, err := ber.ReadPacket(lr)
	if err != nil {
		if lr.N <= 0 {
			return nil, fmt.Errorf("%w: request larger than %d bytes", errProtocol, maxRequestBytes)
		}
		return nil, err
	}
	return decodeMessage(p)
}

// decodeMessage checks the envelope: SEQUENCE { messageID, protocolOp,
// controls [0] OPTIONAL }.
func decodeMessage(p *ber.Packet) (*message, error) {
	if p.ClassType != ber.ClassUniversal || p.Tag != ber.TagSequence || len(p.Children) < 2 {
		return nil, fmt.Errorf("%w: not an LDAPMessage", errProtocol)
	}
	id, ok := intOf(p.Children[0])
	if !ok || id < 0 || id > 1<<31-1 {
		return nil, fmt.Errorf("%w: bad messageID", errProtocol)
	}
	m := &message{id: id, op: p.Children[1]}
	if m.op.ClassType != ber.ClassApplication {
		return nil, fmt.Errorf("%w: protocolOp is not an application tag", errProtocol)
	}
	if len(p.Children) > 2 {
		c := p.Children[2]
		if c.ClassType != ber.ClassContext || c.Tag != 0 {
			return nil, fmt.Errorf("%w: bad controls", errProtocol)
		}
		for _, cp := range c.Children {
			if len(cp.Children) == 0 {
				return nil, fmt.Errorf("%w: empty control", errProtocol)
			}
			ctl := control{oid: stringOf(cp.Children[0])}
			for _, f := range cp.Children[1:] {
				switch {
				case f.ClassType == ber.ClassUniversal && f.Tag == ber.TagBoolean:
					ctl.critical, _ = f.Value.(bool)
				case f.ClassType == ber.ClassUniversal && f.Tag == ber.TagOctetString:
					ctl.value = bytesOf(f)
				}
			}
			m.controls = append(m.controls, ctl)
		}
	}
	return m, nil
}

// bytesOf returns a primitive packet's content octets.
func bytesOf(p *ber.Packet) []byte {
	if p.ByteValue != nil {
		return p.ByteValue
	}
	if p.Data != nil {
		return p.Data.Bytes()
	}
	return nil
}

func stringOf(p *ber.Packet) string { return string(bytesOf(p)) }

func intOf(p *ber.Packet) (int64, bool) {
	if p.TagType != ber.TypePrimitive {
		return 0, false
	}
	b := bytesOf(p)
	if len(b) == 0 || len(b) > 8 {
		return 0, false
	}
	v, err := ber.ParseInt64(b)
	return v, err == nil
}

// bindRequest is RFC 4511 4.2.
type bindRequest struct {
	version  int64
	name     string
	simple   bool // AuthenticationChoice simple [0]; otherwise SASL [3]
	password string
}

func decodeBind(op *ber.Packet) (bindRequest, error) {
	if len(op.Children) < 3 {
		return bindRequest{}, fmt.Errorf("%w: short BindRequest", errProtocol)
	}
	v, ok := intOf(op.Children[0])
	if !ok {
		return bindRequest{}, fmt.Errorf("%w: bad bind version", errProtocol)
	}
	auth := op.Children[2]
	b := bindRequest{version: v, name: stringOf(op.Children[1])}
	if auth.ClassType == ber.ClassContext && auth.Tag == 0 && auth.TagType == ber.TypePrimitive {
		b.simple = true
		b.password = stringOf(auth)
	}
	return b, nil
}

// searchRequest is RFC 4511 4.5.1.
type searchRequest struct {
	base       string
	scope      int64 // 0 base, 1 one level, 2 subtree
	sizeLimit  int64
	typesOnly  bool
	filter     *filter
	attributes []string
}

func decodeSearch(op *ber.Packet) (searchRequest, error) {
	if len(op.Children) != 8 {
		return searchRequest{}, fmt.Errorf("%w: SearchRequest has %d fields", errProtocol, len(op.Children))
	}
	s := searchRequest{base: stringOf(op.Children[0])}
	var ok bool
	if s.scope, ok = intOf(op.Children[1]); !ok || s.scope < 0 || s.scope > 2 {
		return s, fmt.Errorf("%w: bad scope", errProtocol)
	}
	if s.sizeLimit, ok = intOf(op.Children[3]); !ok || s.sizeLimit < 0 {
		return s, fmt.Errorf("%w: bad sizeLimit", errProtocol)
	}
	s.typesOnly = len(bytesOf(op.Children[5])) > 0 && bytesOf(op.Children[5])[0] != 0
	f, err := decodeFilter(op.Children[6])
	if err != nil {
		return s, err
	}
	s.filter = f
	attrs := op.Children[7].Children
	if len(attrs) > maxRequestedAttrs {
		return s, fmt.Errorf("%w: %d attributes requested", errProtocol, len(attrs))
	}
	for _, a := range attrs {
		s.attributes = append(s.attributes, stringOf(a))
	}
	return s, nil
}

// extendedRequest is RFC 4511 4.12.
type extendedRequest struct {
	name string
}

func decodeExtended(op *ber.Packet) (extendedRequest, error) {
	if len(op.Children) < 1 || op.Children[0].ClassType != ber.ClassContext || op.Children[0].Tag != 0 {
		return extendedRequest{}, fmt.Errorf("%w: ExtendedRequest without requestName", errProtocol)
	}
	return extendedRequest{name: stringOf(op.Children[0])}, nil
}

// Encoders.

func envelope(id int64, op *ber.Packet, controls ...*ber.Packet) *ber.Packet {
	p := ber.NewSequence("LDAPMessage")
	p.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, id, "messageID"))
	p.AppendChild(op)
	if len(controls) > 0 {
		c := ber.Encode(ber.ClassContext, ber.TypeConstructed, 0, nil, "controls")
		for _, ctl := range controls {
			c.AppendChild(ctl)
		}
		p.AppendChild(c)
	}
	return p
}

// ldapResult builds the LDAPResult components of a response op, RFC 4511 4.1.9.
func ldapResult(tag ber.Tag, code int, matchedDN, diagnostic string) *ber.Packet {
	op := ber.Encode(ber.ClassApplication, ber.TypeConstructed, tag, nil, "response")
	op.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagEnumerated, int64(code), "resultCode"))
	op.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, matchedDN, "matchedDN"))
	op.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, diagnostic, "diagnosticMessage"))
	return op
}

// extendedResponse is RFC 4511 4.12 with responseName [10].
func extendedResponse(code int, diagnostic, name string) *ber.Packet {
	op := ldapResult(appExtendedResponse, code, "", diagnostic)
	if name != "" {
		op.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 10, name, "responseName"))
	}
	return op
}

// searchEntry is a SearchResultEntry, RFC 4511 4.5.2.
func searchEntry(e *entry, typesOnly bool) *ber.Packet {
	op := ber.Encode(ber.ClassApplication, ber.TypeConstructed, appSearchResEntry, nil, "SearchResultEntry")
	op.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, e.dn, "objectName"))
	attrs := ber.NewSequence("attributes")
	for _, a := range e.attrs {
		pa := ber.NewSequence("PartialAttribute")
		pa.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, a.name, "type"))
		vals := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSet, nil, "vals")
		if !typesOnly {
			for _, v := range a.values {
				vals.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, string(v), "value"))
			}
		}
		pa.AppendChild(vals)
		attrs.AppendChild(pa)
	}
	op.AppendChild(attrs)
	return op
}

// pagedResultsDone is the response control of RFC 2696 3 with an empty
// cookie: every result was returned in one page.
func pagedResultsDone() *ber.Packet {
	c := ber.NewSequence("Control")
	c.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, oidPagedResults, "controlType"))
	v := ber.NewSequence("realSearchControlValue")
	v.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, int64(0), "size"))
	v.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, "", "cookie"))
	c.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, string(v.Bytes()), "controlValue"))
	return c
}
