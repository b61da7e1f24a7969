package schema_test

import (
	"encoding/json"
	"errors"
	"io/fs"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/iochub/iochub/pkg/event"
	"github.com/iochub/iochub/pkg/schema"
	"github.com/iochub/iochub/schemas"
)

// V1Types is every type of the domain model in DESIGN.md.
var v1Types = []string{
	"vn.ioc.education.attendance.v1", "vn.ioc.feedback.report.v1", "vn.ioc.health.bed_occupancy.v1",
	"vn.ioc.health.visit.v1", "vn.ioc.publicservice.dossier.v1", "vn.ioc.traffic.flow.v1", "vn.ioc.traffic.incident.v1",
}

func load(t testing.TB) *schema.Registry {
	t.Helper()
	r, err := schema.Load(schemas.FS)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return r
}

func TestEveryDomainTypeHasASchema(t *testing.T) {
	r := load(t)
	var got []string
	for _, ty := range r.Types() {
		got = append(got, ty.Name.String())
	}
	if !slices.Equal(got, v1Types) {
		t.Fatalf("types = %v, want %v", got, v1Types)
	}
}

func readExamples[T any](t *testing.T, glob string) map[string][]T {
	t.Helper()
	files, err := fs.Glob(schemas.Examples, glob)
	if err != nil || len(files) != len(v1Types) {
		t.Fatalf("examples %s: %v files, err %v", glob, len(files), err)
	}
	out := map[string][]T{}
	for _, f := range files {
		b, _ := fs.ReadFile(schemas.Examples, f)
		var v []T
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out[f] = v
	}
	return out
}

func validate(t *testing.T, r *schema.Registry, e event.Event) error {
	t.Helper()
	ty, err := r.Lookup(e.Type)
	if err != nil {
		t.Fatalf("Lookup(%s): %v", e.Type, err)
	}
	data, err := schema.DecodeData(e.Data)
	if err != nil {
		t.Fatal(err)
	}
	return ty.Validate(data)
}

func TestValidExamplesPass(t *testing.T) {
	r := load(t)
	for file, evs := range readExamples[json.RawMessage](t, "*/examples/*.valid.json") {
		for _, raw := range evs {
			e, err := event.Parse(raw)
			if err != nil {
				t.Fatalf("%s: envelope: %v", file, err)
			}
			if err := validate(t, r, e); err != nil {
				t.Errorf("%s %s: %v", file, e.ID, err)
			}
		}
	}
}

func TestInvalidExamplesNamePointerAndRule(t *testing.T) {
	type want struct {
		ID string `json:"id"`
		schema.Violation
	}
	r := load(t)
	wants := readExamples[want](t, "*/examples/*.invalid.want.json")
	for file, evs := range readExamples[json.RawMessage](t, "*/examples/*.invalid.json") {
		byID := map[string]schema.Violation{}
		for _, w := range wants[strings.TrimSuffix(file, ".json")+".want.json"] {
			byID[w.ID] = w.Violation
		}
		if len(byID) != len(evs) {
			t.Fatalf("%s: %d events, %d expectations in its .want.json", file, len(evs), len(byID))
		}
		for _, raw := range evs {
			e, err := event.Parse(raw)
			if err != nil {
				t.Fatalf("%s: envelope: %v", file, err)
			}
			w, ok := byID[e.ID]
			if !ok {
				t.Fatalf("%s %s: no expectation in its .want.json", file, e.ID)
			}
			c := struct{ Want schema.Violation }{w}
			err = validate(t, r, e)
			var ve *schema.ValidationError
			if !errors.As(err, &ve) || !errors.Is(err, schema.ErrInvalidData) {
				t.Errorf("%s %s: err = %v, want a ValidationError", file, e.ID, err)
				continue
			}
			found := slices.ContainsFunc(ve.Violations, func(v schema.Violation) bool {
				return v.Pointer == c.Want.Pointer && v.Rule == c.Want.Rule && v.Message != ""
			})
			if !found {
				t.Errorf("%s %s: violations %+v, want pointer %q rule %q", file, e.ID, ve.Violations, c.Want.Pointer, c.Want.Rule)
			}
		}
	}
}

func TestUnknownType(t *testing.T) {
	_, err := load(t).Lookup("vn.ioc.health.visit.v9")
	if !errors.Is(err, schema.ErrUnknownType) {
		t.Fatalf("err = %v", err)
	}
}

