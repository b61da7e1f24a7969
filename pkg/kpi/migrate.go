package kpi

import (
	"context"
	"fmt"
	"strings"
	"text/template"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Migrate creates each rollup table and the materialized view that keeps it
// current from its raw table. A rollup created over a raw table that already
// holds rows is filled from those rows once, before the aggregator starts
// writing (call Migrate before it runs; see docs/decisions/0004).
func (c *Catalog) Migrate(ctx context.Context, conn driver.Conn, database string) error {
	for _, r := range c.Rollups {
		exists, err := tableExists(ctx, conn, database, r.Table)
		if err != nil {
			return err
		}
		create, err := expand(r.Create, database)
		if err != nil {
			return fmt.Errorf("rollup %s: %w", r.Table, err)
		}
		sel, err := expand(r.Select, database)
		if err != nil {
			return fmt.Errorf("rollup %s: %w", r.Table, err)
		}
		if err := conn.Exec(ctx, create); err != nil {
			return fmt.Errorf("rollup %s: create table: %w", r.Table, err)
		}
		qdb := "`" + database + "`."
		view := fmt.Sprintf("CREATE MATERIALIZED VIEW IF NOT EXISTS %s`%s_mv` TO %s`%s` AS %s", qdb, r.Table, qdb, r.Table, sel)
		if err := conn.Exec(ctx, view); err != nil {
			return fmt.Errorf("rollup %s: create view: %w", r.Table, err)
		}
		if exists {
			continue
		}
		cols, err := columns(ctx, conn, database, r.Table)
		if err != nil {
			return err
		}
		fill := fmt.Sprintf("INSERT INTO %s`%s` (%s) SELECT %s FROM (%s)", qdb, r.Table, cols, cols, sel)
		if err := conn.Exec(ctx, fill); err != nil {
			return fmt.Errorf("rollup %s: fill from %s: %w", r.Table, r.Source, err)
		}
	}
	return nil
}

func expand(text, database string) (string, error) {
	t, err := template.New("").Funcs(template.FuncMap{"db": func() string { return "`" + database + "`" }}).Parse(text)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	if err := t.Execute(&b, nil); err != nil {
		return "", err
	}
	return b.String(), nil
}

func tableExists(ctx context.Context, conn driver.Conn, database, table string) (bool, error) {
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = @db AND name = @t",
		namedArgs("db", database, "t", table)...).Scan(&n); err != nil {
		return false, fmt.Errorf("rollup %s: %w", table, err)
	}
	return n > 0, nil
}

func columns(ctx context.Context, conn driver.Conn, database, table string) (string, error) {
	rows, err := conn.Query(ctx, "SELECT name FROM system.columns WHERE database = @db AND table = @t", namedArgs("db", database, "t", table)...)
	if err != nil {
		return "", fmt.Errorf("rollup %s: columns: %w", table, err)
	}
	defer rows.Close()
	var cols []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return "", err
		}
		cols = append(cols, "`"+c+"`")
	}
	return strings.Join(cols, ", "), rows.Err()
}

func namedArgs(kv ...string) []any {
	var out []any
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, clickhouse.Named(kv[i], kv[i+1]))
	}
	return out
}

// Compact merges, with OPTIMIZE … FINAL, every partition of a
// ReplacingMergeTree rollup that has more than one active part or a part
// never merged (an INSERT does not replace rows within itself), so that
// each entity is one row again and the FINAL reads of the KPI queries merge
// little (docs/decisions/0004). Values are the same before and after; only
// the time to read them changes. It returns how many partitions it merged.
func (c *Catalog) Compact(ctx context.Context, conn driver.Conn, database string) (int, error) {
	n := 0
	for _, r := range c.Rollups {
		if !strings.Contains(r.Create, "ReplacingMergeTree") {
			continue
		}
		rows, err := conn.Query(ctx, "SELECT partition_id FROM system.parts WHERE database = @db AND table = @t AND active GROUP BY partition_id HAVING count() > 1 OR min(level) = 0",
			namedArgs("db", database, "t", r.Table)...)
		if err != nil {
			return n, fmt.Errorf("rollup %s: parts: %w", r.Table, err)
		}
		var parts []string
		for rows.Next() {
			var p string
			if err := rows.Scan(&p); err != nil {
				rows.Close()
				return n, err
			}
			parts = append(parts, p)
		}
		rows.Close()
		for _, p := range parts {
			q := fmt.Sprintf("OPTIMIZE TABLE `%s`.`%s` PARTITION ID '%s' FINAL", database, r.Table, strings.ReplaceAll(p, "'", ""))
			if err := conn.Exec(ctx, q); err != nil {
				return n, fmt.Errorf("rollup %s: compact partition %s: %w", r.Table, p, err)
			}
			n++
		}
	}
	return n, nil
}
