package eventgen

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"time"

	"github.com/iochub/iochub/pkg/event"
)

// Demo is a small province's day after day for `make run`: facilities,
// schools, sensors, dossiers, reports and incidents of the demo province's
// districts, with daily rhythms and rush hours, entities moving through
// their statuses (some late, some still open), and a few schools that do not
// report. It is deterministic: Between gives the same events, with the same
// ids, however the time is cut, so a restarted hub resends nothing new.
type Demo struct {
	Location *time.Location
}

type demoFacility struct{ code, area string }
type demoSchool struct{ code, name, area, level string }

var (
	demoFacilities = []demoFacility{{"BV-DK-BN", "27256"}, {"TTYT-YP", "27258"}, {"TTYT-QV", "27259"}, {"TTYT-TD", "27260"}, {"TTYT-TS", "27261"}, {"TTYT-LT", "27264"}}
	demoWards      = []struct {
		name string
		beds int
	}{{"noi", 120}, {"ngoai", 90}, {"san", 60}}
	demoSchools = []demoSchool{
		{"THPT-HV", "Trường THPT Hàn Thuyên", "27256", "upper_secondary"}, {"THCS-NV", "Trường THCS Ninh Xá", "27256", "lower_secondary"},
		{"TH-DT", "Trường Tiểu học Đông Thọ", "27258", "primary"}, {"MN-YP", "Trường Mầm non Yên Phong", "27258", "preschool"},
		{"THCS-QV", "Trường THCS Quế Võ", "27259", "lower_secondary"}, {"TH-LS", "Trường Tiểu học Lim", "27260", "primary"},
		{"THPT-TS", "Trường THPT Từ Sơn", "27261", "upper_secondary"}, {"TH-DB", "Trường Tiểu học Đình Bảng", "27261", "primary"},
		{"THCS-TT", "Trường THCS Thuận Thành", "27262", "lower_secondary"}, {"TH-GB", "Trường Tiểu học Gia Bình", "27263", "primary"},
		{"MN-LT", "Trường Mầm non Lương Tài", "27264", "preschool"}, {"THCS-LT", "Trường THCS Lương Tài", "27264", "lower_secondary"},
	}
	demoDistricts = Areas[1:]
	demoAgencies  = []string{"SO-TP", "SO-KHDT", "SO-TNMT", "SO-GTVT", "UBND"}
	demoCategory  = []string{"moi_truong", "giao_thong", "trat_tu_do_thi", "an_ninh", "dien_nuoc", "xay_dung"}
)

// demoSeats are about where each demo district's seat is (longitude,
// latitude): the demo's reports and incidents happen around them.
var demoSeats = map[string][2]float64{
	"27256": {106.075, 21.185}, "27258": {105.955, 21.205}, "27259": {106.165, 21.150}, "27260": {106.030, 21.125},
	"27261": {105.965, 21.120}, "27262": {106.085, 21.045}, "27263": {106.195, 21.065}, "27264": {106.225, 21.025},
}

// demoPlace is a point within about 2 km of area's seat, the same for an
// entity's every status (from its id, not the generator's draws).
func demoPlace(id, area string) map[string]any {
	h := fnv.New64a()
	_, _ = h.Write([]byte(id))
	x := h.Sum64()
	dx, dy := float64(x%2001)/100000-0.01, float64((x/2001)%2001)/100000-0.01
	seat := demoSeats[area]
	return map[string]any{"lat": math.Round((seat[1]+dy)*1e5) / 1e5, "lon": math.Round((seat[0]+dx)*1e5) / 1e5}
}

// rhythm is how busy an hour of the local day is, 0..1: a morning and an
// evening peak, quiet nights.
func rhythm(h int) float64 {
	return []float64{.05, .03, .03, .03, .05, .15, .45, .9, 1, .85, .75, .7, .55, .6, .7, .75, .85, 1, .9, .6, .4, .25, .15, .08}[h]
}

func (d *Demo) loc() *time.Location {
	if d.Location != nil {
		return d.Location
	}
	return time.UTC
}

