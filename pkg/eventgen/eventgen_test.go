package eventgen_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/iochub/iochub/pkg/event"
	"github.com/iochub/iochub/pkg/eventgen"
	"github.com/iochub/iochub/pkg/schema"
	"github.com/iochub/iochub/schemas"
)

func TestEveryGeneratedEventIsValid(t *testing.T) {
	reg, err := schema.Load(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	g := eventgen.New(1, "gen")
	seen := map[string]int{}
	for i := 0; i < 3000; i++ {
		e := g.Next()
		b, _ := json.Marshal(e)
		if _, err := event.Parse(b); err != nil {
			t.Fatalf("envelope: %v", err)
		}
		ty, err := reg.Lookup(e.Type)
		if err != nil {
			t.Fatal(err)
		}
		d, _ := schema.DecodeData(e.Data)
		if err := ty.Validate(d); err != nil {
			t.Fatalf("%s: %v\n%s", e.Type, err, e.Data)
		}
		seen[e.Type]++
	}
	if len(seen) != len(eventgen.Mix) {
		t.Fatalf("mix covered %v", seen)
	}
}

// TestDemoIsValidAndDeterministic: every demo event passes its schema, and
// cutting a period in two gives exactly the events of the whole.
func TestDemoIsValidAndDeterministic(t *testing.T) {
	reg, err := schema.Load(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	loc, _ := time.LoadLocation("Asia/Ho_Chi_Minh")
	d := &eventgen.Demo{Location: loc}
	from := time.Date(2026, 11, 2, 0, 0, 0, 0, loc)
	mid, to := from.Add(30*time.Hour+17*time.Minute), from.Add(48*time.Hour)
	whole := d.Between(from, to)
	parts := append(d.Between(from, mid), d.Between(mid, to)...)
	if len(whole) != len(parts) || len(whole) < 1000 {
		t.Fatalf("whole period: %d events, in two parts: %d", len(whole), len(parts))
	}
	ids := map[string]bool{}
	types := map[string]int{}
	for _, e := range parts {
		ids[e.Source+" "+e.ID] = true
	}
	for _, e := range whole {
		if !ids[e.Source+" "+e.ID] {
			t.Fatalf("%s %s only in the whole period", e.Source, e.ID)
		}
		ty, err := reg.Lookup(e.Type)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := schema.DecodeData(e.Data)
		if err := ty.Validate(data); err != nil {
			t.Fatalf("%s: %v", e.ID, err)
		}
		types[e.Type]++
	}
	if len(types) != 7 {
		t.Errorf("demo covers %d types: %v", len(types), types)
	}
}
