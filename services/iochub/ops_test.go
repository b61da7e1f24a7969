package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/iochub/iochub/internal/polltest"
	"github.com/iochub/iochub/pkg/chstore/chstoretest"
	"github.com/iochub/iochub/pkg/event"
	"github.com/iochub/iochub/pkg/eventgen"
	"github.com/iochub/iochub/pkg/httpedge"
	"github.com/iochub/iochub/pkg/natsjs"
	"github.com/iochub/iochub/services/gateway"
	"github.com/iochub/iochub/services/iocapi"
	"github.com/iochub/iochub/services/iochub/internal/hub"
	"github.com/iochub/iochub/services/monitor"
	"github.com/iochub/iochub/services/sharing"
)

// TestOpsPageInHeadlessChromium: a hub with traffic, dead letters, a
// silent source, a producer whose every event is refused and two partner
// subscriptions; the ops page shows the streams, the aggregator consumer,
// the sources with their freshness lights, the producer's refusals by
// reason, each subscription's delivery (delivered, pending, retries, last
// error), the dead letters with their reasons and an operator's buttons
// (a purge takes two clicks), the alerts in Vietnamese with local times,
// the rates chart with its time and value axes; /metrics parses and has
// the subscriptions' figures, the gateway's refusals, the Go runtime's
// and the process's metrics and a request histogram per route; a
// screenshot goes to docs/img/ops.png.
func TestOpsPageInHeadlessChromium(t *testing.T) {
	natsAddr := "127.0.0.1:" + freePort(t)
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) }))
	defer down.Close()
	base := startHubWith(t, chstoretest.NewDatabase(t), func(c *hub.Config) {
		c.NATS.Listen = natsAddr
		c.Services = "gateway,aggregator,iocapi,monitor,sharing"
		c.File.Sharing = sharing.Config{Agencies: []sharing.Agency{{Name: "cong-an", TokenSHA256: httpedge.HashToken(policeAgencyToken),
			PushURLs: []string{down.URL + "/"}, Grants: []sharing.Grant{{Types: []string{"vn.ioc.traffic.*"}, Areas: []string{sharing.AllAreas}}}}}}
		c.AreasFile = "../../deploy/areas/bac-ninh.csv"
		c.File.IOCAPI.Readers = []iocapi.Reader{{Name: "lanh-dao", TokenSHA256: httpedge.HashToken(readerToken), Role: "leader"}}
		c.File.Gateway.Producers = append(c.File.Gateway.Producers, gateway.Producer{Name: "he-thong-loi", TokenSHA256: httpedge.HashToken(badSenderToken),
			Scope: event.Scope{Sources: []string{"/health/"}, Types: []string{"vn.ioc.health.*"}}})
		c.File.Monitor = monitor.Config{Interval: 200 * time.Millisecond, Sources: map[string]time.Duration{
			"/traffic/sensors": time.Hour, "/education/sms": time.Second},
			Admins: []monitor.Admin{{Name: "ops", TokenSHA256: httpedge.HashToken("ops-token")},
				{Name: "xem", TokenSHA256: httpedge.HashToken("viewer-token"), Role: monitor.RoleViewer}}}
	})
	nc, err := nats.Connect(opsURL(natsAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := natsjs.NewJetStream(nc)
	for name, body := range map[string]map[string]any{
		"ca-pull": {"types": []string{"vn.ioc.traffic.*"}, "start": "beginning"},
		"ca-push": {"types": []string{"vn.ioc.traffic.*"}, "start": "beginning", "mode": "push", "url": down.URL + "/", "batch": 5},
	} {
		if code, b := sharingCall(t, base, policeAgencyToken, "PUT", "/v1/subscriptions/"+name, body); code != http.StatusCreated {
			t.Fatalf("PUT %s: %d %s", name, code, b)
		}
	}
	invalid, err := os.ReadFile("../../schemas/health/examples/visit.v1.invalid.json")
	if err != nil {
		t.Fatal(err)
	}
	if code, _ := postRaw(t, base, badSenderToken, invalid); code != http.StatusBadRequest {
		t.Fatalf("the invalid visits: %d, want 400", code)
	}
	g := eventgen.New(5, "ops")
	var msgs []*nats.Msg
	traffic := 0
	for range 40 {
		e := g.Next()
		if strings.HasPrefix(e.Type, "vn.ioc.traffic.") {
			traffic++
		}
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
	// The pull subscription takes every traffic event and confirms them.
	if traffic == 0 {
		t.Fatal("the mix has no traffic event")
	}
	var pulled sharing.Pulled
	for len(pulled.Events) < traffic {
		code, b := sharingCall(t, base, policeAgencyToken, "GET", "/v1/subscriptions/ca-pull/events?max=1000&wait=5", nil)
		if err := json.Unmarshal(b, &pulled); code != http.StatusOK || err != nil {
			t.Fatalf("pull: %d %s", code, b)
		}
	}
	if code, b := sharingCall(t, base, policeAgencyToken, "GET", "/v1/subscriptions/ca-pull/events?wait=0&after="+pulled.Cursor, nil); code != http.StatusOK {
		t.Fatalf("confirm: %d %s", code, b)
	}
	// Stored, dead-lettered, delivered and sampled: what the page will show.
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
			if src.Source == "/education/sms" && src.Freshness != "late" {
				return fmt.Errorf("/education/sms: %s, want late a second after the start", src.Freshness)
			}
		}
		refused := false
		for _, p := range snap.Producers {
			refused = refused || (p.Producer == "he-thong-loi" && p.Accepted == 0 && p.Rejected["enum"] == 1 && p.Rejected["minimum"] == 1 && p.Rejected["type"] == 1)
		}
		if !refused {
			return fmt.Errorf("producers %+v: want he-thong-loi with its three refusals by rule", snap.Producers)
		}
		if _, ok := snap.Store.Tables["health_visit_v1"]; !ok || fresh == 0 || len(snap.Consumers) == 0 || len(snap.Streams) == 0 {
			return fmt.Errorf("sample %+v", snap)
		}
		subs := map[string]monitor.SubscriptionStat{}
		for _, s := range snap.Subscriptions {
			subs[s.Name] = s
		}
		if p := subs["ca-pull"]; p.Delivered != uint64(traffic) || p.Pending != 0 || p.LastDelivery == nil || p.Mode != "pull" {
			return fmt.Errorf("ca-pull: %+v, want %d delivered, none pending", p, traffic)
		}
		// Pending counts the log's messages on its subjects not yet taken:
		// the two invalid incidents too, skipped only when reached.
		if p := subs["ca-push"]; p.Delivered != 0 || p.Pending != uint64(traffic+2) || p.Retries == 0 || !strings.Contains(p.LastError, "503") {
			return fmt.Errorf("ca-push: %+v, want %d pending and retries after 503", p, traffic+2)
		}
		return nil
	})
	req, _ := http.NewRequest(http.MethodGet, base+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer ops-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(string(metrics)))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes", "iochub_http_request_duration_seconds", "iochub_gateway_events_total", "iochub_stream_messages"} {
		if _, ok := fams[name]; !ok {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	checkDeployQueries(t, fams)
	routes := map[string]bool{}
	for _, m := range fams["iochub_http_request_duration_seconds"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "route" {
				routes[l.GetValue()] = true
			}
		}
	}
	for _, r := range []string{"POST /v1/events", "GET /v1/ops/snapshot", "PUT /v1/subscriptions/{name}", "GET /v1/subscriptions/{name}/events"} {
		if !routes[r] {
			t.Errorf("no request histogram for route %q (have %v)", r, routes)
		}
	}
	for _, want := range []string{
		`iochub_gateway_events_total{outcome="rejected",producer="he-thong-loi",reason="enum"} 1`,
		fmt.Sprintf(`iochub_subscription_delivered_total{agency="cong-an",mode="pull",subscription="ca-pull"} %d`, traffic),
		fmt.Sprintf(`iochub_subscription_pending_messages{agency="cong-an",mode="push",subscription="ca-push"} %d`, traffic+2),
		`iochub_subscription_dead_letters{agency="cong-an",mode="push",subscription="ca-push"} 0`,
		`# TYPE iochub_subscription_retries_total counter`,
	} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	pg := openPage(t, base+"/ops#token=ops-token", 1400, 1600)
	pg.waitLoaded("0")
	eval, text := pg.eval, pg.text
	if row := text(`tr[data-stream="IOC_DLQ"]`); !strings.Contains(row, "IOC_DLQ2") {
		t.Errorf("IOC_DLQ row: %q (want 2 messages)", row)
	}
	// The audit log is shown: the grants recorded at start, the pull's
	// send (or sends: an answer not confirmed is sent again) and its
	// confirmation, the push's first send, and perhaps the day's root.
	n := eval(`(document.querySelector('tr[data-stream="IOC_AUDIT"]') || {cells: [0, {textContent: "(missing)"}]}).cells[1].textContent`)
	if records, err := strconv.Atoi(strings.ReplaceAll(n, ".", "")); err != nil || records < 4 {
		t.Errorf("IOC_AUDIT row: %q records, want at least 4 (grants, the pull's send and confirmation, the push's send)", n)
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
	if row := text(`tr[data-subscription="ca-push"]`); !strings.Contains(row, "đẩy · push") || !strings.Contains(row, "503") {
		t.Errorf("push subscription row: %q (want its mode and the agency's 503)", row)
	}
	if row := text(`tr[data-subscription="ca-pull"]`); !strings.Contains(row, "kéo · pull"+fmt.Sprint(traffic)) {
		t.Errorf("pull subscription row: %q (want %d delivered)", row, traffic)
	}
	if alerts := text("#alerts"); !strings.Contains(alerts, monitor.AlertSourceSilent) || !strings.Contains(alerts, "Nguồn /education/sms không gửi dữ liệu quá 1 giây") {
		t.Errorf("alerts: %q (want source_silent in Vietnamese)", alerts)
	}
	if row := text(`tr[data-producer="he-thong-loi"]`); !strings.Contains(row, "enum: 1") || !strings.Contains(row, "(HTTP 400)") {
		t.Errorf("the refusing producer's row: %q", row)
	}
	// The rates chart's axes: times (hh:mm) and values.
	if got := eval(`Array.from(document.querySelectorAll('#rates svg text')).map((e) => e.textContent).join('|')`); !regexp.MustCompile(`\d\d:\d\d`).MatchString(got) || !strings.Contains(got, "sự kiện/giây") {
		t.Errorf("rates chart labels %q: want times and the value axis's unit", got)
	}
	if csp := eval(`document.body.dataset.csp || ""`); csp != "" {
		t.Errorf("the ops page broke its Content-Security-Policy: %s", csp)
	}
	if got := eval(`String(document.querySelectorAll('#dlq button[data-purge]').length)`); got != "2" {
		t.Fatalf("%s purge buttons for an operator, want 2", got)
	}
	loaded := eval(`document.body.dataset.loaded`)
	eval(`document.querySelector('#dlq button[data-purge]').click(), ""`)
	if got := eval(`document.querySelector('#dlq button[data-purge]').textContent`); got != "Xác nhận xoá?" {
		t.Errorf("after one click the purge button says %q, want a confirmation", got)
	}
	pg.screenshot("ops.png")
	// In English with the switch, times still local.
	loaded = eval(`document.body.dataset.loaded`)
	eval(`document.getElementById('lang').click(), ""`)
	pg.waitLoaded(loaded)
	if alerts := text("#alerts"); !strings.Contains(alerts, "source /education/sms sent nothing for longer than 1 s") {
		t.Errorf("alerts in English: %q", alerts)
	}
	eval(`document.querySelector('#dlq button[data-purge]').click(), ""`)
	pg.waitLoaded(loaded)
	polltest.True(t, "one dead letter left after the purge", 10*time.Second, func() bool {
		var d struct{ Stats monitor.DLQStat }
		getJSON(t, base+"/v1/ops/dlq", "ops-token", &d)
		return d.Stats.Depth == 1
	})
	// A viewer sees the letters, not the buttons.
	vp := openPage(t, base+"/ops#token=viewer-token", 1400, 1000)
	vp.waitLoaded("0")
	if got := vp.eval(`document.querySelectorAll('#dlq tbody tr').length + ' letters, ' + document.querySelectorAll('#dlq button').length + ' buttons, replay all hidden: ' + document.getElementById('replay-all').hidden`); got != "1 letters, 0 buttons, replay all hidden: true" {
		t.Errorf("a viewer's page: %s", got)
	}
}

const badSenderToken = "ops-test-bad-sender-token"
