// Package kpitest is a hand-checked event set for the KPIs of the kpis
// package: a few dossiers, reports, visits, bed readings, attendance reports,
// sensor windows and incidents over 2–4 November 2026 (Asia/Ho_Chi_Minh),
// with duplicates, late events and status changes out of order, and the
// value every KPI must give over them, worked out by hand in the comments.
package kpitest

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/iochub/iochub/pkg/event"
)

// Location is the IOC's time zone: days start at local midnight.
var Location = mustLoad("Asia/Ho_Chi_Minh")

func mustLoad(name string) *time.Location {
	l, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return l
}

// From and To bound the period every expectation is over: three local days.
var (
	From = time.Date(2026, 11, 2, 0, 0, 0, 0, Location)
	To   = time.Date(2026, 11, 5, 0, 0, 0, 0, Location)
)

// at is day d of November 2026 at hh:mm local time.
func at(d, hh, mm int) time.Time { return time.Date(2026, 11, d, hh, mm, 0, 0, Location) }

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func ev(id, source, typ string, t time.Time, data map[string]any) event.Event {
	b, err := json.Marshal(data)
	if err != nil {
		panic(err)
	}
	return event.Event{SpecVersion: "1.0", ID: id, Source: source, Type: "vn.ioc." + typ + ".v1", Time: t.UTC(),
		DataContentType: event.ContentTypeJSON, Data: b}
}

func dossier(id, evID, area, agency, channel, status string, statusAt, received time.Time, due *time.Time, resolved *time.Time) event.Event {
	d := map[string]any{"dossier_id": id, "procedure_code": "1.001", "agency_code": agency, "area_code": area, "channel": channel,
		"status": status, "status_time": ts(statusAt), "received_at": ts(received)}
	if due != nil {
		d["due_at"] = ts(*due)
	}
	if resolved != nil {
		d["resolved_at"] = ts(*resolved)
	}
	return ev(evID, "/publicservice/dvc", "publicservice.dossier", statusAt, d)
}

func report(id, evID, area, category, channel, status string, statusAt, submitted time.Time, due, resolved *time.Time, satisfaction int) event.Event {
	d := map[string]any{"report_id": id, "category": category, "area_code": area, "channel": channel, "status": status,
		"status_time": ts(statusAt), "submitted_at": ts(submitted), "agency_code": "UBND-" + area}
	if due != nil {
		d["due_at"] = ts(*due)
	}
	if resolved != nil {
		d["resolved_at"] = ts(*resolved)
	}
	if satisfaction > 0 {
		d["satisfaction"] = satisfaction
	}
	return ev(evID, "/feedback/portal", "feedback.report", statusAt, d)
}

func visit(id, area, facility, kind string, started time.Time, wait int) event.Event {
	d := map[string]any{"visit_id": id, "facility_code": facility, "area_code": area, "kind": kind, "age_band": "25-44",
		"sex": "female", "insured": true, "started_at": ts(started)}
	if wait >= 0 {
		d["wait_minutes"] = wait
	}
	return ev("ev-"+id, "/health/his/"+facility, "health.visit", started, d)
}

func beds(id, area, facility, ward string, observed time.Time, total, occupied int) event.Event {
	return ev(id, "/health/his/"+facility, "health.bed_occupancy", observed, map[string]any{"facility_code": facility,
		"area_code": area, "ward": ward, "observed_at": ts(observed), "beds_total": total, "beds_occupied": occupied})
}

func attendance(id, area, school, level string, day time.Time, sent time.Time, enrolled, present int) event.Event {
	return ev(id, "/education/sms", "education.attendance", sent, map[string]any{"school_code": school, "school_name": "Trường " + school,
		"area_code": area, "level": level, "date": day.Format("2006-01-02"), "enrolled": enrolled, "present": present,
		"absent_excused": (enrolled - present) / 2, "absent_unexcused": enrolled - present - (enrolled-present)/2})
}

func flow(id, area, sensor, segment string, start time.Time, m, c, t, b int, speed float64) event.Event {
	d := map[string]any{"sensor_id": sensor, "segment_id": segment, "area_code": area, "window_start": ts(start), "window_seconds": 300,
		"motorbikes": m, "cars": c, "trucks": t, "buses": b}
	if speed > 0 {
		d["mean_speed_kmh"] = speed
	}
	return ev(id, "/traffic/sensors", "traffic.flow", start, d)
}

