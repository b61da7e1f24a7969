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

// WithSettings runs the statements made with ctx with the server settings s.
func WithSettings(ctx context.Context, s Settings) context.Context {
	return clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings(s)))
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
	if err := s.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+Quote(name)); err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	return nil
}

// DropDatabase drops the database name and every table in it.
func (s *Store) DropDatabase(ctx context.Context, name string) error {
	if err := s.Exec(ctx, "DROP DATABASE IF EXISTS "+Quote(name)); err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	return nil
}
