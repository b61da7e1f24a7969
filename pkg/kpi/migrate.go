package kpi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
	"text/template"
	"time"

	"go.uber.org/zap"

	"github.com/iochub/iochub/pkg/chstore"
)

// Store runs the statements the catalog and the engine build, in one
// database; *chstore.Store is one.
type Store interface {
	Querier
	Exec(ctx context.Context, query string, args ...any) error
	QueryRow(ctx context.Context, query string, args ...any) chstore.Scanner
	Insert(ctx context.Context, table string, cols []string, rows [][]any) error
	Columns(ctx context.Context, table string) ([]chstore.Column, error)
	TableExists(ctx context.Context, table string) (bool, error)
	UnmergedPartitions(ctx context.Context, table string) ([]string, error)
	Optimize(ctx context.Context, table, partitionID string) error
	// The store's layout (one server, or a cluster: decision 0014).
	CreateTable(ctx context.Context, table, create string) error
	DropTable(ctx context.Context, table string) error
	Local(table string) string
	OnCluster() string
	Sharded() bool
	WithInsertSettings(ctx context.Context) context.Context
}

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
func (c *Catalog) Migrate(ctx context.Context, st Store) ([]string, error) {
	database := st.Database()
	if err := st.CreateTable(ctx, StateTable, "CREATE TABLE IF NOT EXISTS "+st.Qualified(StateTable)+
		" (name String, hash String, state String, version UInt64, at DateTime('UTC')) ENGINE = MergeTree() ORDER BY (name, version)"); err != nil {
		return nil, fmt.Errorf("rollup state: %w", err)
	}
	states, err := rollupStates(ctx, st)
	if err != nil {
		return nil, err
	}
	var toFill []string
	for _, r := range c.Rollups {
		exists, err := st.TableExists(ctx, r.Table)
		if err != nil {
			return nil, fmt.Errorf("rollup %s: %w", r.Table, err)
		}
		create, sel, hash, err := r.expanded(database)
		if err != nil {
			return nil, err
		}
		// The view reads the inserts into the raw table where they are
		// written (its local table in a sharded layout) into the rollup's
		// table beside it.
		view := func() error {
			if ok, err := st.TableExists(ctx, r.Table+"_mv"); err != nil || ok {
				return err
			}
			local := regexp.MustCompile(regexp.QuoteMeta(chstore.Quote(database)+"."+r.Source)+`\b`).
				ReplaceAllLiteralString(sel, chstore.Quote(database)+"."+chstore.Quote(st.Local(r.Source)))
			if err := st.Exec(ctx, fmt.Sprintf("CREATE MATERIALIZED VIEW IF NOT EXISTS %s%s TO %s AS %s",
				st.Qualified(r.Table+"_mv"), st.OnCluster(), st.Qualified(st.Local(r.Table)), local)); err != nil {
				return fmt.Errorf("rollup %s: create view: %w", r.Table, err)
			}
			return nil
		}
		if state, known := states[r.Table]; known && state.hash == hash && state.state == stateComplete && exists {
			if err := view(); err != nil { // up to date; make sure its view is there
				return nil, err
			}
			continue
		}
		// New, changed, a fill that did not finish, or built by a version
		// that kept no state (whose definition cannot be told): drop it and
		// make it anew; Fill fills it from the raw rows.
		for _, t := range []string{r.Table + "_mv", r.Table} {
			if err := st.DropTable(ctx, t); err != nil {
				return nil, fmt.Errorf("rollup %s: %w", r.Table, err)
			}
		}
		if err := st.CreateTable(ctx, r.Table, create); err != nil {
			return nil, fmt.Errorf("rollup %s: %w", r.Table, err)
		}
		if err := view(); err != nil {
			return nil, err
		}
		if err := recordState(ctx, st, r.Table, hash, stateFilling); err != nil {
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
func (c *Catalog) Fill(ctx context.Context, st Store, names []string, log *zap.Logger) error {
	database := st.Database()
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
		cols, err := st.Columns(ctx, r.Table)
		if err != nil {
			return fmt.Errorf("rollup %s: %w", r.Table, err)
		}
		colList := quotedList(cols)
		var raw uint64
		_ = st.QueryRow(ctx, "SELECT count() FROM "+st.Qualified(r.Source)).Scan(&raw)
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
				if err := st.QueryRow(ctx, "SELECT read_rows FROM system.processes WHERE query_id = @q", chstore.Named("q", queryID)).Scan(&read); err == nil {
					log.Info("filling rollup", zap.String("rollup", r.Table), zap.Uint64("raw_rows_read", read), zap.Uint64("raw_rows", raw))
				}
			}
		}()
		fill := fmt.Sprintf("INSERT INTO %s (%s) SELECT %s FROM (%s)", st.Qualified(r.Table), colList, colList, sel)
		err = st.Exec(st.WithInsertSettings(chstore.WithQueryID(ctx, queryID)), fill)
		close(done)
		if err != nil {
			return fmt.Errorf("rollup %s: fill from %s: %w", r.Table, r.Source, err)
		}
		if err := recordState(ctx, st, r.Table, hash, stateComplete); err != nil {
			return err
		}
		log.Info("rollup filled", zap.String("rollup", r.Table), zap.Uint64("raw_rows", raw), zap.Duration("took", time.Since(start)))
	}
	return nil
}

