package area_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/iochub/iochub/pkg/area"
	"github.com/iochub/iochub/pkg/eventgen"
)

const demoFile = "../../deploy/areas/bac-ninh.csv"

func TestDemoProvinceLoads(t *testing.T) {
	l, err := area.Load(demoFile)
	if err != nil {
		t.Fatal(err)
	}
	all := l.All()
	if len(all) != 9 || all[0].Code != "27" || all[0].Level != area.Province {
		t.Fatalf("want the province then its 8 district-level units, got %+v", all)
	}
	a, err := l.Lookup("27256")
	if err != nil || a.NameVI != "Thành phố Bắc Ninh" || a.Level != area.District || a.Parent != "27" {
		t.Fatalf("Lookup(27256) = %+v, %v", a, err)
	}
	if _, err := l.Lookup("27999"); !errors.Is(err, area.ErrUnknown) {
		t.Fatalf("Lookup(27999) = %v, want ErrUnknown", err)
	}
	if !l.Within("27264", "27") || !l.Within("27", "27") || l.Within("27", "27264") || l.Within("99", "27") {
		t.Fatal("Within is wrong")
	}
}

// Every area the event generator (tests, bench, demo) uses is real reference data.
func TestGeneratorUsesOnlyKnownAreas(t *testing.T) {
	l, err := area.Load(demoFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, code := range eventgen.Areas {
		if _, err := l.Lookup(code); err != nil {
			t.Errorf("eventgen area: %v", err)
		}
	}
}

func TestBadFilesNameTheLine(t *testing.T) {
	const head = "code,name_vi,level,parent\n"
	for _, tc := range []struct {
		name, csv, want string
	}{
		{"wrong header", "ma,ten,cap,cha\n27,Tỉnh Bắc Ninh,province,\n", "line 1: header must be"},
		{"bad code", head + "27,Tỉnh Bắc Ninh,province,\n2725,Sai,district,27\n", `line 3: code "2725"`},
		{"no name", head + "27,,province,\n", "line 2: area \"27\" has no name_vi"},
		{"bad level", head + "27,Tỉnh Bắc Ninh,tinh,\n", `line 2: level "tinh"`},
		{"district without parent", head + "27,Tỉnh Bắc Ninh,province,\n27256,Thành phố Bắc Ninh,district,\n", `line 3: district "27256" needs a parent`},
		{"unknown parent", head + "27,Tỉnh Bắc Ninh,province,\n27256,Thành phố Bắc Ninh,district,26\n", `line 3: parent "26" of "27256"`},
		{"duplicate", head + "27,Tỉnh Bắc Ninh,province,\n27,Tỉnh Bắc Ninh,province,\n", `line 3: code "27" is already on line 2`},
		{"wrong field count", head + "27,Tỉnh Bắc Ninh,province\n", "line 2"},
		{"empty", head, "no areas"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := area.Read(strings.NewReader(tc.csv))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestByteOrderMarkIsAccepted(t *testing.T) {
	if _, err := area.Read(strings.NewReader("\ufeffcode,name_vi,level,parent\n27,Tỉnh Bắc Ninh,province,\n")); err != nil {
		t.Fatal(err)
	}
}