func incident(id, evID, area, kind, severity, status string, occurred, statusAt time.Time, injured, killed int) event.Event {
	return ev(evID, "/traffic/cameras", "traffic.incident", statusAt, map[string]any{"incident_id": id, "kind": kind, "severity": severity,
		"status": status, "area_code": area, "segment_id": "SEG-" + area, "occurred_at": ts(occurred), "status_time": ts(statusAt),
		"injured": injured, "killed": killed})
}

func tp(t time.Time) *time.Time { return &t }

// Events is the event set in the order it is sent. Some events appear twice
// with the same (source, id) — a retry, which must count once — and some
// status changes are sent again under a new id or arrive before older ones.
func Events() []event.Event {
	far := tp(time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC))
	d1recv, d2recv, d3recv := at(2, 8, 0), at(2, 9, 0), at(2, 10, 0)
	var evs []event.Event
	evs = append(evs,
		// Dossiers. D1: resolved on time, its changes arrive newest first.
		dossier("D1", "d1-3", "27256", "SOTP", "online", "resolved", at(3, 10, 0), d1recv, tp(at(5, 17, 0)), tp(at(3, 10, 0))),
		dossier("D1", "d1-1", "27256", "SOTP", "online", "received", d1recv, d1recv, tp(at(5, 17, 0)), nil),
		dossier("D1", "d1-2", "27256", "SOTP", "online", "processing", at(2, 9, 0), d1recv, tp(at(5, 17, 0)), nil),
		// D2: resolved late; its receipt sent twice (a retry) and again under a new id.
		dossier("D2", "d2-1", "27258", "UBND-YP", "in_person", "received", d2recv, d2recv, tp(at(2, 17, 0)), nil),
		dossier("D2", "d2-1", "27258", "UBND-YP", "in_person", "received", d2recv, d2recv, tp(at(2, 17, 0)), nil),
		dossier("D2", "d2-1-resent", "27258", "UBND-YP", "in_person", "received", d2recv, d2recv, tp(at(2, 17, 0)), nil),
		dossier("D2", "d2-2", "27258", "UBND-YP", "in_person", "resolved", at(4, 8, 0), d2recv, tp(at(2, 17, 0)), tp(at(4, 8, 0))),
		// D3: still processing, past its due date: overdue now. Receipt arrives last.
		dossier("D3", "d3-2", "27256", "SOTP", "online", "processing", at(2, 11, 0), d3recv, tp(at(3, 17, 0)), nil),
		dossier("D3", "d3-1", "27256", "SOTP", "online", "received", d3recv, d3recv, tp(at(3, 17, 0)), nil),
		// D4: waiting for a supplement, due far ahead: open, not overdue.
		dossier("D4", "d4-1", "27261", "UBND-TS", "postal", "received", at(2, 14, 0), at(2, 14, 0), far, nil),
		dossier("D4", "d4-2", "27261", "UBND-TS", "postal", "supplement_requested", at(2, 15, 0), at(2, 14, 0), far, nil),
		// D5: received on the 3rd, withdrawn: closed, neither resolved nor overdue.
		dossier("D5", "d5-1", "27261", "UBND-TS", "online", "received", at(3, 8, 0), at(3, 8, 0), tp(at(3, 17, 0)), nil),
		dossier("D5", "d5-2", "27261", "UBND-TS", "online", "withdrawn", at(3, 9, 0), at(3, 8, 0), tp(at(3, 17, 0)), nil),

		// Reports. R1: resolved in 12 h within its deadline, satisfaction 4.
		report("R1", "r1-1", "27256", "moi_truong", "app", "submitted", at(2, 8, 0), at(2, 8, 0), tp(at(3, 8, 0)), nil, 0),
		report("R1", "r1-2", "27256", "moi_truong", "app", "assigned", at(2, 9, 0), at(2, 8, 0), tp(at(3, 8, 0)), nil, 0),
		report("R1", "r1-3", "27256", "moi_truong", "app", "resolved", at(2, 20, 0), at(2, 8, 0), tp(at(3, 8, 0)), tp(at(2, 20, 0)), 4),
		// R2: resolved in 24 h, past its deadline, satisfaction 2.
		report("R2", "r2-1", "27258", "giao_thong", "hotline", "submitted", at(2, 10, 0), at(2, 10, 0), tp(at(2, 22, 0)), nil, 0),
		report("R2", "r2-2", "27258", "giao_thong", "hotline", "resolved", at(3, 10, 0), at(2, 10, 0), tp(at(2, 22, 0)), tp(at(3, 10, 0)), 2),
		// R3: in progress (open); its submission sent twice.
		report("R3", "r3-1", "27256", "an_ninh", "zalo", "submitted", at(2, 12, 0), at(2, 12, 0), nil, nil, 0),
		report("R3", "r3-1", "27256", "an_ninh", "zalo", "submitted", at(2, 12, 0), at(2, 12, 0), nil, nil, 0),
		report("R3", "r3-2", "27256", "an_ninh", "zalo", "in_progress", at(2, 13, 0), at(2, 12, 0), nil, nil, 0),
		// R4: rejected.
		report("R4", "r4-1", "27260", "xay_dung", "web", "submitted", at(3, 9, 0), at(3, 9, 0), nil, nil, 0),
		report("R4", "r4-2", "27260", "xay_dung", "web", "rejected", at(3, 10, 0), at(3, 9, 0), nil, nil, 0),
		// R5: resolved in 6 h, no deadline, no rating; resolution arrives first.
		report("R5", "r5-2", "27260", "moi_truong", "app", "resolved", at(3, 17, 0), at(3, 11, 0), nil, tp(at(3, 17, 0)), 0),
		report("R5", "r5-1", "27260", "moi_truong", "app", "submitted", at(3, 11, 0), at(3, 11, 0), nil, nil, 0),

		// Visits. V3 sent twice (a retry); V4 at 02:00 on the 3rd local is the 2nd in UTC.
		visit("V1", "27256", "BV-DK-BN", "outpatient", at(2, 8, 10), 20),
		visit("V2", "27256", "BV-DK-BN", "emergency", at(2, 8, 40), 0),
		visit("V3", "27258", "TTYT-YP", "outpatient", at(2, 14, 0), 40),
		visit("V3", "27258", "TTYT-YP", "outpatient", at(2, 14, 0), 40),
		visit("V4", "27258", "TTYT-YP", "emergency", at(3, 2, 0), -1),
		visit("V5", "27261", "TTYT-TS", "inpatient", at(4, 10, 0), 30),

		// Beds: the evening reading of ward "noi" arrives before the morning one.
		beds("b1-2", "27256", "BV-DK-BN", "noi", at(2, 20, 0), 100, 90),
		beds("b1-1", "27256", "BV-DK-BN", "noi", at(2, 8, 0), 100, 80),
		beds("b2-1", "27256", "BV-DK-BN", "ngoai", at(2, 9, 0), 50, 25),
		beds("b3-1", "27258", "TTYT-YP", "noi", at(3, 8, 0), 40, 30),

		// Attendance: S1's report of the 2nd corrected later; S2 misses the 3rd;
		// S3 reported in October only.
		attendance("a1-1", "27256", "THCS-A", "lower_secondary", at(2, 0, 0), at(2, 9, 0), 400, 380),
		attendance("a1-2", "27256", "THCS-A", "lower_secondary", at(2, 0, 0), at(2, 15, 0), 400, 390),
		attendance("a2-1", "27258", "TH-B", "primary", at(2, 0, 0), at(2, 9, 0), 300, 270),
		attendance("a1-3", "27256", "THCS-A", "lower_secondary", at(3, 0, 0), at(3, 9, 0), 400, 360),
		attendance("a3-1", "27261", "MN-C", "preschool", time.Date(2026, 10, 25, 0, 0, 0, 0, Location), time.Date(2026, 10, 25, 9, 0, 0, 0, Location), 100, 90),

		// Sensor windows.
		flow("f1", "27256", "LOOP-001", "SEG-001", at(2, 7, 0), 100, 20, 5, 5, 30),
		flow("f2", "27256", "LOOP-001", "SEG-001", at(2, 7, 5), 50, 10, 5, 5, 40),
		flow("f3", "27258", "LOOP-002", "SEG-002", at(2, 8, 0), 150, 30, 10, 10, 0),
		flow("f4", "27256", "LOOP-001", "SEG-001", at(3, 7, 0), 80, 10, 5, 5, 20),

		// Incidents. I1's changes arrive newest first; I3 resent under a new id.
		incident("I1", "i1-3", "27256", "accident", "serious", "cleared", at(2, 7, 30), at(2, 9, 0), 2, 1),
		incident("I1", "i1-1", "27256", "accident", "serious", "reported", at(2, 7, 30), at(2, 7, 35), 1, 0),
		incident("I1", "i1-2", "27256", "accident", "serious", "responding", at(2, 7, 30), at(2, 7, 50), 2, 0),
		incident("I2", "i2-1", "27258", "congestion", "minor", "reported", at(2, 17, 0), at(2, 17, 0), 0, 0),
		incident("I3", "i3-1", "27261", "accident", "moderate", "reported", at(3, 22, 0), at(3, 22, 0), 1, 0),
		incident("I3", "i3-1-resent", "27261", "accident", "moderate", "reported", at(3, 22, 0), at(3, 22, 0), 1, 0),
	)
	return evs
}

