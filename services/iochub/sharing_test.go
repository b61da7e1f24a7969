package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap/zaptest"

	"github.com/iochub/iochub/pkg/area"
	"github.com/iochub/iochub/pkg/audit"
	"github.com/iochub/iochub/pkg/chstore"
	"github.com/iochub/iochub/pkg/chstore/chstoretest"
	"github.com/iochub/iochub/pkg/connector"
	"github.com/iochub/iochub/pkg/dlq"
	"github.com/iochub/iochub/pkg/event"
	"github.com/iochub/iochub/pkg/eventgen"
	"github.com/iochub/iochub/pkg/httpedge"
	"github.com/iochub/iochub/pkg/natsjs"
	"github.com/iochub/iochub/pkg/pii"
	"github.com/iochub/iochub/services/iochub/internal/hub"
	"github.com/iochub/iochub/services/sharing"
	"github.com/iochub/iochub/sim"
)

const (
	healthAgencyToken = "so-y-te-token-0123456789abcdef"
	policeAgencyToken = "cong-an-token-0123456789abcdef"
	incidentType      = "vn.ioc.traffic.incident.v1"
)

// sharingCall sends method path with an agency's token and a JSON body.
func sharingCall(t *testing.T, base, token, method, path string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, base+path, rd)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// sharingHub starts a hub with the gateway, the aggregator and the sharing
// service for agencies, and its NATS listener at natsAddr ("" for none).
func sharingHub(t *testing.T, dsn, natsAddr string, agencies ...sharing.Agency) string {
	t.Helper()
	_, base := startHubInProcess(t, dsn, func(c *hub.Config) {
		c.NATS.Listen = natsAddr
		c.Services = "gateway,aggregator,sharing"
		c.AreasFile = "../../deploy/areas/bac-ninh.csv"
		c.File.Sharing = sharing.Config{Agencies: agencies}
	})
	return base
}

// granted is an agency granted types in every area, whose push
// subscriptions may deliver under pushURL.
func granted(name, token, pushURL string, types ...string) sharing.Agency {
	return sharing.Agency{Name: name, TokenSHA256: httpedge.HashToken(token), PushURLs: []string{pushURL},
		Grants: []sharing.Grant{{Types: types, Areas: []string{sharing.AllAreas}}}}
}

// mix is n events of the generator's mix (seed, name), and the
// identities ("source id") of those whose type starts with prefix, in
// order.
func mix(seed uint64, name string, n int, prefix string) ([]event.Event, []string) {
	g := eventgen.New(seed, name)
	var evs []event.Event
	var ids []string
	for range n {
		e := g.Next()
		if strings.HasPrefix(e.Type, prefix) {
			ids = append(ids, e.Source+" "+e.ID)
		}
		evs = append(evs, e)
	}
	return evs, ids
}

