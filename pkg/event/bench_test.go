package event_test

import (
	"encoding/json"
	"io/fs"
	"testing"

	"github.com/iochub/iochub/pkg/event"
	"github.com/iochub/iochub/schemas"
)

// BenchmarkParse is the envelope's cost per event, on a batch of the
// examples as the gateway receives it.
func BenchmarkParse(b *testing.B) {
	raw, err := fs.ReadFile(schemas.Examples, "feedback/examples/report.v1.valid.json")
	if err != nil {
		b.Fatal(err)
	}
	var evs []json.RawMessage
	if err := json.Unmarshal(raw, &evs); err != nil {
		b.Fatal(err)
	}
	b.Run("one", func(b *testing.B) {
		b.SetBytes(int64(len(evs[0])))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := event.Parse(evs[0]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("batch", func(b *testing.B) {
		b.SetBytes(int64(len(raw)))
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := event.ParseBatch(raw, 0); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkDedupID is the identity hash every published event carries.
func BenchmarkDedupID(b *testing.B) {
	e := event.Event{Source: "/health/his/27-bvdk-bac-ninh", ID: "visit-2026-11-20-000123"}
	b.ReportAllocs()
	for b.Loop() {
		_ = e.DedupID()
	}
}
