package chstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// ErrCluster is matched by a start refused because the cluster named with
// WithCluster cannot hold the hub's tables: not in the server's
// remote_servers, no {shard} or {replica} macro, or no coordinator
// (ZooKeeper or ClickHouse Keeper).
var ErrCluster = errors.New("clickhouse cluster")

// ShardColumn is the column a sharded layout distributes rows by: every
// table that has it is sharded by cityHash64(area_code). Every row of one
// entity carries the same area code, so the versions of an entity meet on
// one shard, where the FINAL of its rollup replaces them; a table without
// it (a set of keys) is sharded at random. The identity check asks every
// shard (decision 0014), so exactness does not depend on the key.
const ShardColumn = "area_code"

// Option configures Open.
type Option func(*Store)

// WithCluster lays the hub's tables out on the ClickHouse cluster name (the
// servers' remote_servers): Replicated…MergeTree tables made with ON CLUSTER
// DDL, and, when it has more than one shard, Distributed tables over them
// (decision 0014).
func WithCluster(name string) Option {
	return func(s *Store) { s.cluster = &Cluster{Name: name} }
}

// Cluster is the layout of a store on a ClickHouse cluster.
type Cluster struct {
	Name     string
	Shards   int      // shards in the cluster
	Replicas int      // replicas of the smallest shard: the quorum of an insert
	Hosts    []string // host:port of every server, for what each one must be asked
}

// Cluster is the store's cluster layout, nil on a single server.
func (s *Store) Cluster() *Cluster { return s.cluster }

// Sharded reports a layout of more than one shard: raw tables and rollups
// are Distributed tables over local ones (Local).
func (s *Store) Sharded() bool { return s.cluster != nil && s.cluster.Shards > 1 }

// Local is the table that holds table's rows on each shard: table itself,
// or table_local in a sharded layout.
func (s *Store) Local(table string) string {
	if s.Sharded() {
		return table + "_local"
	}
	return table
}

// OnCluster is the ON CLUSTER clause of the store's DDL, or "".
func (s *Store) OnCluster() string {
	if s.cluster == nil {
		return ""
	}
	return " ON CLUSTER " + Quote(s.cluster.Name)
}

// loadCluster reads the cluster's shape from system.clusters and checks the
// server can hold replicated tables.
func (s *Store) loadCluster(ctx context.Context) error {
	c := s.cluster
	rows, err := s.Query(ctx, "SELECT shard_num, replica_num, host_address, port FROM system.clusters WHERE cluster = @c", Named("c", c.Name))
	if err != nil {
		return fmt.Errorf("%w %s: %w", ErrCluster, c.Name, err)
	}
	perShard := map[uint32]int{}
	for rows.Next() {
		var shard, replica uint32
		var host string
		var port uint16
		if err := rows.Scan(&shard, &replica, &host, &port); err != nil {
			rows.Close()
			return fmt.Errorf("%w %s: %w", ErrCluster, c.Name, err)
		}
		perShard[shard]++
		c.Hosts = append(c.Hosts, host+":"+strconv.Itoa(int(port)))
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("%w %s: %w", ErrCluster, c.Name, err)
	}
	if len(perShard) == 0 {
		return fmt.Errorf("%w %q is not in the server's remote_servers (see system.clusters)", ErrCluster, c.Name)
	}
	c.Shards = len(perShard)
	for _, n := range perShard {
		if c.Replicas == 0 || n < c.Replicas {
			c.Replicas = n
		}
	}
	var macros uint64
	if err := s.QueryRow(ctx, "SELECT count() FROM system.macros WHERE macro IN ('shard', 'replica')").Scan(&macros); err != nil || macros != 2 {
		return fmt.Errorf("%w %s: the server needs the macros {shard} and {replica} in its <macros> (%v)", ErrCluster, c.Name, err)
	}
	var nodes uint64
	if err := s.QueryRow(ctx, "SELECT count() FROM system.zookeeper WHERE path = '/'").Scan(&nodes); err != nil {
		return fmt.Errorf("%w %s: replicated tables need a coordinator (<zookeeper>: ZooKeeper or ClickHouse Keeper): %w", ErrCluster, c.Name, err)
	}
	return nil
}

// createRE takes a CREATE TABLE statement of the MergeTree family apart:
// name, column definitions, engine, engine arguments, and the clauses after.
var createRE = regexp.MustCompile(`(?s)^\s*CREATE\s+TABLE\s+IF\s+NOT\s+EXISTS\s+(\S+)\s*\((.*)\)\s*ENGINE\s*=\s*(\w*MergeTree)\s*\(([^)]*)\)(.*)$`)

// shardColumnRE finds ShardColumn among column definitions.
var shardColumnRE = regexp.MustCompile(`(^|[(,])\s*` + "`?" + ShardColumn + "`?" + `\s+String\b`)

