package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/iochub/iochub/kpis"
	"github.com/iochub/iochub/pkg/chstore"
	"github.com/iochub/iochub/pkg/kpi"
	"github.com/iochub/iochub/pkg/schema"
)

// The KPI bench fills a fresh database with kpiEvents raw events over the
// 90 days before now — the eventgen mix, entities with their status changes
// — through the rollups' materialized views, then times every query the
// dashboard makes (its tiles, charts and area breakdown, for the periods
// today, 7 days and 30 days) through the same engine iocapi uses.

// rawFill is one raw table's share of the events and the INSERT … SELECT
// that makes its rows from numbers(): {n} rows, {t0} the first second, {span}
// seconds of spread.
type rawFill struct {
	table string
	share float64
	cols  string
	sel   string
}

const areasSQL = "['27256','27258','27259','27260','27261','27262','27263','27264']"

var rawFills = []rawFill{
	{"traffic_flow_v1", 0.40,
		"event_id, source, subject, event_time, ingest_time, stream_seq, area_code, buses, cars, motorbikes, segment_id, sensor_id, trucks, window_seconds, window_start, mean_speed_kmh, occupancy_pct",
		`SELECT concat('f', toString(number)), '/traffic/sensors', '', toDateTime({t0} + intDiv(number * {span}, {n})) AS t, t, number,
		  arrayElement(` + areasSQL + `, number % 8 + 1), number % 20, number % 500, number % 2000, concat('SEG-', toString(number % 40)),
		  concat('LOOP-', toString(number % 40)), number % 80, 300, t, toFloat64(20 + number % 50), toFloat64(number % 100)
		FROM numbers({n})`},
	{"health_visit_v1", 0.25,
		"event_id, source, subject, event_time, ingest_time, stream_seq, age_band, area_code, facility_code, insured, kind, sex, started_at, visit_id, wait_minutes",
		`SELECT concat('v', toString(number)), '/health/his', '', toDateTime({t0} + intDiv(number * {span}, {n})) AS t, t, number,
		  arrayElement(['0-4','5-14','15-24','25-44','45-64','65+'], number % 6 + 1), arrayElement(` + areasSQL + `, number % 8 + 1),
		  concat('F', toString(number % 30)), toUInt8(number % 10 < 9), multiIf(number % 100 < 8, 'emergency', number % 100 < 20, 'inpatient', 'outpatient'),
		  if(number % 2 = 0, 'female', 'male'), t, concat('V', toString(number)), toInt64(number % 90)
		FROM numbers({n})`},
	{"publicservice_dossier_v1", 0.12, // three changes per dossier; one in ten stays in processing
		"event_id, source, subject, event_time, ingest_time, stream_seq, agency_code, area_code, channel, dossier_id, procedure_code, received_at, status, status_time, due_at, resolved_at",
		`SELECT concat('d', toString(number)), '/publicservice/dvc', '', toDateTime({t0} + intDiv(intDiv(number, 3) * 3 * {span}, {n}) + (number % 3) * 7200) AS t, t, number,
		  concat('AG', toString(intDiv(number, 3) % 20)), arrayElement(` + areasSQL + `, intDiv(number, 3) % 8 + 1),
		  arrayElement(['online','online','in_person','postal'], intDiv(number, 3) % 4 + 1), concat('HS', toString(intDiv(number, 3))), '1.001',
		  toDateTime({t0} + intDiv(intDiv(number, 3) * 3 * {span}, {n})) AS recv,
		  multiIf(number % 3 = 0, 'received', number % 3 = 1 OR intDiv(number, 3) % 10 = 0, 'processing', 'resolved'), t,
		  CAST(recv + 3 * 86400 AS Nullable(DateTime('UTC'))),
		  CAST(if(number % 3 = 2 AND intDiv(number, 3) % 10 != 0, recv + (intDiv(number, 3) % 5) * 86400, NULL) AS Nullable(DateTime('UTC')))
		FROM numbers({n})`},
	{"feedback_report_v1", 0.08, // four changes per report; one in eight stays open
		"event_id, source, subject, event_time, ingest_time, stream_seq, area_code, category, channel, report_id, status, status_time, submitted_at, agency_code, due_at, resolved_at, satisfaction",
		`SELECT concat('r', toString(number)), '/feedback/portal', '', toDateTime({t0} + intDiv(intDiv(number, 4) * 4 * {span}, {n}) + (number % 4) * 10800) AS t, t, number,
		  arrayElement(` + areasSQL + `, intDiv(number, 4) % 8 + 1), arrayElement(['moi_truong','giao_thong','an_ninh','xay_dung'], intDiv(number, 4) % 4 + 1),
		  arrayElement(['app','hotline','web','zalo'], number % 4 + 1), concat('PA', toString(intDiv(number, 4))),
		  multiIf(number % 4 = 0, 'submitted', number % 4 = 1, 'assigned', number % 4 = 2 OR intDiv(number, 4) % 8 = 0, 'in_progress', 'resolved'), t,
		  toDateTime({t0} + intDiv(intDiv(number, 4) * 4 * {span}, {n})) AS sub, CAST('UBND' AS Nullable(String)),
		  CAST(sub + 2 * 86400 AS Nullable(DateTime('UTC'))),
		  CAST(if(number % 4 = 3 AND intDiv(number, 4) % 8 != 0, t, NULL) AS Nullable(DateTime('UTC'))),
		  CAST(if(number % 4 = 3, toInt64(1 + number % 5), NULL) AS Nullable(Int64))
		FROM numbers({n})`},
	{"education_attendance_v1", 0.05, // 5,000 schools a day
		"event_id, source, subject, event_time, ingest_time, stream_seq, absent_excused, absent_unexcused, area_code, date, enrolled, level, present, school_code",
		`SELECT concat('a', toString(number)), '/education/sms', '', toDateTime({t0} + intDiv(number, 5000) * 86400 + 7200) AS t, t, number, 5, 5,
		  arrayElement(` + areasSQL + `, number % 8 + 1), toDate(t), 400, arrayElement(['preschool','primary','lower_secondary','upper_secondary'], number % 4 + 1),
		  toInt64(360 + number % 40), concat('S', toString(number % 5000))
		FROM numbers({n})`},
	{"health_bed_occupancy_v1", 0.05,
		"event_id, source, subject, event_time, ingest_time, stream_seq, area_code, beds_occupied, beds_total, facility_code, observed_at, ward",
		`SELECT concat('b', toString(number)), '/health/his', '', toDateTime({t0} + intDiv(number * {span}, {n})) AS t, t, number,
		  arrayElement(` + areasSQL + `, number % 8 + 1), toInt64(50 + number % 50), 100, concat('F', toString(number % 30)), t,
		  CAST(arrayElement(['noi','ngoai','san'], number % 3 + 1) AS Nullable(String))
		FROM numbers({n})`},
	{"traffic_incident_v1", 0.05, // three changes per incident
		"event_id, source, subject, event_time, ingest_time, stream_seq, area_code, incident_id, kind, occurred_at, severity, status, status_time, injured, killed, segment_id",
		`SELECT concat('i', toString(number)), '/traffic/cameras', '', toDateTime({t0} + intDiv(intDiv(number, 3) * 3 * {span}, {n}) + (number % 3) * 1800) AS t, t, number,
		  arrayElement(` + areasSQL + `, intDiv(number, 3) % 8 + 1), concat('SC', toString(intDiv(number, 3))),
		  arrayElement(['accident','congestion','violation','road_damage'], intDiv(number, 3) % 4 + 1),
		  toDateTime({t0} + intDiv(intDiv(number, 3) * 3 * {span}, {n})), arrayElement(['minor','moderate','serious','critical'], intDiv(number, 3) % 4 + 1),
		  arrayElement(['reported','responding','cleared'], number % 3 + 1), t, CAST(toInt64(number % 3) AS Nullable(Int64)), CAST(toInt64(0) AS Nullable(Int64)),
		  CAST(concat('SEG-', toString(number % 40)) AS Nullable(String))
		FROM numbers({n})`},
}

