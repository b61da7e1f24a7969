package backoff_test

import (
	"context"
	"testing"
	"time"

	"github.com/iochub/iochub/pkg/backoff"
)

func TestDelaysGrowToMaxWithJitter(t *testing.T) {
	tests := []struct {
		name     string
		b        backoff.Backoff
		wantBase []time.Duration // the delay each Next is drawn from
	}{
		{"doubles to max", backoff.Backoff{Min: 100 * time.Millisecond, Max: time.Second},
			[]time.Duration{100, 200, 400, 800, 1000, 1000}},
		{"max below min keeps min once", backoff.Backoff{Min: 50 * time.Millisecond, Max: 50 * time.Millisecond},
			[]time.Duration{50, 50, 50}},
		{"exact without jitter", backoff.Backoff{Min: 10 * time.Millisecond, Max: 40 * time.Millisecond, NoJitter: true},
			[]time.Duration{10, 20, 40, 40}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.b
			for round := range 2 {
				for i, base := range tt.wantBase {
					base *= time.Millisecond
					if c := b.Current(); c != base {
						t.Fatalf("round %d step %d: current %s, want %s", round, i, c, base)
					}
					d := b.Next()
					lo := base / 2
					if b.NoJitter {
						lo = base
					}
					if d < lo || d > base {
						t.Fatalf("round %d step %d: delay %s outside [%s, %s]", round, i, d, lo, base)
					}
				}
				b.Reset()
			}
		})
	}
}

func TestWaitStopsWithTheContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	b := backoff.Backoff{Min: time.Hour, Max: time.Hour}
	if b.Wait(ctx) {
		t.Fatal("Wait reported true after the context ended")
	}
}
