package main

// Phase 2: ClickHouse alone.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/iochub/iochub/pkg/chstore"
	"github.com/iochub/iochub/pkg/schema"
)

func syncSetting(s string) (time.Duration, bool) {
	if s == "always" {
		return 0, true
	}
	d, _ := time.ParseDuration(s)
	return d, false
}

// benchClickHouse inserts the mix through chstore.Insert (rows/s), then the
// same rows again with ClickHouse's own client from a Native-format file, one
// insert per table: the server's own limit on this machine.
func benchClickHouse(o options, reg *schema.Registry) (chstorePerS, clientPerS float64, err error) {
	ctx := context.Background()
	db := fmt.Sprintf("iochub_bench_raw_%d", time.Now().UnixNano())
	s, err := chstore.Open(ctx, o.chServer+"/"+db)
	if err != nil {
		return 0, 0, err
	}
	defer func() { _ = s.DropDatabase(ctx, db); s.Close() }()
	if err := s.Migrate(ctx, reg); err != nil {
		return 0, 0, err
	}
	// The same mix of types as the hub writes, one insert per table per 5000 events.
	evs, _ := messages(o.rawEvents, 2)
	type tb struct {
		cols []string
		rows [][]any
	}
	var batches []map[string]*tb
	cur := map[string]*tb{}
	for i, e := range evs {
		ty, _ := reg.Lookup(e.Type)
		data, _ := schema.DecodeData(e.Data)
		row, err := chstore.Row(ty, e, uint64(i+1), time.Now(), data)
		if err != nil {
			return 0, 0, err
		}
		t := cur[ty.Name.Table()]
		if t == nil {
			t = &tb{cols: chstore.Columns(ty)}
			cur[ty.Name.Table()] = t
		}
		t.rows = append(t.rows, row)
		if (i+1)%5000 == 0 {
			batches = append(batches, cur)
			cur = map[string]*tb{}
		}
	}
	batches = append(batches, cur)
	start := time.Now()
	tables := map[string]bool{}
	for _, b := range batches {
		for name, t := range b {
			if err := s.Insert(ctx, name, t.cols, t.rows); err != nil {
				return 0, 0, err
			}
			tables[name] = true
		}
	}
	chstorePerS = float64(len(evs)) / time.Since(start).Seconds()
	clientPerS, err = nativeInsert(ctx, o, s, db, tables)
	if err != nil {
		return 0, 0, fmt.Errorf("clickhouse-client insert: %w", err)
	}
	return chstorePerS, clientPerS, nil
}

// nativeInsert copies each of tables to a Native-format file, then times
// clickhouse-client inserting every file into an empty copy of its table,
// less the client's start.
func nativeInsert(ctx context.Context, o options, s *chstore.Store, db string, tables map[string]bool) (float64, error) {
	u, err := url.Parse(o.chServer)
	if err != nil {
		return 0, err
	}
	client := func(query string, stdin io.Reader, stdout io.Writer) error {
		args := []string{"--host", u.Hostname(), "--query", query}
		if p := u.Port(); p != "" {
			args = append(args, "--port", p)
		}
		if pw, ok := u.User.Password(); ok {
			args = append(args, "--user", u.User.Username(), "--password", pw)
		}
		cmd := exec.CommandContext(ctx, "clickhouse-client", args...)
		cmd.Stdin, cmd.Stdout = stdin, stdout
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s: %w: %s", query, err, strings.TrimSpace(stderr.String()))
		}
		return nil
	}
	dir, err := os.MkdirTemp("", "iochub-bench-native")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	var rows uint64
	files := map[string]string{}
	for t := range tables {
		n, err := s.Count(ctx, t)
		if err != nil {
			return 0, err
		}
		rows += n
		f, err := os.Create(filepath.Join(dir, t+".native"))
		if err != nil {
			return 0, err
		}
		err = client("SELECT * FROM "+s.Qualified(t)+" FORMAT Native", nil, f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return 0, err
		}
		if err := s.Exec(ctx, "CREATE TABLE "+s.Qualified(t+"_native")+" AS "+s.Qualified(t)); err != nil {
			return 0, err
		}
		files[t] = f.Name()
	}
	// The client's own start, measured here, is taken off each insert: the
	// figure is the server's insert, as one long-running client would see it.
	startup := time.Hour
	for range 3 {
		start := time.Now()
		if err := client("SELECT 1", nil, io.Discard); err != nil {
			return 0, err
		}
		startup = min(startup, time.Since(start))
	}
	var took time.Duration
	for t, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return 0, err
		}
		start := time.Now()
		err = client("INSERT INTO "+s.Qualified(t+"_native")+" FORMAT Native", f, io.Discard)
		took += max(time.Since(start)-startup, time.Millisecond)
		f.Close()
		if err != nil {
			return 0, err
		}
	}
	return float64(rows) / took.Seconds(), nil
}
