package event_test

import (
	"bytes"
	"encoding/json"
	"io/fs"
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
	for _, seed := range []string{`{}`, `[]`, `{"a":1,"a":2}`, `"\ud800"`, "\"\xff\"", `{"k\u00e9y":[1,2.5e3,-0,true,false,null,{"x":""}]}`,
		` 1 `, `1 2`, `{"a":}`, `[1,]`, `"\u0000"`, `01`, `-`, `1e`, `{"a":"b"}x`} {
		f.Add([]byte(seed))
	}
	files, _ := fs.Glob(schemas.Examples, "*/examples/*.json")
	for _, file := range files {
		b, _ := fs.ReadFile(schemas.Examples, file)
		f.Add(b)
	}
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
