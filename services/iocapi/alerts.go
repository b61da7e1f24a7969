package iocapi

import (
	"context"
	"net/http"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/iochub/iochub/pkg/alertlog"
)

// BannerAlerts are the monitor's alerts that matter to the people reading
// the IOC's screens: a source silent (its sector's figures stop), the
// event store down or the aggregator falling behind (every figure late).
// The rest (dead letters, disk, partner subscriptions) are the operators'.
var BannerAlerts = []string{"source_silent", "clickhouse_unreachable", "lag_growing"}

// AlertReader gives the recorded alert changes, oldest first
// (alertlog.Read over the hub's JetStream).
type AlertReader func(ctx context.Context) ([]alertlog.Event, error)

// WithAlerts shows the monitor's firing alerts on the dashboard
// (GET /v1/alerts), read from where the monitor records them.
func WithAlerts(r AlertReader) Option { return func(a *API) { a.alertsRead = r } }

// Notice is a firing alert as the dashboard's banner shows it.
type Notice struct {
	Name    string         `json:"name"`
	Subject string         `json:"subject,omitempty"`
	Since   time.Time      `json:"since"`
	Text    alertlog.Texts `json:"text"`
}

// alertCacheFor bounds how often the alert record is read: every reader's
// dashboard asks.
const alertCacheFor = 10 * time.Second

// alerts answers GET /v1/alerts: the BannerAlerts firing now.
func (a *API) alerts(w http.ResponseWriter, r *http.Request, _ *Reader) {
	out := []Notice{}
	if a.alertsRead == nil {
		writeJSON(w, http.StatusOK, map[string]any{"alerts": out})
		return
	}
	a.alertMu.Lock()
	defer a.alertMu.Unlock()
	if a.now().Sub(a.alertAt) > alertCacheFor {
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		defer cancel()
		changes, err := a.alertsRead(ctx)
		if err != nil {
			a.log.Warn("the alert record could not be read", zap.Error(err))
			problem(w, http.StatusServiceUnavailable, ProblemUnavailable, "Alerts unavailable", "the alert record did not answer; try again")
			return
		}
		a.alertNotices, a.alertAt = nil, a.now()
		for _, e := range alertlog.FiringIn(changes) {
			if slices.Contains(BannerAlerts, e.Name) {
				a.alertNotices = append(a.alertNotices, Notice{Name: e.Name, Subject: e.Subject, Since: e.At.In(a.loc), Text: e.Text})
			}
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"alerts": append(out, a.alertNotices...)})
}
