package area

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
)

// Shapes are the outlines of a province's units, for the dashboard's map:
// a GeoJSON FeatureCollection beside the CSV (bac-ninh.csv,
// bac-ninh.geojson), one feature per unit with its code in
// properties.code. Like the CSV it is reference data, never compiled in.
type Shapes struct {
	doc   []byte   // the file, compacted
	codes []string // the units it draws, in file order
}

// ShapesPath is where the shapes of the areas file csvPath are:
// the same name ending in .geojson.
func ShapesPath(csvPath string) string {
	return strings.TrimSuffix(csvPath, ".csv") + ".geojson"
}

// ErrNoShapes is matched when there is no shapes file: the dashboard then
// draws a tile grid of the units.
var ErrNoShapes = errors.New("no shapes file")

// LoadShapes reads and checks the shapes of l's units from path. An error
// names the feature and what is wrong; a missing file is ErrNoShapes.
func LoadShapes(path string, l *List) (*Shapes, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNoShapes, path)
	}
	if err != nil {
		return nil, fmt.Errorf("area shapes: %w", err)
	}
	s, err := ReadShapes(b, l)
	if err != nil {
		return nil, fmt.Errorf("area shapes %s: %w", path, err)
	}
	return s, nil
}

type geometry struct {
	Type        string          `json:"type"`
	Coordinates json.RawMessage `json:"coordinates"`
}

// ReadShapes checks a GeoJSON FeatureCollection against l: every feature
// a unit of l with a Polygon or MultiPolygon of closed rings of
// [longitude, latitude], no unit twice, and every unit of the level drawn
// (that of the first feature) has its shape.
func ReadShapes(b []byte, l *List) (*Shapes, error) {
	var doc struct {
		Type     string `json:"type"`
		Features []struct {
			Type       string         `json:"type"`
			Properties map[string]any `json:"properties"`
			Geometry   *geometry      `json:"geometry"`
		} `json:"features"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("not GeoJSON: %w", err)
	}
	if doc.Type != "FeatureCollection" || len(doc.Features) == 0 {
		return nil, fmt.Errorf("want a FeatureCollection with a feature per unit, got type %q with %d features", doc.Type, len(doc.Features))
	}
	s := &Shapes{}
	var level Level
	for i, f := range doc.Features {
		where := fmt.Sprintf("feature %d", i)
		code, _ := f.Properties["code"].(string)
		if code == "" {
			return nil, fmt.Errorf("%s: properties.code must be the unit's code (as in the CSV)", where)
		}
		where += fmt.Sprintf(" (%s)", code)
		a, err := l.Lookup(code)
		if err != nil {
			return nil, fmt.Errorf("%s: code %q is not in the areas file", where, code)
		}
		if slices.Contains(s.codes, code) {
			return nil, fmt.Errorf("%s: unit %q has a shape already", where, code)
		}
		if i == 0 {
			level = a.Level
		} else if a.Level != level {
			return nil, fmt.Errorf("%s: a %s among %ss: draw one level", where, a.Level, level)
		}
		if f.Type != "Feature" || f.Geometry == nil {
			return nil, fmt.Errorf("%s: want a Feature with a geometry", where)
		}
		if err := checkGeometry(*f.Geometry); err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		s.codes = append(s.codes, code)
	}
	var missing []string
	for _, a := range l.All() {
		if a.Level == level && !slices.Contains(s.codes, a.Code) {
			missing = append(missing, a.Code)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("no shape for the %ss %s", level, strings.Join(missing, ", "))
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return nil, err
	}
	s.doc = buf.Bytes()
	return s, nil
}

func checkGeometry(g geometry) error {
	var polys [][][][]float64
	switch g.Type {
	case "Polygon":
		var p [][][]float64
		if err := json.Unmarshal(g.Coordinates, &p); err != nil {
			return fmt.Errorf("Polygon coordinates: %w", err)
		}
		polys = [][][][]float64{p}
	case "MultiPolygon":
		if err := json.Unmarshal(g.Coordinates, &polys); err != nil {
			return fmt.Errorf("MultiPolygon coordinates: %w", err)
		}
	default:
		return fmt.Errorf("geometry %q: want Polygon or MultiPolygon", g.Type)
	}
	for _, p := range polys {
		if len(p) == 0 {
			return errors.New("a polygon without rings")
		}
		for _, ring := range p {
			if len(ring) < 4 {
				return fmt.Errorf("a ring of %d positions: want 4 or more, the last the first", len(ring))
			}
			for _, pos := range ring {
				if len(pos) < 2 || pos[0] < -180 || pos[0] > 180 || pos[1] < -90 || pos[1] > 90 {
					return fmt.Errorf("position %v: want [longitude, latitude]", pos)
				}
			}
			if !slices.Equal(ring[0], ring[len(ring)-1]) {
				return fmt.Errorf("a ring from %v ends at %v: close it", ring[0], ring[len(ring)-1])
			}
		}
	}
	return nil
}

// GeoJSON is the checked file, compacted.
func (s *Shapes) GeoJSON() []byte { return s.doc }

// Codes are the units drawn, in file order.
func (s *Shapes) Codes() []string { return slices.Clone(s.codes) }
