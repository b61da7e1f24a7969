// Package kpi loads the IOC's KPI definitions and rollups (data, see the
// kpis package), keeps the rollups in ClickHouse, and answers a KPI request —
// a series, a total and a breakdown — with every parameter bound, never
// pasted into SQL.
package kpi

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"sort"
	"strings"
	"text/template"

	"go.yaml.in/yaml/v3"

	"github.com/iochub/iochub/pkg/chstore"
	"github.com/iochub/iochub/pkg/schema"
)

// Granularities a KPI may allow, finest first.
var Granularities = []string{"hour", "day", "month"}

// Dimensions a KPI may allow filtering and breaking down by.
var Dimensions = []string{"area", "agency", "facility", "school", "segment", "category", "channel", "kind", "level", "severity"}

// Formats say how the dashboard writes a value.
var Formats = []string{"count", "percent", "decimal", "hours", "minutes", "score"}

// Text is a phrase in Vietnamese and English.
type Text = schema.Text

// Def is one KPI, read from <sector>/<name>.yaml.
type Def struct {
	Name          string            `yaml:"-" json:"name"`
	Sector        string            `yaml:"-" json:"sector"`
	Title         Text              `yaml:"title" json:"title"`
	Description   Text              `yaml:"description" json:"description"`
	Unit          Text              `yaml:"unit" json:"unit"`
	Format        string            `yaml:"format" json:"format"`
	Empty         string            `yaml:"empty" json:"-"` // "zero": a bucket without data is 0; otherwise null
	Granularities []string          `yaml:"granularities" json:"granularities"`
	Dimensions    map[string]string `yaml:"dimensions" json:"-"` // dimension -> column of the query
	Freshness     []string          `yaml:"freshness" json:"-"`  // raw tables whose latest rows date the KPI
	Query         string            `yaml:"query" json:"-"`
	// Target is the goal and alarm the dashboard shows and colours by.
	Target *Target `yaml:"target" json:"target,omitempty"`
	// Scale is the top of a score's scale (5 for 1–5): "3,5/5 điểm".
	Scale float64 `yaml:"scale" json:"scale,omitempty"`

	DimensionNames []string `yaml:"-" json:"dimensions"`
	tmpl           *template.Template
}

// Rollup is a ClickHouse table kept by a materialized view over a raw table,
// read from rollups/<table>.yaml.
type Rollup struct {
	Table  string `yaml:"table"`
	Source string `yaml:"source"`
	Create string `yaml:"create"`
	Select string `yaml:"select"`
}

// Catalog is every KPI and rollup, loaded and checked once at start.
type Catalog struct {
	defs    map[string]*Def
	names   []string
	Rollups []Rollup
}

var (
	identRE = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	// ErrUnknown is matched by the error for a KPI name not in the catalogue.
	ErrUnknown = errors.New("unknown KPI")
)

