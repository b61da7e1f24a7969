package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/iochub/iochub/pkg/chstore"
	"github.com/iochub/iochub/pkg/chstore/chstoretest"
	"github.com/iochub/iochub/pkg/httpedge"
	"github.com/iochub/iochub/pkg/kpi"
	"github.com/iochub/iochub/pkg/kpi/kpitest"
	"github.com/iochub/iochub/services/iocapi"
	"github.com/iochub/iochub/services/iochub/internal/hub"
)

const (
	readerToken = "kpi-test-leader-token"
	healthToken = "kpi-test-health-token"
)

// startKPIHub starts gateway, aggregator and iocapi, posts the kpitest
// events through the gateway (retries, resends under new ids, late and
// out-of-order changes included, in three batches in their order) and
// waits until ClickHouse holds every distinct event.
func startKPIHub(t *testing.T) string {
	t.Helper()
	base, _ := startKPIHubDSN(t)
	return base
}

// kpiReaders makes c an iocapi with the tests' two readers.
func kpiReaders(c *hub.Config) {
	c.AreasFile = "../../deploy/areas/bac-ninh.csv"
	c.File.IOCAPI.Readers = []iocapi.Reader{
		{Name: "lanh-dao", TokenSHA256: httpedge.HashToken(readerToken), Role: "leader"},
		{Name: "so-y-te", TokenSHA256: httpedge.HashToken(healthToken), Role: "health"},
	}
}

// startKPIHubDSN is startKPIHub, and the DSN of its database.
func startKPIHubDSN(t *testing.T) (string, string) {
	t.Helper()
	dsn := chstoretest.NewDatabase(t)
	base := startHubWith(t, dsn, func(c *hub.Config) {
		c.Services = "gateway,aggregator,iocapi"
		kpiReaders(c)
	})
	evs := kpitest.Events()
	for i := 0; i < 3; i++ {
		postBatch(t, base, evs[i*len(evs)/3:(i+1)*len(evs)/3])
	}
	s, err := chstore.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	want := uint64(len(kpitest.Unique()))
	// The raw rows, then no INSERT still running: a raw block is visible a
	// moment before the block the views write in the same INSERT.
	waitFor(t, "every distinct event in ClickHouse and its rollups", 30*time.Second, func() bool {
		c, err := storeCounts(s)
		if err != nil || total(c) != want {
			return false
		}
		var running uint64
		err = s.QueryRow(context.Background(), "SELECT count() FROM system.processes WHERE query LIKE ?",
			"INSERT INTO `"+s.Database()+"`%").Scan(&running)
		return err == nil && running == 0
	})
	return base, dsn
}

func getJSON(t *testing.T, u, token string, into any) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if err := json.NewDecoder(res.Body).Decode(into); err != nil {
		t.Fatalf("%s: %v", u, err)
	}
	return res.StatusCode
}

// TestKPIsThroughTheHub: the hand-computed values of every KPI, asked of
// iocapi over HTTP after the events went through the gateway, JetStream and
// the aggregator.
func TestKPIsThroughTheHub(t *testing.T) {
	checkKPIs(t, startKPIHub(t))
}

// TestIOCAPIReadsWithAReadOnlySession (finding L5): iocapi serves every KPI
// over a ClickHouse session that may not write (readonly=2, as a read-only
// user's profile sets), so it can run with such a user.
func TestIOCAPIReadsWithAReadOnlySession(t *testing.T) {
	_, dsn := startKPIHubDSN(t)
	ro := dsn + "?readonly=2"
	s, err := chstore.Open(context.Background(), ro)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Exec(context.Background(), "CREATE TABLE "+s.Qualified("ro_probe")+" (x UInt8) ENGINE = Memory"); err == nil || !strings.Contains(err.Error(), "readonly") {
		t.Fatalf("a write over the read-only session: %v, want refused", err)
	}
	checkKPIs(t, startHubWith(t, ro, func(c *hub.Config) {
		c.Services = "iocapi"
		kpiReaders(c)
	}))
}

// checkKPIs asks iocapi at base for every KPI of kpitest and checks the
// hand-computed values.
func checkKPIs(t *testing.T, base string) {
	t.Helper()
	for _, x := range kpitest.Expectations {
		t.Run(x.String(), func(t *testing.T) {
			q := url.Values{"from": {kpitest.From.Format(time.RFC3339)}, "to": {kpitest.To.Format(time.RFC3339)}, "granularity": {x.Granularity}}
			for dim, vals := range x.Filters {
				q.Set(dim, strings.Join(vals, ","))
			}
			if x.By != "" {
				q.Set("by", x.By)
			}
			var got iocapi.KPIResponse
			if status := getJSON(t, base+"/v1/kpis/"+x.KPI+"?"+q.Encode(), readerToken, &got); status != http.StatusOK {
				t.Fatalf("status %d", status)
			}
			checkResult(t, x, &got.Result)
			if got.Freshness.LastIngestTime == nil {
				t.Error("no freshness")
			}
		})
	}
	var p struct{ Status int }
	if getJSON(t, base+"/v1/kpis/traffic.incidents", healthToken, &p); p.Status != http.StatusForbidden {
		t.Errorf("health reader asking a traffic KPI: %d, want 403", p.Status)
	}
}

