package traffic

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/iochub/iochub/pkg/connector"
	"github.com/iochub/iochub/pkg/event"
)

// NewIncidentWebhook is the incident centre's webhook under secret.
func NewIncidentWebhook(secret []byte) *connector.Webhook {
	return &connector.Webhook{Secret: secret, Identify: func(body []byte) (string, string) {
		var h struct {
			ID, State, At string
		}
		var raw map[string]any
		_ = json.Unmarshal(body, &raw)
		h.ID, _ = raw["ma_su_co"].(string)
		h.State, _ = raw["trang_thai"].(string)
		h.At, _ = raw["thoi_diem"].(string)
		return h.ID, h.State + "@" + h.At
	}}
}

// Incident vocabularies of the incident centre, mapped to the schema's.
var (
	IncidentKinds    = map[string]string{"tai_nan": "accident", "un_tac": "congestion", "vi_pham": "violation", "hu_hong_duong": "road_damage"}
	IncidentSeverity = map[string]string{"nhe": "minor", "trung_binh": "moderate", "nghiem_trong": "serious", "rat_nghiem_trong": "critical"}
	IncidentStates   = map[string]string{"tiep_nhan": "reported", "dang_xu_ly": "responding", "da_giai_quyet": "cleared"}
)

// MapIncident turns the incident centre's body into a traffic.incident event:
//
//	{"ma_su_co": "SC-…", "loai": "tai_nan", "muc_do": "nghiem_trong", "trang_thai": "dang_xu_ly",
//	 "ma_dia_ban": "27256", "doan_duong": "QL1A-01", "thoi_diem_xay_ra": "…", "thoi_diem": "…",
//	 "so_nguoi_bi_thuong": 2, "so_nguoi_tu_vong": 0, "vi_tri": {"lat": …, "lon": …},
//	 "nguoi_bao": {"so_dien_thoai": "…"}}
func MapIncident(r connector.Record) (event.Event, error) {
	var in struct {
		ID       string `json:"ma_su_co"`
		Kind     string `json:"loai"`
		Severity string `json:"muc_do"`
		State    string `json:"trang_thai"`
		Area     string `json:"ma_dia_ban"`
		Segment  string `json:"doan_duong"`
		Occurred string `json:"thoi_diem_xay_ra"`
		At       string `json:"thoi_diem"`
		Injured  *int   `json:"so_nguoi_bi_thuong"`
		Killed   *int   `json:"so_nguoi_tu_vong"`
		Where    *struct {
			Lat float64 `json:"lat"`
			Lon float64 `json:"lon"`
		} `json:"vi_tri"`
		Reporter *struct {
			Phone string `json:"so_dien_thoai"`
		} `json:"nguoi_bao"`
	}
	if err := json.Unmarshal(r.Data, &in); err != nil {
		return event.Event{}, fmt.Errorf("body is not the incident centre's JSON: %w", err)
	}
	var errs []error
	look := func(name, v string, m map[string]string) string {
		out, ok := m[v]
		if !ok {
			keys := make([]string, 0, len(m))
			for k := range m {
				keys = append(keys, k)
			}
			errs = append(errs, fmt.Errorf("%s %q: want one of %s", name, v, strings.Join(keys, ", ")))
		}
		return out
	}
	kind, sev, state := look("loai", in.Kind, IncidentKinds), look("muc_do", in.Severity, IncidentSeverity), look("trang_thai", in.State, IncidentStates)
	if in.ID == "" || in.Area == "" {
		errs = append(errs, errors.New("ma_su_co and ma_dia_ban are required"))
	}
	occ, err := time.Parse(time.RFC3339, in.Occurred)
	if err != nil {
		errs = append(errs, fmt.Errorf("thoi_diem_xay_ra %q is not an RFC 3339 time", in.Occurred))
	}
	at, err := time.Parse(time.RFC3339, in.At)
	if err != nil {
		errs = append(errs, fmt.Errorf("thoi_diem %q is not an RFC 3339 time", in.At))
	}
	if err := errors.Join(errs...); err != nil {
		return event.Event{}, err
	}
	data := map[string]any{"incident_id": in.ID, "kind": kind, "severity": sev, "status": state, "area_code": in.Area,
		"occurred_at": occ.UTC().Format(time.RFC3339), "status_time": at.UTC().Format(time.RFC3339)}
	if in.Segment != "" {
		data["segment_id"] = in.Segment
	}
	if in.Injured != nil {
		data["injured"] = *in.Injured
	}
	if in.Killed != nil {
		data["killed"] = *in.Killed
	}
	if in.Where != nil {
		data["location"] = map[string]any{"lat": in.Where.Lat, "lon": in.Where.Lon}
	}
	if in.Reporter != nil && in.Reporter.Phone != "" {
		data["reporter_phone"] = in.Reporter.Phone
	}
	b, _ := json.Marshal(data)
	return event.Event{Source: IncidentSource, Type: "vn.ioc.traffic.incident.v1", Subject: in.Area, Time: at.UTC(), Data: b}, nil
}
