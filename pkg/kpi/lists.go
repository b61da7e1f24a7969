package kpi

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/iochub/iochub/pkg/chstore"
)

// A List is the entities behind a KPI an operator acts on: the overdue
// dossiers, the late field reports, the period's incidents. It reads the
// latest state of each entity from its rollup (argMax over the version,
// exact before merges, as the KPIs do) and carries no personal data: the
// rollups hold none.
type List struct {
	Name    string   `json:"name"`
	Sector  string   `json:"sector"`
	Title   Text     `json:"title"`
	Columns []Column `json:"columns"`
	// Sort is the column and order a request without sort gets.
	Sort string `json:"sort"`
	Desc bool   `json:"desc"`
	// Today: the period defaults to the current day, not the last year.
	Today bool `json:"-"`
	// Dimensions: the filters it takes, as KPIs do (dimension → column).
	Dimensions map[string]string `json:"-"`
	inner      string            // the rows: {{db}}, @from, @to, @now, {{filters}}
	id         string            // the column that breaks ties
}

// Column is one column of a list.
type Column struct {
	Name  string `json:"name"`
	Title Text   `json:"title"`
	// Type: string, time, int or float (float may be null).
	Type string `json:"type"`
}

// The lists.
var Lists = []*List{
	{Name: "overdue_dossiers", Sector: "publicservice", Sort: "days_overdue", Desc: true, id: "dossier_id",
		Title: Text{VI: "Hồ sơ quá hạn", EN: "Overdue dossiers"},
		Columns: []Column{
			{"dossier_id", Text{VI: "Mã hồ sơ", EN: "Dossier"}, "string"},
			{"procedure_code", Text{VI: "Thủ tục", EN: "Procedure"}, "string"},
			{"agency_code", Text{VI: "Cơ quan", EN: "Agency"}, "string"},
			{"area_code", Text{VI: "Địa bàn", EN: "Area"}, "string"},
			{"received_at", Text{VI: "Tiếp nhận", EN: "Received"}, "time"},
			{"due_at", Text{VI: "Hạn xử lý", EN: "Due"}, "time"},
			{"days_overdue", Text{VI: "Số ngày quá hạn", EN: "Days overdue"}, "int"},
		},
		Dimensions: map[string]string{"area": "area_code", "agency": "agency_code"},
		inner: `SELECT a_id AS dossier_id, a_proc AS procedure_code, a_agency AS agency_code, a_area AS area_code, a_received AS received_at,
  assumeNotNull(due) AS due_at, toInt64(intDiv(toUInt32(toDateTime(@now)) - toUInt32(assumeNotNull(due)), 86400)) AS days_overdue
FROM (
  SELECT key, argMax(dossier_id, version) AS a_id, argMax(procedure_code, version) AS a_proc,
    argMax(agency_code, version) AS a_agency, argMax(area_code, version) AS a_area, min(received_at) AS a_received,
    argMax(due_at, version) AS due, max(version) AS v
  FROM {{db}}.kpi_dossier
  WHERE received_at >= toDateTime(@from) AND received_at < toDateTime(@to) {{filters}}
  GROUP BY key)
WHERE v % 8 < 5 AND isNotNull(due) AND due < toDateTime(@now)`},
	{Name: "late_reports", Sector: "feedback", Sort: "age_hours", Desc: true, id: "report_id",
		Title: Text{VI: "Phản ánh trễ hạn", EN: "Late field reports"},
		Columns: []Column{
			{"report_id", Text{VI: "Mã phản ánh", EN: "Report"}, "string"},
			{"category", Text{VI: "Lĩnh vực", EN: "Category"}, "string"},
			{"agency_code", Text{VI: "Cơ quan xử lý", EN: "Handling agency"}, "string"},
			{"area_code", Text{VI: "Địa bàn", EN: "Area"}, "string"},
			{"status", Text{VI: "Trạng thái", EN: "Status"}, "string"},
			{"submitted_at", Text{VI: "Gửi lúc", EN: "Submitted"}, "time"},
			{"due_at", Text{VI: "Hạn xử lý", EN: "Due"}, "time"},
			{"age_hours", Text{VI: "Tuổi (giờ)", EN: "Age (hours)"}, "int"},
		},
		Dimensions: map[string]string{"area": "area_code", "agency": "agency_code", "category": "category"},
		inner: `SELECT a_id AS report_id, a_category AS category, a_agency AS agency_code, a_area AS area_code, a_status AS status,
  a_submitted AS submitted_at, assumeNotNull(due) AS due_at, toInt64(intDiv(toUInt32(toDateTime(@now)) - toUInt32(a_submitted), 3600)) AS age_hours
FROM (
  SELECT key, argMax(report_id, version) AS a_id, argMax(category, version) AS a_category, argMax(agency_code, version) AS a_agency,
    argMax(area_code, version) AS a_area, argMax(status, version) AS a_status, min(submitted_at) AS a_submitted,
    argMax(due_at, version) AS due, max(version) AS v
  FROM {{db}}.kpi_report
  WHERE submitted_at >= toDateTime(@from) AND submitted_at < toDateTime(@to) {{filters}}
  GROUP BY key)
WHERE v % 8 < 5 AND isNotNull(due) AND due < toDateTime(@now)`},
	{Name: "incidents", Sector: "traffic", Sort: "occurred_at", Desc: true, id: "incident_id", Today: true,
		Title: Text{VI: "Sự cố giao thông", EN: "Traffic incidents"},
		Columns: []Column{
			{"incident_id", Text{VI: "Mã sự cố", EN: "Incident"}, "string"},
			{"kind", Text{VI: "Loại", EN: "Kind"}, "string"},
			{"severity", Text{VI: "Mức độ", EN: "Severity"}, "string"},
			{"area_code", Text{VI: "Địa bàn", EN: "Area"}, "string"},
			{"segment_id", Text{VI: "Đoạn đường", EN: "Road segment"}, "string"},
			{"status", Text{VI: "Trạng thái", EN: "Status"}, "string"},
			{"occurred_at", Text{VI: "Xảy ra lúc", EN: "Occurred"}, "time"},
			{"injured", Text{VI: "Bị thương", EN: "Injured"}, "int"},
			{"killed", Text{VI: "Tử vong", EN: "Killed"}, "int"},
			{"lat", Text{VI: "Vĩ độ", EN: "Latitude"}, "float"},
			{"lon", Text{VI: "Kinh độ", EN: "Longitude"}, "float"},
		},
		Dimensions: map[string]string{"area": "area_code"},
		inner: `SELECT a_id AS incident_id, a_kind AS kind, a_severity AS severity, a_area AS area_code, a_segment AS segment_id,
  a_status AS status, a_occurred AS occurred_at, a_injured AS injured, a_killed AS killed, a_lat AS lat, a_lon AS lon
FROM (
  SELECT key, argMax(incident_id, version) AS a_id, argMax(kind, version) AS a_kind, argMax(severity, version) AS a_severity,
    argMax(area_code, version) AS a_area, argMax(segment_id, version) AS a_segment, argMax(status, version) AS a_status,
    min(occurred_at) AS a_occurred, argMax(injured, version) AS a_injured, argMax(killed, version) AS a_killed,
    argMaxIf(lat, version, isNotNull(lat)) AS a_lat, argMaxIf(lon, version, isNotNull(lon)) AS a_lon
  FROM {{db}}.kpi_incident
  WHERE occurred_at >= toDateTime(@from) AND occurred_at < toDateTime(@to) {{filters}}
  GROUP BY key)`},
	{Name: "reports", Sector: "feedback", Sort: "submitted_at", Desc: true, id: "report_id",
		Title: Text{VI: "Phản ánh hiện trường", EN: "Field reports"},
		Columns: []Column{
			{"report_id", Text{VI: "Mã phản ánh", EN: "Report"}, "string"},
			{"category", Text{VI: "Lĩnh vực", EN: "Category"}, "string"},
			{"agency_code", Text{VI: "Cơ quan xử lý", EN: "Handling agency"}, "string"},
			{"area_code", Text{VI: "Địa bàn", EN: "Area"}, "string"},
			{"status", Text{VI: "Trạng thái", EN: "Status"}, "string"},
			{"submitted_at", Text{VI: "Gửi lúc", EN: "Submitted"}, "time"},
			{"lat", Text{VI: "Vĩ độ", EN: "Latitude"}, "float"},
			{"lon", Text{VI: "Kinh độ", EN: "Longitude"}, "float"},
		},
		Dimensions: map[string]string{"area": "area_code", "agency": "agency_code", "category": "category"},
		inner: `SELECT a_id AS report_id, a_category AS category, a_agency AS agency_code, a_area AS area_code, a_status AS status,
  a_submitted AS submitted_at, a_lat AS lat, a_lon AS lon
FROM (
  SELECT key, argMax(report_id, version) AS a_id, argMax(category, version) AS a_category, argMax(agency_code, version) AS a_agency,
    argMax(area_code, version) AS a_area, argMax(status, version) AS a_status, min(submitted_at) AS a_submitted,
    argMaxIf(lat, version, isNotNull(lat)) AS a_lat, argMaxIf(lon, version, isNotNull(lon)) AS a_lon
  FROM {{db}}.kpi_report
  WHERE submitted_at >= toDateTime(@from) AND submitted_at < toDateTime(@to) {{filters}}
  GROUP BY key)`},
}

