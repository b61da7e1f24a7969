package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/iochub/iochub/internal/polltest"
	"github.com/iochub/iochub/pkg/chstore/chstoretest"
	"github.com/iochub/iochub/pkg/eventgen"
	"github.com/iochub/iochub/pkg/httpedge"
	"github.com/iochub/iochub/pkg/natsjs"
	"github.com/iochub/iochub/services/iocapi"
	"github.com/iochub/iochub/services/iochub/internal/hub"
	"github.com/iochub/iochub/services/monitor"
)

// TestOpsPageInHeadlessChromium: a hub with traffic, dead letters and a
// silent source; the ops page shows the streams, the aggregator consumer,
// the sources with their freshness lights, the dead letters with their
// reasons and the alerts, and a screenshot goes to docs/img/ops.png.
func TestOpsPageInHeadlessChromium(t *testing.T) {
	natsAddr := "127.0.0.1:" + freePort(t)
	base := startHubWith(t, chstoretest.NewDatabase(t), func(c *hub.Config) {
		c.NATS.Listen = natsAddr
		c.Services = "gateway,aggregator,iocapi,monitor"
		c.AreasFile = "../../deploy/areas/bac-ninh.csv"
		c.File.IOCAPI.Readers = []iocapi.Reader{{Name: "lanh-dao", TokenSHA256: httpedge.HashToken(readerToken), Role: "leader"}}
		c.File.Monitor = monitor.Config{Interval: 200 * time.Millisecond, Sources: map[string]time.Duration{
			"/traffic/sensors": time.Hour, "/education/sms": time.Minute},
			Admins: []monitor.Admin{{Name: "ops", TokenSHA256: httpedge.HashToken("ops-token")}}}
	})
	nc, err := nats.Connect(opsURL(natsAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := natsjs.NewJetStream(nc)
	g := eventgen.New(5, "ops")
	var msgs []*nats.Msg
	for range 40 {
		e := g.Next()
		m, _ := natsjs.EventMsg(e, e.AppendJSON(nil))
		msgs = append(msgs, m)
	}
	for i := range 2 { // two that fail validation
		e := g.Of("vn.ioc.traffic.incident.v1")
		e.ID = fmt.Sprintf("ops-bad-%d", i)
		e.Data = []byte(`{"incident_id": "SC-X", "kind": "chay_no"}`)
		m, _ := natsjs.EventMsg(e, e.AppendJSON(nil))
		msgs = append(msgs, m)
	}
	for _, o := range natsjs.PublishAll(context.Background(), js, msgs) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
	}
	// Stored, dead-lettered and sampled: what the page will show.
	polltest.Until(t, "the monitor's sample to show the events stored and dead-lettered", time.Minute, func() error {
		var snap monitor.Snapshot
		if code := getJSON(t, base+"/v1/ops/snapshot", "ops-token", &snap); code != http.StatusOK {
			return fmt.Errorf("snapshot: %d", code)
		}
		for _, st := range snap.Streams {
			if st.Name == natsjs.DLQStream && st.Messages != 2 {
				return fmt.Errorf("%d dead letters", st.Messages)
			}
		}
		for _, c := range snap.Consumers {
			if c.Name == natsjs.AggregatorConsumer && (c.Pending > 0 || c.AckPending > 0) {
				return fmt.Errorf("aggregator: %d pending, %d awaiting ack", c.Pending, c.AckPending)
			}
		}
		fresh := 0
		for _, src := range snap.Sources {
			if src.Freshness == "ok" {
				fresh++
			}
		}
		if _, ok := snap.Store.Tables["health_visit_v1"]; !ok || fresh == 0 || len(snap.Consumers) == 0 || len(snap.Streams) == 0 {
			return fmt.Errorf("sample %+v", snap)
		}
		return nil
	})

	pg := openPage(t, base+"/ops#token=ops-token", 1400, 1600)
	pg.waitLoaded("0")
	eval, text := pg.eval, pg.text
	if row := text(`tr[data-stream="IOC_DLQ"]`); !strings.Contains(row, "IOC_DLQ2") {
		t.Errorf("IOC_DLQ row: %q (want 2 messages)", row)
	}
	// The audit log holds no admin action; at most the day's signed root,
	// which the hub writes at start.
	if n := eval(`(document.querySelector('tr[data-stream="IOC_AUDIT"]') || {cells: [0, {textContent: "(missing)"}]}).cells[1].textContent`); n != "0" && n != "1" {
		t.Errorf("IOC_AUDIT row: %q records (want the audit log, with at most its signed root)", n)
	}
	if asof := text("#asof"); !strings.Contains(asof, "ops (vận hành · operator)") {
		t.Errorf("header %q does not say who is signed in, with which role", asof)
	}
	if row := text(`tr[data-consumer="aggregator"]`); !strings.Contains(row, "IOC_EVENTS") {
		t.Errorf("aggregator row: %q", row)
	}
	if got := eval(`document.querySelector('tr[data-source="/education/sms"] [data-state]').dataset.state`); got != "late" {
		t.Errorf("the silent source's light: %q, want late", got)
	}
	if got := eval(`String(document.querySelectorAll('[data-state="ok"]').length)`); got == "0" {
		t.Error("no source shown fresh")
	}
	if rows := eval(`Array.from(document.querySelectorAll('#dlq tbody tr')).map((r) => r.textContent).join(' | ')`); strings.Count(rows, "dlq.traffic.incident.v1") != 2 ||
		!strings.Contains(rows, "/kind: value must be one of") {
		t.Errorf("dead letters: %q", rows)
	}
	if got := eval(`document.querySelector('[data-ch]').dataset.ch`); got != "up" {
		t.Errorf("ClickHouse shown %q", got)
	}
	if row := text(`tr[data-table="health_visit_v1"]`); row == "(missing)" {
		t.Error("no table sizes")
	}
	if alerts := text("#alerts"); !strings.Contains(alerts, monitor.AlertSourceSilent) {
		t.Errorf("alerts: %q", alerts)
	}
	pg.screenshot("ops.png")
}
