package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap/zaptest"

	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/iochub/iochub/pkg/event"
	"github.com/iochub/iochub/pkg/httpedge"
	"github.com/iochub/iochub/pkg/natsjs"
	"github.com/iochub/iochub/pkg/natsjs/natsjstest"
	"github.com/iochub/iochub/pkg/pii"
	"github.com/iochub/iochub/pkg/schema"
	"github.com/iochub/iochub/schemas"
	"github.com/iochub/iochub/services/gateway"
)

const (
	tokenAll    = "test-token-all-0123456789"
	tokenHealth = "test-token-health-0123456789"
	piiKey      = "test-pii-key-0123456789abcdef0123"
)

type fixture struct {
	url string
	js  jetstream.JetStream
	p   *pii.Pseudonymizer
}

func newFixture(t *testing.T, limits natsjs.StreamLimits, cfg gateway.Config) fixture {
	t.Helper()
	srv := natsjstest.Run(t)
	_, js := srv.Declared(t, limits)
	reg, err := schema.Load(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := pii.New([]byte(piiKey))
	cfg.Producers = []gateway.Producer{
		{Name: "all", TokenSHA256: httpedge.HashToken(tokenAll), Scope: event.Scope{Sources: []string{"*"}, Types: []string{"vn.ioc.*"}}},
		{Name: "hospital", TokenSHA256: httpedge.HashToken(tokenHealth), Scope: event.Scope{Sources: []string{"/health/"}, Types: []string{"vn.ioc.health.*"}}},
	}
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	gateway.New(cfg, reg, gateway.JetStreamPublisher{JS: js}, p, zaptest.NewLogger(t)).Register(mux)
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	return fixture{url: hs.URL + "/v1/events", js: js, p: p}
}

// examples returns the valid example events of every type.
func examples(t *testing.T) []map[string]any {
	t.Helper()
	files, _ := fs.Glob(schemas.Examples, "*/examples/*.valid.json")
	var out []map[string]any
	for _, f := range files {
		b, _ := fs.ReadFile(schemas.Examples, f)
		var evs []map[string]any
		if err := json.Unmarshal(b, &evs); err != nil {
			t.Fatal(err)
		}
		out = append(out, evs...)
	}
	return out
}

func post(t *testing.T, url, token, ct string, body []byte, hdr map[string]string) (int, gateway.Response, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var r gateway.Response
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("answer is not JSON (%d): %s", resp.StatusCode, raw)
	}
	return resp.StatusCode, r, resp.Header
}

func mustJSON(v any) []byte { b, _ := json.Marshal(v); return b }