type kpiQuery struct {
	Label string      `json:"label"`
	Req   kpi.Request `json:"-"`
	P50   float64     `json:"p50_ms"`
	P95   float64     `json:"p95_ms"`
	// Merges running on the server (any database) just before each timed
	// run: the queries share the cores with them.
	MergesMean float64 `json:"merges_mean"`
	MergesMax  int     `json:"merges_max"`
}

// dashboardQueries are the requests the dashboard makes for one period:
// every tile's total (open-now tiles over the year before), the sector
// charts and the area breakdown.
func dashboardQueries(cat *kpi.Catalog, loc *time.Location, now time.Time) []kpiQuery {
	midnight := time.Date(now.In(loc).Year(), now.In(loc).Month(), now.In(loc).Day(), 0, 0, 0, 0, loc)
	periods := []struct {
		name string
		from time.Time
		gran string
	}{{"today", midnight, "hour"}, {"7d", midnight.AddDate(0, 0, -6), "day"}, {"30d", midnight.AddDate(0, 0, -29), "day"}}
	var out []kpiQuery
	for _, p := range periods {
		for _, name := range cat.Names() {
			d, _ := cat.Def(name)
			from, g := p.from, "day"
			if !d.Allows(g) {
				g = d.Granularities[0]
			}
			switch name {
			case "publicservice.overdue_now", "feedback.reports_open":
				from, g = now.AddDate(0, 0, -90), "month"
			case "education.schools_not_reported":
				from = midnight
			}
			out = append(out, kpiQuery{Label: fmt.Sprintf("%s tile %s", p.name, name), Req: kpi.Request{Name: name, From: from, To: now, Granularity: g}})
		}
		for _, name := range []string{"publicservice.dossiers_received", "feedback.reports_submitted", "health.visits", "education.attendance_rate", "traffic.vehicles_per_hour"} {
			d, _ := cat.Def(name)
			from, g := p.from, p.gran
			if !d.Allows(g) {
				from, g = midnight.AddDate(0, 0, -6), "day"
			}
			out = append(out, kpiQuery{Label: fmt.Sprintf("%s chart %s", p.name, name), Req: kpi.Request{Name: name, From: from, To: now, Granularity: g}})
		}
		out = append(out, kpiQuery{Label: p.name + " breakdown publicservice.dossiers_received by area",
			Req: kpi.Request{Name: "publicservice.dossiers_received", From: p.from, To: now, Granularity: "day", By: "area"}})
	}
	return out
}

