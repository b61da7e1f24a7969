// Package schema is the iochub schema registry: every event type's JSON Schema
// (2020-12) compiled once at start from an fs.FS, validation with errors that
// name the JSON pointer and the rule, and what the schemas say beyond
// validation — which fields are personal data and which typed columns the
// ClickHouse raw table has.
package schema

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/iochub/iochub/pkg/event"
)

// ErrUnknownType is returned for an event type with no schema.
var ErrUnknownType = errors.New("unknown event type")

// ErrInvalidData is matched by every *ValidationError.
var ErrInvalidData = errors.New("data does not match the schema")

// Violation is one failed rule at one place in the event's data.
type Violation struct {
	Pointer string `json:"pointer"` // JSON pointer into data, "" for data itself
	Rule    string `json:"rule"`    // the JSON Schema keyword that failed, e.g. "enum"
	Message string `json:"message"`
}

// ValidationError lists every violation of one event's data.
type ValidationError struct {
	Type       string
	Violations []Violation
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Violations))
	for i, v := range e.Violations {
		p := v.Pointer
		if p == "" {
			p = "/"
		}
		parts[i] = fmt.Sprintf("%s: %s (%s)", p, v.Message, v.Rule)
	}
	return fmt.Sprintf("%s data: %s", e.Type, strings.Join(parts, "; "))
}

// Is makes errors.Is(err, ErrInvalidData) true.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalidData }

// Type is one compiled event type.
type Type struct {
	Name    event.TypeName
	schema  *jsonschema.Schema
	fast    func(any) []Violation // the generated validator of this very schema, if any (compiled.go)
	Columns []Column              // typed columns of data, in schema order (PII "drop" fields excluded)
	PII     []Field               // personal-data fields and what happens to them
	// Subject is what an event's subject attribute must match, from the
	// schema's "x-subject": {"pattern": …, "description": …}: a subject
	// names an area or an entity, and the pattern keeps a person's
	// numbers out of it. Nil: any subject.
	Subject *SubjectRule
	// Title names the type for people, in Vietnamese and English (the
	// schema's "x-title"); Description is the schema's own.
	Title       Text
	Description string
	// Document is the schema file as it is in the registry, for the
	// catalogue. Callers must not change it.
	Document json.RawMessage
}

// Text is a text for people in Vietnamese and English: a type's title here,
// a KPI's title, unit and description in pkg/kpi.
type Text struct {
	VI string `yaml:"vi" json:"vi"`
	EN string `yaml:"en" json:"en"`
}

// title reads a schema's "x-title": {"vi": …, "en": …}; absent is no title.
func title(v any) (Text, error) {
	if v == nil {
		return Text{}, nil
	}
	m, ok := v.(map[string]any)
	vi, okVI := m["vi"].(string)
	en, okEN := m["en"].(string)
	if !ok || !okVI || !okEN || strings.TrimSpace(vi) == "" || strings.TrimSpace(en) == "" || len(m) != 2 {
		return Text{}, errors.New(`want {"vi": "…", "en": "…"}, both non-empty, nothing else`)
	}
	return Text{VI: vi, EN: en}, nil
}

// SubjectRule is a type's constraint on the subject attribute.
type SubjectRule struct {
	Pattern     *regexp.Regexp
	Description string
}

// Registry holds every compiled type. It is safe for concurrent use.
type Registry struct {
	types map[string]*Type
	names []string
}

var printer = message.NewPrinter(language.English)

// Load compiles every <sector>/<name>.v<major>.json in fsys. No schema may
// load another from the network or the disk: a $ref must stay inside its
// file or point at another schema of fsys.
func Load(fsys fs.FS) (*Registry, error) {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	c.UseLoader(noLoader{})
	raws := map[string]map[string]any{}
	files := map[string][]byte{}
	digests := map[string]string{}
	paths, err := fs.Glob(fsys, "*/*.json")
	if err != nil {
		return nil, fmt.Errorf("list schemas: %w", err)
	}
	if len(paths) == 0 {
		return nil, errors.New("load schemas: no <sector>/<name>.v<major>.json found")
	}
	for _, p := range paths {
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return nil, fmt.Errorf("read schema %s: %w", p, err)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("parse schema %s: %w", p, err)
		}
		obj, ok := doc.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("schema %s: must be a JSON object", p)
		}
		raws[p], files[p] = obj, b
		sum := sha256.Sum256(b)
		digests[p] = hex.EncodeToString(sum[:])
		if err := c.AddResource(schemaURL(p), doc); err != nil {
			return nil, fmt.Errorf("add schema %s: %w", p, err)
		}
	}
	r := &Registry{types: map[string]*Type{}}
	for _, p := range paths {
		tn, err := event.TypeFromSchemaPath(p)
		if err != nil {
			return nil, err
		}
		sch, err := c.Compile(schemaURL(p))
		if err != nil {
			return nil, fmt.Errorf("compile schema %s: %w", p, err)
		}
		t := &Type{Name: tn, schema: sch}
		if cs, ok := compiled[tn.String()]; ok && cs.digest == digests[p] {
			t.fast = cs.validate
		}
		if err := t.describe(raws[p]); err != nil {
			return nil, fmt.Errorf("schema %s: %w", p, err)
		}
		if t.Subject, err = subjectRule(raws[p]["x-subject"]); err != nil {
			return nil, fmt.Errorf("schema %s: x-subject: %w", p, err)
		}
		if t.Title, err = title(raws[p]["x-title"]); err != nil {
			return nil, fmt.Errorf("schema %s: x-title: %w", p, err)
		}
		t.Description, _ = raws[p]["description"].(string)
		t.Document = files[p]
		r.types[tn.String()] = t
		r.names = append(r.names, tn.String())
	}
	sort.Strings(r.names)
	return r, nil
}

