// Package sharing lets partner agencies receive the hub's events: agencies
// and their grants (which types and areas each may receive, and whether
// personal data reaches it pseudonymized or not at all) come from the
// config file; each agency's subscriptions stay within its grants.
// Nothing is implied: an event reaches an agency only through a grant that
// names its type and covers its area.
package sharing

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/iochub/iochub/pkg/area"
	"github.com/iochub/iochub/pkg/event"
)

// Personal data in what an agency receives.
const (
	PersonalPseudonymized = "pseudonymized" // the hub's pseudonyms, as in ClickHouse
	PersonalDrop          = "drop"          // the fields removed
)

// AllAreas in a grant's areas covers every area.
const AllAreas = "*"

// Config is the config file's `sharing:` section.
type Config struct {
	Agencies []Agency `yaml:"agencies"`
}

// Agency is a partner system that may subscribe to events.
type Agency struct {
	Name        string  `yaml:"name"`
	TokenSHA256 string  `yaml:"token_sha256"` // of its bearer token (iochub token makes one)
	Grants      []Grant `yaml:"grants"`
	// PushURLs are the URL prefixes its push subscriptions may deliver to
	// (e.g. https://api.soyte.bacninh.gov.vn/iochub/): the hub posts to no
	// other address for it. None: pull only.
	PushURLs []string `yaml:"push_urls"`
	// MaxSubscriptions bounds the agency's subscriptions (each a durable
	// consumer, and a delivery loop for push and nats); 0:
	// DefaultMaxSubscriptions.
	MaxSubscriptions int `yaml:"max_subscriptions"`
}

// DefaultMaxSubscriptions is an agency's bound when its config sets none.
const DefaultMaxSubscriptions = 20

func (a *Agency) maxSubscriptions() int {
	if a.MaxSubscriptions > 0 {
		return a.MaxSubscriptions
	}
	return DefaultMaxSubscriptions
}

// Grant is what an agency may receive: events of Types (exact, or a prefix
// ending in "*") whose area_code lies within one of Areas (a code covers
// the units under it; "*" every area).
type Grant struct {
	Types        []string `yaml:"types" json:"types"`
	Areas        []string `yaml:"areas" json:"areas"`
	PersonalData string   `yaml:"personal_data" json:"personal_data,omitempty"` // PersonalPseudonymized (default) or PersonalDrop
}

// Areas is the area reference data (*area.List): whether a code is known,
// and whether it lies within another.
type Areas interface {
	Within(code, ancestor string) bool
	Lookup(code string) (area.Area, error)
}

var agencyName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// Validate names every problem of the agencies and their grants.
func (c Config) Validate() error {
	var errs []error
	seen := map[string]bool{}
	for i, a := range c.Agencies {
		where := fmt.Sprintf("sharing.agencies[%d] (%s)", i, a.Name)
		if !agencyName.MatchString(a.Name) {
			errs = append(errs, fmt.Errorf("%s: name must be lower-case letters, digits and '-', at most 63", where))
		}
		if seen[a.Name] {
			errs = append(errs, fmt.Errorf("%s: name is used twice", where))
		}
		seen[a.Name] = true
		if len(a.TokenSHA256) != 64 {
			errs = append(errs, fmt.Errorf("%s: token_sha256 must be the 64 hex digits of the token's SHA-256 (iochub token makes one)", where))
		}
		if a.MaxSubscriptions < 0 || a.MaxSubscriptions > 1000 {
			errs = append(errs, fmt.Errorf("%s: max_subscriptions %d: want 1 to 1000 (0: %d)", where, a.MaxSubscriptions, DefaultMaxSubscriptions))
		}
		if len(a.Grants) == 0 {
			errs = append(errs, fmt.Errorf("%s: grants: none, so it could receive nothing", where))
		}
		for j, u := range a.PushURLs {
			if !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://") || strings.Count(u, "/") < 3 {
				errs = append(errs, fmt.Errorf("%s: push_urls[%d] %q: want an http(s) URL prefix ending its host with /, e.g. https://host/path/", where, j, u))
			}
		}
		for j, g := range a.Grants {
			gw := fmt.Sprintf("%s: grants[%d]", where, j)
			if len(g.Types) == 0 || slices.Contains(g.Types, "") {
				errs = append(errs, fmt.Errorf("%s: types must name event types (or a prefix ending in *)", gw))
			}
			if len(g.Areas) == 0 || slices.Contains(g.Areas, "") {
				errs = append(errs, fmt.Errorf("%s: areas must name area codes, or \"*\" for every area", gw))
			}
			if g.PersonalData != "" && g.PersonalData != PersonalPseudonymized && g.PersonalData != PersonalDrop {
				errs = append(errs, fmt.Errorf("%s: personal_data must be %q or %q, got %q", gw, PersonalPseudonymized, PersonalDrop, g.PersonalData))
			}
		}
	}
	return errors.Join(errs...)
}

