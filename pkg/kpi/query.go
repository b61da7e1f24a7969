package kpi

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/iochub/iochub/pkg/chstore"
)

// ErrBadRequest is matched by every error about the request itself (a
// parameter the caller can fix); its message names the parameter.
var ErrBadRequest = errors.New("bad request")

// ParameterError is a request parameter the caller can fix: Param names it
// (from, to, granularity, by, format, a dimension), Detail says what is
// wrong, naming it too. It matches ErrBadRequest.
type ParameterError struct {
	Param  string
	Detail string
}

// BadParameter is a *ParameterError for param.
func BadParameter(param, format string, args ...any) error {
	return &ParameterError{Param: param, Detail: fmt.Sprintf(format, args...)}
}

func (e *ParameterError) Error() string { return ErrBadRequest.Error() + ": " + e.Detail }
func (e *ParameterError) Unwrap() error { return ErrBadRequest }

// MaxRange bounds the period of a request per granularity, so one request
// cannot ask for an unbounded series.
var MaxRange = map[string]time.Duration{
	"hour":  31 * 24 * time.Hour,
	"day":   366 * 24 * time.Hour,
	"month": 10 * 366 * 24 * time.Hour,
}

// Querier runs the queries the engine builds, in one database;
// *chstore.Store is one.
type Querier interface {
	Database() string
	Qualified(table string) string
	Query(ctx context.Context, query string, args ...any) (chstore.Rows, error)
}

// Request asks for one KPI over [From, To).
type Request struct {
	Name        string
	From, To    time.Time
	Granularity string
	// Filters: dimension -> values the rows must have one of. Area values
	// are already expanded to every unit within the asked area.
	Filters map[string][]string
	By      string    // a dimension to break the total down by, or ""
	Now     time.Time // "now" for KPIs such as overdue now; zero: time.Now()
}

// Point is one bucket of a series. Value is nil where the KPI has no value
// (a rate over nothing).
type Point struct {
	T     time.Time `json:"t"`
	Value *float64  `json:"value"`
}

// Part is one value of a breakdown.
type Part struct {
	Key   string   `json:"key"`
	Value *float64 `json:"value"`
}

// Result is a KPI's answer.
type Result struct {
	Series    []Point  `json:"series"`
	Total     *float64 `json:"total"`
	Breakdown []Part   `json:"breakdown,omitempty"`
}

// Engine answers KPI requests from ClickHouse.
type Engine struct {
	Catalog  *Catalog
	Store    Querier        // the database of the raw tables and rollups
	Location *time.Location // buckets of a day or month start at local midnight

	freshMu sync.Mutex
	fresh   map[string]freshEntry
}

// Check validates r against the KPI's definition. Errors wrap ErrBadRequest
// (or ErrUnknown) and name the parameter.
func (e *Engine) Check(r Request) (*Def, error) {
	d, err := e.Catalog.Def(r.Name)
	if err != nil {
		return nil, err
	}
	if !r.From.Before(r.To) {
		return nil, BadParameter("from", "from (%s) must be before to (%s)", r.From.Format(time.RFC3339), r.To.Format(time.RFC3339))
	}
	if !d.Allows(r.Granularity) {
		return nil, BadParameter("granularity", "granularity %q: %s allows %s", r.Granularity, d.Name, strings.Join(d.Granularities, ", "))
	}
	if max := MaxRange[r.Granularity]; r.To.Sub(r.From) > max {
		return nil, BadParameter("from", "range of %s is longer than the %d days allowed at granularity %s",
			r.To.Sub(r.From).Round(time.Hour), int(max.Hours()/24), r.Granularity)
	}
	for dim := range r.Filters {
		if _, ok := d.Dimensions[dim]; !ok {
			return nil, BadParameter(dim, "%s cannot be filtered by %q; it allows %s", d.Name, dim, strings.Join(d.DimensionNames, ", "))
		}
	}
	if r.By != "" {
		if _, ok := d.Dimensions[r.By]; !ok {
			return nil, BadParameter("by", "by=%s: %s can be broken down by %s", r.By, d.Name, strings.Join(d.DimensionNames, ", "))
		}
	}
	return d, nil
}