func benchKPIs(o options, reg *schema.Registry) (map[string]float64, []kpiQuery, error) {
	ctx := context.Background()
	db := fmt.Sprintf("iochub_bench_kpi_%d", time.Now().UnixNano())
	s, err := chstore.Open(ctx, strings.TrimSuffix(o.chServer, "/")+"/"+db)
	if err != nil {
		return nil, nil, err
	}
	defer func() {
		if !o.keepKPIData {
			_ = s.DropDatabase(ctx, db)
		}
		s.Close()
	}()
	if err := s.Migrate(ctx, reg); err != nil {
		return nil, nil, err
	}
	cat, err := kpi.Load(kpis.FS)
	if err != nil {
		return nil, nil, err
	}
	if err := cat.MigrateAndFill(ctx, s, zap.NewNop()); err != nil {
		return nil, nil, err
	}
	now := time.Now().Truncate(time.Second)
	span := int64(90 * 86400)
	t0 := now.Unix() - span
	start := time.Now()
	total := 0
	for _, f := range rawFills {
		n := int(float64(o.kpiEvents) * f.share)
		n -= n % 12 // whole entities
		total += n
		q := strings.NewReplacer("{n}", fmt.Sprint(n), "{t0}", fmt.Sprint(t0), "{span}", fmt.Sprint(span)).Replace(f.sel)
		if f.table == "education_attendance_v1" {
			q = strings.ReplaceAll(q, fmt.Sprint(t0)+" + intDiv(number, 5000)", fmt.Sprint(now.Unix()-int64(n/5000)*86400)+" + intDiv(number, 5000)")
		}
		if err := s.Exec(ctx, fmt.Sprintf("INSERT INTO %s (%s) %s", s.Qualified(f.table), f.cols, q)); err != nil {
			return nil, nil, fmt.Errorf("fill %s: %w", f.table, err)
		}
		fmt.Fprintf(os.Stderr, "   %s: %d rows\n", f.table, n)
	}
	fill := time.Since(start)
	// Time the queries on a settled server, as the IOC reads it: wait until
	// the background merges the fill started are done (at most 5 minutes).
	for deadline := time.Now().Add(5 * time.Minute); time.Now().Before(deadline); time.Sleep(2 * time.Second) {
		var merging uint64
		if err := s.QueryRow(ctx, "SELECT count() FROM system.merges WHERE database = @db", chstore.Named("db", db)).Scan(&merging); err != nil || merging == 0 {
			break
		}
	}
	// … and run the compaction the hub runs every --rollup-compact-interval.
	if _, err := cat.Compact(ctx, s); err != nil {
		return nil, nil, fmt.Errorf("compact rollups: %w", err)
	}
	figs0 := time.Since(start)
	loc, _ := time.LoadLocation("Asia/Ho_Chi_Minh")
	e := &kpi.Engine{Catalog: cat, Store: s, Location: loc}
	qs := dashboardQueries(cat, loc, now)
	var all []float64
	mergeSum, mergesMax := 0, 0
	for i := range qs {
		var lat []float64
		merges := 0
		for r := 0; r < o.kpiRepeats+2; r++ {
			if r >= 2 {
				var m uint64
				if err := s.QueryRow(ctx, "SELECT count() FROM system.merges").Scan(&m); err != nil {
					return nil, nil, fmt.Errorf("merges running: %w", err)
				}
				merges += int(m)
				qs[i].MergesMax = max(qs[i].MergesMax, int(m))
			}
			t := time.Now()
			if _, _, err := e.Run(ctx, qs[i].Req); err != nil {
				return nil, nil, fmt.Errorf("%s: %w", qs[i].Label, err)
			}
			if r >= 2 { // two warm-up runs
				lat = append(lat, float64(time.Since(t).Microseconds())/1000)
			}
		}
		qs[i].P50, qs[i].P95 = percentile(lat, 50), percentile(lat, 95)
		qs[i].MergesMean = float64(merges) / float64(max(len(lat), 1))
		mergeSum += merges
		mergesMax = max(mergesMax, qs[i].MergesMax)
		all = append(all, lat...)
	}
	figs := map[string]float64{"kpi_events": float64(total), "kpi_fill_seconds": fill.Seconds(), "kpi_fill_merge_compact_seconds": figs0.Seconds(),
		"kpi_query_p50_ms": percentile(all, 50), "kpi_query_p95_ms": percentile(all, 95), "kpi_queries": float64(len(qs))}
	worst := 0.0
	for _, q := range qs {
		worst = max(worst, q.P95)
	}
	figs["kpi_query_worst_p95_ms"] = worst
	figs["kpi_merges_running_mean"] = float64(mergeSum) / float64(max(len(all), 1))
	figs["kpi_merges_running_max"] = float64(mergesMax)
	if l, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(l)); len(f) > 0 {
			var la float64
			fmt.Sscan(f[0], &la)
			figs["kpi_load_average_1m"] = la
		}
	}
	return figs, qs, nil
}

