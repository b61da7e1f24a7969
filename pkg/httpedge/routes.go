package httpedge

import (
	"net/http"
	"slices"
)

// Router is what a service mounts its routes on: an *http.ServeMux, or
// Routes, which also records them.
type Router interface {
	Handle(pattern string, handler http.Handler)
	HandleFunc(pattern string, handler func(http.ResponseWriter, *http.Request))
}

// Routes mounts routes on Mux and records their patterns, so that what a
// process serves can be listed (and documented: GET /openapi.json).
type Routes struct {
	Mux      *http.ServeMux
	patterns []string
}

// Handle mounts handler on pattern.
func (r *Routes) Handle(pattern string, handler http.Handler) {
	r.Mux.Handle(pattern, handler)
	r.patterns = append(r.patterns, pattern)
}

// HandleFunc mounts handler on pattern.
func (r *Routes) HandleFunc(pattern string, handler func(http.ResponseWriter, *http.Request)) {
	r.Mux.HandleFunc(pattern, handler)
	r.patterns = append(r.patterns, pattern)
}

// Patterns lists every pattern mounted, sorted.
func (r *Routes) Patterns() []string {
	out := slices.Clone(r.patterns)
	slices.Sort(out)
	return out
}
