package iocapi

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/iochub/iochub/pkg/kpi"
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

// countingKPIs answers every query with nothing and counts them.
type countingKPIs struct{ runs int }

func (c *countingKPIs) Check(kpi.Request) (*kpi.Def, error) { return nil, nil }
func (c *countingKPIs) Run(context.Context, kpi.Request) (*kpi.Def, *kpi.Result, error) {
	c.runs++
	return nil, &kpi.Result{}, nil
}
func (c *countingKPIs) List(context.Context, *kpi.List, kpi.ListRequest) (*kpi.ListPage, error) {
	return &kpi.ListPage{}, nil
}

func (c *countingKPIs) Freshness(context.Context, *kpi.Def) (kpi.Freshness, error) {
	return kpi.Freshness{}, nil
}

// Anyone may ask for the public figures: an answer is reused for
// PublicCacheTTL, so asking again and again costs the store nothing more.
func TestPublicFiguresAreReusedForAMinute(t *testing.T) {
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	k := &countingKPIs{}
	a := &API{loc: time.UTC, kpis: k, now: func() time.Time { return now }}
	get := func(q string) {
		w := httptest.NewRecorder()
		a.publicFeedback(w, httptest.NewRequest("GET", "/v1/public/feedback"+q, nil))
		if w.Code != http.StatusOK {
			t.Fatalf("%s: %d %s", q, w.Code, w.Body.String())
		}
	}
	for range 20 {
		get("")
	}
	if k.runs != 9 {
		t.Fatalf("20 asks ran %d queries, want the 9 of one answer", k.runs)
	}
	get("?to=2026-11-30") // another period: its own answer
	now = now.Add(PublicCacheTTL + time.Second)
	get("")
	if k.runs != 27 {
		t.Fatalf("after another period and a minute: %d queries, want 27", k.runs)
	}
}