func TestLoadRejects(t *testing.T) {
	tests := []struct {
		name string
		fsys fstest.MapFS
	}{
		{"remote ref", fstest.MapFS{"a/b.v1.json": {Data: []byte(`{"type":"object","properties":{"x":{"$ref":"https://example.org/x.json"}}}`)}}},
		{"bad x-subject", fstest.MapFS{"a/b.v1.json": {Data: []byte(`{"type":"object","x-subject":{"pattern":"(["},"properties":{"x":{"type":"string"}}}`)}}},
		{"x-title without en", fstest.MapFS{"a/b.v1.json": {Data: []byte(`{"type":"object","x-title":{"vi":"Lượt khám"},"properties":{"x":{"type":"string"}}}`)}}},
		{"x-title not an object", fstest.MapFS{"a/b.v1.json": {Data: []byte(`{"type":"object","x-title":"Lượt khám","properties":{"x":{"type":"string"}}}`)}}},
		{"x-title with another language", fstest.MapFS{"a/b.v1.json": {Data: []byte(`{"type":"object","x-title":{"vi":"a","en":"b","fr":"c"},"properties":{"x":{"type":"string"}}}`)}}},
		{"bad x-pii", fstest.MapFS{"a/b.v1.json": {Data: []byte(`{"type":"object","properties":{"x":{"type":"string","x-pii":"encrypt"}}}`)}}},
		{"bad file name", fstest.MapFS{"a/b.json": {Data: []byte(`{"type":"object","properties":{"x":{"type":"string"}}}`)}}},
		{"array property", fstest.MapFS{"a/b.v1.json": {Data: []byte(`{"type":"object","properties":{"x":{"type":"array"}}}`)}}},
		{"not json", fstest.MapFS{"a/b.v1.json": {Data: []byte(`{`)}}},
		{"empty", fstest.MapFS{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := schema.Load(tt.fsys); err == nil {
				t.Fatal("Load accepted it")
			}
		})
	}
}

func TestColumnsAndPII(t *testing.T) {
	ty, err := load(t).Lookup("vn.ioc.feedback.report.v1")
	if err != nil {
		t.Fatal(err)
	}
	cols := map[string]schema.Column{}
	for _, c := range ty.Columns {
		cols[c.Name] = c
	}
	if _, ok := cols["reporter_name"]; ok {
		t.Error("a dropped personal-data field has a column")
	}
	if c := cols["reporter_phone"]; c.PII != schema.PIIPseudonymize || c.Kind != schema.KindString || !c.Nullable {
		t.Errorf("reporter_phone = %+v", c)
	}
	if c := cols["location_lat"]; c.Kind != schema.KindFloat || !c.Nullable || !slices.Equal(c.Path, []string{"location", "lat"}) {
		t.Errorf("location_lat = %+v", c)
	}
	if c := cols["status_time"]; c.Kind != schema.KindDateTime || c.Nullable {
		t.Errorf("status_time = %+v", c)
	}
	if c := cols["satisfaction"]; c.Kind != schema.KindInt || !c.Nullable {
		t.Errorf("satisfaction = %+v", c)
	}
	if len(ty.PII) != 2 {
		t.Errorf("PII = %+v", ty.PII)
	}
}

// FuzzValidate feeds arbitrary data to every type: validation must answer
// with nil or a ValidationError, never panic or fail otherwise.
func FuzzValidate(f *testing.F) {
	r := load(f)
	files, _ := fs.Glob(schemas.Examples, "*/examples/*.valid.json")
	for _, file := range files {
		b, _ := fs.ReadFile(schemas.Examples, file)
		var evs []event.Event
		_ = json.Unmarshal(b, &evs)
		for _, e := range evs {
			f.Add(e.Type, []byte(e.Data))
		}
	}
	f.Add("vn.ioc.health.visit.v1", []byte(`{"kind":1e400}`))
	f.Fuzz(func(t *testing.T, typ string, data []byte) {
		ty, err := r.Lookup(typ)
		if err != nil {
			if !errors.Is(err, schema.ErrUnknownType) {
				t.Fatal(err)
			}
			return
		}
		v, err := schema.DecodeData(data)
		if err != nil {
			return
		}
		if err := ty.Validate(v); err != nil && !errors.Is(err, schema.ErrInvalidData) {
			t.Fatalf("Validate: %v", err)
		}
	})
}
