package event

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// HeaderPrefix starts the header of each attribute in the binary content
// mode of the HTTP and NATS bindings (matched case-insensitively).
const HeaderPrefix = "ce-"

// FromBinary builds the event of a message in binary content mode: its
// attributes from ce-* headers (HTTP binding §3.1.3, NATS binding §3.1.3),
// each value unquoted and percent-decoded as both bindings require, data the
// body. contentType is the data's media type where the protocol carries it
// apart (HTTP's Content-Type); "" takes ce-datacontenttype. The event is
// checked with the same rules as Parse.
func FromBinary(h map[string][]string, contentType string, body []byte) (Event, error) {
	e := Event{Data: body}
	var ts string
	for k, vs := range h {
		if len(k) <= len(HeaderPrefix) || !strings.EqualFold(k[:len(HeaderPrefix)], HeaderPrefix) || len(vs) == 0 {
			continue
		}
		name := strings.ToLower(k[len(HeaderPrefix):])
		v, err := DecodeHeaderValue(vs[0])
		if err != nil {
			return e, &AttributeError{name, err.Error(), RuleFormat}
		}
		switch name {
		case "specversion":
			e.SpecVersion = v
		case "id":
			e.ID = v
		case "source":
			e.Source = v
		case "type":
			e.Type = v
		case "time":
			ts = v
		case "subject":
			e.Subject = v
		case "dataschema":
			e.DataSchema = v
		case "datacontenttype":
			if contentType == "" {
				contentType = v
			}
		case "data", "data_base64":
			return e, &AttributeError{name, "is not a header attribute: the data is the body", RuleFormat}
		default:
			e.SetExtension(name, v)
		}
	}
	if contentType == "" {
		contentType = ContentTypeJSON
	}
	e.DataContentType = contentType
	if ts != "" {
		t, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			return e, &AttributeError{Attribute: "time", Problem: fmt.Sprintf("must be an RFC 3339 timestamp, got %q", ts), Rule: RuleFormat}
		}
		e.Time = t
	}
	if err := e.Validate(); err != nil {
		return e, err
	}
	if !json.Valid(body) {
		return e, &AttributeError{Attribute: "data", Problem: "must be valid JSON", Rule: RuleFormat}
	}
	return e, nil
}

// DecodeHeaderValue undoes a binding's header encoding: a double-quoted
// string is unquoted (RFC 7230 §3.2.6), then one round of percent-decoding;
// the result must be UTF-8 (an overlong or broken sequence is refused).
func DecodeHeaderValue(v string) (string, error) {
	v = strings.TrimSpace(v)
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		var b strings.Builder
		for i := 1; i < len(v)-1; i++ {
			if v[i] == '\\' && i+1 < len(v)-1 {
				i++
			}
			b.WriteByte(v[i])
		}
		v = b.String()
	}
	if !strings.Contains(v, "%") {
		return v, nil
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] != '%' {
			b.WriteByte(v[i])
			continue
		}
		if i+2 >= len(v) {
			return "", fmt.Errorf("has a broken percent-encoding at byte %d", i)
		}
		n, err := strconv.ParseUint(v[i+1:i+3], 16, 8)
		if err != nil {
			return "", fmt.Errorf("has a broken percent-encoding at byte %d", i)
		}
		b.WriteByte(byte(n))
		i += 2
	}
	if !utf8.ValidString(b.String()) {
		return "", fmt.Errorf("is not UTF-8 once percent-decoded")
	}
	return b.String(), nil
}

// EncodeHeaderValue percent-encodes v for a binary-mode header: space,
// double quote, percent and everything outside printable ASCII.
func EncodeHeaderValue(v string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c <= ' ' || c == '"' || c == '%' || c >= 0x7f {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&0xf])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}