func streamMsgs(t *testing.T, js jetstream.JetStream) uint64 {
	t.Helper()
	s, err := js.Stream(context.Background(), natsjs.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	return s.CachedInfo().State.Msgs
}

func TestAcceptsEveryTypeInEveryMode(t *testing.T) {
	f := newFixture(t, natsjs.StreamLimits{}, gateway.Config{})
	evs := examples(t)
	if len(evs) < 14 {
		t.Fatalf("only %d examples", len(evs))
	}
	// Batch mode: all of them.
	code, r, _ := post(t, f.url, tokenAll, gateway.MediaBatch, mustJSON(evs), nil)
	if code != http.StatusAccepted || len(r.Accepted) != len(evs) {
		t.Fatalf("batch: %d %+v", code, r)
	}
	// Structured mode: a retry of the first is a duplicate, stored once.
	code, r, _ = post(t, f.url, tokenAll, gateway.MediaStructured+"; charset=utf-8", mustJSON(evs[0]), nil)
	if code != http.StatusAccepted || len(r.Accepted) != 1 || !r.Accepted[0].Duplicate {
		t.Fatalf("structured retry: %d %+v", code, r)
	}
	// Binary mode: a new event.
	data := mustJSON(evs[0]["data"])
	code, r, _ = post(t, f.url, tokenAll, "application/json", data, map[string]string{
		"ce-specversion": "1.0", "ce-id": "binary-1", "ce-source": "/publicservice/dvc",
		"ce-type": evs[0]["type"].(string), "ce-time": "2026-11-20T08:00:00Z",
	})
	if code != http.StatusAccepted || len(r.Accepted) != 1 || r.Accepted[0].ID != "binary-1" {
		t.Fatalf("binary: %d %+v", code, r)
	}
	if n := streamMsgs(t, f.js); n != uint64(len(evs)+1) {
		t.Fatalf("stream holds %d events, want %d", n, len(evs)+1)
	}
}

func TestPersonalDataNeverReachesNATSInClear(t *testing.T) {
	f := newFixture(t, natsjs.StreamLimits{}, gateway.Config{})
	var report map[string]any
	for _, e := range examples(t) {
		if e["type"] == "vn.ioc.feedback.report.v1" {
			report = e
			break
		}
	}
	if code, r, _ := post(t, f.url, tokenAll, gateway.MediaStructured, mustJSON(report), nil); code != http.StatusAccepted {
		t.Fatalf("%d %+v", code, r)
	}
	m, err := f.js.Stream(context.Background(), natsjs.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := m.GetMsg(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, clear := range []string{"0912345678", "Trần Thị Bình", "reporter_name"} {
		if bytes.Contains(raw.Data, []byte(clear)) {
			t.Errorf("stored event contains %q in clear: %s", clear, raw.Data)
		}
	}
	if !bytes.Contains(raw.Data, []byte(f.p.Hash("0912345678"))) {
		t.Errorf("stored event lacks the pseudonymized phone: %s", raw.Data)
	}
	if raw.Header.Get(natsjs.HeaderPseudonymized) == "" {
		t.Error("gateway did not mark the event pseudonymized")
	}
}

func TestBadInput(t *testing.T) {
	f := newFixture(t, natsjs.StreamLimits{}, gateway.Config{MaxBodyBytes: 64 << 10})
	good := examples(t)[0] // publicservice? whichever sorts first; all-token scope
	visit := visitExample(t)
	with := func(e map[string]any, k string, v any) []byte {
		c := map[string]any{}
		for kk, vv := range e {
			c[kk] = vv
		}
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return mustJSON(c)
	}
	badData := func(e map[string]any, k string, v any) []byte {
		d := map[string]any{}
		for kk, vv := range e["data"].(map[string]any) {
			d[kk] = vv
		}
		d[k] = v
		return with(e, "data", d)
	}
	tests := []struct {
		name        string
		token, ct   string
		body        []byte
		hdr         map[string]string
		wantStatus  int
		wantPointer string
		wantRule    string
		wantDetail  string
	}{
		{name: "malformed JSON", token: tokenAll, ct: gateway.MediaStructured, body: []byte(`{"specversion":"1.0",`), wantStatus: 400, wantRule: "json"},
		{name: "wrong content type", token: tokenAll, ct: "text/plain", body: mustJSON(good), wantStatus: 415, wantDetail: "text/plain"},
		{name: "no content type", token: tokenAll, body: mustJSON(good), wantStatus: 415},
		{name: "binary mode with XML", token: tokenAll, ct: "application/xml", body: []byte("<a/>"), hdr: map[string]string{"ce-specversion": "1.0"}, wantStatus: 415},
		{name: "missing id", token: tokenAll, ct: gateway.MediaStructured, body: with(good, "id", nil), wantStatus: 400, wantPointer: "/id", wantRule: "required"},
		{name: "missing source", token: tokenAll, ct: gateway.MediaStructured, body: with(good, "source", nil), wantStatus: 400, wantPointer: "/source", wantRule: "required"},
		{name: "binary missing ce-type", token: tokenAll, ct: "application/json", body: []byte(`{}`), hdr: map[string]string{"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/x", "ce-time": "2026-11-20T08:00:00Z"}, wantStatus: 400, wantPointer: "/headers/ce-type", wantRule: "required"},
		{name: "unknown type", token: tokenAll, ct: gateway.MediaStructured, body: with(good, "type", "vn.ioc.health.autopsy.v1"), wantStatus: 400, wantPointer: "/type", wantRule: "known-type"},
		{name: "schema violation", token: tokenAll, ct: gateway.MediaStructured, body: badData(visit, "kind", "walk-in"), wantStatus: 400, wantPointer: "/data/kind", wantRule: "enum"},
		{name: "body over the limit", token: tokenAll, ct: gateway.MediaStructured, body: badData(visit, "icd10", strings.Repeat("A", 70<<10)), wantStatus: 413},
		{name: "missing token", ct: gateway.MediaStructured, body: mustJSON(good), wantStatus: 401},
		{name: "wrong token", token: "not-a-token", ct: gateway.MediaStructured, body: mustJSON(good), wantStatus: 401},
		{name: "out-of-scope type", token: tokenHealth, ct: gateway.MediaStructured, body: with(visit, "type", "vn.ioc.traffic.flow.v1"), wantStatus: 403, wantPointer: "/type", wantRule: "scope"},
		{name: "out-of-scope source", token: tokenHealth, ct: gateway.MediaStructured, body: with(visit, "source", "/traffic/x"), wantStatus: 403, wantPointer: "/source", wantRule: "scope"},
		{name: "batch not an array", token: tokenAll, ct: gateway.MediaBatch, body: mustJSON(good), wantStatus: 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := streamMsgs(t, f.js)
			code, r, hdr := post(t, f.url, tt.token, tt.ct, tt.body, tt.hdr)
			if code != tt.wantStatus || r.Status != tt.wantStatus {
				t.Fatalf("status %d (body %d), want %d: %+v", code, r.Status, tt.wantStatus, r)
			}
			if r.Title == "" || r.Type == "" {
				t.Errorf("problem document lacks type or title: %+v", r)
			}
			if code == 401 && hdr.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
			if tt.wantDetail != "" && !strings.Contains(r.Detail, tt.wantDetail) {
				t.Errorf("detail %q does not name %q", r.Detail, tt.wantDetail)
			}
			if tt.wantRule != "" {
				found := false
				for _, e := range r.Errors {
					if e.Rule == tt.wantRule && (tt.wantPointer == "" || e.Pointer == tt.wantPointer) && e.Message != "" {
						found = true
					}
				}
				if !found {
					t.Errorf("errors %+v do not name pointer %q rule %q", r.Errors, tt.wantPointer, tt.wantRule)
				}
			}
			if after := streamMsgs(t, f.js); after != before {
				t.Errorf("a rejected request stored %d events", after-before)
			}
		})
	}
}

func TestBadEventNeverSinksTheGoodOnes(t *testing.T) {
	f := newFixture(t, natsjs.StreamLimits{}, gateway.Config{})
	evs := examples(t)
	bad := map[string]any{"specversion": "1.0", "id": "b1", "source": "/x", "type": "vn.ioc.health.visit.v1", "time": "2026-11-20T08:00:00Z", "data": map[string]any{"visit_id": "v"}}
	batch := []any{evs[0], bad, evs[1], map[string]any{"id": "no-envelope"}, evs[2]}
	code, r, _ := post(t, f.url, tokenAll, gateway.MediaBatch, mustJSON(batch), nil)
	if code != http.StatusMultiStatus {
		t.Fatalf("status %d, want 207: %+v", code, r)
	}
	want := 3
	if len(r.Accepted) != want || len(r.Results) != 5 {
		t.Fatalf("accepted %d (want %d), results %d: %+v", len(r.Accepted), want, len(r.Results), r)
	}
	if r.Results[1].Status != 400 || r.Results[3].Status != 400 {
		t.Fatalf("results = %+v", r.Results)
	}
	found := false
	for _, e := range r.Errors {
		if e.Index == 1 && e.ID == "b1" && e.Rule == "required" {
			found = true
		}
	}
	if !found {
		t.Fatalf("errors do not name event 1's missing fields: %+v", r.Errors)
	}
	if n := streamMsgs(t, f.js); n != uint64(want) {
		t.Fatalf("stream holds %d, want %d", n, want)
	}
}

func TestStreamFullGives503WithRetryAfter(t *testing.T) {
	f := newFixture(t, natsjs.StreamLimits{EventsMaxBytes: 2048}, gateway.Config{})
	evs := examples(t)
	var last int
	var hdr http.Header
	for i := 0; i < 50; i++ {
		e := evs[i%len(evs)]
		e2 := map[string]any{}
		for k, v := range e {
			e2[k] = v
		}
		e2["id"] = "fill-" + string(rune('a'+i))
		last, _, hdr = post(t, f.url, tokenAll, gateway.MediaStructured, mustJSON(e2), nil)
		if last != http.StatusAccepted {
			break
		}
	}
	if last != http.StatusServiceUnavailable || hdr.Get("Retry-After") == "" {
		t.Fatalf("full stream: status %d, Retry-After %q", last, hdr.Get("Retry-After"))
	}
}

// FuzzGateway sends arbitrary bodies in each mode: the gateway must answer with
// a JSON document and never a 5xx for what the caller sent.
func FuzzGateway(f *testing.F) {
	reg, err := schema.Load(schemas.FS)
	if err != nil {
		f.Fatal(err)
	}
	p, _ := pii.New([]byte(piiKey))
	cfg := gateway.Config{Producers: []gateway.Producer{{Name: "all", TokenSHA256: httpedge.HashToken(tokenAll), Scope: event.Scope{Sources: []string{"*"}, Types: []string{"vn.ioc.*"}}}}}
	h := gateway.New(cfg, reg, acceptAll{}, p, zap.NewNop())
	batches, events := schemas.ExampleBodies()
	for _, b := range batches {
		f.Add(uint8(0), b)
	}
	for _, e := range events {
		f.Add(uint8(1), e)
	}
	f.Add(uint8(2), []byte(`{"visit_id":"x"}`))
	f.Add(uint8(1), []byte(`{"specversion":"1.0","data":null}`))
	f.Fuzz(func(t *testing.T, mode uint8, body []byte) {
		req := httptest.NewRequest(http.MethodPost, "/v1/events", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tokenAll)
		switch mode % 3 {
		case 0:
			req.Header.Set("Content-Type", gateway.MediaBatch)
		case 1:
			req.Header.Set("Content-Type", gateway.MediaStructured)
		case 2:
			req.Header.Set("Content-Type", "application/json")
			for k, v := range map[string]string{"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/s", "ce-type": "vn.ioc.health.visit.v1", "ce-time": "2026-11-20T08:00:00Z"} {
				req.Header.Set(k, v)
			}
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("status %d for caller input: %s", rec.Code, rec.Body)
		}
		var r gateway.Response
		if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil || r.Status != rec.Code {
			t.Fatalf("answer %d is not a response document: %s", rec.Code, rec.Body)
		}
		if rec.Code == http.StatusAccepted {
			for _, a := range r.Accepted {
				if a.ID == "" || a.Source == "" {
					t.Fatalf("accepted an event without identity: %s", rec.Body)
				}
			}
		}
	})
}

type acceptAll struct{}

func (acceptAll) PublishAll(_ context.Context, msgs []*nats.Msg) []natsjs.Outcome {
	return make([]natsjs.Outcome, len(msgs))
}

func (acceptAll) ProducerOf(context.Context, uint64) (string, error) { return "", nil }

// TestOverlappingProducersGet409 (finding H6): two producers whose source
// scopes overlap send the same identity: the second is answered 409, never
// "duplicate": true, and the first one's retry is still a duplicate.
func TestOverlappingProducersGet409(t *testing.T) {
	f := newFixture(t, natsjs.StreamLimits{}, gateway.Config{})
	visit := visitExample(t)
	visit["source"], visit["id"] = "/health/his/27-bvdk", "visit-overlap-1"
	body := mustJSON(visit)
	if code, r, _ := post(t, f.url, tokenHealth, gateway.MediaStructured, body, nil); code != http.StatusAccepted || r.Accepted[0].Duplicate {
		t.Fatalf("the owner's event: %d %+v", code, r)
	}
	code, r, _ := post(t, f.url, tokenAll, gateway.MediaStructured, body, nil)
	if code != http.StatusConflict || r.Type != gateway.ProblemConflict || len(r.Errors) != 1 || r.Errors[0].Rule != "identity" {
		t.Fatalf("another producer's event under the same identity: %d %+v, want 409", code, r)
	}
	if code, r, _ := post(t, f.url, tokenHealth, gateway.MediaStructured, body, nil); code != http.StatusAccepted || !r.Accepted[0].Duplicate {
		t.Fatalf("the owner's retry: %d %+v, want a duplicate", code, r)
	}
	if n := streamMsgs(t, f.js); n != 1 {
		t.Fatalf("%d events stored, want 1", n)
	}
}

// TestInvalidExamplesAreSendableAsTheyAre: each invalid example file, posted
// as it is (the README's curl), is answered 400 with, for every event, the
// JSON pointer and the rule its .want.json names.
func TestInvalidExamplesAreSendableAsTheyAre(t *testing.T) {
	f := newFixture(t, natsjs.StreamLimits{}, gateway.Config{})
	files, _ := fs.Glob(schemas.Examples, "*/examples/*.invalid.json")
	if len(files) == 0 {
		t.Fatal("no invalid examples")
	}
	for _, file := range files {
		t.Run(file, func(t *testing.T) {
			body, _ := fs.ReadFile(schemas.Examples, file)
			wantRaw, _ := fs.ReadFile(schemas.Examples, strings.TrimSuffix(file, ".json")+".want.json")
			var wants []struct{ ID, Pointer, Rule string }
			if err := json.Unmarshal(wantRaw, &wants); err != nil || len(wants) == 0 {
				t.Fatalf("%s.want.json: %v", file, err)
			}
			code, r, _ := post(t, f.url, tokenAll, gateway.MediaBatch, body, nil)
			if code != http.StatusBadRequest || len(r.Accepted) != 0 {
				t.Fatalf("answer %d with %d accepted, want 400 and none", code, len(r.Accepted))
			}
			for _, w := range wants {
				found := false
				for _, res := range r.Results {
					for _, fe := range res.Errors {
						found = found || (res.ID == w.ID && fe.Pointer == "/data"+w.Pointer && fe.Rule == w.Rule)
					}
				}
				if !found {
					t.Errorf("%s: no error at /data%s for rule %s in %+v", w.ID, w.Pointer, w.Rule, r.Results)
				}
			}
		})
	}
}

// TestSourceScopesEndOnPathSegments (finding H6): a producer scoped to
// /health/his/27-bvdk may send its own source and sources below it, never
// a sibling's such as /health/his/27-bvdk-2; an empty prefix is refused.
func TestSourceScopesEndOnPathSegments(t *testing.T) {
	cfg := gateway.DefaultConfig()
	cfg.Producers = []gateway.Producer{{Name: "bvdk", TokenSHA256: httpedge.HashToken(tokenHealth), Scope: event.Scope{Sources: []string{"/health/his/27-bvdk"}, Types: []string{"vn.ioc.health.*"}}}}
	mux := acceptAllMux(t, cfg)
	visit := visitExample(t)
	for _, tt := range []struct {
		source string
		want   int
	}{
		{"/health/his/27-bvdk", http.StatusAccepted},
		{"/health/his/27-bvdk/khoa-noi", http.StatusAccepted},
		{"/health/his/27-bvdk-2", http.StatusForbidden},
		{"/health/his/27-bvdkx/khoa", http.StatusForbidden},
		{"/health/his/27", http.StatusForbidden},
	} {
		visit["source"] = tt.source
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, "/v1/events", bytes.NewReader(mustJSON(visit)))
		req.Header.Set("Authorization", "Bearer "+tokenHealth)
		req.Header.Set("Content-Type", gateway.MediaStructured)
		mux.ServeHTTP(rec, req)
		if rec.Code != tt.want {
			t.Errorf("source %s: %d, want %d", tt.source, rec.Code, tt.want)
		}
	}
	cfg.Producers[0].Sources = []string{""}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "sources[0] is empty") {
		t.Errorf("an empty source prefix: %v", err)
	}
}

