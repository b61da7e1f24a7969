package kpi_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/iochub/iochub/kpis"
	"github.com/iochub/iochub/pkg/chstore"
	"github.com/iochub/iochub/pkg/chstore/chstoretest"
	"github.com/iochub/iochub/pkg/kpi"
	"github.com/iochub/iochub/pkg/schema"
	"github.com/iochub/iochub/schemas"
)

func formatFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// rawStore gives the test its own database with the raw tables, the
// registry, and the built-in KPI catalog (its rollups not yet made).
func rawStore(t *testing.T) (*chstore.Store, *schema.Registry, *kpi.Catalog) {
	t.Helper()
	s := chstoretest.Open(t)
	reg, cat := rawTables(t, s)
	return s, reg, cat
}

// rawTables makes the raw tables in s, and gives the registry and the
// built-in KPI catalog (its rollups not yet made).
func rawTables(t *testing.T, s *chstore.Store) (*schema.Registry, *kpi.Catalog) {
	t.Helper()
	reg, err := schema.Load(schemas.FS)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(context.Background(), reg); err != nil {
		t.Fatal(err)
	}
	cat, err := kpi.Load(kpis.FS)
	if err != nil {
		t.Fatal(err)
	}
	return reg, cat
}
