// Package area is the reference data of administrative units that events
// carry in area_code and KPIs are broken down by. It is loaded from a CSV
// file (deploy/areas/), never compiled in: units are merged and renamed.
package area

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
)

// Level is the kind of unit.
type Level string

// The levels an area can have.
const (
	Province Level = "province"
	District Level = "district"
	Commune  Level = "commune"
)

// Area is one administrative unit.
type Area struct {
	Code   string `json:"code"`
	NameVI string `json:"name_vi"`
	Level  Level  `json:"level"`
	Parent string `json:"parent,omitempty"`
}

// ErrUnknown is matched by lookups of a code that is not in the list.
var ErrUnknown = errors.New("unknown area")

// List is a loaded set of areas, in file order.
type List struct {
	areas  []Area
	byCode map[string]int
}

// codePattern is the area_code pattern of the event schemas.
var codePattern = regexp.MustCompile(`^[0-9]{2}([0-9]{3}){0,2}$`)

var header = []string{"code", "name_vi", "level", "parent"}

// Load reads a CSV file of areas (see deploy/areas/README.md).
func Load(path string) (*List, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("areas: %w", err)
	}
	defer f.Close()
	l, err := Read(f)
	if err != nil {
		return nil, fmt.Errorf("areas %s: %w", path, err)
	}
	return l, nil
}

// Read parses areas from CSV. An error names the line and what is wrong.
func Read(r io.Reader) (*List, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = len(header)
	head, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("line 1: %w", err)
	}
	head[0] = strings.TrimPrefix(head[0], "\ufeff") // a BOM from spreadsheet exports
	if !slices.Equal(head, header) {
		return nil, fmt.Errorf("line 1: header must be %q, got %q", strings.Join(header, ","), strings.Join(head, ","))
	}
	l := &List{byCode: map[string]int{}}
	lines := map[string]int{}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err // csv errors name their line
		}
		line, _ := cr.FieldPos(0)
		a := Area{Code: strings.TrimSpace(rec[0]), NameVI: strings.TrimSpace(rec[1]), Level: Level(strings.TrimSpace(rec[2])), Parent: strings.TrimSpace(rec[3])}
		if err := a.check(); err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		if prev, dup := lines[a.Code]; dup {
			return nil, fmt.Errorf("line %d: code %q is already on line %d", line, a.Code, prev)
		}
		lines[a.Code] = line
		l.byCode[a.Code] = len(l.areas)
		l.areas = append(l.areas, a)
	}
	if len(l.areas) == 0 {
		return nil, errors.New("no areas")
	}
	for _, a := range l.areas {
		if a.Parent == "" {
			continue
		}
		if _, ok := l.byCode[a.Parent]; !ok {
			return nil, fmt.Errorf("line %d: parent %q of %q is not in the list", lines[a.Code], a.Parent, a.Code)
		}
	}
	return l, nil
}

func (a Area) check() error {
	if !codePattern.MatchString(a.Code) {
		return fmt.Errorf("code %q must be 2 digits, optionally followed by one or two groups of 3", a.Code)
	}
	if a.NameVI == "" {
		return fmt.Errorf("area %q has no name_vi", a.Code)
	}
	switch a.Level {
	case Province:
		if a.Parent != "" {
			return fmt.Errorf("province %q cannot have a parent", a.Code)
		}
	case District, Commune:
		if a.Parent == "" {
			return fmt.Errorf("%s %q needs a parent", a.Level, a.Code)
		}
	default:
		return fmt.Errorf("level %q of %q must be province, district or commune", a.Level, a.Code)
	}
	return nil
}

// All returns the areas in file order.
func (l *List) All() []Area { return slices.Clone(l.areas) }

// Lookup returns the area with code, or an error matching ErrUnknown.
func (l *List) Lookup(code string) (Area, error) {
	i, ok := l.byCode[code]
	if !ok {
		return Area{}, fmt.Errorf("%w: %q", ErrUnknown, code)
	}
	return l.areas[i], nil
}

// Within reports whether code is ancestor itself or lies under it.
func (l *List) Within(code, ancestor string) bool {
	for seen := 0; code != "" && seen <= len(l.areas); seen++ {
		if code == ancestor {
			return true
		}
		i, ok := l.byCode[code]
		if !ok {
			return false
		}
		code = l.areas[i].Parent
	}
	return false
}
