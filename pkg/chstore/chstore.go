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
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ClickHouse/ch-go/proto"
	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/ext"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/iochub/iochub/pkg/backoff"
)

// ErrUnavailable is matched by errors that mean ClickHouse could not be
// reached or dropped the connection: worth retrying, never a reason to
// dead-letter an event.
var ErrUnavailable = errors.New("clickhouse unavailable")

// ErrTooManyPartitions is matched by an insert ClickHouse refused because
// its rows span more partitions than max_partitions_per_insert_block
// (code 252 on releases since 19.x): a rejection of that insert's shape,
// not an outage. The same rows go in as several smaller inserts. A server
// with too many unmerged parts answers code 252 too; that one means "slow
// down" and matches ErrUnavailable.
var ErrTooManyPartitions = errors.New("clickhouse: too many partitions for one insert")

// Store is a connection pool to one ClickHouse database.
type Store struct {
	conn     driver.Conn
	database string

	cluster *Cluster           // nil on a single server
	opts    clickhouse.Options // of the DSN, for a connection to each server of a cluster

	mu        sync.Mutex
	unsettled map[string][]string    // by table: query ids of inserts whose outcome is unknown
	hosts     map[string]driver.Conn // a cluster's servers by host:port, opened when first asked (SettleAll)
}

// Open connects to the DSN (clickhouse://host:9000/database?...) and checks
// the server answers (and, WithCluster, that the cluster can hold the hub's
// tables). The database need not exist yet: Migrate creates it.
func Open(ctx context.Context, dsn string, options ...Option) (*Store, error) {
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
	s := &Store{conn: conn, database: db, opts: *opts, unsettled: map[string][]string{}}
	for _, o := range options {
		o(s)
	}
	if err := s.Ping(ctx); err != nil {
		conn.Close()
		return nil, err
	}
	if s.cluster != nil {
		if err := s.loadCluster(ctx); err != nil {
			conn.Close()
			return nil, err
		}
	}
	return s, nil
}

// Database is the database the store writes to.
func (s *Store) Database() string { return s.database }

// Close closes the pool.
func (s *Store) Close() error {
	s.mu.Lock()
	for _, c := range s.hosts {
		_ = c.Close()
	}
	s.hosts = nil
	s.mu.Unlock()
	return s.conn.Close()
}

// Ping checks the server answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.conn.Ping(ctx); err != nil {
		return fmt.Errorf("clickhouse ping: %w", classify(err))
	}
	return nil
}

// Qualified is db.table with both quoted.
func (s *Store) Qualified(table string) string { return Quote(s.database) + "." + Quote(table) }

// Quote is ident as a ClickHouse identifier, in back quotes: the one quoting
// function of the hub (database, table and column names).
func Quote(ident string) string {
	return "`" + strings.NewReplacer("\\", "\\\\", "`", "\\`").Replace(ident) + "`"
}

