package area

import (
	"errors"
	"strings"
	"testing"
)

func TestTheDemoShapesDrawEveryDistrict(t *testing.T) {
	l, err := Load("../../deploy/areas/bac-ninh.csv")
	if err != nil {
		t.Fatal(err)
	}
	s, err := LoadShapes(ShapesPath("../../deploy/areas/bac-ninh.csv"), l)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(s.Codes(), ","); got != "27256,27258,27259,27260,27261,27262,27263,27264" {
		t.Errorf("codes %s", got)
	}
	if _, err := LoadShapes("../../deploy/areas/none.geojson", l); !errors.Is(err, ErrNoShapes) {
		t.Errorf("a missing file: %v, want ErrNoShapes", err)
	}
}

func TestShapeMistakesAreNamed(t *testing.T) {
	l, err := Read(strings.NewReader("code,name_vi,level,parent\n27,Tỉnh,province,\n27256,A,district,27\n27258,B,district,27\n"))
	if err != nil {
		t.Fatal(err)
	}
	sq := `[[[106,21],[106.1,21],[106.1,21.1],[106,21]]]`
	feat := func(code, geom string) string {
		return `{"type":"Feature","properties":{"code":"` + code + `"},"geometry":` + geom + `}`
	}
	poly := `{"type":"Polygon","coordinates":` + sq + `}`
	for _, c := range []struct{ doc, want string }{
		{`{"type":"FeatureCollection","features":[` + feat("27256", poly) + `]}`, "no shape for the districts 27258"},
		{`{"type":"FeatureCollection","features":[` + feat("27999", poly) + `]}`, `feature 0 (27999): code "27999" is not in the areas file`},
		{`{"type":"FeatureCollection","features":[` + feat("27256", poly) + `,` + feat("27256", poly) + `]}`, "feature 1 (27256): unit \"27256\" has a shape already"},
		{`{"type":"FeatureCollection","features":[` + feat("27256", `{"type":"Point","coordinates":[106,21]}`) + `]}`, `geometry "Point"`},
		{`{"type":"FeatureCollection","features":[` + feat("27256", `{"type":"Polygon","coordinates":[[[106,21],[106.1,21],[106.1,21.1],[106,21.2]]]}`) + `]}`, "close it"},
		{`{"type":"FeatureCollection","features":[` + feat("27256", `{"type":"Polygon","coordinates":[[[21,106],[21,106.1],[21.1,106.1],[21,106]]]}`) + `]}`, "want [longitude, latitude]"},
		{`{"type":"FeatureCollection","features":[` + feat("27256", poly) + `,` + feat("27", poly) + `]}`, "a province among districts"},
		{`[]`, "not GeoJSON"},
	} {
		if _, err := ReadShapes([]byte(c.doc), l); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s:\n  %v\n  want %q", c.doc, err, c.want)
		}
	}
}
