// Package publicservice polls the public-service dossier system's REST API
// for dossiers changed since a cursor, page by page, and turns each changed
// dossier into a publicservice.dossier event.
//
// The API, as the dossier system (and sim.DossierAPI) serves it:
//
//	GET {base}/api/v1/ho-so?sau=<cursor>&so_ban_ghi=100
//	{"du_lieu": [{"ma_ho_so": "…", "ma_thu_tuc": "1.001", "co_quan": "SO-TP", "ma_dia_ban": "27256",
//	              "kenh_nop": "truc_tuyen", "muc_do": "toan_trinh", "trang_thai": "dang_xu_ly",
//	              "ngay_tiep_nhan": "…", "han_xu_ly": "…", "ngay_tra_ket_qua": "…",
//	              "thanh_toan_truc_tuyen": true, "cap_nhat_luc": "…", "con_tro": "…"}, …],
//	 "trang_tiep": "<the next page's URL, or empty>"}
//
// Dossiers come ordered by change; con_tro is the cursor that resumes after
// that dossier's change.
package publicservice

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/iochub/iochub/pkg/connector"
	"github.com/iochub/iochub/pkg/event"
)

// Source is the source of every dossier event this connector makes; it is
// reserved for it (the gateway refuses it to producers).
const Source = "/publicservice/dvc"

// Poller is the connector's source.
type Poller struct {
	BaseURL  string        // e.g. http://dvc.example:8081
	Token    string        // bearer token of the API, if it wants one
	Interval time.Duration // between polls once caught up; default 30 s
	PageSize int           // default 100
	Client   *http.Client

	cursor string
	pages  connector.Pager
}

// Connect resumes after the checkpoint (a cursor the API gave).
func (p *Poller) Connect(_ context.Context, checkpoint string) error {
	if _, err := url.Parse(p.BaseURL); err != nil || p.BaseURL == "" {
		return fmt.Errorf("dossier API base URL %q: %v", p.BaseURL, err)
	}
	p.cursor = checkpoint
	p.pages = connector.Pager{Interval: p.Interval, FirstURL: p.firstURL, Fetch: p.fetch}
	return nil
}

func (p *Poller) firstURL() string {
	size := p.PageSize
	if size <= 0 {
		size = 100
	}
	q := url.Values{"so_ban_ghi": {fmt.Sprint(size)}}
	if p.cursor != "" {
		q.Set("sau", p.cursor)
	}
	return strings.TrimRight(p.BaseURL, "/") + "/api/v1/ho-so?" + q.Encode()
}

// Read returns the next changed dossier, polling when caught up.
func (p *Poller) Read(ctx context.Context) (connector.Record, error) {
	r, err := p.pages.Next(ctx)
	if err == nil {
		p.cursor = r.Cursor
	}
	return r, err
}

func (p *Poller) fetch(ctx context.Context, u string) ([]connector.Record, string, error) {
	var page struct {
		Data []json.RawMessage `json:"du_lieu"`
		Next string            `json:"trang_tiep"`
	}
	if err := connector.GetJSON(ctx, p.Client, u, p.Token, "application/json", "dossier API", &page); err != nil {
		return nil, "", err
	}
	out := make([]connector.Record, 0, len(page.Data))
	for i, raw := range page.Data {
		var head struct {
			ID     string `json:"ma_ho_so"`
			Update string `json:"cap_nhat_luc"`
			Cursor string `json:"con_tro"`
		}
		_ = json.Unmarshal(raw, &head)
		if head.Cursor == "" {
			return nil, "", fmt.Errorf("%w: dossier %d of the page has no con_tro: cannot resume after it", connector.ErrUnavailable, i)
		}
		out = append(out, connector.Record{Key: head.ID, Version: head.Update, Cursor: head.Cursor, Data: raw})
	}
	return out, page.Next, nil
}

// Ack does nothing: the cursor is the checkpoint.
func (p *Poller) Ack(context.Context, connector.Record) error { return nil }

