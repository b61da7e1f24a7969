// Package iocapi serves the IOC: the KPI catalogue and values
// (GET /v1/kpis, GET /v1/kpis/{name}), the lists behind them
// (GET /v1/lists/{name}: overdue dossiers, late reports, incidents), the area reference data
// (GET /v1/areas) and the dashboard at /, to readers holding a bearer token
// from the config file.
package iocapi

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/iochub/iochub/pkg/area"
	"github.com/iochub/iochub/pkg/httpedge"
	"github.com/iochub/iochub/pkg/kpi"
)

// Problem types, the "type" member of a problem document.
const (
	ProblemBadParameter = "urn:iochub:problem:bad-parameter"
	ProblemUnknownKPI   = "urn:iochub:problem:unknown-kpi"
	ProblemNoShapes     = "urn:iochub:problem:no-shapes"
	ProblemUnauthorized = httpedge.ProblemUnauthorized
	ProblemForbidden    = httpedge.ProblemForbidden
	ProblemUnavailable  = httpedge.ProblemUnavailable
)

// KPIs answers KPI requests; *kpi.Engine is one.
type KPIs interface {
	Check(r kpi.Request) (*kpi.Def, error)
	Run(ctx context.Context, r kpi.Request) (*kpi.Def, *kpi.Result, error)
	Freshness(ctx context.Context, d *kpi.Def) (kpi.Freshness, error)
	List(ctx context.Context, l *kpi.List, r kpi.ListRequest) (*kpi.ListPage, error)
}

// API is the iocapi HTTP handler set.
type API struct {
	cfg     Config
	readers *httpedge.Keyring[*Reader]
	catalog *kpi.Catalog
	kpis    KPIs
	areas   *area.List
	loc     *time.Location
	log     *zap.Logger
	now     func() time.Time

	shapes *area.Shapes // nil: the dashboard draws a tile grid

	alertsRead   AlertReader // nil: no banner
	alertMu      sync.Mutex
	alertAt      time.Time
	alertNotices []Notice

	publicMu    sync.Mutex
	publicCache map[string]publicEntry // the public figures, by last day
}

// Option changes how New builds the API.
type Option func(*API)

// WithShapes gives the map the units' outlines (GET /v1/areas/shapes).
func WithShapes(s *area.Shapes) Option { return func(a *API) { a.shapes = s } }

// New builds the API. cfg must have passed Validate.
func New(cfg Config, catalog *kpi.Catalog, kpis KPIs, areas *area.List, log *zap.Logger, opts ...Option) (*API, error) {
	cfg.Defaults()
	a := &API{cfg: cfg, catalog: catalog, kpis: kpis, areas: areas, loc: cfg.Timezone.Loc(), log: log, now: time.Now}
	for _, o := range opts {
		o(a)
	}
	readers := make([]*Reader, len(a.cfg.Readers))
	for i := range a.cfg.Readers {
		readers[i] = &a.cfg.Readers[i]
	}
	a.readers = httpedge.NewKeyring("reader", readers, func(r *Reader) string { return r.TokenSHA256 })
	return a, nil
}

// Register mounts the API and the dashboard on mux.
func (a *API) Register(mux httpedge.Router) {
	mux.HandleFunc("GET /v1/kpis", a.readers.Require(a.catalogue))
	mux.HandleFunc("GET /v1/kpis/{name}", a.readers.Require(a.kpi))
	mux.HandleFunc("GET /v1/areas", a.readers.Require(a.listAreas))
	mux.HandleFunc("GET /v1/areas/shapes", a.readers.Require(a.areaShapes))
	mux.HandleFunc("GET /v1/whoami", a.readers.Require(a.whoami))
	mux.HandleFunc("GET /v1/lists", a.readers.Require(a.lists))
	mux.HandleFunc("GET /v1/alerts", a.readers.Require(a.alerts))
	mux.HandleFunc("GET /v1/lists/{name}", a.readers.Require(a.list))
	static, _ := fs.Sub(webFS, "web")
	files := http.FileServerFS(static)
	mux.Handle("GET /", withHeaders(files))
	mux.Handle("GET /ops", withHeaders(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeFileFS(w, r, static, "ops.html") // the operators' page; its data needs an admin token (/v1/ops)
	})))
	// The field-report portal's public results: aggregates only, no token.
	mux.HandleFunc("GET /v1/public/feedback", a.publicFeedback)
	mux.Handle("GET /public", withHeaders(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeFileFS(w, r, static, "public.html")
	})))
}

func withHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		h.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, status int, body any) { httpedge.WriteJSON(w, status, body) }

func problem(w http.ResponseWriter, status int, typ, title, detail string) {
	httpedge.Problem{Type: typ, Title: title, Status: status, Detail: detail}.Write(w)
}

func (a *API) whoami(w http.ResponseWriter, _ *http.Request, rd *Reader) {
	writeJSON(w, http.StatusOK, map[string]string{"name": rd.Name, "role": rd.Role})
}

func (a *API) catalogue(w http.ResponseWriter, _ *http.Request, rd *Reader) {
	out := []*kpi.Def{}
	for _, n := range a.catalog.Names() {
		d, _ := a.catalog.Def(n)
		if rd.Sees(d.Sector) {
			out = append(out, d)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"kpis": out})
}

// areaShapes answers the units' outlines (GeoJSON), or 404 when the
// areas file has none beside it.
func (a *API) areaShapes(w http.ResponseWriter, _ *http.Request, _ *Reader) {
	if a.shapes == nil {
		problem(w, http.StatusNotFound, ProblemNoShapes, "No shapes", "the areas file has no .geojson beside it: the map is a tile grid of the units")
		return
	}
	w.Header().Set("Content-Type", "application/geo+json")
	w.Header().Set("Cache-Control", "private, max-age=3600")
	_, _ = w.Write(a.shapes.GeoJSON())
}

func (a *API) listAreas(w http.ResponseWriter, _ *http.Request, _ *Reader) {
	writeJSON(w, http.StatusOK, map[string]any{"areas": a.areas.All()})
}

// KPIResponse is the JSON answer of GET /v1/kpis/{name}.
type KPIResponse struct {
	Name        string              `json:"name"`
	Title       kpi.Text            `json:"title"`
	Unit        kpi.Text            `json:"unit"`
	Format      string              `json:"format"`
	From        time.Time           `json:"from"`
	To          time.Time           `json:"to"`
	Granularity string              `json:"granularity"`
	Filters     map[string][]string `json:"filters"`
	By          string              `json:"by,omitempty"`
	kpi.Result
	Freshness kpi.Freshness `json:"freshness"`
	// TargetState is where the total stands against the KPI's target
	// (met, below, alarm); empty without a target or a total.
	TargetState string `json:"target_state,omitempty"`
	// Previous is the period before, with compare=previous.
	Previous *Comparison `json:"previous,omitempty"`
}

// Comparison is a KPI's total over the previous period: the period
// shifted back by as many whole calendar days as it spans, so that today
// until now compares with yesterday until the same hour.
type Comparison struct {
	From  time.Time `json:"from"`
	To    time.Time `json:"to"`
	Total *float64  `json:"total"`
	// Change of the total: in percentage points for a percent KPI
	// (change_kind points), otherwise relative to the previous total in %
	// (change_kind percent); null when either total is missing (or the
	// previous is 0 for a relative change).
	Change     *float64 `json:"change"`
	ChangeKind string   `json:"change_kind"`
}

// PreviousPeriod is the period compare=previous compares with: from and
// to moved back by the whole calendar days from–to spans, in loc.
func PreviousPeriod(from, to time.Time, loc *time.Location) (time.Time, time.Time) {
	days := int((to.Sub(from) + 24*time.Hour - time.Nanosecond) / (24 * time.Hour))
	f, t := from.In(loc), to.In(loc)
	return f.AddDate(0, 0, -days), t.AddDate(0, 0, -days)
}

// change is the change from prev to cur for a KPI of format.
func change(format string, cur, prev *float64) (*float64, string) {
	if format == "percent" {
		if cur == nil || prev == nil {
			return nil, "points"
		}
		v := *cur - *prev
		return &v, "points"
	}
	if cur == nil || prev == nil || *prev == 0 {
		return nil, "percent"
	}
	v := (*cur - *prev) / *prev * 100
	return &v, "percent"
}

