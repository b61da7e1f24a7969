// Package event is the iochub event envelope: CloudEvents 1.0 in its JSON
// format, and the names derived from an event type (NATS subjects, table
// names, schema paths) in one place.
package event

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// SpecVersion is the only CloudEvents version iochub accepts.
const SpecVersion = "1.0"

// ContentTypeJSON is the only datacontenttype iochub accepts.
const ContentTypeJSON = "application/json"

// Event is one CloudEvent. Data is kept as raw JSON: the schema registry
// validates it and the aggregator decodes it into typed columns.
type Event struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Time            time.Time       `json:"time"`
	DataContentType string          `json:"datacontenttype,omitempty"`
	DataSchema      string          `json:"dataschema,omitempty"`
	Subject         string          `json:"subject,omitempty"`
	Data            json.RawMessage `json:"data"`
	// Extensions are the extension attributes (traceparent, …) by name, each
	// value as JSON (a string, number or boolean), kept end to end.
	Extensions map[string]json.RawMessage `json:"-"`

	validData []byte // Data as Parse checked it: DecodedData need not check it again
}

// DecodedData is Data decoded as DecodeValue decodes it. Data that Parse
// read and nobody replaced since is not validated a second time.
func (e Event) DecodedData() (any, error) {
	if len(e.Data) > 0 && len(e.Data) == len(e.validData) && &e.Data[0] == &e.validData[0] {
		v, _ := decodeValid(e.Data, skipSpace(e.Data, 0))
		return v, nil
	}
	return DecodeValue(e.Data)
}

// Bounds of extension attributes.
const (
	MaxExtensions         = 16
	MaxExtensionNameLen   = 20 // the CloudEvents spec's recommendation
	MaxExtensionValueSize = 1024
)

// Extension returns the string value of extension name ("" if absent or not a string).
func (e Event) Extension(name string) string {
	raw, ok := e.Extensions[name]
	if !ok {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return string(raw)
	}
	return s
}

// SetExtension sets extension name to the string value v.
func (e *Event) SetExtension(name, v string) {
	if e.Extensions == nil {
		e.Extensions = map[string]json.RawMessage{}
	}
	b, _ := json.Marshal(v)
	e.Extensions[name] = b
}

// ExtensionsJSON is the extensions as one JSON object, keys sorted ("{}" for none).
func (e Event) ExtensionsJSON() string {
	if len(e.Extensions) == 0 {
		return "{}"
	}
	b, _ := json.Marshal(e.Extensions)
	return string(b)
}

// checkExtension names what is wrong with an extension attribute.
func checkExtension(name string, value json.RawMessage) error {
	if len(name) == 0 || len(name) > MaxExtensionNameLen {
		return &AttributeError{name, fmt.Sprintf("is not an accepted extension name: 1 to %d characters", MaxExtensionNameLen), RuleFormat}
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return &AttributeError{name, "is not an accepted extension name: lower-case letters and digits only", RuleFormat}
		}
	}
	if len(value) > MaxExtensionValueSize {
		return &AttributeError{name, fmt.Sprintf("is over %d bytes", MaxExtensionValueSize), RuleFormat}
	}
	v := bytes.TrimSpace(value)
	if len(v) == 0 || v[0] == '{' || v[0] == '[' || bytes.Equal(v, []byte("null")) {
		return &AttributeError{name, "must be a string, number or boolean", RuleFormat}
	}
	return nil
}

// ErrInvalid is matched (errors.Is) by every envelope error.
var ErrInvalid = errors.New("invalid event")

// AttributeError names an envelope attribute that is missing or wrong.
type AttributeError struct {
	Attribute string // CloudEvents attribute name, e.g. "source"
	Problem   string // what is wrong, e.g. "is required"
	Rule      string // RuleRequired or RuleFormat
}

// Rules an attribute can fail.
const (
	RuleRequired = "required" // missing or empty
	RuleFormat   = "format"   // present, but not as the attribute must be
	RuleRange    = "range"    // a time outside what the hub accepts
)

func (e *AttributeError) Error() string {
	return fmt.Sprintf("attribute %q %s", e.Attribute, e.Problem)
}

// Is makes errors.Is(err, ErrInvalid) true for attribute errors.
func (e *AttributeError) Is(target error) bool { return target == ErrInvalid }

