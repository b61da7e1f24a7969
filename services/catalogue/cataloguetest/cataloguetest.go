// Package cataloguetest validates the hub's OpenAPI and AsyncAPI documents
// with the specifications' own JSON Schemas (README.md says where each
// comes from), for tests.
package cataloguetest

import (
	"bytes"
	"compress/gzip"
	"embed"
	"encoding/json"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

//go:embed *.json *.json.gz
var specs embed.FS

// Spec files.
const (
	OpenAPI31  = "openapi-3.1.schema.json"
	AsyncAPI30 = "asyncapi-3.0.0.schema.json.gz"
)

// Validate fails the test unless doc is valid against the specification
// schema file (OpenAPI31 or AsyncAPI30).
func Validate(t testing.TB, file string, doc []byte) {
	t.Helper()
	b, err := specs.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if zr, err := gzip.NewReader(bytes.NewReader(b)); err == nil {
		if b, err = io.ReadAll(zr); err != nil {
			t.Fatal(err)
		}
	}
	spec, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("file:///spec/"+file, spec); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("file:///spec/" + file)
	if err != nil {
		t.Fatalf("compile %s: %v", file, err)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		t.Fatalf("the document is not JSON: %v", err)
	}
	if err := s.Validate(v); err != nil {
		t.Fatalf("not valid against %s: %v", file, err)
	}
}

// Operations lists "METHOD path" of every operation of an OpenAPI
// document, sorted: the form of an http.ServeMux pattern.
func Operations(t testing.TB, doc []byte) []string {
	t.Helper()
	var d struct {
		Paths map[string]map[string]json.RawMessage
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		t.Fatal(err)
	}
	var out []string
	for path, ops := range d.Paths {
		for method := range ops {
			out = append(out, strings.ToUpper(method)+" "+path)
		}
	}
	slices.Sort(out)
	return out
}
