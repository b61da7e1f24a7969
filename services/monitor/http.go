package monitor

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/iochub/iochub/pkg/admit"
	"github.com/iochub/iochub/pkg/httpedge"
)

// Register mounts /metrics and the /v1/ops/ API (admin token) on mux; reg
// is the registry replays validate with.
func (m *Monitor) Register(mux *http.ServeMux, adm *admit.Admitter) {
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		m.WriteMetrics(w)
	})
	mux.HandleFunc("GET /v1/ops/snapshot", m.admin(func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, m.Snapshot()) }))
	mux.HandleFunc("GET /v1/ops/streams", m.admin(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"streams": m.Snapshot().Streams})
	}))
	mux.HandleFunc("GET /v1/ops/consumers", m.admin(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"consumers": m.Snapshot().Consumers})
	}))
	mux.HandleFunc("GET /v1/ops/sources", m.admin(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"sources": m.Snapshot().Sources})
	}))
	mux.HandleFunc("GET /v1/ops/rates", m.admin(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"rates": nonNil(m.Rates())})
	}))
	mux.HandleFunc("GET /v1/ops/alerts", m.admin(func(w http.ResponseWriter, r *http.Request) {
		firing, hist := m.Alerts()
		writeJSON(w, 200, map[string]any{"firing": nonNil(firing), "history": nonNil(hist)})
	}))
	mux.HandleFunc("GET /v1/ops/dlq", m.admin(func(w http.ResponseWriter, r *http.Request) {
		n := 200
		if v := r.URL.Query().Get("limit"); v != "" {
			var err error
			if n, err = strconv.Atoi(v); err != nil || n < 1 || n > 10000 {
				problem(w, 400, "limit: want 1 to 10000")
				return
			}
		}
		writeJSON(w, 200, map[string]any{"stats": m.Snapshot().DLQ, "letters": nonNil(m.ListDLQ(r.Context(), n))})
	}))
	mux.HandleFunc("GET /v1/ops/dlq/{seq}", m.admin(func(w http.ResponseWriter, r *http.Request) {
		seq, err := parseSeq(r.PathValue("seq"))
		if err != nil {
			problem(w, 400, "seq: want a stream sequence")
			return
		}
		d, err := m.ShowDLQ(r.Context(), seq)
		if err != nil {
			problem(w, 404, err.Error())
			return
		}
		writeJSON(w, 200, d)
	}))
	mux.HandleFunc("POST /v1/ops/dlq/{seq}/replay", m.admin(func(w http.ResponseWriter, r *http.Request) {
		seq, err := parseSeq(r.PathValue("seq"))
		if err != nil {
			problem(w, 400, "seq: want a stream sequence")
			return
		}
		if err := m.Replay(r.Context(), seq, adm); err != nil {
			status := 422
			if errors.Is(err, errNotFound) {
				status = 404
			}
			problem(w, status, err.Error())
			return
		}
		writeJSON(w, 200, map[string]any{"replayed": 1})
	}))
	mux.HandleFunc("POST /v1/ops/dlq/replay", m.admin(func(w http.ResponseWriter, r *http.Request) {
		n, errs := m.ReplayAll(r.Context(), adm)
		msgs := []string{}
		for _, e := range errs {
			msgs = append(msgs, e.Error())
		}
		writeJSON(w, 200, map[string]any{"replayed": n, "failed": msgs})
	}))
	mux.HandleFunc("DELETE /v1/ops/dlq/{seq}", m.admin(func(w http.ResponseWriter, r *http.Request) {
		seq, err := parseSeq(r.PathValue("seq"))
		if err != nil || seq == 0 {
			problem(w, 400, "seq: want a stream sequence")
			return
		}
		if err := m.Purge(r.Context(), seq); err != nil {
			problem(w, 404, err.Error())
			return
		}
		writeJSON(w, 200, map[string]any{"purged": 1})
	}))
	mux.HandleFunc("DELETE /v1/ops/dlq", m.admin(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("confirm") != "all" {
			problem(w, 400, "purging every dead letter needs ?confirm=all")
			return
		}
		if err := m.Purge(r.Context(), 0); err != nil {
			problem(w, 503, err.Error())
			return
		}
		writeJSON(w, 200, map[string]any{"purged": "all"})
	}))
}

func nonNil[T any](xs []T) []T {
	if xs == nil {
		return []T{}
	}
	return xs
}

func (m *Monitor) admin(next http.HandlerFunc) http.HandlerFunc {
	return m.admins.Require(func(w http.ResponseWriter, r *http.Request, _ Admin) { next(w, r) })
}

func writeJSON(w http.ResponseWriter, status int, v any) { httpedge.WriteJSON(w, status, v) }

func problem(w http.ResponseWriter, status int, detail string) {
	httpedge.Problem{Type: "urn:iochub:problem:ops", Title: http.StatusText(status), Status: status, Detail: detail}.Write(w)
}
