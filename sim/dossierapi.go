// Package sim stands in for the sector systems the connectors read,
// for tests, demos and `iochub-sim`: each simulator speaks its
// system's own format.
package sim

import (
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
)

// DossierAPI is the public-service dossier system's change feed: dossier
// changes in the order they happened, paged, resumable after a cursor.
type DossierAPI struct {
	mu      sync.Mutex
	changes []map[string]any
	down    bool
}

// Add appends a change of a dossier (the API's JSON fields, without
// con_tro, which the API assigns).
func (a *DossierAPI) Add(change map[string]any) {
	a.mu.Lock()
	defer a.mu.Unlock()
	c := map[string]any{}
	for k, v := range change {
		c[k] = v
	}
	c["con_tro"] = strconv.Itoa(len(a.changes) + 1)
	a.changes = append(a.changes, c)
}

// Len is how many changes the feed holds.
func (a *DossierAPI) Len() int { a.mu.Lock(); defer a.mu.Unlock(); return len(a.changes) }

// SetDown makes the API answer 503, as during maintenance.
func (a *DossierAPI) SetDown(down bool) { a.mu.Lock(); a.down = down; a.mu.Unlock() }

// ServeHTTP answers GET /api/v1/ho-so?sau=&so_ban_ghi=.
func (a *DossierAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/api/v1/ho-so" || r.Method != http.MethodGet {
		http.NotFound(w, r)
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.down {
		http.Error(w, "bảo trì hệ thống", http.StatusServiceUnavailable)
		return
	}
	after := 0
	if v := r.URL.Query().Get("sau"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			http.Error(w, "sau: con trỏ không hợp lệ", http.StatusBadRequest)
			return
		}
		after = n
	}
	size, _ := strconv.Atoi(r.URL.Query().Get("so_ban_ghi"))
	if size <= 0 || size > 500 {
		size = 100
	}
	from := min(after, len(a.changes))
	to := min(from+size, len(a.changes))
	page := a.changes[from:to]
	next := ""
	if to < len(a.changes) {
		q := r.URL.Query()
		q.Set("sau", strconv.Itoa(to))
		next = "http://" + r.Host + r.URL.Path + "?" + q.Encode()
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_ = json.NewEncoder(w).Encode(map[string]any{"du_lieu": page, "trang_tiep": next})
}
