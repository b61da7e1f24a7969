package schema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/iochub/iochub/internal/schemagen/gen"
	"github.com/iochub/iochub/schemas"
)

// verdict is what a validator says of data: the sorted pointer and rule
// of every violation, or nothing.
func verdict(vs []Violation) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v.Pointer + " " + v.Rule
	}
	slices.Sort(out)
	return out
}

// disagreement compares the compiled validator of t with the reference on
// data; "" when they agree on the verdict, every pointer and every rule.
func disagreement(t *Type, data any) string {
	fast := verdict(t.fast(data))
	var ref []string
	if err := t.validateReference(data); err != nil {
		var ve *ValidationError
		if !errors.As(err, &ve) {
			return fmt.Sprintf("reference: %v", err)
		}
		ref = verdict(ve.Violations)
	}
	if !slices.Equal(fast, ref) {
		b, _ := json.Marshal(data)
		return fmt.Sprintf("%s on %s: compiled %q, reference %q", t.Name, b, fast, ref)
	}
	return ""
}

func loadCompiled(t testing.TB) *Registry {
	t.Helper()
	r, err := Load(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	for _, ty := range r.Types() {
		if !ty.Compiled() {
			t.Fatalf("%s has no compiled validator for its schema: run go generate ./pkg/schema", ty.Name)
		}
	}
	return r
}

// exampleData is the data of every example event, valid and invalid, by type.
func exampleData(t testing.TB) map[string][][]byte {
	t.Helper()
	out := map[string][][]byte{}
	files, _ := fs.Glob(schemas.Examples, "*/examples/*.v*.*valid.json")
	for _, f := range files {
		b, _ := fs.ReadFile(schemas.Examples, f)
		var evs []struct {
			Type string          `json:"type"`
			Data json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(b, &evs); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, e := range evs {
			if len(e.Data) > 0 {
				out[e.Type] = append(out[e.Type], e.Data)
			}
		}
	}
	if len(out) == 0 {
		t.Fatal("no example data")
	}
	return out
}

// odd are values every property is set to in turn.
var odd = []string{`null`, `true`, `0`, `-1`, `12.0`, `1.5`, `1e400`, `-1e-400`, `10080`, `10081`, `100000`, `100001`,
	`9007199254740993`, `""`, `"x"`, `"27"`, `"27256"`, `"2725"`, `"J06.9"`, `"outpatient"`, `"Outpatient"`,
	`"2026-11-20T08:10:00+07:00"`, `"2026-11-20t08:10:00z"`, `"2026-11-20T23:59:60Z"`, `"2026-11-20T08:59:60+09:00"`,
	`"2026-02-30T08:10:00Z"`, `"2026-11-20T08:10:00.Z"`, `"2026-11-20T08:10:00+0700"`, `"2026-11-20 08:10:00Z"`,
	`"2026-11-20"`, `"2026-13-01"`, `"` + strings.Repeat("ệ", 64) + `"`, `"` + strings.Repeat("a", 65) + `"`,
	`[]`, `{}`, `{"a":1}`}

// TestCompiledAgreesWithTheReference (issue #13): every example's data, and
// each one with every property removed, set to each odd value, or joined
// by an unknown property, gets the same verdict, pointers and rules from
// the generated validator as from santhosh-tekuri/jsonschema.
func TestCompiledAgreesWithTheReference(t *testing.T) {
	r := loadCompiled(t)
	checked := 0
	for typ, datas := range exampleData(t) {
		ty, err := r.Lookup(typ)
		if err != nil {
			t.Fatal(err)
		}
		check := func(raw []byte) {
			t.Helper()
			data, err := DecodeData(raw)
			if err != nil {
				t.Fatalf("%s: %v", raw, err)
			}
			checked++
			if d := disagreement(ty, data); d != "" {
				t.Error(d)
			}
		}
		for _, raw := range datas {
			check(raw)
			var obj map[string]json.RawMessage
			if json.Unmarshal(raw, &obj) != nil {
				continue // not an object: checked as it is
			}
			for k := range obj {
				without := map[string]json.RawMessage{}
				for k2, v := range obj {
					if k2 != k {
						without[k2] = v
					}
				}
				b, _ := json.Marshal(without)
				check(b)
				for _, v := range odd {
					with := map[string]json.RawMessage{}
					for k2, v2 := range obj {
						with[k2] = v2
					}
					with[k] = json.RawMessage(v)
					b, _ := json.Marshal(with)
					check(b)
				}
			}
			obj["unknown_field"] = json.RawMessage(`1`)
			b, _ := json.Marshal(obj)
			check(b)
		}
		for _, v := range odd {
			check([]byte(v))
		}
	}
	t.Logf("%d documents, the same verdict from both", checked)
}

// TestGeneratedCodeIsCurrent: zz_compiled.go is what the generator makes
// of schemas/ now (go generate ./pkg/schema after changing a schema).
func TestGeneratedCodeIsCurrent(t *testing.T) {
	want, err := gen.Generate(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("zz_compiled.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("pkg/schema/zz_compiled.go is not what internal/schemagen makes of schemas/: run go generate ./pkg/schema")
	}
}

// TestGeneratorRefusesUnknownKeywords: a schema using a keyword the
// compiler does not know fails generation, naming the file, the location
// and the keyword.
func TestGeneratorRefusesUnknownKeywords(t *testing.T) {
	fsys := fstestMap{"health/x.v1.json": `{"type":"object","properties":{"n":{"type":"integer","multipleOf":5}}}`}
	_, err := gen.Generate(fsys.fs())
	if err == nil || !strings.Contains(err.Error(), "health/x.v1.json") || !strings.Contains(err.Error(), "#/properties/n") || !strings.Contains(err.Error(), `"multipleOf"`) {
		t.Fatalf("err = %v, want one naming the file, #/properties/n and multipleOf", err)
	}
}

// FuzzCompiledAgreesWithTheReference: any JSON document, as the data of
// any type, gets the same verdict, pointers and rules from both.
func FuzzCompiledAgreesWithTheReference(f *testing.F) {
	r := loadCompiled(f)
	types := r.Types()
	for typ, datas := range exampleData(f) {
		for i, ty := range types {
			if ty.Name.String() == typ {
				for _, d := range datas {
					f.Add(uint8(i), d)
				}
			}
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, raw []byte) {
		data, err := DecodeData(raw)
		if err != nil {
			return
		}
		if d := disagreement(types[int(which)%len(types)], data); d != "" {
			t.Error(d)
		}
	})
}

// fstestMap is a file system of schema files for the generator.
type fstestMap map[string]string

func (m fstestMap) fs() fs.FS {
	out := fstest.MapFS{}
	for k, v := range m {
		out[k] = &fstest.MapFile{Data: []byte(v)}
	}
	return out
}

// BenchmarkValidate is one valid event's data checked by the reference
// validator and by the generated code, for every type.
func BenchmarkValidate(b *testing.B) {
	r := loadCompiled(b)
	datas := exampleData(b)
	for _, ty := range r.Types() {
		var data any
		for _, raw := range datas[ty.Name.String()] { // the first valid one
			d, err := DecodeData(raw)
			if err == nil && ty.validateReference(d) == nil {
				data = d
				break
			}
		}
		if data == nil {
			b.Fatalf("no valid example of %s", ty.Name)
		}
		b.Run(ty.Name.Name+"/reference", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = ty.validateReference(data)
			}
		})
		b.Run(ty.Name.Name+"/compiled", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = ty.Validate(data)
			}
		})
	}
}
