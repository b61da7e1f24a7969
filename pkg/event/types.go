package event

import (
	"fmt"
	"strconv"
	"strings"
)

// TypePrefix starts every iochub event type.
const TypePrefix = "vn.ioc."

// TypeName is a parsed event type vn.ioc.<sector>.<name>.v<major>.
type TypeName struct {
	Sector string
	Name   string
	Major  int
}

// ParseType parses vn.ioc.<sector>.<name>.v<major>. Sector and name are lower
// case letters, digits and underscores.
func ParseType(t string) (TypeName, error) {
	bad := func(why string) (TypeName, error) {
		return TypeName{}, &AttributeError{"type", fmt.Sprintf("%s: want vn.ioc.<sector>.<name>.v<major>, got %q", why, t), RuleFormat}
	}
	rest, ok := strings.CutPrefix(t, TypePrefix)
	if !ok {
		return bad("wrong prefix")
	}
	parts := strings.Split(rest, ".")
	if len(parts) != 3 {
		return bad("wrong number of parts")
	}
	if !isIdent(parts[0]) || !isIdent(parts[1]) {
		return bad("sector and name must be lower-case letters, digits and _")
	}
	v, ok := strings.CutPrefix(parts[2], "v")
	major, err := strconv.Atoi(v)
	if !ok || err != nil || major < 1 || strconv.Itoa(major) != v {
		return bad("major version must be v1, v2, ...")
	}
	return TypeName{Sector: parts[0], Name: parts[1], Major: major}, nil
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') {
			return false
		}
	}
	return true
}

// String is the CloudEvents type, vn.ioc.<sector>.<name>.v<major>.
func (t TypeName) String() string { return fmt.Sprintf("vn.ioc.%s.%s.v%d", t.Sector, t.Name, t.Major) }

// Subject is the NATS subject of events of this type, ioc.<sector>.<name>.v<major>.
func (t TypeName) Subject() string { return fmt.Sprintf("ioc.%s.%s.v%d", t.Sector, t.Name, t.Major) }

// DLQSubject is the dead-letter subject, dlq.<sector>.<name>.v<major>.
func (t TypeName) DLQSubject() string { return fmt.Sprintf("dlq.%s.%s.v%d", t.Sector, t.Name, t.Major) }

// Table is the ClickHouse raw table, <sector>_<name>_v<major>.
func (t TypeName) Table() string { return fmt.Sprintf("%s_%s_v%d", t.Sector, t.Name, t.Major) }

// SchemaPath is the schema's path in the schemas package, <sector>/<name>.v<major>.json.
func (t TypeName) SchemaPath() string {
	return fmt.Sprintf("%s/%s.v%d.json", t.Sector, t.Name, t.Major)
}

// TypeFromSubject parses a NATS subject ioc.<sector>.<name>.v<major> (or its
// dlq. twin) back into a TypeName.
func TypeFromSubject(subject string) (TypeName, error) {
	rest, ok := strings.CutPrefix(subject, "ioc.")
	if !ok {
		rest, ok = strings.CutPrefix(subject, "dlq.")
	}
	if !ok {
		return TypeName{}, fmt.Errorf("%w: subject %q is not ioc.<sector>.<name>.v<major>", ErrInvalid, subject)
	}
	return ParseType(TypePrefix + rest)
}

// TypeFromSchemaPath parses <sector>/<name>.v<major>.json.
func TypeFromSchemaPath(p string) (TypeName, error) {
	dir, file, ok := strings.Cut(p, "/")
	base, ok2 := strings.CutSuffix(file, ".json")
	if !ok || !ok2 {
		return TypeName{}, fmt.Errorf("%w: schema path %q is not <sector>/<name>.v<major>.json", ErrInvalid, p)
	}
	return ParseType(TypePrefix + dir + "." + base)
}
