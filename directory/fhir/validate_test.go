package fhir

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// A compact structural validator of the FHIR R4 JSON this package writes:
// the json.html rules (no null, no empty string, array or object), the
// required elements and cardinalities of Bundle, Practitioner,
// PractitionerRole, Organization, OperationOutcome and
// CapabilityStatement, the data types they use (Identifier,
// CodeableConcept, Coding, ContactPoint, Extension, Reference, HumanName,
// Address, Meta), the required code sets of their coded elements, and the
// invariants ext-1, cpt-2, org-1, org-2, org-3.

type validator struct{ errs []string }

func (v *validator) errf(path, format string, args ...any) {
	v.errs = append(v.errs, path+": "+fmt.Sprintf(format, args...))
}

var idRe = regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)

// validate returns the problems found in a resource decoded from JSON.
func validate(res map[string]any) []string {
	v := &validator{}
	v.noEmpty("$", res)
	v.resource("$", res)
	return v.errs
}

// noEmpty: json.html, "empty values are not allowed".
func (v *validator) noEmpty(path string, x any) {
	switch x := x.(type) {
	case nil:
		v.errf(path, "null")
	case string:
		if x == "" {
			v.errf(path, "empty string")
		}
	case []any:
		if len(x) == 0 {
			v.errf(path, "empty array")
		}
		for i, e := range x {
			v.noEmpty(fmt.Sprintf("%s[%d]", path, i), e)
		}
	case map[string]any:
		if len(x) == 0 {
			v.errf(path, "empty object")
		}
		for k, e := range x {
			v.noEmpty(path+"."+k, e)
		}
	}
}

func (v *validator) str(path string, m map[string]any, key string, required bool) string {
	x, ok := m[key]
	if !ok {
		if required {
			v.errf(path+"."+key, "required")
		}
		return ""
	}
	s, ok := x.(string)
	if !ok {
		v.errf(path+"."+key, "not a string")
	}
	return s
}

func (v *validator) code(path string, m map[string]any, key string, required bool, allowed ...string) {
	s := v.str(path, m, key, required)
	if s == "" {
		return
	}
	for _, a := range allowed {
		if s == a {
			return
		}
	}
	v.errf(path+"."+key, "%q not in %v", s, allowed)
}

func (v *validator) uri(path string, m map[string]any, key string, required, absolute bool) {
	s := v.str(path, m, key, required)
	if s == "" {
		return
	}
	u, err := url.Parse(s)
	if err != nil || absolute && u.Scheme == "" || strings.ContainsAny(s, " \t\n") {
		v.errf(path+"."+key, "not a valid URI: %q", s)
	}
}

func (v *validator) bool(path string, m map[string]any, key string) {
	if x, ok := m[key]; ok {
		if _, ok := x.(bool); !ok {
			v.errf(path+"."+key, "not a boolean")
		}
	}
}

// list returns m[key] as objects, checking the cardinality min..max (max
// 0: unbounded; 1: a single object, not an array).
func (v *validator) list(path string, m map[string]any, key string, min, max int) []map[string]any {
	x, ok := m[key]
	if !ok {
		if min > 0 {
			v.errf(path+"."+key, "required")
		}
		return nil
	}
	if max == 1 {
		o, ok := x.(map[string]any)
		if !ok {
			v.errf(path+"."+key, "must be a single object")
			return nil
		}
		return []map[string]any{o}
	}
	arr, ok := x.([]any)
	if !ok {
		v.errf(path+"."+key, "must be an array")
		return nil
	}
	if len(arr) < min {
		v.errf(path+"."+key, "at least %d required", min)
	}
	var out []map[string]any
	for i, e := range arr {
		o, ok := e.(map[string]any)
		if !ok {
			v.errf(fmt.Sprintf("%s.%s[%d]", path, key, i), "not an object")
			continue
		}
		out = append(out, o)
	}
	return out
}

func (v *validator) strings(path string, m map[string]any, key string) {
	x, ok := m[key]
	if !ok {
		return
	}
	arr, ok := x.([]any)
	if !ok {
		v.errf(path+"."+key, "must be an array of strings")
		return
	}
	for i, e := range arr {
		if _, ok := e.(string); !ok {
			v.errf(fmt.Sprintf("%s.%s[%d]", path, key, i), "not a string")
		}
	}
}

