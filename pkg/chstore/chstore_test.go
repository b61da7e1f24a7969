package chstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"testing"
	"time"

	"github.com/iochub/iochub/pkg/chstore"
	"github.com/iochub/iochub/pkg/chstore/chstoretest"
	"github.com/iochub/iochub/pkg/event"
	"github.com/iochub/iochub/pkg/schema"
	"github.com/iochub/iochub/schemas"
)

func TestMigrateInsertAndExisting(t *testing.T) {
	ctx := context.Background()
	s := chstoretest.Open(t)
	reg, err := schema.Load(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx, reg); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	if err := s.Migrate(ctx, reg); err != nil {
		t.Fatalf("Migrate twice: %v", err)
	}
	files, _ := fs.Glob(schemas.Examples, "*/examples/*.valid.json")
	seq := uint64(0)
	for _, f := range files {
		b, _ := fs.ReadFile(schemas.Examples, f)
		var evs []event.Event
		if err := json.Unmarshal(b, &evs); err != nil {
			t.Fatal(err)
		}
		ty, err := reg.Lookup(evs[0].Type)
		if err != nil {
			t.Fatal(err)
		}
		var rows [][]any
		var ids []chstore.Identity
		for _, e := range evs {
			seq++
			data, _ := schema.DecodeData(e.Data)
			row, err := chstore.Row(ty, e, seq, time.Now(), data)
			if err != nil {
				t.Fatalf("%s: Row: %v", f, err)
			}
			rows = append(rows, row)
			ids = append(ids, chstore.Identity{Source: e.Source, ID: e.ID, Time: e.Time.Unix()})
		}
		table := ty.Name.Table()
		if err := s.Insert(ctx, table, chstore.Columns(ty), rows); err != nil {
			t.Fatalf("%s: Insert: %v", table, err)
		}
		n, err := s.Count(ctx, table)
		if err != nil || n != uint64(len(rows)) {
			t.Fatalf("%s: count = %d, %v; want %d", table, n, err, len(rows))
		}
		absent := []chstore.Identity{
			{Source: ids[0].Source, ID: ids[0].ID, Time: ids[0].Time + 1},     // another second
			{Source: ids[0].Source + "x", ID: ids[0].ID, Time: ids[0].Time},   // another source
			{Source: ids[0].Source, ID: ids[0].ID + "'\\", Time: ids[0].Time}, // quotes are literals
		}
		got, err := s.Existing(ctx, table, append(append([]chstore.Identity(nil), ids...), absent...))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(ids) {
			t.Fatalf("%s: Existing = %v, want %v", table, got, ids)
		}
		for _, id := range ids {
			if !got[id] {
				t.Fatalf("%s: Existing misses %v", table, id)
			}
		}
	}
	// Typed columns hold typed values.
	var lat *float64
	var sat *int64
	var status string
	if err := s.Conn().QueryRow(ctx, "SELECT location_lat, satisfaction, status FROM "+s.Qualified("feedback_report_v1")+" WHERE event_id = 'report-valid-2'").Scan(&lat, &sat, &status); err != nil {
		t.Fatal(err)
	}
	if lat != nil || sat == nil || *sat != 4 || status != "resolved" {
		t.Fatalf("row = %v %v %q", lat, sat, status)
	}
}

func TestRowRejectsWhatDoesNotFit(t *testing.T) {
	reg, _ := schema.Load(schemas.FS)
	ty, _ := reg.Lookup("vn.ioc.health.bed_occupancy.v1")
	data, _ := schema.DecodeData([]byte(`{"facility_code":"f","area_code":"27","observed_at":"2026-11-20T08:00:00Z","beds_total":"many","beds_occupied":1}`))
	_, err := chstore.Row(ty, event.Event{}, 1, time.Now(), data)
	if !errors.Is(err, chstore.ErrBadValue) {
		t.Fatalf("err = %v", err)
	}
}

func TestOpenUnreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := chstore.Open(ctx, "clickhouse://127.0.0.1:1/x")
	if !errors.Is(err, chstore.ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
}
