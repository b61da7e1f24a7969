package publicservice_test

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
	"github.com/iochub/iochub/services/connectors/publicservice"
	"github.com/iochub/iochub/sim"
)

// TestReadsAndMapsAPage serves the fixture page as the dossier system would
// and reads it through the poller: two valid dossiers, one the mapping
// rejects naming each bad field.
func TestReadsAndMapsAPage(t *testing.T) {
	page, err := os.ReadFile("testdata/page.json")
	if err != nil {
		t.Fatal(err)
	}
	var asked string
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked = r.URL.RawQuery
		_, _ = w.Write(page)
	}))
	defer hs.Close()
	p := &publicservice.Poller{BaseURL: hs.URL, Interval: time.Hour}
	ctx := context.Background()
	if err := p.Connect(ctx, "40"); err != nil {
		t.Fatal(err)
	}
	reg, _ := schema.Load(schemas.FS)
	ty, _ := reg.Lookup("vn.ioc.publicservice.dossier.v1")
	var recs []connector.Record
	for range 3 {
		r, err := p.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	if !strings.Contains(asked, "sau=40") {
		t.Errorf("asked %q, want the changes after cursor 40", asked)
	}
	want := []map[string]any{
		{"status": "resolved", "channel": "online", "service_level": "full_online", "paid_online": true,
			"received_at": "2026-11-20T01:15:00Z", "resolved_at": "2026-11-23T03:00:00Z", "status_time": "2026-11-23T03:00:00Z"},
		{"status": "received", "channel": "in_person", "agency_code": "UBND-27258"},
	}
	for i, w := range want {
		e, err := publicservice.Map(recs[i])
		if err != nil {
			t.Fatalf("dossier %d: %v", i, err)
		}
		data, _ := schema.DecodeData(e.Data)
		if err := ty.Validate(data); err != nil {
			t.Fatalf("dossier %d is not valid: %v", i, err)
		}
		for k, v := range w {
			if got := data.(map[string]any)[k]; fmt.Sprint(got) != fmt.Sprint(v) {
				t.Errorf("dossier %d: %s = %v, want %v", i, k, got, v)
			}
		}
		if recs[i].Cursor != fmt.Sprint(41+i) {
			t.Errorf("dossier %d: cursor %q", i, recs[i].Cursor)
		}
	}
	_, err = publicservice.Map(recs[2])
	for _, w := range []string{`kenh_nop "fax"`, `trang_thai "cho_duyet"`, `ngay_tiep_nhan "23/11/2026"`} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error %v does not name %s", err, w)
		}
	}
}

// apiSystem is the simulated dossier API behind an HTTP server.
type apiSystem struct {
	mu  sync.Mutex
	api *sim.DossierAPI
	url string
	n   int
}

func (s *apiSystem) Source(*testing.T) connector.Source {
	return &publicservice.Poller{BaseURL: s.url, Interval: 20 * time.Millisecond, PageSize: 7}
}
func (s *apiSystem) Map() connector.Mapper { return publicservice.Map }
func (s *apiSystem) Add(_ *testing.T, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.n++
		at := time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC).Add(time.Duration(s.n) * time.Minute).Format(time.RFC3339)
		s.api.Add(map[string]any{"ma_ho_so": fmt.Sprintf("HS-%05d", s.n), "ma_thu_tuc": "1.001612", "co_quan": "SO-TP", "ma_dia_ban": "27256",
			"kenh_nop": "truc_tuyen", "trang_thai": "tiep_nhan", "ngay_tiep_nhan": at, "cap_nhat_luc": at})
	}
}
func (s *apiSystem) AddMalformed(*testing.T) {
	s.api.Add(map[string]any{"ma_ho_so": "HS-BAD", "trang_thai": "???", "cap_nhat_luc": "2026-11-23T08:00:00Z"})
}
func (s *apiSystem) SetAvailable(_ *testing.T, up bool) { s.api.SetDown(!up) }

func TestConformance(t *testing.T) {
	connectortest.Run(t, "publicservice-dvc", func(t *testing.T) connectortest.System {
		api := &sim.DossierAPI{}
		hs := httptest.NewServer(api)
		t.Cleanup(hs.Close)
		return &apiSystem{api: api, url: hs.URL}
	})
}
