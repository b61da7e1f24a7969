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

// TableDDL is the CREATE TABLE of the raw table of t on a single server
// (Layout makes it for a cluster).
func (s *Store) TableDDL(t *schema.Type) string {
	var defs []string
	for i, c := range EnvelopeColumns {
		defs = append(defs, Quote(c)+" "+envelopeTypes[i])
	}
	for _, c := range t.Columns {
		defs = append(defs, Quote(c.Name)+" "+ColumnType(c))
	}
	return fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s (\n  %s\n) ENGINE = MergeTree() PARTITION BY toYYYYMM(event_time) ORDER BY (event_time, stream_seq)",
		s.Qualified(t.Name.Table()), strings.Join(defs, ",\n  "))
}

// Migrate creates the database and one raw table per type, and adds the
// columns a schema gained since the table was made (new optional fields; a
// breaking change is a new major version and so a new table).
func (s *Store) Migrate(ctx context.Context, reg *schema.Registry) error {
	if err := s.CreateDatabase(ctx, s.database); err != nil {
		return err
	}
	for _, t := range reg.Types() {
		if err := s.CreateTable(ctx, t.Name.Table(), s.TableDDL(t)); err != nil {
			return err
		}
		cols, err := s.Columns(ctx, t.Name.Table())
		if err != nil {
			return err
		}
		have := map[string]bool{}
		for _, c := range cols {
			have[c.Name] = true
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
			if have[c.name] {
				continue
			}
			if err := s.AddColumn(ctx, t.Name.Table(), c.name, c.typ); err != nil {
				return err
			}
		}
	}
	return nil
}

// Column is one column of a table, as system.columns lists it.
type Column struct{ Name, Type string }

// Columns lists the columns of table in the store's database, in their
// order (18.16 has no position column: the order system.columns lists
// them in); none if the table does not exist.
func (s *Store) Columns(ctx context.Context, table string) ([]Column, error) {
	rows, err := s.Query(ctx, "SELECT name, type FROM system.columns WHERE database = @db AND table = @t",
		Named("db", s.database), Named("t", table))
	if err != nil {
		return nil, fmt.Errorf("columns of %s: %w", table, err)
	}
	defer rows.Close()
	var out []Column
	for rows.Next() {
		var c Column
		if err := rows.Scan(&c.Name, &c.Type); err != nil {
			return nil, fmt.Errorf("columns of %s: %w", table, err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// TableExists reports whether table is in the store's database.
func (s *Store) TableExists(ctx context.Context, table string) (bool, error) {
	var n uint64
	if err := s.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = @db AND name = @t",
		Named("db", s.database), Named("t", table)).Scan(&n); err != nil {
		return false, fmt.Errorf("table %s: %w", table, err)
	}
	return n > 0, nil
}

// UnmergedPartitions lists the partitions of table with more than one
// active part or a part never merged: what Optimize would change.
func (s *Store) UnmergedPartitions(ctx context.Context, table string) ([]string, error) {
	rows, err := s.Query(ctx, "SELECT partition_id FROM system.parts WHERE database = @db AND table = @t AND active GROUP BY partition_id HAVING count() > 1 OR min(level) = 0",
		Named("db", s.database), Named("t", table))
	if err != nil {
		return nil, fmt.Errorf("parts of %s: %w", table, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			return nil, fmt.Errorf("parts of %s: %w", table, err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// Optimize merges one partition of table (by its partition_id) with
// OPTIMIZE … FINAL.
func (s *Store) Optimize(ctx context.Context, table, partitionID string) error {
	q := "OPTIMIZE TABLE " + s.Qualified(table) + " PARTITION ID " + literal(partitionID) + " FINAL"
	if err := s.Exec(ctx, q); err != nil {
		return fmt.Errorf("optimize %s partition %s: %w", table, partitionID, err)
	}
	return nil
}
