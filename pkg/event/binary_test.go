package event_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/iochub/iochub/pkg/event"
)

func TestDecodeHeaderValue(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
		wantErr        bool
	}{
		{"plain", "/health/his", "/health/his", false},
		{"percent-encoded Vietnamese", "Ph%C6%B0%E1%BB%9Dng%20Su%E1%BB%91i%20Hoa", "Phường Suối Hoa", false},
		{"lower-case hex", "Ph%c6%b0%e1%bb%9dng", "Phường", false},
		{"double-quoted, with an escape", `"a \"b\" c"`, `a "b" c`, false},
		{"unnecessarily encoded", "%41%42", "AB", false},
		{"broken escape", "abc%2", "", true},
		{"not hex", "abc%zz", "", true},
		{"overlong UTF-8", "%C0%A0", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := event.DecodeHeaderValue(tc.in)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Fatalf("DecodeHeaderValue(%q) = %q, %v; want %q, error %v", tc.in, got, err, tc.want, tc.wantErr)
			}
			if !tc.wantErr && !strings.HasPrefix(tc.in, `"`) {
				if back, _ := event.DecodeHeaderValue(event.EncodeHeaderValue(got)); back != got {
					t.Fatalf("encode/decode round trip of %q gave %q", got, back)
				}
			}
		})
	}
}

const base = `"specversion":"1.0","id":"e1","source":"/s","type":"vn.ioc.health.visit.v1","time":"2026-11-20T08:00:00Z"`

func TestParseExtensionsAndDataBase64(t *testing.T) {
	for _, tc := range []struct {
		name     string
		doc      string
		wantAttr string // "" for a valid event
	}{
		{"extensions kept", `{` + base + `,"traceparent":"00-ab-cd-01","count":3,"flag":true,"data":{}}`, ""},
		{"data_base64 with JSON", `{` + base + `,"data_base64":"eyJhIjoxfQ=="}`, ""},
		{"data_base64 not base64", `{` + base + `,"data_base64":"***"}`, "data_base64"},
		{"data_base64 not JSON", `{` + base + `,"data_base64":"aGVsbG8="}`, "data_base64"},
		{"data and data_base64", `{` + base + `,"data":{},"data_base64":"e30="}`, "data_base64"},
		{"extension name with capitals", `{` + base + `,"TraceParent":"x","data":{}}`, "TraceParent"},
		{"extension name too long", `{` + base + `,"abcdefghijklmnopqrstu":"x","data":{}}`, "abcdefghijklmnopqrstu"},
		{"extension value an object", `{` + base + `,"ext":{"a":1},"data":{}}`, "ext"},
		{"extension value too large", `{` + base + `,"ext":"` + strings.Repeat("x", 2000) + `","data":{}}`, "ext"},
		{"too many extensions", `{` + base + `,` + manyExtensions(17) + `,"data":{}}`, "extensions"},
		{"core attribute not a string", `{"specversion":"1.0","id":5,"source":"/s","type":"vn.ioc.health.visit.v1","time":"2026-11-20T08:00:00Z","data":{}}`, "id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := event.Parse([]byte(tc.doc))
			var ae *event.AttributeError
			switch {
			case tc.wantAttr == "" && err != nil:
				t.Fatalf("Parse: %v", err)
			case tc.wantAttr != "" && (!errors.As(err, &ae) || ae.Attribute != tc.wantAttr):
				t.Fatalf("Parse: err = %v, want an error naming %q", err, tc.wantAttr)
			case tc.wantAttr != "" && !errors.Is(err, event.ErrInvalid):
				t.Fatalf("Parse: %v does not match ErrInvalid", err)
			}
			if tc.wantAttr == "" {
				// Round trip: extensions and data survive AppendJSON.
				again, err := event.Parse(e.AppendJSON(nil))
				if err != nil || again.ExtensionsJSON() != e.ExtensionsJSON() || string(again.Data) != string(e.Data) {
					t.Fatalf("round trip: %v, %s / %s, %s / %s", err, again.ExtensionsJSON(), e.ExtensionsJSON(), again.Data, e.Data)
				}
			}
		})
	}
}

func manyExtensions(n int) string {
	var parts []string
	for i := range n {
		parts = append(parts, `"x`+string(rune('a'+i))+`":"v"`)
	}
	return strings.Join(parts, ",")
}

func TestFromBinary(t *testing.T) {
	h := map[string][]string{
		"Ce-Specversion": {"1.0"}, "Ce-Id": {"b1"}, "Ce-Source": {"/s"}, "Ce-Type": {"vn.ioc.health.visit.v1"},
		"Ce-Time": {"2026-11-20T08:00:00Z"}, "Ce-Subject": {"Ph%C6%B0%E1%BB%9Dng"}, "ce-traceparent": {"00-ab-cd-01"},
	}
	e, err := event.FromBinary(h, "application/json", []byte(`{"a":1}`))
	if err != nil {
		t.Fatal(err)
	}
	if e.Subject != "Phường" || e.Extension("traceparent") != "00-ab-cd-01" || e.ID != "b1" {
		t.Fatalf("event %+v", e)
	}
	h["Ce-Id"] = []string{"bad%zz"}
	if _, err := event.FromBinary(h, "application/json", []byte(`{}`)); !isAttributeError(err, "id") || !strings.Contains(err.Error(), "percent") {
		t.Fatalf("a broken percent-encoding: %v", err)
	}
	h["Ce-Id"] = []string{"b2"}
	if _, err := event.FromBinary(h, "application/json", []byte(`not json`)); err == nil {
		t.Fatal("data that is not JSON was accepted")
	}
}

// isAttributeError reports an *event.AttributeError about attr.
func isAttributeError(err error, attr string) bool {
	var ae *event.AttributeError
	return errors.As(err, &ae) && ae.Attribute == attr
}