// ListByName finds a list.
func ListByName(name string) (*List, bool) {
	i := slices.IndexFunc(Lists, func(l *List) bool { return l.Name == name })
	if i < 0 {
		return nil, false
	}
	return Lists[i], true
}

// ListRequest asks for one page of a list.
type ListRequest struct {
	From, To time.Time
	Now      time.Time // overdue and ages are taken at it; time.Now when zero
	Filters  map[string][]string
	Sort     string // a column; the list's Sort when empty
	Desc     bool
	Page     int // from 1
	Size     int // rows per page; 0: every row (CSV)
}

// Bounds of a list request: rows a page, pages, the period, and the rows
// an export (every row, Size 0) gives.
const (
	MaxListPage   = 1000
	MaxListPages  = 10_000
	MaxListRange  = 367 * 24 * time.Hour
	MaxExportRows = 100_000
)

// ErrTooManyRows is matched when an export would give more than
// MaxExportRows rows.
var ErrTooManyRows = errors.New("too many rows to export")

// ListPage is one page of a list.
type ListPage struct {
	Total int              `json:"total"` // rows in the whole list
	Rows  []map[string]any `json:"rows"`
}

// Check validates r against l. Errors are *ParameterError.
func (l *List) Check(r *ListRequest) error {
	if r.Sort == "" {
		r.Sort, r.Desc = l.Sort, l.Desc
	}
	if !slices.ContainsFunc(l.Columns, func(c Column) bool { return c.Name == r.Sort }) {
		names := make([]string, len(l.Columns))
		for i, c := range l.Columns {
			names[i] = c.Name
		}
		return BadParameter("sort", "sort %q: %s can be sorted by %s", r.Sort, l.Name, strings.Join(names, ", "))
	}
	if !r.From.Before(r.To) {
		return BadParameter("from", "from (%s) must be before to (%s)", r.From.Format(time.RFC3339), r.To.Format(time.RFC3339))
	}
	if r.To.Sub(r.From) > MaxListRange {
		return BadParameter("from", "the period from %s to %s is longer than the %d days a list covers", r.From.Format(time.RFC3339), r.To.Format(time.RFC3339), int(MaxListRange.Hours()/24))
	}
	if r.Page < 1 || r.Page > MaxListPages {
		return BadParameter("page", "page %d: pages count from 1 to %d", r.Page, MaxListPages)
	}
	if r.Size < 0 || r.Size > MaxListPage {
		return BadParameter("size", "size %d: want 1 to %d rows a page", r.Size, MaxListPage)
	}
	for dim := range r.Filters {
		if _, ok := l.Dimensions[dim]; !ok {
			return BadParameter(dim, "%s cannot be filtered by %s", l.Name, dim)
		}
	}
	return nil
}