// Layout is the DDL that makes table, given the statement that would make
// it on a single server (CREATE TABLE IF NOT EXISTS db.table (…) ENGINE =
// …MergeTree(…) …), for the store's layout:
//   - a single server: the statement as it is;
//   - one shard: the table Replicated…MergeTree, ON CLUSTER;
//   - several shards: table_local Replicated…MergeTree on every server and
//     table a Distributed table over them, both ON CLUSTER.
func (s *Store) Layout(table, create string) ([]string, error) {
	if s.cluster == nil {
		return []string{create}, nil
	}
	m := createRE.FindStringSubmatch(create)
	if m == nil {
		return nil, fmt.Errorf("table %s: a clustered layout needs CREATE TABLE IF NOT EXISTS … ENGINE = …MergeTree(…), not %.60q", table, create)
	}
	cols, engine, args, tail := m[2], m[3], strings.TrimSpace(m[4]), m[5]
	local := s.Local(table)
	repl := fmt.Sprintf("Replicated%s(%s, '{replica}'", engine, literal("/clickhouse/tables/{shard}/"+s.database+"/"+local))
	if args != "" {
		repl += ", " + args
	}
	repl += ")"
	out := []string{fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s%s (%s) ENGINE = %s%s", s.Qualified(local), s.OnCluster(), cols, repl, tail)}
	if s.Sharded() {
		key := "rand()"
		if shardColumnRE.MatchString(cols) {
			key = "cityHash64(" + Quote(ShardColumn) + ")"
		}
		out = append(out, fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s%s AS %s ENGINE = Distributed(%s, %s, %s, %s)",
			s.Qualified(table), s.OnCluster(), s.Qualified(local), Quote(s.cluster.Name), Quote(s.database), Quote(local), key))
	}
	return out, nil
}

// CreateTable runs Layout's statements for table, unless the table is
// already there: ON CLUSTER DDL waits for every server, so a start with a
// replica down still finds the tables it made before.
//
// A table already there must be laid out for the cluster: one made for a
// single server (a plain MergeTree) is refused, naming it, rather than
// taken for replicated.
func (s *Store) CreateTable(ctx context.Context, table, create string) error {
	if s.cluster != nil {
		var engine string
		err := s.QueryRow(ctx, "SELECT engine FROM system.tables WHERE database = @db AND name = @t",
			Named("db", s.database), Named("t", table)).Scan(&engine)
		switch {
		case err == nil:
			want := "Replicated"
			if s.Sharded() {
				want = "Distributed"
			}
			if !strings.HasPrefix(engine, want) {
				return fmt.Errorf("%w %s: table %s.%s is %s, made for a single server; the cluster's layout needs %s… (copy its rows into a table made by --clickhouse-cluster, or start without it)",
					ErrCluster, s.cluster.Name, s.database, table, engine, want)
			}
			return nil
		case !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("table %s: %w", table, err)
		}
	}
	stmts, err := s.Layout(table, create)
	if err != nil {
		return err
	}
	for _, q := range stmts {
		if err := s.Exec(ctx, q); err != nil {
			return fmt.Errorf("create table %s: %w", table, err)
		}
	}
	return nil
}

// DropTable drops table, and in a sharded layout its local table.
func (s *Store) DropTable(ctx context.Context, table string) error {
	names := []string{table}
	if s.Sharded() {
		names = append(names, s.Local(table))
	}
	for _, n := range names {
		if err := s.Exec(ctx, "DROP TABLE IF EXISTS "+s.Qualified(n)+s.OnCluster()); err != nil {
			return fmt.Errorf("drop table %s: %w", n, err)
		}
	}
	return nil
}

// AddColumn adds a column to table (and to its local table first, in a
// sharded layout).
func (s *Store) AddColumn(ctx context.Context, table, column, typ string) error {
	names := []string{table}
	if s.Sharded() {
		names = []string{s.Local(table), table}
	}
	for _, n := range names {
		q := fmt.Sprintf("ALTER TABLE %s%s ADD COLUMN %s %s", s.Qualified(n), s.OnCluster(), Quote(column), typ)
		if err := s.Exec(ctx, q); err != nil {
			return fmt.Errorf("add column %s.%s: %w", n, column, err)
		}
	}
	return nil
}

// insertSettings are the settings of every insert in the store's layout:
// an insert returns once every replica of its shard has it (insert_quorum)
// and, through a Distributed table, once the shard has it
// (insert_distributed_sync); nil on a single server.
func (s *Store) insertSettings() Settings {
	if s.cluster == nil {
		return nil
	}
	st := Settings{}
	if s.cluster.Replicas > 1 {
		st["insert_quorum"] = s.cluster.Replicas
		st["insert_quorum_timeout"] = 10_000 // ms: a replica down answers a retry (code 319) soon, not in 10 minutes
	}
	if s.Sharded() {
		st["insert_distributed_sync"] = 1
	}
	return st
}

// WithInsertSettings is ctx with the settings every insert of the store
// needs (a quorum of the replicas, a synchronous Distributed insert), for
// an INSERT … SELECT run with Exec.
func (s *Store) WithInsertSettings(ctx context.Context) context.Context {
	if st := s.insertSettings(); st != nil {
		return WithSettings(ctx, st)
	}
	return ctx
}

// readSettings are the settings of a read that must see every quorum insert
// (the identity check); nil on a single server.
func (s *Store) readSettings() Settings {
	if s.cluster == nil || s.cluster.Replicas < 2 {
		return nil
	}
	return Settings{"select_sequential_consistency": 1}
}