// MigrateAndFill is Migrate then Fill, for tools and tests.
func (c *Catalog) MigrateAndFill(ctx context.Context, st Store, log *zap.Logger) error {
	names, err := c.Migrate(ctx, st)
	if err != nil {
		return err
	}
	return c.Fill(ctx, st, names, log)
}

type rollupState struct{ hash, state string }

func rollupStates(ctx context.Context, st Store) (map[string]rollupState, error) {
	rows, err := st.Query(ctx, "SELECT name, argMax(hash, version), argMax(state, version) FROM "+st.Qualified(StateTable)+" GROUP BY name")
	if err != nil {
		return nil, fmt.Errorf("rollup state: %w", err)
	}
	defer rows.Close()
	out := map[string]rollupState{}
	for rows.Next() {
		var name string
		var state rollupState
		if err := rows.Scan(&name, &state.hash, &state.state); err != nil {
			return nil, fmt.Errorf("rollup state: %w", err)
		}
		out[name] = state
	}
	return out, rows.Err()
}

// recordState appends a rollup's state; the latest version is the one in force.
func recordState(ctx context.Context, st Store, name, hash, state string) error {
	now := time.Now()
	err := st.Insert(ctx, StateTable, []string{"name", "hash", "state", "version", "at"},
		[][]any{{name, hash, state, uint64(now.UnixNano()), now.UTC()}})
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
	t, err := template.New("").Funcs(template.FuncMap{"db": func() string { return chstore.Quote(database) }}).Parse(text)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	if err := t.Execute(&b, nil); err != nil {
		return "", err
	}
	return b.String(), nil
}

// Compact merges, with OPTIMIZE … FINAL, every partition of a
// ReplacingMergeTree rollup that has more than one active part or a part
// never merged (an INSERT does not replace rows within itself), so that
// each entity is one row again and the FINAL reads of the KPI queries merge
// little (docs/decisions/0004). Values are the same before and after; only
// the time to read them changes. It returns how many partitions it merged.
func (c *Catalog) Compact(ctx context.Context, st Store) (int, error) {
	n := 0
	if st.Sharded() {
		return 0, nil // each shard's parts are its own; left to the servers' merges (decision 0014)
	}
	for _, r := range c.Rollups {
		if !strings.Contains(r.Create, "ReplacingMergeTree") {
			continue
		}
		parts, err := st.UnmergedPartitions(ctx, r.Table)
		if err != nil {
			return n, fmt.Errorf("rollup %s: %w", r.Table, err)
		}
		for _, p := range parts {
			if err := st.Optimize(ctx, r.Table, p); err != nil {
				return n, fmt.Errorf("rollup %s: compact: %w", r.Table, err)
			}
			n++
		}
	}
	return n, nil
}
