package kpi_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/iochub/iochub/internal/polltest"
	"github.com/iochub/iochub/pkg/chstore"
	"github.com/iochub/iochub/pkg/event"
	"github.com/iochub/iochub/pkg/kpi"
	"github.com/iochub/iochub/pkg/kpi/kpitest"
)

// Each case reproduces a defect with single events: it failed before its fix.
func TestKPIDefectsReproduced(t *testing.T) {
	loc := kpitest.Location
	day := func(d, hh int) time.Time { return time.Date(2026, 11, d, hh, 0, 0, 0, loc) }
	later := func(e event.Event, d time.Duration) event.Event { e.Time = e.Time.Add(d); return e }
	for _, tc := range []struct {
		name     string
		events   []event.Event
		kpi      string
		from, to time.Time
		want     []*float64
	}{
		{
			// Only an open dossier without due_at: countIf over NULL conditions was NULL (503).
			name:   "overdue_now with an open dossier without due_at",
			events: []event.Event{kpitest.Dossier("D-NODUE", "d-nodue-1", "27256", "SOTP", "online", "received", day(11, 9), day(11, 9), nil, nil)},
			kpi:    "publicservice.overdue_now", from: day(10, 0), to: day(13, 0),
			want: []*float64{f(0), f(0), f(0)},
		},
		{
			// A school whose only report is for the 12th is not "not reported" before it ever reported.
			name:   "schools_not_reported before a school's first report",
			events: []event.Event{kpitest.Attendance("A-S9", "27256", "S9", "primary", day(12, 0), day(12, 8), 300, 290)},
			kpi:    "education.schools_not_reported", from: day(10, 0), to: day(13, 0),
			want: []*float64{f(0), f(0), f(0)},
		},
		{
			// A correction for the same instant (sent later) inserted before the original still wins.
			name: "bed_occupancy correction arriving first",
			events: []event.Event{
				later(kpitest.Beds("B-CORR", "27256", "27001", "noi", day(11, 8), 80, 50), time.Hour), // 62.5%, the correction
				kpitest.Beds("B-ORIG", "27256", "27001", "noi", day(11, 8), 80, 60),                   // 75%, the original
			},
			kpi: "health.bed_occupancy", from: day(11, 0), to: day(12, 0),
			want: []*float64{f(62.5)},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			s, reg, cat := rawStore(t)
			if err := cat.MigrateAndFill(ctx, s, zaptest.NewLogger(t)); err != nil {
				t.Fatal(err)
			}
			var seq uint64
			insert(t, s, reg, tc.events, &seq)
			e := &kpi.Engine{Catalog: cat, Store: s, Location: loc}
			_, res, err := e.Run(ctx, kpi.Request{Name: tc.kpi, From: tc.from, To: tc.to, Granularity: "day"})
			if err != nil {
				t.Fatalf("%s: %v", tc.kpi, err)
			}
			if len(res.Series) != len(tc.want) {
				t.Fatalf("series %v, want %d points", res.Series, len(tc.want))
			}
			for i, p := range res.Series {
				if p.Value == nil || *p.Value != *tc.want[i] {
					got := "null"
					if p.Value != nil {
						got = formatFloat(*p.Value)
					}
					t.Fatalf("point %d (%s) = %s, want %s", i, p.T.Format("2006-01-02"), got, formatFloat(*tc.want[i]))
				}
			}
		})
	}
}

func f(v float64) *float64 { return &v }

// A hub killed while filling a new rollup (here: after the rows went in but
// before the fill was recorded complete, the worst moment) fills it again
// from an empty table at the next start: every KPI equals its value over all
// raw rows, none doubled.
func TestInterruptedRollupFillIsCompletedAtTheNextStart(t *testing.T) {
	ctx := context.Background()
	s, reg, cat := rawStore(t)
	var seq uint64
	insert(t, s, reg, kpitest.Unique(), &seq)
	names, err := cat.Migrate(ctx, s)
	if err != nil || len(names) != len(cat.Rollups) {
		t.Fatalf("first start: %v to fill, %v", names, err)
	}
	if err := cat.Fill(ctx, s, names, zaptest.NewLogger(t)); err != nil {
		t.Fatal(err)
	}
	// The kill: every rollup's rows are in, the last one's fill not recorded.
	if err := s.Exec(ctx, "ALTER TABLE "+s.Qualified(kpi.StateTable)+" DELETE WHERE name = 'kpi_visit_hourly' AND state = 'complete'"); err != nil {
		t.Fatal(err)
	}
	waitMutations(t, s)
	again, err := cat.Migrate(ctx, s)
	if err != nil || len(again) != 1 || again[0] != "kpi_visit_hourly" {
		t.Fatalf("next start: %v to fill, %v; want the interrupted kpi_visit_hourly", again, err)
	}
	if err := cat.Fill(ctx, s, again, zaptest.NewLogger(t)); err != nil {
		t.Fatal(err)
	}
	checkEvery := func(when string) {
		e := &kpi.Engine{Catalog: cat, Store: s, Location: kpitest.Location}
		for _, x := range kpitest.Expectations {
			t.Run(when+"/"+x.String(), func(t *testing.T) {
				_, res, err := e.Run(ctx, kpi.Request{Name: x.KPI, From: kpitest.From, To: kpitest.To, Granularity: x.Granularity, Filters: x.Filters, By: x.By})
				if err != nil {
					t.Fatal(err)
				}
				CheckResult(t, x, res)
			})
		}
	}
	checkEvery("after the interrupted fill")

	// Rollups built by a version that kept no state (filled whole at start):
	// their definition cannot be told, so each is made anew and filled once.
	if err := s.Exec(ctx, "DROP TABLE "+s.Qualified(kpi.StateTable)); err != nil {
		t.Fatal(err)
	}
	all, err := cat.Migrate(ctx, s)
	if err != nil || len(all) != len(cat.Rollups) {
		t.Fatalf("start over rollups without state: %v to fill, %v", all, err)
	}
	if err := cat.Fill(ctx, s, all, zaptest.NewLogger(t)); err != nil {
		t.Fatal(err)
	}
	checkEvery("after an upgrade from rollups without state")
}

func waitMutations(t *testing.T, s *chstore.Store) {
	t.Helper()
	polltest.Until(t, "the mutation done", 30*time.Second, func() error {
		var n uint64
		if err := s.QueryRow(context.Background(), "SELECT count() FROM system.mutations WHERE database = ? AND NOT is_done", s.Database()).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("%d mutations running", n)
		}
		return nil
	})
}