// Run answers r: the series at r.Granularity, the total over the period and,
// when r.By is set, the total broken down by that dimension.
func (e *Engine) Run(ctx context.Context, r Request) (*Def, *Result, error) {
	d, err := e.Check(r)
	if err != nil {
		return nil, nil, err
	}
	if r.Now.IsZero() {
		r.Now = time.Now()
	}
	loc := e.Location
	if loc == nil {
		loc = time.UTC
	}
	buckets := Buckets(r.From, r.To, r.Granularity, loc)
	var filters []string
	for dim := range r.Filters {
		filters = append(filters, dim)
	}
	sort.Strings(filters)
	args := []any{
		chstore.Named("from", r.From.Unix()), chstore.Named("to", r.To.Unix()), chstore.Named("now", r.Now.Unix()),
		chstore.Named("tz", loc.String()),
	}
	for _, dim := range filters {
		args = append(args, chstore.Named("f_"+dim, r.Filters[dim]))
	}
	res := &Result{}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		rows, err := e.query(gctx, d, renderArgs{bucket: r.Granularity, filters: filters}, args, buckets)
		if err != nil {
			return err
		}
		byT := map[int64]*float64{}
		for _, row := range rows {
			byT[row.t.Unix()] = row.v
		}
		res.Series = make([]Point, len(buckets))
		for i, b := range buckets {
			v, ok := byT[b.Unix()]
			if !ok && d.Empty == "zero" {
				v = ptr(0)
			}
			res.Series[i] = Point{T: b, Value: v}
		}
		return nil
	})
	g.Go(func() error {
		rows, err := e.query(gctx, d, renderArgs{bucket: "total", filters: filters}, args, buckets[:min(1, len(buckets))])
		if err != nil {
			return err
		}
		if len(rows) > 0 {
			res.Total = rows[0].v
		} else if d.Empty == "zero" {
			res.Total = ptr(0)
		}
		return nil
	})
	if r.By != "" {
		g.Go(func() error {
			rows, err := e.query(gctx, d, renderArgs{bucket: "total", key: d.Dimensions[r.By], filters: filters}, args, buckets[:min(1, len(buckets))])
			if err != nil {
				return err
			}
			for _, row := range rows {
				res.Breakdown = append(res.Breakdown, Part{Key: row.k, Value: row.v})
			}
			sort.Slice(res.Breakdown, func(i, j int) bool { return res.Breakdown[i].Key < res.Breakdown[j].Key })
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, nil, err
	}
	return d, res, nil
}

type row struct {
	t time.Time
	k string
	v *float64
}

func (e *Engine) query(ctx context.Context, d *Def, ra renderArgs, args []any, buckets []time.Time) ([]row, error) {
	ra.db = e.Store.Database()
	q, err := d.render(ra)
	if err != nil {
		return nil, fmt.Errorf("kpi %s: %w", d.Name, err)
	}
	epochs := make([]uint32, len(buckets))
	for i, b := range buckets {
		epochs[i] = uint32(b.Unix())
	}
	args = append(slices.Clip(args), chstore.Named("buckets", epochs))
	// Entity KPIs read ReplacingMergeTree rollups with FINAL and filter the
	// latest state outside it: no predicate may be pushed below FINAL.
	ctx = chstore.WithSettings(ctx, chstore.Settings{"enable_optimize_predicate_expression": 0})
	rs, err := e.Store.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("kpi %s: %w", d.Name, err)
	}
	defer rs.Close()
	var out []row
	for rs.Next() {
		var r row
		var v float64
		if err := rs.Scan(&r.t, &r.k, &v); err != nil {
			return nil, fmt.Errorf("kpi %s: the query must return (t DateTime, k String, v Float64): %w", d.Name, err)
		}
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			r.v = ptr(v)
		}
		out = append(out, r)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("kpi %s: %w", d.Name, err)
	}
	return out, nil
}

func ptr(v float64) *float64 { return &v }

// Buckets lists the starts of the buckets of granularity g (hour, day,
// month in loc) that overlap [from, to). The first starts at or before from.
func Buckets(from, to time.Time, g string, loc *time.Location) []time.Time {
	f := from.In(loc)
	var start time.Time
	var next func(time.Time) time.Time
	switch g {
	case "hour":
		start = f.Truncate(time.Hour)
		next = func(t time.Time) time.Time { return t.Add(time.Hour) }
	case "month":
		start = time.Date(f.Year(), f.Month(), 1, 0, 0, 0, 0, loc)
		next = func(t time.Time) time.Time { return t.AddDate(0, 1, 0) }
	default:
		start = time.Date(f.Year(), f.Month(), f.Day(), 0, 0, 0, 0, loc)
		next = func(t time.Time) time.Time { return t.AddDate(0, 0, 1) }
	}
	var out []time.Time
	for t := start; t.Before(to); t = next(t) {
		out = append(out, t)
	}
	return out
}

type freshEntry struct {
	at time.Time
	f  Freshness
}

// Freshness dates the data behind a KPI: the newest event time and the
// newest ingest time over its raw tables.
type Freshness struct {
	LastEventTime  *time.Time `json:"last_event_time"`
	LastIngestTime *time.Time `json:"last_ingest_time"`
}

// Freshness of d's raw tables; each table's figures are cached for 5 s.
func (e *Engine) Freshness(ctx context.Context, d *Def) (Freshness, error) {
	var out Freshness
	for _, table := range d.Freshness {
		f, err := e.tableFreshness(ctx, table)
		if err != nil {
			return out, err
		}
		if f.LastEventTime != nil && (out.LastEventTime == nil || f.LastEventTime.After(*out.LastEventTime)) {
			out.LastEventTime = f.LastEventTime
		}
		if f.LastIngestTime != nil && (out.LastIngestTime == nil || f.LastIngestTime.After(*out.LastIngestTime)) {
			out.LastIngestTime = f.LastIngestTime
		}
	}
	return out, nil
}

func (e *Engine) tableFreshness(ctx context.Context, table string) (Freshness, error) {
	e.freshMu.Lock()
	if c, ok := e.fresh[table]; ok && time.Since(c.at) < 5*time.Second {
		e.freshMu.Unlock()
		return c.f, nil
	}
	e.freshMu.Unlock()
	q := "SELECT count(), max(event_time), max(ingest_time) FROM " + e.Store.Qualified(table)
	rs, err := e.Store.Query(ctx, q)
	if err != nil {
		return Freshness{}, fmt.Errorf("freshness of %s: %w", table, err)
	}
	defer rs.Close()
	var f Freshness
	if rs.Next() {
		var n uint64
		var ev, in time.Time
		if err := rs.Scan(&n, &ev, &in); err != nil {
			return Freshness{}, fmt.Errorf("freshness of %s: %w", table, err)
		}
		if n > 0 {
			f = Freshness{LastEventTime: &ev, LastIngestTime: &in}
		}
	}
	if err := rs.Err(); err != nil {
		return Freshness{}, fmt.Errorf("freshness of %s: %w", table, err)
	}
	e.freshMu.Lock()
	if e.fresh == nil {
		e.fresh = map[string]freshEntry{}
	}
	e.fresh[table] = freshEntry{at: time.Now(), f: f}
	e.freshMu.Unlock()
	return f, nil
}