// Insert writes rows into table in one INSERT naming cols. Rows are atomic
// per partition of the table; the caller makes retries idempotent (see
// Existing, which waits for an insert that failed with an unknown outcome).
func (s *Store) Insert(ctx context.Context, table string, cols []string, rows [][]any) (err error) {
	if len(rows) == 0 {
		return nil
	}
	queryID := newQueryID()
	ctx = s.WithInsertSettings(WithQueryID(ctx, queryID))
	defer func() {
		if err != nil && errors.Is(err, ErrUnavailable) {
			s.mu.Lock()
			s.unsettled[table] = append(s.unsettled[table], queryID)
			s.mu.Unlock()
		}
	}()
	q := make([]string, len(cols))
	for i, c := range cols {
		q[i] = Quote(c)
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

// Identity is an event's identity, (source, id), and the second of its
// event time, which a resend of the same event carries too: the raw table is
// sorted by event time, so the lookup reads only the granules of those seconds.
type Identity struct {
	Source, ID string
	Time       int64 // Unix seconds of event_time
}

// Existing reports which of ids are already rows of table. It is the
// permanent identity check (docs/decisions/0005-permanent-identity.md): the
// raw table itself is the record of what was stored, so no second table can
// disagree with it. An insert into table that ended with an unknown outcome
// is waited for first, until the server no longer runs it: the answer never
// races an insert still being committed.
func (s *Store) Existing(ctx context.Context, table string, ids []Identity) (map[Identity]bool, error) {
	found := map[Identity]bool{}
	if len(ids) == 0 {
		return found, nil
	}
	if err := s.settle(ctx, table); err != nil {
		return nil, err
	}
	// The identities go as an external table, not as literals in the query:
	// the server neither parses them (6 times faster for a batch of 1000 on
	// 18.16) nor bounds them by max_query_size, and still reads only the
	// granules of their event seconds (a set from a subquery drives the
	// primary key).
	tbl, err := ext.NewTable("iochub_ids", ext.Column("s", "String"), ext.Column("id", "String"), ext.Column("t", "UInt32"))
	if err != nil {
		return nil, fmt.Errorf("existing rows of %s: %w", table, err)
	}
	for _, id := range ids {
		if err := tbl.Append(id.Source, id.ID, uint32(id.Time)); err != nil {
			return nil, fmt.Errorf("existing rows of %s: %w", table, err)
		}
	}
	// On a cluster the identities go to every shard (GLOBAL IN), and the
	// read sees every quorum insert (select_sequential_consistency).
	in := "IN"
	if s.Sharded() {
		in = "GLOBAL IN"
	}
	q := "SELECT source, event_id, toUInt32(event_time) FROM " + s.Qualified(table) +
		" WHERE event_time " + in + " (SELECT toDateTime(t) FROM iochub_ids) AND (source, event_id) " + in + " (SELECT s, id FROM iochub_ids)"
	if st := s.readSettings(); st != nil {
		ctx = WithSettings(ctx, st)
	}
	rows, err := s.conn.Query(clickhouse.Context(ctx, clickhouse.WithExternalTable(tbl)), q)
	if err != nil {
		return nil, fmt.Errorf("existing rows of %s: %w", table, classify(err))
	}
	defer rows.Close()
	for rows.Next() {
		var id Identity
		var t uint32
		if err := rows.Scan(&id.Source, &id.ID, &t); err != nil {
			return nil, fmt.Errorf("existing rows of %s: %w", table, err)
		}
		id.Time = int64(t)
		found[id] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("existing rows of %s: %w", table, classify(err))
	}
	return found, nil
}

// literal is s as a ClickHouse string literal.
func literal(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('\'')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\', '\'':
			b.WriteByte('\\')
			b.WriteByte(c)
		case 0:
			b.WriteString("\\0")
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('\'')
	return b.String()
}

// settle waits until no insert into table whose outcome is unknown (its
// connection failed) still runs on the server. system.processes lists a
// query until the server has committed or abandoned it.
func (s *Store) settle(ctx context.Context, table string) error {
	s.mu.Lock()
	ids := s.unsettled[table]
	s.mu.Unlock()
	if len(ids) == 0 {
		return nil
	}
	var in strings.Builder
	for i, id := range ids {
		if i > 0 {
			in.WriteByte(',')
		}
		in.WriteString(literal(id))
	}
	wait := backoff.Backoff{Min: 10 * time.Millisecond, Max: time.Second, NoJitter: true}
	for {
		var n uint64
		err := s.conn.QueryRow(ctx, "SELECT count() FROM system.processes WHERE query_id IN ("+in.String()+")").Scan(&n)
		if err != nil {
			return fmt.Errorf("inserts into %s still running: %w", table, classify(err))
		}
		if n == 0 {
			break
		}
		if !wait.Wait(ctx) {
			return fmt.Errorf("inserts into %s still running: %w", table, classify(ctx.Err()))
		}
	}
	s.mu.Lock()
	s.unsettled[table] = slices.DeleteFunc(s.unsettled[table], func(id string) bool { return slices.Contains(ids, id) })
	s.mu.Unlock()
	return nil
}

// SettleAll waits until no insert of the hub's into table, made by any
// process, still runs on the server: an aggregator that took the table's
// lock from another (decision 0013) looks up identities only after the
// other's last insert was committed or abandoned.
//
// On a cluster another aggregator's insert may run on any server: each is
// asked, over a connection of its own with the store's credentials.
func (s *Store) SettleAll(ctx context.Context, table string) error {
	q := "SELECT count() FROM system.processes WHERE query_id LIKE 'iochub-insert-%' AND position(query, " + literal("INSERT INTO "+s.Qualified(table)+" ") + ") = 1"
	conns := []driver.Conn{s.conn}
	if s.cluster != nil {
		var err error
		if conns, err = s.hostConns(); err != nil {
			return fmt.Errorf("inserts into %s still running: %w", table, err)
		}
	}
	wait := backoff.Backoff{Min: 10 * time.Millisecond, Max: time.Second, NoJitter: true}
	for {
		var n uint64
		for _, c := range conns {
			var running uint64
			if err := c.QueryRow(ctx, q).Scan(&running); err != nil {
				return fmt.Errorf("inserts into %s still running: %w", table, classify(err))
			}
			n += running
		}
		if n == 0 {
			return nil
		}
		if !wait.Wait(ctx) {
			return fmt.Errorf("inserts into %s still running: %w", table, classify(ctx.Err()))
		}
	}
}

// hostConns is a connection to each server of the cluster.
func (s *Store) hostConns() ([]driver.Conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hosts == nil {
		s.hosts = map[string]driver.Conn{}
	}
	out := make([]driver.Conn, 0, len(s.cluster.Hosts))
	for _, h := range s.cluster.Hosts {
		c, ok := s.hosts[h]
		if !ok {
			o := s.opts
			o.Addr, o.MaxOpenConns, o.MaxIdleConns = []string{h}, 2, 1
			var err error
			if c, err = clickhouse.Open(&o); err != nil {
				return nil, fmt.Errorf("clickhouse %s: %w", h, err)
			}
			s.hosts[h] = c
		}
		out = append(out, c)
	}
	return out, nil
}

func newQueryID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "iochub-insert-" + hex.EncodeToString(b[:])
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
		if proto.Error(ex.Code) == proto.ErrTooManyParts && tooManyPartitions(ex.Message) {
			return fmt.Errorf("%w: %w", ErrTooManyPartitions, err)
		}
		switch proto.Error(ex.Code) {
		case proto.ErrTimeoutExceeded, proto.ErrSocketTimeout, proto.ErrNetworkError,
			proto.ErrMemoryLimitExceeded, proto.ErrTableIsReadOnly, proto.ErrTooManyParts,
			// A replicated table with a replica down (decision 0014): the
			// insert's quorum not met yet, or not possible now.
			proto.ErrUnknownStatusOfInsert, proto.ErrTooFewLiveReplicas, proto.ErrUnsatisfiedQuorumForPreviousWrite:
			return fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		return err
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, clickhouse.ErrAcquireConnTimeout) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return err
}

// tooManyPartitions tells ClickHouse's "Too many partitions for single
// INSERT block (more than 100). The limit is controlled by
// 'max_partitions_per_insert_block' setting…" from its "Too many parts
// (300). Merges are processing significantly slower than inserts", which
// share code 252.
func tooManyPartitions(msg string) bool {
	return strings.Contains(msg, "max_partitions_per_insert_block") || strings.Contains(strings.ToLower(msg), "too many partitions")
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