// wire is the JSON shape with every attribute optional, so that a missing one
// is told apart from an empty one.
type wire struct {
	SpecVersion     *string
	ID              *string
	Source          *string
	Type            *string
	Time            *string
	DataContentType *string
	DataSchema      *string
	Subject         *string
	Data            json.RawMessage
	DataBase64      *string
	Extensions      map[string]json.RawMessage
}

// Parse decodes one event in the CloudEvents JSON format and checks its
// envelope. Errors are *AttributeError (or a JSON syntax error wrapped with
// ErrInvalid) and match ErrInvalid.
//
// Data and extension values are slices of b: b must not change afterwards.
func Parse(b []byte) (Event, error) {
	if !json.Valid(b) {
		var v any
		return Event{}, fmt.Errorf("%w: %s", ErrInvalid, jsonProblem(json.Unmarshal(b, &v)))
	}
	return parseValid(b)
}

// parseValid is Parse of b that json.Valid accepted.
func parseValid(b []byte) (Event, error) {
	var w wire
	var attrErr error
	err := members(b, func(key []byte, escaped bool, raw []byte) error {
		var dst **string
		switch string(key) { // no allocation: the compiler compares in place
		case "specversion":
			dst = &w.SpecVersion
		case "id":
			dst = &w.ID
		case "source":
			dst = &w.Source
		case "type":
			dst = &w.Type
		case "time":
			dst = &w.Time
		case "datacontenttype":
			dst = &w.DataContentType
		case "dataschema":
			dst = &w.DataSchema
		case "subject":
			dst = &w.Subject
		case "data_base64":
			dst = &w.DataBase64
		case "data":
			w.Data = raw
			return nil
		default:
			name := string(key)
			if escaped {
				name, _ = stringValue(append(append([]byte{'"'}, key...), '"'))
			}
			if w.Extensions == nil {
				w.Extensions = map[string]json.RawMessage{}
			}
			w.Extensions[name] = raw
			return nil
		}
		if bytes.Equal(raw, []byte("null")) {
			*dst = nil // as absent
			return nil
		}
		v, ok := stringValue(raw)
		if !ok {
			attrErr = &AttributeError{string(key), "must be a JSON string", RuleFormat}
			return attrErr
		}
		*dst = &v
		return nil
	})
	if attrErr != nil {
		return Event{}, attrErr
	}
	if err != nil {
		return Event{}, fmt.Errorf("%w: an event must be a JSON object", ErrInvalid)
	}
	return w.event()
}

// BatchTooLargeError is a batch of more events than allowed.
type BatchTooLargeError struct{ Events, Max int }

func (e *BatchTooLargeError) Error() string {
	return fmt.Sprintf("the batch has %d events, the limit is %d", e.Events, e.Max)
}

// ParseBatch decodes a JSON array of events (application/cloudevents-batch+json).
// A malformed array is one error; a bad event inside a well-formed array is
// reported per index in errs (nil where the event is good), so the good events
// beside it can still be accepted. A batch of more than maxEvents events
// (0: no limit) is a *BatchTooLargeError, found by the same scan that
// parses: past the limit the elements are counted, never decoded, so an
// array of a million numbers costs a scan, not a million errors.
func ParseBatch(b []byte, maxEvents int) (events []Event, errs []error, err error) {
	if !json.Valid(b) {
		var v []json.RawMessage
		return nil, nil, fmt.Errorf("%w: batch must be a JSON array of events: %s", ErrInvalid, jsonProblem(json.Unmarshal(b, &v)))
	}
	n := 0
	isArray := elements(b, func(raw []byte) {
		if n++; maxEvents > 0 && n > maxEvents {
			return
		}
		e, err := parseValid(raw)
		events, errs = append(events, e), append(errs, err)
	})
	if !isArray {
		var v []json.RawMessage
		return nil, nil, fmt.Errorf("%w: batch must be a JSON array of events: %s", ErrInvalid, jsonProblem(json.Unmarshal(b, &v)))
	}
	if maxEvents > 0 && n > maxEvents {
		return nil, nil, &BatchTooLargeError{Events: n, Max: maxEvents}
	}
	if events == nil {
		events, errs = []Event{}, []error{}
	}
	return events, errs, nil
}

