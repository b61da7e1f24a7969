package chstore

import (
	"context"
	"fmt"
	"strings"

	"github.com/iochub/iochub/pkg/schema"
)

// EnvelopeColumns start every raw table, in this order.
// traceparent is the W3C trace context extension on its own; extensions is
// every extension attribute (and dataschema) as one JSON object.
var EnvelopeColumns = []string{"event_id", "source", "subject", "event_time", "ingest_time", "stream_seq", "traceparent", "extensions"}

var envelopeTypes = []string{"String", "String", "String", "DateTime('UTC')", "DateTime('UTC')", "UInt64", "String", "String"}

// ColumnType is the ClickHouse type of a data column.
func ColumnType(c schema.Column) string {
	var t string
	switch c.Kind {
	case schema.KindInt:
		t = "Int64"
	case schema.KindFloat:
		t = "Float64"
	case schema.KindBool:
		t = "UInt8"
	case schema.KindDateTime:
		t = "DateTime('UTC')"
	case schema.KindDate:
		t = "Date"
	default:
		t = "String"
	}
	if c.Nullable {
		return "Nullable(" + t + ")"
	}
	return t
}

// Columns lists every column of the raw table of t: the envelope, then data.
func Columns(t *schema.Type) []string {
	cols := append([]string(nil), EnvelopeColumns...)
	for _, c := range t.Columns {
		cols = append(cols, c.Name)
	}
	return cols
}

// TableDDL is the CREATE TABLE of the raw table of t.
func (s *Store) TableDDL(t *schema.Type) string {
	var defs []string
	for i, c := range EnvelopeColumns {
		defs = append(defs, quote(c)+" "+envelopeTypes[i])
	}
	for _, c := range t.Columns {
		defs = append(defs, quote(c.Name)+" "+ColumnType(c))
	}
	return fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s (\n  %s\n) ENGINE = MergeTree() PARTITION BY toYYYYMM(event_time) ORDER BY (event_time, stream_seq)",
		s.Qualified(t.Name.Table()), strings.Join(defs, ",\n  "))
}

// Migrate creates the database and one raw table per type, and adds the
// columns a schema gained since the table was made (new optional fields; a
// breaking change is a new major version and so a new table).
func (s *Store) Migrate(ctx context.Context, reg *schema.Registry) error {
	if err := s.conn.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+quote(s.database)); err != nil {
		return fmt.Errorf("create database %s: %w", s.database, classify(err))
	}
	for _, t := range reg.Types() {
		if err := s.conn.Exec(ctx, s.TableDDL(t)); err != nil {
			return fmt.Errorf("create table %s: %w", t.Name.Table(), classify(err))
		}
		have, err := s.columnsOf(ctx, t.Name.Table())
		if err != nil {
			return err
		}
		type col struct{ name, typ string }
		var want []col
		for i, c := range EnvelopeColumns { // envelope columns added since (traceparent, extensions)
			want = append(want, col{c, envelopeTypes[i]})
		}
		for _, c := range t.Columns {
			want = append(want, col{c.Name, ColumnType(c)})
		}
		for _, c := range want {
			if _, ok := have[c.name]; ok {
				continue
			}
			q := fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s %s", s.Qualified(t.Name.Table()), quote(c.name), c.typ)
			if err := s.conn.Exec(ctx, q); err != nil {
				return fmt.Errorf("add column %s.%s: %w", t.Name.Table(), c.name, classify(err))
			}
		}
	}
	return nil
}

func (s *Store) columnsOf(ctx context.Context, table string) (map[string]string, error) {
	rows, err := s.conn.Query(ctx, "SELECT name, type FROM system.columns WHERE database = ? AND table = ?", s.database, table)
	if err != nil {
		return nil, fmt.Errorf("columns of %s: %w", table, classify(err))
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var name, typ string
		if err := rows.Scan(&name, &typ); err != nil {
			return nil, fmt.Errorf("columns of %s: %w", table, err)
		}
		out[name] = typ
	}
	return out, rows.Err()
}
