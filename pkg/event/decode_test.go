package event_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/iochub/iochub/pkg/event"
	"github.com/iochub/iochub/schemas"
)

// referenceDecode is encoding/json into an any with UseNumber, the whole
// input one value.
func referenceDecode(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := d.Token(); err == nil || !json.Valid(b) {
		return nil, &json.SyntaxError{}
	}
	return v, nil
}

// FuzzDecodeValue: DecodeValue accepts exactly what encoding/json accepts
// and gives the same value (numbers as written, invalid UTF-8 replaced,
// the last of duplicate keys).
func FuzzDecodeValue(f *testing.F) {
	seed(f, `{}`, `[]`, `{"a":1,"a":2}`, `"\ud800"`, "\"\xff\"", `{"k\u00e9y":[1,2.5e3,-0,true,false,null,{"x":""}]}`,
		` 1 `, `1 2`, `{"a":}`, `[1,]`, `"\u0000"`, `01`, `-`, `1e`, `{"a":"b"}x`)
	f.Fuzz(func(t *testing.T, b []byte) {
		want, wantErr := referenceDecode(b)
		got, err := event.DecodeValue(b)
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("%q: err = %v, encoding/json: %v", b, err, wantErr)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: got %#v, encoding/json %#v", b, got, want)
		}
	})
}

// TestDecodedDataChecksReplacedData: data Parse read decodes without a
// second check; data replaced afterwards is checked again, so broken JSON
// is an error, never a misread.
func TestDecodedDataChecksReplacedData(t *testing.T) {
	e, err := event.Parse([]byte(`{"specversion":"1.0","id":"1","source":"/s","type":"vn.ioc.health.visit.v1","time":"2026-11-20T08:00:00Z","data":{"a":[1,"x",{"b":null}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.DecodedData()
	want, _ := referenceDecode(e.Data)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("DecodedData = %#v, %v; want %#v", got, err, want)
	}
	for _, bad := range []string{`{"a":`, `{"a":1}}`, `[1,,2]`, `"x`} {
		e.Data = []byte(bad)
		if v, err := e.DecodedData(); err == nil {
			t.Fatalf("replaced data %s decoded to %#v, want an error", bad, v)
		}
	}
	e.Data = []byte(`{"z":2}`)
	if v, err := e.DecodedData(); err != nil || !reflect.DeepEqual(v, map[string]any{"z": json.Number("2")}) {
		t.Fatalf("replaced data: %#v, %v", v, err)
	}
}

// FuzzAppendValue: what AppendValue writes of a decoded value is valid
// JSON that decodes to the same value, byte for byte what encoding/json
// would mean (its keys sorted the same way).
func FuzzAppendValue(f *testing.F) {
	seed(f, `{"b":1,"a":[true,null,"x<&>\u2028"],"c":{"d":-0.5e3}}`, `"\u0001\b\f\t"`, "\"\xff\"", `[]`, `{}`, `12.0`)
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := event.DecodeValue(b)
		if err != nil {
			return
		}
		out, err := event.AppendValue(nil, v)
		if err != nil {
			t.Fatalf("%q: %v", b, err)
		}
		back, err := event.DecodeValue(out)
		if err != nil || !reflect.DeepEqual(back, v) {
			t.Fatalf("%q written as %q, read back as %#v (%v)", b, out, back, err)
		}
		std, _ := json.Marshal(v)
		var a, s any
		_ = json.Unmarshal(out, &a)
		_ = json.Unmarshal(std, &s)
		if !reflect.DeepEqual(a, s) {
			t.Fatalf("%q: AppendValue %q, encoding/json %q", b, out, std)
		}
	})
}

// seed adds the given inputs and every example body (schemas.ExampleBodies):
// whole files and each event alone.
func seed(f *testing.F, inputs ...string) {
	for _, in := range inputs {
		f.Add([]byte(in))
	}
	batches, events := schemas.ExampleBodies()
	for _, b := range append(batches, events...) {
		f.Add(b)
	}
}

// TestAppendValueRefusesWhatIsNoNumber: a json.Number holding anything but
// one number is an error, never written into an event's data.
func TestAppendValueRefusesWhatIsNoNumber(t *testing.T) {
	for _, n := range []string{"", "-", "01", "1 2", `"1"`, "true", "{}", "1e", " 1"} {
		if out, err := event.AppendValue(nil, map[string]any{"n": json.Number(n)}); err == nil {
			t.Errorf("json.Number(%q) written as %s, want an error", n, out)
		}
	}
	if out, err := event.AppendValue(nil, []any{json.Number("-1.5e3"), json.Number("0")}); err != nil || string(out) != "[-1.5e3,0]" {
		t.Fatalf("numbers: %s, %v", out, err)
	}
}
