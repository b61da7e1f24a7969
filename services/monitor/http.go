package monitor

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/iochub/iochub/pkg/admit"
	"github.com/iochub/iochub/pkg/httpedge"
)

// Register mounts the /v1/ops/ API (with an admin token) on mux; adm
// admits what replays put back. /metrics is every process's
// (MetricsHandler), with the monitor as one of its collectors.
func (m *Monitor) Register(mux httpedge.Router, adm *admit.Admitter) {
	mux.HandleFunc("GET /v1/ops/whoami", m.admins.Require(func(w http.ResponseWriter, _ *http.Request, a Admin) {
		writeJSON(w, 200, map[string]string{"name": a.Name, "role": a.role()})
	}))
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
	mux.HandleFunc("POST /v1/ops/dlq/{seq}/replay", m.operator(func(w http.ResponseWriter, r *http.Request, who Who) {
		seq, err := parseSeq(r.PathValue("seq"))
		if err != nil {
			problem(w, 400, "seq: want a stream sequence")
			return
		}
		if err := m.Replay(r.Context(), who, seq, adm); err != nil {
			problem(w, actionStatus(err, 422), err.Error())
			return
		}
		writeJSON(w, 200, map[string]any{"replayed": 1})
	}))
	mux.HandleFunc("POST /v1/ops/dlq/replay", m.operator(func(w http.ResponseWriter, r *http.Request, who Who) {
		n, errs := m.ReplayAll(r.Context(), who, adm)
		if len(errs) == 1 && errors.Is(errs[0], ErrNotRecorded) {
			problem(w, 503, errs[0].Error())
			return
		}
		msgs := []string{}
		for _, e := range errs {
			msgs = append(msgs, e.Error())
		}
		writeJSON(w, 200, map[string]any{"replayed": n, "failed": msgs})
	}))
	mux.HandleFunc("DELETE /v1/ops/dlq/{seq}", m.operator(func(w http.ResponseWriter, r *http.Request, who Who) {
		seq, err := parseSeq(r.PathValue("seq"))
		if err != nil || seq == 0 {
			problem(w, 400, "seq: want a stream sequence")
			return
		}
		if err := m.Purge(r.Context(), who, seq); err != nil {
			problem(w, actionStatus(err, 404), err.Error())
			return
		}
		writeJSON(w, 200, map[string]any{"purged": 1})
	}))
	mux.HandleFunc("DELETE /v1/ops/dlq", m.operator(func(w http.ResponseWriter, r *http.Request, who Who) {
		if r.URL.Query().Get("confirm") != "all" {
			problem(w, 400, "purging every dead letter needs ?confirm=all")
			return
		}
		if err := m.Purge(r.Context(), who, 0); err != nil {
			problem(w, 503, err.Error())
			return
		}
		writeJSON(w, 200, map[string]any{"purged": "all"})
	}))
}

// actionStatus is the status of an action's error: 503 when it could not
// be recorded, 404 for a letter not found, otherwise status.
func actionStatus(err error, status int) int {
	switch {
	case errors.Is(err, ErrNotRecorded):
		return 503
	case errors.Is(err, errNotFound):
		return 404
	}
	return status
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

// operator lets only an operator's token through, to an action recorded in
// the audit log under its name.
func (m *Monitor) operator(next func(http.ResponseWriter, *http.Request, Who)) http.HandlerFunc {
	return m.admins.Require(func(w http.ResponseWriter, r *http.Request, a Admin) {
		if a.role() != RoleOperator {
			problem(w, http.StatusForbidden, "replay and purge need an operator's token; "+a.Name+" is a "+a.role())
			return
		}
		next(w, r, Who{Actor: a.Name, Role: a.role(), Via: "http"})
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) { httpedge.WriteJSON(w, status, v) }

func problem(w http.ResponseWriter, status int, detail string) {
	httpedge.Problem{Type: "urn:iochub:problem:ops", Title: http.StatusText(status), Status: status, Detail: detail}.Write(w)
}
