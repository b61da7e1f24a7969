package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/iochub/iochub/pkg/chstore"
	"github.com/iochub/iochub/pkg/chstore/chstoretest"
	"github.com/iochub/iochub/pkg/event"
	"github.com/iochub/iochub/pkg/kpi/kpitest"
	"github.com/iochub/iochub/services/iochub/internal/hub"
)

// The field-report portal's public results, with no token: the kpitest
// reports (R1–R5, 2–3 November 2026) and six more in one district and
// category, resolved in time. Only groups of five or more show figures; the
// others show "—", and the answer holds no report's own data.
func TestPublicResultsInHeadlessChromium(t *testing.T) {
	dsn := chstoretest.NewDatabase(t)
	base := startHubWith(t, dsn, func(c *hub.Config) {
		c.Services = "gateway,aggregator,iocapi"
		kpiReaders(c)
	})
	evs := kpitest.Events()
	at := func(day, hour int) time.Time { return time.Date(2026, 11, day, hour, 0, 0, 0, time.UTC) }
	for i := range 6 {
		data, _ := json.Marshal(map[string]any{"report_id": fmt.Sprintf("PUB-%d", i), "category": "giao_thong", "area_code": "27256",
			"channel": "app", "status": "resolved", "status_time": at(3, 15).Format(time.RFC3339), "submitted_at": at(3, 8).Format(time.RFC3339),
			"due_at": at(4, 8).Format(time.RFC3339), "resolved_at": at(3, 15).Format(time.RFC3339), "agency_code": "UBND-27256",
			"reporter_name": "Nguyễn Văn Công Khai", "reporter_phone": "0912345678"})
		evs = append(evs, event.Event{SpecVersion: "1.0", ID: fmt.Sprintf("pub-%d", i), Source: "/feedback/portal-public-test",
			Type: "vn.ioc.feedback.report.v1", Time: at(3, 15), DataContentType: event.ContentTypeJSON, Data: data})
	}
	postBatch(t, base, evs)
	s, err := chstore.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	want := uint64(len(kpitest.Unique()) + 6)
	waitFor(t, "every event in ClickHouse and its rollups", 30*time.Second, func() bool {
		c, err := storeCounts(s)
		if err != nil || total(c) != want {
			return false
		}
		var running uint64
		err = s.QueryRow(context.Background(), "SELECT count() FROM system.processes WHERE query LIKE ?", "INSERT INTO `"+s.Database()+"`%").Scan(&running)
		return err == nil && running == 0
	})

	// The API: 30 days ending on the 4th.
	resp, err := http.Get(base + "/v1/public/feedback?to=2026-11-04")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/public/feedback: %d %s", resp.StatusCode, body)
	}
	for _, secret := range []string{"PUB-", "R1", "Nguyễn", "0912345678", "hmac-sha256", "UBND-"} {
		if strings.Contains(string(body), secret) {
			t.Errorf("the public answer holds %q: %s", secret, body)
		}
	}

	pg := openPage(t, base+"/public?to=2026-11-04", 1280, 1100)
	pg.waitLoaded("0")
	if e := pg.text("#error"); e != "" {
		t.Fatalf("page error: %s", e)
	}
	// Received: R1–R5 and the six; resolved: R1, R2, R5 and the six; in
	// time: R1 and the six, of the eight resolved with a deadline (R2 late,
	// R5 without one).
	for id, want := range map[string]string{"t-received": "11", "t-resolved": "9", "t-ontime": "87,5 %"} {
		if got := pg.text("#" + id + " .value"); got != want {
			t.Errorf("%s shows %q, want %q", id, got, want)
		}
	}
	rows := func(table string) string {
		return pg.eval(`Array.from(document.querySelectorAll('#` + table + ` tbody tr')).map((r) => Array.from(r.cells).map((c) => c.textContent).join('/')).join(' | ')`)
	}
	// giao_thong: R2 and the six (7), resolved 7, in time 6 of 7. The
	// others have fewer than five reports: a dash each, in key order.
	if got, want := rows("by-category"), "Giao thông/7/7/85,7 % | An ninh, trật tự/—/—/— | Môi trường/—/—/— | Xây dựng/—/—/—"; got != want {
		t.Errorf("by category:\n got %s\nwant %s", got, want)
	}
	// 27256: R1, R3 and the six (8), resolved R1 and the six (7), all in
	// time; 27258 (R2) and 27260 (R4, R5) under five.
	if got, want := rows("by-area"), "Thành phố Bắc Ninh/8/7/100 % | Huyện Yên Phong/—/—/— | Huyện Tiên Du/—/—/—"; got != want {
		t.Errorf("by area:\n got %s\nwant %s", got, want)
	}
	if p := pg.text("#period"); !strings.Contains(p, "06/10/2026") || !strings.Contains(p, "04/11/2026") {
		t.Errorf("period %q: want 30 days from 06/10/2026 to 04/11/2026", p)
	}
	pg.screenshot("public-feedback.png")
}
