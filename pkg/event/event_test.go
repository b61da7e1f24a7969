package event_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/iochub/iochub/pkg/event"
)

const good = `{"specversion":"1.0","id":"e-1","source":"/health/his/a","type":"vn.ioc.health.visit.v1","time":"2026-11-20T08:00:00+07:00","datacontenttype":"application/json","data":{"a":1}}`

func TestParse(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		wantAttr string // attribute named by the error; "" for a JSON error
		wantErr  bool
	}{
		{name: "good", in: good},
		{name: "malformed JSON", in: `{"specversion":`, wantErr: true},
		{name: "not an object", in: `[1,2]`, wantErr: true},
		{name: "missing id", in: strings.Replace(good, `"id":"e-1",`, "", 1), wantErr: true, wantAttr: "id"},
		{name: "empty source", in: strings.Replace(good, `"/health/his/a"`, `""`, 1), wantErr: true, wantAttr: "source"},
		{name: "missing time", in: strings.Replace(good, `"time":"2026-11-20T08:00:00+07:00",`, "", 1), wantErr: true, wantAttr: "time"},
		{name: "bad time", in: strings.Replace(good, `2026-11-20T08:00:00+07:00`, `20/11/2026`, 1), wantErr: true, wantAttr: "time"},
		{name: "wrong specversion", in: strings.Replace(good, `"1.0"`, `"0.3"`, 1), wantErr: true, wantAttr: "specversion"},
		{name: "bad type", in: strings.Replace(good, `vn.ioc.health.visit.v1`, `health.visit`, 1), wantErr: true, wantAttr: "type"},
		{name: "type v0", in: strings.Replace(good, `visit.v1`, `visit.v0`, 1), wantErr: true, wantAttr: "type"},
		{name: "xml data", in: strings.Replace(good, `application/json`, `application/xml`, 1), wantErr: true, wantAttr: "datacontenttype"},
		{name: "json with charset", in: strings.Replace(good, `application/json`, `application/json; charset=utf-8`, 1)},
		{name: "missing data", in: strings.Replace(good, `,"data":{"a":1}`, "", 1), wantErr: true, wantAttr: "data"},
		{name: "null data", in: strings.Replace(good, `{"a":1}`, `null`, 1), wantErr: true, wantAttr: "data"},
		{name: "id not a string", in: strings.Replace(good, `"e-1"`, `12`, 1), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := event.Parse([]byte(tt.in))
			if !tt.wantErr {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if e.ID != "e-1" || e.Source != "/health/his/a" || string(e.Data) != `{"a":1}` {
					t.Fatalf("Parse gave %+v", e)
				}
				return
			}
			if !errors.Is(err, event.ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			var ae *event.AttributeError
			if tt.wantAttr != "" && (!errors.As(err, &ae) || ae.Attribute != tt.wantAttr) {
				t.Fatalf("err = %v, want one naming attribute %q", err, tt.wantAttr)
			}
		})
	}
}