// TestTimesOutOfRangeAreRefused (finding H1): an event time before 2000 or
// more than a day ahead, or a date-time field of the data ClickHouse cannot
// hold, answers 400 naming the pointer and the rule "range"; nothing of it
// reaches the stream, so no row is stored as another year.
func TestTimesOutOfRangeAreRefused(t *testing.T) {
	f := newFixture(t, natsjs.StreamLimits{}, gateway.Config{})
	visit := visitExample(t)
	for _, tt := range []struct {
		name, time, startedAt string
		want                  int
		pointer               string
	}{
		{"1900", "1900-01-01T00:00:00Z", "", 400, "/time"},
		{"the zero clock", "1970-01-01T00:00:00+07:00", "", 400, "/time"},
		{"a week ahead", time.Now().Add(7 * 24 * time.Hour).Format(time.RFC3339), "", 400, "/time"},
		{"data in 1900", "", "1900-01-01T08:00:00+07:00", 400, "/data/started_at"},
		{"data in 2200", "", "2200-01-01T08:00:00+07:00", 400, "/data/started_at"},
		{"now", time.Now().Format(time.RFC3339), "", 202, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ev := maps.Clone(visit)
			data := maps.Clone(ev["data"].(map[string]any))
			ev["data"] = data
			ev["id"] = "range-" + tt.name
			if tt.time != "" {
				ev["time"] = tt.time
			}
			if tt.startedAt != "" {
				data["started_at"] = tt.startedAt
			}
			code, r, _ := post(t, f.url, tokenAll, gateway.MediaStructured, mustJSON(ev), nil)
			if code != tt.want {
				t.Fatalf("%d, want %d: %+v", code, tt.want, r)
			}
			if tt.want == 400 && (len(r.Errors) != 1 || r.Errors[0].Pointer != tt.pointer || r.Errors[0].Rule != "range") {
				t.Fatalf("errors %+v, want %s rule range", r.Errors, tt.pointer)
			}
		})
	}
}