func (v *validator) resource(path string, m map[string]any) {
	rt := v.str(path, m, "resourceType", true)
	if id, ok := m["id"].(string); ok && !idRe.MatchString(id) {
		v.errf(path+".id", "invalid id %q", id)
	}
	for _, meta := range v.list(path, m, "meta", 0, 1) {
		if p, ok := meta["profile"]; ok {
			arr, _ := p.([]any)
			for i, e := range arr {
				s, _ := e.(string)
				if !strings.HasPrefix(s, "http") {
					v.errf(fmt.Sprintf("%s.meta.profile[%d]", path, i), "not a canonical URL")
				}
			}
		}
	}
	switch rt {
	case "Bundle":
		v.bundle(path, m)
	case "Practitioner":
		v.bool(path, m, "active")
		v.identifiers(path, m)
		for i, n := range v.list(path, m, "name", 0, 0) {
			p := fmt.Sprintf("%s.name[%d]", path, i)
			v.code(p, n, "use", false, "usual", "official", "temp", "nickname", "anonymous", "old", "maiden")
			v.str(p, n, "family", false)
			v.strings(p, n, "given")
			v.strings(p, n, "prefix")
			v.strings(p, n, "suffix")
		}
		v.telecoms(path, m)
		for i, q := range v.list(path, m, "qualification", 0, 0) {
			p := fmt.Sprintf("%s.qualification[%d]", path, i)
			for _, c := range v.list(p, q, "code", 1, 1) {
				v.codeableConcept(p+".code", c)
			}
		}
	case "PractitionerRole":
		v.bool(path, m, "active")
		v.identifiers(path, m)
		for _, k := range []string{"practitioner", "organization"} {
			for _, r := range v.list(path, m, k, 0, 1) {
				v.reference(path+"."+k, r)
			}
		}
		for _, k := range []string{"code", "specialty"} {
			for i, c := range v.list(path, m, k, 0, 0) {
				v.codeableConcept(fmt.Sprintf("%s.%s[%d]", path, k, i), c)
			}
		}
		v.telecoms(path, m)
	case "Organization":
		v.bool(path, m, "active")
		ids := v.identifiers(path, m)
		name := v.str(path, m, "name", false)
		if ids == 0 && name == "" {
			v.errf(path, "org-1: an organization SHALL at least have a name or an identifier")
		}
		v.strings(path, m, "alias")
		for i, c := range v.list(path, m, "type", 0, 0) {
			v.codeableConcept(fmt.Sprintf("%s.type[%d]", path, i), c)
		}
		for i, t := range v.telecoms(path, m) {
			if t["use"] == "home" {
				v.errf(fmt.Sprintf("%s.telecom[%d]", path, i), "org-3: telecom.use cannot be home")
			}
		}
		for i, a := range v.list(path, m, "address", 0, 0) {
			p := fmt.Sprintf("%s.address[%d]", path, i)
			if a["use"] == "home" {
				v.errf(p, "org-2: address.use cannot be home")
			}
			v.code(p, a, "use", false, "home", "work", "temp", "old", "billing")
			v.code(p, a, "type", false, "postal", "physical", "both")
			v.strings(p, a, "line")
		}
	case "OperationOutcome":
		for i, is := range v.list(path, m, "issue", 1, 0) {
			p := fmt.Sprintf("%s.issue[%d]", path, i)
			v.code(p, is, "severity", true, "fatal", "error", "warning", "information")
			v.str(p, is, "code", true)
		}
	case "CapabilityStatement":
		v.code(path, m, "status", true, "draft", "active", "retired", "unknown")
		v.str(path, m, "date", true)
		v.code(path, m, "kind", true, "instance", "capability", "requirements")
		v.str(path, m, "fhirVersion", true)
		v.strings(path, m, "format")
		if _, ok := m["format"]; !ok {
			v.errf(path+".format", "required")
		}
		for i, rest := range v.list(path, m, "rest", 0, 0) {
			p := fmt.Sprintf("%s.rest[%d]", path, i)
			v.code(p, rest, "mode", true, "client", "server")
			for j, res := range v.list(p, rest, "resource", 0, 0) {
				rp := fmt.Sprintf("%s.resource[%d]", p, j)
				v.str(rp, res, "type", true)
				for k, in := range v.list(rp, res, "interaction", 0, 0) {
					v.code(fmt.Sprintf("%s.interaction[%d]", rp, k), in, "code", true,
						"read", "vread", "update", "patch", "delete", "history-instance", "history-type", "create", "search-type")
				}
				for k, sp := range v.list(rp, res, "searchParam", 0, 0) {
					spp := fmt.Sprintf("%s.searchParam[%d]", rp, k)
					v.str(spp, sp, "name", true)
					v.code(spp, sp, "type", true, "number", "date", "string", "token", "reference", "composite", "quantity", "uri", "special")
				}
			}
		}
	default:
		v.errf(path+".resourceType", "unexpected %q", rt)
	}
}

