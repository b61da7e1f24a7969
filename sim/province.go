package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"strings"
	"time"

	"github.com/iochub/iochub/pkg/event"
	"github.com/iochub/iochub/pkg/eventgen"
	"github.com/iochub/iochub/services/connectors/education"
	"github.com/iochub/iochub/services/connectors/feedback"
	"github.com/iochub/iochub/services/connectors/health"
	"github.com/iochub/iochub/services/connectors/publicservice"
	"github.com/iochub/iochub/services/connectors/traffic"
)

// Province feeds the demo province's life (eventgen.Demo: daily rhythms,
// rush hours, entities moving through their statuses, schools that do not
// report) to the simulated sector systems, each in its own format, with one
// record in MalformedEvery broken.
type Province struct {
	Dossiers   *DossierAPI
	FHIR       *FHIRServer
	Attendance *ExportDir
	Beds       *ExportDir
	// Sensor publishes a sensor's message (MQTT topic, payload).
	Sensor    func(topic string, payload []byte) error
	Reports   *WebhookSender
	Incidents *WebhookSender

	MalformedEvery int
}

func invert(m map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		if _, ok := out[v]; !ok || len(k) > len(out[v]) {
			out[v] = k
		}
	}
	return out
}

var (
	dossierStatus  = invert(publicservice.Statuses)
	dossierChannel = invert(publicservice.Channels)
	dossierLevel   = invert(publicservice.ServiceLevels)
	reportState    = invert(feedback.States)
	reportChannel  = map[string]string{"app": "app", "hotline": "tong_dai", "web": "web", "zalo": "zalo"}
	incidentKind   = invert(traffic.IncidentKinds)
	incidentSev    = invert(traffic.IncidentSeverity)
	incidentState  = invert(traffic.IncidentStates)
	visitClass     = map[string]string{"outpatient": "AMB", "inpatient": "IMP", "emergency": "EMER"}
	levelName      = map[string]string{"preschool": "Mầm non", "primary": "Tiểu học", "lower_secondary": "THCS", "upper_secondary": "THPT"}
	bandAge        = map[string]int{"0-4": 2, "5-14": 9, "15-24": 20, "25-44": 35, "45-64": 55, "65+": 72}
)

// idNumber is a number derived from an event id, the same on every run.
func idNumber(id string) uint32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(id))
	return h.Sum32()
}

// broken picks the records sent malformed, by the event's id, so a
// restarted simulation breaks the same ones.
func (p *Province) broken(id string) bool {
	if p.MalformedEvery <= 0 {
		return false
	}
	return idNumber(id)%uint32(p.MalformedEvery) == 0
}

func local(s string) string {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return s
	}
	return t.In(vn).Format(time.RFC3339)
}

var vn = func() *time.Location {
	l, err := time.LoadLocation("Asia/Ho_Chi_Minh")
	if err != nil {
		return time.FixedZone("ICT", 7*3600)
	}
	return l
}()