func checkResult(t *testing.T, x kpitest.Expect, res *kpi.Result) {
	t.Helper()
	show := func(p *float64) string {
		if p == nil {
			return "null"
		}
		return fmt.Sprint(*p)
	}
	same := func(a, b *float64) bool {
		if a == nil || b == nil {
			return a == nil && b == nil
		}
		return *a-*b < 1e-9 && *b-*a < 1e-9
	}
	if len(res.Series) != len(x.Series) {
		t.Fatalf("series has %d points, want %d", len(res.Series), len(x.Series))
	}
	for i, want := range x.Series {
		if !same(res.Series[i].Value, want) {
			t.Errorf("series[%d] = %s, want %s", i, show(res.Series[i].Value), show(want))
		}
	}
	if !same(res.Total, x.Total) {
		t.Errorf("total = %s, want %s", show(res.Total), show(x.Total))
	}
	for k, want := range x.Breakdown {
		found := false
		for _, p := range res.Breakdown {
			if p.Key == k && same(p.Value, &want) {
				found = true
			}
		}
		if !found {
			t.Errorf("breakdown %s: want %v in %+v", k, want, res.Breakdown)
		}
	}
}

// chromium is Debian's chromium, installed by `make test` (make chromium).
func chromium(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("IOCHUB_TEST_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p == "" {
			continue
		}
		if _, err := exec.LookPath(p); err == nil {
			return p
		}
	}
	t.Fatal("no headless Chromium: `make chromium` installs Debian's chromium package (or set IOCHUB_TEST_CHROMIUM)")
	return ""
}

// TestDashboardInHeadlessChromium loads the dashboard against a hub holding
// the kpitest events, checks the tiles show the hand-computed totals written
// the Vietnamese way and the charts have their bars, switches to English,
// and saves screenshots to docs/img/.
func TestDashboardInHeadlessChromium(t *testing.T) {
	base := startKPIHub(t)
	// The period of the event set: 2–4 November 2026, whole days.
	pg := openPage(t, base+"/#token="+readerToken+"&from=2026-11-02&to=2026-11-04", 1400, 1900)
	eval, text, waitLoaded := pg.eval, pg.text, pg.waitLoaded
	waitLoaded("0")
	tile := func(kpi string) string { return text(fmt.Sprintf(`.tile[data-kpi="%s"] .value`, kpi)) }
	want := map[string]string{
		"publicservice.dossiers_received": "5", "publicservice.on_time_rate": "50", "publicservice.online_share": "60",
		"publicservice.overdue_now": "1", "feedback.reports_open": "1", "feedback.resolve_hours_median": "12",
		"feedback.resolved_within_deadline": "50", "feedback.satisfaction": "3", "health.visits": "5", "health.emergencies": "2",
		"health.bed_occupancy": "76,3", "health.wait_minutes": "22,5", "education.attendance_rate": "92,7",
		"education.schools_not_reported": "3", "traffic.incidents": "3", "traffic.casualties": "4",
		"traffic.vehicles_per_hour": "166,7", "traffic.mean_speed": "29",
	}
	for k, w := range want {
		if got := tile(k); got != w {
			t.Errorf("tile %s shows %q, want %q", k, got, w)
		}
	}
	bars := eval(`String(document.querySelectorAll('svg.chart rect.bar').length)`)
	charts := eval(`String(document.querySelectorAll('svg.chart[data-points="3"]').length)`)
	if charts != "5" || bars != "15" {
		t.Errorf("%s charts of 3 days with %s bars; want 5 charts, 15 bars", charts, bars)
	}
	if status := text("#status"); !strings.Contains(status, "02/11/2026 – 04/11/2026") {
		t.Errorf("status %q does not give the period as dd/mm/yyyy", status)
	}
	if title := text("h1"); title != "Trung tâm giám sát, điều hành thông minh" {
		t.Errorf("title %q: not Vietnamese by default", title)
	}
	if rows := eval(`Array.from(document.querySelectorAll('#bd-table tbody tr')).map((r) => r.textContent).join(' | ')`); rows !=
		"Thành phố Bắc Ninh2 hồ sơ | Huyện Yên Phong1 hồ sơ | Thành phố Từ Sơn2 hồ sơ" {
		t.Errorf("breakdown of dossiers received by area: %q", rows)
	}
	pg.screenshot("dashboard-vi.png")

	loaded := eval(`document.body.dataset.loaded`)
	eval(`document.getElementById('lang').click(), ""`)
	waitLoaded(loaded)
	title, label, occupancy := text("h1"), text(`.tile[data-kpi="publicservice.dossiers_received"] .label`), tile("health.bed_occupancy")
	if title != "Intelligent Operations Center" || label != "Dossiers received" || occupancy != "76.3" {
		t.Errorf("in English: title %q, label %q, occupancy %q", title, label, occupancy)
	}
	pg.screenshot("dashboard-en.png")

	// The token lives in the tab's session only, and signing out forgets it.
	if stored := eval(`(sessionStorage.getItem('iochub.token') || '') + '|' + (localStorage.getItem('iochub.token') || '')`); stored != readerToken+"|" {
		t.Errorf("token kept as %q (sessionStorage|localStorage), want the session only", stored)
	}
	eval(`document.getElementById('signout').click(), ""`)
	if state := eval(`String(document.getElementById('login').hidden) + '|' + String(document.getElementById('main').hidden) + '|' + (sessionStorage.getItem('iochub.token') || '')`); state != "false|true|" {
		t.Errorf("after sign-out: login hidden|main hidden|token = %q, want the sign-in form and no token", state)
	}
}