// TestHugeBatchIsRefusedBeforeDecoding (finding H4): a 5 MB array of
// numbers is over the batch limit; it is answered 413 with its count, its
// elements past the limit never decoded, in memory bounded by the body's
// size (at most ten times it, race detector included; decoding them all
// took 1.45 GB).
func TestHugeBatchIsRefusedBeforeDecoding(t *testing.T) {
	cfg := gateway.DefaultConfig()
	cfg.Producers = []gateway.Producer{{Name: "all", TokenSHA256: httpedge.HashToken(tokenAll), Scope: event.Scope{Sources: []string{"*"}, Types: []string{"vn.ioc.*"}}}}
	mux := acceptAllMux(t, cfg)
	body := make([]byte, 0, cfg.MaxBodyBytes)
	body = append(body, '[')
	for int64(len(body)) < cfg.MaxBodyBytes-3 {
		body = append(body, '0', ',')
	}
	body = append(body, '0', ']')
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/v1/events", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tokenAll)
	req.Header.Set("Content-Type", gateway.MediaBatch)
	mux.ServeHTTP(rec, req)
	runtime.ReadMemStats(&after)
	if rec.Code != http.StatusRequestEntityTooLarge || !strings.Contains(rec.Body.String(), "events, the limit is 10000") {
		t.Fatalf("%d %s, want 413 naming the limit", rec.Code, rec.Body.String()[:min(300, rec.Body.Len())])
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 10*uint64(len(body)) {
		t.Fatalf("%d MB allocated for a %d MB body: the elements were decoded", alloc>>20, len(body)>>20)
	} else {
		t.Logf("%.1f MB allocated for a %.1f MB body", float64(alloc)/(1<<20), float64(len(body))/(1<<20))
	}
}

// TestProducerOverItsRateGets429 (finding M8): a producer with a rate gets
// its burst, then 429 with Retry-After, and a request larger than its burst
// is told to send smaller batches; a producer without a rate is not held.
func TestProducerOverItsRateGets429(t *testing.T) {
	cfg := gateway.DefaultConfig()
	cfg.Producers = []gateway.Producer{
		{Name: "slow", TokenSHA256: httpedge.HashToken(tokenHealth), Scope: event.Scope{Sources: []string{"*"}, Types: []string{"vn.ioc.*"}}, MaxEventsPerSecond: 0.1, BurstEvents: 20},
		{Name: "free", TokenSHA256: httpedge.HashToken(tokenAll), Scope: event.Scope{Sources: []string{"*"}, Types: []string{"vn.ioc.*"}}},
	}
	mux := acceptAllMux(t, cfg)
	hs := httptest.NewServer(mux)
	defer hs.Close()
	visit := visitExample(t)
	batch := func(n int) []byte {
		evs := make([]map[string]any, n)
		for i := range evs {
			e := map[string]any{}
			for k, v := range visit {
				e[k] = v
			}
			e["id"] = fmt.Sprintf("rate-%d", i)
			evs[i] = e
		}
		return mustJSON(evs)
	}
	if code, r, _ := post(t, hs.URL+"/v1/events", tokenHealth, gateway.MediaBatch, batch(20), nil); code != http.StatusAccepted {
		t.Fatalf("the burst: %d %+v", code, r)
	}
	code, r, hdr := post(t, hs.URL+"/v1/events", tokenHealth, gateway.MediaBatch, batch(5), nil)
	if code != http.StatusTooManyRequests || r.Type != gateway.ProblemRateLimited {
		t.Fatalf("over the rate: %d %+v, want 429", code, r)
	}
	if ra, err := strconv.Atoi(hdr.Get("Retry-After")); err != nil || ra < 40 || ra > 51 {
		t.Fatalf("Retry-After %q, want the ~50 s five events take at 0.1 a second", hdr.Get("Retry-After"))
	}
	if code, r, _ := post(t, hs.URL+"/v1/events", tokenHealth, gateway.MediaBatch, batch(21), nil); code != http.StatusTooManyRequests || !strings.Contains(r.Detail, "smaller batches") {
		t.Fatalf("a batch over the burst: %d %+v", code, r)
	}
	if code, _, _ := post(t, hs.URL+"/v1/events", tokenAll, gateway.MediaBatch, batch(50), nil); code != http.StatusAccepted {
		t.Fatalf("a producer without a rate: %d", code)
	}

	// A daily quota: 30 events over any 24 hours. A refused request takes
	// nothing from it.
	quota := gateway.DefaultConfig()
	quota.Producers = []gateway.Producer{{Name: "quota", TokenSHA256: httpedge.HashToken(tokenAll), Scope: event.Scope{Sources: []string{"*"}, Types: []string{"vn.ioc.*"}}, MaxEventsPerDay: 30}}
	hq := httptest.NewServer(acceptAllMux(t, quota))
	defer hq.Close()
	if code, _, _ := post(t, hq.URL+"/v1/events", tokenAll, gateway.MediaBatch, batch(20), nil); code != http.StatusAccepted {
		t.Fatalf("within the quota: %d", code)
	}
	code, r, hdr = post(t, hq.URL+"/v1/events", tokenAll, gateway.MediaBatch, batch(20), nil)
	if ra, _ := strconv.Atoi(hdr.Get("Retry-After")); code != http.StatusTooManyRequests || !strings.Contains(r.Detail, "30 events a day") || ra < 28000 || ra > 28801 {
		t.Fatalf("over the quota: %d %q Retry-After %q, want 429 naming the quota, about 8 hours", code, r.Detail, hdr.Get("Retry-After"))
	}
	if code, _, _ := post(t, hq.URL+"/v1/events", tokenAll, gateway.MediaBatch, batch(10), nil); code != http.StatusAccepted {
		t.Fatalf("the rest of the quota after a refused request: %d", code)
	}
}

// TestConnectorSourcesAreReserved (finding H6): the sources a configured
// connector makes are its own; no producer, not even one granted "*", may
// send under them.
func TestConnectorSourcesAreReserved(t *testing.T) {
	cfg := gateway.DefaultConfig()
	cfg.Producers = []gateway.Producer{{Name: "all", TokenSHA256: httpedge.HashToken(tokenAll), Scope: event.Scope{Sources: []string{"*"}, Types: []string{"vn.ioc.*"}}}}
	cfg.Reserved = map[string]string{"/health/fhir/": "health-fhir", "/feedback/portal": "feedback-portal"}
	mux := acceptAllMux(t, cfg)
	visit := visitExample(t)
	for _, tt := range []struct {
		source string
		want   int
	}{
		{"/health/fhir/27256", http.StatusForbidden},
		{"/feedback/portal", http.StatusForbidden},
		{"/feedback/portal/x", http.StatusForbidden},
		{"/feedback/portal-2", http.StatusAccepted},
		{"/health/his/27-bvdk", http.StatusAccepted},
	} {
		visit["source"] = tt.source
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, "/v1/events", bytes.NewReader(mustJSON(visit)))
		req.Header.Set("Authorization", "Bearer "+tokenAll)
		req.Header.Set("Content-Type", gateway.MediaStructured)
		mux.ServeHTTP(rec, req)
		if rec.Code != tt.want || (tt.want == http.StatusForbidden && !strings.Contains(rec.Body.String(), `"reserved"`)) {
			t.Errorf("source %s: %d %s, want %d", tt.source, rec.Code, rec.Body, tt.want)
		}
	}
}