// ErrNotGranted is matched by a subscription that asks for more than its
// agency's grants.
var ErrNotGranted = errors.New("not granted")

// NotGrantedError names what a subscription asks for that no grant allows.
type NotGrantedError struct {
	Agency string              `json:"agency"`
	Types  []string            `json:"types,omitempty"` // types no grant names
	Areas  map[string][]string `json:"areas,omitempty"` // type → areas asked for outside its grants
}

func (e *NotGrantedError) Error() string {
	var parts []string
	if len(e.Types) > 0 {
		parts = append(parts, "types "+strings.Join(e.Types, ", "))
	}
	for _, t := range sortedKeys(e.Areas) {
		parts = append(parts, fmt.Sprintf("areas %s of %s", strings.Join(e.Areas[t], ", "), t))
	}
	return fmt.Sprintf("agency %s is not granted %s", e.Agency, strings.Join(parts, "; "))
}

func (e *NotGrantedError) Unwrap() error { return ErrNotGranted }

// Check refuses a subscription of agency to types (patterns, expanded over
// known) and areas (empty: whatever the grants cover) that its grants do
// not cover, naming what is not granted.
func (a Agency) Check(types []string, areas []string, known []string, al Areas) error {
	e := &NotGrantedError{Agency: a.Name, Areas: map[string][]string{}}
	for _, typ := range expand(types, known) {
		grants := a.grantsFor(typ)
		if len(grants) == 0 {
			e.Types = append(e.Types, typ)
			continue
		}
		for _, ar := range areas {
			if !slices.ContainsFunc(grants, func(g Grant) bool { return g.covers(ar, al) }) {
				e.Areas[typ] = append(e.Areas[typ], ar)
			}
		}
	}
	if len(e.Types) == 0 && len(e.Areas) == 0 {
		return nil
	}
	return e
}

// Allows reports whether agency may receive an event of typ in area, and
// whether its personal data must be dropped (rather than pseudonymized):
// dropped unless a grant that allows the event keeps pseudonyms.
func (a Agency) Allows(typ, area string, al Areas) (ok, drop bool) {
	drop = true
	for _, g := range a.grantsFor(typ) {
		if g.covers(area, al) {
			ok = true
			if g.PersonalData != PersonalDrop {
				drop = false
			}
		}
	}
	return ok, drop
}

func (a Agency) grantsFor(typ string) []Grant {
	var out []Grant
	for _, g := range a.Grants {
		if (event.Scope{Types: g.Types}).AllowsType(typ) {
			out = append(out, g)
		}
	}
	return out
}

func (g Grant) covers(area string, al Areas) bool {
	for _, ga := range g.Areas {
		if ga == AllAreas || (area != "" && al.Within(area, ga)) {
			return true
		}
	}
	return false
}

// expand is every known type one of patterns matches, and the patterns
// that match none (unknown types are not granted either).
func expand(patterns, known []string) []string {
	var out []string
	for _, p := range patterns {
		matched := false
		for _, k := range known {
			if (event.Scope{Types: []string{p}}).AllowsType(k) {
				matched = true
				if !slices.Contains(out, k) {
					out = append(out, k)
				}
			}
		}
		if !matched && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

func sortedKeys(m map[string][]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