// List answers one page of l.
func (e *Engine) List(ctx context.Context, l *List, r ListRequest) (*ListPage, error) {
	if err := l.Check(&r); err != nil {
		return nil, err
	}
	if r.Now.IsZero() {
		r.Now = time.Now()
	}
	dims := make([]string, 0, len(r.Filters))
	for dim := range r.Filters {
		dims = append(dims, dim)
	}
	sort.Strings(dims)
	var filters strings.Builder
	args := []any{chstore.Named("from", r.From.Unix()), chstore.Named("to", r.To.Unix()), chstore.Named("now", r.Now.Unix())}
	for _, dim := range dims {
		fmt.Fprintf(&filters, " AND has(@f_%s, %s)", dim, l.Dimensions[dim])
		args = append(args, chstore.Named("f_"+dim, r.Filters[dim]))
	}
	inner := strings.NewReplacer("{{db}}", chstore.Quote(e.Store.Database()), "{{filters}}", filters.String()).Replace(l.inner)
	order := "ASC"
	if r.Desc {
		order = "DESC"
	}
	page := &ListPage{Rows: []map[string]any{}}
	var total uint64
	cnt, err := e.Store.Query(ctx, "SELECT count() FROM ("+inner+")", args...)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", l.Name, err)
	}
	for cnt.Next() {
		if err := cnt.Scan(&total); err != nil {
			cnt.Close()
			return nil, fmt.Errorf("list %s: %w", l.Name, err)
		}
	}
	cnt.Close()
	page.Total = int(total)
	if r.Size == 0 && total > MaxExportRows {
		return nil, fmt.Errorf("list %s: %d rows, more than the %d an export gives: %w", l.Name, total, MaxExportRows, ErrTooManyRows)
	}
	q := fmt.Sprintf("SELECT %s FROM (%s) ORDER BY %s %s, %s", l.columnList(), inner, r.Sort, order, l.id)
	if r.Size > 0 {
		q += fmt.Sprintf(" LIMIT %d, %d", (r.Page-1)*r.Size, r.Size)
	}
	rs, err := e.Store.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", l.Name, err)
	}
	defer rs.Close()
	for rs.Next() {
		dest := make([]any, len(l.Columns))
		for i, c := range l.Columns {
			switch c.Type {
			case "string":
				dest[i] = new(string)
			case "time":
				dest[i] = new(time.Time)
			case "int":
				dest[i] = new(int64)
			case "float":
				dest[i] = new(*float64)
			}
		}
		if err := rs.Scan(dest...); err != nil {
			return nil, fmt.Errorf("list %s: %w", l.Name, err)
		}
		row := make(map[string]any, len(l.Columns))
		for i, c := range l.Columns {
			switch v := dest[i].(type) {
			case *string:
				row[c.Name] = *v
			case *time.Time:
				row[c.Name] = *v
			case *int64:
				row[c.Name] = *v
			case **float64:
				row[c.Name] = *v
			}
		}
		page.Rows = append(page.Rows, row)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("list %s: %w", l.Name, err)
	}
	return page, nil
}

func (l *List) columnList() string {
	names := make([]string, len(l.Columns))
	for i, c := range l.Columns {
		names[i] = c.Name
	}
	return strings.Join(names, ", ")
}
