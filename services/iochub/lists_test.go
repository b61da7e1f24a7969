package main

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/iochub/iochub/pkg/chstore"
	"github.com/iochub/iochub/pkg/chstore/chstoretest"
	"github.com/iochub/iochub/services/iocapi"
	"github.com/iochub/iochub/services/iochub/internal/hub"
)

// dossierEvent is one status of a dossier, received at received and due at
// due (none when zero), in area and at agency.
func dossierEvent(id, status string, at, received, due time.Time, area, agency string) map[string]any {
	data := map[string]any{"dossier_id": id, "procedure_code": "1.00" + id[len(id)-1:], "agency_code": agency, "area_code": area,
		"channel": "online", "status": status, "status_time": at.Format(time.RFC3339), "received_at": received.Format(time.RFC3339),
		"applicant_id_number": "027190001234", "applicant_name": "Nguyễn Văn An"}
	if !due.IsZero() {
		data["due_at"] = due.Format(time.RFC3339)
	}
	if status == "resolved" {
		data["resolved_at"] = at.Format(time.RFC3339)
	}
	return map[string]any{"specversion": "1.0", "id": id + "-" + status, "source": "/publicservice/mot-cua", "type": "vn.ioc.publicservice.dossier.v1",
		"time": at.Format(time.RFC3339), "datacontenttype": "application/json", "data": data}
}

