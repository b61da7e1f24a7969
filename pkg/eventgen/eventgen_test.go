package eventgen_test

import (
	"encoding/json"
	"testing"

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
