package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/iochub/iochub/internal/polltest"
	"github.com/iochub/iochub/pkg/chstore"
	"github.com/iochub/iochub/pkg/chstore/chstoretest"
	"github.com/iochub/iochub/pkg/httpedge"
	"github.com/iochub/iochub/pkg/kpi"
	"github.com/iochub/iochub/pkg/kpi/kpitest"
	"github.com/iochub/iochub/services/iocapi"
	"github.com/iochub/iochub/services/iochub/internal/hub"
	"github.com/iochub/iochub/services/monitor"
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
	return startKPIHubWith(t, nil)
}

// startKPIHubWith is startKPIHubDSN with change applied to the config.
func startKPIHubWith(t *testing.T, change func(*hub.Config)) (string, string) {
	t.Helper()
	dsn := chstoretest.NewDatabase(t)
	base := startHubWith(t, dsn, func(c *hub.Config) {
		c.Services = "gateway,aggregator,iocapi"
		kpiReaders(c)
		if change != nil {
			change(c)
		}
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
// the Vietnamese way with their targets (a tile past its alarm is red),
// the charts have their points, the map fills every district, switches to
// English, and saves screenshots to docs/img/.
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
	// Units written out, targets shown; past the alarm a tile is red.
	if u := text(`.tile[data-kpi="feedback.satisfaction"] .unit`); u != "/5 điểm" {
		t.Errorf("satisfaction's unit %q, want /5 điểm (3/5 điểm)", u)
	}
	states := map[string]string{"publicservice.on_time_rate": "alarm", "health.bed_occupancy": "met", "education.attendance_rate": "below",
		"education.schools_not_reported": "alarm", "health.visits": ""}
	for k, w := range states {
		if got := eval(fmt.Sprintf(`document.querySelector('.tile[data-kpi="%s"]').dataset.state`, k)); got != w {
			t.Errorf("tile %s: state %q, want %q", k, got, w)
		}
	}
	if bg := eval(`getComputedStyle(document.querySelector('.tile[data-kpi="publicservice.on_time_rate"]')).backgroundColor`); bg != "rgb(253, 236, 234)" {
		t.Errorf("the on-time rate at 50%% (alarm under 90%%) has background %s, want red", bg)
	}
	if got := text(`.tile[data-kpi="publicservice.on_time_rate"] .target`); got != "Mục tiêu ≥ 95%" {
		t.Errorf("on-time target %q", got)
	}
	charts := eval(`String(document.querySelectorAll('[data-chart][data-points="3"] svg').length)`)
	if charts != "5" {
		t.Errorf("%s charts of 3 days drawn; want 5", charts)
	}
	if status := text("#status"); !strings.Contains(status, "02/11/2026 – 04/11/2026 (ngày theo lịch, giờ Việt Nam)") {
		t.Errorf("status %q does not give the period as calendar days", status)
	}
	if title := text("h1"); title != "Trung tâm giám sát, điều hành thông minh" {
		t.Errorf("title %q: not Vietnamese by default", title)
	}
	// The map of on-time rates: every district drawn, those with dossiers
	// resolved filled by their value.
	checkMap(t, pg)
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

// checkMap: the map has a region for every district of the areas file,
// drawn in the fill the dashboard computed from the KPI's values.
func checkMap(t *testing.T, pg *page) {
	t.Helper()
	var fills map[string]string
	if err := json.Unmarshal([]byte(pg.eval(`document.getElementById('map').dataset.fills || "{}"`)), &fills); err != nil {
		t.Fatal(err)
	}
	districts := []string{"27256", "27258", "27259", "27260", "27261", "27262", "27263", "27264"}
	if len(fills) != len(districts) {
		t.Fatalf("map fills %v: want the 8 districts of bac-ninh.csv", fills)
	}
	drawn := pg.eval(`Array.from(document.querySelectorAll('#map svg path')).map((p) => p.getAttribute('fill')).join('|')`)
	distinct := map[string]bool{}
	for _, d := range districts {
		f, ok := fills[d]
		if !ok {
			t.Errorf("district %s has no fill", d)
		}
		distinct[f] = true
	}
	for f := range distinct {
		if !strings.Contains(strings.ToLower(drawn), strings.ToLower(f)) {
			t.Errorf("fill %s is on no region of the map (drawn: %s)", f, drawn)
		}
	}
	if len(distinct) < 2 {
		t.Errorf("every district has the same fill %v: not shaded by the KPI", fills)
	}
}

// TestDashboardOnAWall: at 1920×1080 every tile of the five sectors, the
// detail panel and the map are on the screen without scrolling; a silent
// source's alert is the banner; a tile's change against the previous
// period is the hand-computed one; a click on a district of the map
// filters the tiles; a tile opens its list (sortable, paged); the kiosk
// mode hides the controls; a phone's width scrolls down, never sideways.
// Screenshots: wall.png, map.png, drilldown.png, dashboard-phone.png.
func TestDashboardOnAWall(t *testing.T) {
	t.Parallel()
	base, _ := startKPIHubWith(t, func(c *hub.Config) {
		c.Services = "gateway,aggregator,iocapi,monitor"
		c.File.Monitor = monitor.Config{Interval: 200 * time.Millisecond, Sources: map[string]time.Duration{"/traffic/radar": time.Second},
			Admins: []monitor.Admin{{Name: "ops", TokenSHA256: httpedge.HashToken("ops-token")}}}
	})
	// The monitor finds the radar silent a second after the start.
	polltest.Until(t, "source_silent for the radar, as readers see it", 30*time.Second, func() error {
		var a struct{ Alerts []iocapi.Notice }
		if code := getJSON(t, base+"/v1/alerts", readerToken, &a); code != http.StatusOK {
			return fmt.Errorf("status %d", code)
		}
		for _, n := range a.Alerts {
			if n.Name == monitor.AlertSourceSilent && n.Subject == "/traffic/radar" {
				return nil
			}
		}
		return fmt.Errorf("alerts %+v", a.Alerts)
	})

	pg := openPage(t, base+"/#token="+readerToken+"&from=2026-11-02&to=2026-11-04", 1920, 1080)
	pg.waitLoaded("0")
	geometry := pg.eval(`(() => {
		const out = [];
		const W = innerWidth, H = innerHeight;
		document.querySelectorAll('.sector .tile, #map, #detail').forEach((e) => {
			const r = e.getBoundingClientRect();
			if (r.left < 0 || r.top < 0 || r.right > W || r.bottom > H || r.width < 60 || r.height < 40) out.push((e.dataset.kpi || e.id) + ' at ' + [r.left, r.top, r.right, r.bottom].map(Math.round).join(','));
		});
		if (document.scrollingElement.scrollHeight > H || document.scrollingElement.scrollWidth > W) out.push('the page scrolls: ' + document.scrollingElement.scrollWidth + 'x' + document.scrollingElement.scrollHeight);
		out.push(document.querySelectorAll('.sector').length + ' sectors, ' + document.querySelectorAll('.sector .tile').length + ' tiles');
		return out.join('; ');
	})()`)
	if geometry != "5 sectors, 18 tiles" {
		t.Errorf("at 1920×1080: %s", geometry)
	}
	if banner := pg.text("#banner"); !strings.Contains(banner, "Nguồn /traffic/radar không gửi dữ liệu quá 1 giây") {
		t.Errorf("banner %q, want the radar's source_silent in Vietnamese", banner)
	}
	checkMap(t, pg)
	if csp := pg.eval(`document.body.dataset.csp || ""`); csp != "" {
		t.Errorf("the dashboard broke its Content-Security-Policy: %s", csp)
	}
	pg.screenshot("wall.png")
	pg.screenshotOf("#map-panel", "map.png")

	// A click on Thành phố Bắc Ninh (its seat) filters the tiles to it.
	xy := pg.eval(`JSON.stringify(state.map.convertToPixel({ geoIndex: 0 }, [106.075, 21.185]).map((v, i) => v + document.getElementById('map').getBoundingClientRect()[i ? 'top' : 'left']))`)
	var at []float64
	if err := json.Unmarshal([]byte(xy), &at); err != nil || len(at) != 2 {
		t.Fatalf("the seat's pixel: %s %v", xy, err)
	}
	loaded := pg.eval(`document.body.dataset.loaded`)
	pg.clickAt(at[0], at[1])
	pg.waitLoaded(loaded)
	if area, n := pg.eval(`document.getElementById('area').value`), pg.text(`.tile[data-kpi="publicservice.dossiers_received"] .value`); area != "27256" || n != "2" {
		t.Errorf("after a click on Thành phố Bắc Ninh: area %q, dossiers received %q; want 27256 and 2 (kpitest)", area, n)
	}

	// The change against the previous period: 3 November against the 2nd.
	pg2 := openPage(t, base+"/#token="+readerToken+"&from=2026-11-03&to=2026-11-03", 1920, 1080)
	pg2.waitLoaded("0")
	for _, c := range []struct {
		kpi  string
		want float64
	}{{"publicservice.dossiers_received", handChange(t, "publicservice.dossiers_received")}, {"health.visits", handChange(t, "health.visits")}} {
		got := pg2.eval(fmt.Sprintf(`document.querySelector('.tile[data-kpi="%s"] .change').dataset.change`, c.kpi))
		if got != strconv.FormatFloat(c.want, 'f', -1, 64) {
			t.Errorf("%s: change %q against the day before, want %g (kpitest's days)", c.kpi, got, c.want)
		}
	}
	if ch := pg2.text(`.tile[data-kpi="publicservice.dossiers_received"] .change`); ch != "▼ 75%" {
		t.Errorf("dossiers received, 3 Nov against 2 Nov (1 against 4): %q, want ▼ 75%%", ch)
	}

	// The overdue tile opens its list: the dossier overdue since 5 Nov.
	loaded = pg.eval(`document.body.dataset.loaded`)
	pg.eval(`document.getElementById('area').value = '', document.getElementById('area').dispatchEvent(new Event('change')), ""`)
	pg.waitLoaded(loaded)
	drilled := pg.eval(`document.body.dataset.drilled || "0"`)
	pg.eval(`document.querySelector('.tile[data-kpi="publicservice.overdue_now"]').click(), ""`)
	pg.waitFor("the drill-down", `Number(document.body.dataset.drilled || "0") > `+drilled)
	rows := pg.eval(`Array.from(document.querySelectorAll('#drill-table tbody tr')).map((r) => r.cells[0].textContent + '/' + r.cells[6].textContent).join(' | ')`)
	if !strings.HasPrefix(rows, "D3/") || strings.Count(rows, "|") != 0 {
		t.Errorf("overdue dossiers in the drill-down: %q, want D3 alone", rows)
	}
	if sorted := pg.eval(`document.querySelector('#drill-table th[aria-sort]').dataset.col + ' ' + document.querySelector('#drill-table th[aria-sort]').getAttribute('aria-sort')`); sorted != "days_overdue descending" {
		t.Errorf("the list is sorted by %q", sorted)
	}
	pg.screenshot("drilldown.png")

	// Kiosk: no controls, large type.
	wall := openPage(t, base+"/?wall=1#token="+readerToken+"&from=2026-11-02&to=2026-11-04", 1920, 1080)
	wall.waitLoaded("0")
	if got := wall.eval(`getComputedStyle(document.querySelector('.controls')).display + ' ' + getComputedStyle(document.querySelector('.tile .value')).fontSize`); got != "none 34px" {
		t.Errorf("kiosk: controls display and value size %q, want none 34px", got)
	}
	if sc := wall.eval(`String(document.scrollingElement.scrollHeight <= innerHeight)`); sc != "true" {
		t.Error("the kiosk page scrolls")
	}

	// A laptop: two columns that scroll down, nothing wider than the screen.
	laptop := openPage(t, base+"/#token="+readerToken+"&from=2026-11-02&to=2026-11-04", 1366, 768)
	laptop.waitLoaded("0")
	if got := laptop.eval(`document.scrollingElement.scrollWidth + ' ' + innerWidth + ' ' + new Set(Array.from(document.querySelectorAll('.sector')).map((e) => Math.round(e.getBoundingClientRect().left))).size`); got != "1366 1366 2" {
		t.Errorf("on a laptop (scroll width, window width, columns of sectors): %s, want 1366 1366 2", got)
	}

	// A phone: one column, nothing wider than the screen.
	phone := openPage(t, base+"/#token="+readerToken+"&from=2026-11-02&to=2026-11-04", 390, 844)
	phone.waitLoaded("0")
	if w := phone.eval(`String(document.scrollingElement.scrollWidth) + ' ' + String(innerWidth)`); w != "390 390" {
		t.Errorf("on a phone the page is %s wide (scroll, window)", w)
	}
	phone.screenshot("dashboard-phone.png")
}

// handChange is the change of kpi's total on the 3rd of November against
// the 2nd, from kpitest's hand-worked series (days 2, 3, 4 November).
func handChange(t *testing.T, kpiName string) float64 {
	t.Helper()
	for _, x := range kpitest.Expectations {
		if x.KPI == kpiName && x.Granularity == "day" && len(x.Filters) == 0 { // By breaks down the total, not the series
			prev, cur := *x.Series[0], *x.Series[1]
			return (cur - prev) / prev * 100
		}
	}
	t.Fatalf("kpitest has no day series of %s", kpiName)
	return 0
}

// TestMapWithoutShapesIsATileGrid: an areas file with no GeoJSON beside it
// gives a tile per district, coloured by the KPI like the map, and a click
// on a tile filters the dashboard.
func TestMapWithoutShapesIsATileGrid(t *testing.T) {
	csv, err := os.ReadFile("../../deploy/areas/bac-ninh.csv")
	if err != nil {
		t.Fatal(err)
	}
	areas := filepath.Join(t.TempDir(), "province.csv")
	if err := os.WriteFile(areas, csv, 0o644); err != nil {
		t.Fatal(err)
	}
	base, _ := startKPIHubWith(t, func(c *hub.Config) { c.AreasFile = areas })
	pg := openPage(t, base+"/#token="+readerToken+"&from=2026-11-02&to=2026-11-04", 1920, 1080)
	pg.waitLoaded("0")
	var fills map[string]string
	if err := json.Unmarshal([]byte(pg.eval(`document.getElementById('map').dataset.fills || "{}"`)), &fills); err != nil {
		t.Fatal(err)
	}
	tiles := pg.eval(`Array.from(document.querySelectorAll('#map.cartogram div[data-area]')).map((d) => d.dataset.area + '=' + d.style.backgroundColor).join(' ')`)
	if n := strings.Count(tiles, "="); n != 8 || len(fills) != 8 {
		t.Fatalf("tile grid %q, fills %v: want the 8 districts", tiles, fills)
	}
	if !strings.Contains(tiles, "27256=rgb(13, 59, 102)") || fills["27256"] != "#0d3b66" {
		t.Errorf("Thành phố Bắc Ninh (100%% on time, the most) is not the darkest: %s", tiles)
	}
	pg.screenshotOf("#map-panel", "map-grid.png")
	loaded := pg.eval(`document.body.dataset.loaded`)
	pg.eval(`document.querySelector('#map div[data-area="27256"]').click(), ""`)
	pg.waitLoaded(loaded)
	if area, n := pg.eval(`document.getElementById('area').value`), pg.text(`.tile[data-kpi="publicservice.dossiers_received"] .value`); area != "27256" || n != "2" {
		t.Errorf("after a click on its tile: area %q, dossiers received %q; want 27256 and 2", area, n)
	}
}
