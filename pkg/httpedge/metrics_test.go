package httpedge_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/iochub/iochub/pkg/httpedge"
)

// TestRequestsAreTimedByRoute: a request is counted under the pattern it
// matched, not its path (ids do not grow the label set); a path no route
// matches is counted as unmatched; the status written is the code.
func TestRequestsAreTimedByRoute(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/kpis/{name}", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) })
	reg := prometheus.NewRegistry()
	h := httpedge.Instrument(mux, reg)
	for _, p := range []string{"/v1/kpis/a", "/v1/kpis/b", "/nope", "/etc/passwd"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", p, nil))
	}
	if n := testutil.CollectAndCount(reg, "iochub_http_request_duration_seconds"); n != 2 {
		t.Errorf("%d series, want 2 (the route and unmatched)", n)
	}
	fams, _ := reg.Gather()
	got := map[string]uint64{}
	for _, m := range fams[0].GetMetric() {
		key := ""
		for _, l := range m.GetLabel() {
			key += l.GetName() + "=" + l.GetValue() + " "
		}
		got[key] = m.GetHistogram().GetSampleCount()
	}
	if got["code=418 method=GET route=GET /v1/kpis/{name} "] != 2 || got["code=404 method=GET route=unmatched "] != 2 {
		t.Errorf("series %v", got)
	}
}

// BenchmarkInstrument: a request through a mux bare and through
// Instrument: what timing every request by route costs.
func BenchmarkInstrument(b *testing.B) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/kpis/{name}", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	for _, c := range []struct {
		name string
		h    http.Handler
	}{{"bare", mux}, {"instrumented", httpedge.Instrument(mux, prometheus.NewRegistry())}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			req := httptest.NewRequest("GET", "/v1/kpis/health.visits", nil)
			for b.Loop() {
				c.h.ServeHTTP(httptest.NewRecorder(), req)
			}
		})
	}
}
