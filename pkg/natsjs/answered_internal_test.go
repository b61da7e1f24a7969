package natsjs

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// A stream just made on a cluster finds no responder until its leader is
// elected: untilAnswered asks again, and returns any other answer at once.
func TestUntilAnsweredAsksAgainWhileNoResponder(t *testing.T) {
	ctx := context.Background()
	calls := 0
	err := untilAnswered(ctx, func() error {
		calls++
		if calls < 3 {
			return nats.ErrNoResponders
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Fatalf("untilAnswered: %v after %d calls, want nil after 3", err, calls)
	}
	other := errors.New("key not found")
	calls = 0
	if err := untilAnswered(ctx, func() error { calls++; return other }); !errors.Is(err, other) || calls != 1 {
		t.Fatalf("untilAnswered: %v after %d calls, want the error at once", err, calls)
	}
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if err := untilAnswered(short, func() error { return nats.ErrNoResponders }); !errors.Is(err, nats.ErrNoResponders) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("untilAnswered past its context: %v, want both errors", err)
	}
}
