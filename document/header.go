package document

import (
	"mime"
	"strings"
)

// Bounds of the header fields HeaderFields writes.
const (
	maxHeaderDocs     = 20  // fields per message
	maxHeaderProblems = 5   // problems per field
	maxProblemRunes   = 160 // per problem text
)

// HeaderFields returns the header fields to prepend to the message on
// delivery, CRLF-terminated, "" when the message has no structured
// document. One HeaderName field per document (or one for a broken attempt):
//
//	X-Relais-Document: valid; source=xdm; type=11490-0; ins=NIR-test:279035121518989
//	X-Relais-Document: invalid; source=cda; type=11490-0;
//	 error=903 INS non =?utf-8?q?pr=C3=A9sent?= dans le document
//
// Values from the documents are reduced to safe tokens; problem texts are
// RFC 2047 encoded when not ASCII (RFC 2047 5(1): the field is unstructured);
// lines are folded under 78 characters (RFC 5322 2.1.1, 2.2.3).
func (a Analysis) HeaderFields() string {
	if !a.Has() {
		return ""
	}
	var b strings.Builder
	if len(a.Documents) == 0 {
		writeField(&b, []string{"invalid;"}, a.Problems)
		return b.String()
	}
	msgOK := !blocking(a.Problems)
	for i, d := range a.Documents {
		if i == maxHeaderDocs {
			break
		}
		verdict := "invalid;"
		if msgOK && d.Valid() {
			verdict = "valid;"
		}
		words := []string{verdict, "source=" + d.Source + ";"}
		if d.Parsed {
			h := d.Header
			if c := token(h.Type.Code, 32); c != "" {
				words = append(words, "type="+c+";")
			}
			if ins := h.Patient.INS; ins != nil && token(ins.Extension, 32) != "" {
				kind := token(h.Patient.INSKind, 16)
				if kind == "" {
					kind = "INS"
				}
				words = append(words, "ins="+kind+":"+token(ins.Extension, 32)+";")
			}
		}
		if d.PDF {
			words = append(words, "pdf=yes;")
		}
		writeField(&b, words, append(append([]Problem(nil), d.Problems...), a.Problems...))
	}
	return b.String()
}

// writeField writes one folded HeaderName field: the words, then the
// problems (errors first), bounded.
func writeField(b *strings.Builder, words []string, problems []Problem) {
	ordered := make([]Problem, 0, len(problems))
	for _, p := range problems {
		if !p.Warning {
			ordered = append(ordered, p)
		}
	}
	for _, p := range problems {
		if p.Warning {
			ordered = append(ordered, p)
		}
	}
	for i, p := range ordered {
		if i == maxHeaderProblems {
			words = append(words, "more="+itoa(len(ordered)-i)+";")
			break
		}
		text := strings.ReplaceAll(clean(p.Text, maxProblemRunes), ";", ",")
		key := "warning="
		if !p.Warning {
			key = "error="
			if p.Code != 0 {
				key += itoa(p.Code)
				words = append(words, key)
				key = ""
			}
		}
		enc := encodeWords(text)
		// RFC 2047 5(1): an encoded word is separated from adjacent text
		// by white space, so keys and separators stand apart from one.
		if key != "" {
			if isEncodedWord(enc[0]) {
				words = append(words, key)
			} else {
				enc[0] = key + enc[0]
			}
		}
		if isEncodedWord(enc[len(enc)-1]) {
			enc = append(enc, ";")
		} else {
			enc[len(enc)-1] += ";"
		}
		words = append(words, enc...)
	}
	// Drop the separator after the last word.
	if words[len(words)-1] == ";" {
		words = words[:len(words)-1]
	} else {
		words[len(words)-1] = strings.TrimSuffix(words[len(words)-1], ";")
	}
	fold(b, HeaderName+":", words)
}

// encodeWords splits text into header words: plain ASCII words as they are,
// or RFC 2047 Q encoded words (each at most 75 characters, RFC 2047 2).
func encodeWords(text string) []string {
	if text == "" {
		return []string{"-"}
	}
	ascii := true
	for i := 0; i < len(text); i++ {
		if text[i] >= 0x80 {
			ascii = false
			break
		}
	}
	if ascii {
		return strings.Fields(text)
	}
	// mime.QEncoding splits long text into several encoded words separated
	// by spaces, each within the 75 character limit.
	return strings.Fields(mime.QEncoding.Encode("utf-8", text))
}

func isEncodedWord(w string) bool {
	return strings.HasPrefix(w, "=?") && strings.HasSuffix(w, "?=")
}

// fold writes name and words as one field, folding between words so that
// no line exceeds 78 characters when words allow it (RFC 5322 2.2.3).
func fold(b *strings.Builder, name string, words []string) {
	line := name
	for _, w := range words {
		if len(line)+1+len(w) > 78 && line != name {
			b.WriteString(line)
			b.WriteString("\r\n")
			line = " " + w
			continue
		}
		line += " " + w
	}
	b.WriteString(line)
	b.WriteString("\r\n")
}
