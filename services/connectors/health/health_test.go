package health_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iochub/iochub/pkg/connector"
	"github.com/iochub/iochub/pkg/connector/connectortest"
	"github.com/iochub/iochub/pkg/schema"
	"github.com/iochub/iochub/schemas"
	"github.com/iochub/iochub/services/connectors/csvdir"
	"github.com/iochub/iochub/services/connectors/health"
	"github.com/iochub/iochub/sim"
)

var facilities = map[string]string{"BV-DK-BN": "27256", "TTYT-YP": "27258"}

// TestReadsBundlePagesAndMapsEncounters serves two Bundle pages in FHIR R4
// JSON (the first with a next link) and reads them through the poller.
func TestReadsBundlePagesAndMapsEncounters(t *testing.T) {
	var hs *httptest.Server
	var asked []string
	hs = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked = append(asked, r.URL.String())
		name := "testdata/bundle-page1.json"
		if r.URL.Query().Get("page") == "2" {
			name = "testdata/bundle-page2.json"
		}
		b, _ := os.ReadFile(name)
		w.Header().Set("Content-Type", "application/fhir+json")
		_, _ = w.Write([]byte(strings.ReplaceAll(string(b), "NEXT", hs.URL+"/Encounter?page=2")))
	}))
	defer hs.Close()
	p := &health.Poller{BaseURL: hs.URL, Interval: time.Hour}
	ctx := context.Background()
	if err := p.Connect(ctx, "2026-11-23T01:00:00Z|enc-0999"); err != nil {
		t.Fatal(err)
	}
	var recs []connector.Record
	for range 3 {
		r, err := p.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	if q := asked[0]; !strings.Contains(q, "_lastUpdated=ge2026-11-23T01%3A00%3A00Z") || !strings.Contains(q, "_include=Encounter%3Asubject") ||
		!strings.Contains(q, "_sort=_lastUpdated%2C_id") {
		t.Errorf("first search %s", q)
	}
	if len(asked) != 2 || !strings.Contains(asked[1], "page=2") {
		t.Errorf("did not follow the next link: %v", asked)
	}
	reg, _ := schema.Load(schemas.FS)
	ty, _ := reg.Lookup("vn.ioc.health.visit.v1")
	m := health.Mapper{Facilities: facilities}
	want := []map[string]any{
		{"visit_id": "enc-1001", "kind": "emergency", "facility_code": "BV-DK-BN", "area_code": "27256", "sex": "female", "age_band": "65+",
			"insured": true, "wait_minutes": 12, "icd10": "S52.5", "started_at": "2026-11-23T01:55:00Z", "patient_id": "pt-77"},
		{"visit_id": "enc-1002", "kind": "outpatient", "area_code": "27258", "sex": "male", "age_band": "5-14", "insured": false},
	}
	for i, w := range want {
		e, err := m.Map(recs[i])
		if err != nil {
			t.Fatalf("encounter %d: %v", i, err)
		}
		data, _ := schema.DecodeData(e.Data)
		if err := ty.Validate(data); err != nil {
			t.Fatalf("encounter %d is not valid: %v", i, err)
		}
		for k, v := range w {
			if got := data.(map[string]any)[k]; fmt.Sprint(got) != fmt.Sprint(v) {
				t.Errorf("encounter %d: %s = %v, want %v", i, k, got, v)
			}
		}
	}
	if recs[1].Cursor != "2026-11-23T02:10:00.12Z|enc-1002" {
		t.Errorf("cursor after the second encounter: %q", recs[1].Cursor)
	}
	_, err := m.Map(recs[2])
	for _, w := range []string{`class "HH"`, `period.start "23/11/2026"`, `facility "BV-TU-NHAN" is not in the facility table`, "no included Patient"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error %v does not name %s", err, w)
		}
	}
}

func TestAgeBand(t *testing.T) {
	at := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	for birth, want := range map[string]string{"2026-01-01": "0-4", "2021-11-24": "0-4", "2021-11-22": "5-14", "2002-01-01": "15-24",
		"1982-06-01": "25-44", "1962-01-01": "45-64", "1961-11-22": "65+"} {
		b, _ := time.Parse(time.DateOnly, birth)
		if got := health.AgeBand(b, at); got != want {
			t.Errorf("born %s: %s, want %s", birth, got, want)
		}
	}
}

// fhirSystem is the simulated FHIR server; encounters come three to an
// instant, so the cursor's ties are exercised.
type fhirSystem struct {
	mu  sync.Mutex
	srv *sim.FHIRServer
	url string
	n   int
	now time.Time
}