// Feed hands events to their systems. Bed readings of one facility and
// time become one export file.
func (p *Province) Feed(evs []event.Event) error {
	beds := map[string][]string{}
	var bedOrder []string
	for _, e := range evs {
		var d map[string]any
		if err := json.Unmarshal(e.Data, &d); err != nil {
			return err
		}
		str := func(k string) string { s, _ := d[k].(string); return s }
		num := func(k string) int { f, _ := d[k].(float64); return int(f) }
		switch e.Type {
		case "vn.ioc.publicservice.dossier.v1":
			c := map[string]any{"ma_ho_so": str("dossier_id"), "ma_thu_tuc": str("procedure_code"), "co_quan": str("agency_code"),
				"ma_dia_ban": str("area_code"), "kenh_nop": dossierChannel[str("channel")], "trang_thai": dossierStatus[str("status")],
				"ngay_tiep_nhan": local(str("received_at")), "cap_nhat_luc": local(str("status_time"))}
			if v := str("service_level"); v != "" {
				c["muc_do"] = dossierLevel[v]
			}
			if v := str("due_at"); v != "" {
				c["han_xu_ly"] = local(v)
			}
			if v := str("resolved_at"); v != "" {
				c["ngay_tra_ket_qua"] = local(v)
			}
			if v, ok := d["paid_online"].(bool); ok {
				c["thanh_toan_truc_tuyen"] = v
			}
			if p.broken(e.ID) {
				c["kenh_nop"] = "fax"
			}
			p.Dossiers.Add(c)
		case "vn.ioc.health.visit.v1":
			start, _ := time.Parse(time.RFC3339, str("started_at"))
			pid := "pt-" + str("visit_id")
			birth := start.AddDate(-bandAge[str("age_band")], -6, 0).Format(time.DateOnly)
			p.FHIR.PutPatient(pid, map[string]any{"gender": str("sex"), "birthDate": birth})
			class := visitClass[str("kind")]
			if p.broken(e.ID) {
				class = "HH"
			}
			enc := Encounter(class, str("facility_code"), pid, start.In(vn), num("wait_minutes"), d["insured"] == true, "")
			enc["extension"] = append(enc["extension"].([]any), map[string]any{"url": health.AreaExtension, "valueString": str("area_code")})
			p.FHIR.PutEncounter(str("visit_id"), enc)
		case "vn.ioc.health.bed_occupancy.v1":
			key := str("facility_code") + "@" + str("observed_at")
			if _, ok := beds[key]; !ok {
				bedOrder = append(bedOrder, key)
			}
			total := fmt.Sprint(num("beds_total"))
			if p.broken(e.ID) {
				total = "?"
			}
			beds[key] = append(beds[key], strings.Join([]string{str("facility_code"), str("area_code"), str("ward"), local(str("observed_at")),
				total, fmt.Sprint(num("beds_occupied"))}, ","))
		case "vn.ioc.education.attendance.v1":
			day, _ := time.Parse(time.DateOnly, str("date"))
			present := fmt.Sprint(num("present"))
			if p.broken(e.ID) {
				present = "?"
			}
			row := strings.Join([]string{str("school_code"), `"` + str("school_name") + `"`, str("area_code"), levelName[str("level")],
				day.Format("02/01/2006"), fmt.Sprint(num("enrolled")), present, fmt.Sprint(num("absent_excused")), fmt.Sprint(num("absent_unexcused"))}, ",")
			if err := p.Attendance.WriteAt(day.Format("20060102")+"_"+str("school_code")+"_"+e.Time.UTC().Format("150405"), e.Time, education.Columns, row); err != nil {
				return err
			}
		case "vn.ioc.traffic.flow.v1":
			m := map[string]any{"sensor": str("sensor_id"), "segment": str("segment_id"), "area": str("area_code"), "start": local(str("window_start")),
				"seconds": num("window_seconds"), "counts": map[string]int{"motorbike": num("motorbikes"), "car": num("cars"), "truck": num("trucks"), "bus": num("buses")}}
			if v, ok := d["mean_speed_kmh"]; ok {
				m["speed_kmh"] = v
			}
			if v, ok := d["occupancy_pct"]; ok {
				m["occupancy"] = v
			}
			if p.broken(e.ID) {
				delete(m, "counts")
			}
			b, _ := json.Marshal(m)
			if err := p.Sensor("traffic/sensors/"+str("sensor_id")+"/counts", b); err != nil {
				return err
			}
		case "vn.ioc.traffic.incident.v1":
			m := map[string]any{"ma_su_co": str("incident_id"), "loai": incidentKind[str("kind")], "muc_do": incidentSev[str("severity")],
				"trang_thai": incidentState[str("status")], "ma_dia_ban": str("area_code"), "doan_duong": str("segment_id"),
				"thoi_diem_xay_ra": local(str("occurred_at")), "thoi_diem": local(str("status_time")),
				"so_nguoi_bi_thuong": num("injured"), "so_nguoi_tu_vong": num("killed")}
			if loc, ok := d["location"]; ok {
				m["vi_tri"] = loc
			}
			if p.broken(e.ID) {
				m["loai"] = "?"
			}
			b, _ := json.Marshal(m)
			p.Incidents.Queue(b)
		case "vn.ioc.feedback.report.v1":
			m := map[string]any{"ma_phan_anh": str("report_id"), "linh_vuc": str("category"), "ma_dia_ban": str("area_code"),
				"kenh": reportChannel[str("channel")], "trang_thai": reportState[str("status")], "thoi_diem": local(str("status_time")),
				"thoi_diem_gui": local(str("submitted_at")), "don_vi_xu_ly": str("agency_code"),
				"nguoi_phan_anh": map[string]any{"so_dien_thoai": fmt.Sprintf("09%08d", idNumber(e.ID)%100000000)}}
			for k, v := range map[string]string{"han_xu_ly": "due_at", "thoi_diem_xu_ly": "resolved_at"} {
				if s := str(v); s != "" {
					m[k] = local(s)
				}
			}
			if v, ok := d["satisfaction"]; ok {
				m["danh_gia"] = v
			}
			if loc, ok := d["location"]; ok {
				m["vi_tri"] = loc
			}
			if p.broken(e.ID) {
				m["trang_thai"] = "dong"
			}
			b, _ := json.Marshal(m)
			p.Reports.Queue(b)
		}
	}
	for _, key := range bedOrder {
		facility, observed, _ := strings.Cut(key, "@")
		t, _ := time.Parse(time.RFC3339, observed)
		if err := p.Beds.WriteAt(t.UTC().Format("20060102T1504")+"_"+facility, t, health.BedColumns, beds[key]...); err != nil {
			return err
		}
	}
	return nil
}

// Run feeds the demo province from history ago until ctx is done, then
// every tick what has happened since.
func (p *Province) Run(ctx context.Context, history, tick time.Duration, onErr func(error)) {
	demo := &eventgen.Demo{Location: vn}
	from := time.Now().Add(-history).Truncate(time.Hour)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		to := time.Now().Truncate(time.Second)
		// A failed feed (a system not answering yet) is fed again next tick
		// from the same start: records are the same each time, so what went
		// through before is a retry the hub stores once.
		if err := p.Feed(demo.Between(from, to)); err != nil {
			if onErr != nil {
				onErr(err)
			}
		} else {
			from = to
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
