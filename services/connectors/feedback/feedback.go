// Package feedback takes the citizen field-report portal's webhook: a POST
// for every status change of a report, signed as Standard Webhooks lays out
// (see connector.Webhook). A request with a missing, bad or stale signature
// gets 401 and publishes nothing. A signed request is answered
// 202 only once its event is in JetStream (or dead-lettered), so the portal
// resends whatever the hub did not take (503 with Retry-After).
//
// The portal's body:
//
//	{"ma_phan_anh": "PA-2026-000123", "linh_vuc": "moi_truong", "ma_dia_ban": "27256",
//	 "kenh": "app", "trang_thai": "da_xu_ly", "thoi_diem": "2026-11-23T09:00:00+07:00",
//	 "thoi_diem_gui": "…", "han_xu_ly": "…", "thoi_diem_xu_ly": "…", "don_vi_xu_ly": "UBND-27256",
//	 "danh_gia": 4, "vi_tri": {"lat": 21.18, "lon": 106.07},
//	 "nguoi_phan_anh": {"ho_ten": "…", "so_dien_thoai": "…"}}
package feedback

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/iochub/iochub/pkg/connector"
	"github.com/iochub/iochub/pkg/event"
)

// Source is the source of every field report this connector makes; it is
// reserved for it (the gateway refuses it to producers).
const Source = "/feedback/portal"

// NewWebhook is the portal's webhook under secret (see connector.Webhook).
func NewWebhook(secret []byte) *connector.Webhook {
	return &connector.Webhook{Secret: secret, Identify: Identify}
}

// Identify reads a body's report code and change: the record's key and version.
func Identify(body []byte) (key, version string) {
	var head struct {
		Code    string `json:"ma_phan_anh"`
		State   string `json:"trang_thai"`
		Changed string `json:"thoi_diem"`
	}
	_ = json.Unmarshal(body, &head)
	return head.Code, head.State + "@" + head.Changed
}

// States maps the portal's trang_thai to the schema's status.
var States = map[string]string{"tiep_nhan": "submitted", "da_phan_cong": "assigned", "dang_xu_ly": "in_progress", "da_xu_ly": "resolved", "tu_choi": "rejected"}

// Channels maps kenh to the schema's channel.
var Channels = map[string]string{"app": "app", "tong_dai": "hotline", "hotline": "hotline", "web": "web", "zalo": "zalo"}

// Map turns the portal's body into a feedback.report event.
func Map(r connector.Record) (event.Event, error) {
	var in struct {
		Code      string   `json:"ma_phan_anh"`
		Field     string   `json:"linh_vuc"`
		Area      string   `json:"ma_dia_ban"`
		Channel   string   `json:"kenh"`
		State     string   `json:"trang_thai"`
		Changed   string   `json:"thoi_diem"`
		Submitted string   `json:"thoi_diem_gui"`
		Due       string   `json:"han_xu_ly"`
		Resolved  string   `json:"thoi_diem_xu_ly"`
		Agency    string   `json:"don_vi_xu_ly"`
		Rating    *int     `json:"danh_gia"`
		Where     *latLon  `json:"vi_tri"`
		Reporter  *contact `json:"nguoi_phan_anh"`
	}
	if err := json.Unmarshal(r.Data, &in); err != nil {
		return event.Event{}, fmt.Errorf("body is not the portal's JSON: %w", err)
	}
	var errs []error
	need := func(name, v string) {
		if strings.TrimSpace(v) == "" {
			errs = append(errs, fmt.Errorf("%s is missing", name))
		}
	}
	need("ma_phan_anh", in.Code)
	need("linh_vuc", in.Field)
	need("ma_dia_ban", in.Area)
	status, ok := States[in.State]
	if !ok {
		errs = append(errs, fmt.Errorf("trang_thai %q: want one of tiep_nhan, da_phan_cong, dang_xu_ly, da_xu_ly, tu_choi", in.State))
	}
	channel, ok := Channels[in.Channel]
	if !ok {
		errs = append(errs, fmt.Errorf("kenh %q: want app, tong_dai, web or zalo", in.Channel))
	}
	times := map[string]string{}
	for name, v := range map[string]string{"thoi_diem": in.Changed, "thoi_diem_gui": in.Submitted, "han_xu_ly": in.Due, "thoi_diem_xu_ly": in.Resolved} {
		if v == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s %q is not an RFC 3339 time", name, v))
			continue
		}
		times[name] = t.UTC().Format(time.RFC3339)
	}
	need("thoi_diem", times["thoi_diem"])
	need("thoi_diem_gui", times["thoi_diem_gui"])
	if err := errors.Join(errs...); err != nil {
		return event.Event{}, err
	}
	data := map[string]any{"report_id": in.Code, "category": in.Field, "area_code": in.Area, "channel": channel, "status": status,
		"status_time": times["thoi_diem"], "submitted_at": times["thoi_diem_gui"]}
	if in.Agency != "" {
		data["agency_code"] = in.Agency
	}
	if v, ok := times["han_xu_ly"]; ok {
		data["due_at"] = v
	}
	if v, ok := times["thoi_diem_xu_ly"]; ok {
		data["resolved_at"] = v
	}
	if in.Rating != nil {
		data["satisfaction"] = *in.Rating
	}
	if in.Where != nil {
		data["location"] = map[string]any{"lat": in.Where.Lat, "lon": in.Where.Lon}
	}
	if in.Reporter != nil {
		if in.Reporter.Name != "" {
			data["reporter_name"] = in.Reporter.Name
		}
		if in.Reporter.Phone != "" {
			data["reporter_phone"] = in.Reporter.Phone
		}
	}
	b, err := json.Marshal(data)
	if err != nil {
		return event.Event{}, err
	}
	at, _ := time.Parse(time.RFC3339, times["thoi_diem"])
	return event.Event{Source: Source, Type: "vn.ioc.feedback.report.v1", Subject: in.Area, Time: at, Data: b}, nil
}

type latLon struct {
	Lat float64 `json:"lat"`
	Lon float64 `json:"lon"`
}

type contact struct {
	Name  string `json:"ho_ten"`
	Phone string `json:"so_dien_thoai"`
}