// Two agencies subscribe to overlapping types. Each receives exactly what
// its grants and filters allow, each event once it confirms, personal data
// pseudonymized or dropped as granted (never in clear on the wire), while
// the aggregator stores every event once as before. Asking beyond a grant,
// or pulling another agency's subscription, is refused.
func TestTwoAgenciesReceiveExactlyWhatTheyAreGranted(t *testing.T) {
	dsn := chstoretest.NewDatabase(t)
	areasFile := "../../deploy/areas/bac-ninh.csv"
	natsAddr := "127.0.0.1:" + freePort(t)
	_, base := startHubInProcess(t, dsn, func(c *hub.Config) {
		c.NATS.Listen = natsAddr
		c.Services = "gateway,aggregator,sharing"
		c.AreasFile = areasFile
		c.File.Sharing = sharing.Config{Agencies: []sharing.Agency{
			{Name: "so-y-te", TokenSHA256: httpedge.HashToken(healthAgencyToken), Grants: []sharing.Grant{
				{Types: []string{incidentType}, Areas: []string{"27256"}},
				{Types: []string{"vn.ioc.feedback.*"}, Areas: []string{"27"}, PersonalData: sharing.PersonalDrop},
			}},
			{Name: "cong-an", TokenSHA256: httpedge.HashToken(policeAgencyToken), Grants: []sharing.Grant{
				{Types: []string{"vn.ioc.traffic.*"}, Areas: []string{sharing.AllAreas}},
			}},
		}}
	})
	areas, err := area.Load(areasFile)
	if err != nil {
		t.Fatal(err)
	}

	for _, s := range []struct {
		token, name string
		body        map[string]any
	}{
		{healthAgencyToken, "yte-incidents", map[string]any{"types": []string{incidentType}, "areas": []string{"27256"}, "start": "beginning"}},
		{healthAgencyToken, "yte-reports", map[string]any{"types": []string{"vn.ioc.feedback.*"}, "start": "beginning"}},
		{policeAgencyToken, "ca-traffic", map[string]any{"types": []string{"vn.ioc.traffic.*"}, "start": "beginning"}},
	} {
		if code, b := sharingCall(t, base, s.token, "PUT", "/v1/subscriptions/"+s.name, s.body); code != http.StatusCreated {
			t.Fatalf("PUT %s: %d %s", s.name, code, b)
		}
	}
	// Beyond the grants: refused, naming what is not granted.
	for _, tt := range []struct {
		body map[string]any
		want string
	}{
		{map[string]any{"types": []string{"vn.ioc.traffic.flow.v1"}}, `"types":["vn.ioc.traffic.flow.v1"]`},
		{map[string]any{"types": []string{incidentType}, "areas": []string{"27258"}}, `"areas":{"vn.ioc.traffic.incident.v1":["27258"]}`},
	} {
		code, b := sharingCall(t, base, healthAgencyToken, "PUT", "/v1/subscriptions/yte-more", tt.body)
		if code != http.StatusForbidden || !strings.Contains(string(b), sharing.ProblemNotGranted) || !strings.Contains(string(b), tt.want) {
			t.Errorf("PUT beyond the grants %v: %d %s; want 403 naming %s", tt.body, code, b, tt.want)
		}
	}
	// An area the hub does not know, and a name that is no subscription's.
	if code, b := sharingCall(t, base, healthAgencyToken, "PUT", "/v1/subscriptions/yte-more", map[string]any{"types": []string{incidentType}, "areas": []string{"99999"}}); code != http.StatusBadRequest || !strings.Contains(string(b), "unknown") {
		t.Errorf("PUT with an unknown area: %d %s, want 400", code, b)
	}
	if code, b := sharingCall(t, base, healthAgencyToken, "GET", "/v1/subscriptions/grants.so-y-te", nil); code != http.StatusNotFound {
		t.Errorf("GET of the grants' key as a subscription: %d %s, want 404", code, b)
	}
	// Another agency's subscription.
	if code, b := sharingCall(t, base, policeAgencyToken, "GET", "/v1/subscriptions/yte-incidents/events?wait=0", nil); code != http.StatusForbidden {
		t.Errorf("pull of another agency's subscription: %d %s, want 403", code, b)
	}

	// 400 events of the mix through the gateway.
	g := eventgen.New(11, "sharing")
	var evs []event.Event
	var phones []string
	want := map[string][]string{} // subscription → identities
	for range 400 {
		e := g.Next()
		evs = append(evs, e)
		var d map[string]any
		_ = json.Unmarshal(e.Data, &d)
		ar, _ := d["area_code"].(string)
		if p, ok := d["reporter_phone"].(string); ok {
			phones = append(phones, p)
		}
		id := e.Source + " " + e.ID
		switch {
		case e.Type == incidentType && areas.Within(ar, "27256"):
			want["yte-incidents"] = append(want["yte-incidents"], id)
		case strings.HasPrefix(e.Type, "vn.ioc.feedback."):
			want["yte-reports"] = append(want["yte-reports"], id)
		}
		if strings.HasPrefix(e.Type, "vn.ioc.traffic.") {
			want["ca-traffic"] = append(want["ca-traffic"], id)
		}
	}
	if len(want["yte-incidents"]) == 0 || len(want["yte-reports"]) == 0 || len(phones) == 0 {
		t.Fatalf("the mix lacks what the test needs: %d incidents in 27256, %d reports, %d phones", len(want["yte-incidents"]), len(want["yte-reports"]), len(phones))
	}
	for i := 0; i < len(evs); i += 100 {
		postBatch(t, base, evs[i:i+100])
	}

	clearPhone := regexp.MustCompile(`"09[0-9]{8}"`)
	delivered := map[string]map[string]bool{} // subscription → SHA-256 of each event as received
	for _, s := range []struct{ token, name string }{{healthAgencyToken, "yte-incidents"}, {healthAgencyToken, "yte-reports"}, {policeAgencyToken, "ca-traffic"}} {
		got := map[string]int{}
		cursor, unconfirmedOnce := "0", false
		for deadline := time.Now().Add(60 * time.Second); len(got) < len(want[s.name]) && time.Now().Before(deadline); {
			code, b := sharingCall(t, base, s.token, "GET", "/v1/subscriptions/"+s.name+"/events?max=50&wait=2&after="+cursor, nil)
			if code != http.StatusOK {
				t.Fatalf("pull %s: %d %s", s.name, code, b)
			}
			if m := clearPhone.Find(b); m != nil {
				t.Fatalf("pull %s: a phone number in clear on the wire: %s", s.name, m)
			}
			if s.name == "yte-reports" && (bytes.Contains(b, []byte("reporter_phone")) || bytes.Contains(b, []byte("reporter_name"))) {
				t.Fatalf("pull %s: personal data the grant drops was delivered", s.name)
			}
			var p sharing.Pulled
			if err := json.Unmarshal(b, &p); err != nil {
				t.Fatal(err)
			}
			if len(p.Events) > 0 && !unconfirmedOnce {
				// Not confirmed: the same events come again.
				unconfirmedOnce = true
				_, again := sharingCall(t, base, s.token, "GET", "/v1/subscriptions/"+s.name+"/events?max=50&wait=0&after="+cursor, nil)
				var p2 sharing.Pulled
				_ = json.Unmarshal(again, &p2)
				if p2.Cursor != p.Cursor || len(p2.Events) != len(p.Events) {
					t.Fatalf("pull %s again without confirming: %d events to %s, first %d to %s", s.name, len(p2.Events), p2.Cursor, len(p.Events), p.Cursor)
				}
			}
			for _, raw := range p.Events {
				sum := sha256.Sum256(raw)
				if delivered[s.name] == nil {
					delivered[s.name] = map[string]bool{}
				}
				delivered[s.name][hex.EncodeToString(sum[:])] = true
				var e event.Event
				if err := json.Unmarshal(raw, &e); err != nil {
					t.Fatal(err)
				}
				got[e.Source+" "+e.ID]++
			}
			cursor = p.Cursor
		}
		var ids []string
		for id, n := range got {
			if n != 1 {
				t.Errorf("%s: %s delivered %d times", s.name, id, n)
			}
			ids = append(ids, id)
		}
		slices.Sort(ids)
		w := slices.Clone(want[s.name])
		slices.Sort(w)
		if !slices.Equal(ids, w) {
			t.Errorf("%s received %d events, want exactly %d: %v", s.name, len(ids), len(w), diff(ids, w))
		}
		// Confirmed and drained: nothing more.
		code, b := sharingCall(t, base, s.token, "GET", "/v1/subscriptions/"+s.name+"/events?wait=0&after="+cursor, nil)
		var p sharing.Pulled
		_ = json.Unmarshal(b, &p)
		if code != http.StatusOK || len(p.Events) != 0 || p.Pending != 0 {
			t.Errorf("%s after confirming everything: %d, %d events, %d pending", s.name, code, len(p.Events), p.Pending)
		}
	}

	// The exchange log is bounded per answer, the newest records kept.
	if code, b := sharingCall(t, base, healthAgencyToken, "GET", "/v1/exchanges?limit=2", nil); code != http.StatusOK || strings.Count(string(b), `"hash"`) != 2 {
		t.Errorf("GET /v1/exchanges?limit=2: %d, %d records", code, strings.Count(string(b), `"hash"`))
	}
	if code, _ := sharingCall(t, base, healthAgencyToken, "GET", "/v1/exchanges?limit=0", nil); code != http.StatusBadRequest {
		t.Errorf("limit=0: %d, want 400", code)
	}
	// The exchange log: each agency reads its grants and its exchanges, every
	// event sent and confirmed with the SHA-256 of what it received; not the
	// other agency's. The whole audit log verifies.
	for _, ag := range []struct{ token, name string }{{healthAgencyToken, "so-y-te"}, {policeAgencyToken, "cong-an"}} {
		code, b := sharingCall(t, base, ag.token, "GET", "/v1/exchanges", nil)
		var ex struct{ Records []audit.Record }
		if err := json.Unmarshal(b, &ex); code != http.StatusOK || err != nil {
			t.Fatalf("GET /v1/exchanges (%s): %d %s", ag.name, code, b)
		}
		sent, confirmed, grants := map[string]map[string]bool{}, map[string]map[string]bool{}, 0
		for _, r := range ex.Records {
			switch {
			case r.Action == "grants.set" && r.Target == ag.name && len(r.Detail) > 0:
				grants++
			case r.Actor != ag.name:
				t.Errorf("%s reads a record of %s: %+v", ag.name, r.Actor, r)
			case r.Action == "exchange.sent" || r.Action == "exchange.confirmed":
				into := map[bool]map[string]map[string]bool{true: sent, false: confirmed}[r.Action == "exchange.sent"]
				if into[r.Target] == nil {
					into[r.Target] = map[string]bool{}
				}
				for _, e := range r.Events {
					into[r.Target][e.SHA256] = true
				}
			}
		}
		if grants != 1 {
			t.Errorf("%s: %d grants.set records, want 1", ag.name, grants)
		}
		for sub, sums := range delivered {
			if strings.HasPrefix(sub, "yte") != (ag.name == "so-y-te") {
				continue
			}
			for sum := range sums {
				if !sent[sub][sum] || !confirmed[sub][sum] {
					t.Errorf("%s: an event delivered (%s…) is not in the log as sent and confirmed", sub, sum[:12])
				}
			}
			if len(sent[sub]) != len(sums) {
				t.Errorf("%s: the log has %d events sent, the agency received %d", sub, len(sent[sub]), len(sums))
			}
		}
	}
	nc, err := nats.Connect(opsURL(natsAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := natsjs.NewJetStream(nc)
	// The chain holds, and the day's root is signed by the hub's key,
	// derived from its personal-data key.
	p, _ := pii.New([]byte(e2ePIIKey))
	pub := ed25519.NewKeyFromSeed(p.Derive(hub.AuditRootLabel)).Public().(ed25519.PublicKey)
	waitFor(t, "the day's signed root", 30*time.Second, func() bool {
		v := audit.Verifier{PublicKey: pub}
		err := (audit.Log{JS: js}).Records(t.Context(), func(_ uint64, raw []byte) error { _, err := v.Next(raw); return err })
		if err != nil {
			t.Fatalf("the audit log does not verify: %v", err)
		}
		return v.Roots == 1
	})

	// The aggregator stored every event once, as before.
	s, err := chstore.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	waitFor(t, "every event stored once", 30*time.Second, func() bool {
		c, err := storeCounts(s)
		return err == nil && total(c) == uint64(len(evs))
	})
}

// diff says what a has that b lacks and the reverse, briefly.
func diff(a, b []string) string {
	var extra, missing []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			extra = append(extra, x)
		}
	}
	for _, x := range b {
		if !slices.Contains(a, x) {
			missing = append(missing, x)
		}
	}
	return fmt.Sprintf("extra %v, missing %v", extra[:min(3, len(extra))], missing[:min(3, len(missing))])
}

