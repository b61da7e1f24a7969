package kpi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"text/template"
	"time"

	"go.uber.org/zap"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// StateTable records, per rollup, the definition it was built from and
// whether it was filled from the raw rows to the end.
const StateTable = "iochub_rollups"

const (
	stateFilling  = "filling"
	stateComplete = "complete"
)

// Migrate creates each rollup table and the materialized view that keeps it
// current from its raw table; it is quick, and runs inside the start
// deadline. A rollup that is new, whose definition changed (it is dropped
// and made anew), or whose fill never finished is left to be filled by
// Fill: it returns their names. Call Fill before the aggregator writes.
func (c *Catalog) Migrate(ctx context.Context, conn driver.Conn, database string) ([]string, error) {
	qdb := "`" + database + "`."
	if err := conn.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+qdb+StateTable+
		" (name String, hash String, state String, version UInt64, at DateTime('UTC')) ENGINE = MergeTree() ORDER BY (name, version)"); err != nil {
		return nil, fmt.Errorf("rollup state: %w", err)
	}
	states, err := rollupStates(ctx, conn, database)
	if err != nil {
		return nil, err
	}
	var toFill []string
	for _, r := range c.Rollups {
		exists, err := tableExists(ctx, conn, database, r.Table)
		if err != nil {
			return nil, err
		}
		create, sel, hash, err := r.expanded(database)
		if err != nil {
			return nil, err
		}
		view := func() error {
			if err := conn.Exec(ctx, fmt.Sprintf("CREATE MATERIALIZED VIEW IF NOT EXISTS %s`%s_mv` TO %s`%s` AS %s", qdb, r.Table, qdb, r.Table, sel)); err != nil {
				return fmt.Errorf("rollup %s: create view: %w", r.Table, err)
			}
			return nil
		}
		if st, known := states[r.Table]; known && st.hash == hash && st.state == stateComplete && exists {
			if err := view(); err != nil { // up to date; make sure its view is there
				return nil, err
			}
			continue
		}
		// New, changed, a fill that did not finish, or built by a version
		// that kept no state (whose definition cannot be told): drop it and
		// make it anew; Fill fills it from the raw rows.
		for _, q := range []string{"DROP TABLE IF EXISTS " + qdb + "`" + r.Table + "_mv`", "DROP TABLE IF EXISTS " + qdb + "`" + r.Table + "`"} {
			if err := conn.Exec(ctx, q); err != nil {
				return nil, fmt.Errorf("rollup %s: %w", r.Table, err)
			}
		}
		if err := conn.Exec(ctx, create); err != nil {
			return nil, fmt.Errorf("rollup %s: create table: %w", r.Table, err)
		}
		if err := view(); err != nil {
			return nil, err
		}
		if err := recordState(ctx, conn, database, r.Table, hash, stateFilling); err != nil {
			return nil, err
		}
		toFill = append(toFill, r.Table)
	}
	return toFill, nil
}