func (v *validator) bundle(path string, m map[string]any) {
	typ := v.str(path, m, "type", true)
	v.code(path, m, "type", true, "document", "message", "transaction", "transaction-response", "batch", "batch-response", "history", "searchset", "collection")
	if t, ok := m["total"]; ok {
		n, isNum := t.(float64)
		if !isNum || n < 0 || n != float64(int(n)) {
			v.errf(path+".total", "not an unsignedInt")
		}
		if typ != "searchset" && typ != "history" {
			v.errf(path+".total", "bdl-1: total only when a search or history")
		}
	}
	for i, l := range v.list(path, m, "link", 0, 0) {
		p := fmt.Sprintf("%s.link[%d]", path, i)
		v.str(p, l, "relation", true)
		v.uri(p, l, "url", true, true)
	}
	for i, e := range v.list(path, m, "entry", 0, 0) {
		p := fmt.Sprintf("%s.entry[%d]", path, i)
		v.uri(p, e, "fullUrl", typ == "searchset", true)
		for _, r := range v.list(p, e, "resource", 0, 1) {
			v.resource(p+".resource", r)
		}
		for _, s := range v.list(p, e, "search", 0, 1) {
			v.code(p+".search", s, "mode", false, "match", "include", "outcome")
		}
		if _, ok := e["search"]; ok && typ != "searchset" {
			v.errf(p+".search", "bdl-2: entry.search only in a search set")
		}
	}
}

func (v *validator) identifiers(path string, m map[string]any) int {
	ids := v.list(path, m, "identifier", 0, 0)
	for i, id := range ids {
		p := fmt.Sprintf("%s.identifier[%d]", path, i)
		v.code(p, id, "use", false, "usual", "official", "temp", "secondary", "old")
		v.uri(p, id, "system", false, true)
		v.str(p, id, "value", false)
		for _, t := range v.list(p, id, "type", 0, 1) {
			v.codeableConcept(p+".type", t)
		}
	}
	return len(ids)
}

func (v *validator) codeableConcept(path string, c map[string]any) {
	for i, cd := range v.list(path, c, "coding", 0, 0) {
		v.coding(fmt.Sprintf("%s.coding[%d]", path, i), cd)
	}
	v.str(path, c, "text", false)
}

func (v *validator) coding(path string, c map[string]any) {
	v.uri(path, c, "system", false, true)
	if code := v.str(path, c, "code", false); code != strings.TrimSpace(code) {
		v.errf(path+".code", "code with surrounding white space")
	}
	v.str(path, c, "display", false)
}

func (v *validator) reference(path string, r map[string]any) {
	v.str(path, r, "reference", false)
	v.str(path, r, "display", false)
}

func (v *validator) telecoms(path string, m map[string]any) []map[string]any {
	ts := v.list(path, m, "telecom", 0, 0)
	for i, t := range ts {
		p := fmt.Sprintf("%s.telecom[%d]", path, i)
		if _, ok := t["value"]; ok {
			if _, ok := t["system"]; !ok {
				v.errf(p, "cpt-2: a system is required if a value is provided")
			}
		}
		v.code(p, t, "system", false, "phone", "fax", "email", "pager", "url", "sms", "other")
		v.code(p, t, "use", false, "home", "work", "temp", "old", "mobile")
		v.extensions(p, t)
	}
	return ts
}

func (v *validator) extensions(path string, m map[string]any) {
	for i, e := range v.list(path, m, "extension", 0, 0) {
		p := fmt.Sprintf("%s.extension[%d]", path, i)
		v.str(p, e, "url", true)
		values := 0
		for k := range e {
			if strings.HasPrefix(k, "value") {
				values++
			}
		}
		_, nested := e["extension"]
		if values > 1 || (values == 1) == nested {
			v.errf(p, "ext-1: either extensions or one value[x], not both")
		}
		if cc, ok := e["valueCodeableConcept"].(map[string]any); ok {
			v.codeableConcept(p+".valueCodeableConcept", cc)
		}
		if c, ok := e["valueCoding"].(map[string]any); ok {
			v.coding(p+".valueCoding", c)
		}
		v.extensions(p, e)
	}
}
