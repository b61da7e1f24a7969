package iocapi

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestPublicFiguresHideSmallGroups(t *testing.T) {
	n := func(v float64) *float64 { return &v }
	for _, tt := range []struct {
		name                         string
		received, resolved, onTime   *float64
		shown, rateShown, suppressed bool
	}{
		{"nothing", nil, nil, nil, false, false, true},
		{"four received", n(4), n(4), n(100), false, false, true},
		{"five received, four resolved", n(5), n(4), n(75), true, false, false},
		{"five received, five resolved", n(5), n(5), n(80), true, true, false},
		{"resolved without deadlines", n(9), n(6), nil, true, false, false},
	} {
		f := publicFigures(tt.received, tt.resolved, tt.onTime)
		if f.Suppressed != tt.suppressed || (f.Received != nil) != tt.shown || (f.Resolved != nil) != tt.shown || (f.OnTimeRate != nil) != tt.rateShown {
			t.Errorf("%s: %+v", tt.name, f)
		}
	}
}

func TestPublicPeriodIsCheckedBeforeAnyQuery(t *testing.T) {
	a := &API{loc: time.UTC, now: func() time.Time { return time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC) }}
	for _, q := range []string{"to=2099-01-01", "to=yesterday", "to=2026-13-01"} {
		w := httptest.NewRecorder()
		a.publicFeedback(w, httptest.NewRequest("GET", "/v1/public/feedback?"+q, nil))
		if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), `"parameter":"to"`) {
			t.Errorf("%s: %d %s, want 400 naming to", q, w.Code, w.Body.String())
		}
	}
}
