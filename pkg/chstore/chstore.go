// Package chstore is iochub's ClickHouse layer: the raw tables derived from
// the event schemas (one per type and major version), their migrations, and
// the batch writes the aggregator makes.
//
// DDL and queries run on ClickHouse 18.16 and on current releases: MergeTree()
// with PARTITION BY and ORDER BY, no LowCardinality, DateTime64, Map, JSON or
// TTL, and every INSERT names its columns.
package chstore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// ErrUnavailable is matched by errors that mean ClickHouse could not be
// reached or dropped the connection: worth retrying, never a reason to
// dead-letter an event.
var ErrUnavailable = errors.New("clickhouse unavailable")

// Store is a connection pool to one ClickHouse database.
type Store struct {
	conn     driver.Conn
	database string
}

// Open connects to the DSN (clickhouse://host:9000/database?...) and checks
// the server answers. The database need not exist yet: Migrate creates it.
func Open(ctx context.Context, dsn string) (*Store, error) {
	opts, err := clickhouse.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("clickhouse dsn: %w", err)
	}
	db := opts.Auth.Database
	if db == "" {
		db = "default"
	}
	// Connect to "default" so a missing database is created by Migrate, not an error here.
	opts.Auth.Database = "default"
	if opts.DialTimeout == 0 || opts.DialTimeout > 5*time.Second {
		opts.DialTimeout = 5 * time.Second
	}
	if opts.MaxOpenConns == 0 {
		opts.MaxOpenConns = 8
	}
	conn, err := clickhouse.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("clickhouse open: %w", err)
	}
	s := &Store{conn: conn, database: db}
	if err := s.Ping(ctx); err != nil {
		conn.Close()
		return nil, err
	}
	return s, nil
}

// Database is the database the store writes to.
func (s *Store) Database() string { return s.database }

// Conn is the underlying driver connection, for queries this package does not wrap.
func (s *Store) Conn() driver.Conn { return s.conn }

// Close closes the pool.
func (s *Store) Close() error { return s.conn.Close() }

// Ping checks the server answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.conn.Ping(ctx); err != nil {
		return fmt.Errorf("clickhouse ping: %w", classify(err))
	}
	return nil
}

// Qualified is db.table with both quoted.
func (s *Store) Qualified(table string) string { return quote(s.database) + "." + quote(table) }

func quote(ident string) string { return "`" + strings.ReplaceAll(ident, "`", "\\`") + "`" }

// Insert writes rows into table in one INSERT naming cols. Rows are atomic
// per partition of the table; the caller makes retries idempotent (see
// ExistingSeqs).
func (s *Store) Insert(ctx context.Context, table string, cols []string, rows [][]any) (err error) {
	if len(rows) == 0 {
		return nil
	}
	q := make([]string, len(cols))
	for i, c := range cols {
		q[i] = quote(c)
	}
	b, err := s.conn.PrepareBatch(ctx, "INSERT INTO "+s.Qualified(table)+" ("+strings.Join(q, ", ")+")")
	if err != nil {
		return fmt.Errorf("insert into %s: %w", table, classify(err))
	}
	defer func() {
		if err != nil {
			_ = b.Abort()
		}
	}()
	for i, r := range rows {
		if err := b.Append(r...); err != nil {
			return fmt.Errorf("insert into %s: row %d: %w", table, i, err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("insert into %s: %w", table, classify(err))
	}
	return nil
}

// ExistingSeqs reports which of seqs (JetStream stream sequences) are already
// in table. from and to bound the event_time of those rows, so the server
// reads only the partitions that can hold them.
func (s *Store) ExistingSeqs(ctx context.Context, table string, seqs []uint64, from, to time.Time) (map[uint64]bool, error) {
	found := map[uint64]bool{}
	if len(seqs) == 0 {
		return found, nil
	}
	var in strings.Builder
	for i, seq := range seqs {
		if i > 0 {
			in.WriteByte(',')
		}
		fmt.Fprintf(&in, "%d", seq)
	}
	q := fmt.Sprintf("SELECT stream_seq FROM %s WHERE event_time >= toDateTime(%d) AND event_time <= toDateTime(%d) AND stream_seq IN (%s)",
		s.Qualified(table), from.Unix(), to.Unix(), in.String())
	rows, err := s.conn.Query(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("existing rows of %s: %w", table, classify(err))
	}
	defer rows.Close()
	for rows.Next() {
		var seq uint64
		if err := rows.Scan(&seq); err != nil {
			return nil, fmt.Errorf("existing rows of %s: %w", table, err)
		}
		found[seq] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("existing rows of %s: %w", table, classify(err))
	}
	return found, nil
}

// Count returns the number of rows of table (for tests, tools and the bench).
func (s *Store) Count(ctx context.Context, table string) (uint64, error) {
	var n uint64
	if err := s.conn.QueryRow(ctx, "SELECT count() FROM "+s.Qualified(table)).Scan(&n); err != nil {
		return 0, fmt.Errorf("count %s: %w", table, classify(err))
	}
	return n, nil
}

// classify wraps connection-level failures with ErrUnavailable. A server
// exception (bad data, unknown column) stays as it is: retrying it as-is
// would fail again.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var ex *clickhouse.Exception
	if errors.As(err, &ex) {
		switch ex.Code {
		case 159, 209, 210, 241, 242, 252: // timeouts, socket errors, memory, read-only, too many parts
			return fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		return err
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, clickhouse.ErrAcquireConnTimeout) ||
		errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "EOF") {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return err
}

// TableSize is one table's active parts.
type TableSize struct {
	Rows  uint64 `json:"rows"`
	Bytes uint64 `json:"bytes"`
}

// TableSizes reads system.parts for every table of the database.
func (s *Store) TableSizes(ctx context.Context) (map[string]TableSize, error) {
	rows, err := s.conn.Query(ctx, "SELECT table, sum(rows), sum(bytes_on_disk) FROM system.parts WHERE active AND database = ? GROUP BY table", s.database)
	if err != nil {
		return nil, fmt.Errorf("table sizes: %w", classify(err))
	}
	defer rows.Close()
	out := map[string]TableSize{}
	for rows.Next() {
		var t string
		var ts TableSize
		if err := rows.Scan(&t, &ts.Rows, &ts.Bytes); err != nil {
			return nil, fmt.Errorf("table sizes: %w", err)
		}
		out[t] = ts
	}
	return out, rows.Err()
}