// Load reads rollups/*.yaml and <sector>/*.yaml from fsys and checks each
// file: the errors name the file and what is wrong with it.
func Load(fsys fs.FS) (*Catalog, error) {
	c := &Catalog{defs: map[string]*Def{}}
	var errs []error
	rfiles, _ := fs.Glob(fsys, "rollups/*.yaml")
	for _, f := range rfiles {
		var r Rollup
		if err := decodeFile(fsys, f, &r); err != nil {
			errs = append(errs, err)
			continue
		}
		if !identRE.MatchString(r.Table) || !identRE.MatchString(r.Source) || r.Create == "" || r.Select == "" {
			errs = append(errs, fmt.Errorf("%s: needs table and source (lower-case names), create and select", f))
			continue
		}
		c.Rollups = append(c.Rollups, r)
	}
	files, _ := fs.Glob(fsys, "*/*.yaml")
	for _, f := range files {
		sector := path.Dir(f)
		if sector == "rollups" {
			continue
		}
		d := &Def{Sector: sector, Name: sector + "." + strings.TrimSuffix(path.Base(f), ".yaml")}
		if err := decodeFile(fsys, f, d); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := d.check(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", f, err))
			continue
		}
		c.defs[d.Name] = d
		c.names = append(c.names, d.Name)
	}
	if len(c.names) == 0 && len(errs) == 0 {
		errs = append(errs, errors.New("no KPI definitions (<sector>/<name>.yaml) found"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("kpi definitions: %w", err)
	}
	sort.Strings(c.names)
	return c, nil
}

func decodeFile(fsys fs.FS, name string, v any) error {
	b, err := fs.ReadFile(fsys, name)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

func (d *Def) check() error {
	var errs []error
	if !identRE.MatchString(strings.ReplaceAll(d.Name, ".", "_")) {
		errs = append(errs, fmt.Errorf("name %q: use lower-case letters, digits and _", d.Name))
	}
	if d.Title.VI == "" || d.Title.EN == "" {
		errs = append(errs, errors.New("title needs vi and en"))
	}
	if d.Unit.VI == "" || d.Unit.EN == "" {
		errs = append(errs, errors.New("unit needs vi and en"))
	}
	if !slices.Contains(Formats, d.Format) {
		errs = append(errs, fmt.Errorf("format %q: want one of %s", d.Format, strings.Join(Formats, ", ")))
	}
	if d.Empty != "" && d.Empty != "zero" {
		errs = append(errs, fmt.Errorf("empty %q: want zero or leave it out (null)", d.Empty))
	}
	if len(d.Granularities) == 0 {
		errs = append(errs, errors.New("granularities: list at least one of hour, day, month"))
	}
	for _, g := range d.Granularities {
		if !slices.Contains(Granularities, g) {
			errs = append(errs, fmt.Errorf("granularity %q: want hour, day or month", g))
		}
	}
	for dim, col := range d.Dimensions {
		if !slices.Contains(Dimensions, dim) {
			errs = append(errs, fmt.Errorf("dimension %q: want one of %s", dim, strings.Join(Dimensions, ", ")))
		}
		if !identRE.MatchString(col) {
			errs = append(errs, fmt.Errorf("dimension %s: column %q is not a plain column name", dim, col))
		}
		d.DimensionNames = append(d.DimensionNames, dim)
	}
	sort.Strings(d.DimensionNames)
	for _, t := range d.Freshness {
		if !identRE.MatchString(t) {
			errs = append(errs, fmt.Errorf("freshness: %q is not a table name", t))
		}
	}
	if len(d.Freshness) == 0 {
		errs = append(errs, errors.New("freshness: name the raw tables behind the KPI"))
	}
	if d.Target != nil {
		if err := d.Target.check(); err != nil {
			errs = append(errs, err)
		}
	}
	if d.Scale < 0 {
		errs = append(errs, fmt.Errorf("scale %g: want the top of the score's scale, or leave it out", d.Scale))
	}
	if strings.TrimSpace(d.Query) == "" {
		errs = append(errs, errors.New("query is empty"))
	} else {
		t, err := template.New(d.Name).Funcs(placeholderFuncs).Parse(d.Query)
		if err != nil {
			errs = append(errs, fmt.Errorf("query: %w", err))
		} else {
			d.tmpl = t
			if _, err := d.render(renderArgs{db: "db", bucket: "day", key: "area_code"}); err != nil {
				errs = append(errs, fmt.Errorf("query: %w", err))
			}
		}
	}
	return errors.Join(errs...)
}

// placeholderFuncs lets the query parse; render binds the real ones.
var placeholderFuncs = template.FuncMap{"db": func() string { return "" }, "bucket": func(string) string { return "" },
	"key": func() string { return "" }, "filters": func() string { return "" }}

// Names lists the KPIs, sorted.
func (c *Catalog) Names() []string { return c.names }

// Def returns the KPI called name, or ErrUnknown.
func (c *Catalog) Def(name string) (*Def, error) {
	d, ok := c.defs[name]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknown, name)
	}
	return d, nil
}

// Allows reports whether the KPI may be read at granularity g.
func (d *Def) Allows(g string) bool { return slices.Contains(d.Granularities, g) }

type renderArgs struct {
	db      string
	bucket  string // hour, day, month or total
	key     string // a column, or "" for no breakdown
	filters []string
}

// render turns the query template into SQL. Only identifiers from the
// definition itself (columns, the database name) go into the text; every
// value is a bound @parameter.
func (d *Def) render(a renderArgs) (string, error) {
	funcs := template.FuncMap{
		"db": func() string { return chstore.Quote(a.db) },
		"bucket": func(col string) string {
			switch a.bucket {
			case "hour":
				return "toStartOfHour(" + col + ")"
			case "day":
				return "toDateTime(toDate(" + col + ", @tz), @tz)"
			case "month":
				return "toDateTime(toStartOfMonth(toDate(" + col + ", @tz)), @tz)"
			}
			return "toDateTime(@from)"
		},
		"key": func() string {
			if a.key == "" {
				return "''"
			}
			return a.key
		},
		"filters": func() string {
			var b strings.Builder
			for _, dim := range a.filters {
				fmt.Fprintf(&b, " AND has(@f_%s, %s)", dim, d.Dimensions[dim])
			}
			return b.String()
		},
	}
	t, err := d.tmpl.Clone() // Funcs changes the template: one clone per request
	if err != nil {
		return "", err
	}
	var b strings.Builder
	if err := t.Funcs(funcs).Execute(&b, nil); err != nil {
		return "", err
	}
	return b.String(), nil
}
