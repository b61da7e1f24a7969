package event

import (
	"errors"
	"fmt"
	"strings"
)

// Scope is what a producer may send: the sources it owns and the types it
// sends. The gateway checks it for a token; the aggregator for an event a
// direct NATS producer published.
type Scope struct {
	// Sources are prefixes of the CloudEvents source, matched on a path
	// segment boundary, e.g. "/health/his/27-bvdk". "*" allows any source.
	Sources []string `yaml:"sources"`
	// Types are event types; a trailing "*" matches a prefix, e.g.
	// "vn.ioc.health.*".
	Types []string `yaml:"types"`
}

// AllowsSource reports whether src is within one of the source prefixes, on
// a path-segment boundary: "/health/his/27-bvdk" allows itself and
// "/health/his/27-bvdk/…", not "/health/his/27-bvdk-2".
func (s Scope) AllowsSource(src string) bool {
	for _, p := range s.Sources {
		if p == "*" || src == p || (p != "" && strings.HasPrefix(src, p) && (strings.HasSuffix(p, "/") || src[len(p)] == '/')) {
			return true
		}
	}
	return false
}

// AllowsType reports whether typ is one of the types or under one of the
// prefixes.
func (s Scope) AllowsType(typ string) bool {
	for _, t := range s.Types {
		if t == typ || (strings.HasSuffix(t, "*") && strings.HasPrefix(typ, strings.TrimSuffix(t, "*"))) {
			return true
		}
	}
	return false
}

// Validate names what is missing or empty; where says whose scope it is.
func (s Scope) Validate(where string) error {
	var errs []error
	if len(s.Sources) == 0 {
		errs = append(errs, fmt.Errorf("%s: sources must list at least one source prefix (or \"*\")", where))
	}
	for j, p := range s.Sources {
		if p == "" {
			errs = append(errs, fmt.Errorf("%s: sources[%d] is empty: name a source prefix, or \"*\" for any", where, j))
		}
	}
	if len(s.Types) == 0 {
		errs = append(errs, fmt.Errorf("%s: types must list at least one event type (or a prefix ending in \"*\")", where))
	}
	for j, t := range s.Types {
		if t == "" {
			errs = append(errs, fmt.Errorf("%s: types[%d] is empty", where, j))
		}
	}
	return errors.Join(errs...)
}