func TestParseBatchReportsPerEvent(t *testing.T) {
	evs, errs, err := event.ParseBatch([]byte("["+good+`,{"id":"x"},`+good+"]"), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 3 || errs[0] != nil || errs[1] == nil || errs[2] != nil {
		t.Fatalf("errs = %v", errs)
	}
	if _, _, err := event.ParseBatch([]byte(good), 0); !errors.Is(err, event.ErrInvalid) {
		t.Fatalf("an object as batch: err = %v", err)
	}
}

func TestTypeNames(t *testing.T) {
	tn, err := event.ParseType("vn.ioc.health.bed_occupancy.v2")
	if err != nil {
		t.Fatal(err)
	}
	for got, want := range map[string]string{
		tn.String(): "vn.ioc.health.bed_occupancy.v2", tn.Subject(): "ioc.health.bed_occupancy.v2",
		tn.DLQSubject(): "dlq.health.bed_occupancy.v2", tn.Table(): "health_bed_occupancy_v2",
		tn.SchemaPath(): "health/bed_occupancy.v2.json",
	} {
		if got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
	back, err := event.TypeFromSubject("dlq.health.bed_occupancy.v2")
	if err != nil || back != tn {
		t.Fatalf("TypeFromSubject = %v, %v", back, err)
	}
	for _, bad := range []string{"vn.ioc.Health.visit.v1", "vn.ioc.health.visit", "vn.ioc.health.visit.v01", "vn.ioc.a.b.c.v1", "vn.ioc.health.visit.1"} {
		if _, err := event.ParseType(bad); err == nil {
			t.Errorf("ParseType(%q) accepted", bad)
		}
	}
}

func TestDedupIDKeepsSourceAndIDApart(t *testing.T) {
	a := event.Event{Source: "a:b", ID: "c"}
	b := event.Event{Source: "a", ID: "b:c"}
	if a.DedupID() == b.DedupID() {
		t.Fatalf("same dedup id %q for different identities", a.DedupID())
	}
}

// TestDedupIDIsAFixedLengthHash (finding H5): whatever the identity's
// length, JetStream's dedup map keeps 64 bytes for it, and a direct
// producer can compute it as README says.
func TestDedupIDIsAFixedLengthHash(t *testing.T) {
	long := event.Event{Source: "/" + strings.Repeat("s", 511), ID: strings.Repeat("i", 256)}
	short := event.Event{Source: "/a", ID: "1"}
	sum := sha256.Sum256([]byte("2:/a:1"))
	if got, want := short.DedupID(), hex.EncodeToString(sum[:]); got != want {
		t.Fatalf("DedupID = %q, want SHA-256 of \"2:/a:1\" = %q", got, want)
	}
	if len(long.DedupID()) != 64 || len(short.DedupID()) != 64 {
		t.Fatalf("lengths %d and %d, want 64", len(long.DedupID()), len(short.DedupID()))
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte("[" + good + "]"))
	f.Add([]byte(`{"specversion":"1.0","data":null}`))
	f.Add([]byte(`{`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := event.Parse(b)
		if err != nil {
			if !errors.Is(err, event.ErrInvalid) {
				t.Fatalf("error %v does not match ErrInvalid", err)
			}
			return
		}
		if e.ID == "" || e.Source == "" || len(e.Data) == 0 {
			t.Fatalf("accepted an event without id, source or data: %+v", e)
		}
		if err := e.Validate(); err != nil {
			t.Fatalf("Parse accepted what Validate rejects: %v", err)
		}
		_, _, _ = event.ParseBatch(b, 0)
		sameAsMarshal(t, e)
	})
}

// sameAsMarshal checks AppendJSON against json.Marshal, and that Parse reads
// it back to the same event.
func sameAsMarshal(t *testing.T, e event.Event) {
	t.Helper()
	fast := e.AppendJSON(nil)
	std, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	var a, b any
	if err := json.Unmarshal(fast, &a); err != nil {
		t.Fatalf("AppendJSON wrote invalid JSON %q: %v", fast, err)
	}
	_ = json.Unmarshal(std, &b)
	// json.Marshal leaves out the extensions (they are no struct field):
	// each must be in AppendJSON's document as it was read.
	for name, raw := range e.Extensions {
		var v any
		_ = json.Unmarshal(raw, &v)
		if !reflect.DeepEqual(a.(map[string]any)[name], v) {
			t.Fatalf("AppendJSON %s lost extension %s=%s", fast, name, raw)
		}
		b.(map[string]any)[name] = v
	}
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("AppendJSON %s\njson.Marshal %s", fast, std)
	}
	back, err := event.Parse(fast)
	var ae *event.AttributeError
	if errors.As(err, &ae) && ae.Rule == event.RuleFormat && (ae.Attribute == "id" || ae.Attribute == "subject") {
		return // encoded right, and refused on the way in: a control character or broken UTF-8 in the identity
	}
	if err != nil {
		t.Fatalf("Parse(AppendJSON) = %v", err)
	}
	m := a.(map[string]any)
	if back.ID != m["id"] || back.Source != m["source"] || !back.Time.Equal(e.Time) || back.ExtensionsJSON() != e.ExtensionsJSON() {
		t.Fatalf("round trip changed the event: %+v -> %+v", e, back)
	}
}

func TestAppendJSONMatchesMarshal(t *testing.T) {
	ts := time.Date(2026, 11, 23, 7, 30, 0, 123456789, time.FixedZone("ICT", 7*3600))
	for _, e := range []event.Event{
		{SpecVersion: "1.0", ID: "a", Source: "s", Type: "vn.ioc.traffic.flow.v1", Time: ts, Data: json.RawMessage(`{"x":1}`)},
		{SpecVersion: "1.0", ID: "quote\"back\\slash\nnew\ttab\x01ctl", Source: "Sở Y tế <Hà Nội> & co", Type: "vn.ioc.health.visit.v1",
			Time: ts.UTC(), DataContentType: "application/json", Subject: "line\u2028sep\u2029", Data: json.RawMessage(`{ "a" : [1, 2] }`)},
		{SpecVersion: "1.0", ID: "bad utf8 \xff\xfe", Source: "s", Type: "vn.ioc.traffic.flow.v1", Time: ts, Data: json.RawMessage(`{}`)},
	} {
		sameAsMarshal(t, e)
	}
}

func ExampleParseType() {
	tn, _ := event.ParseType("vn.ioc.traffic.flow.v1")
	fmt.Println(tn.Subject(), tn.Table())
	// Output: ioc.traffic.flow.v1 traffic_flow_v1
}

// TestAttributeErrorCarriesItsRule: the attribute and the rule come as
// fields, for the gateway's problem document, not parsed from the message.
func TestAttributeErrorCarriesItsRule(t *testing.T) {
	const ok = `"specversion":"1.0","source":"/s","type":"vn.ioc.health.visit.v1","time":"2026-11-20T08:15:00+07:00","data":{}`
	tests := []struct {
		name, json, attr, rule string
	}{
		{"missing id", `{` + ok + `}`, "id", event.RuleRequired},
		{"empty id", `{"id":"",` + ok + `}`, "id", event.RuleRequired},
		{"bad time", `{"id":"1","specversion":"1.0","source":"/s","type":"vn.ioc.health.visit.v1","time":"yesterday","data":{}}`, "time", event.RuleFormat},
		{"bad type", `{"id":"1","specversion":"1.0","source":"/s","type":"health","time":"2026-11-20T08:15:00+07:00","data":{}}`, "type", event.RuleFormat},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := event.Parse([]byte(tt.json))
			var ae *event.AttributeError
			if !errors.As(err, &ae) || ae.Attribute != tt.attr || ae.Rule != tt.rule {
				t.Fatalf("err = %#v, want attribute %q rule %q", err, tt.attr, tt.rule)
			}
		})
	}
}

