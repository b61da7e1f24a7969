package kpi

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/iochub/iochub/pkg/chstore"
)

// ErrRepairSharded is returned by Repair on a sharded layout, whose rollups
// it cannot yet rebuild (decision 0014).
var ErrRepairSharded = errors.New("rollup repair: not on a sharded layout")

var partitionByRE = regexp.MustCompile(`(?is)\bPARTITION\s+BY\s+(.+?)\s+ORDER\s+BY\b`)

// Repair rebuilds, from the raw rows, every partition of the rollups of the
// raw table raw that rows with event times in [from, to] reach.
//
// A rollup's materialized view writes its rows after the raw rows are
// written, in the same INSERT: an insert that failed in between (a replica's
// quorum answering "unknown status", a server killed) leaves raw rows whose
// rollup rows are missing, and the aggregator's retry finds the raw rows
// and skips them. It calls Repair for those rows (decision 0014). Each
// partition is rebuilt into a table beside the rollup and swapped in with
// REPLACE PARTITION, so readers see the old partition or the new one,
// never a gap; rebuilding is exact whatever the view wrote before.
//
// Nothing else may insert into raw meanwhile (the aggregator holds the
// table's lock): a view's rows written between the rebuild and the swap
// would be lost. fresh is called before each swap; its error stops the
// repair, to be run again.
func (c *Catalog) Repair(ctx context.Context, st Store, raw string, from, to time.Time, fresh func() error) error {
	if st.Sharded() {
		return ErrRepairSharded
	}
	database := st.Database()
	for i := range c.Rollups {
		r := &c.Rollups[i]
		if r.Source != raw {
			continue
		}
		if err := c.repairRollup(ctx, st, database, r, from, to, fresh); err != nil {
			return fmt.Errorf("rollup %s: repair: %w", r.Table, err)
		}
	}
	return nil
}

func (c *Catalog) repairRollup(ctx context.Context, st Store, database string, r *Rollup, from, to time.Time, fresh func() error) error {
	create, sel, _, err := r.expanded(database)
	if err != nil {
		return err
	}
	m := partitionByRE.FindStringSubmatch(create)
	if m == nil {
		return fmt.Errorf("its CREATE has no PARTITION BY … ORDER BY")
	}
	part := m[1]
	source := regexp.MustCompile(regexp.QuoteMeta(chstore.Quote(database)+"."+r.Source) + `\b`)
	// The rollup's rows from the raw rows of those event times only: the
	// partitions they reach are the ones to rebuild.
	window := source.ReplaceAllLiteralString(sel, fmt.Sprintf("(SELECT * FROM %s WHERE event_time >= toDateTime(%d) AND event_time <= toDateTime(%d))",
		st.Qualified(r.Source), from.Unix(), to.Unix()))
	tmp := r.Table + "_repair"
	tmpCreate := regexp.MustCompile(regexp.QuoteMeta(chstore.Quote(database)+"."+r.Table)+`\b`).
		ReplaceAllLiteralString(create, st.Qualified(tmp))
	if tmpCreate == create {
		return fmt.Errorf("its CREATE does not name {{db}}.%s", r.Table)
	}
	drop := func() error { return st.Exec(ctx, "DROP TABLE IF EXISTS "+st.Qualified(tmp)) }
	if err := drop(); err != nil { // one left by a repair that stopped half-way
		return err
	}
	// The table beside the rollup is this server's own: a rollup replicated
	// on a cluster takes its partitions all the same.
	if err := st.Exec(ctx, tmpCreate); err != nil {
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	defer func() { _ = drop() }()
	cols, err := st.Columns(ctx, r.Table)
	if err != nil {
		return err
	}
	colList := quotedList(cols)
	fill := fmt.Sprintf("INSERT INTO %s (%s) SELECT %s FROM (%s) WHERE (%s) IN (SELECT %s FROM (%s))",
		st.Qualified(tmp), colList, colList, sel, part, part, window)
	if err := st.Exec(ctx, fill); err != nil {
		return fmt.Errorf("rebuild: %w", err)
	}
	rows, err := st.Query(ctx, "SELECT DISTINCT partition FROM system.parts WHERE database = @db AND table = @t AND active",
		chstore.Named("db", database), chstore.Named("t", tmp))
	if err != nil {
		return err
	}
	var parts []string
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			rows.Close()
			return err
		}
		parts = append(parts, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, p := range parts {
		if err := fresh(); err != nil {
			return err
		}
		if err := st.Exec(ctx, fmt.Sprintf("ALTER TABLE %s REPLACE PARTITION %s FROM %s", st.Qualified(r.Table), p, st.Qualified(tmp))); err != nil {
			return fmt.Errorf("replace partition %s: %w", p, err)
		}
	}
	return nil
}

// quotedList is the names of cols, quoted, comma-separated.
func quotedList(cols []chstore.Column) string {
	quoted := make([]string, len(cols))
	for i, c := range cols {
		quoted[i] = chstore.Quote(c.Name)
	}
	return strings.Join(quoted, ", ")
}
