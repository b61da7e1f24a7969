package httpedge

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Unmatched is the route label of a request no pattern matched (a 404 or
// 405 of the mux itself): one label for all of them, so a scanner trying
// paths cannot grow the metric.
const Unmatched = "unmatched"

// Instrument records every request h serves in reg's histogram
// iochub_http_request_duration_seconds, labelled by route (the mux's
// pattern, "GET /v1/kpis/{name}", not the path), method and status code.
// h must be the *http.ServeMux the routes are on (or hand the request to
// one): the mux writes the pattern it matched into the request.
func Instrument(h http.Handler, reg prometheus.Registerer) http.Handler {
	hist := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "iochub_http_request_duration_seconds",
		Help:    "Time to answer an HTTP request, by route (the pattern it matched), method and status code.",
		Buckets: prometheus.DefBuckets,
	}, []string{"route", "method", "code"})
	reg.MustRegister(hist)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(sw, r)
		route := r.Pattern
		if route == "" {
			route = Unmatched
		}
		hist.WithLabelValues(route, r.Method, strconv.Itoa(sw.status)).Observe(time.Since(start).Seconds())
	})
}

// statusWriter remembers the status code written.
type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (s *statusWriter) WriteHeader(code int) {
	if !s.wrote {
		s.status, s.wrote = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	s.wrote = true
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (flushes of
// long polls, per-request deadlines).
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// Flush passes a flush on (server-sent answers, long polls).
func (s *statusWriter) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
