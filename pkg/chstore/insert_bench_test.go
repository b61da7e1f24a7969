package chstore_test

import (
	"context"
	"fmt"
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

// BenchmarkInsert: the hub's mix, 5000 events a round in one insert per
// table. The wall time is mostly the server's; client-cpu-ns/row is the
// hub's side. (A column-at-a-time path through the driver's column API,
// 60b25c4, cost the same 5-6 µs a row and was taken out: docs/performance.md.)
func BenchmarkInsert(b *testing.B) {
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
}

// processCPU is the CPU time this process has used, user and system, in ns.
func processCPU(tb testing.TB) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