// The simulated partner agency of `make run` (iochub-sim) subscribes with
// its token and receives, through its pulls, every traffic event the hub
// stored.
func TestSimulatedPartnerReceivesItsEvents(t *testing.T) {
	_, base := startHubInProcess(t, chstoretest.NewDatabase(t), func(c *hub.Config) {
		c.Services = "gateway,aggregator,sharing"
		c.AreasFile = "../../deploy/areas/bac-ninh.csv"
		c.File.Sharing = sharing.Config{Agencies: []sharing.Agency{{Name: "partner", TokenSHA256: httpedge.HashToken(policeAgencyToken),
			Grants: []sharing.Grant{{Types: []string{"vn.ioc.traffic.*"}, Areas: []string{sharing.AllAreas}}}}}}
	})
	g := eventgen.New(12, "partner")
	var evs []event.Event
	traffic := 0
	for range 200 {
		e := g.Next()
		if strings.HasPrefix(e.Type, "vn.ioc.traffic.") {
			traffic++
		}
		evs = append(evs, e)
	}
	postBatch(t, base, evs)
	ctx, cancel := context.WithCancel(t.Context())
	p := &sim.Partner{Hub: base, Token: policeAgencyToken, Subscription: "partner-traffic", Types: []string{"vn.ioc.traffic.*"}, Log: zaptest.NewLogger(t)}
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	waitFor(t, "the partner's pulls confirmed", 60*time.Second, func() bool {
		return confirmedEvents(t, base, policeAgencyToken, "partner-traffic") == traffic
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if p.Received != traffic {
		t.Errorf("the partner counted %d events, want %d", p.Received, traffic)
	}
}

// confirmedEvents counts the events of sub the exchange log holds as
// confirmed.
func confirmedEvents(t *testing.T, base, token, sub string) int {
	t.Helper()
	_, b := sharingCall(t, base, token, "GET", "/v1/exchanges", nil)
	var ex struct{ Records []audit.Record }
	_ = json.Unmarshal(b, &ex)
	n := 0
	for _, r := range ex.Records {
		if r.Action == "exchange.confirmed" && r.Target == sub {
			n += len(r.Events)
		}
	}
	return n
}

// A push subscriber down for a while: the hub sends the same request again
// with backoff (retries visible in the subscription's status), then, once
// it is back, delivers everything, each event once, in the log's order,
// every request signed with the subscription's secret.
func TestPushSubscriberDownThenBackLosesNothing(t *testing.T) {
	var (
		mu       sync.Mutex
		down     = true
		secret   []byte
		received []string
		problems []string
	)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if down {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		ts, _ := strconv.ParseInt(r.Header.Get(connector.HeaderWebhookTimestamp), 10, 64)
		if want := connector.Sign(secret, r.Header.Get(connector.HeaderWebhookID), ts, body); r.Header.Get(connector.HeaderWebhookSignature) != want {
			problems = append(problems, "a request not signed with the subscription's secret")
		}
		var evs []event.Event
		if r.Header.Get("Content-Type") != "application/cloudevents-batch+json" || json.Unmarshal(body, &evs) != nil {
			problems = append(problems, "not a CloudEvents batch: "+r.Header.Get("Content-Type"))
		}
		for _, e := range evs {
			received = append(received, e.Source+" "+e.ID)
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer recv.Close()

	dsn := chstoretest.NewDatabase(t)
	base := sharingHub(t, dsn, "", granted("cong-an", policeAgencyToken, recv.URL+"/", "vn.ioc.traffic.*"))
	// Another address than the agency's is refused.
	if code, b := sharingCall(t, base, policeAgencyToken, "PUT", "/v1/subscriptions/ca-elsewhere", map[string]any{"types": []string{"vn.ioc.traffic.*"}, "mode": "push", "url": "http://127.0.0.1:1/x"}); code != http.StatusForbidden {
		t.Errorf("push to an address not in push_urls: %d %s, want 403", code, b)
	}
	code, b := sharingCall(t, base, policeAgencyToken, "PUT", "/v1/subscriptions/ca-push", map[string]any{"types": []string{"vn.ioc.traffic.*"}, "mode": "push",
		"url": recv.URL + "/events", "batch": 10, "start": "beginning"})
	var made sharing.Subscription
	if err := json.Unmarshal(b, &made); code != http.StatusCreated || err != nil || !strings.HasPrefix(made.Secret, "whsec_") {
		t.Fatalf("PUT push subscription: %d %s", code, b)
	}
	key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(made.Secret, "whsec_"))
	mu.Lock()
	secret = key
	mu.Unlock()

	g := eventgen.New(13, "push")
	var evs []event.Event
	for range 300 {
		evs = append(evs, g.Next())
	}
	postBatch(t, base, evs)
	status := func() sharing.SubscriptionStatus {
		_, b := sharingCall(t, base, policeAgencyToken, "GET", "/v1/subscriptions/ca-push", nil)
		var st sharing.SubscriptionStatus
		_ = json.Unmarshal(b, &st)
		return st
	}
	waitFor(t, "retries while the subscriber is down", 30*time.Second, func() bool {
		st := status()
		return st.Push != nil && st.Push.Retries >= 3 && strings.Contains(st.Push.LastError, "503")
	})
	if st := status(); st.Secret != "" {
		t.Errorf("GET shows the signing secret")
	}
	mu.Lock()
	down = false
	mu.Unlock()

	// The log's order: the stream sequences ClickHouse stored them under.
	s, err := chstore.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var want []string
	waitFor(t, "the traffic events stored", 30*time.Second, func() bool {
		rows, err := s.Query(t.Context(), "SELECT source, event_id FROM (SELECT source, event_id, stream_seq FROM "+s.Qualified("traffic_flow_v1")+
			" UNION ALL SELECT source, event_id, stream_seq FROM "+s.Qualified("traffic_incident_v1")+") ORDER BY stream_seq")
		if err != nil {
			return false
		}
		defer rows.Close()
		want = want[:0]
		for rows.Next() {
			var src, id string
			_ = rows.Scan(&src, &id)
			want = append(want, src+" "+id)
		}
		n := 0
		for _, e := range evs {
			if strings.HasPrefix(e.Type, "vn.ioc.traffic.") {
				n++
			}
		}
		return len(want) == n
	})
	waitFor(t, "every traffic event pushed", 60*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(received) >= len(want)
	})
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(received, want) {
		t.Errorf("pushed %d events, want the log's %d in its order: %s", len(received), len(want), diff(received, want))
	}
	if len(problems) > 0 {
		t.Errorf("the subscriber saw: %v", problems[:min(3, len(problems))])
	}
	if st := status(); st.Push == nil || st.Push.Delivered != uint64(len(want)) || st.Push.Waiting != 0 {
		t.Errorf("status after the backlog drained: %+v", st.Push)
	}
}

// The simulated push partner of `make run` subscribes, checks every
// request's signature, and counts every field report pushed to it.
func TestSimulatedPushPartnerReceivesItsEvents(t *testing.T) {
	listen := "127.0.0.1:" + freePort(t)
	_, base := startHubInProcess(t, chstoretest.NewDatabase(t), func(c *hub.Config) {
		c.Services = "gateway,aggregator,sharing"
		c.AreasFile = "../../deploy/areas/bac-ninh.csv"
		c.File.Sharing = sharing.Config{Agencies: []sharing.Agency{{Name: "partner", TokenSHA256: httpedge.HashToken(policeAgencyToken),
			PushURLs: []string{"http://" + listen + "/"}, Grants: []sharing.Grant{{Types: []string{"vn.ioc.feedback.*"}, Areas: []string{"27"}, PersonalData: sharing.PersonalDrop}}}}}
	})
	ctx, cancel := context.WithCancel(t.Context())
	r := &sim.PushReceiver{Hub: base, Token: policeAgencyToken, Subscription: "partner-reports", Types: []string{"vn.ioc.feedback.*"}, Listen: listen, Log: zaptest.NewLogger(t)}
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	waitFor(t, "the push subscription", 30*time.Second, func() bool {
		code, _ := sharingCall(t, base, policeAgencyToken, "GET", "/v1/subscriptions/partner-reports", nil)
		return code == http.StatusOK
	})
	evs, ids := mix(14, "push-partner", 200, "vn.ioc.feedback.")
	reports := len(ids)
	postBatch(t, base, evs)
	waitFor(t, "every report pushed", 60*time.Second, func() bool { n, _ := r.Received(); return n == reports })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n, refused := r.Received(); n != reports || refused != 0 {
		t.Errorf("the push partner took %d reports (want %d) and refused %d requests", n, reports, refused)
	}
}

// A paused push subscription delivers nothing; what arrives meanwhile
// waits on the log and is delivered, every event, once it resumes.
func TestPausedPushWaitsThenDelivers(t *testing.T) {
	var mu sync.Mutex
	got := 0
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var evs []json.RawMessage
		_ = json.NewDecoder(r.Body).Decode(&evs)
		mu.Lock()
		got += len(evs)
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer recv.Close()
	base := sharingHub(t, chstoretest.NewDatabase(t), "", granted("cong-an", policeAgencyToken, recv.URL+"/", "vn.ioc.traffic.*"))
	if code, b := sharingCall(t, base, policeAgencyToken, "PUT", "/v1/subscriptions/ca-push", map[string]any{"types": []string{"vn.ioc.traffic.*"}, "mode": "push", "url": recv.URL + "/", "batch": 20, "start": "beginning"}); code != http.StatusCreated {
		t.Fatalf("PUT: %d %s", code, b)
	}
	if code, b := sharingCall(t, base, policeAgencyToken, "POST", "/v1/subscriptions/ca-push/pause", nil); code != http.StatusOK || !strings.Contains(string(b), `"paused":true`) {
		t.Fatalf("pause: %d %s", code, b)
	}
	evs, ids := mix(15, "paused", 150, "vn.ioc.traffic.")
	traffic := len(ids)
	postBatch(t, base, evs)
	// Paused: the events wait on the log (the subscription's consumer has
	// them pending) and none is posted.
	waitFor(t, "the events waiting for the subscription", 30*time.Second, func() bool {
		_, b := sharingCall(t, base, policeAgencyToken, "GET", "/v1/subscriptions/ca-push", nil)
		var st sharing.SubscriptionStatus
		_ = json.Unmarshal(b, &st)
		return st.Paused && st.Push != nil && st.Push.Paused
	})
	time.Sleep(2 * time.Second) // a paused pusher looks again every second
	mu.Lock()
	n := got
	mu.Unlock()
	if n != 0 {
		t.Fatalf("%d events pushed while paused", n)
	}
	if code, b := sharingCall(t, base, policeAgencyToken, "POST", "/v1/subscriptions/ca-push/resume", nil); code != http.StatusOK {
		t.Fatalf("resume: %d %s", code, b)
	}
	waitFor(t, "every event pushed after resuming", 60*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return got == traffic
	})
}

// A push subscriber that stays down past its give-up time gets its events
// in its own dead letters, in the log's order, none lost, while the
// aggregator stores every event; once it is up again, a replay delivers
// each letter once and empties them. The ops page cannot put them back on
// the log (every subscriber would receive them again).
func TestPushSubscriberDownPastGiveUpGetsItsDeadLetters(t *testing.T) {
	burnCPU(t)
	var (
		mu       sync.Mutex
		down     = true
		received []string
	)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var evs []event.Event
		_ = json.NewDecoder(r.Body).Decode(&evs)
		mu.Lock()
		defer mu.Unlock()
		if down {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		for _, e := range evs {
			received = append(received, e.Source+" "+e.ID)
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer recv.Close()
	dsn := chstoretest.NewDatabase(t)
	natsAddr := "127.0.0.1:" + freePort(t)
	base := sharingHub(t, dsn, natsAddr, granted("cong-an", policeAgencyToken, recv.URL+"/", "vn.ioc.traffic.*"))
	if code, b := sharingCall(t, base, policeAgencyToken, "PUT", "/v1/subscriptions/ca-push", map[string]any{"types": []string{"vn.ioc.traffic.*"}, "mode": "push",
		"url": recv.URL + "/", "batch": 10, "give_up": "2s", "start": "beginning"}); code != http.StatusCreated {
		t.Fatalf("PUT: %d %s", code, b)
	}
	if code, b := sharingCall(t, base, policeAgencyToken, "PUT", "/v1/subscriptions/ca-bad", map[string]any{"types": []string{"vn.ioc.traffic.*"}, "mode": "push",
		"url": recv.URL + "/", "give_up": "forever"}); code != http.StatusBadRequest || !strings.Contains(string(b), "give_up") {
		t.Errorf("give_up forever: %d %s, want 400 naming give_up", code, b)
	}
	evs, want := mix(16, "give-up", 200, "vn.ioc.traffic.")
	postBatch(t, base, evs)
	status := func() sharing.PushStatus {
		_, b := sharingCall(t, base, policeAgencyToken, "GET", "/v1/subscriptions/ca-push", nil)
		var st sharing.SubscriptionStatus
		_ = json.Unmarshal(b, &st)
		if st.Push == nil {
			return sharing.PushStatus{}
		}
		return *st.Push
	}
	waitFor(t, "every traffic event in the subscription's dead letters", 90*time.Second, func() bool {
		st := status()
		return st.DeadLetters == uint64(len(want))
	})
	if st := status(); st.DeadLettered != uint64(len(want)) || st.Delivered != 0 || st.Retries == 0 {
		t.Errorf("status after giving up: %+v", st)
	}
	store, err := chstore.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	waitFor(t, "every event stored by the aggregator", 60*time.Second, func() bool {
		c, err := storeCounts(store)
		return err == nil && total(c) == uint64(len(evs))
	})

	// The letters, in the log's order, each named by its subscription.
	_, b := sharingCall(t, base, policeAgencyToken, "GET", "/v1/subscriptions/ca-push/dead-letters", nil)
	var listed struct {
		Count   int `json:"count"`
		Letters []struct {
			Source, ID, Subscription string
		} `json:"dead_letters"`
	}
	if err := json.Unmarshal(b, &listed); err != nil || listed.Count != len(want) {
		t.Fatalf("dead letters: %s", b)
	}
	var letters []string
	for _, l := range listed.Letters {
		letters = append(letters, l.Source+" "+l.ID)
		if l.Subscription != "ca-push" {
			t.Errorf("a letter names subscription %q", l.Subscription)
		}
	}
	if !slices.Equal(letters, want[:min(100, len(want))]) {
		t.Errorf("the letters are not the log's events in order: %s", diff(letters, want[:min(100, len(want))]))
	}
	// Another agency sees none of them; the operators' replay refuses.
	if code, _ := sharingCall(t, base, healthAgencyToken, "GET", "/v1/subscriptions/ca-push/dead-letters", nil); code == http.StatusOK {
		t.Errorf("another token read the dead letters")
	}
	nc, err := nats.Connect(opsURL(natsAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := natsjs.NewJetStream(nc)
	if err := (dlq.Queue{JS: js}).Replay(t.Context(), firstLetterSeq(t, js), nil); !errors.Is(err, dlq.ErrNotReplayable) {
		t.Errorf("an operator's replay of a subscription's letter: %v, want ErrNotReplayable", err)
	}

	mu.Lock()
	down = false
	mu.Unlock()
	if code, b := sharingCall(t, base, policeAgencyToken, "POST", "/v1/subscriptions/ca-push/dead-letters/replay", nil); code != http.StatusAccepted {
		t.Fatalf("replay: %d %s", code, b)
	}
	waitFor(t, "every letter delivered", 60*time.Second, func() bool { return status().DeadLetters == 0 })
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(received, want) {
		t.Errorf("the replay delivered %d events, want the %d letters once each in order: %s", len(received), len(want), diff(received, want))
	}
	if st := status(); st.Replayed != uint64(len(want)) || st.Delivered != uint64(len(want)) {
		t.Errorf("status after the replay: %+v", st)
	}
	_, b = sharingCall(t, base, policeAgencyToken, "GET", "/v1/exchanges", nil)
	if n := strings.Count(string(b), `"action":"exchange.dead_lettered"`); n == 0 {
		t.Errorf("the exchange log holds no exchange.dead_lettered record")
	}
}

// firstLetterSeq is the sequence of IOC_DLQ's first message.
func firstLetterSeq(t *testing.T, js jetstream.JetStream) uint64 {
	t.Helper()
	st, err := js.Stream(t.Context(), natsjs.DLQStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.FirstSeq
}

// Push, checked on the wire: the field reports' personal data reaches a
// pseudonymized grant as the hub's pseudonyms, never in clear.
func TestPushedPersonalDataIsNeverInClear(t *testing.T) {
	var (
		mu     sync.Mutex
		bodies [][]byte
		got    int
	)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var evs []json.RawMessage
		_ = json.Unmarshal(b, &evs)
		mu.Lock()
		bodies = append(bodies, b)
		got += len(evs)
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer recv.Close()
	base := sharingHub(t, chstoretest.NewDatabase(t), "", granted("so-y-te", healthAgencyToken, recv.URL+"/", "vn.ioc.feedback.*"))
	if code, b := sharingCall(t, base, healthAgencyToken, "PUT", "/v1/subscriptions/yte-push", map[string]any{"types": []string{"vn.ioc.feedback.*"}, "mode": "push",
		"url": recv.URL + "/", "batch": 10, "start": "beginning"}); code != http.StatusCreated {
		t.Fatalf("PUT: %d %s", code, b)
	}
	g := eventgen.New(18, "push-pii")
	var evs []event.Event
	var phones []string
	for range 300 {
		e := g.Next()
		var d map[string]any
		_ = json.Unmarshal(e.Data, &d)
		if p, ok := d["reporter_phone"].(string); ok {
			phones = append(phones, p)
		}
		evs = append(evs, e)
	}
	if len(phones) == 0 {
		t.Fatal("the mix has no reporter's phone")
	}
	postBatch(t, base, evs)
	reports := 0
	for _, e := range evs {
		if strings.HasPrefix(e.Type, "vn.ioc.feedback.") {
			reports++
		}
	}
	waitFor(t, "every report pushed", 60*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return got >= reports
	})
	mu.Lock()
	defer mu.Unlock()
	all := bytes.Join(bodies, nil)
	for _, p := range phones {
		if bytes.Contains(all, []byte(p)) {
			t.Fatalf("a reporter's phone %s… pushed in clear", p[:4])
		}
	}
	if !bytes.Contains(all, []byte(`"reporter_phone":"`)) {
		t.Error("no reporter_phone pushed at all: the grant keeps it pseudonymized, not dropped")
	}
}

// An agency's subscriptions are bounded (max_subscriptions): one past the
// bound is refused naming it, and a deleted one makes room again.
func TestAnAgencysSubscriptionsAreBounded(t *testing.T) {
	a := granted("cong-an", policeAgencyToken, "http://127.0.0.1:1/", "vn.ioc.traffic.*")
	a.MaxSubscriptions = 2
	base := sharingHub(t, chstoretest.NewDatabase(t), "", a)
	put := func(name string) (int, []byte) {
		return sharingCall(t, base, policeAgencyToken, "PUT", "/v1/subscriptions/"+name, map[string]any{"types": []string{"vn.ioc.traffic.*"}})
	}
	for _, name := range []string{"ca-1", "ca-2"} {
		if code, b := put(name); code != http.StatusCreated {
			t.Fatalf("PUT %s: %d %s", name, code, b)
		}
	}
	if code, b := put("ca-3"); code != http.StatusConflict || !strings.Contains(string(b), sharing.ProblemTooMany) || !strings.Contains(string(b), "max_subscriptions") {
		t.Fatalf("a third subscription: %d %s, want 409 naming max_subscriptions", code, b)
	}
	if code, b := put("ca-2"); code != http.StatusOK {
		t.Errorf("the same PUT again past the bound: %d %s, want 200 (it exists)", code, b)
	}
	if code, b := sharingCall(t, base, policeAgencyToken, "DELETE", "/v1/subscriptions/ca-1", nil); code != http.StatusOK {
		t.Fatalf("DELETE: %d %s", code, b)
	}
	if code, b := put("ca-3"); code != http.StatusCreated {
		t.Errorf("after a delete: %d %s, want 201", code, b)
	}
}
