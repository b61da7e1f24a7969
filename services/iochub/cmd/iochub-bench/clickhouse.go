package main

// Phase 2: ClickHouse alone.

import (
	"context"
	"fmt"
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

func benchClickHouse(o options, reg *schema.Registry) (float64, error) {
	ctx := context.Background()
	db := fmt.Sprintf("iochub_bench_raw_%d", time.Now().UnixNano())
	s, err := chstore.Open(ctx, o.chServer+"/"+db)
	if err != nil {
		return 0, err
	}
	defer func() { _ = s.DropDatabase(ctx, db); s.Close() }()
	if err := s.Migrate(ctx, reg); err != nil {
		return 0, err
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
			return 0, err
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
	for _, b := range batches {
		for name, t := range b {
			if err := s.Insert(ctx, name, t.cols, t.rows); err != nil {
				return 0, err
			}
		}
	}
	return float64(len(evs)) / time.Since(start).Seconds(), nil
}
