package event_test

import (
	"bytes"
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

// BenchmarkDecodeValue is an event's data decoded by DecodeValue and by
// encoding/json with UseNumber, as schema.DecodeData did before.
func BenchmarkDecodeValue(b *testing.B) {
	raw, err := fs.ReadFile(schemas.Examples, "feedback/examples/report.v1.valid.json")
	if err != nil {
		b.Fatal(err)
	}
	var evs []struct{ Data json.RawMessage }
	if err := json.Unmarshal(raw, &evs); err != nil {
		b.Fatal(err)
	}
	data := []byte(evs[0].Data)
	b.Run("scan", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := event.DecodeValue(data); err != nil {
				b.Fatal(err)
			}
		}
	})
	parsed, err := event.Parse(mustEvent(b, raw))
	if err != nil {
		b.Fatal(err)
	}
	b.Run("parsed-event", func(b *testing.B) { // data Parse already checked
		b.SetBytes(int64(len(parsed.Data)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := parsed.DecodedData(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			d := json.NewDecoder(bytes.NewReader(data))
			d.UseNumber()
			var v any
			if err := d.Decode(&v); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// mustEvent is the first event of a JSON array of events.
func mustEvent(b *testing.B, raw []byte) []byte {
	var evs []json.RawMessage
	if err := json.Unmarshal(raw, &evs); err != nil || len(evs) == 0 {
		b.Fatal(err)
	}
	return evs[0]
}

// BenchmarkAppendValue is an event's decoded data written back, as the
// admit step does after pseudonymizing it, against encoding/json.
func BenchmarkAppendValue(b *testing.B) {
	raw, err := fs.ReadFile(schemas.Examples, "feedback/examples/report.v1.valid.json")
	if err != nil {
		b.Fatal(err)
	}
	e, err := event.Parse(mustEvent(b, raw))
	if err != nil {
		b.Fatal(err)
	}
	v, _ := e.DecodedData()
	b.Run("append", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := event.AppendValue(make([]byte, 0, len(e.Data)+64), v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(v); err != nil {
				b.Fatal(err)
			}
		}
	})
}