// TestOverdueDossierListIsExact: a hand-built set of dossiers, due at
// known times before and after now; the list holds exactly the open ones
// past due, with their whole days overdue, most overdue first, paged; a
// health reader gets 403; the CSV has the same rows; no personal data
// appears.
func TestOverdueDossierListIsExact(t *testing.T) {
	dsn := chstoretest.NewDatabase(t)
	base := startHubWith(t, dsn, func(c *hub.Config) {
		c.Services = "gateway,aggregator,iocapi"
		kpiReaders(c)
	})
	now := time.Now().Truncate(time.Second)
	day := 24 * time.Hour
	recv := now.Add(-20 * day)
	evs := []map[string]any{
		// Open and overdue: 3 days (and 2 hours), 10 days, 0 days (1 hour).
		dossierEvent("HS-A1", "received", recv, recv, now.Add(-3*day-2*time.Hour), "27256", "27.H04"),
		dossierEvent("HS-A1", "processing", recv.Add(time.Hour), recv, now.Add(-3*day-2*time.Hour), "27256", "27.H04"),
		dossierEvent("HS-B2", "received", recv, recv, now.Add(-10*day-time.Minute), "27258", "27.H05"),
		dossierEvent("HS-C3", "supplement_requested", recv.Add(2*time.Hour), recv, now.Add(-time.Hour), "27261", "27.H04"),
		// Not overdue: due later; resolved late (closed); rejected;
		// withdrawn; no due date; received outside the year.
		dossierEvent("HS-D4", "received", recv, recv, now.Add(2*day), "27256", "27.H04"),
		dossierEvent("HS-E5", "received", recv, recv, now.Add(-5*day), "27256", "27.H04"),
		dossierEvent("HS-E5", "resolved", now.Add(-4*day), recv, now.Add(-5*day), "27256", "27.H04"),
		dossierEvent("HS-F6", "rejected", now.Add(-6*day), recv, now.Add(-7*day), "27256", "27.H04"),
		dossierEvent("HS-G7", "withdrawn", now.Add(-6*day), recv, now.Add(-7*day), "27258", "27.H05"),
		dossierEvent("HS-H8", "processing", recv, recv, time.Time{}, "27258", "27.H05"),
		dossierEvent("HS-I9", "received", now.Add(-400*day), now.Add(-400*day), now.Add(-390*day), "27256", "27.H04"),
	}
	postBatch(t, base, evs)
	s, err := chstore.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	waitFor(t, "the dossiers' rollup", 30*time.Second, func() bool {
		var n uint64
		err := s.QueryRow(context.Background(), "SELECT count() FROM "+s.Qualified("kpi_dossier")).Scan(&n)
		return err == nil && n == uint64(len(evs))
	})
	type row struct {
		ID      string    `json:"dossier_id"`
		Proc    string    `json:"procedure_code"`
		Agency  string    `json:"agency_code"`
		Area    string    `json:"area_code"`
		Days    int64     `json:"days_overdue"`
		Due     time.Time `json:"due_at"`
		Applies string    `json:"applicant_name"`
	}
	var got struct {
		Total int
		Rows  []row
		Page  int
		Size  int
	}
	if code := getJSON(t, base+"/v1/lists/overdue_dossiers", readerToken, &got); code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	want := []row{{ID: "HS-B2", Days: 10, Agency: "27.H05", Area: "27258", Due: now.Add(-10*day - time.Minute)},
		{ID: "HS-A1", Days: 3, Agency: "27.H04", Area: "27256", Due: now.Add(-3*day - 2*time.Hour)},
		{ID: "HS-C3", Days: 0, Agency: "27.H04", Area: "27261", Due: now.Add(-time.Hour)}}
	if got.Total != 3 || len(got.Rows) != 3 {
		t.Fatalf("%d overdue (%+v), want %v", got.Total, got.Rows, want)
	}
	for i, w := range want {
		r := got.Rows[i]
		if r.ID != w.ID || r.Days != w.Days || r.Agency != w.Agency || r.Area != w.Area || !r.Due.Equal(w.Due) || r.Proc == "" || r.Applies != "" {
			t.Errorf("row %d: %+v, want %+v", i, r, w)
		}
	}
	// Sorted the other way, paged by two.
	var p2 struct {
		Total int
		Rows  []row
	}
	getJSON(t, base+"/v1/lists/overdue_dossiers?sort=days_overdue&order=asc&size=2&page=2", readerToken, &p2)
	if p2.Total != 3 || len(p2.Rows) != 1 || p2.Rows[0].ID != "HS-B2" {
		t.Errorf("page 2 of 2 ascending: %+v", p2)
	}
	// Filtered by area: the province covers all, a district its own.
	var yp struct {
		Total int
		Rows  []row
	}
	getJSON(t, base+"/v1/lists/overdue_dossiers?area=27258", readerToken, &yp)
	if yp.Total != 1 || yp.Rows[0].ID != "HS-B2" {
		t.Errorf("area 27258: %+v", yp)
	}
	var forbidden struct {
		Status int
		Detail string
	}
	if code := getJSON(t, base+"/v1/lists/overdue_dossiers", healthToken, &forbidden); code != http.StatusForbidden || !strings.Contains(forbidden.Detail, "publicservice") {
		t.Errorf("a health reader: %d %+v, want 403", code, forbidden)
	}
	var bad struct{ Detail, Parameter string }
	if code := getJSON(t, base+"/v1/lists/overdue_dossiers?sort=applicant_name", readerToken, &bad); code != http.StatusBadRequest || bad.Parameter != "sort" {
		t.Errorf("sort by a column it does not have: %d %+v", code, bad)
	}
	req, _ := http.NewRequest(http.MethodGet, base+"/v1/lists/overdue_dossiers?format=csv", nil)
	req.Header.Set("Authorization", "Bearer "+readerToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	recs, err := csv.NewReader(strings.NewReader(string(body))).ReadAll()
	if err != nil || res.Header.Get("Content-Type") != "text/csv; charset=utf-8" {
		t.Fatalf("csv: %v %s", err, res.Header.Get("Content-Type"))
	}
	if strings.Join(recs[0], ",") != "dossier_id,procedure_code,agency_code,area_code,received_at,due_at,days_overdue" || len(recs) != 4 {
		t.Fatalf("csv:\n%s", body)
	}
	for i, w := range want {
		r := got.Rows[i]
		line := strings.Join(recs[i+1], ",")
		wantLine := fmt.Sprintf("%s,%s,%s,%s,%s,%s,%d", r.ID, r.Proc, w.Agency, w.Area, recv.In(iocapiZone(t)).Format(time.RFC3339), w.Due.In(iocapiZone(t)).Format(time.RFC3339), w.Days)
		if line != wantLine {
			t.Errorf("csv row %d: %s, want %s", i+1, line, wantLine)
		}
	}
	if strings.Contains(string(body), "Nguyễn") || strings.Contains(string(body), "027190001234") {
		t.Error("the CSV carries personal data")
	}
}

func iocapiZone(t *testing.T) *time.Location {
	t.Helper()
	return iocapi.DefaultConfig().Timezone.Loc()
}
