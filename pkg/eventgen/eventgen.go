// Package eventgen makes realistic, valid events of every v1 type for tests,
// the benchmark and demos: a deterministic mix weighted like a province's
// traffic (sensor windows and hospital visits far outnumber bed reports).
package eventgen

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/iochub/iochub/pkg/event"
)

// Areas are the area codes events are spread over: the demo province of
// deploy/areas/bac-ninh.csv (27) and its eight district-level units. A test
// of pkg/area checks each is in that file.
var Areas = []string{"27", "27256", "27258", "27259", "27260", "27261", "27262", "27263", "27264"}

// Mix is the share of each type in Next, in parts per 100.
var Mix = []struct {
	Type   string
	Weight int
}{
	{"vn.ioc.traffic.flow.v1", 40},
	{"vn.ioc.health.visit.v1", 25},
	{"vn.ioc.publicservice.dossier.v1", 12},
	{"vn.ioc.feedback.report.v1", 8},
	{"vn.ioc.education.attendance.v1", 5},
	{"vn.ioc.health.bed_occupancy.v1", 5},
	{"vn.ioc.traffic.incident.v1", 5},
}

// Generator makes events. Not safe for concurrent use: give each goroutine its own.
type Generator struct {
	rnd    *rand.Rand
	prefix string
	n      int
	Now    func() time.Time
}

// New returns a generator; seed fixes the sequence, prefix starts every event id.
func New(seed uint64, prefix string) *Generator {
	return &Generator{rnd: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), prefix: prefix, Now: time.Now}
}

// Next makes the next event of the mix.
func (g *Generator) Next() event.Event {
	w := g.rnd.IntN(100)
	for _, m := range Mix {
		if w < m.Weight {
			return g.Of(m.Type)
		}
		w -= m.Weight
	}
	return g.Of(Mix[0].Type)
}

func (g *Generator) pick(xs ...string) string { return xs[g.rnd.IntN(len(xs))] }

