package connector_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/iochub/iochub/pkg/connector"
	"github.com/iochub/iochub/pkg/connector/connectortest"
	"github.com/iochub/iochub/pkg/event"
)

// memSystem is a list of visit records behind a source that reads them in
// order; its cursor is the index of the next record.
type memSystem struct {
	mu   sync.Mutex
	recs [][]byte
	up   bool
}

func (m *memSystem) Source(*testing.T) connector.Source { return &memSource{sys: m} }
func (m *memSystem) Add(_ *testing.T, n int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for range n {
		i := len(m.recs)
		m.recs = append(m.recs, []byte(fmt.Sprintf(`{"visit":"V%d","minute":%d}`, i, i%60)))
	}
}

// AddMalformed adds a record of 2 MB the mapping refuses: larger than the
// dead-letter stream takes (finding M1), it is dead-lettered truncated.
func (m *memSystem) AddMalformed(*testing.T) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.recs = append(m.recs, append([]byte(`{"visit":"`), bytes.Repeat([]byte("x"), 2<<20)...))
}
func (m *memSystem) SetAvailable(_ *testing.T, up bool) { m.mu.Lock(); m.up = up; m.mu.Unlock() }

func (m *memSystem) Map() connector.Mapper {
	return func(r connector.Record) (event.Event, error) {
		var in struct {
			Visit  string `json:"visit"`
			Minute int    `json:"minute"`
		}
		if err := json.Unmarshal(r.Data, &in); err != nil {
			return event.Event{}, fmt.Errorf("record %s: %w", r.Key, err)
		}
		at := time.Date(2026, 11, 2, 8, in.Minute, 0, 0, time.UTC)
		data, _ := json.Marshal(map[string]any{"visit_id": in.Visit, "facility_code": "BV-DK-BN", "area_code": "27256",
			"kind": "outpatient", "age_band": "25-44", "sex": "female", "insured": true, "started_at": at.Format(time.RFC3339),
			"patient_id": "001234567890"})
		return event.Event{Source: "/health/his/BV-DK-BN", Type: "vn.ioc.health.visit.v1", Time: at, Data: data}, nil
	}
}

type memSource struct {
	sys  *memSystem
	next int
}

func (s *memSource) Connect(_ context.Context, cp string) error {
	s.sys.mu.Lock()
	defer s.sys.mu.Unlock()
	if !s.sys.up {
		return fmt.Errorf("%w: memory system down", connector.ErrUnavailable)
	}
	s.next = 0
	if cp != "" {
		n, err := strconv.Atoi(cp)
		if err != nil {
			return fmt.Errorf("checkpoint %q: %w", cp, err)
		}
		s.next = n
	}
	return nil
}

func (s *memSource) Read(ctx context.Context) (connector.Record, error) {
	for {
		s.sys.mu.Lock()
		up, n := s.sys.up, len(s.sys.recs)
		var rec []byte
		if s.next < n {
			rec = s.sys.recs[s.next]
		}
		s.sys.mu.Unlock()
		if !up {
			return connector.Record{}, fmt.Errorf("%w: memory system down", connector.ErrUnavailable)
		}
		if rec != nil {
			i := s.next
			s.next++
			return connector.Record{Key: "rec-" + strconv.Itoa(i), Version: "1", Cursor: strconv.Itoa(i + 1), Data: rec}, nil
		}
		select {
		case <-ctx.Done():
			return connector.Record{}, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (s *memSource) Ack(context.Context, connector.Record) error { return nil }
func (s *memSource) Close() error                                { return nil }

// TestRunnerConformance runs the conformance suite over the memory system:
// it checks the runner itself.
func TestRunnerConformance(t *testing.T) {
	connectortest.Run(t, "memory", func(*testing.T) connectortest.System { return &memSystem{up: true} })
}

func TestEventIDIsTheRecordAndItsVersion(t *testing.T) {
	a := connector.EventID("c", connector.Record{Key: "k", Version: "1"})
	if a != connector.EventID("c", connector.Record{Key: "k", Version: "1", Cursor: "x"}) {
		t.Error("the cursor changed the event id")
	}
	if a == connector.EventID("c", connector.Record{Key: "k", Version: "2"}) || a == connector.EventID("c", connector.Record{Key: "k2", Version: "1"}) {
		t.Error("another key or version gave the same id")
	}
	if errors.Is(nil, connector.ErrUnavailable) {
		t.Fatal()
	}
}