// Fill fills the named rollups (from Migrate) from the raw rows already
// stored, logging progress, and records each complete only once its fill
// finished: a hub killed during a fill fills the rollup again, from an empty
// table, at its next start. It must run before the aggregator writes, so no
// row reaches a rollup both through its view and through the fill.
func (c *Catalog) Fill(ctx context.Context, conn driver.Conn, database string, names []string, log *zap.Logger) error {
	qdb := "`" + database + "`."
	for _, name := range names {
		var r *Rollup
		for i := range c.Rollups {
			if c.Rollups[i].Table == name {
				r = &c.Rollups[i]
			}
		}
		if r == nil {
			return fmt.Errorf("rollup %s: not in the catalog", name)
		}
		_, sel, hash, err := r.expanded(database)
		if err != nil {
			return err
		}
		cols, err := columns(ctx, conn, database, r.Table)
		if err != nil {
			return err
		}
		var raw uint64
		_ = conn.QueryRow(ctx, "SELECT count() FROM "+qdb+"`"+r.Source+"`").Scan(&raw)
		log.Info("filling rollup from its raw table", zap.String("rollup", r.Table), zap.String("raw", r.Source), zap.Uint64("raw_rows", raw))
		start := time.Now()
		queryID := fmt.Sprintf("iochub-fill-%s-%d", r.Table, start.UnixNano())
		done := make(chan struct{})
		go func() { // logs progress until the fill ends; exits on done
			t := time.NewTicker(5 * time.Second)
			defer t.Stop()
			for {
				select {
				case <-done:
					return
				case <-t.C:
				}
				var read uint64
				if err := conn.QueryRow(ctx, "SELECT read_rows FROM system.processes WHERE query_id = @q", clickhouse.Named("q", queryID)).Scan(&read); err == nil {
					log.Info("filling rollup", zap.String("rollup", r.Table), zap.Uint64("raw_rows_read", read), zap.Uint64("raw_rows", raw))
				}
			}
		}()
		fill := fmt.Sprintf("INSERT INTO %s`%s` (%s) SELECT %s FROM (%s)", qdb, r.Table, cols, cols, sel)
		err = conn.Exec(clickhouse.Context(ctx, clickhouse.WithQueryID(queryID)), fill)
		close(done)
		if err != nil {
			return fmt.Errorf("rollup %s: fill from %s: %w", r.Table, r.Source, err)
		}
		if err := recordState(ctx, conn, database, r.Table, hash, stateComplete); err != nil {
			return err
		}
		log.Info("rollup filled", zap.String("rollup", r.Table), zap.Uint64("raw_rows", raw), zap.Duration("took", time.Since(start)))
	}
	return nil
}

// MigrateAndFill is Migrate then Fill, for tools and tests.
func (c *Catalog) MigrateAndFill(ctx context.Context, conn driver.Conn, database string, log *zap.Logger) error {
	names, err := c.Migrate(ctx, conn, database)
	if err != nil {
		return err
	}
	return c.Fill(ctx, conn, database, names, log)
}

type rollupState struct{ hash, state string }

func rollupStates(ctx context.Context, conn driver.Conn, database string) (map[string]rollupState, error) {
	rows, err := conn.Query(ctx, "SELECT name, argMax(hash, version), argMax(state, version) FROM `"+database+"`."+StateTable+" GROUP BY name")
	if err != nil {
		return nil, fmt.Errorf("rollup state: %w", err)
	}
	defer rows.Close()
	out := map[string]rollupState{}
	for rows.Next() {
		var name string
		var st rollupState
		if err := rows.Scan(&name, &st.hash, &st.state); err != nil {
			return nil, fmt.Errorf("rollup state: %w", err)
		}
		out[name] = st
	}
	return out, rows.Err()
}

// recordState appends a rollup's state; the latest version is the one in force.
func recordState(ctx context.Context, conn driver.Conn, database, name, hash, state string) error {
	now := time.Now()
	b, err := conn.PrepareBatch(ctx, fmt.Sprintf("INSERT INTO `%s`.%s (name, hash, state, version, at)", database, StateTable))
	if err == nil {
		if err = b.Append(name, hash, state, uint64(now.UnixNano()), now.UTC()); err == nil {
			err = b.Send()
		} else {
			_ = b.Abort()
		}
	}
	if err != nil {
		return fmt.Errorf("rollup %s: record %s: %w", name, state, err)
	}
	return nil
}

// expanded is the rollup's CREATE and SELECT for database, and a hash of
// its definition (which does not depend on the database).
func (r *Rollup) expanded(database string) (create, sel, hash string, err error) {
	if create, err = expand(r.Create, database); err != nil {
		return "", "", "", fmt.Errorf("rollup %s: %w", r.Table, err)
	}
	if sel, err = expand(r.Select, database); err != nil {
		return "", "", "", fmt.Errorf("rollup %s: %w", r.Table, err)
	}
	sum := sha256.Sum256([]byte(r.Create + "\x00" + r.Select))
	return create, sel, hex.EncodeToString(sum[:8]), nil
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
