package chstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

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
	if err := s.QueryRow(ctx, "SELECT location_lat, satisfaction, status FROM "+s.Qualified("feedback_report_v1")+" WHERE event_id = 'report-valid-2'").Scan(&lat, &sat, &status); err != nil {
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

// A full batch's identities make a lookup far over ClickHouse's
// max_query_size (256 KiB) when sources and ids are long: Existing must
// still answer, exactly.
func TestExistingForAFullBatchOfLongIdentities(t *testing.T) {
	ctx := context.Background()
	s, reg := migrated(t)
	ty, _ := reg.Lookup("vn.ioc.health.visit.v1")
	base := examplesOf(t, "health/examples/visit.v1.valid.json")[0]
	source := "/health/his/" + strings.Repeat("benh-vien-da-khoa-tinh-", 4)
	var rows [][]any
	var ids []chstore.Identity
	for i := range 5000 {
		e := base
		e.Source = source
		e.ID = fmt.Sprintf("%s-%08d", strings.Repeat("f", 36), i)
		e.Time = base.Time.Add(time.Duration(i%600) * time.Second)
		data, _ := schema.DecodeData(e.Data)
		row, err := chstore.Row(ty, e, uint64(i+1), time.Now(), data)
		if err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 { // half stored, half not
			rows = append(rows, row)
		}
		ids = append(ids, chstore.Identity{Source: e.Source, ID: e.ID, Time: e.Time.Unix()})
	}
	if err := s.Insert(ctx, "health_visit_v1", chstore.Columns(ty), rows); err != nil {
		t.Fatal(err)
	}
	got, err := s.Existing(ctx, "health_visit_v1", ids)
	if err != nil {
		t.Fatalf("Existing over 5000 long identities: %v", err)
	}
	for i, id := range ids {
		if got[id] != (i%2 == 0) {
			t.Fatalf("identity %d: found %v, want %v", i, got[id], i%2 == 0)
		}
	}
}

func examplesOf(t testing.TB, file string) []event.Event {
	t.Helper()
	b, err := fs.ReadFile(schemas.Examples, file)
	if err != nil {
		t.Fatal(err)
	}
	var evs []event.Event
	if err := json.Unmarshal(b, &evs); err != nil {
		t.Fatal(err)
	}
	return evs
}

// storedVisits fills health_visit_v1 with n visits, ten a second, and
// returns the identities of the last 500 with 500 not stored (the next
// seconds): a batch's lookup.
func storedVisits(tb testing.TB, n int) (*chstore.Store, []chstore.Identity) {
	tb.Helper()
	ctx := context.Background()
	s, reg := migrated(tb)
	ty, _ := reg.Lookup("vn.ioc.health.visit.v1")
	base := examplesOf(tb, "health/examples/visit.v1.valid.json")[0]
	var ids []chstore.Identity
	for start := 0; start < n; start += 20_000 {
		var rows [][]any
		for i := start; i < min(start+20_000, n); i++ {
			e := base
			e.ID = fmt.Sprintf("bench-%08d-6f1c2a9e-4b7d-4c1e-9a3f-2d8e5b7c1a0f", i)
			e.Time = base.Time.Add(time.Duration(i/10) * time.Second)
			data, _ := schema.DecodeData(e.Data)
			row, _ := chstore.Row(ty, e, uint64(i+1), time.Now(), data)
			rows = append(rows, row)
			if i >= n-500 {
				ids = append(ids, chstore.Identity{Source: e.Source, ID: e.ID, Time: e.Time.Unix()})
			}
		}
		if err := s.Insert(ctx, "health_visit_v1", chstore.Columns(ty), rows); err != nil {
			tb.Fatal(err)
		}
	}
	for i := range 500 {
		ids = append(ids, chstore.Identity{Source: base.Source, ID: fmt.Sprintf("new-%d", i), Time: base.Time.Add(time.Duration(n/10+i/10) * time.Second).Unix()})
	}
	return s, ids
}

// The lookup reads only the granules of the batch's event seconds: with
// the server allowed to read a tenth of the table, it still answers.
func TestExistingReadsOnlyTheBatchSeconds(t *testing.T) {
	s, ids := storedVisits(t, 200_000)
	ctx := clickhouse.Context(context.Background(), clickhouse.WithSettings(clickhouse.Settings{"max_rows_to_read": 20_000}))
	got, err := s.Existing(ctx, "health_visit_v1", ids)
	if err != nil {
		t.Fatalf("Existing read more than a tenth of the table: %v", err)
	}
	if len(got) != 500 {
		t.Fatalf("found %d of the 500 stored", len(got))
	}
}

// BenchmarkExisting is the identity check of one table's batch: 1000
// identities of the last seconds, half of them stored, against a raw table
// of 200,000 rows.
func BenchmarkExisting(b *testing.B) {
	s, ids := storedVisits(b, 200_000)
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		got, err := s.Existing(ctx, "health_visit_v1", ids)
		if err != nil || len(got) != 500 {
			b.Fatalf("found %d, %v", len(got), err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(ids)), "ns/identity")
}

// migrated is a database of the test's own with every raw table.
func migrated(tb testing.TB) (*chstore.Store, *schema.Registry) {
	tb.Helper()
	s := chstoretest.Open(tb)
	reg, err := schema.Load(schemas.FS)
	if err != nil {
		tb.Fatal(err)
	}
	if err := s.Migrate(context.Background(), reg); err != nil {
		tb.Fatal(err)
	}
	return s, reg
}

// TestIntegralNumbersFitIntegerColumns (finding M2): JSON Schema takes 12.0
// and 1.2e1 as the integer 12, so the gateway answers 202; the row stores
// 12 rather than the aggregator dead-lettering what was accepted.
func TestIntegralNumbersFitIntegerColumns(t *testing.T) {
	reg, _ := schema.Load(schemas.FS)
	ty, _ := reg.Lookup("vn.ioc.health.bed_occupancy.v1")
	col := -1
	for i, c := range chstore.Columns(ty) {
		if c == "beds_total" {
			col = i
		}
	}
	for _, tt := range []struct {
		json string
		want any
		ok   bool
	}{{"12", int64(12), true}, {"12.0", int64(12), true}, {"1.2e1", int64(12), true}, {"12.5", nil, false}, {"1e300", nil, false}} {
		data, _ := schema.DecodeData([]byte(`{"facility_code":"f","area_code":"27","observed_at":"2026-11-20T08:00:00Z","beds_total":` + tt.json + `,"beds_occupied":1}`))
		row, err := chstore.Row(ty, event.Event{}, 1, time.Now(), data)
		switch {
		case tt.ok && err != nil:
			t.Errorf("%s: %v", tt.json, err)
		case tt.ok && row[col] != tt.want:
			t.Errorf("%s: stored %#v, want %#v", tt.json, row[col], tt.want)
		case !tt.ok && !errors.Is(err, chstore.ErrBadValue):
			t.Errorf("%s: err = %v, want ErrBadValue", tt.json, err)
		}
	}
}

// TestSettleAllWaitsForAnotherInsert: while an insert into a table runs
// on the server (a large one, from another connection, as another
// aggregator process's would be), SettleAll of that table returns only
// once the server committed it: a lookup after it sees every row.
//
// On one server, and on a cluster of two replicas with the other insert
// running on the second server.
func TestSettleAllWaitsForAnotherInsert(t *testing.T) {
	ctx := context.Background()
	t.Run("one server", func(t *testing.T) {
		dsn := chstoretest.NewDatabase(t)
		open := func() *chstore.Store {
			s, err := chstore.Open(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}
		settleAllWaits(t, open(), open())
	})
	t.Run("the other insert on the other replica", func(t *testing.T) {
		c := chstoretest.StartCluster(t, 1, 2)
		settleAllWaits(t, c.Open(t, 0, "settle"), c.Open(t, 1, "settle"))
	})
}

// settleAllWaits: s.SettleAll returns only once other's insert is done.
func settleAllWaits(t *testing.T, s, other *chstore.Store) {
	ctx := context.Background()
	reg, err := schema.Load(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx, reg); err != nil {
		t.Fatal(err)
	}
	ty, _ := reg.Lookup("vn.ioc.health.visit.v1")
	base := examplesOf(t, "health/examples/visit.v1.valid.json")[0]
	const n = 300_000
	for try := 0; ; try++ {
		var rows [][]any
		for i := range n {
			e := base
			e.ID = fmt.Sprintf("settle-%d-%08d", try, i)
			data, _ := schema.DecodeData(e.Data)
			row, err := chstore.Row(ty, e, uint64(i+1), time.Now(), data)
			if err != nil {
				t.Fatal(err)
			}
			rows = append(rows, row)
		}
		done := make(chan error, 1)
		go func() { done <- other.Insert(ctx, "health_visit_v1", chstore.Columns(ty), rows) }()
		seen := false
		for !seen {
			var running uint64
			if err := other.QueryRow(ctx, "SELECT count() FROM system.processes WHERE query_id LIKE 'iochub-insert-%'").Scan(&running); err != nil {
				t.Fatal(err)
			}
			seen = running > 0
			if !seen {
				select {
				case err := <-done:
					if err != nil {
						t.Fatal(err)
					}
					if try == 4 {
						t.Fatal("five inserts of 300,000 rows each finished before the server listed them running")
					}
				default:
					continue
				}
				break
			}
		}
		if !seen {
			continue // finished before it was seen: again, with new identities
		}
		if err := s.SettleAll(ctx, "health_visit_v1"); err != nil {
			t.Fatal(err)
		}
		var stored uint64
		if err := s.QueryRow(ctx, "SELECT count() FROM "+s.Qualified("health_visit_v1")+" WHERE event_id LIKE "+fmt.Sprintf("'settle-%d-%%'", try)).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		if stored != n {
			t.Fatalf("after SettleAll the table holds %d of the other insert's %d rows: it did not wait", stored, n)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		return
	}
}

// Tables made for a single server are not taken for replicated ones: a
// start with --clickhouse-cluster on them is refused, naming the table.
func TestClusterLayoutRefusesTablesMadeForOneServer(t *testing.T) {
	ctx := context.Background()
	c := chstoretest.StartCluster(t, 1, 2)
	reg, err := schema.Load(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := chstore.Open(ctx, c.Nodes[0].DSN("single"))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if err := plain.Migrate(ctx, reg); err != nil {
		t.Fatal(err)
	}
	err = c.Open(t, 0, "single").Migrate(ctx, reg)
	if !errors.Is(err, chstore.ErrCluster) || !strings.Contains(err.Error(), "table single.education_attendance_v1 is MergeTree, made for a single server") {
		t.Fatalf("a cluster layout over single-server tables: %v", err)
	}
	// Made by the cluster's layout, they are taken as they are.
	clustered := c.Open(t, 0, "clustered")
	for range 2 {
		if err := clustered.Migrate(ctx, reg); err != nil {
			t.Fatal(err)
		}
	}
}
