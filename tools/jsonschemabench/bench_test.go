// Package jsonschemabench compares santhosh-tekuri/jsonschema v5 and v6 on
// iochub's own schemas and example events: the measurement behind
// docs/decisions/0001-jsonschema-v6.md. Run with `make bench-jsonschema`.
package jsonschemabench

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"strings"
	"testing"

	"github.com/iochub/iochub/schemas"
	v5 "github.com/santhosh-tekuri/jsonschema/v5"
	v6 "github.com/santhosh-tekuri/jsonschema/v6"
)

// sample is one valid example event of a type: its schema file and data.
type sample struct {
	name   string
	schema string // path in schemas.FS
	data   []byte // the event's data member
}

func samples(t testing.TB) []sample {
	t.Helper()
	var out []sample
	err := fs.WalkDir(schemas.Examples, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".valid.json") {
			return err
		}
		b, err := fs.ReadFile(schemas.Examples, path)
		if err != nil {
			return err
		}
		var evs []struct {
			Data json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(b, &evs); err != nil {
			return err
		}
		// health/examples/visit.v1.valid.json -> health/visit.v1.json
		sector, file, _ := strings.Cut(path, "/examples/")
		out = append(out, sample{name: strings.TrimSuffix(file, ".valid.json"), schema: sector + "/" + strings.TrimSuffix(file, ".valid.json") + ".json", data: evs[0].Data})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 7 {
		t.Fatalf("found %d example types, want 7", len(out))
	}
	return out
}

func compileV5(t testing.TB, path string) *v5.Schema {
	t.Helper()
	b, err := fs.ReadFile(schemas.FS, path)
	if err != nil {
		t.Fatal(err)
	}
	c := v5.NewCompiler()
	c.Draft = v5.Draft2020
	c.AssertFormat = true
	if err := c.AddResource("mem://"+path, bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("mem://" + path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func compileV6(t testing.TB, path string) *v6.Schema {
	t.Helper()
	b, err := fs.ReadFile(schemas.FS, path)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := v6.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	c := v6.NewCompiler()
	c.DefaultDraft(v6.Draft2020)
	c.AssertFormat()
	if err := c.AddResource("mem://"+path, doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("mem://" + path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// decodeV5 is how v5 wants instances: encoding/json with UseNumber.
func decodeV5(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	return v, d.Decode(&v)
}

// TestBothAgree keeps the comparison honest: both versions accept every
// valid example, so the benchmark times the same work.
func TestBothAgree(t *testing.T) {
	for _, s := range samples(t) {
		doc5, err := decodeV5(s.data)
		if err != nil {
			t.Fatal(err)
		}
		if err := compileV5(t, s.schema).Validate(doc5); err != nil {
			t.Errorf("v5 rejects %s: %v", s.name, err)
		}
		doc6, err := v6.UnmarshalJSON(bytes.NewReader(s.data))
		if err != nil {
			t.Fatal(err)
		}
		if err := compileV6(t, s.schema).Validate(doc6); err != nil {
			t.Errorf("v6 rejects %s: %v", s.name, err)
		}
	}
}

// Each benchmark decodes the data and validates it, as the gateway does per event.
func BenchmarkValidate(b *testing.B) {
	for _, s := range samples(b) {
		s5, s6 := compileV5(b, s.schema), compileV6(b, s.schema)
		b.Run(s.name+"/v5", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				doc, err := decodeV5(s.data)
				if err != nil {
					b.Fatal(err)
				}
				if err := s5.Validate(doc); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(s.name+"/v6", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				doc, err := v6.UnmarshalJSON(bytes.NewReader(s.data))
				if err != nil {
					b.Fatal(err)
				}
				if err := s6.Validate(doc); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