func (g *Generator) ts(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// Of makes an event of type typ (one of Mix's types).
func (g *Generator) Of(typ string) event.Event {
	g.n++
	now := g.Now().Truncate(time.Second)
	area := Areas[g.rnd.IntN(len(Areas))]
	id := fmt.Sprintf("%s-%d", g.prefix, g.n)
	var source string
	var data map[string]any
	switch typ {
	case "vn.ioc.traffic.flow.v1":
		source = "/traffic/sensors"
		seg := g.rnd.IntN(40)
		data = map[string]any{"sensor_id": fmt.Sprintf("LOOP-%03d", seg), "segment_id": fmt.Sprintf("SEG-%03d", seg), "area_code": area,
			"window_start": g.ts(now.Add(-5 * time.Minute)), "window_seconds": 300,
			"motorbikes": g.rnd.IntN(2000), "cars": g.rnd.IntN(500), "trucks": g.rnd.IntN(80), "buses": g.rnd.IntN(20),
			"mean_speed_kmh": float64(g.rnd.IntN(700)) / 10, "occupancy_pct": float64(g.rnd.IntN(1000)) / 10}
	case "vn.ioc.health.visit.v1":
		source = "/health/his/" + area
		data = map[string]any{"visit_id": id, "facility_code": fmt.Sprintf("%s%02d", area, g.rnd.IntN(10)), "area_code": area,
			"kind": g.pick("outpatient", "outpatient", "outpatient", "inpatient", "emergency"), "age_band": g.pick("0-4", "5-14", "15-24", "25-44", "45-64", "65+"),
			"sex": g.pick("male", "female"), "insured": g.rnd.IntN(10) < 9, "started_at": g.ts(now.Add(-time.Duration(g.rnd.IntN(60)) * time.Minute)),
			"wait_minutes": g.rnd.IntN(120), "icd10": fmt.Sprintf("%c%02d", 'A'+rune(g.rnd.IntN(26)), g.rnd.IntN(100)),
			"patient_id": fmt.Sprintf("BN-%08d", g.rnd.IntN(1e8))}
	case "vn.ioc.publicservice.dossier.v1":
		source = "/publicservice/dvc"
		recv := now.Add(-time.Duration(g.rnd.IntN(10*24)) * time.Hour)
		status := g.pick("received", "processing", "supplement_requested", "resolved", "resolved", "rejected", "withdrawn")
		data = map[string]any{"dossier_id": fmt.Sprintf("000.00.27.H%02d-%s", g.rnd.IntN(20), id), "procedure_code": fmt.Sprintf("1.%06d", g.rnd.IntN(5000)),
			"agency_code": fmt.Sprintf("27.H%02d", g.rnd.IntN(20)), "area_code": area, "channel": g.pick("online", "online", "in_person", "postal"),
			"service_level": g.pick("full_online", "partial_online"), "status": status, "status_time": g.ts(now), "received_at": g.ts(recv),
			"due_at": g.ts(recv.Add(5 * 24 * time.Hour)), "paid_online": g.rnd.IntN(2) == 0, "applicant_id_number": fmt.Sprintf("027%09d", g.rnd.IntN(1e9)),
			"applicant_name": "Nguyễn Văn An"}
		if status == "resolved" {
			data["resolved_at"] = g.ts(now)
		}
	case "vn.ioc.feedback.report.v1":
		source = "/feedback/portal"
		sub := now.Add(-time.Duration(g.rnd.IntN(72)) * time.Hour)
		status := g.pick("submitted", "assigned", "in_progress", "resolved", "rejected")
		data = map[string]any{"report_id": "PAHT-" + id, "category": g.pick("environment", "traffic", "urban_order", "public_service", "security"),
			"area_code": area, "channel": g.pick("app", "hotline", "web", "zalo"), "status": status, "status_time": g.ts(now),
			"submitted_at": g.ts(sub), "due_at": g.ts(sub.Add(72 * time.Hour)),
			"location":      map[string]any{"lat": 21 + g.rnd.Float64()/2, "lon": 105.9 + g.rnd.Float64()/2},
			"reporter_name": "Trần Thị Bình", "reporter_phone": fmt.Sprintf("09%08d", g.rnd.IntN(1e8))}
		if status == "resolved" {
			data["resolved_at"], data["satisfaction"] = g.ts(now), 1+g.rnd.IntN(5)
		}
	case "vn.ioc.education.attendance.v1":
		source = "/education/csdl-nganh"
		enrolled := 300 + g.rnd.IntN(1200)
		exc, unexc := g.rnd.IntN(30), g.rnd.IntN(10)
		data = map[string]any{"school_code": fmt.Sprintf("%s%03d", area, g.rnd.IntN(50)), "school_name": "Trường Tiểu học Suối Hoa", "area_code": area,
			"level": g.pick("preschool", "primary", "lower_secondary", "upper_secondary"), "date": now.Format(time.DateOnly),
			"enrolled": enrolled, "present": enrolled - exc - unexc, "absent_excused": exc, "absent_unexcused": unexc}
	case "vn.ioc.health.bed_occupancy.v1":
		source = "/health/his/" + area
		total := 50 + g.rnd.IntN(900)
		data = map[string]any{"facility_code": fmt.Sprintf("%s%02d", area, g.rnd.IntN(10)), "area_code": area, "ward": g.pick("ICU", "internal", "surgery", "pediatrics"),
			"observed_at": g.ts(now), "beds_total": total, "beds_occupied": g.rnd.IntN(total + total/5)}
	case "vn.ioc.traffic.incident.v1":
		source = "/traffic/csgt"
		data = map[string]any{"incident_id": "TN-" + id, "kind": g.pick("accident", "congestion", "violation", "road_damage"),
			"severity": g.pick("minor", "moderate", "serious", "critical"), "status": g.pick("reported", "responding", "cleared"), "area_code": area,
			"segment_id": fmt.Sprintf("SEG-%03d", g.rnd.IntN(40)), "occurred_at": g.ts(now.Add(-10 * time.Minute)), "status_time": g.ts(now),
			"injured": g.rnd.IntN(4), "killed": g.rnd.IntN(100) / 97, "location": map[string]any{"lat": 21 + g.rnd.Float64()/2, "lon": 105.9 + g.rnd.Float64()/2}}
	default:
		panic("eventgen: unknown type " + typ)
	}
	b, err := json.Marshal(data)
	if err != nil {
		panic(err)
	}
	return event.Event{SpecVersion: event.SpecVersion, ID: id, Source: source, Type: typ, Time: now,
		DataContentType: event.ContentTypeJSON, Subject: area, Data: b}
}
