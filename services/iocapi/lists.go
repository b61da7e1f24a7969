package iocapi

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/iochub/iochub/pkg/kpi"
)

// ListResponse is the JSON answer of GET /v1/lists/{name}.
type ListResponse struct {
	Name    string       `json:"name"`
	Title   kpi.Text     `json:"title"`
	Sector  string       `json:"sector"`
	Columns []kpi.Column `json:"columns"`
	From    time.Time    `json:"from"`
	To      time.Time    `json:"to"`
	Sort    string       `json:"sort"`
	Order   string       `json:"order"`
	Page    int          `json:"page"`
	Size    int          `json:"size"`
	kpi.ListPage
}

// DefaultListSize is a page of a list when size is not given.
const DefaultListSize = 50

// lists answers GET /v1/lists: the lists the reader may read.
func (a *API) lists(w http.ResponseWriter, _ *http.Request, rd *Reader) {
	out := []*kpi.List{}
	for _, l := range kpi.Lists {
		if rd.Sees(l.Sector) {
			out = append(out, l)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"lists": out})
}

// list answers GET /v1/lists/{name}: one page, sorted, of the entities
// behind a KPI, or every row as CSV (format=csv).
func (a *API) list(w http.ResponseWriter, r *http.Request, rd *Reader) {
	l, ok := kpi.ListByName(r.PathValue("name"))
	if !ok {
		problem(w, http.StatusNotFound, ProblemUnknownKPI, "Unknown list", fmt.Sprintf("no list is called %q; GET /v1/lists names them", r.PathValue("name")))
		return
	}
	if !rd.Sees(l.Sector) {
		problem(w, http.StatusForbidden, ProblemForbidden, "Not your sector",
			fmt.Sprintf("reader %q (role %s) may not read %s lists", rd.Name, rd.Role, l.Sector))
		return
	}
	req, csvOut, err := a.parseList(r.URL.Query(), l)
	if err == nil {
		err = l.Check(&req)
	}
	if err != nil {
		badParameter(w, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	page, err := a.kpis.List(ctx, l, req)
	if errors.Is(err, kpi.ErrTooManyRows) {
		badParameter(w, kpi.BadParameter("from", "%v: narrow the period or the area", err))
		return
	}
	if err != nil {
		a.log.Error("list query failed", zap.String("list", l.Name), zap.Error(err))
		problem(w, http.StatusServiceUnavailable, ProblemUnavailable, "List query failed", "the KPI store did not answer; try again")
		return
	}
	if csvOut {
		a.writeListCSV(w, l, page)
		return
	}
	order := "asc"
	if req.Desc {
		order = "desc"
	}
	for _, row := range page.Rows {
		for k, v := range row {
			if t, ok := v.(time.Time); ok {
				row[k] = t.In(a.loc)
			}
		}
	}
	writeJSON(w, http.StatusOK, ListResponse{Name: l.Name, Title: l.Title, Sector: l.Sector, Columns: l.Columns, From: req.From.In(a.loc), To: req.To.In(a.loc),
		Sort: req.Sort, Order: order, Page: req.Page, Size: req.Size, ListPage: *page})
}

// parseList reads a list's query string. Without from, a list of the day
// (incidents) starts at today's local midnight; the others at the same
// day a year back: the entities still open now.
func (a *API) parseList(q url.Values, l *kpi.List) (kpi.ListRequest, bool, error) {
	bad := kpi.BadParameter
	req := kpi.ListRequest{Filters: map[string][]string{}, Page: 1, Size: DefaultListSize, To: a.now()}
	for k := range q {
		switch k {
		case "from", "to", "sort", "order", "page", "size", "format":
		default:
			if _, ok := l.Dimensions[k]; !ok {
				return req, false, bad(k, "unknown parameter %q (from, to, sort, order, page, size, format and the filters of %s)", k, l.Name)
			}
		}
		if len(q[k]) > 1 {
			return req, false, bad(k, "%s is given %d times", k, len(q[k]))
		}
	}
	var err error
	if v := q.Get("to"); v != "" {
		if req.To, err = a.parseTime(v); err != nil {
			return req, false, bad("to", "to: %v", err)
		}
	}
	last := req.To.Add(-time.Nanosecond).In(a.loc)
	req.From = time.Date(last.Year()-1, last.Month(), last.Day(), 0, 0, 0, 0, a.loc)
	if l.Today {
		req.From = time.Date(last.Year(), last.Month(), last.Day(), 0, 0, 0, 0, a.loc)
	}
	if v := q.Get("from"); v != "" {
		if req.From, err = a.parseTime(v); err != nil {
			return req, false, bad("from", "from: %v", err)
		}
	}
	req.Sort = q.Get("sort")
	switch o := q.Get("order"); o {
	case "":
		if req.Sort != "" {
			req.Desc = false
		}
	case "asc", "desc":
		if req.Sort == "" {
			req.Sort = l.Sort
		}
		req.Desc = o == "desc"
	default:
		return req, false, bad("order", "order %q: want asc or desc", o)
	}
	if v := q.Get("page"); v != "" {
		if req.Page, err = strconv.Atoi(v); err != nil {
			return req, false, bad("page", "page %q: want a page number from 1", v)
		}
	}
	if v := q.Get("size"); v != "" {
		if req.Size, err = strconv.Atoi(v); err != nil || req.Size < 1 {
			return req, false, bad("size", "size %q: want 1 to %d rows a page", v, kpi.MaxListPage)
		}
	}
	csvOut := false
	switch q.Get("format") {
	case "", "json":
	case "csv":
		csvOut, req.Page, req.Size = true, 1, 0 // every row
	default:
		return req, false, bad("format", "format %q: want json or csv", q.Get("format"))
	}
	for dim := range l.Dimensions {
		if !q.Has(dim) {
			continue
		}
		vals := strings.Split(q.Get(dim), ",")
		if q.Get(dim) == "" || len(vals) > MaxFilterValues {
			return req, false, bad(dim, "%s: give 1 to %d comma-separated values", dim, MaxFilterValues)
		}
		if dim == "area" {
			if vals, err = a.expandAreas(vals); err != nil {
				return req, false, bad("area", "area: %v", err)
			}
		}
		req.Filters[dim] = vals
	}
	return req, csvOut, nil
}

// writeListCSV writes the list's columns as a header and every row;
// times in the IOC's zone, text cells made inert for spreadsheets.
func (a *API) writeListCSV(w http.ResponseWriter, l *kpi.List, page *kpi.ListPage) {
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s.csv"`, l.Name))
	cw := csv.NewWriter(w)
	head := make([]string, len(l.Columns))
	for i, c := range l.Columns {
		head[i] = c.Name
	}
	_ = cw.Write(head)
	for _, row := range page.Rows {
		rec := make([]string, len(l.Columns))
		for i, c := range l.Columns {
			switch v := row[c.Name].(type) {
			case string:
				rec[i] = inert(v)
			case time.Time:
				rec[i] = v.In(a.loc).Format(time.RFC3339)
			case int64:
				rec[i] = strconv.FormatInt(v, 10)
			case *float64:
				if v != nil {
					rec[i] = strconv.FormatFloat(*v, 'f', -1, 64)
				}
			}
		}
		_ = cw.Write(rec)
	}
	cw.Flush()
}
