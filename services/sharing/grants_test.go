package sharing_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/iochub/iochub/pkg/area"
	"github.com/iochub/iochub/services/sharing"
)

// parents is a province (27), two districts and a commune of the first.
type parents map[string]string

func (p parents) Lookup(code string) (area.Area, error) {
	if _, ok := p[code]; ok || code == "27" {
		return area.Area{Code: code}, nil
	}
	return area.Area{}, area.ErrUnknown
}

func (p parents) Within(code, ancestor string) bool {
	for ; code != ""; code = p[code] {
		if code == ancestor {
			return true
		}
	}
	return false
}

var areas = parents{"27256": "27", "27258": "27", "27256001": "27256"}

var known = []string{"vn.ioc.traffic.incident.v1", "vn.ioc.traffic.flow.v1", "vn.ioc.health.visit.v1", "vn.ioc.feedback.report.v1"}

// The Department of Health: traffic incidents of district 27256 (its
// communes too), field reports of the province without personal data.
var health = sharing.Agency{Name: "so-y-te", TokenSHA256: strings.Repeat("a", 64), Grants: []sharing.Grant{
	{Types: []string{"vn.ioc.traffic.incident.v1"}, Areas: []string{"27256"}},
	{Types: []string{"vn.ioc.feedback.*"}, Areas: []string{"27"}, PersonalData: sharing.PersonalDrop},
}}

func TestSubscriptionsStayWithinGrants(t *testing.T) {
	for _, tt := range []struct {
		name         string
		types, areas []string
		notTypes     string // the types named as not granted
		notAreas     string // "type: areas" named as not granted
	}{
		{"its district's incidents", []string{"vn.ioc.traffic.incident.v1"}, []string{"27256"}, "", ""},
		{"a commune of its district", []string{"vn.ioc.traffic.incident.v1"}, []string{"27256001"}, "", ""},
		{"whatever the grants cover", []string{"vn.ioc.traffic.incident.v1", "vn.ioc.feedback.*"}, nil, "", ""},
		{"another district's incidents", []string{"vn.ioc.traffic.incident.v1"}, []string{"27258"}, "", "vn.ioc.traffic.incident.v1: 27258"},
		{"the whole province's incidents", []string{"vn.ioc.traffic.incident.v1"}, []string{"27"}, "", "vn.ioc.traffic.incident.v1: 27"},
		{"all traffic", []string{"vn.ioc.traffic.*"}, nil, "vn.ioc.traffic.flow.v1", ""},
		{"visits", []string{"vn.ioc.health.visit.v1"}, nil, "vn.ioc.health.visit.v1", ""},
		{"an unknown type", []string{"vn.ioc.x.y.v1"}, nil, "vn.ioc.x.y.v1", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := health.Check(tt.types, tt.areas, known, areas)
			if tt.notTypes == "" && tt.notAreas == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var ne *sharing.NotGrantedError
			if !errors.As(err, &ne) || !errors.Is(err, sharing.ErrNotGranted) {
				t.Fatalf("err = %v, want a NotGrantedError", err)
			}
			if got := strings.Join(ne.Types, ","); got != tt.notTypes {
				t.Errorf("types not granted %q, want %q", got, tt.notTypes)
			}
			var gotAreas []string
			for typ, as := range ne.Areas {
				gotAreas = append(gotAreas, typ+": "+strings.Join(as, ","))
			}
			if got := strings.Join(gotAreas, ";"); got != tt.notAreas {
				t.Errorf("areas not granted %q, want %q", got, tt.notAreas)
			}
			if !strings.Contains(err.Error(), "so-y-te") {
				t.Errorf("the error does not name the agency: %v", err)
			}
		})
	}
}

func TestEventsReachOnlyWhatIsGranted(t *testing.T) {
	for _, tt := range []struct {
		typ, area string
		ok, drop  bool
	}{
		{"vn.ioc.traffic.incident.v1", "27256", true, false},
		{"vn.ioc.traffic.incident.v1", "27256001", true, false},
		{"vn.ioc.traffic.incident.v1", "27258", false, true},
		{"vn.ioc.traffic.incident.v1", "", false, true},
		{"vn.ioc.feedback.report.v1", "27258", true, true},
		{"vn.ioc.traffic.flow.v1", "27256", false, true},
	} {
		ok, drop := health.Allows(tt.typ, tt.area, areas)
		if ok != tt.ok || (ok && drop != tt.drop) {
			t.Errorf("%s in %q: ok %v drop %v, want %v %v", tt.typ, tt.area, ok, drop, tt.ok, tt.drop)
		}
	}
}

func TestConfigNamesEachProblem(t *testing.T) {
	bad := sharing.Config{Agencies: []sharing.Agency{
		{Name: "So Y Te", TokenSHA256: "short"},
		{Name: "cong-an", TokenSHA256: strings.Repeat("b", 64), Grants: []sharing.Grant{{Types: []string{"vn.ioc.traffic.*"}, PersonalData: "clear"}}, MaxSubscriptions: -1},
	}}
	err := bad.Validate()
	for _, want := range []string{"name must be lower-case", "token_sha256", "grants: none", "areas must name", `personal_data must be "pseudonymized" or "drop", got "clear"`, "max_subscriptions -1"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate: %v; want it to say %q", err, want)
		}
	}
	if err := (sharing.Config{Agencies: []sharing.Agency{health}}).Validate(); err != nil {
		t.Errorf("a good config refused: %v", err)
	}
}