// Between returns the demo events whose time is in [from, to), oldest first
// within each kind.
func (d *Demo) Between(from, to time.Time) []event.Event {
	var out []event.Event
	emit := func(e event.Event) {
		if !e.Time.Before(from) && e.Time.Before(to) {
			out = append(out, e)
		}
	}
	start := from.Truncate(time.Hour)
	for h := start.Add(-10 * 24 * time.Hour); h.Before(to); h = h.Add(time.Hour) {
		rnd := rand.New(rand.NewPCG(uint64(h.Unix()), 0x10c))
		lh := h.In(d.loc())
		busy := rhythm(lh.Hour())
		office := lh.Weekday() != time.Sunday && lh.Hour() >= 7 && lh.Hour() < 17
		if office {
			for i := range 2 + rnd.IntN(5) {
				d.dossier(rnd, h, i, emit)
			}
		}
		for i := range int(busy*4) + rnd.IntN(2) {
			d.report(rnd, h, i, emit)
		}
		for i := range int(busy*1.5) + boolInt(rnd.IntN(3) == 0) {
			d.incident(rnd, h, i, emit)
		}
		if h.Before(start) {
			continue // only entities with a life look back
		}
		for i := range int(busy*25) + 2 + rnd.IntN(4) {
			f := demoFacilities[rnd.IntN(len(demoFacilities))]
			kind := "outpatient"
			if x := rnd.IntN(100); x < 8 {
				kind = "emergency"
			} else if x < 20 {
				kind = "inpatient"
			}
			at := h.Add(time.Duration(rnd.IntN(3600)) * time.Second)
			emit(demoEvent(fmt.Sprintf("demo-visit-%d-%d", h.Unix(), i), "/health/his/"+f.code, "health.visit", at, map[string]any{
				"visit_id": fmt.Sprintf("V%d%02d", h.Unix(), i), "facility_code": f.code, "area_code": f.area, "kind": kind,
				"age_band": pickOf(rnd, "0-4", "5-14", "15-24", "25-44", "45-64", "65+"), "sex": pickOf(rnd, "male", "female"),
				"insured": rnd.IntN(10) < 9, "started_at": at.UTC().Format(time.RFC3339), "wait_minutes": 5 + rnd.IntN(int(busy*60)+10)}))
		}
		for _, f := range demoFacilities {
			for _, w := range demoWards {
				ward, beds := w.name, w.beds
				occ := int(float64(beds) * (0.6 + 0.3*rnd.Float64()))
				at := h.Add(5 * time.Minute)
				emit(demoEvent(fmt.Sprintf("demo-beds-%s-%s-%d", f.code, ward, h.Unix()), "/health/his/"+f.code, "health.bed_occupancy", at, map[string]any{
					"facility_code": f.code, "area_code": f.area, "ward": ward, "observed_at": at.UTC().Format(time.RFC3339),
					"beds_total": beds, "beds_occupied": occ}))
			}
		}
		for q := range 4 { // 15-minute sensor windows
			ws := h.Add(time.Duration(q) * 15 * time.Minute)
			for s, area := range demoDistricts {
				k := busy * (0.8 + 0.4*rnd.Float64())
				emit(demoEvent(fmt.Sprintf("demo-flow-%d-%d", ws.Unix(), s), "/traffic/sensors", "traffic.flow", ws.Add(15*time.Minute), map[string]any{
					"sensor_id": fmt.Sprintf("LOOP-%03d", s+1), "segment_id": fmt.Sprintf("QL1A-%02d", s+1), "area_code": area,
					"window_start": ws.UTC().Format(time.RFC3339), "window_seconds": 900,
					"motorbikes": int(k * 900), "cars": int(k * 180), "trucks": int(k * 40), "buses": int(k * 12),
					"mean_speed_kmh": float64(int((55-25*k)*10)) / 10, "occupancy_pct": float64(int(k*700)) / 10}))
			}
		}
		if lh.Hour() == 9 && lh.Weekday() != time.Sunday {
			day := time.Date(lh.Year(), lh.Month(), lh.Day(), 0, 0, 0, 0, d.loc())
			for i, s := range demoSchools {
				if rnd.IntN(8) == 0 {
					continue // this school does not report today
				}
				enrolled := 300 + 40*i
				present := enrolled - rnd.IntN(enrolled/12+1)
				at := h.Add(time.Duration(rnd.IntN(3000)) * time.Second)
				emit(demoEvent(fmt.Sprintf("demo-att-%s-%s", s.code, day.Format("20060102")), "/education/sms", "education.attendance", at, map[string]any{
					"school_code": s.code, "school_name": s.name, "area_code": s.area, "level": s.level, "date": day.Format(time.DateOnly),
					"enrolled": enrolled, "present": present, "absent_excused": (enrolled - present) / 2, "absent_unexcused": enrolled - present - (enrolled-present)/2}))
			}
		}
	}
	return out
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func pickOf(rnd *rand.Rand, xs ...string) string { return xs[rnd.IntN(len(xs))] }

func demoEvent(id, source, typ string, at time.Time, data map[string]any) event.Event {
	b, _ := json.Marshal(data)
	return event.Event{SpecVersion: "1.0", ID: id, Source: source, Type: "vn.ioc." + typ + ".v1", Time: at.UTC().Truncate(time.Second),
		DataContentType: event.ContentTypeJSON, Data: b}
}

func rfc(t time.Time) string { return t.UTC().Truncate(time.Second).Format(time.RFC3339) }

func (d *Demo) dossier(rnd *rand.Rand, h time.Time, i int, emit func(event.Event)) {
	id := fmt.Sprintf("HS-%d-%02d", h.Unix(), i)
	recv := h.Add(time.Duration(rnd.IntN(3600)) * time.Second).Truncate(time.Second)
	due := recv.Add(time.Duration(2+rnd.IntN(4)) * 24 * time.Hour)
	base := map[string]any{"dossier_id": id, "procedure_code": fmt.Sprintf("1.00%d", 1+rnd.IntN(9)), "agency_code": demoAgencies[rnd.IntN(len(demoAgencies))],
		"area_code": demoDistricts[rnd.IntN(len(demoDistricts))], "channel": pickOf(rnd, "online", "online", "online", "in_person", "in_person", "postal"),
		"received_at": rfc(recv), "due_at": rfc(due), "paid_online": rnd.IntN(2) == 0}
	step := func(n int, status string, at time.Time, extra map[string]any) {
		data := map[string]any{"status": status, "status_time": rfc(at)}
		for k, v := range base {
			data[k] = v
		}
		for k, v := range extra {
			data[k] = v
		}
		emit(demoEvent(fmt.Sprintf("demo-%s-%d", id, n), "/publicservice/dvc", "publicservice.dossier", at, data))
	}
	step(0, "received", recv, nil)
	proc := recv.Add(time.Duration(30+rnd.IntN(240)) * time.Minute)
	step(1, "processing", proc, nil)
	switch x := rnd.IntN(100); {
	case x < 80: // resolved: most on time, some late
		res := proc.Add(time.Duration(rnd.IntN(int(due.Sub(proc).Minutes()*1.3))) * time.Minute)
		step(2, "resolved", res, map[string]any{"resolved_at": rfc(res)})
	case x < 88:
		step(2, "supplement_requested", proc.Add(20*time.Hour), nil)
	case x < 92:
		step(2, "rejected", proc.Add(5*time.Hour), nil)
	} // the rest stay in processing, some past their due date
}

func (d *Demo) report(rnd *rand.Rand, h time.Time, i int, emit func(event.Event)) {
	id := fmt.Sprintf("PA-%d-%02d", h.Unix(), i)
	sub := h.Add(time.Duration(rnd.IntN(3600)) * time.Second).Truncate(time.Second)
	due := sub.Add(48 * time.Hour)
	area := demoDistricts[rnd.IntN(len(demoDistricts))]
	base := map[string]any{"report_id": id, "category": demoCategory[rnd.IntN(len(demoCategory))], "area_code": area,
		"channel": pickOf(rnd, "app", "app", "hotline", "web", "zalo"), "submitted_at": rfc(sub), "due_at": rfc(due), "agency_code": "UBND-" + area,
		"location": demoPlace(id, area)}
	step := func(n int, status string, at time.Time, extra map[string]any) {
		data := map[string]any{"status": status, "status_time": rfc(at)}
		for k, v := range base {
			data[k] = v
		}
		for k, v := range extra {
			data[k] = v
		}
		emit(demoEvent(fmt.Sprintf("demo-%s-%d", id, n), "/feedback/portal", "feedback.report", at, data))
	}
	step(0, "submitted", sub, nil)
	as := sub.Add(time.Duration(10+rnd.IntN(120)) * time.Minute)
	step(1, "assigned", as, nil)
	ip := as.Add(time.Duration(30+rnd.IntN(300)) * time.Minute)
	step(2, "in_progress", ip, nil)
	if rnd.IntN(100) < 85 {
		res := ip.Add(time.Duration(60+rnd.IntN(60*60)) * time.Minute)
		extra := map[string]any{"resolved_at": rfc(res)}
		if rnd.IntN(10) < 7 {
			extra["satisfaction"] = 2 + rnd.IntN(4)
		}
		step(3, "resolved", res, extra)
	}
}

func (d *Demo) incident(rnd *rand.Rand, h time.Time, i int, emit func(event.Event)) {
	id := fmt.Sprintf("SC-%d-%02d", h.Unix(), i)
	occ := h.Add(time.Duration(rnd.IntN(3600)) * time.Second).Truncate(time.Second)
	area := demoDistricts[rnd.IntN(len(demoDistricts))]
	kind := pickOf(rnd, "accident", "accident", "congestion", "congestion", "violation", "road_damage")
	injured, killed := 0, 0
	if kind == "accident" {
		injured = rnd.IntN(3)
		if rnd.IntN(12) == 0 {
			killed = 1
		}
	}
	base := map[string]any{"incident_id": id, "kind": kind, "severity": pickOf(rnd, "minor", "minor", "moderate", "serious"),
		"area_code": area, "segment_id": fmt.Sprintf("QL1A-%02d", 1+rnd.IntN(8)), "occurred_at": rfc(occ), "location": demoPlace(id, area)}
	step := func(n int, status string, at time.Time, inj, kil int) {
		data := map[string]any{"status": status, "status_time": rfc(at), "injured": inj, "killed": kil}
		for k, v := range base {
			data[k] = v
		}
		emit(demoEvent(fmt.Sprintf("demo-%s-%d", id, n), "/traffic/cameras", "traffic.incident", at, data))
	}
	step(0, "reported", occ.Add(3*time.Minute), injured, 0)
	step(1, "responding", occ.Add(time.Duration(10+rnd.IntN(20))*time.Minute), injured, killed)
	step(2, "cleared", occ.Add(time.Duration(60+rnd.IntN(120))*time.Minute), injured, killed)
}