// TestSubjectCarriesNoPersonalNumber (finding M5): a subject with a
// citizen ID or a phone number in it (nine or more digits in a row) is
// refused with 400 naming /subject, without repeating it; an area or
// facility code passes.
func TestSubjectCarriesNoPersonalNumber(t *testing.T) {
	f := newFixture(t, natsjs.StreamLimits{}, gateway.Config{})
	visit := visitExample(t)
	for _, tt := range []struct {
		subject string
		want    int
	}{
		{"CCCD-001099012345", http.StatusBadRequest},
		{"0912345678", http.StatusBadRequest},
		{"27256", http.StatusAccepted},
		{"BV-DK-BN", http.StatusAccepted},
		{"H04-241101-0001", http.StatusAccepted},
	} {
		visit["subject"], visit["id"] = tt.subject, fmt.Sprintf("subject-%d", len(tt.subject))
		code, r, _ := post(t, f.url, tokenAll, gateway.MediaStructured, mustJSON(visit), nil)
		if code != tt.want {
			t.Errorf("subject %q: %d %+v, want %d", tt.subject, code, r, tt.want)
			continue
		}
		if code == http.StatusBadRequest {
			raw, _ := json.Marshal(r)
			if len(r.Errors) != 1 || r.Errors[0].Pointer != "/subject" || r.Errors[0].Rule != schema.RuleSubject || strings.Contains(string(raw), tt.subject) {
				t.Errorf("subject %q: errors %+v: want one on /subject, rule x-subject, not repeating it", tt.subject, r.Errors)
			}
		}
	}
}

