package chstore_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/iochub/iochub/pkg/chstore"
	"github.com/iochub/iochub/pkg/eventgen"
	"github.com/iochub/iochub/pkg/schema"
)

// mixRows is n events of the hub's realistic mix as rows, per table.
func mixRows(tb testing.TB, reg *schema.Registry, n int, seq0 uint64) map[*schema.Type][][]any {
	tb.Helper()
	g := eventgen.New(7, fmt.Sprintf("columns-%d", seq0))
	out := map[*schema.Type][][]any{}
	for i := range n {
		e := g.Next()
		ty, err := reg.Lookup(e.Type)
		if err != nil {
			tb.Fatal(err)
		}
		data, err := schema.DecodeData(e.Data)
		if err != nil {
			tb.Fatal(err)
		}
		row, err := chstore.Row(ty, e, seq0+uint64(i), time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC), data)
		if err != nil {
			tb.Fatal(err)
		}
		out[ty] = append(out[ty], row)
	}
	return out
}

// The columnar insert stores exactly what the row-by-row one stores, NULLs
// included: the same rows inserted both ways (the second time with other
// event ids and sequences) give every other column's values twice.
func TestColumnarAndRowByRowStoreTheSame(t *testing.T) {
	ctx := context.Background()
	s, reg := migrated(t)
	nulls := 0
	for ty, rows := range mixRows(t, reg, 3000, 1) {
		cols := chstore.Columns(ty)
		if err := s.Insert(ctx, ty.Name.Table(), cols, rows); err != nil {
			t.Fatalf("columnar insert into %s: %v", ty.Name.Table(), err)
		}
		again := make([][]any, len(rows))
		for i, r := range rows {
			again[i] = append([]any(nil), r...)
			again[i][0] = "again-" + r[0].(string)
			again[i][5] = r[5].(uint64) + 1_000_000
			for _, v := range r {
				if v == nil {
					nulls++
				}
			}
		}
		restore := chstore.SetRowByRow(true)
		err := s.Insert(ctx, ty.Name.Table(), cols, again)
		restore()
		if err != nil {
			t.Fatalf("row-by-row insert into %s: %v", ty.Name.Table(), err)
		}
		var keyed []string
		for _, c := range cols[1:] {
			if c != "stream_seq" {
				keyed = append(keyed, "ifNull(toString("+chstore.Quote(c)+"), '<NULL>')")
			}
		}
		var total, odd uint64
		q := "SELECT sum(n), countIf(n != 2) FROM (SELECT arrayStringConcat([" + strings.Join(keyed, ", ") + "], '|') AS k, count() AS n FROM " + s.Qualified(ty.Name.Table()) + " GROUP BY k)"
		if err := s.QueryRow(ctx, q).Scan(&total, &odd); err != nil {
			t.Fatal(err)
		}
		if total != uint64(2*len(rows)) || odd != 0 {
			t.Errorf("%s: %d rows stored of %d; %d rows differ between the two ways", ty.Name.Table(), total, 2*len(rows), odd)
		}
	}
	if nulls == 0 {
		t.Fatal("the mix has no NULL value: the test does not cover Nullable columns")
	}
}

// A value of the wrong Go type for its column is refused naming the row and
// the column, and nothing of the insert is stored.
func TestColumnarRefusesAValueOfTheWrongType(t *testing.T) {
	ctx := context.Background()
	s, reg := migrated(t)
	for ty, rows := range mixRows(t, reg, 200, 1) {
		if len(rows) < 3 {
			continue
		}
		rows[2][5] = "not a sequence"
		err := s.Insert(ctx, ty.Name.Table(), chstore.Columns(ty), rows)
		if !errors.Is(err, chstore.ErrBadValue) || !strings.Contains(err.Error(), "row 2") || !strings.Contains(err.Error(), "stream_seq") {
			t.Fatalf("%s: err = %v, want ErrBadValue naming row 2 and stream_seq", ty.Name.Table(), err)
		}
		if n, err := s.Count(ctx, ty.Name.Table()); err != nil || n != 0 {
			t.Fatalf("%s: %d rows stored (%v), want none", ty.Name.Table(), n, err)
		}
	}
}

// BenchmarkInsert: the hub's mix, 5000 events a round in one insert per
// table, row by row (the driver's Append) against a column at a time. The
// wall time is mostly the server's; client-cpu-ns/row is the hub's side.
func BenchmarkInsert(b *testing.B) {
	for _, way := range []struct {
		name     string
		rowByRow bool
	}{{"row-by-row", true}, {"columnar", false}} {
		b.Run(way.name, func(b *testing.B) {
			defer chstore.SetRowByRow(way.rowByRow)()
			ctx := context.Background()
			s, reg := migrated(b)
			rows := mixRows(b, reg, 5000, 1)
			cpu0 := processCPU(b)
			b.ResetTimer()
			for b.Loop() {
				for ty, r := range rows {
					if err := s.Insert(ctx, ty.Name.Table(), chstore.Columns(ty), r); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(processCPU(b)-cpu0)/float64(5000*b.N), "client-cpu-ns/row")
			b.ReportMetric(float64(5000*b.N)/b.Elapsed().Seconds(), "rows/s")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(5000*b.N), "ns/row")
		})
	}
}

// processCPU is the CPU time this process has used, user and system, in ns.
func processCPU(tb testing.TB) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
