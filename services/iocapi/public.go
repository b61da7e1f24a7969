package iocapi

import (
	"context"
	"net/http"
	"sort"
	"time"

	"go.uber.org/zap"

	"github.com/iochub/iochub/pkg/httpedge"
	"github.com/iochub/iochub/pkg/kpi"
)

// The public results of the citizen field-report portal: GET
// /v1/public/feedback and the page /public, without a token. Only
// aggregates are shown, and only for groups of at least PublicMinGroup
// reports, so that no citizen can be picked out of a small count.

// PublicMinGroup is the smallest group of reports the public figures show.
const PublicMinGroup = 5

// PublicCacheTTL is how long an answer of the public figures is reused:
// anyone may ask, without a token, and each answer is nine queries.
const PublicCacheTTL = time.Minute

// publicCacheMax bounds the periods kept (one per day asked for).
const publicCacheMax = 64

type publicEntry struct {
	at  time.Time
	out PublicFeedback
}

// PublicDays is the public figures' period: this many calendar days in the
// province's time zone, ending with the day asked for (today by default).
const PublicDays = 30

// The KPIs behind the public figures.
const (
	kpiReceived = "feedback.reports_submitted"
	kpiResolved = "feedback.reports_resolved"
	kpiOnTime   = "feedback.resolved_within_deadline"
)

// PublicFigures are one group's figures. Nil where the group is smaller
// than the minimum: Suppressed says why.
type PublicFigures struct {
	Received   *float64 `json:"received"`
	Resolved   *float64 `json:"resolved"`
	OnTimeRate *float64 `json:"on_time_rate"` // percent of the resolved reports that had a deadline
	Suppressed bool     `json:"suppressed,omitempty"`
}

// PublicGroup is a category's or a commune's figures.
type PublicGroup struct {
	Key    string `json:"key"`
	NameVI string `json:"name_vi,omitempty"` // a commune's name
	PublicFigures
}

// PublicFeedback is the answer of GET /v1/public/feedback.
type PublicFeedback struct {
	From       time.Time     `json:"from"`
	To         time.Time     `json:"to"`
	Days       int           `json:"days"`
	TimeZone   string        `json:"time_zone"`
	MinGroup   int           `json:"min_group"`
	Total      PublicFigures `json:"total"`
	ByCategory []PublicGroup `json:"by_category"`
	ByArea     []PublicGroup `json:"by_area"`
}

func (a *API) publicFeedback(w http.ResponseWriter, r *http.Request) {
	day := a.now().In(a.loc)
	if v := r.URL.Query().Get("to"); v != "" {
		d, err := time.ParseInLocation(time.DateOnly, v, a.loc)
		if err != nil {
			httpedge.WriteProblem(w, http.StatusBadRequest, parameterProblem{
				Problem:   httpedge.Problem{Type: ProblemBadParameter, Title: "Bad parameter", Status: http.StatusBadRequest, Detail: "to: want a date, YYYY-MM-DD"},
				Parameter: "to",
			})
			return
		}
		day = d
	}
	y, m, d := day.Date()
	to := time.Date(y, m, d+1, 0, 0, 0, 0, a.loc)
	from := time.Date(y, m, d+1-PublicDays, 0, 0, 0, 0, a.loc)
	if now := a.now(); to.After(now) {
		to = now
	}
	if !from.Before(to) {
		httpedge.WriteProblem(w, http.StatusBadRequest, parameterProblem{
			Problem:   httpedge.Problem{Type: ProblemBadParameter, Title: "Bad parameter", Status: http.StatusBadRequest, Detail: "to: a day not after today"},
			Parameter: "to",
		})
		return
	}
	key := day.Format(time.DateOnly)
	a.publicMu.Lock()
	if e, ok := a.publicCache[key]; ok && a.now().Sub(e.at) < PublicCacheTTL {
		a.publicMu.Unlock()
		writeJSON(w, http.StatusOK, e.out)
		return
	}
	a.publicMu.Unlock()
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	run := func(name, by string) (*kpi.Result, error) {
		_, res, err := a.kpis.Run(ctx, kpi.Request{Name: name, From: from, To: to, Granularity: "day", By: by})
		return res, err
	}
	out := PublicFeedback{From: from, To: to, Days: PublicDays, TimeZone: a.loc.String(), MinGroup: PublicMinGroup,
		ByCategory: []PublicGroup{}, ByArea: []PublicGroup{}}
	for _, g := range []struct {
		by   string
		into *[]PublicGroup
	}{{"", nil}, {"category", &out.ByCategory}, {"area", &out.ByArea}} {
		var res [3]*kpi.Result
		for i, name := range []string{kpiReceived, kpiResolved, kpiOnTime} {
			var err error
			if res[i], err = run(name, g.by); err != nil {
				a.log.Error("public figures: kpi query failed", zap.String("kpi", name), zap.Error(err))
				problem(w, http.StatusServiceUnavailable, ProblemUnavailable, "Figures unavailable", "the KPI store did not answer; try again")
				return
			}
		}
		if g.into == nil {
			out.Total = publicFigures(res[0].Total, res[1].Total, res[2].Total)
			continue
		}
		*g.into = a.publicGroups(g.by, res)
	}
	a.publicMu.Lock()
	if a.publicCache == nil || len(a.publicCache) >= publicCacheMax {
		a.publicCache = map[string]publicEntry{}
	}
	a.publicCache[key] = publicEntry{at: a.now(), out: out}
	a.publicMu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

// publicGroups joins the three breakdowns by key: every group with a
// report received or resolved in the period.
func (a *API) publicGroups(by string, res [3]*kpi.Result) []PublicGroup {
	vals := map[string]*[3]*float64{}
	for i, r := range res {
		for _, p := range r.Breakdown {
			if vals[p.Key] == nil {
				vals[p.Key] = &[3]*float64{}
			}
			vals[p.Key][i] = p.Value
		}
	}
	out := []PublicGroup{}
	for k, v := range vals {
		if (v[0] == nil || *v[0] == 0) && (v[1] == nil || *v[1] == 0) {
			continue
		}
		g := PublicGroup{Key: k, PublicFigures: publicFigures(v[0], v[1], v[2])}
		if by == "area" {
			if ar, err := a.areas.Lookup(k); err == nil {
				g.NameVI = ar.NameVI
			}
		}
		out = append(out, g)
	}
	// Shown groups by size; suppressed ones after them by key, so that
	// their order tells nothing of their hidden counts.
	sort.Slice(out, func(i, j int) bool {
		if out[i].Suppressed != out[j].Suppressed {
			return !out[i].Suppressed
		}
		if ri, rj := value(out[i].Received), value(out[j].Received); ri != rj {
			return ri > rj
		}
		return out[i].Key < out[j].Key
	})
	return out
}

// publicFigures shows a group's figures only when it received at least
// PublicMinGroup reports; the on-time rate only when at least as many were
// resolved, since a rate over one or two reports tells their outcome.
func publicFigures(received, resolved, onTime *float64) PublicFigures {
	if value(received) < PublicMinGroup {
		return PublicFigures{Suppressed: true}
	}
	f := PublicFigures{Received: received, Resolved: resolved}
	if value(resolved) >= PublicMinGroup {
		f.OnTimeRate = onTime
	}
	return f
}

func value(v *float64) float64 {
	if v == nil {
		return 0
	}
	return *v
}