// visitExample is the first valid visit example, to change.
func visitExample(t *testing.T) map[string]any {
	t.Helper()
	for _, e := range examples(t) {
		if e["type"] == "vn.ioc.health.visit.v1" {
			return e
		}
	}
	t.Fatal("no visit example")
	return nil
}

// acceptAllMux is a gateway with cfg (validated) over a publisher that
// stores everything, mounted on a new mux.
func acceptAllMux(t *testing.T, cfg gateway.Config) *http.ServeMux {
	t.Helper()
	reg, err := schema.Load(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	p, _ := pii.New([]byte(piiKey))
	mux := http.NewServeMux()
	gateway.New(cfg, reg, acceptAll{}, p, zaptest.NewLogger(t)).Register(mux)
	return mux
}

// TestNumbersThatDoNotFitTheirColumnAreRefused (finding M2): a count the
// schema allows (no maximum) but a 64-bit column cannot hold is refused at
// the gateway with 400, never dead-lettered after a 202; 12.0 is the
// integer 12 and passes.
func TestNumbersThatDoNotFitTheirColumnAreRefused(t *testing.T) {
	f := newFixture(t, natsjs.StreamLimits{}, gateway.Config{})
	var flow map[string]any
	for _, ev := range examples(t) {
		if ev["type"] == "vn.ioc.traffic.flow.v1" {
			flow = ev
		}
	}
	for i, tt := range []struct {
		motorbikes json.Number
		want       int
	}{
		{"1e30", http.StatusBadRequest},
		{"99999999999999999999", http.StatusBadRequest},
		{"12.0", http.StatusAccepted},
		{"9223372036854775807", http.StatusAccepted},
	} {
		flow["id"] = fmt.Sprintf("fit-%d", i)
		flow["data"].(map[string]any)["motorbikes"] = tt.motorbikes
		code, r, _ := post(t, f.url, tokenAll, gateway.MediaStructured, mustJSON(flow), nil)
		if code != tt.want {
			t.Errorf("motorbikes %s: %d %+v, want %d", tt.motorbikes, code, r, tt.want)
			continue
		}
		if code == http.StatusBadRequest && (len(r.Errors) != 1 || r.Errors[0].Pointer != "/data/motorbikes" || r.Errors[0].Rule != "range") {
			t.Errorf("motorbikes %s: errors %+v, want one on /data/motorbikes, rule range", tt.motorbikes, r.Errors)
		}
	}
}

// busyPublisher answers as natsjs.PublishAll does when its publish window
// has no room within the hold: every message of the request refused, none
// published.
type busyPublisher struct{ acceptAll }

func (busyPublisher) PublishAll(_ context.Context, msgs []*nats.Msg) []natsjs.Outcome {
	out := make([]natsjs.Outcome, len(msgs))
	for i := range out {
		out[i].Err = fmt.Errorf("%w: %w: no room", natsjs.ErrUnavailable, natsjs.ErrBusy)
	}
	return out
}

// TestBusyHubRefusesTheWholeRequest (issue #13): when JetStream cannot take
// a burst, the request is held and then refused whole with 503 and
// Retry-After (natsjs TestPublishWindowHoldsOrRefusesWholeBatches), never
// a 207 refusing single events of a batch.
func TestBusyHubRefusesTheWholeRequest(t *testing.T) {
	reg, err := schema.Load(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := pii.New([]byte(piiKey))
	cfg := gateway.Config{Producers: []gateway.Producer{{Name: "all", TokenSHA256: httpedge.HashToken(tokenAll), Scope: event.Scope{Sources: []string{"*"}, Types: []string{"vn.ioc.*"}}}}}
	cfg.Defaults()
	mux := http.NewServeMux()
	gateway.New(cfg, reg, busyPublisher{}, p, zaptest.NewLogger(t)).Register(mux)
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	evs := examples(t)
	code, r, hdr := post(t, hs.URL+"/v1/events", tokenAll, gateway.MediaBatch, mustJSON(evs), nil)
	if code != http.StatusServiceUnavailable || hdr.Get("Retry-After") == "" || len(r.Accepted) != 0 || len(r.Errors) != len(evs) {
		t.Fatalf("busy hub: %d, Retry-After %q, %d accepted, %d errors; want 503 with Retry-After for all %d", code, hdr.Get("Retry-After"), len(r.Accepted), len(r.Errors), len(evs))
	}
	if !strings.Contains(r.Errors[0].Message, "nothing of this request was kept") {
		t.Fatalf("error %q does not say the request was refused whole", r.Errors[0].Message)
	}
}

// TestRefusalsAreCountedByProducerAndReason: a producer sending only
// invalid events is counted with its refusals by rule, a request refused
// whole by its problem, one without a token as unauthenticated; each
// refused request is one info line naming producer, status and rules,
// never the payload.
func TestRefusalsAreCountedByProducerAndReason(t *testing.T) {
	reg, err := schema.Load(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	cfg := gateway.Config{Producers: []gateway.Producer{
		{Name: "hospital", TokenSHA256: httpedge.HashToken(tokenHealth), Scope: event.Scope{Sources: []string{"/health/"}, Types: []string{"vn.ioc.health.*"}}}}}
	cfg.Defaults()
	p, _ := pii.New([]byte(piiKey))
	core, logs := observer.New(zap.InfoLevel)
	gw := gateway.New(cfg, reg, acceptAll{}, p, zap.New(core))
	mux := http.NewServeMux()
	gw.Register(mux)
	hs := httptest.NewServer(mux)
	defer hs.Close()
	invalid, err := os.ReadFile("../../schemas/health/examples/visit.v1.invalid.json")
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if status, _, _ := post(t, hs.URL+"/v1/events", tokenHealth, gateway.MediaBatch, invalid, nil); status != 400 {
			t.Fatalf("invalid batch: %d", status)
		}
	}
	if status, _, _ := post(t, hs.URL+"/v1/events", tokenHealth, gateway.MediaBatch, []byte(`[{"specversion":`), nil); status != 400 {
		t.Fatalf("malformed batch: %d", status)
	}
	if status, _, _ := post(t, hs.URL+"/v1/events", "not-a-token", gateway.MediaBatch, invalid, nil); status != 401 {
		t.Fatalf("a wrong token: %d", status)
	}
	c := gw.Counts()
	want := map[string]map[string]uint64{
		"hospital":              {"enum": 2, "minimum": 2, "type": 2, "malformed-request": 1},
		gateway.Unauthenticated: {"unauthorized": 1},
	}
	if len(c.Producers) != len(want) {
		t.Fatalf("producers %+v", c.Producers)
	}
	for _, pc := range c.Producers {
		if pc.Accepted != 0 || !maps.Equal(pc.Rejected, want[pc.Producer]) || pc.LastRejected == nil {
			t.Errorf("%s: accepted %d, rejected %v; want 0 and %v", pc.Producer, pc.Accepted, pc.Rejected, want[pc.Producer])
		}
	}
	lines := logs.FilterMessage("events refused").All()
	if len(lines) != 4 {
		t.Fatalf("%d log lines for 4 refused requests", len(lines))
	}
	first := lines[0].ContextMap()
	if first["producer"] != "hospital" || first["status"] != int64(400) || first["rules"] != "enum,minimum,type" || lines[0].Level != zap.InfoLevel {
		t.Errorf("log line %v", first)
	}
	for _, l := range logs.All() {
		for _, v := range l.ContextMap() {
			if s, ok := v.(string); ok && (strings.Contains(s, "BN-00981234") || strings.Contains(s, "walk-in")) {
				t.Errorf("a log line carries the payload: %v", l.ContextMap())
			}
		}
	}
	reg2 := prometheus.NewRegistry()
	if err := gw.RegisterMetrics(reg2); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(mustCounter(t, reg2, "hospital", "rejected", "enum")); got != 2 {
		t.Errorf("iochub_gateway_events_total{producer=hospital,outcome=rejected,reason=enum} = %v, want 2", got)
	}
}

// mustCounter finds one series of iochub_gateway_events_total in reg.
func mustCounter(t *testing.T, reg *prometheus.Registry, producer, outcome, reason string) prometheus.Collector {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			l := map[string]string{}
			for _, p := range m.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			if f.GetName() == "iochub_gateway_events_total" && l["producer"] == producer && l["outcome"] == outcome && l["reason"] == reason {
				return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "x"}, m.GetCounter().GetValue)
			}
		}
	}
	t.Fatalf("no iochub_gateway_events_total{producer=%s,outcome=%s,reason=%s}", producer, outcome, reason)
	return nil
}