// Close drops what was read and not handed out.
func (p *Poller) Close() error { p.pages.Reset(); return nil }

// Statuses maps trang_thai to the schema's status.
var Statuses = map[string]string{"tiep_nhan": "received", "dang_xu_ly": "processing", "yeu_cau_bo_sung": "supplement_requested",
	"da_tra_ket_qua": "resolved", "tu_choi": "rejected", "rut_ho_so": "withdrawn"}

// Channels maps kenh_nop to the schema's channel.
var Channels = map[string]string{"truc_tuyen": "online", "truc_tiep": "in_person", "buu_chinh": "postal"}

// ServiceLevels maps muc_do to the schema's service level.
var ServiceLevels = map[string]string{"toan_trinh": "full_online", "mot_phan": "partial_online"}

// Map turns one dossier of the API into an event.
func Map(r connector.Record) (event.Event, error) {
	var in struct {
		ID        string `json:"ma_ho_so"`
		Procedure string `json:"ma_thu_tuc"`
		Agency    string `json:"co_quan"`
		Area      string `json:"ma_dia_ban"`
		Channel   string `json:"kenh_nop"`
		Level     string `json:"muc_do"`
		Status    string `json:"trang_thai"`
		Received  string `json:"ngay_tiep_nhan"`
		Due       string `json:"han_xu_ly"`
		Resolved  string `json:"ngay_tra_ket_qua"`
		PaidOnl   *bool  `json:"thanh_toan_truc_tuyen"`
		Updated   string `json:"cap_nhat_luc"`
	}
	if err := json.Unmarshal(r.Data, &in); err != nil {
		return event.Event{}, fmt.Errorf("dossier is not the API's JSON: %w", err)
	}
	var errs []error
	for name, v := range map[string]string{"ma_ho_so": in.ID, "ma_thu_tuc": in.Procedure, "co_quan": in.Agency, "ma_dia_ban": in.Area} {
		if v == "" {
			errs = append(errs, fmt.Errorf("%s is missing", name))
		}
	}
	status, ok := Statuses[in.Status]
	if !ok {
		errs = append(errs, fmt.Errorf("trang_thai %q is not a known status", in.Status))
	}
	channel, ok := Channels[in.Channel]
	if !ok {
		errs = append(errs, fmt.Errorf("kenh_nop %q: want truc_tuyen, truc_tiep or buu_chinh", in.Channel))
	}
	times := map[string]string{}
	for name, v := range map[string]string{"ngay_tiep_nhan": in.Received, "han_xu_ly": in.Due, "ngay_tra_ket_qua": in.Resolved, "cap_nhat_luc": in.Updated} {
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
	for _, name := range []string{"ngay_tiep_nhan", "cap_nhat_luc"} {
		if times[name] == "" && !strings.Contains(fmt.Sprint(errs), name) {
			errs = append(errs, fmt.Errorf("%s is missing", name))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return event.Event{}, err
	}
	data := map[string]any{"dossier_id": in.ID, "procedure_code": in.Procedure, "agency_code": in.Agency, "area_code": in.Area,
		"channel": channel, "status": status, "status_time": times["cap_nhat_luc"], "received_at": times["ngay_tiep_nhan"]}
	if l, ok := ServiceLevels[in.Level]; ok {
		data["service_level"] = l
	}
	if v := times["han_xu_ly"]; v != "" {
		data["due_at"] = v
	}
	if v := times["ngay_tra_ket_qua"]; v != "" {
		data["resolved_at"] = v
	}
	if in.PaidOnl != nil {
		data["paid_online"] = *in.PaidOnl
	}
	b, err := json.Marshal(data)
	if err != nil {
		return event.Event{}, err
	}
	at, _ := time.Parse(time.RFC3339, times["cap_nhat_luc"])
	return event.Event{Source: Source, Type: "vn.ioc.publicservice.dossier.v1", Subject: in.ID, Time: at, Data: b}, nil
}
