package chstore

import (
	"context"
	"fmt"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Rows is the result of Query: Next and Scan row by row, then Err; Close it
// always.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close() error
}

// Scanner is the result of QueryRow: its error comes with Scan.
type Scanner interface {
	Scan(dest ...any) error
}

// Named is a named parameter of a statement, written @name in its text.
func Named(name string, value any) any { return clickhouse.Named(name, value) }

// Settings are per-statement server settings, such as
// enable_optimize_predicate_expression.
type Settings map[string]any

// WithQueryID runs the statements made with ctx under query id id (so that
// system.processes can tell how far they are).
func WithQueryID(ctx context.Context, id string) context.Context {
	return clickhouse.Context(ctx, clickhouse.WithQueryID(id))
}

type settingsKey struct{}

// WithSettings runs the statements made with ctx with the server settings s,
// beside those ctx has already (s wins where both set one).
func WithSettings(ctx context.Context, s Settings) context.Context {
	merged := clickhouse.Settings{}
	if had, ok := ctx.Value(settingsKey{}).(clickhouse.Settings); ok {
		for k, v := range had {
			merged[k] = v
		}
	}
	for k, v := range s {
		merged[k] = v
	}
	return clickhouse.Context(context.WithValue(ctx, settingsKey{}, merged), clickhouse.WithSettings(merged))
}

// Exec runs a statement that returns no rows: DDL, INSERT … SELECT,
// OPTIMIZE. Connection failures match ErrUnavailable.
func (s *Store) Exec(ctx context.Context, query string, args ...any) error {
	if err := s.conn.Exec(ctx, query, args...); err != nil {
		return classify(err)
	}
	return nil
}

// Query runs a statement that returns rows. Connection failures match
// ErrUnavailable.
func (s *Store) Query(ctx context.Context, query string, args ...any) (Rows, error) {
	rows, err := s.conn.Query(ctx, query, args...)
	if err != nil {
		return nil, classify(err)
	}
	return classifiedRows{rows}, nil
}

// QueryRow runs a statement that returns one row; its error comes with Scan.
func (s *Store) QueryRow(ctx context.Context, query string, args ...any) Scanner {
	return classifiedRow{s.conn.QueryRow(ctx, query, args...)}
}

type classifiedRows struct{ driver.Rows }

func (r classifiedRows) Err() error { return classify(r.Rows.Err()) }

type classifiedRow struct{ driver.Row }

func (r classifiedRow) Scan(dest ...any) error { return classify(r.Row.Scan(dest...)) }

// CreateDatabase creates the database name if it does not exist.
func (s *Store) CreateDatabase(ctx context.Context, name string) error {
	if s.cluster != nil { // ON CLUSTER waits for every server: not when it is there already
		var n uint64
		if err := s.QueryRow(ctx, "SELECT count() FROM system.databases WHERE name = @db", Named("db", name)).Scan(&n); err != nil {
			return fmt.Errorf("create database %s: %w", name, err)
		}
		if n > 0 {
			return nil
		}
	}
	if err := s.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+Quote(name)+s.OnCluster()); err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	return nil
}

// DropDatabase drops the database name and every table in it.
func (s *Store) DropDatabase(ctx context.Context, name string) error {
	if err := s.Exec(ctx, "DROP DATABASE IF EXISTS "+Quote(name)+s.OnCluster()); err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	return nil
}