func (w *wire) event() (Event, error) {
	var e Event
	req := func(name string, p *string) (string, error) {
		if p == nil {
			return "", &AttributeError{name, "is required", RuleRequired}
		}
		if *p == "" {
			return "", &AttributeError{name, "must not be empty", RuleRequired}
		}
		return *p, nil
	}
	var err error
	if e.SpecVersion, err = req("specversion", w.SpecVersion); err != nil {
		return Event{}, err
	}
	if e.SpecVersion != SpecVersion {
		return Event{}, &AttributeError{"specversion", fmt.Sprintf("must be %q, got %q", SpecVersion, e.SpecVersion), RuleFormat}
	}
	if e.ID, err = req("id", w.ID); err != nil {
		return Event{}, err
	}
	if err := bounded("id", e.ID, MaxIDLen); err != nil {
		return Event{}, err
	}
	if e.Source, err = req("source", w.Source); err != nil {
		return Event{}, err
	}
	if err := bounded("source", e.Source, MaxSourceLen); err != nil {
		return Event{}, err
	}
	if e.Type, err = req("type", w.Type); err != nil {
		return Event{}, err
	}
	if _, err := ParseType(e.Type); err != nil {
		return Event{}, err
	}
	ts, err := req("time", w.Time)
	if err != nil {
		return Event{}, err
	}
	if e.Time, err = time.Parse(time.RFC3339Nano, ts); err != nil {
		return Event{}, &AttributeError{"time", fmt.Sprintf("must be an RFC 3339 timestamp, got %q", ts), RuleFormat}
	}
	if w.DataContentType != nil {
		e.DataContentType = *w.DataContentType
		if !IsJSONContentType(e.DataContentType) {
			return Event{}, &AttributeError{"datacontenttype", fmt.Sprintf("must be %q, got %q", ContentTypeJSON, e.DataContentType), RuleFormat}
		}
	}
	if w.Subject != nil {
		if err := bounded("subject", *w.Subject, MaxSubjectLen); err != nil {
			return Event{}, err
		}
		e.Subject = *w.Subject
	}
	if w.DataSchema != nil {
		e.DataSchema = *w.DataSchema
	}
	if len(w.Extensions) > MaxExtensions {
		return Event{}, &AttributeError{"extensions", fmt.Sprintf("at most %d extension attributes are accepted, got %d", MaxExtensions, len(w.Extensions)), RuleFormat}
	}
	for name, v := range w.Extensions {
		if err := checkExtension(name, v); err != nil {
			return Event{}, err
		}
	}
	e.Extensions = w.Extensions
	if w.DataBase64 != nil {
		if len(w.Data) > 0 {
			return Event{}, &AttributeError{"data_base64", "must not be sent together with data", RuleFormat}
		}
		b, err := base64.StdEncoding.DecodeString(*w.DataBase64)
		if err != nil {
			return Event{}, &AttributeError{"data_base64", "must be base64: " + err.Error(), RuleFormat}
		}
		if !json.Valid(b) {
			return Event{}, &AttributeError{"data_base64", "must hold JSON data (datacontenttype application/json)", RuleFormat}
		}
		w.Data = b
	}
	if len(w.Data) == 0 || bytes.Equal(w.Data, []byte("null")) {
		return Event{}, &AttributeError{"data", "is required", RuleRequired}
	}
	e.Data, e.validData = w.Data, w.Data // valid JSON: all of b passed json.Valid, or data_base64 did
	return e, nil
}

// IsJSONContentType reports whether ct is application/json, with or without
// parameters such as charset.
func IsJSONContentType(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	return strings.EqualFold(strings.TrimSpace(mt), ContentTypeJSON)
}

// Validate checks an Event built in code (for example from binary-mode HTTP
// headers) with the same rules as Parse.
func (e Event) Validate() error {
	str := func(s string) *string { return &s }
	w := wire{
		SpecVersion: str(e.SpecVersion), ID: str(e.ID), Source: str(e.Source), Type: str(e.Type),
		Time: str(e.Time.Format(time.RFC3339Nano)), Data: e.Data,
	}
	if e.Time.IsZero() {
		w.Time = nil
	}
	if e.DataContentType != "" {
		w.DataContentType = str(e.DataContentType)
	}
	if e.DataSchema != "" {
		w.DataSchema = str(e.DataSchema)
	}
	if e.Subject != "" {
		w.Subject = str(e.Subject)
	}
	w.Extensions = e.Extensions
	_, err := w.event()
	return err
}