// schemaURL is the identity a schema file is compiled under. The schemas carry
// their own $id; this one only has to be unique and never fetchable.
func schemaURL(p string) string { return "file:///iochub/schemas/" + path.Clean(p) }

type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("schema %s is not in the registry: remote $ref is not allowed", url)
}

// Lookup returns the compiled type vn.ioc.<sector>.<name>.v<major>.
func (r *Registry) Lookup(typ string) (*Type, error) {
	t, ok := r.types[typ]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownType, typ)
	}
	return t, nil
}

// Types lists every type, sorted by name.
func (r *Registry) Types() []*Type {
	out := make([]*Type, len(r.names))
	for i, n := range r.names {
		out[i] = r.types[n]
	}
	return out
}

// DecodeData decodes JSON the way the validator expects it (numbers kept as
// json.Number, so integers are not rounded through float64).
func DecodeData(b []byte) (any, error) {
	v, err := event.DecodeValue(b)
	if err != nil {
		return nil, fmt.Errorf("%w: data is not valid JSON: %v", ErrInvalidData, err)
	}
	return v, nil
}

// DecodeEventData is DecodeData of an event's data; data Parse already
// checked is not checked again.
func DecodeEventData(e event.Event) (any, error) {
	v, err := e.DecodedData()
	if err != nil {
		return nil, fmt.Errorf("%w: data is not valid JSON: %v", ErrInvalidData, err)
	}
	return v, nil
}

// Validate checks data (decoded with DecodeData) against the type's schema.
// The error is a *ValidationError naming each failing pointer and rule.
func (t *Type) Validate(data any) error {
	if t.fast != nil {
		if vs := t.fast(data); len(vs) > 0 {
			return &ValidationError{Type: t.Name.String(), Violations: vs}
		}
		return nil
	}
	return t.validateReference(data)
}

// Compiled reports whether the type is checked by generated code rather
// than by the reference validator.
func (t *Type) Compiled() bool { return t.fast != nil }

// validateReference checks data with the reference validator.
func (t *Type) validateReference(data any) error {
	err := t.schema.Validate(data)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return fmt.Errorf("validate %s: %w", t.Name, err)
	}
	out := &ValidationError{Type: t.Name.String()}
	collect(ve, &out.Violations)
	return out
}

func collect(ve *jsonschema.ValidationError, into *[]Violation) {
	if len(ve.Causes) > 0 {
		for _, c := range ve.Causes {
			collect(c, into)
		}
		return
	}
	rule := ""
	if kp := ve.ErrorKind.KeywordPath(); len(kp) > 0 {
		rule = kp[len(kp)-1]
	}
	*into = append(*into, Violation{
		Pointer: pointer(ve.InstanceLocation),
		Rule:    rule,
		Message: ve.ErrorKind.LocalizedString(printer),
	})
}

func pointer(tokens []string) string {
	var b strings.Builder
	for _, t := range tokens {
		b.WriteByte('/')
		b.WriteString(strings.NewReplacer("~", "~0", "/", "~1").Replace(t))
	}
	return b.String()
}

// quietRules are the rules whose messages never repeat the value that
// failed (a missing property, a type, a length, the allowed values).
var quietRules = map[string]bool{"required": true, "type": true, "enum": true, "const": true, "additionalProperties": true,
	"minLength": true, "maxLength": true, "minItems": true, "maxItems": true, "minProperties": true, "maxProperties": true, "false": true}

// Redacted is the error without any value of the data: the pointer and
// rule of every violation, and the message only where it cannot repeat
// the value. Dead letters and logs past the edge use it.
func (e *ValidationError) Redacted() string {
	parts := make([]string, len(e.Violations))
	for i, v := range e.Violations {
		p := v.Pointer
		if p == "" {
			p = "/"
		}
		msg := "value not allowed"
		if quietRules[v.Rule] {
			msg = v.Message
		}
		parts[i] = fmt.Sprintf("%s: %s (%s)", p, msg, v.Rule)
	}
	return fmt.Sprintf("%s data: %s", e.Type, strings.Join(parts, "; "))
}

// subjectRule reads a schema's "x-subject".
func subjectRule(v any) (*SubjectRule, error) {
	if v == nil {
		return nil, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New(`want {"pattern": "…", "description": "…"}`)
	}
	pat, _ := m["pattern"].(string)
	if pat == "" {
		return nil, errors.New("pattern is required")
	}
	re, err := regexp.Compile(pat)
	if err != nil {
		return nil, fmt.Errorf("pattern: %w", err)
	}
	desc, _ := m["description"].(string)
	return &SubjectRule{Pattern: re, Description: desc}, nil
}

// CheckSubject says whether subject (empty: none) is one the type allows,
// without repeating it.
func (t *Type) CheckSubject(subject string) error {
	if t.Subject == nil || subject == "" || t.Subject.Pattern.MatchString(subject) {
		return nil
	}
	msg := "does not match the type's subject pattern " + t.Subject.Pattern.String()
	if t.Subject.Description != "" {
		msg += " (" + t.Subject.Description + ")"
	}
	return &event.AttributeError{Attribute: "subject", Problem: msg, Rule: RuleSubject}
}

// RuleSubject is the rule a subject outside its type's pattern fails.
const RuleSubject = "x-subject"