func (s *fhirSystem) Source(*testing.T) connector.Source {
	return &health.Poller{BaseURL: s.url, Interval: 20 * time.Millisecond, Count: 4}
}
func (s *fhirSystem) Map() connector.Mapper { return health.Mapper{Facilities: facilities}.Map }
func (s *fhirSystem) Add(_ *testing.T, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.n++
		if s.n%3 == 0 {
			s.now = s.now.Add(time.Second)
		}
		pid := fmt.Sprintf("pt-%d", s.n)
		s.srv.PutPatient(pid, map[string]any{"gender": "female", "birthDate": "1990-05-01"})
		s.srv.PutEncounter(fmt.Sprintf("enc-%05d", s.n), sim.Encounter("AMB", "BV-DK-BN", pid, s.now, 10, true, "J06.9"))
	}
}
func (s *fhirSystem) AddMalformed(*testing.T) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.srv.PutPatient("nobody", map[string]any{"name": []any{map[string]any{"text": "Trần Văn Bình"}}, "birthDate": "1961-04-09",
		"identifier": []any{map[string]any{"system": "urn:vn:cccd", "value": "001061004321"}}})
	s.srv.PutEncounter("enc-bad", sim.Encounter("XYZ", "NOWHERE", "nobody", s.now, 0, false, ""))
}

// PersonalData is what the malformed encounter's patient holds.
func (s *fhirSystem) PersonalData() []string {
	return []string{"Trần Văn Bình", "1961-04-09", "001061004321"}
}
func (s *fhirSystem) SetAvailable(_ *testing.T, up bool) { s.srv.SetDown(!up) }

func TestConformance(t *testing.T) {
	connectortest.Run(t, "health-fhir", func(t *testing.T) connectortest.System {
		sys := &fhirSystem{now: time.Date(2026, 11, 23, 1, 0, 0, 0, time.UTC)}
		sys.srv = &sim.FHIRServer{Now: func() time.Time { return sys.now }}
		hs := httptest.NewServer(sys.srv)
		t.Cleanup(hs.Close)
		sys.url = hs.URL
		return sys
	})
}

// TestBedExport reads the bed-occupancy export through csvdir: one good
// row, one naming its line and both bad fields.
func TestBedExport(t *testing.T) {
	dir := t.TempDir()
	b, _ := os.ReadFile("testdata/beds.csv")
	_ = os.WriteFile(dir+"/20261123T0800_BV-DK-BN.csv", b, 0o644)
	s := &csvdir.Source{Dir: dir, Poll: 10 * time.Millisecond}
	ctx := context.Background()
	if err := s.Connect(ctx, ""); err != nil {
		t.Fatal(err)
	}
	r1, _ := s.Read(ctx)
	r2, _ := s.Read(ctx)
	e, err := health.MapBeds(r1)
	if err != nil {
		t.Fatal(err)
	}
	reg, _ := schema.Load(schemas.FS)
	ty, _ := reg.Lookup("vn.ioc.health.bed_occupancy.v1")
	data, _ := schema.DecodeData(e.Data)
	if err := ty.Validate(data); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(data); !strings.Contains(got, "ward:Nội") || !strings.Contains(got, "beds_occupied:97") || !strings.Contains(got, "observed_at:2026-11-23T01:00:00Z") {
		t.Errorf("mapped %s", got)
	}
	_, err = health.MapBeds(r2)
	for _, w := range []string{":3", `thoi_diem "sáng nay"`, `giuong_dang_dung "x"`} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error %v does not name %s", err, w)
		}
	}
}

// bedSystem is a hospital dropping bed-occupancy exports.
type bedSystem struct {
	exp *sim.ExportDir
	n   int
}

func (b *bedSystem) Source(*testing.T) connector.Source {
	return &csvdir.Source{Dir: b.exp.Dir, Poll: 20 * time.Millisecond}
}
func (b *bedSystem) Map() connector.Mapper { return health.MapBeds }
func (b *bedSystem) Add(t *testing.T, n int) {
	for range n {
		b.n++
		at := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC).Add(time.Duration(b.n) * time.Hour).Format(time.RFC3339)
		if _, err := b.exp.Write("BV-DK-BN", health.BedColumns, fmt.Sprintf("BV-DK-BN,27256,Nội,%s,120,%d", at, 60+b.n%50)); err != nil {
			t.Fatal(err)
		}
	}
}
func (b *bedSystem) AddMalformed(t *testing.T) {
	if _, err := b.exp.Write("BV-DK-BN", health.BedColumns, "BV-DK-BN,27256,Nội,hôm qua,120,nhiều"); err != nil {
		t.Fatal(err)
	}
}
func (b *bedSystem) SetAvailable(t *testing.T, up bool) {
	if err := b.exp.SetDown(!up); err != nil {
		t.Fatal(err)
	}
}

func TestBedConformance(t *testing.T) {
	connectortest.Run(t, "health-beds", func(t *testing.T) connectortest.System {
		exp := &sim.ExportDir{Dir: t.TempDir() + "/beds"}
		if err := os.Mkdir(exp.Dir, 0o755); err != nil {
			t.Fatal(err)
		}
		return &bedSystem{exp: exp}
	})
}