// Unique is Events with each (source, id) once: what JetStream's dedup
// leaves of the retries.
func Unique() []event.Event {
	seen := map[string]bool{}
	var out []event.Event
	for _, e := range Events() {
		k := e.Source + "\x00" + e.ID
		if !seen[k] {
			seen[k] = true
			out = append(out, e)
		}
	}
	return out
}

// Expect is the value one KPI must give over [From, To): the series at
// Granularity (nil: no value), the total, and optionally the total of one
// filter or a breakdown.
type Expect struct {
	KPI         string
	Granularity string
	Filters     map[string][]string
	By          string
	Series      []*float64
	Total       *float64
	Breakdown   map[string]float64
}

func v(x float64) *float64 { return &x }

// Expectations, worked out by hand over Events (see each comment).
var Expectations = []Expect{
	// D1..D4 on the 2nd, D5 on the 3rd.
	{KPI: "publicservice.dossiers_received", Granularity: "day", Series: []*float64{v(4), v(1), v(0)}, Total: v(5),
		By: "area", Breakdown: map[string]float64{"27256": 2, "27258": 1, "27261": 2}},
	{KPI: "publicservice.dossiers_received", Granularity: "day", Filters: map[string][]string{"area": {"27256"}}, Series: []*float64{v(2), v(0), v(0)}, Total: v(2)},
	{KPI: "publicservice.dossiers_received", Granularity: "day", Filters: map[string][]string{"channel": {"online"}}, Series: []*float64{v(2), v(1), v(0)}, Total: v(3)},
	// D1 resolved on the 3rd, D2 on the 4th.
	{KPI: "publicservice.dossiers_resolved", Granularity: "day", Series: []*float64{v(0), v(1), v(1)}, Total: v(2)},
	// D1 on time (3rd 10:00 <= 5th 17:00), D2 late (4th 08:00 > 2nd 17:00).
	{KPI: "publicservice.on_time_rate", Granularity: "day", Series: []*float64{nil, v(100), v(0)}, Total: v(50)},
	// Online: D1, D3 of the 2nd's four; D5 of the 3rd's one; 3 of 5.
	{KPI: "publicservice.online_share", Granularity: "day", Series: []*float64{v(50), v(100), nil}, Total: v(60)},
	// D3 only: D1 and D2 resolved, D4 due in 2099, D5 withdrawn.
	{KPI: "publicservice.overdue_now", Granularity: "day", Series: []*float64{v(1), v(0), v(0)}, Total: v(1),
		By: "agency", Breakdown: map[string]float64{"SOTP": 1, "UBND-TS": 0, "UBND-YP": 0}},

	// R1, R2, R3 on the 2nd; R4, R5 on the 3rd.
	{KPI: "feedback.reports_submitted", Granularity: "day", Series: []*float64{v(3), v(2), v(0)}, Total: v(5)},
	// R3 in progress; R4 rejected, the others resolved.
	{KPI: "feedback.reports_open", Granularity: "day", Series: []*float64{v(1), v(0), v(0)}, Total: v(1)},
	// Resolved: R1 on the 2nd in 12 h; R2 (24 h) and R5 (6 h) on the 3rd: median 15; all three: 12.
	{KPI: "feedback.resolve_hours_median", Granularity: "day", Series: []*float64{v(12), v(15), nil}, Total: v(12)},
	// Resolved: R1 on the 2nd; R2 and R5 on the 3rd; by category, R1 and R5 moi_truong, R2 giao_thong.
	{KPI: "feedback.reports_resolved", Granularity: "day", Series: []*float64{v(1), v(2), v(0)}, Total: v(3),
		By: "category", Breakdown: map[string]float64{"moi_truong": 2, "giao_thong": 1}},
	// R1 within, R2 past its deadline, R5 has none.
	{KPI: "feedback.resolved_within_deadline", Granularity: "day", Series: []*float64{v(100), v(0), nil}, Total: v(50)},
	// R1 rated 4, R2 rated 2.
	{KPI: "feedback.satisfaction", Granularity: "day", Series: []*float64{v(4), v(2), nil}, Total: v(3)},

	// V1, V2, V3 (once) on the 2nd; V4 on the 3rd; V5 on the 4th.
	{KPI: "health.visits", Granularity: "day", Series: []*float64{v(3), v(1), v(1)}, Total: v(5),
		By: "area", Breakdown: map[string]float64{"27256": 2, "27258": 2, "27261": 1}},
	{KPI: "health.emergencies", Granularity: "day", Series: []*float64{v(1), v(1), v(0)}, Total: v(2)},
	// Waits 20, 0, 40 on the 2nd; V4 has none; 30 on the 4th; 90/4 over all.
	{KPI: "health.wait_minutes", Granularity: "day", Series: []*float64{v(20), nil, v(30)}, Total: v(22.5)},
	// 2nd: noi 90/100 (evening), ngoai 25/50 = 115/150; 3rd: 30/40; all: 145/190.
	{KPI: "health.bed_occupancy", Granularity: "day", Series: []*float64{v(100 * 115.0 / 150), v(75), nil}, Total: v(100 * 145.0 / 190)},

	// 2nd: S1 corrected 390/400 + S2 270/300; 3rd: S1 360/400.
	{KPI: "education.attendance_rate", Granularity: "day", Series: []*float64{v(100 * 660.0 / 700), v(90), nil}, Total: v(100 * 1020.0 / 1100)},
	// Known schools S1, S2, S3. 2nd: S3 missing; 3rd: S2, S3; 4th: all. Over the period: S3.
	{KPI: "education.schools_not_reported", Granularity: "day", Series: []*float64{v(1), v(2), v(3)}, Total: v(1)},

	// 2nd: 130 + 70 in hour 07, 200 in hour 08 = 400 over 2 h; 3rd: 100 in 1 h; all: 500 over 3 h.
	{KPI: "traffic.vehicles_per_hour", Granularity: "day", Series: []*float64{v(200), v(100), nil}, Total: v(500.0 / 3)},
	// 2nd: (130*30 + 70*40)/200 (f3 has no speed); 3rd: 20; all: (6700+2000)/300.
	{KPI: "traffic.mean_speed", Granularity: "day", Series: []*float64{v(33.5), v(20), nil}, Total: v(29)},
	// I1, I2 on the 2nd; I3 (sent twice under two ids) on the 3rd.
	{KPI: "traffic.incidents", Granularity: "day", Series: []*float64{v(2), v(1), v(0)}, Total: v(3)},
	// I1's latest report: 2 injured, 1 killed; I3: 1 injured.
	{KPI: "traffic.casualties", Granularity: "day", Series: []*float64{v(3), v(1), v(0)}, Total: v(4)},
}

// String names an expectation in test output.
func (e Expect) String() string {
	return fmt.Sprintf("%s/%s/filters=%v/by=%s", e.KPI, e.Granularity, e.Filters, e.By)
}

// Constructors of single events, for tests that reproduce one case.
var (
	Dossier    = dossier
	Beds       = beds
	Attendance = attendance
)