func (a *API) kpi(w http.ResponseWriter, r *http.Request, rd *Reader) {
	name := r.PathValue("name")
	d, err := a.catalog.Def(name)
	if err != nil {
		problem(w, http.StatusBadRequest, ProblemUnknownKPI, "Unknown KPI", fmt.Sprintf("no KPI is called %q; GET /v1/kpis lists them", name))
		return
	}
	if !rd.Sees(d.Sector) {
		problem(w, http.StatusForbidden, ProblemForbidden, "Not your sector",
			fmt.Sprintf("reader %q (role %s) may not read %s KPIs", rd.Name, rd.Role, d.Sector))
		return
	}
	req, format, compare, err := a.parse(r.URL.Query(), d)
	if err == nil {
		_, err = a.kpis.Check(req)
	}
	if err != nil {
		badParameter(w, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	_, res, err := a.kpis.Run(ctx, req)
	if err != nil {
		a.log.Error("kpi query failed", zap.String("kpi", name), zap.Error(err))
		problem(w, http.StatusServiceUnavailable, ProblemUnavailable, "KPI query failed", "the KPI store did not answer; try again")
		return
	}
	fresh, err := a.kpis.Freshness(ctx, d)
	if err != nil {
		a.log.Warn("kpi freshness failed", zap.String("kpi", name), zap.Error(err))
	}
	if format == "csv" {
		writeCSV(w, d, res, a.loc)
		return
	}
	var prev *Comparison
	if compare {
		preq := req
		preq.From, preq.To = PreviousPeriod(req.From, req.To, a.loc)
		preq.By = ""
		_, pres, err := a.kpis.Run(ctx, preq)
		if err != nil {
			a.log.Error("kpi query failed", zap.String("kpi", name), zap.Error(err))
			problem(w, http.StatusServiceUnavailable, ProblemUnavailable, "KPI query failed", "the KPI store did not answer; try again")
			return
		}
		prev = &Comparison{From: preq.From.In(a.loc), To: preq.To.In(a.loc), Total: pres.Total}
		prev.Change, prev.ChangeKind = change(d.Format, res.Total, pres.Total)
	}
	state := ""
	if d.Target != nil && res.Total != nil {
		state = d.Target.State(*res.Total)
	}
	filters := req.Filters
	if v := r.URL.Query().Get("area"); v != "" {
		filters = maps.Clone(filters)
		filters["area"] = []string{v} // as asked, not expanded
	}
	writeJSON(w, http.StatusOK, KPIResponse{Name: d.Name, Title: d.Title, Unit: d.Unit, Format: d.Format, From: req.From.In(a.loc), To: req.To.In(a.loc),
		Granularity: req.Granularity, Filters: filters, By: req.By, Result: *localize(res, a.loc), Freshness: fresh, TargetState: state, Previous: prev})
}

func localize(res *kpi.Result, loc *time.Location) *kpi.Result {
	for i := range res.Series {
		res.Series[i].T = res.Series[i].T.In(loc)
	}
	return res
}

// DefaultDays is the period of a KPI request without from: the calendar
// day of to and the days before it, DefaultDays in all, in the IOC's time
// zone, as the dashboard's "7 ngày qua" (last 7 days).
const DefaultDays = 7

// DefaultFrom is the start of the default period ending at to: local
// midnight DefaultDays-1 days before the day to falls in (a to at
// midnight ends the day before it).
func DefaultFrom(to time.Time, loc *time.Location) time.Time {
	last := to.Add(-time.Nanosecond).In(loc)
	return time.Date(last.Year(), last.Month(), last.Day()-(DefaultDays-1), 0, 0, 0, 0, loc)
}

// MaxFilterValues bounds how many values one dimension filter may list.
const MaxFilterValues = 100

// badParameter answers 400 with a problem naming the parameter err is
// about (a *kpi.ParameterError; any other error is the detail alone).
func badParameter(w http.ResponseWriter, err error) {
	var pe *kpi.ParameterError
	if !errors.As(err, &pe) {
		pe = &kpi.ParameterError{Detail: err.Error()}
	}
	httpedge.WriteProblem(w, http.StatusBadRequest, parameterProblem{
		Problem:   httpedge.Problem{Type: ProblemBadParameter, Title: "Bad parameter", Status: http.StatusBadRequest, Detail: pe.Detail},
		Parameter: pe.Param,
	})
}

// parameterProblem is the 400 answer naming the parameter at fault.
type parameterProblem struct {
	httpedge.Problem
	Parameter string `json:"parameter,omitempty"`
}

// parse reads the query string: the request, the format and whether the
// previous period is asked for. Errors are *kpi.ParameterError.
func (a *API) parse(q url.Values, d *kpi.Def) (kpi.Request, string, bool, error) {
	bad := kpi.BadParameter
	req := kpi.Request{Name: d.Name, Filters: map[string][]string{}}
	now := a.now()
	var err error
	for k := range q {
		switch k {
		case "from", "to", "granularity", "by", "format", "compare":
		default:
			if !slices.Contains(kpi.Dimensions, k) {
				return req, "", false, bad(k, "unknown parameter %q (from, to, granularity, by, format, compare and the dimensions %s)", k, strings.Join(d.DimensionNames, ", "))
			}
		}
		if len(q[k]) > 1 {
			return req, "", false, bad(k, "%s is given %d times; give it once (several values: comma-separated)", k, len(q[k]))
		}
	}
	req.To = now
	if v := q.Get("to"); v != "" {
		if req.To, err = a.parseTime(v); err != nil {
			return req, "", false, bad("to", "to: %v", err)
		}
	}
	req.From = DefaultFrom(req.To, a.loc)
	if v := q.Get("from"); v != "" {
		if req.From, err = a.parseTime(v); err != nil {
			return req, "", false, bad("from", "from: %v", err)
		}
	}
	req.Granularity = q.Get("granularity")
	if req.Granularity == "" {
		req.Granularity = d.Granularities[0]
		if d.Allows("day") {
			req.Granularity = "day"
		}
	} else if !slices.Contains(kpi.Granularities, req.Granularity) {
		return req, "", false, bad("granularity", "granularity %q: want hour, day or month", req.Granularity)
	}
	req.By = q.Get("by")
	format := q.Get("format")
	if format != "" && format != "json" && format != "csv" {
		return req, "", false, bad("format", "format %q: want json or csv", format)
	}
	for _, dim := range kpi.Dimensions {
		v := q.Get(dim)
		if !q.Has(dim) {
			continue
		}
		vals := strings.Split(v, ",")
		if v == "" || slices.Contains(vals, "") {
			return req, "", false, bad(dim, "%s is empty", dim)
		}
		if len(vals) > MaxFilterValues {
			return req, "", false, bad(dim, "%s lists %d values; at most %d", dim, len(vals), MaxFilterValues)
		}
		if dim == "area" {
			if vals, err = a.expandAreas(vals); err != nil {
				return req, "", false, bad("area", "area: %v", err)
			}
		}
		req.Filters[dim] = vals
	}
	compare := false
	switch q.Get("compare") {
	case "":
	case "previous":
		compare = true
	default:
		return req, "", false, bad("compare", "compare %q: want previous (the period before, as long)", q.Get("compare"))
	}
	return req, format, compare, nil
}

// expandAreas checks each code against the reference data and adds every
// unit within it, so area=27 (the province) covers its districts.
func (a *API) expandAreas(codes []string) ([]string, error) {
	var out []string
	for _, c := range codes {
		if _, err := a.areas.Lookup(c); err != nil {
			if errors.Is(err, area.ErrUnknown) {
				return nil, fmt.Errorf("unknown area %q (GET /v1/areas lists the codes)", c)
			}
			return nil, err
		}
		for _, x := range a.areas.All() {
			if a.areas.Within(x.Code, c) && !slices.Contains(out, x.Code) {
				out = append(out, x.Code)
			}
		}
	}
	return out, nil
}

// parseTime takes RFC 3339 or a local date (yyyy-mm-dd: its midnight).
func (a *API) parseTime(v string) (time.Time, error) {
	if t, err := time.ParseInLocation(time.DateOnly, v, a.loc); err == nil {
		return t, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither a date (2026-11-23) nor an RFC 3339 time (2026-11-23T08:00:00+07:00)", v)
	}
	return t, nil
}

// writeCSV writes part,key,value rows: the series (key: bucket start), the
// total, then the breakdown (key: the dimension's value). Empty value: none.
func writeCSV(w http.ResponseWriter, d *kpi.Def, res *kpi.Result, loc *time.Location) {
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s.csv"`, d.Name))
	cw := csv.NewWriter(w)
	num := func(v *float64) string {
		if v == nil {
			return ""
		}
		return strconv.FormatFloat(*v, 'f', -1, 64)
	}
	_ = cw.Write([]string{"part", "key", "value"})
	for _, p := range res.Series {
		_ = cw.Write([]string{"series", p.T.In(loc).Format(time.RFC3339), num(p.Value)})
	}
	_ = cw.Write([]string{"total", "", num(res.Total)})
	for _, p := range res.Breakdown {
		_ = cw.Write([]string{"breakdown", inert(p.Key), num(p.Value)})
	}
	cw.Flush()
}

// inert keeps a text cell from being read as a formula by a spreadsheet
// (CSV injection): a cell starting with = + - @ or a tab or carriage return
// gets a leading apostrophe. Keys come from events, which anyone with a
// producer token writes.
func inert(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