// TestIdentityIsBoundedAndPrintable (finding H5): an id, source or subject
// over its limit or holding a control character (CR/LF among them) is
// refused as the attribute's format, not stored.
func TestIdentityIsBoundedAndPrintable(t *testing.T) {
	base := func() map[string]any {
		return map[string]any{"specversion": "1.0", "id": "1", "source": "/s", "type": "vn.ioc.health.visit.v1",
			"time": "2026-11-20T08:15:00+07:00", "data": map[string]any{}}
	}
	tests := []struct {
		name, attr, value string
		ok                bool
	}{
		{"id at the limit", "id", strings.Repeat("a", event.MaxIDLen), true},
		{"id over the limit", "id", strings.Repeat("a", event.MaxIDLen+1), false},
		{"id with CR LF", "id", "visit-1\r\n", false},
		{"id with LF", "id", "visit-1\n", false},
		{"source over the limit", "source", "/" + strings.Repeat("s", event.MaxSourceLen), false},
		{"source with a tab", "source", "/health\thospital", false},
		{"subject over the limit", "subject", strings.Repeat("x", event.MaxSubjectLen+1), false},
		{"subject in Vietnamese", "subject", "Phường Suối Hoa", true},
		{"subject with a C1 control", "subject", "a\u0085b", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := base()
			m[tt.attr] = tt.value
			b, _ := json.Marshal(m)
			_, err := event.Parse(b)
			var ae *event.AttributeError
			switch {
			case tt.ok && err != nil:
				t.Fatalf("refused: %v", err)
			case !tt.ok && (!errors.As(err, &ae) || ae.Attribute != tt.attr || ae.Rule != event.RuleFormat):
				t.Fatalf("err = %v, want a format error of %s", err, tt.attr)
			}
		})
	}
}

// TestParseBatchStopsDecodingAtTheLimit: a batch over the limit is a
// *BatchTooLargeError naming its count; a batch at the limit parses.
func TestParseBatchStopsDecodingAtTheLimit(t *testing.T) {
	three := []byte("[" + good + "," + good + "," + good + "]")
	if evs, _, err := event.ParseBatch(three, 3); err != nil || len(evs) != 3 {
		t.Fatalf("at the limit: %d events, %v", len(evs), err)
	}
	var tl *event.BatchTooLargeError
	if _, _, err := event.ParseBatch(three, 2); !errors.As(err, &tl) || tl.Events != 3 || tl.Max != 2 {
		t.Fatalf("over the limit: %v", err)
	}
}