// Bounds of the identity attributes and the subject, in bytes: an identity
// is kept for as long as the log (JetStream's duplicate table, the raw
// tables' sort key), so it is short and printable.
const (
	MaxIDLen      = 256
	MaxSourceLen  = 512
	MaxSubjectLen = 512
)

// bounded checks an attribute is at most max bytes of UTF-8 with no control
// character (CR and LF among them: two ids differing only there would look
// alike in every log and header).
func bounded(name, v string, max int) error {
	if len(v) > max {
		return &AttributeError{name, fmt.Sprintf("is %d bytes, at most %d are accepted", len(v), max), RuleFormat}
	}
	if !utf8.ValidString(v) {
		return &AttributeError{name, "is not UTF-8", RuleFormat}
	}
	for i, r := range v {
		if r < 0x20 || (r >= 0x7f && r < 0xa0) {
			return &AttributeError{name, fmt.Sprintf("holds a control character (U+%04X) at byte %d", r, i), RuleFormat}
		}
	}
	return nil
}

// DedupID is the identity of an event, (source, id), as one fixed-length
// string for the Nats-Msg-Id header: the SHA-256 (hex) of
// "<len(source)>:<source>:<id>". The length prefix keeps ("a:b", "c") and
// ("a", "b:c") apart; the hash keeps what JetStream remembers for its
// dedup window at 64 bytes an event, whatever the identity's length.
func (e Event) DedupID() string {
	var stack [512]byte // most identities: no allocation but the result
	b := strconv.AppendInt(stack[:0], int64(len(e.Source)), 10)
	b = append(b, ':')
	b = append(b, e.Source...)
	b = append(b, ':')
	b = append(b, e.ID...)
	sum := sha256.Sum256(b)
	var out [2 * sha256.Size]byte
	hex.Encode(out[:], sum[:])
	return string(out[:])
}

func jsonProblem(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("malformed JSON at byte %d: %s", se.Offset, se.Error())
	case errors.As(err, &te):
		if te.Field != "" {
			return fmt.Sprintf("attribute %q must be a JSON %s, got %s", te.Field, jsonKind(te.Type.Kind().String()), te.Value)
		}
		return fmt.Sprintf("expected a JSON %s, got %s", jsonKind(te.Type.Kind().String()), te.Value)
	default:
		return "malformed JSON: " + err.Error()
	}
}

func jsonKind(goKind string) string {
	switch goKind {
	case "slice":
		return "array"
	case "struct", "map":
		return "object"
	case "ptr":
		return "string"
	}
	return goKind
}

// AppendJSON appends the event in the CloudEvents JSON format to dst, the
// same document json.Marshal gives but without re-scanning Data: Data must
// be valid JSON (as Parse and json.Marshal produce), and is copied as is.
// The gateway encodes every accepted event with it.
func (e *Event) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"specversion":`...)
	dst = appendString(dst, e.SpecVersion)
	dst = append(dst, `,"id":`...)
	dst = appendString(dst, e.ID)
	dst = append(dst, `,"source":`...)
	dst = appendString(dst, e.Source)
	dst = append(dst, `,"type":`...)
	dst = appendString(dst, e.Type)
	dst = append(dst, `,"time":"`...)
	dst = e.Time.AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, '"')
	if e.DataContentType != "" {
		dst = append(dst, `,"datacontenttype":`...)
		dst = appendString(dst, e.DataContentType)
	}
	if e.DataSchema != "" {
		dst = append(dst, `,"dataschema":`...)
		dst = appendString(dst, e.DataSchema)
	}
	if e.Subject != "" {
		dst = append(dst, `,"subject":`...)
		dst = appendString(dst, e.Subject)
	}
	if len(e.Extensions) > 0 {
		names := make([]string, 0, len(e.Extensions))
		for name := range e.Extensions {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			dst = append(dst, ',')
			dst = appendString(dst, name)
			dst = append(dst, ':')
			dst = append(dst, e.Extensions[name]...)
		}
	}
	dst = append(dst, `,"data":`...)
	if len(e.Data) == 0 {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, e.Data...)
	}
	return append(dst, '}')
}

// appendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD, as
// with encoding/json.
func appendString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			dst = append(dst, '\\', byte(r))
		case r < 0x20:
			switch r {
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[r>>4], hex[r&0xf])
			}
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			dst = utf8.AppendRune(dst, r)
		}
	}
	return append(dst, '"')
}