func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	i := int(float64(len(s)-1) * p / 100)
	return s[i]
}

func writeKPIResults(o options, figs map[string]float64, qs []kpiQuery) error {
	fmt.Printf("\nKPI queries of the dashboard over %.0f events (%d runs each after 2 warm-ups)\n\n", figs["kpi_events"], o.kpiRepeats)
	fmt.Printf("| query | p50 ms | p95 ms | merges running on the server (mean, max) |\n|---|---|---|---|\n")
	for _, q := range qs {
		fmt.Printf("| %s | %.1f | %.1f | %.1f, %d |\n", q.Label, q.P50, q.P95, q.MergesMean, q.MergesMax)
	}
	fmt.Printf("| **all queries** | %.1f | %.1f | %.1f, %.0f |\n\n", figs["kpi_query_p50_ms"], figs["kpi_query_p95_ms"], figs["kpi_merges_running_mean"], figs["kpi_merges_running_max"])
	fmt.Printf("Load average (1 min) at the end: %.2f. Merges of any database share the cores with the queries: compare figures taken with few.\n\n", figs["kpi_load_average_1m"])
	b, _ := json.MarshalIndent(map[string]any{"machine": machine(), "figures": figs, "queries": qs}, "", "  ")
	return os.WriteFile(filepath.Join(o.out, "kpi.json"), b, 0o644)
}
