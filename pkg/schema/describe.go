package schema

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"
)

// Kind is the storage kind of a column, derived from the JSON Schema.
type Kind int

const (
	KindString   Kind = iota // "type": "string" or a string enum
	KindInt                  // "type": "integer"
	KindFloat                // "type": "number"
	KindBool                 // "type": "boolean"
	KindDateTime             // "format": "date-time"
	KindDate                 // "format": "date"
)

// PIIAction is what happens to a personal-data field before it leaves the edge.
type PIIAction string

const (
	PIINone         PIIAction = ""
	PIIPseudonymize PIIAction = "pseudonymize" // replaced by a keyed hash
	PIIDrop         PIIAction = "drop"         // removed
)

// Field is a personal-data field of data.
type Field struct {
	Path   []string // property names from data's root
	Action PIIAction
}

// Column is one typed column of a raw table: a leaf property of data, nested
// objects flattened with "_" (location.lat → location_lat).
type Column struct {
	Name     string
	Path     []string
	Kind     Kind
	Nullable bool // the property (or an object above it) is optional
	PII      PIIAction
}

// Int64 is a decoded integer as the hub stores it (an Int64 column): 12.0
// and 1.2e1 are the integer 12 to JSON Schema; beyond 64 bits, or a
// fraction, is an error.
func Int64(v any) (int64, error) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, fmt.Errorf("want an integer, got %T", v)
	}
	i, err := n.Int64()
	if err == nil {
		return i, nil
	}
	f, ferr := n.Float64()
	if ferr != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return 0, fmt.Errorf("want a 64-bit integer, got %s", n)
	}
	return int64(f), nil
}

// Float64 is a decoded number as the hub stores it (a Float64 column).
func Float64(v any) (float64, error) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, fmt.Errorf("want a number, got %T", v)
	}
	f, err := n.Float64()
	if err != nil {
		return 0, fmt.Errorf("want a number a 64-bit float holds, got %s", n)
	}
	return f, nil
}

// ValueAt is the value at path (a Column's or a PII field's) in decoded
// JSON data, or nil where there is none.
func ValueAt(data any, path []string) any {
	for _, k := range path {
		obj, ok := data.(map[string]any)
		if !ok {
			return nil
		}
		data = obj[k]
	}
	return data
}

// describe derives the columns and the personal-data fields from the raw schema.
func (t *Type) describe(root map[string]any) error {
	return t.walk(root, root, nil, false)
}

func (t *Type) walk(root, node map[string]any, prefix []string, optional bool) error {
	props, _ := node["properties"].(map[string]any)
	if len(props) == 0 {
		return fmt.Errorf("object at %q has no properties", strings.Join(prefix, "."))
	}
	required := map[string]bool{}
	if req, ok := node["required"].([]any); ok {
		for _, r := range req {
			if s, ok := r.(string); ok {
				required[s] = true
			}
		}
	}
	for _, name := range orderedKeys(node, props) {
		p, err := resolve(root, props[name])
		if err != nil {
			return fmt.Errorf("property %s: %w", name, err)
		}
		path := append(append([]string(nil), prefix...), name)
		opt := optional || !required[name]
		action := PIIAction(str(p["x-pii"]))
		switch action {
		case PIINone, PIIPseudonymize, PIIDrop:
		default:
			return fmt.Errorf("property %s: x-pii must be %q or %q, got %q", name, PIIPseudonymize, PIIDrop, action)
		}
		if action != PIINone {
			t.PII = append(t.PII, Field{Path: path, Action: action})
			if action == PIIDrop {
				continue
			}
		}
		kind, isObject, err := kindOf(p)
		if err != nil {
			return fmt.Errorf("property %s: %w", name, err)
		}
		if isObject {
			if action != PIINone {
				return fmt.Errorf("property %s: x-pii pseudonymize is for strings, not objects", name)
			}
			if err := t.walk(root, p, path, opt); err != nil {
				return err
			}
			continue
		}
		if action == PIIPseudonymize {
			kind = KindString
		}
		t.Columns = append(t.Columns, Column{Name: strings.Join(path, "_"), Path: path, Kind: kind, Nullable: opt, PII: action})
	}
	return nil
}

// orderedKeys gives a stable column order (the decoded schema is a map):
// required properties first, then the optional ones, each alphabetically.
func orderedKeys(node map[string]any, props map[string]any) []string {
	var req, opt []string
	required := map[string]bool{}
	if r, ok := node["required"].([]any); ok {
		for _, x := range r {
			if s, ok := x.(string); ok {
				required[s] = true
			}
		}
	}
	for k := range props {
		if required[k] {
			req = append(req, k)
		} else {
			opt = append(opt, k)
		}
	}
	sort.Strings(req)
	sort.Strings(opt)
	return append(req, opt...)
}

func resolve(root map[string]any, v any) (map[string]any, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("must be an object schema")
	}
	ref, ok := m["$ref"].(string)
	if !ok {
		return m, nil
	}
	name, ok := strings.CutPrefix(ref, "#/$defs/")
	if !ok {
		return nil, fmt.Errorf("$ref %q: only #/$defs/<name> is supported", ref)
	}
	defs, _ := root["$defs"].(map[string]any)
	target, ok := defs[name].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("$ref %q: no such definition", ref)
	}
	return target, nil
}

func kindOf(p map[string]any) (kind Kind, isObject bool, err error) {
	typ := str(p["type"])
	if typ == "" {
		if enum, ok := p["enum"].([]any); ok && len(enum) > 0 {
			for _, e := range enum {
				if _, ok := e.(string); !ok {
					return 0, false, fmt.Errorf("enum without \"type\" must list strings")
				}
			}
			return KindString, false, nil
		}
		return 0, false, fmt.Errorf("needs a \"type\" (or a string enum)")
	}
	switch typ {
	case "string":
		switch str(p["format"]) {
		case "date-time":
			return KindDateTime, false, nil
		case "date":
			return KindDate, false, nil
		}
		return KindString, false, nil
	case "integer":
		return KindInt, false, nil
	case "number":
		return KindFloat, false, nil
	case "boolean":
		return KindBool, false, nil
	case "object":
		return 0, true, nil
	}
	return 0, false, fmt.Errorf("type %q has no column mapping (use string, integer, number, boolean or object)", typ)
}

func str(v any) string { s, _ := v.(string); return s }
